//! One pool's connections: the hyper client (HTTP/1.1 keep-alive or HTTP/2, plain or TLS)
//! shared by every worker, and one try on one endpoint.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::connect::{self, OriginConnector};
use crate::{Active, Endpoint, OriginError, ProxyBody};

/// Settings that shape the shared connection pool (a change rebuilds the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    pub max_lifetime: Option<Duration>,
    pub connect_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub max_idle_per_endpoint: usize,
    pub idle_timeout: Duration,
}

impl ClientSettings {
    pub fn from_snapshot(s: &config::Snapshot) -> Self {
        ClientSettings {
            max_lifetime: s.origin.max_connection_lifetime,
            connect_timeout: s.timeouts.origin_connect,
            tls_handshake_timeout: s.timeouts.origin_tls_handshake,
            max_idle_per_endpoint: s.origin.max_idle_per_endpoint,
            idle_timeout: s.origin.idle_timeout,
        }
    }
}

/// One pool's client, shared by every worker thread: HTTP/1.1 keep-alive or HTTP/2, plain or
/// TLS. hyper-util's pool is keyed by endpoint and checks a connection is still open before
/// handing it out again.
#[derive(Clone)]
pub struct OriginClient {
    client: Client<OriginConnector, ProxyBody>,
    opened: Arc<AtomicU64>,
    pub settings: ClientSettings,
    scheme: Scheme,
    version: http::Version,
}

impl std::fmt::Debug for OriginClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginClient")
            .field("settings", &self.settings)
            .field("scheme", &self.scheme)
            .field("version", &self.version)
            .finish()
    }
}

impl OriginClient {
    pub fn new(settings: ClientSettings, transport: &config::OriginTransport) -> Self {
        let connector = OriginConnector::new(
            settings.connect_timeout,
            transport,
            settings.tls_handshake_timeout,
        );
        let h2 = transport.protocol == config::OriginProtocol::H2;
        let opened = connector.opened.clone();
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_max_idle_per_host(settings.max_idle_per_endpoint)
            .pool_idle_timeout(settings.idle_timeout)
            .http2_only(h2)
            // Origins see exactly the Host the client sent; the edge sets it itself.
            .set_host(false)
            .build(connector);
        OriginClient {
            client,
            opened,
            settings,
            scheme: if transport.tls.is_some() {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            },
            version: if h2 {
                http::Version::HTTP_2
            } else {
                http::Version::HTTP_11
            },
        }
    }
}

impl OriginClient {
    /// Connections this client has opened (each kept alive for reuse).
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

impl OriginClient {
    /// One try on one endpoint.
    pub(crate) async fn send_to(
        &self,
        ep: &Endpoint,
        req: &mut Request<ProxyBody>,
        header_timeout: Duration,
    ) -> Result<Response<Incoming>, OriginError> {
        let endpoint = ep.addr;
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(self.scheme.clone());
        uri.authority = Some(ep.authority.clone());
        uri.path_and_query = Some(
            req.uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        // From parts made whole above: no text to format and parse again per request.
        let uri = Uri::from_parts(uri).map_err(|e| OriginError::Protocol {
            endpoint,
            source: Box::new(e),
        })?;
        *req.uri_mut() = uri;
        *req.version_mut() = self.version;
        let mut req = std::mem::replace(req, Request::new(empty_body()));
        let capture = self
            .settings
            .max_lifetime
            .map(|_| hyper_util::client::legacy::connect::capture_connection(&mut req));
        ep.state.in_flight.fetch_add(1, Ordering::Relaxed);
        let _in_flight = Active(&ep.state.in_flight);
        let start = edge_core::clock::now();
        let result = match tokio::time::timeout(header_timeout, self.client.request(req)).await {
            Err(_) => Err(OriginError::Timeout {
                endpoint,
                after: header_timeout,
            }),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(classify(endpoint, e)),
        };
        if let (Some(capture), Some(max)) = (&capture, self.settings.max_lifetime)
            && let Some(conn) = capture.connection_metadata().as_ref()
        {
            // Too old: finish this response on it, then let it go instead of reusing it
            // (spreads load after origin changes, bounds per-connection state at the origin).
            let mut ext = http::Extensions::new();
            conn.get_extras(&mut ext);
            if ext
                .get::<connect::Born>()
                .is_some_and(|b| b.0.elapsed() > max)
            {
                conn.poison();
            }
        }
        match &result {
            Ok(_) => ep.state.observe_latency(start.elapsed()),
            // A timeout is a latency sample too: the slowest there is.
            Err(OriginError::Timeout { .. }) => ep.state.observe_latency(header_timeout),
            Err(_) => {}
        }
        result
    }
}

pub(crate) fn empty_body() -> ProxyBody {
    use http_body_util::BodyExt;
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An error and its sources in one line ("a: b: c"), skipping messages already contained in
/// the previous one: hyper's "client error (Connect)" alone does not say what failed.
fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let msg = err.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = err.source();
    }
    out
}

fn classify(endpoint: SocketAddr, e: hyper_util::client::legacy::Error) -> OriginError {
    if e.is_connect() {
        let mut cur: Option<&(dyn StdError + 'static)> = Some(&e);
        while let Some(err) = cur {
            if let Some(tls) = err.downcast_ref::<connect::TlsError>() {
                return OriginError::Tls {
                    endpoint,
                    source: error_chain(tls).into(),
                };
            }
            cur = err.source();
        }
        return OriginError::Connect {
            endpoint,
            source: error_chain(&e).into(),
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
