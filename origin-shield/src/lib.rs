#![forbid(unsafe_code)]
//! Everything that talks to origins.
//!
//! This first cut holds what the data plane needs: pools of endpoints chosen round-robin, and one
//! shared HTTP/1.1 keep-alive client whose idle connections are reused across all worker threads
//! and across config reloads. Health checks, other balancing algorithms, retries, DNS and the
//! shield tier come with the origin issue.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub type BoxError = Box<dyn StdError + Send + Sync>;
/// The body type the data plane uses in both directions.
pub type ProxyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// Why an origin request failed. Each variant knows whether the request may be sent again.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error("pool {pool:?} has no endpoints")]
    NoEndpoint { pool: String },
    #[error("cannot connect to origin {endpoint}: {source}")]
    Connect {
        endpoint: SocketAddr,
        #[source]
        source: BoxError,
    },
    #[error("origin {endpoint} sent no response headers within {after:?}")]
    Timeout {
        endpoint: SocketAddr,
        after: Duration,
    },
    /// The client's request body failed (too large, or the client went away): not the origin's
    /// fault, so it must not be blamed on it.
    #[error("request body from the client failed: {source}")]
    ClientBody {
        #[source]
        source: BoxError,
    },
    #[error("origin {endpoint} failed: {source}")]
    Protocol {
        endpoint: SocketAddr,
        #[source]
        source: BoxError,
    },
}

/// Who caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Origin,
    Internal,
}

impl OriginError {
    pub fn side(&self) -> Side {
        match self {
            OriginError::NoEndpoint { .. } => Side::Internal,
            OriginError::ClientBody { .. } => Side::Client,
            _ => Side::Origin,
        }
    }

    /// True when the origin cannot have seen the request, so any method may be retried.
    pub fn retry_safe(&self) -> bool {
        matches!(
            self,
            OriginError::Connect { .. } | OriginError::NoEndpoint { .. }
        )
    }

    /// The first error of type `E` in the source chain (e.g. a body-limit error).
    pub fn find_source<E: StdError + 'static>(&self) -> Option<&E> {
        let mut cur: Option<&(dyn StdError + 'static)> = self.source();
        while let Some(e) = cur {
            if let Some(found) = e.downcast_ref::<E>() {
                return Some(found);
            }
            cur = e.source();
        }
        None
    }
}

/// A pool's endpoints and its round-robin cursor. Built per config snapshot.
#[derive(Debug)]
pub struct Pool {
    pub name: String,
    endpoints: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Pool {
    pub fn new(name: &str, endpoints: Vec<SocketAddr>) -> Self {
        Pool {
            name: name.to_string(),
            endpoints,
            next: AtomicUsize::new(0),
        }
    }

    pub fn pick(&self) -> Option<SocketAddr> {
        if self.endpoints.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        self.endpoints.get(i).copied()
    }
}

/// All pools of one snapshot, by name.
#[derive(Debug, Default)]
pub struct Pools {
    by_name: HashMap<String, Arc<Pool>>,
}

impl Pools {
    pub fn from_snapshot(snapshot: &config::Snapshot) -> Self {
        let by_name = snapshot
            .pools
            .values()
            .map(|p| {
                (
                    p.name.clone(),
                    Arc::new(Pool::new(&p.name, p.endpoints.clone())),
                )
            })
            .collect();
        Pools { by_name }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Pool>> {
        self.by_name.get(name)
    }
}

/// Settings that shape the shared connection pool (a change rebuilds the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub max_idle_per_endpoint: usize,
    pub idle_timeout: Duration,
}

impl ClientSettings {
    pub fn from_snapshot(s: &config::Snapshot) -> Self {
        ClientSettings {
            connect_timeout: s.timeouts.origin_connect,
            max_idle_per_endpoint: s.origin.max_idle_per_endpoint,
            idle_timeout: s.origin.idle_timeout,
        }
    }
}

/// One HTTP/1.1 keep-alive client shared by every worker thread. hyper-util's pool is keyed by
/// endpoint and checks a connection is still open before handing it out again.
#[derive(Clone, Debug)]
pub struct OriginClient {
    client: Client<HttpConnector, ProxyBody>,
    pub settings: ClientSettings,
}

impl OriginClient {
    pub fn new(settings: ClientSettings) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_max_idle_per_host(settings.max_idle_per_endpoint)
            .pool_idle_timeout(settings.idle_timeout)
            // Origins see exactly the Host the client sent; the edge sets it itself.
            .set_host(false)
            .build(connector);
        OriginClient { client, settings }
    }

    /// Sends `req` (origin-form path in its URI) to one endpoint of `pool`. Waits at most
    /// `header_timeout` for the response head; the body then streams.
    pub async fn send(
        &self,
        pool: &Pool,
        mut req: Request<ProxyBody>,
        header_timeout: Duration,
    ) -> Result<Response<Incoming>, OriginError> {
        let endpoint = pool.pick().ok_or_else(|| OriginError::NoEndpoint {
            pool: pool.name.clone(),
        })?;
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let uri: Uri =
            format!("http://{endpoint}{path}")
                .parse()
                .map_err(|e| OriginError::Protocol {
                    endpoint,
                    source: Box::new(e),
                })?;
        *req.uri_mut() = uri;
        *req.version_mut() = http::Version::HTTP_11;
        match tokio::time::timeout(header_timeout, self.client.request(req)).await {
            Err(_) => Err(OriginError::Timeout {
                endpoint,
                after: header_timeout,
            }),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(classify(endpoint, e)),
        }
    }
}

fn classify(endpoint: SocketAddr, e: hyper_util::client::legacy::Error) -> OriginError {
    if e.is_connect() {
        return OriginError::Connect {
            endpoint,
            source: Box::new(e),
        };
    }
    // A failing request body surfaces as a hyper "user body" error.
    let mut cur: Option<&(dyn StdError + 'static)> = Some(&e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && h.is_user()
        {
            return OriginError::ClientBody {
                source: Box::new(e),
            };
        }
        cur = err.source();
    }
    OriginError::Protocol {
        endpoint,
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_visits_every_endpoint_evenly() {
        let eps: Vec<SocketAddr> = (1..=3)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        let pool = Pool::new("p", eps.clone());
        let mut counts = HashMap::new();
        for _ in 0..300 {
            *counts.entry(pool.pick().expect("endpoint")).or_insert(0) += 1;
        }
        for ep in eps {
            assert_eq!(counts[&ep], 100);
        }
        assert_eq!(Pool::new("empty", vec![]).pick(), None);
    }
}
