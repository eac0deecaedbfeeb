//! Process-wide counters, rendered in the Prometheus text format on the admin listener.
//!
//! Plain atomics indexed by small enums: counting on the hot path is one relaxed add.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use cache::encoding::Coding;
use cache::status::{CacheStatus, Fwd};

pub mod conns;
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

    /// The Prometheus text exposition of every counter, plus the store's gauges.
    pub fn render(&self, memory_bytes: u64, disk_bytes: u64) -> String {
        let mut out = String::with_capacity(4096);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let codings = [Coding::Zstd, Coding::Br, Coding::Gzip];

        out.push_str("# HELP edge_responses_total Responses sent, by protocol and status class.\n# TYPE edge_responses_total counter\n");
        for (p, proto) in PROTOCOLS.iter().enumerate() {
            for (s, class) in STATUS_CLASSES.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "edge_responses_total{{protocol=\"{proto}\",status=\"{class}\"}} {}",
                    get(&self.responses[p][s])
                );
            }
        }
        out.push_str("# HELP edge_cache_responses_total Responses by cache outcome.\n# TYPE edge_cache_responses_total counter\n");
        for (i, result) in CACHE_RESULTS.iter().enumerate() {
            let _ = writeln!(
                out,
                "edge_cache_responses_total{{result=\"{result}\"}} {}",
                get(&self.cache[i])
            );
        }
        out.push_str("# HELP edge_compress_encodes_total Bodies run through an encoder: per request (fly) or once for the cache (stored).\n# TYPE edge_compress_encodes_total counter\n");
        for c in codings {
            for (m, made) in ["fly", "stored"].iter().enumerate() {
                let _ = writeln!(
                    out,
                    "edge_compress_encodes_total{{coding=\"{c}\",made=\"{made}\"}} {}",
                    get(&self.encodes[ci(c)][m])
                );
            }
        }
        out.push_str("# HELP edge_compress_input_bytes_total Bytes fed to encoders.\n# TYPE edge_compress_input_bytes_total counter\n");
        for c in codings {
            let _ = writeln!(
                out,
                "edge_compress_input_bytes_total{{coding=\"{c}\"}} {}",
                get(&self.encode_in[ci(c)])
            );
        }
        out.push_str("# HELP edge_compress_output_bytes_total Bytes produced by encoders.\n# TYPE edge_compress_output_bytes_total counter\n");
        for c in codings {
            let _ = writeln!(
                out,
                "edge_compress_output_bytes_total{{coding=\"{c}\"}} {}",
                get(&self.encode_out[ci(c)])
            );
        }
        out.push_str("# HELP edge_compress_variant_hits_total Responses served from a stored encoded variant, without encoding.\n# TYPE edge_compress_variant_hits_total counter\n");
        for c in codings {
            let _ = writeln!(
                out,
                "edge_compress_variant_hits_total{{coding=\"{c}\"}} {}",
                get(&self.variant_hits[ci(c)])
            );
        }
        out.push_str("# HELP edge_compress_decodes_total Origin bodies decoded for clients that do not accept their coding.\n# TYPE edge_compress_decodes_total counter\n");
        for c in codings {
            let _ = writeln!(
                out,
                "edge_compress_decodes_total{{coding=\"{c}\"}} {}",
                get(&self.decodes[ci(c)])
            );
        }
        let _ = writeln!(
            out,
            "# HELP edge_cache_memory_bytes Bytes held by the memory tier (weighted).\n# TYPE edge_cache_memory_bytes gauge\nedge_cache_memory_bytes {memory_bytes}"
        );
        let _ = writeln!(
            out,
            "# HELP edge_cache_disk_bytes Bytes held by the disk tier.\n# TYPE edge_cache_disk_bytes gauge\nedge_cache_disk_bytes {disk_bytes}"
        );
        requests::render_prometheus(&mut out);
        out
    }
}
