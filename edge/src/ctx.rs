//! The per-request context: one value that every phase reads and fills in, from the connection
//! it came on to the cache status it ends with. The request head lives here too, so phases take
//! the context and a body, never a list of loose arguments.

use std::sync::Arc;

use cache::rules::Policy;
use cache::status::CacheStatus;
use config::Site;
use edge_core::clock::{self, Instant};
use http::header::HeaderValue;
use http::{Method, Version};
use origin_shield::Pool;

use crate::compress::RequestFacts;
use crate::interim::Interim;
use crate::log::OriginSlot;
use crate::state::{ConnInfo, Runtime, Shared};
use crate::trace::Trace;

#[derive(Clone)]
pub struct RequestCtx {
    pub id: crate::request_id::RequestId,
    pub start: Instant,
    pub shared: Arc<Shared>,
    /// The config snapshot this request reads, from start to end.
    pub rt: Arc<Runtime>,
    pub conn: Arc<ConnInfo>,
    /// The client's request head, its target normalised by the hygiene phase. Header fields are
    /// the client's: the upstream rewrite works on a copy, only when a request goes to an
    /// origin.
    pub head: http::request::Parts,
    pub method: Method,
    pub version: Version,
    /// The normalised path (routing, policies, logs) when it is not the target's own: most
    /// are, and a copy per request is an allocation (see `path`).
    path_override: Option<String>,
    /// The visitor's scheme (ours, or a trusted peer's `X-Forwarded-Proto`).
    pub scheme: &'static str,
    /// The normalised host name (no port): what routing matched.
    pub host_name: String,
    /// The `Host` the origin receives and the cache key holds when it is not `host_name`
    /// alone (the listener's port is not the default, or a trusted peer's differs): see `host`.
    host_with_port: Option<String>,
    /// The peer is one of ours (`node.trusted_peers`, shield endpoints).
    pub trusted: bool,
    /// The visitor's address: the peer's, or behind a trusted peer what its forwarding headers
    /// say (PROXY protocol already set the peer). Logs, access rules, client-IP hashing and
    /// geo use it.
    pub client: std::net::IpAddr,
    /// What the node's databases say about `client` (empty without databases).
    pub geo: geo::Geo,
    /// What the site's access rules decided (none: no rule covers the path).
    pub access: Option<crate::metrics::geo::Access>,
    /// What the site's request rules left for the response and the cache key.
    pub rules: Option<Box<crate::rules_phase::Outcome>>,
    /// Answered from TLS 1.3 early data (`crate::early`): the origin gets `Early-Data: 1`.
    pub early: Option<crate::early::Handshake>,
    /// The request already passed through this node: never send it to a shield again.
    pub looped: bool,
    /// A GET or HEAD that carries a body: passed through, never cached or collapsed.
    pub has_body: bool,
    pub site: Option<Arc<Site>>,
    pub pool: Option<Arc<Pool>>,
    /// What the compress phase needs from the request.
    pub compress: RequestFacts,
    pub cache_status: Option<CacheStatus>,
    /// Cache phase: the primary key and the policy of the request's path.
    pub key: String,
    pub policy: Policy,
    /// The client's own `Accept-Encoding` fields, when the cache phase replaced them with
    /// `identity` (one identity object per URL), to restore on requests passed through.
    pub client_ae: Option<Vec<HeaderValue>>,
    /// Where the origin's 1xx interim responses go (none for HTTP/1.0 clients).
    pub interim: Option<Interim>,
    /// The request's W3C trace: the client's `traceparent` continued, or one started here, with
    /// this hop's span id (`crate::trace`).
    pub trace: Option<Trace>,
    /// The endpoint that answered this request's origin request and when (the access log).
    pub origin: OriginSlot,
}

impl RequestCtx {
    pub fn new(
        shared: Arc<Shared>,
        conn: Arc<ConnInfo>,
        mut head: http::request::Parts,
        interim: Option<Interim>,
    ) -> RequestCtx {
        let rt = shared.runtime();
        // HTTP/1.1 and HTTP/3 hand theirs over directly; hyper's HTTP/2 puts one in each
        // request's extensions.
        let interim = interim.or_else(|| Interim::take(&mut head.extensions));
        let trace = Trace::for_request(&head.headers, rt.snapshot.log.start_traces);
        let client = conn.peer.ip().to_canonical();
        RequestCtx {
            id: shared.next_request_id(),
            start: clock::now(),
            rt,
            conn,
            method: head.method.clone(),
            version: head.version,
            path_override: None,
            head,
            shared,
            scheme: "http",
            host_name: String::new(),
            host_with_port: None,
            trusted: false,
            client,
            geo: geo::Geo::default(),
            access: None,
            early: None,
            rules: None,
            looped: false,
            has_body: false,
            site: None,
            pool: None,
            compress: RequestFacts::default(),
            cache_status: None,
            key: String::new(),
            policy: Policy::default(),
            client_ae: None,
            interim,
            trace,
            origin: OriginSlot::default(),
        }
    }

    /// The `Host` the origin receives and the cache key holds (name, and the listener's port
    /// when not the default).
    pub fn host(&self) -> &str {
        self.host_with_port.as_deref().unwrap_or(&self.host_name)
    }

    /// Sets the origin's `Host` when it is not the host name alone.
    pub fn host_set(&mut self, with_port: Option<String>) {
        self.host_with_port = with_port;
    }

    /// The normalised path (routing, policies, logs).
    pub fn path(&self) -> &str {
        self.path_override
            .as_deref()
            .unwrap_or_else(|| self.head.uri.path())
    }

    /// Sets the normalised path; the target is rewritten to it by the route phase.
    pub fn path_set(&mut self, path: String) {
        self.path_override = Some(path);
    }

    /// The routed site (set by the route phase, before any phase that asks).
    pub fn site(&self) -> Result<&Arc<Site>, crate::Error> {
        self.site.as_ref().ok_or(crate::Error::NoRoute)
    }

    /// The routed origin pool.
    pub fn pool(&self) -> Result<&Arc<Pool>, crate::Error> {
        self.pool.as_ref().ok_or(crate::Error::NoRoute)
    }

    pub fn max_body(&self) -> u64 {
        self.site
            .as_ref()
            .map_or(u64::MAX, |s| s.max_request_body_bytes)
    }
}
