//! Choosing an endpoint: per-endpoint state (in flight, latency, health, ejection) and the
//! balancing algorithms. Choices are plain functions of that state and never wait.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use config::Algorithm;

/// What one endpoint's requests have taught us. Shared across config snapshots: a reload that
/// keeps an endpoint keeps its health and latency.
#[derive(Debug)]
pub struct EndpointState {
    pub in_flight: AtomicU64,
    /// Exponentially weighted moving average of response-head latency, in microseconds.
    ewma_us: AtomicU64,
    /// Active health checks' verdict (true until a check says otherwise).
    healthy: AtomicBool,
    /// Consecutive failed or passed checks, for rise/fall.
    check_streak: AtomicU32,
    /// Passive outlier detection.
    consecutive_failures: AtomicU32,
    ejected_until_ms: AtomicU64,
    ejections: AtomicU32,
    /// Active checks passed in a row while passively ejected.
    passes_while_ejected: AtomicU32,
    /// Tries and outcomes, for the metrics.
    pub stats: crate::stats::EndpointStats,
}

impl Default for EndpointState {
    fn default() -> Self {
        EndpointState {
            in_flight: AtomicU64::new(0),
            ewma_us: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            check_streak: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            passes_while_ejected: AtomicU32::new(0),
            stats: crate::stats::EndpointStats::default(),
        }
    }
}

/// Monotonic: a wall-clock step must not end or extend an ejection.
pub fn now_ms() -> u64 {
    edge_core::clock::monotonic_ms()
}

impl EndpointState {
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Passive ejections so far.
    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }

    pub fn ejected(&self, now_ms: u64) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > now_ms
    }

    pub fn ewma(&self) -> Duration {
        Duration::from_micros(self.ewma_us.load(Ordering::Relaxed))
    }

    /// Folds one response-head latency into the average (weight 1/8 for the new sample; the
    /// first sample sets it).
    pub fn observe_latency(&self, d: Duration) {
        let sample = d.as_micros().min(u128::from(u64::MAX / 16)) as u64;
        let _ = self
            .ewma_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    sample.max(1)
                } else {
                    (old * 7 + sample) / 8
                })
            });
    }

    /// One active check result. Returns the new health when it changed.
    pub fn check_result(&self, ok: bool, rise: u32, fall: u32) -> Option<bool> {
        let healthy = self.healthy();
        if ok == healthy {
            self.check_streak.store(0, Ordering::Relaxed);
            return None;
        }
        let streak = self.check_streak.fetch_add(1, Ordering::Relaxed) + 1;
        let needed = if healthy { fall } else { rise };
        if streak >= needed {
            self.check_streak.store(0, Ordering::Relaxed);
            self.healthy.store(ok, Ordering::Relaxed);
            if ok {
                // Back in rotation: forget old passive failures.
                self.consecutive_failures.store(0, Ordering::Relaxed);
                self.ejected_until_ms.store(0, Ordering::Relaxed);
            }
            return Some(ok);
        }
        None
    }

    /// An active check while passively ejected: `rise` passes in a row end the ejection (the
    /// endpoint answers its health check, so it need not wait out the ejection time). True
    /// when this check ended it.
    pub fn readmit(&self, ok: bool, rise: u32, now_ms: u64) -> bool {
        if !ok || !self.ejected(now_ms) {
            self.passes_while_ejected.store(0, Ordering::Relaxed);
            return false;
        }
        let passes = self.passes_while_ejected.fetch_add(1, Ordering::Relaxed) + 1;
        if passes < rise.max(1) {
            return false;
        }
        self.passes_while_ejected.store(0, Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.ejected_until_ms.store(0, Ordering::Relaxed);
        true
    }

    pub fn passive_success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// A connect error, timeout or 5xx. Returns the consecutive count.
    pub fn passive_failure(&self) -> u32 {
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Ejects for `base × 2^(ejections so far)`, at most `max`. Returns the ejection time.
    pub fn eject(&self, now_ms: u64, base: Duration, max: Duration) -> Duration {
        let n = self.ejections.fetch_add(1, Ordering::Relaxed).min(16);
        let d = base.saturating_mul(1 << n).min(max);
        self.ejected_until_ms
            .store(now_ms + d.as_millis() as u64, Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        d
    }
}

/// A small, fast, thread-local PRNG (xorshift64*): balancing needs spread, not secrecy.
pub fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(now_ms());
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// FNV-1a, then a finaliser: stable across processes and versions, which consistent hashing
/// needs (every edge must map a key to the same shield).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64 finaliser: FNV alone clusters similar keys on the ring.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Virtual nodes per unit of weight on the hash ring. An endpoint's share of keys varies by
/// about 1/sqrt(VNODES) of its fair share: 1024 keeps three endpoints within ~1 point of 1/3
/// (160, a common choice, let one own 36.6 % in our test). 24 KiB per endpoint.
const VNODES: u32 = 1024;

/// A consistent-hash ring over endpoint indexes (Karger et al.): removing one endpoint moves
/// only the keys it owned.
#[derive(Debug)]
pub struct Ring {
    points: Vec<(u64, usize)>,
}

impl Ring {
    pub fn new(endpoints: &[SocketAddr], weights: &[u32]) -> Ring {
        let mut points = Vec::new();
        for (i, ep) in endpoints.iter().enumerate() {
            let w = weights.get(i).copied().unwrap_or(1).max(1);
            for v in 0..VNODES * w {
                // Keyed by address, not index: the same endpoint lands on the same points in
                // every edge's ring whatever the order of the list.
                points.push((stable_hash(format!("{ep}#{v}").as_bytes()), i));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The first endpoint clockwise from `hash` that `usable` accepts.
    pub fn lookup(&self, hash: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.points.partition_point(|(h, _)| *h < hash);
        let n = self.points.len();
        (0..n)
            .map(|k| self.points[(start + k) % n].1)
            .find(|&i| usable(i))
    }
}

/// How the request wants to be placed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Affinity<'a> {
    /// The cache key (consistent hashing).
    pub key: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
}

/// The balancing state of one pool.
#[derive(Debug)]
pub struct Balancer {
    pub algorithm: Algorithm,
    weights: Vec<u32>,
    rr: AtomicU64,
    /// Smooth weighted round-robin's current weights (nginx's algorithm).
    swrr: Mutex<Vec<i64>>,
    ring: Option<Ring>,
}

impl Balancer {
    pub fn new(algorithm: Algorithm, endpoints: &[SocketAddr], weights: &[u32]) -> Balancer {
        let ring = matches!(
            algorithm,
            Algorithm::ConsistentHash | Algorithm::ClientIpHash
        )
        .then(|| Ring::new(endpoints, weights));
        Balancer {
            algorithm,
            weights: weights.to_vec(),
            rr: AtomicU64::new(random_u64() % 1024),
            swrr: Mutex::new(vec![0; endpoints.len()]),
            ring,
        }
    }

    /// Picks among `states` those for which `usable` holds (tests' convenience over
    /// [`Self::choose`]).
    #[cfg(test)]
    pub fn pick(
        &self,
        states: &[&EndpointState],
        usable: &dyn Fn(usize) -> bool,
        affinity: Affinity<'_>,
    ) -> Option<usize> {
        self.choose(states.len(), &|i| states[i], usable, affinity)
    }

    /// Picks one of endpoints `0..n` for which `usable` holds; `state(i)` gives in-flight
    /// counts and latency. Allocates nothing: it runs on every origin request.
    pub fn choose<'s>(
        &self,
        n: usize,
        state: &dyn Fn(usize) -> &'s EndpointState,
        usable: &dyn Fn(usize) -> bool,
        affinity: Affinity<'_>,
    ) -> Option<usize> {
        let count = (0..n).filter(|&i| usable(i)).count();
        if count == 0 {
            return None;
        }
        // The k-th usable endpoint (k < count).
        let nth = |k: usize| (0..n).filter(|&i| usable(i)).nth(k);
        let weight = |i: usize| u64::from(self.weights.get(i).copied().unwrap_or(1).max(1));
        match self.algorithm {
            Algorithm::RoundRobin => {
                let k = self.rr.fetch_add(1, Ordering::Relaxed) as usize;
                nth(k % count)
            }
            Algorithm::Random => nth((random_u64() % count as u64) as usize),
            Algorithm::WeightedRoundRobin => {
                let Ok(mut cw) = self.swrr.lock() else {
                    return nth(0);
                };
                let mut total: i64 = 0;
                let mut best: Option<usize> = None;
                for i in (0..n).filter(|&i| usable(i)) {
                    let w = weight(i) as i64;
                    total += w;
                    cw[i] += w;
                    if best.is_none_or(|b| cw[i] > cw[b]) {
                        best = Some(i);
                    }
                }
                let best = best?;
                cw[best] -= total;
                Some(best)
            }
            Algorithm::LeastInFlight => {
                // Fewest in flight per unit of weight; ties rotate so that idle pools spread.
                let k = self.rr.fetch_add(1, Ordering::Relaxed) as usize;
                (0..n)
                    .map(|j| (k + j) % n)
                    .filter(|&i| usable(i))
                    .min_by_key(|&i| state(i).in_flight.load(Ordering::Relaxed) * 1000 / weight(i))
            }
            Algorithm::P2cEwma => {
                let a = nth((random_u64() % count as u64) as usize)?;
                if count == 1 {
                    return Some(a);
                }
                // A second, different one: draw among the others.
                let mut k = (random_u64() % (count as u64 - 1)) as usize;
                let a_rank = (0..a).filter(|&i| usable(i)).count();
                if k >= a_rank {
                    k += 1;
                }
                let b = nth(k)?;
                // Latency × load: an endpoint with no samples yet counts as fast, so that it
                // gets tried.
                let score = |i: usize| {
                    let s = state(i);
                    let lat = s.ewma().as_micros().max(1) as u64;
                    lat * (s.in_flight.load(Ordering::Relaxed) + 1) * 1000 / weight(i)
                };
                Some(if score(a) <= score(b) { a } else { b })
            }
            Algorithm::ConsistentHash | Algorithm::ClientIpHash => {
                let hash = match (self.algorithm, affinity) {
                    (Algorithm::ConsistentHash, Affinity { key: Some(k), .. }) => {
                        stable_hash(k.as_bytes())
                    }
                    (
                        _,
                        Affinity {
                            client_ip: Some(ip),
                            ..
                        },
                    ) => match ip {
                        IpAddr::V4(v4) => stable_hash(&v4.octets()),
                        IpAddr::V6(v6) => stable_hash(&v6.octets()),
                    },
                    // Nothing to hash on (e.g. a pass-through request): spread.
                    _ => random_u64(),
                };
                self.ring.as_ref()?.lookup(hash, usable)
            }
        }
    }
}

#[cfg(test)]
mod tests;
