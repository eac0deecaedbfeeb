//! The store's side of the `Storage` seam: lookups, fills, freshening, purges and disk reads.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::files::{OpenFile, ReadFail};
use super::{
    CacheError, Fenced, Fill, Found, Lookup, MemObject, Store, Ticket, codec, disk, encoded_key,
    keys, now_ms, variant_key,
};
use crate::encoding::Coding;
use crate::purge::{Purge, PurgeMode, PurgeReport, PurgeScope};
use crate::rules::{self, StoredMeta};
use crate::storage::Storage;

/// Objects a tag purge removes between pauses, and the pause.
const RECLAIM_BATCH: usize = 64;
const RECLAIM_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

impl Storage for Store {
    /// Bytes held by the memory tier (approximate, as moka weighs them).
    async fn memory_bytes(&self) -> u64 {
        self.inner.mem.run_pending_tasks().await;
        self.inner.mem.weighted_size()
    }

    fn memory_bytes_now(&self) -> u64 {
        self.inner.mem.weighted_size()
    }

    fn tier_stats(&self) -> crate::storage::TierStats {
        let i = &self.inner;
        crate::storage::TierStats {
            memory_objects: i.mem.entry_count(),
            memory_bytes: i.mem.weighted_size(),
            memory_budget: i.cfg.memory_bytes / 4 * 3,
            memory_evictions: i.mem_evictions.load(std::sync::atomic::Ordering::Relaxed),
            disk_objects: if i.cfg.disk.is_some() {
                i.budget.objects()
            } else {
                0
            },
            disk_bytes: i.budget.total(),
            disk_budget: i.cfg.disk.as_ref().map_or(0, |d| d.max_bytes),
            disk_evictions: i.budget.evicted(),
        }
    }

    fn disk_bytes(&self) -> u64 {
        self.inner.budget.total()
    }

    /// A ticket for an origin request that may fill the cache: take it before sending.
    fn ticket(&self) -> Ticket {
        self.inner.fences.ticket()
    }

    /// Finds the stored response for a request: memory first, then disk (promoting small
    /// objects into memory). An object a purge fenced off is a miss.
    async fn lookup(&self, primary: &str, req_headers: &HeaderMap) -> Lookup {
        // Most URLs never vary: their one variant's key is the URL's own, and a resident
        // object there is current without the Vary record (a fill that starts to vary
        // removes it, `commit_record`). Skipping the record saved ~1.5k instructions a hit.
        let plain = variant_key(primary, &[]);
        if let Some(found) = self.find_resident(&plain).await {
            return self.unless_fenced(primary, &plain, found).await;
        }
        let Some(rec) = self.record(primary).await else {
            return Lookup::Miss;
        };
        if rec.names.is_empty() {
            return match self.find(&plain).await {
                Some(found) => self.unless_fenced(primary, &plain, found).await,
                None => Lookup::Miss,
            };
        }
        let names: Vec<HeaderName> = rec
            .names
            .iter()
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        let vary = rules::vary_values(req_headers, &names);
        let variant = variant_key(primary, &vary);
        match self.find(&variant).await {
            Some(found) => self.unless_fenced(primary, &variant, found).await,
            None => Lookup::VaryMiss { variant },
        }
    }

    /// The stored `coding` variant of an identity object, if it was produced from the same
    /// body: a variant made from an older body of the URL (before a refetch) is not returned.
    async fn lookup_encoded(
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
            .find(&encoded_key(&identity.variant(primary), coding))
            .await?;
        (found.meta().generation == generation).then_some(found)
    }

    /// Starts storing the `coding` variant of an identity object, given the identity's variant
    /// key and generation (see [`Store::lookup_encoded`]). Its metadata only ties it to the
    /// identity's body: responses take their header fields from the identity, which
    /// revalidation keeps current.
    fn fill_encoded(
        &self,
        primary: &str,
        identity_variant: &str,
        generation: u64,
        coding: Coding,
    ) -> Fill {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_ENCODING,
            HeaderValue::from_static(coding.as_str()),
        );
        let now = UNIX_EPOCH + std::time::Duration::from_millis(now_ms());
        let meta = StoredMeta {
            status: StatusCode::OK,
            headers,
            request_time: now,
            response_time: now,
            vary: Vec::new(),
            body_len: 0,
            generation,
            parsed: Default::default(),
        };
        let ticket = self.ticket();
        self.fill_variant(
            None,
            primary,
            encoded_key(identity_variant, coding),
            meta,
            Vec::new(),
            ticket,
        )
    }

    /// Opens a disk body for streaming. The reader verifies integrity at its end.
    async fn open_disk(&self, found: &Found) -> Result<cacache::Reader, CacheError> {
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

    /// Reads a whole (small) disk object. Warm (its file open and verified): one read on the
    /// calling thread when the page cache holds it all, else one trip to the blocking pool.
    /// Cold: open, read and verify the hash, here if the object is small and in the page
    /// cache, else on the blocking pool; the open file is kept for the next hit.
    async fn read_disk(&self, found: &Found) -> Result<Bytes, CacheError> {
        let disk = self.disk_cfg()?;
        let (variant, integrity) = found.disk_ref()?;
        let len = found.meta().body_len;
        let gone = |source: std::io::Error| CacheError::Disk {
            dir: disk.dir.clone(),
            source: cacache::Error::IoError(source, format!("reading {variant}")),
        };
        if let Some(file) = self.open_file(found, variant, integrity) {
            match file.read(true) {
                Ok(body) => return Ok(Bytes::from(body)),
                Err(ReadFail::WouldBlock) => {
                    match tokio::task::spawn_blocking(move || file.read(false)).await {
                        Ok(Ok(body)) => return Ok(Bytes::from(body)),
                        Ok(Err(_)) => {}
                        Err(_) => return Err(CacheError::WriterGone),
                    }
                }
                Err(ReadFail::Bad) => {}
            }
            // Shorter than when it was verified: not served, and not kept.
            self.remove_variant(variant).await;
            return Err(gone(std::io::ErrorKind::UnexpectedEof.into()));
        }
        // Hashing a large body would hold this thread: the blocking pool verifies it.
        let inline = if len <= disk::VERIFY_INLINE_MAX {
            OpenFile::open_verified(&disk.dir, integrity, len, true)
        } else {
            Err(ReadFail::WouldBlock)
        };
        let opened = match inline {
            Err(ReadFail::WouldBlock) => {
                let (dir, sri) = (disk.dir.clone(), integrity.clone());
                tokio::task::spawn_blocking(move || OpenFile::open_verified(&dir, &sri, len, false))
                    .await
                    .map_err(|_| CacheError::WriterGone)?
            }
            other => other,
        };
        match opened {
            Ok((file, body)) => {
                if let (Some(file), Found::Disk(e)) =
                    (self.inner.files.insert(variant, file), found)
                {
                    let _ = e.file.set(Arc::downgrade(&file));
                }
                Ok(Bytes::from(body))
            }
            Err(_) => {
                tracing::warn!(key = %variant, "disk entry failed verification; dropping it");
                self.remove_variant(variant).await;
                Err(gone(std::io::ErrorKind::InvalidData.into()))
            }
        }
    }

    /// Starts storing a response to the origin request that took `ticket`. Feed it with
    /// [`Fill::push`] and complete it with [`Fill::finish`]; dropping it unfinished stores
    /// nothing.
    fn fill(
        &self,
        primary: &str,
        mut meta: StoredMeta,
        vary_names: Vec<HeaderName>,
        ticket: Ticket,
    ) -> Fill {
        meta.generation = keys::next_generation(now_ms() << 16 | 1);
        let variant = variant_key(primary, &meta.vary);
        self.fill_variant(
            Some(primary.to_string()),
            primary,
            variant,
            meta,
            vary_names,
            ticket,
        )
    }

    fn fill_part(&self, primary: &str, part: &str, mut meta: StoredMeta, ticket: Ticket) -> Fill {
        meta.generation = keys::next_generation(now_ms() << 16 | 1);
        meta.vary = Vec::new();
        let variant = variant_key(part, &[]);
        self.fill_variant(
            Some(part.to_string()),
            primary,
            variant,
            meta,
            Vec::new(),
            ticket,
        )
    }

    /// Replaces the stored metadata of a variant (after a 304 to the revalidation that took
    /// `ticket` freshened it). A purge since that revalidation started wins: nothing is
    /// written back.
    async fn update_meta(
        &self,
        primary: &str,
        found: &Found,
        mut meta: StoredMeta,
        ticket: Ticket,
    ) {
        if self
            .inner
            .fences
            .fill_refused(primary, ticket, found.tags())
        {
            return;
        }
        meta.replace_headers(keys::owned_headers(&meta.headers));
        let variant = found.variant(primary);
        // Same body, new headers: the open file stays (it holds what was verified).
        self.inner.disk_meta.invalidate(&variant).await;
        if !found.tags().is_empty() {
            // The index follows the body's new ticket: a purge raised before this revalidation
            // began leaves it alone.
            let tags: super::Tags = found.tags().iter().cloned().collect();
            self.inner.tags.insert(&variant, &tags, ticket);
        }
        if let Found::Memory(obj) = found {
            // Revalidated now: as new as this request (older soft purges no longer apply).
            let updated = Arc::new(MemObject {
                meta: meta.clone(),
                body: obj.body.clone(),
                ticket,
                tags: obj.tags.clone(),
            });
            self.inner.mem.insert(variant.clone(), updated).await;
        }
        if let Some(disk) = &self.inner.cfg.disk
            && let Ok(Some(existing)) = cacache::metadata(&disk.dir, &variant).await
        {
            let opts = cacache::WriteOpts::new()
                .integrity(existing.integrity)
                .size(existing.size)
                .metadata(codec::encode(
                    &meta,
                    &codec::Extra {
                        ticket,
                        tags: found.tags().to_vec(),
                    },
                ));
            if let Err(e) = cacache::index::insert_async(&disk.dir, &variant, opts).await {
                tracing::warn!(error = %e, "could not update stored headers on disk");
            }
        }
        if self
            .inner
            .fences
            .fill_refused(primary, ticket, found.tags())
        {
            self.remove_variant(&variant).await;
        }
    }

    /// Takes objects out of the cache. In effect when this returns: the fence is raised before
    /// anything is removed, so a fill that started earlier publishes nothing, whenever it ends.
    async fn purge(&self, purge: &Purge) -> PurgeReport {
        let fence = self.inner.fences.raise(&purge.scope, purge.mode);
        let hard = purge.mode == PurgeMode::Hard;
        let objects = match &purge.scope {
            PurgeScope::Key(primary) => {
                if hard {
                    self.remove_key(primary, Some(fence)).await
                        + self.remove_slices(primary, Some(fence)).await
                } else {
                    self.count_key(primary).await
                }
            }
            // The fence covers every port and extra key dimension; the plain keys of both
            // schemes are also removed (or counted) now.
            PurgeScope::Url {
                host,
                path_query,
                ports,
            } => {
                let mut n = 0;
                let authorities = std::iter::once(host.clone())
                    .chain(ports.iter().map(|p| format!("{host}:{p}")));
                for authority in authorities {
                    for scheme in ["https", "http"] {
                        let primary = format!("{scheme}://{authority}{path_query}");
                        n += if hard {
                            self.remove_key(&primary, Some(fence)).await
                                + self.remove_slices(&primary, Some(fence)).await
                        } else {
                            self.count_key(&primary).await
                        };
                    }
                }
                n
            }
            PurgeScope::Tag { site, tag } => {
                let name = match site {
                    Some(site) => crate::purge::site_tag(site, tag),
                    None => tag.clone(),
                };
                if !hard {
                    self.inner.tags.count(&name, site.is_none())
                } else {
                    // In effect already (the tag fence); the objects go in the background,
                    // then the fence is dropped.
                    let sets = self.inner.tags.take(&name, site.is_none());
                    let n = sets.iter().map(|s| s.len()).sum();
                    let store = self.clone();
                    let (site, tag) = (site.clone(), tag.clone());
                    self.background(async move {
                        // Consumed as it goes: 100,000 names are not freed in one go either.
                        for (i, v) in sets.into_iter().flatten().enumerate() {
                            store.remove_purged(&v, fence).await;
                            // A tag may cover most of the cache. The purge is in effect already,
                            // so reclaiming is paced to leave hits most of the CPU: a batch
                            // (well under a millisecond), then a pause.
                            if i % RECLAIM_BATCH == RECLAIM_BATCH - 1 {
                                tokio::time::sleep(RECLAIM_PAUSE).await;
                            }
                        }
                        store.inner.fences.drop_tag(site.as_deref(), &tag, fence);
                    });
                    n
                }
            }
            // Fences only: objects under them are gone (or stale) at their next lookup.
            PurgeScope::Prefix { .. }
            | PurgeScope::Host(_)
            | PurgeScope::Domain(_)
            | PurgeScope::All => 0,
        };
        PurgeReport { objects, fence }
    }

    fn tag_index_size(&self) -> (usize, usize, usize) {
        self.inner.tags.size()
    }

    /// Waits until the background writes started so far are done (shutdown: fresh objects
    /// must reach the disk before the process goes).
    async fn flush(&self) {
        self.inner.writes.wait_idle().await;
    }
}

impl Store {
    /// The open file of a disk object: the one its entry links to while the open-file cache
    /// keeps it, else the cache's (then linked).
    fn open_file(
        &self,
        found: &Found,
        variant: &str,
        integrity: &cacache::Integrity,
    ) -> Option<Arc<OpenFile>> {
        let Found::Disk(e) = found else { return None };
        if let Some(file) = e.file.get().and_then(std::sync::Weak::upgrade) {
            return Some(file);
        }
        let file = self.inner.files.get(variant, integrity)?;
        let _ = e.file.set(Arc::downgrade(&file));
        Some(file)
    }

    /// A found object as the lookup's answer: a hit, stale if a soft purge marked it, a miss
    /// (and removed) if a hard purge fenced it off.
    async fn unless_fenced(&self, primary: &str, variant: &str, found: Found) -> Lookup {
        match self
            .inner
            .fences
            .check(primary, found.ticket(), found.tags())
        {
            Fenced::No => Lookup::Hit(found),
            Fenced::Soft => Lookup::Stale(found),
            Fenced::Hard => {
                // This body and older ones; one published since stays.
                self.remove_purged(variant, found.ticket().next()).await;
                Lookup::Miss
            }
        }
    }
}
