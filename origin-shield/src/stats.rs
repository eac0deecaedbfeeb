//! Per-endpoint counters for the metrics: tries and their outcome, and a histogram of the
//! time to the response head. Relaxed atomics: one add per origin request, never a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Error kinds, as the `kind` label has them.
pub const ERROR_KINDS: [&str; 5] = ["connect", "tls", "timeout", "protocol", "status_5xx"];

#[derive(Debug, Default)]
pub struct EndpointStats {
    tries: AtomicU64,
    errors: [AtomicU64; ERROR_KINDS.len()],
    /// Per bucket (not cumulative), the last one for +Inf.
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_ns: AtomicU64,
}

/// What one try's outcome was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response head after `d` (a 5xx counts as an error too).
    Answered { d: Duration, status_5xx: bool },
    /// One of `ERROR_KINDS[..4]` (any other index counts the try only).
    Failed(usize),
}

impl EndpointStats {
    pub fn record(&self, outcome: Outcome) {
        self.tries.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Answered { d, status_5xx } => {
                let s = d.as_secs_f64();
                let i = LATENCY_BUCKETS
                    .iter()
                    .position(|b| s <= *b)
                    .unwrap_or(LATENCY_BUCKETS.len());
                self.latency[i].fetch_add(1, Ordering::Relaxed);
                self.latency_sum_ns.fetch_add(
                    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
                if status_5xx {
                    self.errors[4].fetch_add(1, Ordering::Relaxed);
                }
            }
            Outcome::Failed(kind) => {
                if let Some(c) = self.errors.get(kind) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    pub fn tries(&self) -> u64 {
        self.tries.load(Ordering::Relaxed)
    }

    /// Errors by `ERROR_KINDS` index.
    pub fn errors(&self) -> [u64; ERROR_KINDS.len()] {
        std::array::from_fn(|i| self.errors[i].load(Ordering::Relaxed))
    }

    /// (sum in seconds, per-bucket counts with +Inf last).
    pub fn latency(&self) -> (f64, Vec<(f64, u64)>) {
        let bounds = LATENCY_BUCKETS.iter().copied().chain([f64::INFINITY]);
        let buckets = bounds
            .enumerate()
            .map(|(i, b)| (b, self.latency[i].load(Ordering::Relaxed)))
            .collect();
        (
            self.latency_sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            buckets,
        )
    }
}
