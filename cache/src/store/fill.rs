//! Storing a response while it streams to the client. Nothing is visible until `finish`: small
//! bodies are buffered and published to memory (then written to disk), large ones spill to a
//! content-addressed disk file and are published by one index insert with their final size.
//! A fill whose ticket a purge has fenced off publishes nothing.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::HeaderName;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::codec::Extra;
use super::{CacheError, MemObject, Store, Tags, Ticket, codec};
use crate::rules::StoredMeta;

/// An object being stored while it streams to the client.
pub struct Fill {
    pub(super) store: Store,
    /// `None` for encoded variants, which are not listed in the URL's Vary record.
    pub(super) primary: Option<String>,
    /// The URL whose fence this fill obeys (an encoded variant's is its identity's).
    pub(super) fence_key: String,
    pub(super) variant: String,
    pub(super) meta: StoredMeta,
    pub(super) vary_names: Vec<HeaderName>,
    pub(super) ticket: Ticket,
    pub(super) tags: Tags,
    pub(super) buf: BytesMut,
    pub(super) spill: Option<Spill>,
    pub(super) received: u64,
    pub(super) expected: Option<u64>,
}

pub(super) struct Spill {
    tx: mpsc::Sender<Bytes>,
    done: tokio::sync::oneshot::Receiver<Result<(cacache::Integrity, u64), CacheError>>,
}

impl Fill {
    fn extra(&self) -> Extra {
        Extra {
            ticket: self.ticket,
            tags: self.tags.to_vec(),
        }
    }

    /// The key this fill stores under.
    pub fn variant(&self) -> &str {
        &self.variant
    }

    /// Tags the object with surrogate keys (for tag purges).
    pub fn set_tags(&mut self, tags: Vec<Arc<str>>) {
        self.tags = Tags::from(tags);
    }

    /// The generation of the body being stored (see [`StoredMeta::generation`]).
    pub fn generation(&self) -> u64 {
        self.meta.generation
    }

    pub(super) fn start_spill(&mut self) {
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
        let limit = self.store.inner.cfg.max_object_memory_bytes;
        if self.spill.is_none() && self.received > limit {
            if self.store.inner.cfg.disk.is_none() {
                return Err(CacheError::TooLarge { limit });
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

    /// The whole body the response head declared has arrived: the object can be published
    /// before its sender says the body ended (an HTTP/2 origin may end the stream in a later
    /// frame, after a client has every byte).
    pub fn is_complete(&self) -> bool {
        self.expected == Some(self.received)
    }

    fn fenced(&self) -> bool {
        self.store
            .inner
            .fences
            .fill_refused(&self.fence_key, self.ticket, &self.tags)
    }

    /// The body ended cleanly: verify its length and make the object visible, unless a purge
    /// fenced it off while it was in flight. Visible means in memory (or, for an object too
    /// large for memory, in the disk index) when this returns; the disk copy of a memory
    /// object, the Vary record on disk and eviction follow in the background (`Store::flush`
    /// waits for them).
    pub async fn finish(mut self) -> Result<(), CacheError> {
        if let Some(expected) = self.expected
            && expected != self.received
        {
            return Err(CacheError::Truncated {
                got: self.received,
                expected,
            });
        }
        if self.fenced() {
            return Err(CacheError::Fenced);
        }
        self.meta.body_len = self.received;
        let size = self.received;
        let store = self.store.clone();
        let mut disk_copy = None;
        // The content file of a body published on disk here (too large for memory).
        let mut spilled = None;
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
                let disk = store.disk_cfg()?;
                spilled = Some(sri.clone());
                let opts = cacache::WriteOpts::new()
                    .integrity(sri)
                    .size(usize::try_from(size).unwrap_or(usize::MAX))
                    .metadata(codec::encode(&self.meta, &self.extra()));
                let _order = store.disk_order(&self.variant).await;
                cacache::index::insert_async(&disk.dir, &self.variant, opts)
                    .await
                    .map_err(|source| CacheError::Disk {
                        dir: disk.dir.clone(),
                        source,
                    })?;
                // A smaller body this one replaces may still be in memory, where lookups look
                // first; its disk copy, if still to be written, sees it is no longer current.
                store.inner.mem.invalidate(&self.variant).await;
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
                    ticket: self.ticket,
                    tags: self.tags.clone(),
                });
                store.inner.mem.insert(self.variant.clone(), obj).await;
                disk_copy = Some(body);
            }
        }
        // The decoded metadata of the body this one replaces must not outlive it.
        store.forget_disk_entry(&self.variant).await;
        let mut record = None;
        if let Some(primary) = &self.primary {
            let (replaced, rec) = store
                .commit_record(primary, &self.vary_names, &self.variant)
                .await;
            record = Some((primary.clone(), rec, replaced));
        }
        store
            .inner
            .tags
            .insert(&self.variant, &self.tags, self.ticket);
        // A purge that raced with the publication (its fence after our check, its removal
        // before our insert) is honoured here: published, then taken back.
        if self.fenced() {
            store.remove_purged(&self.variant, self.ticket.next()).await;
            return Err(CacheError::Fenced);
        }
        if store.inner.cfg.disk.is_none() {
            // Nothing to write: only the encodings of a replaced body are left to drop.
            if let Some((_, _, true)) = record {
                store
                    .remove_encodings(&self.variant, Some(self.meta.generation))
                    .await;
            }
            return Ok(());
        }
        let extra = self.extra();
        let (variant, meta, ticket, fence_key, tags) = (
            self.variant,
            self.meta,
            self.ticket,
            self.fence_key,
            self.tags,
        );
        let background = store.clone();
        store.background(async move {
            let store = background;
            let fenced = || store.inner.fences.fill_refused(&fence_key, ticket, &tags);
            let order = store.disk_order(&variant).await;
            // Replaced since it was published: the newer body owns the disk entry. (Evicted
            // from memory already: written unless the disk holds a newer body.)
            let current = match store.inner.mem.get(&variant).await {
                Some(o) => o.meta.generation == meta.generation,
                None => store
                    .disk_generation(&variant)
                    .await
                    .is_none_or(|g| g < meta.generation),
            };
            // A body too large for memory is on disk already (published by `finish`).
            let mut written = spilled;
            if let (Some(body), Some(disk)) = (disk_copy, store.inner.cfg.disk.clone())
                && current
                && !fenced()
            {
                let opts = cacache::WriteOpts::new()
                    .metadata(codec::encode(&meta, &extra))
                    .size(body.len());
                match opts.open(&disk.dir, &variant).await {
                    Ok(mut w) => {
                        if w.write_all(&body).await.is_ok() {
                            match w.commit().await {
                                Ok(sri) => written = Some(sri),
                                Err(e) => {
                                    tracing::warn!(error = %e, "disk write failed; object stays in memory only");
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "disk write failed; object stays in memory only")
                    }
                }
            }
            drop(order);
            if let Some((primary, rec, replaced)) = record {
                store.write_record(&primary, &rec).await;
                // The encoded variants of the body this one replaced are dead weight now. (A
                // new variant has none: skipping the check keeps misses cheap.)
                if replaced {
                    store.remove_encodings(&variant, Some(meta.generation)).await;
                }
            }
            if let Some(content) = written {
                store.account(&variant, size, content).await;
            }
            // Purged while the disk copy was being written: take that back too.
            if fenced() {
                store.remove_purged(&variant, ticket.next()).await;
            }
        });
        Ok(())
    }
}
