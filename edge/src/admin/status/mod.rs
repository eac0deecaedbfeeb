//! What an operator or a load balancer asks a node about itself: `GET /healthz` (the process
//! answers), `GET /readyz` (it should get traffic), `POST /drain` (it should not, from now on),
//! `GET /status.json` (everything at a glance) and `GET /`, the page that shows it.
//!
//! Request counts come from the Prometheus text of `/metrics` (the one thing the metrics
//! module promises to keep rendering), parsed here, so this module adds nothing to the hot
//! path; a background task samples them every [`SAMPLE_EVERY`] into a five-minute history.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cache::Storage as _;
use edge_core::clock;
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

mod history;
pub use history::start_sampler;
use history::{HISTORY_SAMPLES, Interval, SAMPLE_EVERY, Totals, lock};

const RECENT_ERRORS: usize = 20;
const RECENT_PURGES: usize = 10;
/// A drain body is `{"drain": false}` at most; anything larger is a mistake.
const DRAIN_BODY_BYTES: usize = 1024;
const DRAIN_BODY_TIMEOUT: Duration = Duration::from_secs(5);

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
    let totals = Totals::now();
    let (hits, lookups) = totals.hits_and_lookups();
    let samples: Vec<Interval> = history::recent();
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
        "control_plane": control_plane(shared),
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

type ControlFn = Box<dyn Fn() -> control::ControlStatus + Send + Sync>;
static CONTROL: std::sync::OnceLock<ControlFn> = std::sync::OnceLock::new();

/// Where the page reads the control plane's state from (a node on etcd, set once at start).
pub fn set_control(f: impl Fn() -> control::ControlStatus + Send + Sync + 'static) {
    let _ = CONTROL.set(Box::new(f));
}

/// `{"etcd": false}` for a node on a file; else the version it runs, the rollout as last read
/// and whether this node is one of its canaries.
fn control_plane(shared: &Shared) -> Value {
    match CONTROL.get() {
        Some(f) if shared.bus.get().is_some() => {
            let mut v = serde_json::to_value(f()).unwrap_or(Value::Null);
            if let Some(m) = v.as_object_mut() {
                m.insert("etcd".into(), Value::Bool(true));
            }
            v
        }
        _ => json!({"etcd": false}),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names() {
        assert_eq!(kebab("P2cEwma"), "p2c-ewma");
        assert_eq!(kebab("RoundRobin"), "round-robin");
    }
}
