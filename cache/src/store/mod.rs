//! Tiered storage: memory (moka, weighted by bytes, TinyLFU admission) over disk (cacache, with
//! our own byte budget and least-recently-used eviction, since cacache has no limit of its own).
//!
//! Layout of keys: a *primary* key names a URL; a *variant* key names one stored response of it
//! (the primary key plus the request's values of the headers `Vary` named). A small record per
//! primary key lists the Vary header names and the variants stored, so that lookups can build
//! the variant key and purges can find every variant. Records and objects are kept in both
//! tiers; the disk copies bring everything back after a restart.
//!
//! Modules: `fill` (storing while streaming), `disk` (budget, eviction, content layout),
//! `files` (open, verified content files: one read per warm disk hit), `codec` (the on-disk
//! metadata format), `fence` (purges that fills cannot undo), `keys`.

mod api;
pub(crate) mod codec;
mod disk;
mod fence;
mod files;
mod fill;
mod keys;
mod records;
mod remove;
mod tags;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderName;
use serde::{Deserialize, Serialize};

use crate::encoding::Coding;
use crate::rules::StoredMeta;

pub use fence::{Fenced, Ticket};
pub use fill::Fill;
pub use keys::{SLICE_SIZE, SLICE_TOTAL, encoded_key, slice_index_key, slice_key, variant_key};
pub use tags::{MAX_TAG_BYTES, MAX_TAG_HEADER_BYTES, MAX_TAGS, parse_tags};

/// A streaming reader of a disk object; call `check()` after reading it all.
pub use cacache::Reader as DiskReader;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("disk cache at {dir}: {source}")]
    Disk {
        dir: PathBuf,
        #[source]
        source: cacache::Error,
    },
    #[error("stored metadata for {key:?} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("response body ended after {got} of {expected} bytes")]
    Truncated { got: u64, expected: u64 },
    #[error("disk writer stopped")]
    WriterGone,
    #[error("object exceeds {limit} bytes and there is no disk tier")]
    TooLarge { limit: u64 },
    #[error("a purge after this fill started invalidated it")]
    Fenced,
}

impl CacheError {
    /// Cache errors are always internal; retrying the request (without the cache) is safe.
    pub fn retry_safe(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone)]
pub struct DiskConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
    /// Content files kept open for disk hits (each holds a descriptor).
    pub open_files: u64,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub memory_bytes: u64,
    /// Larger objects go to disk only.
    pub max_object_memory_bytes: u64,
    pub disk: Option<DiskConfig>,
}

/// A complete object held in memory.
#[derive(Debug)]
pub struct MemObject {
    pub meta: StoredMeta,
    pub body: Bytes,
    /// The ticket of the origin request that produced (or last revalidated) it.
    pub ticket: Ticket,
    /// Its surrogate keys, for tag purges.
    pub tags: Tags,
}

/// An object's surrogate keys.
pub type Tags = Arc<[Arc<str>]>;

/// Where a found object's body is.
#[derive(Debug, Clone)]
pub enum Found {
    Memory(Arc<MemObject>),
    /// Shared with the index entry: a disk hit copies nothing.
    Disk(Arc<DiskEntry>),
}

impl Found {
    /// The variant key and content hash of a disk object.
    fn disk_ref(&self) -> Result<(&str, &cacache::Integrity), CacheError> {
        match self {
            Found::Disk(e) => Ok((&e.variant, &e.integrity)),
            Found::Memory(_) => Err(CacheError::Corrupt {
                key: String::new(),
                reason: "not a disk object".into(),
            }),
        }
    }

    pub fn meta(&self) -> &StoredMeta {
        match self {
            Found::Memory(o) => &o.meta,
            Found::Disk(e) => &e.meta,
        }
    }

    pub fn ticket(&self) -> Ticket {
        match self {
            Found::Memory(o) => o.ticket,
            Found::Disk(e) => e.ticket,
        }
    }

    pub fn tags(&self) -> &[Arc<str>] {
        match self {
            Found::Memory(o) => &o.tags,
            Found::Disk(e) => &e.tags,
        }
    }

    pub fn variant(&self, primary: &str) -> String {
        match self {
            Found::Memory(o) => variant_key(primary, &o.meta.vary),
            Found::Disk(e) => e.variant.clone(),
        }
    }

    /// The same object with new metadata, revalidated by the request that took `ticket`
    /// (after a 304: it is as new as that request, so older soft purges no longer cover it).
    pub fn with_meta(&self, meta: StoredMeta, ticket: Ticket) -> Found {
        match self {
            Found::Memory(obj) => Found::Memory(Arc::new(MemObject {
                meta,
                body: obj.body.clone(),
                ticket,
                tags: obj.tags.clone(),
            })),
            Found::Disk(e) => Found::Disk(Arc::new(DiskEntry {
                variant: e.variant.clone(),
                meta: Arc::new(meta),
                integrity: e.integrity.clone(),
                ticket,
                tags: e.tags.clone(),
                used: std::sync::OnceLock::new(),
                file: std::sync::OnceLock::new(),
            })),
        }
    }
}

#[derive(Debug)]
pub enum Lookup {
    /// Nothing stored for this URL.
    Miss,
    /// The URL has stored variants, but none for this request's Vary values; `variant` is the
    /// key this request's variant would have (concurrent misses for it collapse on it).
    VaryMiss {
        variant: String,
    },
    Hit(Found),
    /// Stored, but a soft purge made it stale: serve it as stale content may be, revalidate.
    Stale(Found),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct VaryRecord {
    names: Vec<String>,
    variants: Vec<String>,
}

/// A disk object's decoded index entry, kept in memory so that a disk hit reads the index once.
#[derive(Debug)]
pub struct DiskEntry {
    variant: String,
    /// Its parsed fields serve every disk hit.
    meta: Arc<StoredMeta>,
    /// Content address: opening by hash skips a second index read.
    integrity: cacache::Integrity,
    ticket: Ticket,
    tags: Tags,
    /// Its last use in the disk budget, linked at the first hit: a hit marks it without the
    /// budget's lock.
    used: std::sync::OnceLock<disk::LastUse>,
    /// Its open content file, linked at the first read that finds it open: later hits skip
    /// the open-file cache's lookup while that cache keeps the file (it alone holds it open).
    file: std::sync::OnceLock<std::sync::Weak<files::OpenFile>>,
}

impl DiskEntry {
    /// The content hash (tests find the file by it).
    #[cfg(test)]
    pub(crate) fn integrity(&self) -> &cacache::Integrity {
        &self.integrity
    }
}

struct Inner {
    cfg: StoreConfig,
    mem: moka::future::Cache<String, Arc<MemObject>>,
    disk_meta: moka::future::Cache<String, Arc<DiskEntry>>,
    files: files::OpenFiles,
    records: moka::future::Cache<String, Arc<VaryRecord>>,
    budget: disk::Budget,
    fences: fence::Fences,
    writes: disk::Writes,
    tags: Arc<tags::TagIndex>,
    /// Objects the memory tier evicted for room (not purges or replacements).
    mem_evictions: Arc<std::sync::atomic::AtomicU64>,
    /// Orders the disk publications of one variant (striped by key hash): a replacement's disk
    /// entry must land after, never before, the one it replaces.
    disk_order: Vec<tokio::sync::Mutex<()>>,
}

const DISK_ORDER_STRIPES: usize = 64;

/// The tiered store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// The store's own stamps (LRU order, seeds).
fn now_ms() -> u64 {
    edge_core::clock::unix_ms()
}

impl Store {
    /// Opens the store; with a disk tier, checks its format (discarding a directory written by
    /// another one) and rebuilds the size index from what is on disk.
    pub async fn open(cfg: StoreConfig) -> Result<Store, CacheError> {
        // `memory_bytes` covers everything the store keeps in memory: objects get three
        // quarters, the Vary records and decoded disk metadata an eighth each.
        let tag_index = Arc::new(tags::TagIndex::default());
        let mem_evictions = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let last_tier = cfg.disk.is_none();
        let (index, evicted) = (tag_index.clone(), mem_evictions.clone());
        let mem = moka::future::Cache::builder()
            .max_capacity(cfg.memory_bytes / 4 * 3)
            .weigher(|k: &String, v: &Arc<MemObject>| keys::weight(k.len(), &v.meta, v.body.len()))
            .eviction_listener(move |k: Arc<String>, v: Arc<MemObject>, cause| {
                if cause.was_evicted() {
                    evicted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    // Memory is the last tier: an evicted object leaves the tag index.
                    if last_tier && !v.tags.is_empty() {
                        index.remove(&k);
                    }
                }
            })
            .build();
        let records = moka::future::Cache::builder()
            .max_capacity((cfg.memory_bytes / 8).max(256 * 1024))
            .weigher(|k: &String, v: &Arc<VaryRecord>| {
                let n: usize = v.variants.iter().map(|s| s.len() + 48).sum::<usize>()
                    + v.names.iter().map(|s| s.len() + 48).sum::<usize>()
                    + k.len()
                    + keys::ENTRY_OVERHEAD;
                u32::try_from(n).unwrap_or(u32::MAX)
            })
            .build();
        let disk_meta = moka::future::Cache::builder()
            .max_capacity((cfg.memory_bytes / 8).max(256 * 1024))
            .weigher(|k: &String, v: &Arc<DiskEntry>| keys::weight(k.len(), &v.meta, 0))
            .build();
        let mut listed = (Vec::new(), Vec::new());
        if let Some(disk) = &cfg.disk {
            let dir = disk.dir.clone();
            listed = tokio::task::spawn_blocking(move || {
                codec::ensure_format(&dir).map_err(|e| CacheError::Disk {
                    dir: dir.clone(),
                    source: cacache::Error::IoError(e, "checking the cache format".into()),
                })?;
                // The sizes for the budget, and the tags of tagged objects for the index.
                let mut listed = Vec::new();
                let mut tagged = Vec::new();
                for m in cacache::index::ls(&dir).filter_map(Result::ok) {
                    if m.key.starts_with("o:")
                        && let Ok((_, extra)) = codec::decode(&m.key, m.metadata.clone())
                        && !extra.tags.is_empty()
                    {
                        tagged.push((m.key.clone(), extra.tags, extra.ticket));
                    }
                    listed.push((m.key, m.size as u64, m.time as u64, m.integrity));
                }
                Ok::<_, CacheError>((listed, tagged))
            })
            .await
            .map_err(|_| CacheError::WriterGone)??;
        }
        let seed = now_ms() << 16 | 1;
        let files = files::OpenFiles::new(cfg.disk.as_ref().map_or(0, |d| d.open_files));
        let (listed, tagged) = listed;
        for (variant, t, ticket) in tagged {
            tag_index.insert(&variant, &Tags::from(t), ticket);
        }
        Ok(Store {
            inner: Arc::new(Inner {
                cfg,
                mem,
                disk_meta,
                files,
                records,
                budget: disk::Budget::from_listing(listed),
                fences: fence::Fences::new(seed),
                writes: disk::Writes::default(),
                tags: tag_index,
                mem_evictions,
                disk_order: (0..DISK_ORDER_STRIPES)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
            }),
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    async fn record(&self, primary: &str) -> Option<Arc<VaryRecord>> {
        if let Some(r) = self.inner.records.get(primary).await {
            return Some(r);
        }
        let disk = self.inner.cfg.disk.as_ref()?;
        let meta = cacache::metadata(&disk.dir, keys::record_key(primary))
            .await
            .ok()??;
        let rec: VaryRecord = serde_json::from_value(meta.metadata).ok()?;
        let rec = Arc::new(rec);
        self.inner
            .records
            .insert(primary.to_string(), rec.clone())
            .await;
        Some(rec)
    }

    /// The stored object under one variant key if memory holds it or its decoded disk
    /// metadata: no disk read.
    async fn find_resident(&self, variant: &str) -> Option<Found> {
        if let Some(obj) = self.inner.mem.get(variant).await {
            return Some(Found::Memory(obj));
        }
        self.inner.cfg.disk.as_ref()?;
        let entry = self.inner.disk_meta.get(variant).await?;
        self.touch(&entry);
        Some(Found::Disk(entry))
    }

    /// Marks a disk hit for the budget's least-recently-used order: an atomic store once the
    /// entry is linked to its budget slot (the link takes the budget's lock, once).
    fn touch(&self, entry: &DiskEntry) {
        let used = match entry.used.get() {
            Some(used) => used,
            None => match self.inner.budget.last_use(&entry.variant) {
                Some(used) => entry.used.get_or_init(|| used),
                None => return, // not accounted yet: its account marks it used now
            },
        };
        used.store(now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    /// The stored object under one variant key: memory first, then disk (promoting small
    /// objects into memory). Memory hits take no global lock and copy no key.
    async fn find(&self, variant: &str) -> Option<Found> {
        if let Some(found) = self.find_resident(variant).await {
            return Some(found);
        }
        let disk = self.inner.cfg.disk.as_ref()?;
        let meta = cacache::metadata(&disk.dir, variant).await.ok()??;
        let integrity = meta.integrity.clone();
        let (stored, extra) = match codec::decode(variant, meta.metadata) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "dropping unreadable cache entry");
                self.remove_variant(variant).await;
                return None;
            }
        };
        self.inner.budget.touch(variant, now_ms());
        if stored.body_len <= self.inner.cfg.max_object_memory_bytes {
            // Promote: read and verify the whole (small) body now.
            match cacache::read_hash(&disk.dir, &integrity).await {
                Ok(body) if body.len() as u64 == stored.body_len => {
                    let obj = Arc::new(MemObject {
                        meta: stored,
                        body: Bytes::from(body),
                        ticket: extra.ticket,
                        tags: Tags::from(extra.tags),
                    });
                    self.inner
                        .mem
                        .insert(variant.to_string(), obj.clone())
                        .await;
                    return Some(Found::Memory(obj));
                }
                Ok(_) | Err(_) => {
                    tracing::warn!(key = %variant, "disk entry failed verification; dropping it");
                    self.remove_variant(variant).await;
                    return None;
                }
            }
        }
        let entry = Arc::new(DiskEntry {
            variant: variant.to_string(),
            meta: Arc::new(stored),
            integrity,
            ticket: extra.ticket,
            tags: Tags::from(extra.tags),
            used: std::sync::OnceLock::new(),
            file: std::sync::OnceLock::new(),
        });
        self.inner
            .disk_meta
            .insert(variant.to_string(), entry.clone())
            .await;
        Some(Found::Disk(entry))
    }

    /// Drops what memory holds of a variant's disk entry: its decoded metadata and open file.
    async fn forget_disk_entry(&self, variant: &str) {
        if self.inner.cfg.disk.is_none() {
            return; // neither is ever filled (a cache lookup per miss saved)
        }
        self.inner.disk_meta.invalidate(variant).await;
        self.inner.files.forget(variant);
    }

    fn disk_cfg(&self) -> Result<&DiskConfig, CacheError> {
        self.inner.cfg.disk.as_ref().ok_or(CacheError::Corrupt {
            key: String::new(),
            reason: "no disk tier".into(),
        })
    }

    #[allow(clippy::too_many_arguments)] // private: the two public constructors name them
    fn fill_variant(
        &self,
        primary: Option<String>,
        fence_key: &str,
        variant: String,
        mut meta: StoredMeta,
        vary_names: Vec<HeaderName>,
        ticket: Ticket,
    ) -> Fill {
        meta.replace_headers(keys::owned_headers(&meta.headers));
        let expected = crate::framing::declared_length(&meta.headers);
        let mut fill = Fill {
            store: self.clone(),
            primary,
            fence_key: fence_key.to_string(),
            tags: Tags::from(Vec::new()),
            variant,
            meta,
            vary_names,
            ticket,
            buf: bytes::BytesMut::new(),
            spill: None,
            received: 0,
            expected,
        };
        if expected.is_some_and(|n| n > self.inner.cfg.max_object_memory_bytes) {
            fill.start_spill();
        }
        fill
    }

    /// The store's tickets as the collapser reads them.
    pub fn purge_clock(&self) -> Arc<dyn crate::collapse::PurgeClock> {
        Arc::new(self.clone())
    }

    /// The generation of the body the disk holds for `variant`, if any.
    async fn disk_generation(&self, variant: &str) -> Option<u64> {
        let disk = self.inner.cfg.disk.as_ref()?;
        let meta = cacache::metadata(&disk.dir, variant).await.ok()??;
        codec::decode(variant, meta.metadata)
            .ok()
            .map(|(m, _)| m.generation)
    }

    /// Held while a variant's disk entry is published (background only, or a fill too large
    /// for memory as it ends): never on a hit.
    async fn disk_order(&self, variant: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        variant.hash(&mut h);
        let i = (h.finish() as usize) % DISK_ORDER_STRIPES;
        self.inner.disk_order[i].lock().await
    }

    /// Runs second-tier work (disk copies, records, eviction) off the request's path, counted
    /// so that shutdown can wait for it.
    fn background(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let guard = self.inner.writes.enter();
        tokio::spawn(async move {
            let _guard = guard;
            work.await;
        });
    }

    /// Accounts a stored object and its content file against the disk budget and, when over
    /// it, evicts the least recently used objects (picked on the blocking pool, removed here).
    async fn account(&self, key: &str, size: u64, content: cacache::Integrity) {
        let Some(disk) = &self.inner.cfg.disk else {
            return;
        };
        let accounted = self
            .inner
            .budget
            .account(key, size, content, now_ms(), disk.max_bytes);
        self.remove_content(accounted.orphan).await;
        if !accounted.over {
            return;
        }
        let store = self.clone();
        let spare = key.to_string();
        let max = disk.max_bytes;
        let picked =
            tokio::task::spawn_blocking(move || store.inner.budget.pick_victims(max, &spare)).await;
        let Ok(Some(victims)) = picked else {
            return;
        };
        for v in victims {
            self.inner.tags.remove(&v.key);
            self.inner.mem.invalidate(&*v.key).await;
            self.forget_disk_entry(&v.key).await;
            {
                // Not while a fill publishes this key (it would lose its new entry).
                let _order = self.disk_order(&v.key).await;
                // The whole index file goes (a removal through cacache only appends to it),
                // whether or not the content file is still there.
                match tokio::fs::remove_file(disk::bucket_path(&disk.dir, &v.key)).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(key = %v.key, error = %e, "evicted index entry kept"),
                }
            }
            self.remove_content(v.orphan).await;
        }
    }

    /// Removes a content file no stored object uses any more.
    async fn remove_content(&self, orphan: Option<cacache::Integrity>) {
        if let (Some(sri), Some(disk)) = (orphan, &self.inner.cfg.disk) {
            // Already gone (removed by hand, or a damaged file dropped) is fine.
            let _ = cacache::remove_hash(&disk.dir, &sri).await;
        }
    }
}

#[cfg(test)]
mod content_tests;
#[cfg(test)]
mod files_tests;
#[cfg(test)]
mod tag_tests;
#[cfg(test)]
mod vary_tests;
impl crate::collapse::PurgeClock for Store {
    fn now(&self) -> u64 {
        self.inner.fences.now()
    }

    fn last_purge(&self) -> u64 {
        self.inner.fences.last()
    }
}

#[cfg(test)]
mod tests;
