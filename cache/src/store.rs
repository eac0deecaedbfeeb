//! Tiered storage: memory (moka, weighted by bytes, TinyLFU admission) over disk (cacache, with
//! our own byte budget and least-recently-used eviction, since cacache has no limit of its own).
//!
//! Layout of keys: a *primary* key names a URL; a *variant* key names one stored response of it
//! (the primary key plus the request's values of the headers `Vary` named). A small record per
//! primary key lists the Vary header names and the variants stored, so that lookups can build
//! the variant key and invalidation can find every variant. Records and objects are kept in both
//! tiers; the disk copies bring everything back after a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::encoding::Coding;
use crate::rules::{self, StoredMeta};

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
}

/// Where a found object's body is.
#[derive(Debug, Clone)]
pub enum Found {
    Memory(Arc<MemObject>),
    Disk {
        meta: Box<StoredMeta>,
        variant: String,
        /// Content address: opening by hash skips a second index read.
        integrity: cacache::Integrity,
    },
}

impl Found {
    /// The variant key and content hash of a disk object.
    fn disk_ref(&self) -> Result<(&str, &cacache::Integrity), CacheError> {
        match self {
            Found::Disk {
                variant, integrity, ..
            } => Ok((variant, integrity)),
            Found::Memory(_) => Err(CacheError::Corrupt {
                key: String::new(),
                reason: "not a disk object".into(),
            }),
        }
    }

    pub fn meta(&self) -> &StoredMeta {
        match self {
            Found::Memory(o) => &o.meta,
            Found::Disk { meta, .. } => meta,
        }
    }

    pub fn variant(&self, primary: &str) -> String {
        match self {
            Found::Memory(o) => variant_key(primary, &o.meta.vary),
            Found::Disk { variant, .. } => variant.clone(),
        }
    }
}

#[derive(Debug)]
pub enum Lookup {
    /// Nothing stored for this URL.
    Miss,
    /// The URL has stored variants, but none for this request's Vary values.
    VaryMiss,
    Hit(Found),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct VaryRecord {
    names: Vec<String>,
    variants: Vec<String>,
}

#[derive(Debug, Default)]
struct DiskIndex {
    entries: HashMap<String, (u64, u64)>, // key -> (bytes, last use in ms since epoch)
    total: u64,
}

/// A disk object's decoded index entry, kept in memory so that a disk hit reads the index once.
#[derive(Debug)]
struct DiskEntry {
    meta: StoredMeta,
    integrity: cacache::Integrity,
}

struct Inner {
    cfg: StoreConfig,
    mem: moka::future::Cache<String, Arc<MemObject>>,
    disk_meta: moka::future::Cache<String, Arc<DiskEntry>>,
    records: moka::future::Cache<String, Arc<VaryRecord>>,
    disk_index: Mutex<DiskIndex>,
}

/// The tiered store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A copy of `headers` whose values own their bytes. Values parsed by hyper are slices of the
/// connection's read buffer; keeping them in the cache kept a whole buffer (8 KiB and more)
/// alive per stored object, which made RSS reach 2.6x the memory budget.
fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let Ok(mut v) = HeaderValue::from_bytes(value.as_bytes()) {
            v.set_sensitive(value.is_sensitive());
            out.append(name.clone(), v);
        }
    }
    out
}

/// What a cache entry costs beyond its key, headers and body: moka's entry and deque nodes,
/// the `Arc`, `StoredMeta` and the `HeaderMap` tables. Weighing entries by body and header
/// bytes alone let RSS reach twice the budget; this estimate errs on the high side on purpose.
const ENTRY_OVERHEAD: usize = 768;

/// Bytes an entry really occupies, as far as we can tell without asking the allocator.
fn weight(key_len: usize, meta: &StoredMeta, body_len: usize) -> u32 {
    // Per header: the bucket in the map (~88 B), the value's own allocation and its bytes.
    let headers: usize = meta
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 128)
        .sum();
    let vary: usize = meta
        .vary
        .iter()
        .map(|(n, v)| n.as_str().len() + v.as_ref().map_or(0, String::len) + 64)
        .sum();
    // The key is held twice: by moka and in the URL's Vary record.
    let n = ENTRY_OVERHEAD + 2 * key_len + headers + vary + body_len;
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub fn variant_key(primary: &str, vary: &[(HeaderName, Option<String>)]) -> String {
    let mut k = String::with_capacity(primary.len() + 2);
    k.push_str("o:");
    k.push_str(primary);
    for (name, value) in vary {
        k.push('\n');
        k.push_str(name.as_str());
        k.push('=');
        if let Some(v) = value {
            k.push_str(v);
        } else {
            k.push('\u{0}');
        }
    }
    k
}

/// Where the `coding` variant of an identity variant is stored. It starts with the identity's
/// key, so disk eviction treats it as an object like any other.
pub fn encoded_key(identity_variant: &str, coding: Coding) -> String {
    format!("{identity_variant}\ncontent-coding={coding}")
}

/// Tells bodies apart: every identity fill gets a new number, kept through revalidation
/// (which does not change the body) and copied into its encoded variants.
fn next_generation() -> u64 {
    static NEXT: std::sync::OnceLock<std::sync::atomic::AtomicU64> = std::sync::OnceLock::new();
    let next = NEXT.get_or_init(|| {
        // Seeded from the clock so that numbers from an earlier process (on disk) do not repeat.
        std::sync::atomic::AtomicU64::new(now_ms() << 16 | 1)
    });
    next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn record_key(primary: &str) -> String {
    format!("v:{primary}")
}

impl Store {
    /// Opens the store; with a disk tier, rebuilds the size index from what is on disk.
    pub async fn open(cfg: StoreConfig) -> Result<Store, CacheError> {
        // `memory_bytes` covers everything the store keeps in memory: objects get three
        // quarters, the Vary records and decoded disk metadata an eighth each.
        let mem = moka::future::Cache::builder()
            .max_capacity(cfg.memory_bytes / 4 * 3)
            .weigher(|k: &String, v: &Arc<MemObject>| weight(k.len(), &v.meta, v.body.len()))
            .build();
        let records = moka::future::Cache::builder()
            .max_capacity((cfg.memory_bytes / 8).max(256 * 1024))
            .weigher(|k: &String, v: &Arc<VaryRecord>| {
                let n: usize = v.variants.iter().map(|s| s.len() + 48).sum::<usize>()
                    + v.names.iter().map(|s| s.len() + 48).sum::<usize>()
                    + k.len()
                    + ENTRY_OVERHEAD;
                u32::try_from(n).unwrap_or(u32::MAX)
            })
            .build();
        let disk_meta = moka::future::Cache::builder()
            .max_capacity((cfg.memory_bytes / 8).max(256 * 1024))
            .weigher(|k: &String, v: &Arc<DiskEntry>| weight(k.len(), &v.meta, 0))
            .build();
        let mut index = DiskIndex::default();
        if let Some(disk) = &cfg.disk {
            let dir = disk.dir.clone();
            let listed = tokio::task::spawn_blocking(move || {
                cacache::index::ls(&dir)
                    .filter_map(Result::ok)
                    .map(|m| (m.key, m.size as u64, m.time as u64))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            for (key, size, time) in listed {
                index.total += size;
                index.entries.insert(key, (size, time));
            }
        }
        Ok(Store {
            inner: Arc::new(Inner {
                cfg,
                mem,
                disk_meta,
                records,
                disk_index: Mutex::new(index),
            }),
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// Bytes held by the memory tier (approximate, as moka weighs them).
    pub async fn memory_bytes(&self) -> u64 {
        self.inner.mem.run_pending_tasks().await;
        self.inner.mem.weighted_size()
    }

    pub fn disk_bytes(&self) -> u64 {
        self.inner.disk_index.lock().map_or(0, |i| i.total)
    }

    async fn record(&self, primary: &str) -> Option<Arc<VaryRecord>> {
        if let Some(r) = self.inner.records.get(primary).await {
            return Some(r);
        }
        let disk = self.inner.cfg.disk.as_ref()?;
        let meta = cacache::metadata(&disk.dir, record_key(primary))
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

    /// Finds the stored response for a request: memory first, then disk (promoting small
    /// objects into memory).
    pub async fn lookup(&self, primary: &str, req_headers: &HeaderMap) -> Lookup {
        let Some(rec) = self.record(primary).await else {
            return Lookup::Miss;
        };
        let names: Vec<HeaderName> = rec
            .names
            .iter()
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        let vary = rules::vary_values(req_headers, &names);
        match self.find(variant_key(primary, &vary)).await {
            Some(found) => Lookup::Hit(found),
            None if names.is_empty() => Lookup::Miss,
            None => Lookup::VaryMiss,
        }
    }

    /// The stored object under one variant key: memory first, then disk (promoting small
    /// objects into memory).
    async fn find(&self, variant: String) -> Option<Found> {
        if let Some(obj) = self.inner.mem.get(&variant).await {
            self.touch(&variant);
            return Some(Found::Memory(obj));
        }
        let disk = self.inner.cfg.disk.as_ref()?;
        if let Some(entry) = self.inner.disk_meta.get(&variant).await {
            self.touch(&variant);
            return Some(Found::Disk {
                meta: Box::new(entry.meta.clone()),
                variant,
                integrity: entry.integrity.clone(),
            });
        }
        let meta = cacache::metadata(&disk.dir, &variant).await.ok()??;
        let integrity = meta.integrity.clone();
        let stored = match decode_meta(&variant, meta.metadata) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "dropping unreadable cache entry");
                self.remove_variant(&variant).await;
                return None;
            }
        };
        self.touch(&variant);
        if stored.body_len <= self.inner.cfg.max_object_memory_bytes {
            // Promote: read and verify the whole (small) body now.
            match cacache::read_hash(&disk.dir, &integrity).await {
                Ok(body) if body.len() as u64 == stored.body_len => {
                    let obj = Arc::new(MemObject {
                        meta: stored,
                        body: Bytes::from(body),
                    });
                    self.inner.mem.insert(variant, obj.clone()).await;
                    return Some(Found::Memory(obj));
                }
                Ok(_) | Err(_) => {
                    tracing::warn!(key = %variant, "disk entry failed verification; dropping it");
                    self.remove_variant(&variant).await;
                    return None;
                }
            }
        }
        self.inner
            .disk_meta
            .insert(
                variant.clone(),
                Arc::new(DiskEntry {
                    meta: stored.clone(),
                    integrity: integrity.clone(),
                }),
            )
            .await;
        Some(Found::Disk {
            meta: Box::new(stored),
            variant,
            integrity,
        })
    }

    /// The stored `coding` variant of an identity object, if it was produced from the same
    /// body: a variant made from an older body of the URL (before a refetch) is not returned.
    pub async fn lookup_encoded(
        &self,
        primary: &str,
        identity: &Found,
        coding: Coding,
    ) -> Option<Found> {
        let generation = identity.meta().generation;
        if generation == 0 {
            return None;
        }
        let found = self
            .find(encoded_key(&identity.variant(primary), coding))
            .await?;
        (found.meta().generation == generation).then_some(found)
    }

    /// Starts storing the `coding` variant of an identity object, given the identity's variant
    /// key and generation (see [`Store::lookup_encoded`]). Its metadata only ties it to the
    /// identity's body: responses take their header fields from the identity, which
    /// revalidation keeps current.
    pub fn fill_encoded(&self, identity_variant: &str, generation: u64, coding: Coding) -> Fill {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_ENCODING,
            HeaderValue::from_static(coding.as_str()),
        );
        let now = SystemTime::now();
        let meta = StoredMeta {
            status: StatusCode::OK,
            headers,
            request_time: now,
            response_time: now,
            vary: Vec::new(),
            body_len: 0,
            generation,
        };
        self.fill_variant(
            None,
            encoded_key(identity_variant, coding),
            meta,
            Vec::new(),
        )
    }

    /// Opens a disk body for streaming. The reader verifies integrity at its end.
    pub async fn open_disk(&self, found: &Found) -> Result<cacache::Reader, CacheError> {
        let disk = self.disk_cfg()?;
        let (variant, integrity) = found.disk_ref()?;
        match cacache::Reader::open_hash(&disk.dir, integrity.clone()).await {
            Ok(r) => Ok(r),
            Err(source) => {
                // Content gone (evicted under another key that shared it, or removed by hand).
                self.remove_variant(variant).await;
                Err(CacheError::Disk {
                    dir: disk.dir.clone(),
                    source,
                })
            }
        }
    }

    /// Reads a whole (small) disk object in one trip to the blocking pool, verifying its
    /// integrity. Streaming through an async reader costs one such trip per read call, which
    /// dominates small disk hits.
    pub async fn read_disk(&self, found: &Found) -> Result<Bytes, CacheError> {
        let disk = self.disk_cfg()?.clone();
        let (variant, integrity) = found.disk_ref()?;
        if let Some(body) = read_page_cached(&disk.dir, integrity, found.meta().body_len) {
            return Ok(Bytes::from(body));
        }
        let sri = integrity.clone();
        let dir = disk.dir.clone();
        let read = tokio::task::spawn_blocking(move || cacache::read_hash_sync(&dir, &sri)).await;
        match read {
            Ok(Ok(body)) => Ok(Bytes::from(body)),
            Ok(Err(source)) => {
                self.remove_variant(variant).await;
                Err(CacheError::Disk {
                    dir: disk.dir,
                    source,
                })
            }
            Err(_) => Err(CacheError::WriterGone),
        }
    }

    fn disk_cfg(&self) -> Result<&DiskConfig, CacheError> {
        self.inner.cfg.disk.as_ref().ok_or(CacheError::Corrupt {
            key: String::new(),
            reason: "no disk tier".into(),
        })
    }

    fn touch(&self, key: &str) {
        if let Ok(mut idx) = self.inner.disk_index.lock()
            && let Some(e) = idx.entries.get_mut(key)
        {
            e.1 = now_ms();
        }
    }

    /// Starts storing a response. Feed it with [`Fill::push`] and complete it with
    /// [`Fill::finish`]; dropping it unfinished stores nothing.
    pub fn fill(&self, primary: &str, mut meta: StoredMeta, vary_names: Vec<HeaderName>) -> Fill {
        meta.generation = next_generation();
        let variant = variant_key(primary, &meta.vary);
        self.fill_variant(Some(primary.to_string()), variant, meta, vary_names)
    }

    fn fill_variant(
        &self,
        primary: Option<String>,
        variant: String,
        mut meta: StoredMeta,
        vary_names: Vec<HeaderName>,
    ) -> Fill {
        meta.headers = owned_headers(&meta.headers);
        let expected = meta
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut fill = Fill {
            store: self.clone(),
            primary,
            variant,
            meta,
            vary_names,
            buf: BytesMut::new(),
            spill: None,
            received: 0,
            expected,
        };
        if expected.is_some_and(|n| n > self.inner.cfg.max_object_memory_bytes) {
            fill.start_spill();
        }
        fill
    }

    /// Replaces the stored metadata of a variant (after a 304 freshened it).
    pub async fn update_meta(&self, primary: &str, found: &Found, mut meta: StoredMeta) {
        meta.headers = owned_headers(&meta.headers);
        let variant = found.variant(primary);
        self.inner.disk_meta.invalidate(&variant).await;
        if let Found::Memory(obj) = found {
            let updated = Arc::new(MemObject {
                meta: meta.clone(),
                body: obj.body.clone(),
            });
            self.inner.mem.insert(variant.clone(), updated).await;
        }
        if let Some(disk) = &self.inner.cfg.disk
            && let Ok(Some(existing)) = cacache::metadata(&disk.dir, &variant).await
        {
            let opts = cacache::WriteOpts::new()
                .integrity(existing.integrity)
                .size(existing.size)
                .metadata(encode_meta(&meta));
            if let Err(e) = cacache::index::insert_async(&disk.dir, &variant, opts).await {
                tracing::warn!(error = %e, "could not update stored headers on disk");
            }
        }
    }

    /// Removes every variant of a URL from both tiers.
    pub async fn invalidate(&self, primary: &str) -> usize {
        let Some(rec) = self.record(primary).await else {
            return 0;
        };
        for v in &rec.variants {
            self.remove_variant(v).await;
            self.remove_encodings(v, None).await;
        }
        self.inner.records.invalidate(primary).await;
        if let Some(disk) = &self.inner.cfg.disk {
            let _ = cacache::remove(&disk.dir, record_key(primary)).await;
            self.forget(&record_key(primary));
        }
        rec.variants.len()
    }

    async fn remove_variant(&self, variant: &str) {
        self.inner.mem.invalidate(variant).await;
        self.inner.disk_meta.invalidate(variant).await;
        if let Some(disk) = &self.inner.cfg.disk {
            // Index entry only: content is shared by hash with identical bodies under other keys;
            // eviction removes content (see `evict`).
            let _ = cacache::remove(&disk.dir, variant).await;
            self.forget(variant);
        }
    }

    /// Removes the encoded variants of one identity variant; with `keep = Some(g)`, only those
    /// made from another body than generation `g` (variants of a new body, made while it was
    /// stored, stay). Disk entries are only looked at if the index knows them: removing an
    /// absent key would still append to the disk index.
    async fn remove_encodings(&self, variant: &str, keep: Option<u64>) {
        let stale = |generation: u64| keep != Some(generation);
        for coding in Coding::ALL {
            let key = encoded_key(variant, coding);
            if let Some(obj) = self.inner.mem.get(&key).await
                && stale(obj.meta.generation)
            {
                self.inner.mem.invalidate(&key).await;
            }
            let on_disk = self
                .inner
                .disk_index
                .lock()
                .is_ok_and(|i| i.entries.contains_key(&key));
            let Some(disk) = self.inner.cfg.disk.as_ref().filter(|_| on_disk) else {
                continue;
            };
            let remove = keep.is_none()
                || match cacache::metadata(&disk.dir, &key).await {
                    Ok(Some(m)) => {
                        decode_meta(&key, m.metadata).map_or(true, |m| stale(m.generation))
                    }
                    _ => false,
                };
            if remove {
                self.remove_variant(&key).await;
            }
        }
    }

    fn forget(&self, key: &str) {
        if let Ok(mut idx) = self.inner.disk_index.lock()
            && let Some((size, _)) = idx.entries.remove(key)
        {
            idx.total = idx.total.saturating_sub(size);
        }
    }

    /// Lists `variant` in the URL's Vary record; true when it was there already (a new body
    /// replaced an old one).
    async fn commit_record(&self, primary: &str, names: &[HeaderName], variant: &str) -> bool {
        let names: Vec<String> = names.iter().map(|n| n.as_str().to_string()).collect();
        let mut rec = self
            .record(primary)
            .await
            .map(|r| (*r).clone())
            .unwrap_or_default();
        if rec.names != names {
            // The origin changed what it varies on: older variants are unreachable now.
            for old in std::mem::take(&mut rec.variants) {
                if old != variant {
                    self.remove_variant(&old).await;
                    self.remove_encodings(&old, None).await;
                }
            }
            rec.names = names;
        }
        let replaced = rec.variants.iter().any(|v| v == variant);
        if !replaced {
            rec.variants.push(variant.to_string());
        }
        let rec = Arc::new(rec);
        self.inner
            .records
            .insert(primary.to_string(), rec.clone())
            .await;
        if let Some(disk) = &self.inner.cfg.disk {
            let json = serde_json::to_value(&*rec).unwrap_or_default();
            let key = record_key(primary);
            match cacache::WriteOpts::new()
                .metadata(json)
                .open(&disk.dir, &key)
                .await
            {
                Ok(w) => {
                    if let Err(e) = w.commit().await {
                        tracing::warn!(error = %e, "could not write vary record");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not write vary record"),
            }
        }
        replaced
    }

    fn account(&self, key: &str, size: u64) -> Vec<String> {
        let Some(disk) = &self.inner.cfg.disk else {
            return Vec::new();
        };
        let Ok(mut idx) = self.inner.disk_index.lock() else {
            return Vec::new();
        };
        if let Some((old, _)) = idx.entries.insert(key.to_string(), (size, now_ms())) {
            idx.total = idx.total.saturating_sub(old);
        }
        idx.total += size;
        if idx.total <= disk.max_bytes {
            return Vec::new();
        }
        // Evict least recently used objects down to 90% of the budget, so that eviction runs in
        // batches rather than on every insert.
        let target = disk.max_bytes / 10 * 9;
        let mut by_age: Vec<(u64, String, u64)> = idx
            .entries
            .iter()
            .filter(|(k, _)| k.starts_with("o:") && k.as_str() != key)
            .map(|(k, (s, t))| (*t, k.clone(), *s))
            .collect();
        by_age.sort_unstable();
        let mut victims = Vec::new();
        for (_, k, s) in by_age {
            if idx.total <= target {
                break;
            }
            idx.entries.remove(&k);
            idx.total = idx.total.saturating_sub(s);
            victims.push(k);
        }
        victims
    }

    async fn evict(&self, victims: Vec<String>) {
        let Some(disk) = &self.inner.cfg.disk else {
            return;
        };
        for v in victims {
            self.inner.mem.invalidate(&v).await;
            self.inner.disk_meta.invalidate(&v).await;
            let _ = cacache::RemoveOpts::new()
                .remove_fully(true)
                .remove(&disk.dir, &v)
                .await;
        }
    }
}

/// An object being stored while it streams to the client.
pub struct Fill {
    store: Store,
    /// `None` for encoded variants, which are not listed in the URL's Vary record.
    primary: Option<String>,
    variant: String,
    meta: StoredMeta,
    vary_names: Vec<HeaderName>,
    buf: BytesMut,
    spill: Option<Spill>,
    received: u64,
    expected: Option<u64>,
}

struct Spill {
    tx: mpsc::Sender<Bytes>,
    done: tokio::sync::oneshot::Receiver<Result<(cacache::Integrity, u64), CacheError>>,
}

impl Fill {
    /// The key this fill stores under.
    pub fn variant(&self) -> &str {
        &self.variant
    }

    /// The generation of the body being stored (see [`StoredMeta::generation`]).
    pub fn generation(&self) -> u64 {
        self.meta.generation
    }

    fn start_spill(&mut self) {
        let Some(disk) = self.store.inner.cfg.disk.clone() else {
            return;
        };
        let (tx, mut rx) = mpsc::channel::<Bytes>(16);
        let (done_tx, done) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let io = |e: std::io::Error| CacheError::Disk {
                dir: disk.dir.clone(),
                source: cacache::Error::IoError(e, "writing cache body".into()),
            };
            let result = async {
                // Content only, addressed by hash: nothing is visible under a key until
                // `finish` publishes the index entry with its final size and metadata.
                let mut w = cacache::WriteOpts::new()
                    .open_hash(&disk.dir)
                    .await
                    .map_err(|source| CacheError::Disk {
                        dir: disk.dir.clone(),
                        source,
                    })?;
                let mut n = 0u64;
                while let Some(chunk) = rx.recv().await {
                    n += chunk.len() as u64;
                    w.write_all(&chunk).await.map_err(io)?;
                }
                let sri = w.commit().await.map_err(|source| CacheError::Disk {
                    dir: disk.dir.clone(),
                    source,
                })?;
                Ok::<_, CacheError>((sri, n))
            }
            .await;
            let _ = done_tx.send(result);
        });
        if !self.buf.is_empty() {
            let first = self.buf.split().freeze();
            let _ = tx.try_send(first);
        }
        self.spill = Some(Spill { tx, done });
    }

    /// Adds a body chunk. Awaits only when spilling to disk and the disk is behind.
    pub async fn push(&mut self, chunk: Bytes) -> Result<(), CacheError> {
        self.received += chunk.len() as u64;
        if self.spill.is_none() && self.received > self.store.inner.cfg.max_object_memory_bytes {
            if self.store.inner.cfg.disk.is_none() {
                return Err(CacheError::TooLarge {
                    limit: self.store.inner.cfg.max_object_memory_bytes,
                });
            }
            self.start_spill();
        }
        match &self.spill {
            Some(s) => s.tx.send(chunk).await.map_err(|_| CacheError::WriterGone),
            None => {
                self.buf.extend_from_slice(&chunk);
                Ok(())
            }
        }
    }

    /// The body ended cleanly: verify its length and make the object visible.
    pub async fn finish(mut self) -> Result<(), CacheError> {
        if let Some(expected) = self.expected
            && expected != self.received
        {
            return Err(CacheError::Truncated {
                got: self.received,
                expected,
            });
        }
        self.meta.body_len = self.received;
        let size = self.received;
        match self.spill.take() {
            Some(spill) => {
                drop(spill.tx);
                let (sri, written) = spill.done.await.map_err(|_| CacheError::WriterGone)??;
                if written != size {
                    return Err(CacheError::Truncated {
                        got: written,
                        expected: size,
                    });
                }
                let disk = self.store.disk_cfg()?;
                let opts = cacache::WriteOpts::new()
                    .integrity(sri)
                    .size(usize::try_from(size).unwrap_or(usize::MAX))
                    .metadata(encode_meta(&self.meta));
                cacache::index::insert_async(&disk.dir, &self.variant, opts)
                    .await
                    .map_err(|source| CacheError::Disk {
                        dir: disk.dir.clone(),
                        source,
                    })?;
            }
            None => {
                // A buffer grown by doubling may hold up to twice the body: keep only the body.
                let body = if self.buf.capacity() > self.buf.len() + self.buf.len() / 8 + 64 {
                    Bytes::copy_from_slice(&self.buf)
                } else {
                    self.buf.split().freeze()
                };
                let obj = Arc::new(MemObject {
                    meta: self.meta.clone(),
                    body: body.clone(),
                });
                self.store.inner.mem.insert(self.variant.clone(), obj).await;
                if let Some(disk) = self.store.inner.cfg.disk.clone() {
                    let opts = cacache::WriteOpts::new()
                        .metadata(encode_meta(&self.meta))
                        .size(body.len());
                    match opts.open(&disk.dir, &self.variant).await {
                        Ok(mut w) => {
                            let ok = w.write_all(&body).await.is_ok();
                            if ok && let Err(e) = w.commit().await {
                                tracing::warn!(error = %e, "disk write failed; object stays in memory only");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "disk write failed; object stays in memory only")
                        }
                    }
                }
            }
        }
        // The decoded metadata of the body this one replaces must not outlive it.
        self.store.inner.disk_meta.invalidate(&self.variant).await;
        let victims = self.store.account(&self.variant, size);
        self.store.evict(victims).await;
        if let Some(primary) = &self.primary {
            let replaced = self
                .store
                .commit_record(primary, &self.vary_names, &self.variant)
                .await;
            // The encoded variants of the body this one replaced are dead weight now. (A new
            // variant has none: skipping the check keeps misses cheap.)
            if replaced {
                self.store
                    .remove_encodings(&self.variant, Some(self.meta.generation))
                    .await;
            }
        }
        Ok(())
    }
}

/// Where cacache keeps content with this hash (its on-disk layout, pinned by a test).
fn content_path(dir: &Path, sri: &cacache::Integrity) -> PathBuf {
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

/// Objects up to this size are re-hashed when read from the page cache; larger ones are length
/// checked (their hash was verified when written, and streaming reads verify it again).
const REHASH_MAX: u64 = 64 * 1024;

/// Reads a disk object on the calling thread only if the kernel has all of it in the page
/// cache: `RWF_NOWAIT` makes the read fail with EAGAIN instead of waiting for the disk, so the
/// runtime thread never blocks on I/O. `None` means "take the slow path".
fn read_page_cached(dir: &Path, sri: &cacache::Integrity, len: u64) -> Option<Vec<u8>> {
    let len = usize::try_from(len).ok()?;
    let file = std::fs::File::open(content_path(dir, sri)).ok()?;
    let mut buf = vec![0u8; len];
    let mut off = 0;
    while off < len {
        let mut slices = [std::io::IoSliceMut::new(&mut buf[off..])];
        match rustix::io::preadv2(
            &file,
            &mut slices,
            off as u64,
            rustix::io::ReadWriteFlags::NOWAIT,
        ) {
            Ok(0) | Err(_) => return None,
            Ok(n) => off += n,
        }
    }
    // One more byte would mean the file is longer than recorded.
    let mut extra = [0u8; 1];
    let mut slices = [std::io::IoSliceMut::new(&mut extra)];
    match rustix::io::preadv2(
        &file,
        &mut slices,
        len as u64,
        rustix::io::ReadWriteFlags::NOWAIT,
    ) {
        Ok(0) => {}
        _ => return None,
    }
    if len as u64 <= REHASH_MAX && sri.check(&buf).is_err() {
        return None;
    }
    Some(buf)
}

#[derive(Serialize, Deserialize)]
struct MetaJson {
    status: u16,
    headers: Vec<(String, String)>,
    request_time_ms: u64,
    response_time_ms: u64,
    vary: Vec<(String, Option<String>)>,
    body_len: u64,
    #[serde(default)]
    generation: u64,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn encode_meta(m: &StoredMeta) -> serde_json::Value {
    let json = MetaJson {
        status: m.status.as_u16(),
        // Stored header values are visible ASCII in practice; others are not kept.
        headers: m
            .headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        request_time_ms: ms(m.request_time),
        response_time_ms: ms(m.response_time),
        vary: m
            .vary
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.clone()))
            .collect(),
        body_len: m.body_len,
        generation: m.generation,
    };
    serde_json::to_value(json).unwrap_or_default()
}

fn decode_meta(key: &str, v: serde_json::Value) -> Result<StoredMeta, CacheError> {
    let corrupt = |reason: String| CacheError::Corrupt {
        key: key.to_string(),
        reason,
    };
    let j: MetaJson = serde_json::from_value(v).map_err(|e| corrupt(e.to_string()))?;
    let mut headers = HeaderMap::new();
    for (n, v) in j.headers {
        let name = HeaderName::from_bytes(n.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
        let value = HeaderValue::from_str(&v).map_err(|e| corrupt(e.to_string()))?;
        headers.append(name, value);
    }
    let mut vary = Vec::new();
    for (n, v) in j.vary {
        vary.push((
            HeaderName::from_bytes(n.as_bytes()).map_err(|e| corrupt(e.to_string()))?,
            v,
        ));
    }
    Ok(StoredMeta {
        status: StatusCode::from_u16(j.status).map_err(|e| corrupt(e.to_string()))?,
        headers,
        request_time: UNIX_EPOCH + Duration::from_millis(j.request_time_ms),
        response_time: UNIX_EPOCH + Duration::from_millis(j.response_time_ms),
        vary,
        body_len: j.body_len,
        generation: j.generation,
    })
}

#[cfg(test)]
mod tests;
