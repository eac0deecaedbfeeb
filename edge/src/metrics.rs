//! Process-wide counters and the registry's collectors, encoded by `prometheus-client` in the
//! Prometheus text format or OpenMetrics on the admin listener.
//!
//! Plain atomics indexed by small enums: counting on the hot path is one relaxed add.

use std::sync::atomic::{AtomicU64, Ordering};

use cache::Storage as _;
use cache::encoding::Coding;
use cache::status::{CacheStatus, Fwd};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

pub mod conns;
pub mod geo;
pub mod limits;
pub mod origins;
pub mod purge;
pub mod requests;
pub mod tiers;
pub use purge::PURGE_METRICS;

/// Why a body was encoded: per request at the fast level, or once for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    Fly,
    Stored,
}

const CODINGS: usize = 3;

fn ci(c: Coding) -> usize {
    match c {
        Coding::Zstd => 0,
        Coding::Br => 1,
        Coding::Gzip => 2,
    }
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const PROTOCOLS: [&str; 3] = ["1.1", "2", "3"];
/// The outcomes counted per request, from the `Cache-Status` of the response.
pub(crate) const CACHE_RESULTS: [&str; 5] = ["hit", "miss", "stale", "pass", "none"];

/// The bucket (index into `CACHE_RESULTS`) of a response's cache outcome.
pub(crate) fn cache_result(status: Option<&CacheStatus>) -> usize {
    let Some(status) = status else { return 4 };
    match (status.hit, status.fwd) {
        (true, Some(Fwd::Stale)) => 2,
        (true, _) => 0,
        (false, Some(Fwd::Bypass)) => 3,
        (false, Some(_)) if status.detail.is_some() && !status.stored => 3,
        (false, Some(_)) => 1,
        (false, None) => 4,
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const PAIR: [AtomicU64; 2] = [ZERO; 2];
#[allow(clippy::declare_interior_mutable_const)]
const CLASSES: [AtomicU64; STATUS_CLASSES.len()] = [ZERO; STATUS_CLASSES.len()];

pub struct Metrics {
    encodes: [[AtomicU64; 2]; CODINGS],
    encode_in: [AtomicU64; CODINGS],
    encode_out: [AtomicU64; CODINGS],
    variant_hits: [AtomicU64; CODINGS],
    decodes: [AtomicU64; CODINGS],
    responses: [[AtomicU64; STATUS_CLASSES.len()]; PROTOCOLS.len()],
    cache: [AtomicU64; CACHE_RESULTS.len()],
}

pub static METRICS: Metrics = Metrics {
    encodes: [PAIR; CODINGS],
    encode_in: [ZERO; CODINGS],
    encode_out: [ZERO; CODINGS],
    variant_hits: [ZERO; CODINGS],
    decodes: [ZERO; CODINGS],
    responses: [CLASSES; PROTOCOLS.len()],
    cache: [ZERO; CACHE_RESULTS.len()],
};

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    pub fn encode_started(&self, coding: Coding, made: Made) {
        add(&self.encodes[ci(coding)][made as usize], 1);
    }

    pub fn encoded_bytes(&self, coding: Coding, bytes_in: u64, bytes_out: u64) {
        add(&self.encode_in[ci(coding)], bytes_in);
        add(&self.encode_out[ci(coding)], bytes_out);
    }

    pub fn variant_hit(&self, coding: Coding) {
        add(&self.variant_hits[ci(coding)], 1);
    }

    pub fn decoded(&self, coding: Coding) {
        add(&self.decodes[ci(coding)], 1);
    }

    /// One response sent, with the `Cache-Status` it carried (if any).
    pub fn response(&self, version: http::Version, status: u16, cache: Option<&CacheStatus>) {
        // Indexes into PROTOCOLS and STATUS_CLASSES.
        let p = match version {
            http::Version::HTTP_2 => 1,
            http::Version::HTTP_3 => 2,
            _ => 0,
        };
        let s = usize::from(status / 100).clamp(1, 5) - 1;
        add(&self.responses[p][s], 1);
        add(&self.cache[cache_result(cache)], 1);
    }

    /// Responses so far: by protocol (`1.1`, `2`, `3`) and status class, and by cache outcome
    /// (`CACHE_RESULTS` order). The status page's totals.
    pub fn snapshot(&self) -> ([[u64; 5]; 3], [u64; 5]) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        (
            std::array::from_fn(|p| std::array::from_fn(|s| get(&self.responses[p][s]))),
            std::array::from_fn(|c| get(&self.cache[c])),
        )
    }

    /// Responses sent so far, and how many of them were 5xx (the control plane's node report).
    pub fn totals(&self) -> (u64, u64) {
        let mut all = 0;
        let mut errors = 0;
        for per_proto in &self.responses {
            for (s, c) in per_proto.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                all += n;
                if s == 4 {
                    errors += n;
                }
            }
        }
        (all, errors)
    }
}

/// Encodes [`METRICS`] and the store's byte gauges (from the node's state).
#[derive(Debug)]
pub(crate) struct ResponsesCollector;

impl Collector for ResponsesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let me = &METRICS;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        {
            let mut m = encoder.encode_descriptor(
                "edge_responses",
                "Responses sent, by protocol and status class.",
                None,
                MetricType::Counter,
            )?;
            for (p, proto) in PROTOCOLS.iter().enumerate() {
                for (s, class) in STATUS_CLASSES.iter().enumerate() {
                    let labels = [("protocol", *proto), ("status", *class)];
                    ConstCounter::new(get(&me.responses[p][s]))
                        .encode(m.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "edge_cache_responses",
                "Responses by cache outcome.",
                None,
                MetricType::Counter,
            )?;
            for (i, result) in CACHE_RESULTS.iter().enumerate() {
                ConstCounter::new(get(&me.cache[i]))
                    .encode(m.encode_family(&[("result", *result)])?)?;
            }
        }
        let codings = [Coding::Zstd, Coding::Br, Coding::Gzip];
        {
            let mut m = encoder.encode_descriptor(
                "edge_compress_encodes",
                "Bodies run through an encoder: per request (fly) or once for the cache (stored).",
                None,
                MetricType::Counter,
            )?;
            for c in codings {
                for (i, made) in ["fly", "stored"].iter().enumerate() {
                    let labels = [("coding", c.as_str()), ("made", *made)];
                    ConstCounter::new(get(&me.encodes[ci(c)][i]))
                        .encode(m.encode_family(&labels)?)?;
                }
            }
        }
        let per_coding: [(&str, &str, &[AtomicU64; CODINGS]); 4] = [
            (
                "edge_compress_input_bytes",
                "Bytes fed to encoders.",
                &me.encode_in,
            ),
            (
                "edge_compress_output_bytes",
                "Bytes produced by encoders.",
                &me.encode_out,
            ),
            (
                "edge_compress_variant_hits",
                "Responses served from a stored encoded variant, without encoding.",
                &me.variant_hits,
            ),
            (
                "edge_compress_decodes",
                "Origin bodies decoded for clients that do not accept their coding.",
                &me.decodes,
            ),
        ];
        for (name, help, values) in per_coding {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for c in codings {
                ConstCounter::new(get(&values[ci(c)]))
                    .encode(m.encode_family(&[("coding", c.as_str())])?)?;
            }
        }
        let Some(shared) = origins::shared() else {
            return Ok(());
        };
        {
            let spans = &shared.spans;
            let mut m = encoder.encode_descriptor(
                "edge_otlp_spans",
                "Request spans for the OTLP collector: exported, failed (the export was refused or never arrived) or dropped (the queue was full).",
                None,
                MetricType::Counter,
            )?;
            for (result, n) in [
                ("exported", &spans.exported),
                ("failed", &spans.failed),
                ("dropped", &spans.dropped),
            ] {
                ConstCounter::new(n.load(Ordering::Relaxed))
                    .encode(m.encode_family(&[("result", result)])?)?;
            }
        }
        let store = &shared.cache.store;
        let gauges = [
            (
                "edge_cache_memory_bytes",
                "Bytes held by the memory tier (weighted).",
                store.memory_bytes_now(),
            ),
            (
                "edge_cache_disk_bytes",
                "Bytes held by the disk tier.",
                store.disk_bytes(),
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
