//! What an operator or a load balancer asks a node about itself: `GET /healthz` (the process
//! answers), `GET /readyz` (it should get traffic), `POST /drain` (it should not, from now on),
//! `GET /status.json` (everything at a glance) and `GET /`, the page that shows it.
//!
//! Request counts come from the Prometheus text of `/metrics` (the one thing the metrics
//! module promises to keep rendering), parsed here, so this module adds nothing to the hot
//! path; a background task samples them every [`SAMPLE_EVERY`] into a five-minute history.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cache::Storage as _;
use edge_core::clock::{self, Instant};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use purge_api::{Kind, Token};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{json, text};
use crate::body::{self, ProxyBody};
use crate::pipeline::{Runtime, Shared};

/// The page, served as is: inline CSS and JS, no external asset, no build step.
const PAGE: &str = include_str!("status.html");

/// How often the history takes a sample, and how much of it is kept.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
const HISTORY_SAMPLES: usize = 150; // 5 minutes
const RECENT_ERRORS: usize = 20;
const RECENT_PURGES: usize = 10;
/// A drain body is `{"drain": false}` at most; anything larger is a mistake.
const DRAIN_BODY_BYTES: usize = 1024;
const DRAIN_BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether something feeds [`note_error`]: the pipeline does, for each 5xx response head
/// (`pipeline::observe`), whether or not the access log is on.
const ERRORS_FED: bool = true;

// ---- /healthz, /readyz ----------------------------------------------------------------------

/// `GET /healthz`: the process runs and its admin listener answers.
pub fn healthz() -> Response<ProxyBody> {
    no_store(text(StatusCode::OK, "ok\n".into()))
}

/// Why the node should not get traffic now, if it should not. Config is loaded and the cache
/// open once `Shared` exists (the process exits when either fails), so what is left to check
/// is the listeners and the drain.
pub fn not_ready(shared: &Shared) -> Option<&'static str> {
    if shared.draining.load(Ordering::Relaxed) {
        Some("draining")
    } else if shared.listen_ports.get().is_none() {
        Some("listeners not bound yet")
    } else {
        None
    }
}

/// `GET /readyz`: 200 while the node should get traffic, 503 with the reason otherwise.
pub fn readyz(shared: &Shared) -> Response<ProxyBody> {
    no_store(match not_ready(shared) {
        None => text(StatusCode::OK, "ready\n".into()),
        Some(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    })
}

fn no_store(mut resp: Response<ProxyBody>) -> Response<ProxyBody> {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

// ---- POST /drain ----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrainBody {
    #[serde(default = "yes")]
    drain: bool,
}

fn yes() -> bool {
    true
}

/// Whether `token` may take the whole node out of rotation: only one that may purge
/// everything on every site (not read-only, not limited to some sites or kinds), since a drain
/// affects every site the node serves.
fn may_drain(token: &Token) -> bool {
    !token.read_only
        && token.sites.is_none()
        && token
            .kinds
            .as_ref()
            .is_none_or(|k| k.contains(&Kind::Everything))
}

/// `POST /drain` (empty body or `{"drain": true}`) sets draining; `{"drain": false}` undoes
/// it. The node keeps serving either way: only `/readyz` changes.
pub async fn drain(shared: &Shared, rt: &Runtime, req: Request<Incoming>) -> Response<ProxyBody> {
    let (parts, incoming) = req.into_parts();
    let token = match super::purge::reader(&rt.snapshot.admin, &parts.headers) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    if !may_drain(token) {
        return json(
            StatusCode::FORBIDDEN,
            &json!({"error": format!(
                "token `{}` may not drain the node: that needs a token that may purge \
                 everything (not read-only, not limited to sites or kinds)",
                token.name
            )}),
        );
    }
    let body = match read_small_body(&parts.headers, incoming).await {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let wanted = if body.iter().all(u8::is_ascii_whitespace) {
        true
    } else {
        match serde_json::from_slice::<DrainBody>(&body) {
            Ok(b) => b.drain,
            Err(e) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": format!("expected an empty body or {{\"drain\": true|false}}: {e}")}),
                );
            }
        }
    };
    let previous = shared.draining.swap(wanted, Ordering::Relaxed);
    tracing::warn!(
        token = %token.name,
        draining = wanted,
        previous,
        "drain {} through the admin API",
        if wanted { "set" } else { "cleared" }
    );
    json(
        StatusCode::OK,
        &json!({"draining": wanted, "previous": previous}),
    )
}

async fn read_small_body(
    headers: &HeaderMap,
    incoming: Incoming,
) -> Result<Vec<u8>, Box<Response<ProxyBody>>> {
    let too_large = || {
        Box::new(json(
            StatusCode::PAYLOAD_TOO_LARGE,
            &json!({"error": format!("a drain body is at most {DRAIN_BODY_BYTES} bytes")}),
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let limited = Limited::new(incoming, DRAIN_BODY_BYTES);
    match tokio::time::timeout(DRAIN_BODY_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(Box::new(json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "the request body could not be read"}),
        ))),
        Err(_) => Err(Box::new(text(
            StatusCode::REQUEST_TIMEOUT,
            "the request body arrived too slowly\n".into(),
        ))),
    }
}

// ---- GET / ----------------------------------------------------------------------------------

/// `GET /`: the page. It holds no data (it fetches `/status.json`, with the token it was
/// given in `?token=`), so it is served to anyone who can reach the listener.
pub fn page() -> Response<ProxyBody> {
    let mut resp = Response::new(body::full(PAGE));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Everything is inline; nothing may load from elsewhere, and the token in the URL must not
    // leave in a Referer.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

// ---- request counts, from the metrics text --------------------------------------------------

/// Request counts by protocol (`h1`, `h2`, `h3`), status class (`2xx`, …) and cache result
/// (`hit`, `miss`, `stale`, `pass`, `none`), since the process started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub total: u64,
    pub by_protocol: BTreeMap<String, u64>,
    pub by_status: BTreeMap<String, u64>,
    pub by_cache: BTreeMap<String, u64>,
}

/// The families that count responses, in order of preference (only one is read, so a series
/// kept under its old name beside a new one is not counted twice).
const RESPONSE_FAMILIES: [&str; 3] = [
    "edge_responses_total",
    "edge_http_requests_total",
    "edge_requests_total",
];
const CACHE_FAMILY: &str = "edge_cache_responses_total";
const PROTOCOL_LABELS: [&str; 2] = ["protocol", "proto"];
const STATUS_LABELS: [&str; 3] = ["status", "status_class", "class"];
const CACHE_LABELS: [&str; 3] = ["result", "cache", "cache_status"];

impl Totals {
    /// Reads the counts from a Prometheus (or OpenMetrics) text exposition.
    pub fn from_exposition(text: &str) -> Totals {
        let samples: Vec<Sample<'_>> = text.lines().filter_map(parse_sample).collect();
        let mut t = Totals::default();
        for p in ["h1", "h2", "h3"] {
            t.by_protocol.insert(p.into(), 0);
        }
        for c in ["1xx", "2xx", "3xx", "4xx", "5xx"] {
            t.by_status.insert(c.into(), 0);
        }
        let family = RESPONSE_FAMILIES
            .into_iter()
            .find(|f| samples.iter().any(|s| s.name == *f));
        let has_cache_family = samples.iter().any(|s| s.name == CACHE_FAMILY);
        for s in &samples {
            let n = s.value as u64;
            if Some(s.name) == family {
                t.total += n;
                if let Some(p) = s.label(&PROTOCOL_LABELS) {
                    *t.by_protocol.entry(protocol_name(p)).or_default() += n;
                }
                if let Some(c) = s.label(&STATUS_LABELS) {
                    *t.by_status.entry(status_class(c)).or_default() += n;
                }
                if !has_cache_family && let Some(c) = s.label(&CACHE_LABELS) {
                    *t.by_cache.entry(c.to_owned()).or_default() += n;
                }
            } else if s.name == CACHE_FAMILY
                && let Some(c) = s.label(&CACHE_LABELS)
            {
                *t.by_cache.entry(c.to_owned()).or_default() += n;
            }
        }
        t
    }

    /// Responses served from the cache (fresh or stale) and responses the cache was asked
    /// about (every outcome but `none`, which is a response the cache never saw).
    fn hits_and_lookups(&self) -> (u64, u64) {
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

fn protocol_name(label: &str) -> String {
    match label.to_ascii_lowercase().as_str() {
        "1.0" | "1.1" | "h1" | "http1" | "http/1.1" | "http/1.0" => "h1".into(),
        "2" | "2.0" | "h2" | "http2" | "http/2" => "h2".into(),
        "3" | "3.0" | "h3" | "http3" | "http/3" => "h3".into(),
        other => other.into(),
    }
}

/// `2xx` as is; a bare status (`503`) as its class.
fn status_class(label: &str) -> String {
    match label.as_bytes() {
        [d @ b'1'..=b'5', b'0'..=b'9', b'0'..=b'9'] => format!("{}xx", char::from(*d)),
        _ => label.to_ascii_lowercase(),
    }
}

/// One sample line: `name{label="value",…} value [timestamp]`.
#[derive(Debug)]
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: f64,
}

impl Sample<'_> {
    /// The value of the first of `keys` this sample carries.
    fn label(&self, keys: &[&str]) -> Option<&str> {
        keys.iter().find_map(|k| {
            self.labels
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.as_str())
        })
    }
}

fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_ascii_whitespace())?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        loop {
            // Skip separators; `}` ends the set.
            while chars
                .next_if(|(_, c)| *c == ',' || c.is_whitespace())
                .is_some()
            {}
            let (start, c) = chars.next()?;
            if c == '}' {
                rest = &inner[start + 1..];
                break;
            }
            let mut eq = start;
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    eq = i;
                    break;
                }
            }
            let key = inner[start..eq].trim();
            chars.next_if(|(_, c)| *c == '"')?;
            let mut value = String::new();
            loop {
                match chars.next()? {
                    (_, '"') => break,
                    (_, '\\') => match chars.next()? {
                        (_, 'n') => value.push('\n'),
                        (_, c) => value.push(c),
                    },
                    (_, c) => value.push(c),
                }
            }
            labels.push((key, value));
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

// ---- the history ----------------------------------------------------------------------------

/// One interval of the history: what happened between two readings of the counters.
#[derive(Debug, Clone, Serialize)]
struct Interval {
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update leaves the state whole before anything can panic: poison is harmless.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the task that samples the counters (once per process, whatever the number of admin
/// listeners). It runs as long as the process does, so the page stays live while the node
/// drains.
pub fn start_sampler(shared: Arc<Shared>) {
    if SAMPLER.swap(true, Ordering::Relaxed) {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The first tick is at once: the baseline is read before any traffic is served.
            tick.tick().await;
            let totals = Totals::from_exposition(&super::metrics_text(&shared));
            lock(&HISTORY).record(clock::now(), clock::unix_ms(), totals);
        }
    });
}

// ---- recent errors --------------------------------------------------------------------------

/// One 5xx response, as the page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RecentError {
    pub at_unix_ms: u64,
    pub status: u16,
    pub protocol: String,
    pub method: String,
    pub host: String,
    pub path: String,
    pub site: String,
    pub request_id: String,
}

static ERRORS: Mutex<VecDeque<RecentError>> = Mutex::new(VecDeque::new());

/// Keeps `e` among the last [`RECENT_ERRORS`] 5xx responses. For whoever sees finished
/// responses (the access log); a lock per 5xx, nothing per other response.
pub fn note_error(e: RecentError) {
    let mut errors = lock(&ERRORS);
    errors.push_back(e);
    while errors.len() > RECENT_ERRORS {
        errors.pop_front();
    }
}

// ---- GET /status.json -----------------------------------------------------------------------

/// `GET /status.json` (the caller checked the token).
pub fn status_json(shared: &Shared, rt: &Runtime) -> Response<ProxyBody> {
    json(StatusCode::OK, &status(shared, rt))
}

/// Everything the page shows.
pub fn status(shared: &Shared, rt: &Runtime) -> Value {
    let snap = &rt.snapshot;
    let uptime_ms = clock::monotonic_ms();
    let now = clock::unix_ms();
    let totals = Totals::from_exposition(&super::metrics_text(shared));
    let (hits, lookups) = totals.hits_and_lookups();
    let samples: Vec<Interval> = lock(&HISTORY).samples.iter().cloned().collect();
    let applied = snap
        .loaded_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    json!({
        "now_unix_ms": now,
        "node": {
            "name": snap.node_name,
            "pop": snap.pop,
            "region": snap.region,
            "tier": snap.tier.as_str(),
        },
        "edge": {
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            // The clock's anchor is read in the first moments of the process.
            "started_unix_ms": now.saturating_sub(uptime_ms),
            "uptime_s": uptime_ms / 1000,
        },
        "config": {
            "version": snap.version,
            "source": snap.source.display().to_string(),
            "applied_unix_ms": applied,
            "sites": snap.sites.len(),
        },
        "control_plane": {"etcd": shared.bus.get().is_some()},
        "draining": shared.draining.load(Ordering::Relaxed),
        "ready": not_ready(shared).is_none(),
        "not_ready_reason": not_ready(shared),
        "requests": {
            "total": totals.total,
            "by_protocol": totals.by_protocol,
            "by_status": totals.by_status,
            "by_cache": totals.by_cache,
            "hit_ratio": (lookups > 0).then(|| hits as f64 / lookups as f64),
        },
        "history": {
            "interval_s": SAMPLE_EVERY.as_secs(),
            "window_s": SAMPLE_EVERY.as_secs() * HISTORY_SAMPLES as u64,
            "samples": samples,
        },
        "cache": cache(shared),
        "pools": pools(&rt.pools),
        "recent_errors": lock(&ERRORS).iter().rev().cloned().collect::<Vec<_>>(),
        "recent_errors_fed": ERRORS_FED,
        "purges": purges(shared),
    })
}

fn cache(shared: &Shared) -> Value {
    let store = &shared.cache.store;
    // Read without waiting: the metrics' tier task settles the memory tier's lazy counts once
    // a second, so these lag by about that much at most.
    let t = store.tier_stats();
    let mut tiers = vec![json!({
        "name": "memory",
        "objects": t.memory_objects,
        "bytes": t.memory_bytes,
        "budget_bytes": t.memory_budget,
        "evictions": t.memory_evictions,
    })];
    if let Some(dir) = &shared.cache.settings.disk_dir {
        tiers.push(json!({
            "name": "disk",
            "objects": t.disk_objects,
            "bytes": t.disk_bytes,
            "budget_bytes": t.disk_budget,
            "evictions": t.disk_evictions,
            "dir": dir.display().to_string(),
        }));
    }
    let (tags, tagged_objects, _) = store.tag_index_size();
    json!({"tiers": tiers, "tags": tags, "tagged_objects": tagged_objects})
}

fn pools(pools: &origin_shield::Pools) -> Value {
    let now = origin_shield::balance::now_ms();
    let mut list: Vec<_> = pools.iter().collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    let out: Vec<Value> = list
        .into_iter()
        .map(|p| {
            let members = p.members();
            let endpoints: Vec<Value> = members
                .endpoints
                .iter()
                .map(|e| {
                    let healthy = e.state.healthy();
                    let ejected = e.state.ejected(now);
                    let ewma = e.state.ewma();
                    json!({
                        "address": e.addr.to_string(),
                        "weight": e.weight,
                        "healthy": healthy,
                        "ejected": ejected,
                        "in_rotation": healthy && !ejected,
                        "in_flight": e.state.in_flight.load(Ordering::Relaxed),
                        // No response seen yet: no latency, rather than 0 ms.
                        "latency_ewma_ms": (!ewma.is_zero()).then_some(ewma.as_secs_f64() * 1000.0),
                    })
                })
                .collect();
            let up = endpoints
                .iter()
                .filter(|e| e["in_rotation"] == true)
                .count();
            json!({
                "name": p.name,
                "algorithm": kebab(&format!("{:?}", p.cfg.algorithm)),
                "health_checks": p.cfg.health.is_some(),
                "dns": !p.cfg.dns.is_empty(),
                "connections_opened": p.client.connections_opened(),
                "in_rotation": up,
                "endpoints": endpoints,
            })
        })
        .collect();
    Value::Array(out)
}

/// `P2cEwma` → `p2c-ewma`: the config's spelling of a variant name.
fn kebab(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn purges(shared: &Shared) -> Value {
    let recent: Vec<Value> = shared
        .purges
        .recent(RECENT_PURGES)
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "status": r.status,
                "kind": r.request.targets.kind().as_str(),
                "soft": r.request.soft,
                "purged": r.purged,
                "took_us": r.took_us,
                "token": r.token,
                "at_unix_ms": r.at_unix_ms,
            })
        })
        .collect();
    json!({"kept": shared.purges.len(), "recent": recent})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const TEXT: &str = r#"# HELP edge_responses_total Responses sent, by protocol and status class.
# TYPE edge_responses_total counter
edge_responses_total{protocol="1.1",status="2xx"} 7
edge_responses_total{protocol="1.1",status="5xx"} 1
edge_responses_total{protocol="2",status="2xx"} 3
edge_responses_total{protocol="3",status="4xx"} 2
# TYPE edge_cache_responses_total counter
edge_cache_responses_total{result="hit"} 5
edge_cache_responses_total{result="miss"} 2
edge_cache_responses_total{result="stale"} 1
edge_cache_responses_total{result="none"} 5
edge_origin_endpoint_up{pool="a,b}",endpoint="127.0.0.1:1"} 1
"#;

    #[test]
    fn totals_from_the_metrics_text() {
        let t = Totals::from_exposition(TEXT);
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
    fn labels_with_escapes_and_other_families() {
        let s = parse_sample(r#"x_total{a="q\"uo,te}",b="n\\l"} 4.5 1700000000"#).unwrap();
        assert_eq!(s.name, "x_total");
        assert_eq!(s.labels, [("a", "q\"uo,te}".into()), ("b", "n\\l".into())]);
        assert_eq!(s.value, 4.5);
        assert_eq!(parse_sample("up 1").unwrap().value, 1.0);
        assert!(parse_sample("# EOF").is_none());
        assert!(parse_sample(r#"broken{a="1" 3"#).is_none());
        // A newer family with a cache label on each request series, beside no cache family.
        let t = Totals::from_exposition(
            "edge_requests_total{site=\"s\",protocol=\"h3\",status=\"503\",cache=\"miss\"} 2\n\
             edge_requests_total{site=\"t\",protocol=\"h3\",status=\"200\",cache=\"hit\"} 3\n",
        );
        assert_eq!(t.total, 5);
        assert_eq!(t.by_protocol["h3"], 5);
        assert_eq!(t.by_status["5xx"], 2);
        assert_eq!(t.by_cache["hit"], 3);
    }

    /// What the metrics module renders today parses: a renamed series fails here, not on the
    /// page.
    #[test]
    fn the_real_metrics_text_parses() {
        let before = Totals::from_exposition(&crate::metrics::METRICS.render(0, 0));
        crate::metrics::METRICS.response(http::Version::HTTP_3, 503, None);
        let after = Totals::from_exposition(&crate::metrics::METRICS.render(0, 0));
        assert!(after.by_protocol["h3"] > before.by_protocol["h3"]);
        assert!(after.by_status["5xx"] > before.by_status["5xx"]);
        assert!(after.total > before.total);
        assert!(after.by_cache.contains_key("hit"), "{after:?}");
    }

    #[test]
    fn history_rates_and_hit_ratio() {
        let mut h = History::default();
        let t0 = clock::now();
        h.record(t0, 1_000, Totals::from_exposition(""));
        assert!(h.samples.is_empty(), "the first reading is the baseline");
        h.record(
            t0 + Duration::from_secs(2),
            3_000,
            Totals::from_exposition(TEXT),
        );
        let s = &h.samples[0];
        assert_eq!(
            (s.t, s.dt_ms, s.requests, s.errors_5xx),
            (3_000, 2_000, 13, 1)
        );
        assert_eq!(s.rps["h1"], 4.0);
        assert_eq!(s.rps["total"], 6.5);
        assert_eq!(s.hit_ratio, Some(0.75));
        for i in 0..200 {
            h.record(
                t0 + Duration::from_secs(4 + i),
                0,
                Totals::from_exposition(TEXT),
            );
        }
        assert_eq!(h.samples.len(), HISTORY_SAMPLES);
        assert_eq!(h.samples[HISTORY_SAMPLES - 1].hit_ratio, None);
    }

    #[test]
    fn names() {
        assert_eq!(kebab("P2cEwma"), "p2c-ewma");
        assert_eq!(kebab("RoundRobin"), "round-robin");
        assert_eq!(status_class("503"), "5xx");
        assert_eq!(status_class("2xx"), "2xx");
        assert_eq!(protocol_name("1.1"), "h1");
    }
}
