//! One rate limit's keyed state: GCRA (the generic cell rate algorithm, what `governor` does):
//! per key one "theoretical arrival time"; a request is allowed while that time is no further
//! ahead of now than the burst allows, and moves it one emission interval on. Sans I/O: the
//! caller passes `now` (nanoseconds on any monotonic clock), so it is tested on a simulated
//! clock.
//!
//! The state is bounded: `max_keys` across 16 shards (each its own lock: never a global one).
//! A full shard first drops the keys whose bucket is full again (their arrival time has
//! passed: the same as never seen), then, under a flood of distinct keys, the half with the
//! oldest arrival times (those closest to full).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

const SHARDS: usize = 16;

/// What the limiter said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `remaining` more requests would be allowed right now; the bucket is full again in
    /// `reset`.
    Allowed { remaining: u64, reset: Duration },
    /// Over the limit: one more request would be allowed in `retry_after`.
    Limited { retry_after: Duration },
}

pub struct Limiter {
    /// The rule as configured (rate, per, burst, max_keys), to keep state across reloads that
    /// do not change it.
    pub params: (u64, Duration, u64, usize),
    interval_ns: u64,
    tolerance_ns: u64,
    per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
    shards: Box<[Mutex<HashMap<u64, u64>>]>,
    /// allowed, limited, reported.
    pub decisions: [AtomicU64; 3],
}

impl Limiter {
    /// `rate` requests per `per` on average, `burst` more at once; at most `max_keys` keys.
    pub fn new(rate: u64, per: Duration, burst: u64, max_keys: usize) -> Limiter {
        let per_ns = u64::try_from(per.as_nanos()).unwrap_or(u64::MAX);
        let interval_ns = (per_ns / rate.max(1)).max(1);
        Limiter {
            params: (rate, per, burst, max_keys),
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(burst),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            hasher: std::collections::hash_map::RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            decisions: Default::default(),
        }
    }

    /// Counts a request of `key` at `now_ns`.
    pub fn check(&self, key: impl Hash, now_ns: u64) -> Verdict {
        let h = self.hasher.hash_one(key);
        let shard = &self.shards[(h as usize) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let tat = map.get(&h).copied().unwrap_or(now_ns).max(now_ns);
        let ahead = tat - now_ns;
        if ahead > self.tolerance_ns {
            return Verdict::Limited {
                retry_after: Duration::from_nanos(ahead - self.tolerance_ns),
            };
        }
        let new_tat = tat.saturating_add(self.interval_ns);
        if map.len() >= self.per_shard && !map.contains_key(&h) {
            make_room(&mut map, now_ns, self.per_shard);
        }
        map.insert(h, new_tat);
        let ahead = new_tat - now_ns;
        let room = (self.tolerance_ns + self.interval_ns).saturating_sub(ahead);
        Verdict::Allowed {
            remaining: room / self.interval_ns,
            reset: Duration::from_nanos(ahead),
        }
    }

    /// Drops every key whose bucket is full again.
    pub fn sweep(&self, now_ns: u64) {
        for shard in self.shards.iter() {
            shard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|_, tat| *tat > now_ns);
        }
    }

    /// Keys held, and roughly the bytes their tables take.
    pub fn size(&self) -> (usize, usize) {
        let mut keys = 0;
        let mut bytes = 0;
        for shard in self.shards.iter() {
            let map = shard.lock().unwrap_or_else(PoisonError::into_inner);
            keys += map.len();
            // hashbrown: a (u64, u64) slot and a control byte per bucket.
            bytes += map.capacity() * 17;
        }
        (keys, bytes)
    }

    /// The number of distinct keys the limiter keeps at most.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    pub fn count(&self, i: usize) {
        self.decisions[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Frees room in a full shard: keys whose bucket is full again first, then the older half.
fn make_room(map: &mut HashMap<u64, u64>, now_ns: u64, cap: usize) {
    map.retain(|_, tat| *tat > now_ns);
    if map.len() < cap {
        return;
    }
    let mut tats: Vec<u64> = map.values().copied().collect();
    let mid = tats.len() / 2;
    let (_, median, _) = tats.select_nth_unstable(mid);
    let median = *median;
    map.retain(|_, tat| *tat > median);
    if map.len() >= cap {
        // All equal: drop everything rather than grow.
        map.clear();
    }
    map.shrink_to(cap);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_steady_rate_with_a_burst() {
        // 10 per second (one per 100 ms), 4 more at once.
        let l = Limiter::new(10, Duration::from_secs(1), 4, 1000);
        let t0 = 1_000 * MS;
        for i in 0..5 {
            match l.check("a", t0) {
                Verdict::Allowed { remaining, .. } => assert_eq!(remaining, 4 - i, "request {i}"),
                v => panic!("request {i}: {v:?}"),
            }
        }
        assert_eq!(
            l.check("a", t0),
            Verdict::Limited {
                retry_after: Duration::from_millis(100)
            }
        );
        // Another key is not affected.
        assert!(matches!(
            l.check("b", t0),
            Verdict::Allowed { remaining: 4, .. }
        ));
        // 100 ms later one more; 50 ms after that, not yet.
        assert!(matches!(
            l.check("a", t0 + 100 * MS),
            Verdict::Allowed { remaining: 0, .. }
        ));
        assert_eq!(
            l.check("a", t0 + 150 * MS),
            Verdict::Limited {
                retry_after: Duration::from_millis(50)
            }
        );
        // After a quiet second the whole burst is back.
        assert!(matches!(
            l.check("a", t0 + 1_600 * MS),
            Verdict::Allowed { remaining: 4, .. }
        ));
        // Limited requests do not move the bucket on: a client hammering stays limited only
        // as long as its own rate is over.
        let l = Limiter::new(1, Duration::from_secs(1), 0, 10);
        assert!(matches!(l.check(1, t0), Verdict::Allowed { .. }));
        for k in 1..10 {
            assert!(matches!(
                l.check(1, t0 + k * 10 * MS),
                Verdict::Limited { .. }
            ));
        }
        assert!(matches!(
            l.check(1, t0 + 1_000 * MS),
            Verdict::Allowed { .. }
        ));
    }

    #[test]
    fn a_million_distinct_keys_stay_within_the_bound() {
        let max_keys = 10_000;
        let l = Limiter::new(5, Duration::from_secs(1), 2, max_keys);
        let mut now = 1_000 * MS;
        for k in 0..1_000_000u64 {
            // A flood of new addresses, 10 µs apart: every one allowed (fresh buckets).
            now += 10_000;
            assert!(
                matches!(l.check(k, now), Verdict::Allowed { .. }),
                "key {k}"
            );
            if k % 100_000 == 0 {
                let (keys, bytes) = l.size();
                assert!(keys <= l.capacity(), "{keys} keys");
                assert!(bytes <= l.capacity() * 17 * 4, "{bytes} bytes");
            }
        }
        let (keys, bytes) = l.size();
        assert!(keys <= l.capacity() && keys > 0, "{keys}");
        assert!(
            bytes <= l.capacity() * 17 * 4,
            "{bytes} bytes for {keys} keys"
        );
        // A key seen just now is still limited as it should be (recent keys are kept).
        for _ in 0..3 {
            l.check("hot", now);
        }
        assert!(matches!(l.check("hot", now), Verdict::Limited { .. }));
        // Once every bucket is full again, a sweep empties the table.
        l.sweep(now + 10_000 * MS);
        assert_eq!(l.size().0, 0);
    }
}
