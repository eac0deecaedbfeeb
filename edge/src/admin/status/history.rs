//! The status page's request counts and their history: the counters read every
//! [`SAMPLE_EVERY`] into intervals (requests/s by protocol, 5xx, hit ratio) for the last five
//! minutes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use edge_core::clock::{self, Instant};
use serde::Serialize;

/// How often the history takes a sample, and how much of it is kept.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
pub(super) const HISTORY_SAMPLES: usize = 150; // 5 minutes

// ---- request counts -------------------------------------------------------------------------

/// Request counts by protocol (`h1`, `h2`, `h3`), status class (`2xx`, …) and cache result
/// (`hit`, `miss`, `stale`, `pass`, `none`), since the process started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub total: u64,
    pub by_protocol: BTreeMap<String, u64>,
    pub by_status: BTreeMap<String, u64>,
    pub by_cache: BTreeMap<String, u64>,
}

const PROTOCOLS: [&str; 3] = ["h1", "h2", "h3"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

impl Totals {
    /// The counters as they are now (read from the atomics, not from rendered metrics).
    pub fn now() -> Totals {
        let (responses, cache) = crate::metrics::METRICS.snapshot();
        Totals::from_counts(&responses, &cache)
    }

    /// From responses by [protocol][status class] and by cache outcome (`CACHE_RESULTS`).
    fn from_counts(responses: &[[u64; 5]; 3], cache: &[u64; 5]) -> Totals {
        let mut t = Totals::default();
        for (p, row) in PROTOCOLS.iter().zip(responses) {
            t.by_protocol.insert((*p).into(), row.iter().sum());
        }
        for (c, class) in CLASSES.iter().enumerate() {
            t.by_status
                .insert((*class).into(), responses.iter().map(|row| row[c]).sum());
        }
        for (name, n) in crate::metrics::CACHE_RESULTS.iter().zip(cache) {
            t.by_cache.insert((*name).into(), *n);
        }
        t.total = t.by_protocol.values().sum();
        t
    }

    /// Responses served from the cache (fresh or stale) and responses the cache was asked
    /// about (every outcome but `none`, which is a response the cache never saw).
    pub(super) fn hits_and_lookups(&self) -> (u64, u64) {
        let get = |k: &str| self.by_cache.get(k).copied().unwrap_or(0);
        let hits = get("hit") + get("stale");
        let lookups = self
            .by_cache
            .iter()
            .filter(|(k, _)| k.as_str() != "none")
            .map(|(_, v)| v)
            .sum();
        (hits, lookups)
    }
}

// ---- the history ----------------------------------------------------------------------------

/// One interval of the history: what happened between two readings of the counters.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Interval {
    /// When the interval ended (Unix ms) and how long it was.
    t: u64,
    dt_ms: u64,
    requests: u64,
    rps: BTreeMap<String, f64>,
    errors_5xx: u64,
    /// Responses the cache was asked about, and those it answered (fresh or stale).
    cache_lookups: u64,
    cache_hits: u64,
    /// `cache_hits / cache_lookups`; null when there were no lookups.
    hit_ratio: Option<f64>,
}

#[derive(Default)]
struct History {
    samples: VecDeque<Interval>,
    last: Option<(Instant, Totals)>,
}

impl History {
    fn record(&mut self, now: Instant, unix_ms: u64, totals: Totals) {
        if let Some((then, before)) = &self.last {
            let dt = now.saturating_duration_since(*then);
            let secs = dt.as_secs_f64().max(0.001);
            // Three decimals are plenty for a chart, and keep the JSON short.
            let per_sec = |n: u64| (n as f64 / secs * 1000.0).round() / 1000.0;
            let delta = |a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>, k: &str| {
                a.get(k)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(b.get(k).copied().unwrap_or(0))
            };
            let mut rps: BTreeMap<String, f64> = totals
                .by_protocol
                .keys()
                .map(|p| {
                    (
                        p.clone(),
                        per_sec(delta(&totals.by_protocol, &before.by_protocol, p)),
                    )
                })
                .collect();
            let requests = totals.total.saturating_sub(before.total);
            rps.insert("total".into(), per_sec(requests));
            let (hits, lookups) = totals.hits_and_lookups();
            let (hits0, lookups0) = before.hits_and_lookups();
            let (hits, lookups) = (hits.saturating_sub(hits0), lookups.saturating_sub(lookups0));
            self.samples.push_back(Interval {
                t: unix_ms,
                dt_ms: u64::try_from(dt.as_millis()).unwrap_or(u64::MAX),
                requests,
                rps,
                errors_5xx: delta(&totals.by_status, &before.by_status, "5xx"),
                cache_lookups: lookups,
                cache_hits: hits,
                hit_ratio: (lookups > 0).then(|| hits as f64 / lookups as f64),
            });
            while self.samples.len() > HISTORY_SAMPLES {
                self.samples.pop_front();
            }
        }
        self.last = Some((now, totals));
    }
}

static HISTORY: Mutex<History> = Mutex::new(History {
    samples: VecDeque::new(),
    last: None,
});
static SAMPLER: AtomicBool = AtomicBool::new(false);

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update leaves the state whole before anything can panic: poison is harmless.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the task that samples the counters (once per process, whatever the number of admin
/// listeners). It runs as long as the process does, so the page stays live while the node
/// drains.
pub fn start_sampler() {
    if SAMPLER.swap(true, Ordering::Relaxed) {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The first tick is at once: the baseline is read before any traffic is served.
            tick.tick().await;
            let totals = Totals::now();
            lock(&HISTORY).record(clock::now(), clock::unix_ms(), totals);
        }
    });
}

/// The intervals kept, oldest first.
pub(super) fn recent() -> Vec<Interval> {
    lock(&HISTORY).samples.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 13 responses: HTTP/1.1 7 × 2xx and 1 × 5xx, HTTP/2 3 × 2xx, HTTP/3 2 × 4xx; cache
    /// hit 5, miss 2, stale 1, none 5.
    fn sample() -> Totals {
        let mut r = [[0; 5]; 3];
        r[0][1] = 7;
        r[0][4] = 1;
        r[1][1] = 3;
        r[2][3] = 2;
        Totals::from_counts(&r, &[5, 2, 1, 0, 5])
    }

    #[test]
    fn totals_from_the_counters() {
        let t = sample();
        assert_eq!(t.total, 13);
        assert_eq!(t.by_protocol["h1"], 8);
        assert_eq!(t.by_protocol["h2"], 3);
        assert_eq!(t.by_protocol["h3"], 2);
        assert_eq!(t.by_status["2xx"], 10);
        assert_eq!(t.by_status["5xx"], 1);
        assert_eq!(t.by_status["3xx"], 0);
        assert_eq!(t.by_cache["hit"], 5);
        assert_eq!(t.hits_and_lookups(), (6, 8));
    }

    #[test]
    fn totals_follow_the_response_counters() {
        let before = Totals::now();
        crate::metrics::METRICS.response(http::Version::HTTP_3, 503, None);
        let after = Totals::now();
        assert!(after.by_protocol["h3"] > before.by_protocol["h3"]);
        assert!(after.by_status["5xx"] > before.by_status["5xx"]);
        assert!(after.total > before.total);
        assert!(
            after.by_cache["none"] > before.by_cache["none"],
            "{after:?}"
        );
    }

    #[test]
    fn history_rates_and_hit_ratio() {
        let mut h = History::default();
        let t0 = clock::now();
        h.record(t0, 1_000, Totals::default());
        assert!(h.samples.is_empty(), "the first reading is the baseline");
        h.record(t0 + Duration::from_secs(2), 3_000, sample());
        let s = &h.samples[0];
        assert_eq!(
            (s.t, s.dt_ms, s.requests, s.errors_5xx),
            (3_000, 2_000, 13, 1)
        );
        assert_eq!(s.rps["h1"], 4.0);
        assert_eq!(s.rps["total"], 6.5);
        assert_eq!(s.hit_ratio, Some(0.75));
        for i in 0..200 {
            h.record(t0 + Duration::from_secs(4 + i), 0, sample());
        }
        assert_eq!(h.samples.len(), HISTORY_SAMPLES);
        assert_eq!(h.samples[HISTORY_SAMPLES - 1].hit_ratio, None);
    }
}
