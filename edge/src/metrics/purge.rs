//! Purge counters: by kind and result, objects purged, a latency histogram, dropped tags.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
    /// Cumulative counts per bucket, plus +Inf at the end.
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

    /// `index` is (tags, tagged objects, tag references) of the store's tag index.
    pub fn render(&self, out: &mut String, index: (usize, usize, usize)) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str("# HELP edge_purge_requests_total Purge requests, by kind, mode and result.\n# TYPE edge_purge_requests_total counter\n");
        for (k, kind) in KINDS.iter().enumerate() {
            for (s, mode) in ["hard", "soft"].iter().enumerate() {
                for (o, outcome) in OUTCOMES.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "edge_purge_requests_total{{kind=\"{kind}\",mode=\"{mode}\",result=\"{outcome}\"}} {}",
                        get(&self.requests[k][s][o])
                    );
                }
            }
        }
        out.push_str("# HELP edge_purge_objects_total Stored objects removed or marked stale by purges (fenced purges count what they covered when known).\n# TYPE edge_purge_objects_total counter\n");
        for (k, kind) in KINDS.iter().enumerate() {
            let _ = writeln!(
                out,
                "edge_purge_objects_total{{kind=\"{kind}\"}} {}",
                get(&self.objects[k])
            );
        }
        out.push_str("# HELP edge_purge_duration_seconds Time from an authorised purge request to the purge being in effect.\n# TYPE edge_purge_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += get(&self.latency[i]);
            let _ = writeln!(
                out,
                "edge_purge_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += get(&self.latency[BUCKETS.len()]);
        let _ = writeln!(
            out,
            "edge_purge_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}\nedge_purge_duration_seconds_sum {:.6}\nedge_purge_duration_seconds_count {cumulative}",
            get(&self.latency_sum_us) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP edge_cache_tags_dropped_total Surrogate keys dropped for exceeding the per-object limits.\n# TYPE edge_cache_tags_dropped_total counter\nedge_cache_tags_dropped_total {}",
            get(&self.tags_dropped)
        );
        let (tags, objects, refs) = index;
        let _ = writeln!(
            out,
            "# HELP edge_cache_tag_index_tags Distinct surrogate keys in the tag index.\n# TYPE edge_cache_tag_index_tags gauge\nedge_cache_tag_index_tags {tags}\n# HELP edge_cache_tag_index_objects Stored objects with at least one surrogate key.\n# TYPE edge_cache_tag_index_objects gauge\nedge_cache_tag_index_objects {objects}\n# HELP edge_cache_tag_index_refs Object-to-key references in the tag index.\n# TYPE edge_cache_tag_index_refs gauge\nedge_cache_tag_index_refs {refs}"
        );
    }
}
