//! The disk tier's byte budget (cacache has none of its own): an index of what is stored and
//! when it was last used, least-recently-used eviction that never sorts under the index lock or
//! on a runtime thread, and where cacache puts content (reads go through `files`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// An object's last use in ms since the epoch, shared by the index and the object's decoded
/// entry: a disk hit stores to it without the index lock.
pub(crate) type LastUse = Arc<AtomicU64>;

/// One stored object in the index.
#[derive(Debug)]
struct Listed {
    size: u64,
    used: LastUse,
    /// Its content file; `None` for an empty body (never removed: it costs nothing).
    content: Option<cacache::Integrity>,
}

#[derive(Debug, Default)]
pub(crate) struct DiskIndex {
    entries: HashMap<Arc<str>, Listed>,
    /// Content hash → how many listed objects use it. cacache stores content by hash, so
    /// identical bodies under different URLs share one file: it is removed (and its bytes
    /// leave the total) with its last user, not its first.
    users: HashMap<cacache::Integrity, u32>,
    /// Bytes of distinct content files.
    total: u64,
}

impl DiskIndex {
    /// Unlists `key`; the content file it leaves without users, if any.
    fn unlist(&mut self, key: &str) -> Option<cacache::Integrity> {
        let gone = self.entries.remove(key)?;
        self.drop_user(gone.content, gone.size)
    }

    fn add_user(&mut self, content: Option<&cacache::Integrity>, size: u64) {
        let Some(content) = content else {
            self.total += size;
            return;
        };
        let n = self.users.entry(content.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            self.total += size;
        }
    }

    fn drop_user(
        &mut self,
        content: Option<cacache::Integrity>,
        size: u64,
    ) -> Option<cacache::Integrity> {
        let Some(content) = content else {
            self.total = self.total.saturating_sub(size);
            return None;
        };
        let n = self.users.get_mut(&content)?;
        *n -= 1;
        if *n > 0 {
            return None;
        }
        self.users.remove(&content);
        self.total = self.total.saturating_sub(size);
        Some(content)
    }
}

/// The content a stored object of `size` bytes counts under (none for an empty body).
fn counted(size: u64, content: cacache::Integrity) -> Option<cacache::Integrity> {
    (size > 0).then_some(content)
}

/// The index, shared with eviction runs.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    index: Mutex<DiskIndex>,
    evicting: AtomicBool,
    /// Objects evicted for room so far.
    evicted: std::sync::atomic::AtomicU64,
}

/// What `Budget::account` found.
#[derive(Debug, Default)]
pub(crate) struct Accounted {
    pub(crate) over: bool,
    pub(crate) orphan: Option<cacache::Integrity>,
}

/// An object unlisted for room, and its content file when no other object uses it.
#[derive(Debug)]
pub(crate) struct Victim {
    pub(crate) key: Arc<str>,
    pub(crate) orphan: Option<cacache::Integrity>,
}

/// What a listing on disk says of one object: key, size, last write, content hash.
pub(crate) type ListedOnDisk = (String, u64, u64, cacache::Integrity);

impl Budget {
    pub(crate) fn from_listing(listed: Vec<ListedOnDisk>) -> Budget {
        let mut index = DiskIndex::default();
        for (key, size, time, content) in listed {
            let content = counted(size, content);
            index.add_user(content.as_ref(), size);
            let used = Arc::new(AtomicU64::new(time));
            index.entries.insert(
                Arc::from(key),
                Listed {
                    size,
                    used,
                    content,
                },
            );
        }
        Budget {
            index: Mutex::new(index),
            evicting: AtomicBool::new(false),
            evicted: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Bytes of distinct content files listed.
    pub(crate) fn total(&self) -> u64 {
        self.index.lock().map_or(0, |i| i.total)
    }

    /// Objects listed now (for scrapes: takes the index lock once).
    pub(crate) fn objects(&self) -> u64 {
        self.index.lock().map_or(0, |i| i.entries.len() as u64)
    }

    pub(crate) fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.index.lock().is_ok_and(|i| i.entries.contains_key(key))
    }

    /// The last-use mark of a listed object, for its decoded entry to keep (`Store::touch`).
    pub(crate) fn last_use(&self, key: &str) -> Option<LastUse> {
        self.index
            .lock()
            .ok()
            .and_then(|idx| idx.entries.get(key).map(|e| e.used.clone()))
    }

    /// Marks a use through the index (cold reads; hits store to their entry's mark).
    pub(crate) fn touch(&self, key: &str, now_ms: u64) {
        if let Some(used) = self.last_use(key) {
            used.store(now_ms, Ordering::Relaxed);
        }
    }

    /// Unlists an object; the content file it leaves without users (for the caller to remove).
    pub(crate) fn forget(&self, key: &str) -> Option<cacache::Integrity> {
        self.index.lock().ok()?.unlist(key)
    }

    /// Records a stored object and its content. `over`: the tier is now over `max_bytes`;
    /// `orphan`: the content of a body this one replaced, left without users.
    pub(crate) fn account(
        &self,
        key: &str,
        size: u64,
        content: cacache::Integrity,
        now_ms: u64,
        max_bytes: u64,
    ) -> Accounted {
        let Ok(mut idx) = self.index.lock() else {
            return Accounted::default();
        };
        let content = counted(size, content);
        // Counted before a replaced body is dropped: the same content is no orphan.
        idx.add_user(content.as_ref(), size);
        // A replaced body keeps its mark: decoded entries linked to it stay linked.
        let (key, used, orphan) = match idx.entries.remove_entry(key) {
            Some((key, old)) => {
                old.used.store(now_ms, Ordering::Relaxed);
                let orphan = idx.drop_user(old.content, old.size);
                (key, old.used, orphan)
            }
            None => (Arc::from(key), Arc::new(AtomicU64::new(now_ms)), None),
        };
        idx.entries.insert(
            key,
            Listed {
                size,
                used,
                content,
            },
        );
        Accounted {
            over: idx.total > max_bytes,
            orphan,
        }
    }

    /// Picks and unlists the least recently used objects until the tier is at 90 % of
    /// `max_bytes` (batches, so eviction does not run on every insert). Blocking: call it from
    /// the blocking pool. The index lock is held only to copy (key, size, time) with a cheap
    /// reference count per key, and again to unlist the victims; the sort runs without it.
    /// `None` when another run is already evicting.
    pub(crate) fn pick_victims(&self, max_bytes: u64, spare: &str) -> Option<Vec<Victim>> {
        if self.evicting.swap(true, Ordering::AcqRel) {
            return None;
        }
        let _running = Running(&self.evicting);
        let (mut by_age, total) = {
            let idx = self.index.lock().ok()?;
            let list: Vec<(u64, Arc<str>)> = idx
                .entries
                .iter()
                .filter(|(k, _)| k.starts_with("o:") && &***k != spare)
                .map(|(k, e)| (e.used.load(Ordering::Relaxed), k.clone()))
                .collect();
            (list, idx.total)
        };
        if total <= max_bytes {
            return Some(Vec::new());
        }
        by_age.sort_unstable();
        let target = max_bytes / 10 * 9;
        let mut idx = self.index.lock().ok()?;
        let mut victims = Vec::new();
        for (time, key) in by_age {
            if idx.total <= target {
                break;
            }
            // Used again since the copy: not a victim any more. (A victim whose content another
            // object shares frees nothing: the run goes on to the next.)
            if idx
                .entries
                .get(&key)
                .is_none_or(|e| e.used.load(Ordering::Relaxed) != time)
            {
                continue;
            }
            let orphan = idx.unlist(&key);
            victims.push(Victim { key, orphan });
        }
        self.evicted
            .fetch_add(victims.len() as u64, Ordering::Relaxed);
        Some(victims)
    }
}

/// Background writes in flight, so that shutdown can wait for them.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    active: Arc<std::sync::atomic::AtomicUsize>,
    idle: Arc<tokio::sync::Notify>,
}

pub(crate) struct WriteGuard {
    active: Arc<std::sync::atomic::AtomicUsize>,
    idle: Arc<tokio::sync::Notify>,
}

impl Writes {
    pub(crate) fn enter(&self) -> WriteGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        WriteGuard {
            active: self.active.clone(),
            idle: self.idle.clone(),
        }
    }

    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.active.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        if self.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Where cacache keeps content with this hash (its on-disk layout, pinned by a test).
pub(crate) fn content_path(dir: &Path, sri: &cacache::Integrity) -> PathBuf {
    let (algo, hex) = sri.to_hex();
    let mut p = dir.join("content-v2");
    p.push(algo.to_string());
    if hex.len() > 4 {
        p.push(&hex[0..2]);
        p.push(&hex[2..4]);
        p.push(&hex[4..]);
    }
    p
}

/// Where cacache keeps the index entries of `key` (its on-disk layout, pinned by a test):
/// eviction removes the whole file, as cacache's `remove_fully` does, without the content.
pub(crate) fn bucket_path(dir: &Path, key: &str) -> PathBuf {
    let sri = ssri::IntegrityOpts::new()
        .algorithm(ssri::Algorithm::Sha1)
        .chain(key)
        .result();
    let (_, hex) = sri.to_hex();
    dir.join("index-v5")
        .join(&hex[0..2])
        .join(&hex[2..4])
        .join(&hex[4..])
}

/// Cold reads of objects up to this size are verified on the runtime thread (a few
/// microseconds of hashing); larger ones on the blocking pool.
pub(crate) const VERIFY_INLINE_MAX: u64 = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(key: &str, size: u64, time: u64, body: &str) -> ListedOnDisk {
        (key.to_string(), size, time, cacache::Integrity::from(body))
    }

    #[test]
    fn victims_are_the_least_recently_used_down_to_ninety_percent() {
        let listed = (0..10)
            .map(|i| listed(&format!("o:{i}"), 100, 1000 + i, &format!("body {i}")))
            .collect::<Vec<_>>();
        let b = Budget::from_listing(listed);
        assert_eq!(b.total(), 1000);
        b.touch("o:0", 5000);
        let victims = b.pick_victims(800, "o:9").expect("not running");
        let names: Vec<&str> = victims.iter().map(|v| &*v.key).collect();
        assert_eq!(names, ["o:1", "o:2", "o:3"]);
        assert!(
            victims.iter().all(|v| v.orphan.is_some()),
            "no file is shared"
        );
        assert_eq!(b.total(), 700);
        assert!(b.contains("o:0") && !b.contains("o:1"));
    }

    #[test]
    fn shared_content_counts_once_and_is_freed_by_its_last_user() {
        let b = Budget::from_listing(vec![
            listed("o:a", 100, 1, "same"),
            listed("o:b", 100, 2, "same"),
            listed("o:c", 100, 3, "other"),
            listed("o:empty", 0, 4, ""),
        ]);
        assert_eq!(b.total(), 200);
        assert_eq!(b.forget("o:a"), None, "o:b still uses the file");
        assert_eq!(b.total(), 200);
        assert_eq!(b.forget("o:b"), Some(cacache::Integrity::from("same")));
        assert_eq!(b.total(), 100);
        assert_eq!(
            b.forget("o:empty"),
            None,
            "an empty body has no file to remove"
        );

        // A refill with the same body keeps the file; with a new body, frees the old one.
        let same = b.account("o:c", 100, cacache::Integrity::from("other"), 9, 1000);
        assert!(!same.over && same.orphan.is_none());
        let new = b.account("o:c", 150, cacache::Integrity::from("new"), 10, 1000);
        assert_eq!(new.orphan, Some(cacache::Integrity::from("other")));
        assert_eq!(b.total(), 150);

        // Eviction goes past a victim whose file another object shares.
        b.account("o:d", 150, cacache::Integrity::from("new"), 11, 1000);
        b.account("o:e", 100, cacache::Integrity::from("e"), 12, 1000);
        assert_eq!(b.total(), 250);
        let victims = b.pick_victims(200, "o:e").expect("not running");
        let picked: Vec<(&str, bool)> = victims
            .iter()
            .map(|v| (&*v.key, v.orphan.is_some()))
            .collect();
        assert_eq!(picked, [("o:c", false), ("o:d", true)]);
        assert_eq!(b.total(), 100);
    }
}
