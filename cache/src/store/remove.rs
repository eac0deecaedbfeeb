//! Taking objects out: a URL's variants and encodings from both tiers (purges and
//! invalidation), slices, and what a tag purge removes in the background.

use super::*;

impl Store {
    /// Removes every variant (and its encodings) of a URL from both tiers: those older than
    /// `fence` (a purge's), or all of them.
    pub(super) async fn remove_key(&self, primary: &str, fence: Option<Ticket>) -> usize {
        let Some(rec) = self.record(primary).await else {
            return 0;
        };
        let mut kept = false;
        for v in &rec.variants {
            match fence {
                Some(fence) => kept |= self.remove_purged(v, fence).await,
                None => {
                    self.remove_variant(v).await;
                    self.remove_encodings(v, None).await;
                }
            }
        }
        if kept {
            // A body published since the purge still needs the URL's Vary record.
            return rec.variants.len();
        }
        self.inner.records.invalidate(primary).await;
        if let Some(disk) = &self.inner.cfg.disk {
            let key = keys::record_key(primary);
            let _ = cacache::remove(&disk.dir, &key).await;
            self.remove_content(self.inner.budget.forget(&key)).await;
        }
        rec.variants.len()
    }

    /// How many variants a primary key has stored (a soft purge marks them, removes nothing).
    pub(super) async fn count_key(&self, primary: &str) -> usize {
        self.record(primary).await.map_or(0, |r| r.variants.len())
    }

    /// Removes a large object's slices and their index; the number of objects removed.
    pub(super) async fn remove_slices(&self, primary: &str, fence: Option<Ticket>) -> usize {
        let index = slice_index_key(primary);
        let Some(found) = self.find(&variant_key(&index, &[])).await else {
            return 0;
        };
        let num = |name: &str| {
            found
                .meta()
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let (Some(total), Some(size)) = (num(SLICE_TOTAL), num(SLICE_SIZE)) else {
            return self.remove_key(&index, fence).await;
        };
        let mut removed = self.remove_key(&index, fence).await;
        for n in 0..total.div_ceil(size.max(1)) {
            removed += self.remove_key(&slice_key(primary, n), fence).await;
        }
        removed
    }

    /// Removes what a purge fenced under `variant`: bodies ticketed before `fence`. A body
    /// published since (in memory, on disk, in the index) stays; the answer says whether one
    /// did.
    pub(super) async fn remove_purged(&self, variant: &str, fence: Ticket) -> bool {
        use moka::ops::compute::{CompResult, Op};
        let _order = self.disk_order(variant).await;
        self.inner.tags.remove_older(variant, fence);
        let mem = self
            .inner
            .mem
            .entry(variant.to_string())
            .and_compute_with(|e| {
                let op = match e {
                    Some(e) if e.value().ticket < fence => Op::Remove,
                    _ => Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
        let mut newer = matches!(mem, CompResult::Unchanged(_));
        if let Some(disk) = &self.inner.cfg.disk {
            let older = match cacache::metadata(&disk.dir, variant).await {
                Ok(Some(m)) => {
                    let older =
                        codec::decode(variant, m.metadata).map_or(true, |(_, x)| x.ticket < fence);
                    newer |= !older;
                    older
                }
                _ => false,
            };
            if older {
                self.forget_disk_entry(variant).await;
                let _ = cacache::remove(&disk.dir, variant).await;
                self.remove_content(self.inner.budget.forget(variant)).await;
            }
        }
        if !newer {
            self.remove_encodings(variant, None).await;
        }
        newer
    }

    pub(super) async fn remove_variant(&self, variant: &str) {
        self.inner.tags.remove(variant);
        self.inner.mem.invalidate(variant).await;
        self.forget_disk_entry(variant).await;
        if let Some(disk) = &self.inner.cfg.disk {
            // The content file goes with its last user: identical bodies under other keys
            // share it (cacache stores content by hash).
            let _ = cacache::remove(&disk.dir, variant).await;
            self.remove_content(self.inner.budget.forget(variant)).await;
        }
    }

    /// Removes the encoded variants of one identity variant; with `keep = Some(g)`, only those
    /// made from another body than generation `g` (variants of a new body, made while it was
    /// stored, stay). Disk entries are only looked at if the index knows them: removing an
    /// absent key would still append to the disk index.
    pub(super) async fn remove_encodings(&self, variant: &str, keep: Option<u64>) {
        let stale = |generation: u64| keep != Some(generation);
        for coding in Coding::ALL {
            let key = encoded_key(variant, coding);
            // `contains_key` first: most variants have no encodings, and a `get` would count
            // as a read (moka's bookkeeping), which a purge of 100,000 objects feels.
            if self.inner.mem.contains_key(&key)
                && let Some(obj) = self.inner.mem.get(&key).await
                && stale(obj.meta.generation)
            {
                self.inner.mem.invalidate(&key).await;
            }
            let on_disk = self.inner.budget.contains(&key);
            let Some(disk) = self.inner.cfg.disk.as_ref().filter(|_| on_disk) else {
                continue;
            };
            let remove = keep.is_none()
                || match cacache::metadata(&disk.dir, &key).await {
                    Ok(Some(m)) => {
                        codec::decode(&key, m.metadata).map_or(true, |(m, _)| stale(m.generation))
                    }
                    _ => false,
                };
            if remove {
                self.remove_variant(&key).await;
            }
        }
    }
}
