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

#[derive(Debug, Default)]
pub(crate) struct DiskIndex {
    /// key → (bytes, last use).
    entries: HashMap<Arc<str>, (u64, LastUse)>,
    total: u64,
}

/// The index, shared with eviction runs.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    index: Mutex<DiskIndex>,
    evicting: AtomicBool,
    /// Objects evicted for room so far.
    evicted: std::sync::atomic::AtomicU64,
}

impl Budget {
    pub(crate) fn from_listing(listed: Vec<(String, u64, u64)>) -> Budget {
        let mut index = DiskIndex::default();
        for (key, size, time) in listed {
            index.total += size;
            index
                .entries
                .insert(Arc::from(key), (size, Arc::new(AtomicU64::new(time))));
        }
        Budget {
            index: Mutex::new(index),
            evicting: AtomicBool::new(false),
            evicted: std::sync::atomic::AtomicU64::new(0),
        }
    }

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
            .and_then(|idx| idx.entries.get(key).map(|e| e.1.clone()))
    }

    /// Marks a use through the index (cold reads; hits store to their entry's mark).
    pub(crate) fn touch(&self, key: &str, now_ms: u64) {
        if let Some(used) = self.last_use(key) {
            used.store(now_ms, Ordering::Relaxed);
        }
    }

    pub(crate) fn forget(&self, key: &str) {
        if let Ok(mut idx) = self.index.lock()
            && let Some((size, _)) = idx.entries.remove(key)
        {
            idx.total = idx.total.saturating_sub(size);
        }
    }

    /// Records a stored object; true when the tier is now over `max_bytes`.
    pub(crate) fn account(&self, key: &str, size: u64, now_ms: u64, max_bytes: u64) -> bool {
        let Ok(mut idx) = self.index.lock() else {
            return false;
        };
        // A replaced body keeps its mark: decoded entries linked to it stay linked.
        let old = match idx.entries.get_mut(key) {
            Some(e) => {
                e.1.store(now_ms, Ordering::Relaxed);
                std::mem::replace(&mut e.0, size)
            }
            None => {
                let used = Arc::new(AtomicU64::new(now_ms));
                idx.entries.insert(Arc::from(key), (size, used));
                0
            }
        };
        idx.total = idx.total.saturating_sub(old) + size;
        idx.total > max_bytes
    }

    /// Picks and unlists the least recently used objects until the tier is at 90 % of
    /// `max_bytes` (batches, so eviction does not run on every insert). Blocking: call it from
    /// the blocking pool. The index lock is held only to copy (key, size, time) with a cheap
    /// reference count per key, and again to unlist the victims; the sort runs without it.
    /// `None` when another run is already evicting.
    pub(crate) fn pick_victims(&self, max_bytes: u64, spare: &str) -> Option<Vec<Arc<str>>> {
        if self.evicting.swap(true, Ordering::AcqRel) {
            return None;
        }
        let _running = Running(&self.evicting);
        let (mut by_age, total) = {
            let idx = self.index.lock().ok()?;
            let list: Vec<(u64, Arc<str>, u64)> = idx
                .entries
                .iter()
                .filter(|(k, _)| k.starts_with("o:") && &***k != spare)
                .map(|(k, (s, t))| (t.load(Ordering::Relaxed), k.clone(), *s))
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
        for (time, key, _) in by_age {
            if idx.total <= target {
                break;
            }
            // Used again since the copy: not a victim any more.
            let Some((size, used)) = idx.entries.get(&key) else {
                continue;
            };
            if used.load(Ordering::Relaxed) != time {
                continue;
            }
            let size = *size;
            idx.entries.remove(&key);
            idx.total = idx.total.saturating_sub(size);
            victims.push(key);
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

/// Cold reads of objects up to this size are verified on the runtime thread (a few
/// microseconds of hashing); larger ones on the blocking pool.
pub(crate) const VERIFY_INLINE_MAX: u64 = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn victims_are_the_least_recently_used_down_to_ninety_percent() {
        let listed = (0..10)
            .map(|i| (format!("o:{i}"), 100, 1000 + i))
            .collect::<Vec<_>>();
        let b = Budget::from_listing(listed);
        assert_eq!(b.total(), 1000);
        b.touch("o:0", 5000);
        let victims = b.pick_victims(800, "o:9").expect("not running");
        let names: Vec<&str> = victims.iter().map(|v| &**v).collect();
        assert_eq!(names, ["o:1", "o:2", "o:3"]);
        assert_eq!(b.total(), 700);
        assert!(b.contains("o:0") && !b.contains("o:1"));
    }
}
