//! Purge fences (Pingora's `valid_after`): every origin request that may fill the cache takes a
//! ticket before it is sent, every purge raises a fence for its scope, and an object (or a fill
//! still in flight) whose ticket is below its scope's fence is invalid. So a purge cannot be
//! undone by a fill that started before it, however late that fill publishes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Orders origin requests and purges. Seeded from the wall clock, so tickets written to disk by
/// an earlier process stay below the ones this process hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ticket(pub u64);

/// How long a fence is kept per key. A fill that started before a fence and is still running
/// when the fence expires is refused by the floor instead (see `Fences::floor`).
const FENCE_TTL: Duration = Duration::from_secs(3600);
const FENCE_CAPACITY: u64 = 1 << 20;

pub(crate) struct Fences {
    next: AtomicU64,
    by_key: moka::sync::Cache<String, u64>,
    /// The highest fence that was dropped (expired or pushed out): every ticket below it is
    /// treated as fenced, so dropping a fence never lets an older fill through.
    floor: Arc<AtomicU64>,
    /// No fence was ever raised: lookups skip the map entirely.
    none: AtomicBool,
}

impl Fences {
    pub(crate) fn new(seed: u64) -> Fences {
        let floor = Arc::new(AtomicU64::new(0));
        let raised = floor.clone();
        let by_key = moka::sync::Cache::builder()
            .max_capacity(FENCE_CAPACITY)
            .time_to_live(FENCE_TTL)
            .eviction_listener(move |_key, fence: u64, cause| {
                if cause.was_evicted() {
                    raised.fetch_max(fence, Ordering::AcqRel);
                }
            })
            .build();
        Fences {
            next: AtomicU64::new(seed),
            by_key,
            floor,
            none: AtomicBool::new(true),
        }
    }

    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.next.fetch_add(1, Ordering::AcqRel))
    }

    /// Raises the fence of `primary`: everything ticketed before now is invalid for it.
    pub(crate) fn raise(&self, primary: &str) -> Ticket {
        let fence = self.ticket();
        self.none.store(false, Ordering::Release);
        let key = primary.to_string();
        // Never lower a fence another purge raised meanwhile.
        let current = self.by_key.get(&key).unwrap_or(0);
        self.by_key.insert(key, current.max(fence.0));
        fence
    }

    pub(crate) fn is_fenced(&self, primary: &str, ticket: Ticket) -> bool {
        if ticket.0 < self.floor.load(Ordering::Acquire) {
            return true;
        }
        if self.none.load(Ordering::Acquire) {
            return false;
        }
        self.by_key.get(primary).is_some_and(|f| ticket.0 < f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_before_a_fence_are_fenced_for_its_key_only() {
        let f = Fences::new(100);
        let before = f.ticket();
        assert!(!f.is_fenced("k", before));
        let fence = f.raise("k");
        let after = f.ticket();
        assert!(before < fence && fence < after);
        assert!(f.is_fenced("k", before));
        assert!(!f.is_fenced("k", after));
        assert!(!f.is_fenced("other", before), "fences are per key");
    }

    #[test]
    fn a_dropped_fence_raises_the_floor() {
        let f = Fences::new(1);
        let old = f.ticket();
        f.raise("k");
        f.by_key.invalidate_all();
        f.by_key.run_pending_tasks();
        // Explicit invalidation is not eviction: the floor only moves for expiry or size.
        assert!(!f.is_fenced("k", old));
        f.floor.fetch_max(f.ticket().0, Ordering::AcqRel);
        assert!(f.is_fenced("anything", old));
    }
}
