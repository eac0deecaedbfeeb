//! The compiled, immutable configuration and the lookups the data plane makes on it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::sign::CertifiedKey;

use crate::net::Cidr;
use crate::schema::{Algorithm, LogFormat, OriginProtocol, PlainHttp};
use crate::{Coding, KeyRules, Policy};

/// Request headers some origin frameworks obey (to rewrite the URL, the method, the scheme or
/// the host) although no cache keys on them: one client could make the origin answer
/// differently and have that answer cached for everyone. Removed from every origin request
/// unless a site keeps one (`keep_request_headers`), which then joins the cache key.
pub const DEFAULT_STRIP_REQUEST_HEADERS: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-scheme",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-ssl",
    "front-end-https",
    "x-url-scheme",
    "x-host",
    "x-original-host",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Timeouts, all enforced by the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    pub tls_handshake: Duration,
    /// Time a client has to send a complete request head (slowloris guard).
    pub request_header: Duration,
    pub client_idle: Duration,
    /// A response blocked on a client that does not read for this long closes its connection.
    pub client_send: Duration,
    pub origin_connect: Duration,
    pub origin_tls_handshake: Duration,
    /// Time from sending a request to the origin until its response head arrives (504 after).
    pub origin_response_header: Duration,
    /// Longest wait for the next chunk of an origin body; then the response is aborted.
    pub origin_body_idle: Duration,
    /// How long in-flight requests may run after SIGTERM.
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_request_header_bytes: u32,
    pub max_uri_bytes: u32,
    pub max_request_headers: u32,
    /// 0: no cap (likewise below).
    pub max_requests_per_connection: u64,
    pub max_connections_per_client: u32,
    pub max_connections: u32,
    pub h2_max_concurrent_streams: u32,
    pub h2_max_pending_accept_reset_streams: u32,
    pub h2_max_local_error_reset_streams: u32,
    pub quic_retry_above: u32,
    pub quic_max_handshakes_per_client: u32,
    pub new_connections_per_client: u32,
    pub new_connections_burst: u32,
    /// Bytes per second of the time spent waiting on a client to read, past the grace (0: no
    /// minimum).
    pub client_min_send_rate: u64,
    pub client_send_grace: Duration,
    pub max_buffered_response_bytes: u64,
    pub quic_max_concurrent_streams: u32,
    pub early_reset_min_streams: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// TCP+TLS (HTTP/1.1, HTTP/2) and, when `http3`, UDP (QUIC) on the same address.
    pub https: Vec<SocketAddr>,
    pub http: Vec<SocketAddr>,
    /// Plain HTTP for operators: `/metrics` (Prometheus text format).
    pub admin: Vec<SocketAddr>,
    pub http3: bool,
    pub alt_svc_max_age: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginSettings {
    pub max_idle_per_endpoint: usize,
    pub idle_timeout: Duration,
    /// `None`: connections are reused for as long as they live.
    pub max_connection_lifetime: Option<Duration>,
    pub dns: DnsSettings,
}

/// How endpoint names are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// Empty: the system's resolvers.
    pub servers: Vec<SocketAddr>,
    /// Answers are kept at least this long (floor on the record TTL)...
    pub min_ttl: Duration,
    /// ...and at most this long (ceiling).
    pub max_ttl: Duration,
}

/// An endpoint given by name: resolved with DNS, re-resolved as its TTL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsEndpoint {
    pub host: String,
    pub port: u16,
    pub weight: u32,
}

/// How the running process notices a changed file (SIGHUP always reloads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reload {
    pub watch_file: bool,
    pub poll_interval: Duration,
}

/// How to speak to a pool's endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginTransport {
    pub protocol: OriginProtocol,
    /// `Some`: TLS with these settings.
    pub tls: Option<OriginTls>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OriginTls {
    /// Roots to trust; empty means the built-in web (Mozilla) roots.
    pub ca: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// SNI and the name verified in the certificate; `None`: the endpoint's host.
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    pub endpoints: Vec<SocketAddr>,
    /// Same order as `endpoints`; 1 unless given.
    pub weights: Vec<u32>,
    /// Endpoints given by name.
    pub dns: Vec<DnsEndpoint>,
    pub algorithm: Algorithm,
    pub retries: u32,
    pub retry_budget: f64,
    /// `None`: the node's `timeouts.origin_response_header`.
    pub per_try_timeout: Option<Duration>,
    pub max_requests: u64,
    pub health: Option<HealthCheck>,
    pub outlier: Outlier,
    pub transport: OriginTransport,
    /// `Host` header for this pool's requests instead of the client's.
    pub host: Option<String>,
}

/// Active health checks of a pool's endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub method: http::Method,
    pub path: String,
    pub host: Option<String>,
    /// Empty: any 2xx or 3xx.
    pub expect: Vec<u16>,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub jitter: f64,
}

/// Passive outlier detection.
#[derive(Debug, Clone, PartialEq)]
pub struct Outlier {
    pub consecutive_failures: u32,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    pub max_ejected_share: f64,
}

/// Node-wide cache settings. The store is built from them at start; changes need a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    pub memory_bytes: u64,
    pub max_object_memory_bytes: u64,
    pub disk_dir: Option<PathBuf>,
    pub disk_bytes: u64,
    pub hit_for_pass: Duration,
    pub collapse_timeout: Duration,
    pub slice_bytes: u64,
    pub slice_above_bytes: u64,
}

/// A site's on-the-fly compression.
#[derive(Debug, Clone, PartialEq)]
pub struct Compression {
    pub enabled: bool,
    /// The server's order among codings the client weighs equally.
    pub prefer: Vec<Coding>,
    /// Compressible media type patterns (`text/*`, `application/*+json`, `image/svg+xml`).
    pub types: cache_rules::encoding::MediaTypes,
    /// Smaller bodies are sent as they are.
    pub min_bytes: u64,
    /// Levels for variants stored in the cache (made once, served many times).
    pub stored_level: Levels,
    /// Levels for responses compressed per request.
    pub fly_level: Levels,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    pub zstd: i32,
    pub br: i32,
    pub gzip: i32,
}

impl Levels {
    /// Stored variants are made once and served many times: spend CPU for bytes, but stay
    /// above ~10 MiB/s per core, because the first client of an object receives the variant
    /// while it is being made (`edge-load codec --sweep`: zstd 15 and gzip 9 fall to 3-5 MiB/s
    /// for a few percent of size; brotli 10-11 to 1 MiB/s).
    pub const STORED: Levels = Levels {
        zstd: 12,
        br: 9,
        gzip: 6,
    };
    /// Responses that are not stored are compressed for every request: ~100 MiB/s or more
    /// per core.
    pub const FLY: Levels = Levels {
        zstd: 3,
        br: 3,
        gzip: 3,
    };

    pub fn of(&self, coding: Coding) -> i32 {
        match coding {
            Coding::Zstd => self.zstd,
            Coding::Br => self.br,
            Coding::Gzip => self.gzip,
        }
    }
}

/// A site's caching policy.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteCache {
    pub enabled: bool,
    pub key: KeyRules,
    /// Rules policy (heuristics, TTL cap, CDN-Cache-Control); `forced_ttl` is set per path.
    pub policy: Policy,
    pub force_ttl: Vec<(String, Duration)>,
    pub bypass_cookies: Vec<String>,
    /// Skip the cache for requests with `Authorization` (the RFC already refuses to store most
    /// of their responses; this also skips lookups).
    pub bypass_authorization: bool,
    /// Send the query parameters left out of the key to the origin anyway.
    pub forward_ignored_params: bool,
    /// Response headers that tag objects (surrogate keys), lower case.
    pub tag_headers: Vec<http::HeaderName>,
    pub strip_tag_headers: bool,
    /// The `PURGE` method is a purge (with an admin token), not a request for the origin.
    pub purge_method: bool,
}

impl SiteCache {
    /// The policy for a path: the site's, with the forced TTL of the longest matching prefix.
    pub fn policy_for(&self, path: &str) -> Policy {
        let mut p = self.policy.clone();
        p.forced_ttl = self
            .force_ttl
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map(|(_, ttl)| *ttl);
        p
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub path_prefix: String,
    pub pool: String,
    /// Geo steering: the pool for visitors of a country, else of a continent, else `pool`.
    pub pools_by_country: Vec<([u8; 2], String)>,
    pub pools_by_continent: Vec<([u8; 2], String)>,
}

#[derive(Debug)]
pub struct Site {
    pub name: String,
    pub hosts: Vec<String>,
    /// `None`: the default certificate is used for this site's names.
    pub cert: Option<Arc<CertifiedKey>>,
    pub plain_http: PlainHttp,
    pub http3: bool,
    pub max_request_body_bytes: u64,
    pub cache: SiteCache,
    pub compression: Compression,
    /// A pool of edge nodes asked on a cache miss before the origin (chosen by consistent
    /// hashing on the cache key).
    pub shield: Option<String>,
    /// When the shield cannot be reached, go to the origin instead of failing.
    pub shield_fallback: bool,
    /// Longest prefix first, so the first match wins.
    pub routes: Vec<Route>,
    /// Removed from every request to the origin (`keep_request_headers` already taken out).
    pub strip_request_headers: Vec<http::HeaderName>,
    /// Minimum average request-body rate in bytes per second once `request_body_grace` has
    /// passed (only time spent waiting on the client counts); 0: no minimum.
    pub request_body_min_rate: u64,
    pub request_body_grace: Duration,
    /// Share of the site's requests the access log keeps (1.0: all); 5xx are always kept.
    pub log_sample: f64,
    pub geo: crate::geo::SiteGeo,
    pub security_headers: crate::protect::SecurityHeaders,
    pub rate_limits: Vec<crate::protect::RateLimitRule>,
    /// Site rules (`[[sites.rules]]`, `[sites.ab]`); empty when none are configured.
    pub rules: Arc<site_rules::RuleSet>,
    /// Safe requests (GET, HEAD) may be answered from TLS 1.3 early data over QUIC; others
    /// wait for the handshake (RFC 8470).
    pub zero_rtt: bool,
    /// GeoDNS: the site's label under the zone and its overrides.
    pub dns: crate::geodns::SiteDns,
}

impl Site {
    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| path.starts_with(&r.path_prefix))
    }
}

/// `[log]`: where access records go, what they leave out, and trace context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub access: AccessOutput,
    pub format: LogFormat,
    /// Query parameter names, lower case, whose values are logged as `REDACTED`.
    pub redact_query_params: Vec<String>,
    /// The query is not logged at all.
    pub redact_query: bool,
    /// Start a trace for requests that come without a (valid) `traceparent`.
    pub start_traces: bool,
    /// Where sampled requests' spans are exported (OTLP/HTTP, protobuf): the full
    /// `.../v1/traces` URL. `None`: no export.
    pub otlp: Option<std::sync::Arc<str>>,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            access: AccessOutput::Stderr,
            format: LogFormat::Json,
            redact_query_params: Vec::new(),
            redact_query: false,
            start_traces: true,
            otlp: None,
        }
    }
}

/// Where access records are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessOutput {
    Off,
    Stderr,
    Stdout,
    /// Appended to; reopened on SIGUSR1 (after logrotate renamed it).
    File(PathBuf),
}

/// Who may use the admin listener, and how it is served.
#[derive(Debug)]
pub struct AdminSettings {
    /// Served over TLS with this certificate (required off loopback).
    pub tls: Option<Arc<CertifiedKey>>,
    /// `/metrics` without a token.
    pub open_metrics: bool,
    /// Per token: purges per second, and the burst.
    pub purge_rate: f64,
    pub purge_burst: u32,
    pub tokens: purge_api::Tokens,
}

/// One immutable, compiled configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// The revision of the document it was compiled from (`Document::revision`): the file
    /// source counts the distinct contents it has read, from 1; a remote source would give its
    /// own revision (etcd: `mod_revision`). Equal versions from one source mean equal input.
    pub version: u64,
    /// The document's name (`Document::name`): the file path, or e.g. `etcd:/edge/config`.
    pub source: PathBuf,
    /// When this snapshot was compiled (the one input that is not the document: the clock).
    pub loaded_at: SystemTime,
    pub node_name: String,
    /// The node's POP and region (`[node]`; the node's name when not set) and tier.
    pub pop: String,
    pub region: String,
    pub tier: crate::Tier,
    /// Our own edges, shields and load balancers: only their forwarding headers (`Forwarded`,
    /// `X-Forwarded-*`, `X-Real-IP`, `X-Request-Id`, `Via`) are believed.
    pub trusted_peers: Vec<Cidr>,
    /// Addresses of the endpoints of every pool a site uses as its shield: edges we forward
    /// to are edges we believe (this is what stops a node that lists itself from looping).
    pub shield_peers: Vec<std::net::IpAddr>,
    pub listen: Listen,
    pub admin: AdminSettings,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub origin: OriginSettings,
    pub reload: Reload,
    pub cache: CacheSettings,
    pub log: LogSettings,
    pub geo: crate::geo::GeoNode,
    /// GeoDNS (`[dns]`), for `edge dns`.
    pub dns: Option<Arc<crate::geodns::GeoDns>>,
    /// Sources whose TCP connections must open with a PROXY protocol header.
    pub proxy_protocol: crate::net::CidrSet,
    pub default_cert: Option<Arc<CertifiedKey>>,
    pub sites: Vec<Arc<Site>>,
    pub pools: BTreeMap<String, Pool>,
    pub(crate) exact_hosts: edge_core::ConfigMap<String, usize>,
    /// `*.example.com` is stored as `example.com`.
    pub(crate) wildcard_hosts: edge_core::ConfigMap<String, usize>,
}

impl Snapshot {
    /// Whether `ip` is one of our own peers (`node.trusted_peers`).
    pub fn is_trusted(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_peers.iter().any(|c| c.contains(ip)) || self.shield_peers.contains(&ip)
    }

    /// Whether any site answers from early data: QUIC handshakes then accept it (rustls
    /// decides before the site is known, so the setting is per node, enforced per site).
    pub fn zero_rtt(&self) -> bool {
        self.sites.iter().any(|s| s.zero_rtt)
    }

    /// The site serving `host` (a Host header or SNI name; a port and a trailing dot are ignored,
    /// case does not matter).
    pub fn site_for_host(&self, host: &str) -> Option<&Arc<Site>> {
        let host = normalize_host(host);
        if let Some(&i) = self.exact_hosts.get(host.as_ref()) {
            return self.sites.get(i);
        }
        let mut rest: &str = host.as_ref();
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if let Some(&i) = self.wildcard_hosts.get(rest) {
                return self.sites.get(i);
            }
        }
        None
    }

    /// The certificate for a TLS handshake: the site's own, else the default one.
    pub fn cert_for_sni(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        sni.and_then(|name| self.site_for_host(name))
            .and_then(|site| site.cert.clone())
            .or_else(|| self.default_cert.clone())
    }
}

/// Lower-cases and strips a port and a trailing dot; borrows when nothing changes.
pub fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let without_port = if host.starts_with('[') {
        // IPv6 literal: keep the brackets, drop ":port".
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
            _ => host,
        }
    };
    let trimmed = without_port.strip_suffix('.').unwrap_or(without_port);
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(trimmed)
    }
}
