//! Per-request series with labels, bounded in cardinality: requests by site, protocol, method
//! class, status class and cache outcome; response bytes by site and protocol; histograms of
//! the request duration (to the end of the body) and of the time to the response head, by
//! site, protocol and cache outcome.
//!
//! The hot path only adds to atomics, spread over a few shards picked per worker thread (two
//! workers never bounce one counter's cache line); a scrape sums the shards and encodes them
//! with `prometheus-client` (a `Collector`), in the Prometheus text format or OpenMetrics.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;

pub const PROTOCOLS: [&str; 3] = ["h1", "h2", "h3"];
/// Method classes: the two cacheable ones by name, then what may change state.
pub const METHODS: [&str; 4] = ["get", "head", "write", "other"];
pub const STATUS: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// As `CACHE_RESULTS` in metrics.rs: hit, miss, stale, pass, none.
pub const CACHE: [&str; 5] = super::CACHE_RESULTS;
/// Upper bounds (seconds): a memory hit is well under a millisecond; misses and large
/// bodies reach into seconds.
pub const BUCKETS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];
/// `BUCKETS` in nanoseconds: the hot path compares integers.
const BOUNDS_NS: [u64; 12] = [
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
    5_000_000_000,
];
const SHARDS: usize = 4;
const COUNTS: usize = PROTOCOLS.len() * METHODS.len() * STATUS.len() * CACHE.len();
const HISTS: usize = PROTOCOLS.len() * CACHE.len();

#[derive(Default)]
struct Hist {
    /// Per bucket (not cumulative), the last one for +Inf.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Hist {
    fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NS
            .iter()
            .position(|b| ns <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

struct Shard {
    requests: [AtomicU64; COUNTS],
    bytes: [AtomicU64; PROTOCOLS.len()],
    bytes_in: [AtomicU64; PROTOCOLS.len()],
    /// Access rule outcomes (`geo::ACCESS` order).
    access: [AtomicU64; 3],
    duration: [Hist; HISTS],
    ttfb: [Hist; HISTS],
}

impl Default for Shard {
    fn default() -> Shard {
        Shard {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            bytes: Default::default(),
            bytes_in: Default::default(),
            access: Default::default(),
            duration: std::array::from_fn(|_| Hist::default()),
            ttfb: std::array::from_fn(|_| Hist::default()),
        }
    }
}

/// One site's series (`-` for requests no site answered).
pub struct SiteMetrics {
    name: String,
    shards: Box<[Shard]>,
}

impl std::fmt::Debug for SiteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteMetrics")
            .field("name", &self.name)
            .finish()
    }
}

/// This thread's shard, chosen once per thread in turn.
pub(crate) fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|i| *i)
}

/// Every site seen so far, by name: a lock-free read per request; a site's first request takes
/// the lock once to add it (sites come from config, so the set is bounded by it).
struct Sites {
    map: ArcSwap<edge_core::ConfigMap<String, Arc<SiteMetrics>>>,
    adding: Mutex<()>,
}

fn sites() -> &'static Sites {
    static SITES: OnceLock<Sites> = OnceLock::new();
    SITES.get_or_init(|| Sites {
        map: ArcSwap::from_pointee(edge_core::ConfigMap::default()),
        adding: Mutex::new(()),
    })
}

/// The series of site `name`.
pub fn site(name: &str) -> Arc<SiteMetrics> {
    let s = sites();
    if let Some(m) = s.map.load().get(name) {
        return m.clone();
    }
    let _adding = s.adding.lock().unwrap_or_else(|e| e.into_inner());
    let current = s.map.load();
    if let Some(m) = current.get(name) {
        return m.clone();
    }
    let m = Arc::new(SiteMetrics {
        name: name.to_string(),
        shards: (0..SHARDS).map(|_| Shard::default()).collect(),
    });
    let mut next = (**current).clone();
    next.insert(name.to_string(), m.clone());
    s.map.store(Arc::new(next));
    m
}

impl SiteMetrics {
    /// An access rule decided a request of this site.
    pub fn access(&self, result: super::geo::Access) {
        self.shards[shard_index()].access[result as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// A request body that counts its bytes into its site's `edge_http_request_body_bytes`.
pub struct CountedIn {
    inner: crate::body::ProxyBody,
    site: Arc<SiteMetrics>,
    proto: usize,
}

impl CountedIn {
    pub fn new(inner: crate::body::ProxyBody, site: Arc<SiteMetrics>, proto: usize) -> Self {
        CountedIn { inner, site, proto }
    }
}

impl http_body::Body for CountedIn {
    type Data = bytes::Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(d) = frame.data_ref()
        {
            let shard = &self.site.shards[shard_index()];
            shard.bytes_in[self.proto].fetch_add(d.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Where a request's response head went; what the end of its body adds to.
pub struct Observed {
    site: Arc<SiteMetrics>,
    proto: usize,
    hist: usize,
    start: edge_core::clock::Instant,
}

pub fn protocol_index(v: http::Version) -> usize {
    match v {
        http::Version::HTTP_2 => 1,
        http::Version::HTTP_3 => 2,
        _ => 0,
    }
}

pub fn method_index(m: &http::Method) -> usize {
    match *m {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        http::Method::POST | http::Method::PUT | http::Method::PATCH | http::Method::DELETE => 2,
        _ => 3,
    }
}

/// Counts a response head: `cache` indexes `CACHE`, `start` is when the request arrived.
pub fn head(
    site: Arc<SiteMetrics>,
    proto: usize,
    method: usize,
    status: u16,
    cache: usize,
    start: edge_core::clock::Instant,
) -> Observed {
    let ttfb = edge_core::clock::since(start);
    let s = usize::from(status / 100).clamp(1, 5) - 1;
    let shard = &site.shards[shard_index()];
    let i = ((proto * METHODS.len() + method) * STATUS.len() + s) * CACHE.len() + cache;
    shard.requests[i].fetch_add(1, Ordering::Relaxed);
    let hist = proto * CACHE.len() + cache;
    shard.ttfb[hist].observe(ttfb);
    Observed {
        site,
        proto,
        hist,
        start,
    }
}

impl Observed {
    /// The body ended (or was abandoned), `bytes` sent.
    pub fn done(&self, bytes: u64) {
        let shard = &self.site.shards[shard_index()];
        shard.duration[self.hist].observe(edge_core::clock::since(self.start));
        shard.bytes[self.proto].fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Encodes every site's series on a scrape.
#[derive(Debug)]
struct RequestsCollector;

fn sum(shards: &[Shard], f: impl Fn(&Shard) -> &AtomicU64) -> u64 {
    shards.iter().map(|s| f(s).load(Ordering::Relaxed)).sum()
}

/// (sum in seconds, count, per-bucket counts) of a histogram over the shards. The counts are
/// per bucket, as `prometheus-client` takes them (its encoders make them cumulative).
fn hist(shards: &[Shard], pick: impl Fn(&Shard) -> &Hist) -> (f64, u64, Vec<(f64, u64)>) {
    let bounds = BUCKETS.iter().copied().chain([f64::INFINITY]);
    let buckets: Vec<(f64, u64)> = bounds
        .enumerate()
        .map(|(i, bound)| (bound, sum(shards, |s| &pick(s).buckets[i])))
        .collect();
    let count = buckets.iter().map(|(_, n)| n).sum();
    let sum_s = sum(shards, |s| &pick(s).sum_ns) as f64 / 1e9;
    (sum_s, count, buckets)
}

impl Collector for RequestsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let map = sites().map.load();
        let mut all: Vec<&Arc<SiteMetrics>> = map.values().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        {
            let mut m = encoder.encode_descriptor(
                "edge_http_requests",
                "HTTP requests answered, by site, protocol, method class, status class and cache outcome.",
                None,
                MetricType::Counter,
            )?;
            for site in &all {
                for (p, proto) in PROTOCOLS.iter().enumerate() {
                    for (mi, method) in METHODS.iter().enumerate() {
                        for (s, status) in STATUS.iter().enumerate() {
                            for (c, cache) in CACHE.iter().enumerate() {
                                let i =
                                    ((p * METHODS.len() + mi) * STATUS.len() + s) * CACHE.len() + c;
                                let n = sum(&site.shards, |sh| &sh.requests[i]);
                                if n == 0 {
                                    continue;
                                }
                                let labels = [
                                    ("site", site.name.as_str()),
                                    ("protocol", proto),
                                    ("method", method),
                                    ("status", status),
                                    ("cache", cache),
                                ];
                                ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
                            }
                        }
                    }
                }
            }
        }
        type Pick = fn(&Shard) -> &[AtomicU64; PROTOCOLS.len()];
        let byte_families: [(&str, &str, Pick); 2] = [
            (
                "edge_http_response_body_bytes",
                "Response body bytes sent, by site and protocol.",
                |sh| &sh.bytes,
            ),
            (
                "edge_http_request_body_bytes",
                "Request body bytes received from clients, by site and protocol.",
                |sh| &sh.bytes_in,
            ),
        ];
        {
            let mut m = encoder.encode_descriptor(
                "edge_access_decisions",
                "Requests an access rule ([[sites.access]]) decided, by site and result.",
                None,
                MetricType::Counter,
            )?;
            for site in &all {
                for (i, result) in super::geo::ACCESS.iter().enumerate() {
                    let n = sum(&site.shards, |sh| &sh.access[i]);
                    if n > 0 {
                        let labels = [("site", site.name.as_str()), ("result", result)];
                        ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
                    }
                }
            }
        }
        for (name, help, pick) in byte_families {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for site in &all {
                for (p, proto) in PROTOCOLS.iter().enumerate() {
                    let n = sum(&site.shards, |sh| &pick(sh)[p]);
                    if n > 0 {
                        let labels = [("site", site.name.as_str()), ("protocol", proto)];
                        ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
                    }
                }
            }
        }
        for (name, help, ttfb) in [
            (
                "edge_http_request_duration_seconds",
                "Time from the request to the end of the response body, by site, protocol and cache outcome.",
                false,
            ),
            (
                "edge_http_time_to_first_byte_seconds",
                "Time from the request to the response head, by site, protocol and cache outcome.",
                true,
            ),
        ] {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for site in &all {
                for (p, proto) in PROTOCOLS.iter().enumerate() {
                    for (c, cache) in CACHE.iter().enumerate() {
                        let h = p * CACHE.len() + c;
                        let (sum_s, count, buckets) = hist(&site.shards, |sh| {
                            if ttfb { &sh.ttfb[h] } else { &sh.duration[h] }
                        });
                        if count == 0 {
                            continue;
                        }
                        let labels = [
                            ("site", site.name.as_str()),
                            ("protocol", proto),
                            ("cache", cache),
                        ];
                        m.encode_family(&labels)?
                            .encode_histogram::<NoLabelSet>(sum_s, count, &buckets, None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The registry every `prometheus-client` series of the node is in.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut r = Registry::default();
        r.register_collector(Box::new(RequestsCollector));
        r.register_collector(Box::new(super::conns::ConnCollector));
        r.register_collector(Box::new(super::tiers::TierCollector));
        r.register_collector(Box::new(super::origins::OriginCollector));
        r.register_collector(Box::new(super::ResponsesCollector));
        r.register_collector(Box::new(super::purge::PurgeCollector));
        r.register_collector(Box::new(super::geo::GeoCollector));
        r.register_collector(Box::new(super::limits::LimitsCollector));
        r
    })
}

/// Every series of the node: OpenMetrics 1.0 when `openmetrics`, else the Prometheus text
/// format (0.0.4). Returns the text and its content type.
pub fn render(openmetrics: bool) -> (String, &'static str) {
    use prometheus_client::encoding::{prometheus_text, text};
    let mut out = String::with_capacity(64 * 1024);
    if openmetrics {
        let _ = text::encode(&mut out, registry());
        (
            out,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    } else {
        let _ = prometheus_text::encode(&mut out, registry());
        (out, prometheus_text::CONTENT_TYPE)
    }
}

/// A response body that tells its [`Observed`] when it ends (or is dropped unfinished): the
/// duration histogram and the byte counter.
pub struct Timed {
    pub(crate) inner: crate::body::ProxyBody,
    observed: Option<Observed>,
    bytes: u64,
}

impl Timed {
    pub fn new(inner: crate::body::ProxyBody, observed: Observed) -> Timed {
        Timed {
            inner,
            observed: Some(observed),
            bytes: 0,
        }
    }

    fn finish(&mut self) {
        if let Some(o) = self.observed.take() {
            o.done(self.bytes);
        }
    }
}

impl http_body::Body for Timed {
    type Data = bytes::Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.bytes += d.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish();
                }
            }
            std::task::Poll::Ready(_) => self.finish(),
            std::task::Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_bounds_match_the_published_ones() {
        for (b, ns) in BUCKETS.iter().zip(BOUNDS_NS) {
            assert_eq!((b * 1e9).round() as u64, ns);
        }
    }

    #[test]
    fn counts_and_buckets_add_up_across_shards() {
        let site = site("unit-test-site");
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let site = site.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        let start = edge_core::clock::now();
                        let o = head(site.clone(), 1, 0, 200, 0, start);
                        o.done(100);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let (out, _) = render(false);
        let line = out
            .lines()
            .find(|l| {
                l.starts_with("edge_http_requests_total{")
                    && l.contains("site=\"unit-test-site\"")
                    && l.contains("protocol=\"h2\"")
            })
            .unwrap_or_else(|| panic!("no series in\n{out}"));
        assert!(line.ends_with(" 30"), "{line}");
        // Observed right away: every one in the first bucket, and counted once per histogram.
        for h in ["time_to_first_byte", "request_duration"] {
            let labels = "site=\"unit-test-site\",protocol=\"h2\",cache=\"hit\"";
            assert!(
                out.contains(&format!("edge_http_{h}_seconds_count{{{labels}}} 30")),
                "{out}"
            );
            assert!(
                out.contains(&format!(
                    "edge_http_{h}_seconds_bucket{{{labels},le=\"+Inf\"}} 30"
                )),
                "{out}"
            );
        }
        assert!(
            out.contains(
                "edge_http_response_body_bytes_total{site=\"unit-test-site\",protocol=\"h2\"} 3000"
            ),
            "{out}"
        );
    }
}
