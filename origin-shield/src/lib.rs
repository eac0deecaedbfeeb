#![forbid(unsafe_code)]
//! Everything that talks to origins.
//!
//! Pools of endpoints (addresses, or names resolved by `dns`) with a balancing algorithm each
//! (`balance`: round-robin, weighted, least-in-flight, P2C-EWMA, consistent hashing, client-IP
//! hash, random), active health checks (`health`), passive outlier ejection, retries within a
//! budget and a circuit breaker. Each pool has one client (HTTP/1.1 keep-alive or HTTP/2, plain
//! or TLS, `connect`) shared by all worker threads and kept across config reloads when its
//! settings do not change.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, Response};
use http_body::Body as _;
use hyper::body::Incoming;

pub mod balance;
mod client;
pub mod connect;
pub mod dns;
mod error;
pub mod health;
pub mod stats;

use client::empty_body;
pub use client::{ClientSettings, OriginClient};
pub use error::{OriginError, Side};

pub use balance::{Affinity, EndpointState};
use balance::{Balancer, now_ms};

/// The body type the data plane uses in both directions (from `edge-core`).
pub use edge_core::body::{BoxError, ProxyBody};

/// In the extensions of every response [`Pool::send`] returns: the endpoint that answered (the
/// access log names it; a retry may have moved the request to another endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnsweredBy(pub SocketAddr);

/// One endpoint of a pool and what is known about it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `addr` as a URI authority, made once: every request to the endpoint carries it.
    pub authority: http::uri::Authority,
    pub weight: u32,
    pub state: Arc<EndpointState>,
}

/// The endpoints of a pool at one moment, with the balancer built over them. Replaced as a
/// whole when DNS answers change; a request keeps the set it started with.
#[derive(Debug)]
pub struct Members {
    pub endpoints: Vec<Endpoint>,
    balancer: Balancer,
}

/// `1.2.3.4:80`, `[::1]:443`: what a socket address prints is always an authority.
fn authority_of(addr: SocketAddr) -> http::uri::Authority {
    #[allow(clippy::expect_used)]
    http::uri::Authority::try_from(addr.to_string()).expect("a socket address is an authority")
}

impl Members {
    /// `list` in order, keeping the state of endpoints `previous` already had.
    fn build(
        algorithm: config::Algorithm,
        list: Vec<(SocketAddr, u32)>,
        previous: Option<&Members>,
    ) -> Members {
        let endpoints: Vec<Endpoint> = list
            .into_iter()
            .map(|(addr, weight)| Endpoint {
                addr,
                authority: authority_of(addr),
                weight,
                state: previous
                    .and_then(|m| m.endpoints.iter().find(|e| e.addr == addr))
                    .map_or_else(Default::default, |e| e.state.clone()),
            })
            .collect();
        let addrs: Vec<SocketAddr> = endpoints.iter().map(|e| e.addr).collect();
        let weights: Vec<u32> = endpoints.iter().map(|e| e.weight).collect();
        Members {
            balancer: Balancer::new(algorithm, &addrs, &weights),
            endpoints,
        }
    }
}

/// A pool of endpoints with its balancer, built per config snapshot. Endpoint state (health,
/// latency, ejections) and DNS answers carry over from the previous snapshot's pool of the
/// same name.
pub struct Pool {
    pub name: String,
    pub cfg: config::Pool,
    members: ArcSwap<Members>,
    /// The current answer for each of `cfg.dns` (None: not resolved yet).
    answers: Mutex<Vec<Option<Vec<IpAddr>>>>,
    /// This pool's connections (HTTP/1.1 or HTTP/2, plain or TLS), shared by every worker.
    pub client: OriginClient,
    /// `cfg.host` as a header value, built once.
    host_header: Option<http::HeaderValue>,
    /// Requests in flight (circuit breaker, retry budget).
    active: AtomicU64,
    active_retries: AtomicU64,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .field("members", &self.members.load().endpoints.len())
            .finish()
    }
}

/// Counts a request in flight while alive.
pub(crate) struct Active<'a>(pub(crate) &'a AtomicU64);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    pub fn new(cfg: &config::Pool, previous: Option<&Pool>, settings: &ClientSettings) -> Pool {
        let prev_members = previous.map(|p| p.members.load_full());
        let answers: Vec<Option<Vec<IpAddr>>> = cfg
            .dns
            .iter()
            .map(|d| {
                let p = previous?;
                let i = p
                    .cfg
                    .dns
                    .iter()
                    .position(|o| o.host == d.host && o.port == d.port)?;
                p.answers.lock().ok()?.get(i).cloned().flatten()
            })
            .collect();
        let members = Members::build(
            cfg.algorithm,
            member_list(cfg, &answers),
            prev_members.as_deref(),
        );
        // Warm connections survive a reload that does not change how we connect.
        let client = match previous {
            Some(p) if p.client.settings == *settings && p.cfg.transport == cfg.transport => {
                p.client.clone()
            }
            _ => OriginClient::new(settings.clone(), &cfg.transport),
        };
        Pool {
            name: cfg.name.clone(),
            client,
            host_header: cfg
                .host
                .as_deref()
                .and_then(|h| http::HeaderValue::from_str(h).ok()),
            cfg: cfg.clone(),
            members: ArcSwap::from_pointee(members),
            answers: Mutex::new(answers),
            active: AtomicU64::new(0),
            active_retries: AtomicU64::new(0),
        }
    }

    /// The endpoints now.
    pub fn members(&self) -> Arc<Members> {
        self.members.load_full()
    }

    /// Whether some DNS name of the pool has never been resolved.
    pub fn dns_pending(&self) -> bool {
        self.answers
            .lock()
            .map(|a| a.iter().any(Option::is_none))
            .unwrap_or(false)
    }

    /// Records the answer for `cfg.dns[i]`; rebuilds the members when it changed. Requests
    /// in flight keep the members they started with, so none is dropped.
    pub fn set_answer(&self, i: usize, mut ips: Vec<IpAddr>) -> bool {
        ips.sort_unstable();
        ips.dedup();
        let Ok(mut answers) = self.answers.lock() else {
            return false;
        };
        if answers.get(i).is_some_and(|a| a.as_ref() == Some(&ips)) {
            return false;
        }
        if let Some(slot) = answers.get_mut(i) {
            *slot = Some(ips);
        }
        let list = member_list(&self.cfg, &answers);
        drop(answers);
        let current = self.members.load_full();
        self.members.store(Arc::new(Members::build(
            self.cfg.algorithm,
            list,
            Some(&current),
        )));
        true
    }

    /// A pool of plain endpoints with default settings.
    #[cfg(test)]
    pub fn with_endpoints(name: &str, endpoints: Vec<SocketAddr>) -> Pool {
        let weights = vec![1; endpoints.len()];
        Pool::new(
            &config::Pool {
                name: name.to_string(),
                endpoints,
                weights,
                dns: Vec::new(),
                algorithm: config::Algorithm::RoundRobin,
                retries: 2,
                retry_budget: 0.2,
                per_try_timeout: None,
                max_requests: 10_000,
                health: None,
                transport: config::OriginTransport {
                    protocol: config::OriginProtocol::Http1,
                    tls: None,
                },
                host: None,
                outlier: config::Outlier {
                    consecutive_failures: 5,
                    base_ejection: Duration::from_secs(10),
                    max_ejection: Duration::from_secs(300),
                    max_ejected_share: 0.5,
                },
            },
            None,
            &ClientSettings {
                max_lifetime: None,
                connect_timeout: Duration::from_secs(3),
                tls_handshake_timeout: Duration::from_secs(5),
                max_idle_per_endpoint: 64,
                idle_timeout: Duration::from_secs(60),
            },
        )
    }

    /// An endpoint of `members` in rotation (healthy, not ejected, not in `exclude`), or None.
    pub fn pick(
        &self,
        members: &Members,
        affinity: Affinity<'_>,
        exclude: &[usize],
    ) -> Option<usize> {
        let now = now_ms();
        let eps = &members.endpoints;
        let usable = |i: usize| {
            !exclude.contains(&i) && eps[i].state.healthy() && !eps[i].state.ejected(now)
        };
        members
            .balancer
            .choose(eps.len(), &|i| &eps[i].state, &usable, affinity)
    }

    /// Endpoints in rotation now.
    pub fn in_rotation(&self) -> Vec<SocketAddr> {
        let now = now_ms();
        self.members()
            .endpoints
            .iter()
            .filter(|e| e.state.healthy() && !e.state.ejected(now))
            .map(|e| e.addr)
            .collect()
    }

    /// Passive outlier detection after a connect error, timeout or 5xx from endpoint `i`.
    fn failed(&self, members: &Members, i: usize) {
        let o = &self.cfg.outlier;
        let ep = &members.endpoints[i];
        let n = ep.state.passive_failure();
        if o.consecutive_failures == 0 || n < o.consecutive_failures {
            return;
        }
        let now = now_ms();
        let ejected = members
            .endpoints
            .iter()
            .filter(|e| e.state.ejected(now))
            .count();
        // Never eject past the share: with every endpoint out, nothing would be served.
        let allowed = (o.max_ejected_share * members.endpoints.len() as f64).floor() as usize;
        if ejected + 1 > allowed {
            return;
        }
        let d = ep.state.eject(now, o.base_ejection, o.max_ejection);
        tracing::warn!(pool = %self.name, endpoint = %ep.addr, failures = n, for_ms = d.as_millis() as u64, "endpoint ejected after consecutive failures");
    }

    /// Counts this request among the retrying ones (once, however many tries it makes).
    fn hold_retry<'a>(&'a self, slot: &mut Option<Active<'a>>) {
        if slot.is_none() {
            self.active_retries.fetch_add(1, Ordering::Relaxed);
            *slot = Some(Active(&self.active_retries));
        }
    }

    /// Whether another retry fits in the budget: at most `retry_budget` of the requests in
    /// flight (and always at least 3), so that retries cannot multiply an outage.
    fn retry_allowed(&self) -> bool {
        let active = self.active.load(Ordering::Relaxed) as f64;
        let cap = (active * self.cfg.retry_budget).max(3.0) as u64;
        self.active_retries.load(Ordering::Relaxed) < cap
    }
}

/// Static endpoints, then every resolved address of every name, without duplicates.
fn member_list(cfg: &config::Pool, answers: &[Option<Vec<IpAddr>>]) -> Vec<(SocketAddr, u32)> {
    let mut list: Vec<(SocketAddr, u32)> = cfg
        .endpoints
        .iter()
        .zip(cfg.weights.iter().chain(std::iter::repeat(&1)))
        .map(|(a, w)| (*a, *w))
        .collect();
    for (d, ips) in cfg.dns.iter().zip(answers) {
        for ip in ips.iter().flatten() {
            let addr = SocketAddr::new(*ip, d.port);
            if !list.iter().any(|(a, _)| *a == addr) {
                list.push((addr, d.weight));
            }
        }
    }
    list
}

/// All pools of one snapshot, by name.
#[derive(Debug, Default)]
pub struct Pools {
    by_name: edge_core::ConfigMap<String, Arc<Pool>>,
    dns: Option<Arc<dns::Dns>>,
}

impl Pools {
    /// Builds the pools of `snapshot`, keeping endpoint state from `previous`.
    pub fn from_snapshot(snapshot: &config::Snapshot, previous: Option<&Pools>) -> Self {
        let settings = ClientSettings::from_snapshot(snapshot);
        let by_name = snapshot
            .pools
            .values()
            .map(|p| {
                let prev = previous.and_then(|pp| pp.by_name.get(&p.name));
                (
                    p.name.clone(),
                    Arc::new(Pool::new(p, prev.map(|a| &**a), &settings)),
                )
            })
            .collect();
        let wants_dns = snapshot.pools.values().any(|p| !p.dns.is_empty());
        let dns = match previous.and_then(|p| p.dns.clone()) {
            Some(d) if d.settings == snapshot.origin.dns => Some(d),
            _ if wants_dns => dns::Dns::new(&snapshot.origin.dns)
                .map_err(|e| tracing::error!(error = %e, "cannot set up the DNS resolver"))
                .ok()
                .map(Arc::new),
            _ => None,
        };
        Pools { by_name, dns }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Pool>> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.by_name.values()
    }

    /// Starts the active health checks and DNS re-resolution of every pool that needs them.
    /// Each task ends by itself once its pool is dropped (after a reload replaced it).
    pub fn start_background(&self) {
        for pool in self.by_name.values() {
            health::spawn(pool);
            if let Some(d) = &self.dns {
                dns::spawn(pool, d);
            }
        }
    }

    /// Waits (at most `within`) until every endpoint name has been resolved once, so that a
    /// starting node does not answer 503 for pools it simply has not resolved yet.
    pub async fn wait_resolved(&self, within: Duration) {
        let deadline = edge_core::clock::now() + within;
        while self.by_name.values().any(|p| p.dns_pending()) && edge_core::clock::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Pool {
    /// Sends `req` (origin-form path in its URI) to an endpoint of `pool` chosen by its
    /// algorithm, retrying on another endpoint when that is safe: the request has no body to
    /// replay, and it is idempotent or never reached the origin (connect failure). Each try
    /// waits at most the pool's `per_try_timeout` (default `header_timeout`) for the response
    /// head; the body then streams. Past `max_requests` in flight: `Overloaded` at once.
    pub async fn send(
        &self,
        req: Request<ProxyBody>,
        header_timeout: Duration,
        affinity: Affinity<'_>,
    ) -> Result<Response<Incoming>, OriginError> {
        let pool = self;
        let limit = pool.cfg.max_requests;
        if pool.active.fetch_add(1, Ordering::Relaxed) >= limit {
            pool.active.fetch_sub(1, Ordering::Relaxed);
            return Err(OriginError::Overloaded {
                pool: pool.name.clone(),
                limit,
            });
        }
        let _active = Active(&pool.active);
        let members = pool.members();
        if members.endpoints.is_empty() {
            return Err(if pool.cfg.dns.is_empty() {
                OriginError::NoEndpoint {
                    pool: pool.name.clone(),
                }
            } else {
                OriginError::NoHealthy {
                    pool: pool.name.clone(),
                }
            });
        }
        let per_try = pool.cfg.per_try_timeout.unwrap_or(header_timeout);
        let (parts, body) = req.into_parts();
        let mut parts = Some(parts);
        // A streamed body cannot be sent twice; only bodiless requests are retried.
        let replayable = body.is_end_stream();
        let idempotent = parts.as_ref().is_some_and(|p| p.method.is_idempotent());
        let mut body = Some(body);
        let mut tried: Vec<usize> = Vec::new();
        // Held while this request is retrying: the budget counts requests, not tries.
        let mut retrying: Option<Active<'_>> = None;
        loop {
            let Some(i) = pool.pick(&members, affinity, &tried) else {
                return Err(OriginError::NoHealthy {
                    pool: pool.name.clone(),
                });
            };
            let ep = &members.endpoints[i];
            let req_body = match body.take() {
                Some(b) => b,
                None => empty_body(),
            };
            // Copy the head only if another try may need it.
            let last_possible = !replayable || tried.len() as u32 >= pool.cfg.retries;
            let head = if last_possible {
                parts.take()
            } else {
                parts.clone()
            };
            let Some(head) = head else {
                return Err(OriginError::NoHealthy {
                    pool: pool.name.clone(),
                });
            };
            let mut req = Request::from_parts(head, req_body);
            if let Some(host) = &pool.host_header {
                req.headers_mut().insert(http::header::HOST, host.clone());
            }
            let started = edge_core::clock::now();
            let result = self.client.send_to(ep, &mut req, per_try).await;
            ep.state.stats.record(match &result {
                Ok(resp) => stats::Outcome::Answered {
                    d: edge_core::clock::since(started),
                    status_5xx: resp.status().is_server_error(),
                },
                Err(e) => stats::Outcome::Failed(match e {
                    OriginError::Connect { .. } => 0,
                    OriginError::Tls { .. } => 1,
                    OriginError::Timeout { .. } => 2,
                    // The client's body failed: not the origin's error.
                    OriginError::ClientBody { .. } => usize::MAX,
                    _ => 3,
                }),
            });
            let last_try = tried.len() as u32 >= pool.cfg.retries;
            let may_retry = |retry_safe: bool| {
                !last_try && replayable && (idempotent || retry_safe) && pool.retry_allowed()
            };
            match result {
                Ok(mut resp) => {
                    resp.extensions_mut().insert(AnsweredBy(ep.addr));
                    let gateway_error = matches!(resp.status().as_u16(), 502..=504);
                    if gateway_error {
                        pool.failed(&members, i);
                        if may_retry(false) && tried.len() + 1 < members.endpoints.len() {
                            tracing::info!(pool = %pool.name, endpoint = %ep.addr, status = resp.status().as_u16(), "retrying on another endpoint");
                            tried.push(i);
                            pool.hold_retry(&mut retrying);
                            continue;
                        }
                    } else {
                        ep.state.passive_success();
                    }
                    return Ok(resp);
                }
                Err(e) => {
                    if !matches!(e, OriginError::ClientBody { .. }) {
                        pool.failed(&members, i);
                    }
                    let retryable =
                        !matches!(e, OriginError::ClientBody { .. }) && may_retry(e.retry_safe());
                    if !retryable {
                        return Err(e);
                    }
                    tried.push(i);
                    if tried.len() >= members.endpoints.len() {
                        return Err(e);
                    }
                    tracing::info!(pool = %pool.name, endpoint = %ep.addr, error = %e, "retrying on another endpoint");
                    pool.hold_retry(&mut retrying);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_budget_is_a_share_of_requests_in_flight_with_a_floor() {
        let pool = Pool::with_endpoints("p", vec![SocketAddr::from(([127, 0, 0, 1], 1))]);
        let set = |active: u64, retries: u64| {
            pool.active.store(active, Ordering::Relaxed);
            pool.active_retries.store(retries, Ordering::Relaxed);
            pool.retry_allowed()
        };
        // 20 % of 100 in flight: 19 retries running leave room for one more, 20 do not.
        assert!(set(100, 19));
        assert!(!set(100, 20));
        // A quiet pool may still retry a little (floor of 3).
        assert!(set(2, 2));
        assert!(!set(2, 3));
    }

    #[test]
    fn dns_answers_replace_members_and_keep_known_state() {
        let mut cfg = Pool::with_endpoints("p", vec![SocketAddr::from(([127, 0, 0, 1], 80))])
            .cfg
            .clone();
        cfg.dns = vec![config::DnsEndpoint {
            host: "app.test".into(),
            port: 8080,
            weight: 1,
        }];
        let settings = Pool::with_endpoints("x", vec![]).client.settings.clone();
        let pool = Pool::new(&cfg, None, &settings);
        assert!(pool.dns_pending());
        assert_eq!(pool.members().endpoints.len(), 1, "static endpoint only");
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert!(pool.set_answer(0, vec![b, a, a]));
        assert!(!pool.dns_pending());
        let before = pool.members();
        let addrs: Vec<SocketAddr> = before.endpoints.iter().map(|e| e.addr).collect();
        assert_eq!(
            addrs,
            vec![
                SocketAddr::from(([127, 0, 0, 1], 80)),
                SocketAddr::new(a, 8080),
                SocketAddr::new(b, 8080)
            ]
        );
        // The same answer in another order changes nothing.
        assert!(!pool.set_answer(0, vec![b, a]));
        // A changed answer: `a` keeps its state object, `b` is gone, a request holding the old
        // set still has all three.
        before.endpoints[1]
            .state
            .in_flight
            .store(7, Ordering::Relaxed);
        assert!(pool.set_answer(0, vec![a]));
        let after = pool.members();
        assert_eq!(after.endpoints.len(), 2);
        assert_eq!(
            after.endpoints[1].state.in_flight.load(Ordering::Relaxed),
            7
        );
        assert_eq!(before.endpoints.len(), 3);
        // A reload keeps the answer.
        let reloaded = Pool::new(&cfg, Some(&pool), &settings);
        assert!(!reloaded.dns_pending());
        assert_eq!(reloaded.members().endpoints.len(), 2);
    }
}
