//! Purge counters: by kind and result, objects purged, a latency histogram, dropped tags.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache::Storage as _;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use purge_api::Kind;

/// The `kind` label: what a purge targeted, or `unknown` for one refused before that was read.
pub const KINDS: [&str; 6] = ["url", "prefix", "tag", "host", "everything", "unknown"];

fn ki(kind: Option<Kind>) -> usize {
    match kind {
        Some(Kind::Url) => 0,
        Some(Kind::Prefix) => 1,
        Some(Kind::Tag) => 2,
        Some(Kind::Host) => 3,
        Some(Kind::Everything) => 4,
        None => 5,
    }
}

/// How a purge request ended: the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Unauthorized,
    Forbidden,
    Invalid,
    RateLimited,
}

pub const OUTCOMES: [&str; 5] = [
    "done",
    "unauthorized",
    "forbidden",
    "invalid",
    "rate_limited",
];

/// Upper bounds (seconds) of the latency buckets: a purge is a fence write, so most land in
/// the first buckets; a tag purge over many objects counts the index walk too.
const BUCKETS: [f64; 10] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 1.0,
];

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ROW: [AtomicU64; OUTCOMES.len()] = [ZERO; OUTCOMES.len()];
#[allow(clippy::declare_interior_mutable_const)]
const MODES: [[AtomicU64; OUTCOMES.len()]; 2] = [ROW; 2];

pub struct PurgeMetrics {
    /// [kind][soft][outcome]
    requests: [[[AtomicU64; OUTCOMES.len()]; 2]; KINDS.len()],
    objects: [AtomicU64; KINDS.len()],
    /// Counts per bucket, plus +Inf at the end.
    latency: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
    tags_dropped: AtomicU64,
}

pub static PURGE_METRICS: PurgeMetrics = PurgeMetrics {
    requests: [MODES; KINDS.len()],
    objects: [ZERO; KINDS.len()],
    latency: [ZERO; BUCKETS.len() + 1],
    latency_sum_us: ZERO,
    tags_dropped: ZERO,
};

impl PurgeMetrics {
    pub fn purge(&self, kind: Option<Kind>, soft: bool, outcome: Outcome) {
        self.requests[ki(kind)][usize::from(soft)][outcome as usize]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A purge that took effect: objects removed (or marked) and the time to effect.
    pub fn done(&self, kind: Kind, objects: u64, took: Duration) {
        self.objects[ki(Some(kind))].fetch_add(objects, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn tags_dropped(&self, n: u64) {
        self.tags_dropped.fetch_add(n, Ordering::Relaxed);
    }
}

/// Encodes [`PURGE_METRICS`] and the store's tag index (from the node's state).
#[derive(Debug)]
pub(crate) struct PurgeCollector;

impl Collector for PurgeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let p = &PURGE_METRICS;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        {
            let mut m = encoder.encode_descriptor(
                "edge_purge_requests",
                "Purge requests, by kind, mode and result.",
                None,
                MetricType::Counter,
            )?;
            for (k, kind) in KINDS.iter().enumerate() {
                for (s, mode) in ["hard", "soft"].iter().enumerate() {
                    for (o, outcome) in OUTCOMES.iter().enumerate() {
                        let labels = [("kind", *kind), ("mode", *mode), ("result", *outcome)];
                        ConstCounter::new(get(&p.requests[k][s][o]))
                            .encode(m.encode_family(&labels)?)?;
                    }
                }
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "edge_purge_objects",
                "Stored objects removed or marked stale by purges (fenced purges count what they covered when known).",
                None,
                MetricType::Counter,
            )?;
            for (k, kind) in KINDS.iter().enumerate() {
                ConstCounter::new(get(&p.objects[k]))
                    .encode(m.encode_family(&[("kind", *kind)])?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "edge_purge_duration_seconds",
                "Time from an authorised purge request to the purge being in effect.",
                None,
                MetricType::Histogram,
            )?;
            let bounds = BUCKETS.iter().copied().chain([f64::INFINITY]);
            let buckets: Vec<(f64, u64)> = bounds
                .enumerate()
                .map(|(i, bound)| (bound, get(&p.latency[i])))
                .collect();
            let count = buckets.iter().map(|(_, n)| n).sum();
            let sum = get(&p.latency_sum_us) as f64 / 1e6;
            m.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        ConstCounter::new(get(&p.tags_dropped)).encode(encoder.encode_descriptor(
            "edge_cache_tags_dropped",
            "Surrogate keys dropped for exceeding the per-object limits.",
            None,
            MetricType::Counter,
        )?)?;
        let Some(shared) = super::origins::shared() else {
            return Ok(());
        };
        let (tags, objects, refs) = shared.cache.store.tag_index_size();
        let gauges = [
            (
                "edge_cache_tag_index_tags",
                "Distinct surrogate keys in the tag index.",
                tags,
            ),
            (
                "edge_cache_tag_index_objects",
                "Stored objects with at least one surrogate key.",
                objects,
            ),
            (
                "edge_cache_tag_index_refs",
                "Object-to-key references in the tag index.",
                refs,
            ),
        ];
        for (name, help, v) in gauges {
            let v = i64::try_from(v).unwrap_or(i64::MAX);
            ConstGauge::new(v).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Gauge,
            )?)?;
        }
        Ok(())
    }
}
