#![forbid(unsafe_code)]
//! Config schema, validation and compilation into immutable, versioned snapshots.
//!
//! A [`Snapshot`] is built once per load and never changes afterwards: the data plane reads one
//! `Arc<Snapshot>` per request and never blocks on the config source. Every error points at the
//! file, line and column it comes from, so that `edge check` and a refused reload say exactly what
//! is wrong.

mod net;
mod schema;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use toml::Spanned;

pub use cache_rules::encoding::{self, Coding};
pub use cache_rules::key::KeyRules;
pub use cache_rules::rules::Policy;
pub use net::Cidr;
pub use schema::{PlainHttp, parse_duration, parse_size};

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

/// `NAME:PORT` with a DNS host name (letters, digits, `-`, `.`; not an IP literal).
fn dns_endpoint(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(label_ok)
        && host.parse::<std::net::IpAddr>().is_err()
        && port != 0;
    valid.then_some((host, port))
}

/// One problem found in a config file, with its location when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line and column; `None` when the problem is about the file as a whole.
    pub location: Option<(usize, usize)>,
    pub reason: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.file.display(), self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read config: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", join_lines(.0))]
    Invalid(Vec<Diagnostic>),
}

impl ConfigError {
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            ConfigError::Read { path, source } => vec![Diagnostic {
                file: path.clone(),
                location: None,
                reason: format!("cannot read config: {source}"),
            }],
            ConfigError::Invalid(d) => d.clone(),
        }
    }
}

fn join_lines(d: &[Diagnostic]) -> String {
    d.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Timeouts, all enforced by the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    pub tls_handshake: Duration,
    /// Time a client has to send a complete request head (slowloris guard).
    pub request_header: Duration,
    pub client_idle: Duration,
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

pub use schema::{Algorithm, OriginProtocol};

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
}

/// A site's on-the-fly compression.
#[derive(Debug, Clone, PartialEq)]
pub struct Compression {
    pub enabled: bool,
    /// The server's order among codings the client weighs equally.
    pub prefer: Vec<Coding>,
    /// Compressible media type patterns (`text/*`, `application/*+json`, `image/svg+xml`).
    pub types: Vec<String>,
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
}

impl Site {
    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| path.starts_with(&r.path_prefix))
    }
}

/// One immutable, compiled configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one for every snapshot built in this process.
    pub version: u64,
    pub source: PathBuf,
    pub loaded_at: SystemTime,
    pub node_name: String,
    /// Our own edges, shields and load balancers: only their forwarding headers (`Forwarded`,
    /// `X-Forwarded-*`, `X-Real-IP`, `X-Request-Id`, `Via`) are believed.
    pub trusted_peers: Vec<Cidr>,
    /// Addresses of the endpoints of every pool a site uses as its shield: edges we forward
    /// to are edges we believe (this is what stops a node that lists itself from looping).
    pub shield_peers: Vec<std::net::IpAddr>,
    pub listen: Listen,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub origin: OriginSettings,
    pub reload: Reload,
    pub cache: CacheSettings,
    pub default_cert: Option<Arc<CertifiedKey>>,
    pub sites: Vec<Arc<Site>>,
    pub pools: BTreeMap<String, Pool>,
    exact_hosts: HashMap<String, usize>,
    /// `*.example.com` is stored as `example.com`.
    wildcard_hosts: HashMap<String, usize>,
}

static NEXT_VERSION: AtomicU64 = AtomicU64::new(1);

impl Snapshot {
    /// Whether `ip` is one of our own peers (`node.trusted_peers`).
    pub fn is_trusted(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_peers.iter().any(|c| c.contains(ip)) || self.shield_peers.contains(&ip)
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

/// Reads, validates and compiles the config file at `path`.
pub fn load(path: &Path) -> Result<Snapshot, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    compile(path, &text)
}

/// Validates and compiles config `text`; `path` names it in errors and anchors relative paths.
pub fn compile(path: &Path, text: &str) -> Result<Snapshot, ConfigError> {
    let mut cx = Compiler {
        path,
        text,
        base: path.parent().unwrap_or(Path::new(".")),
        errors: Vec::new(),
    };
    let file: schema::File = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let location = e.span().map(|s| cx.line_col(s.start));
            return Err(ConfigError::Invalid(vec![Diagnostic {
                file: path.to_path_buf(),
                location,
                reason: e.message().trim().to_string(),
            }]));
        }
    };
    let snapshot = cx.compile(file);
    if cx.errors.is_empty() {
        snapshot.ok_or_else(|| ConfigError::Invalid(Vec::new()))
    } else {
        Err(ConfigError::Invalid(cx.errors))
    }
}

struct Compiler<'a> {
    path: &'a Path,
    text: &'a str,
    base: &'a Path,
    errors: Vec<Diagnostic>,
}

impl Compiler<'_> {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rfind('\n')
            .map_or(before.len(), |i| before.len() - i - 1)
            + 1;
        (line, col)
    }

    fn error(&mut self, span: Range<usize>, reason: impl Into<String>) {
        let location = if span.is_empty() && span.start == 0 {
            None
        } else {
            Some(self.line_col(span.start))
        };
        self.errors.push(Diagnostic {
            file: self.path.to_path_buf(),
            location,
            reason: reason.into(),
        });
    }

    fn addrs(&mut self, list: &[Spanned<String>], what: &str) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for a in list {
            match a.get_ref().parse::<SocketAddr>() {
                Ok(addr) if out.contains(&addr) => {
                    self.error(a.span(), format!("duplicate {what} address {addr}"))
                }
                Ok(addr) => out.push(addr),
                Err(_) => self.error(
                    a.span(),
                    format!(
                        "invalid {what} address {:?}: expected IP:PORT, e.g. \"127.0.0.1:8443\" or \"[::1]:8443\"",
                        a.get_ref()
                    ),
                ),
            }
        }
        out
    }

    fn cert(&mut self, cert: &Spanned<String>, key: &Spanned<String>) -> Option<Arc<CertifiedKey>> {
        let cert_path = self.base.join(cert.get_ref());
        let key_path = self.base.join(key.get_ref());
        let chain: Vec<CertificateDer<'static>> = match CertificateDer::pem_file_iter(&cert_path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        {
            Ok(c) if !c.is_empty() => c,
            Ok(_) => {
                self.error(
                    cert.span(),
                    format!("no certificate found in {}", cert_path.display()),
                );
                return None;
            }
            Err(e) => {
                self.error(
                    cert.span(),
                    format!("cannot load certificate {}: {e}", cert_path.display()),
                );
                return None;
            }
        };
        let key_der = match PrivateKeyDer::from_pem_file(&key_path) {
            Ok(k) => k,
            Err(e) => {
                self.error(
                    key.span(),
                    format!("cannot load private key {}: {e}", key_path.display()),
                );
                return None;
            }
        };
        let signing_key = match rustls::crypto::ring::sign::any_supported_type(&key_der) {
            Ok(k) => k,
            Err(e) => {
                self.error(
                    key.span(),
                    format!("unsupported private key {}: {e}", key_path.display()),
                );
                return None;
            }
        };
        let ck = CertifiedKey::new(chain, signing_key);
        if let Err(e) = ck.keys_match() {
            self.error(
                key.span(),
                format!(
                    "private key {} does not match certificate {}: {e}",
                    key_path.display(),
                    cert_path.display()
                ),
            );
            return None;
        }
        Some(Arc::new(ck))
    }

    fn pool(&mut self, name: &str, spanned: &Spanned<schema::Pool>) -> Option<Pool> {
        let p = spanned.get_ref();
        if p.endpoints.is_empty() {
            self.error(spanned.span(), format!("pool {name:?} has no endpoints"));
        }
        let mut endpoints = Vec::new();
        let mut weights = Vec::new();
        let mut dns: Vec<DnsEndpoint> = Vec::new();
        for e in &p.endpoints {
            let (addr, weight) = match e.get_ref() {
                schema::Endpoint::Addr(a) => (a, 1),
                schema::Endpoint::Weighted { addr, weight } => (addr, *weight),
            };
            match addr.parse::<SocketAddr>() {
                Ok(a) if endpoints.contains(&a) => {
                    self.error(e.span(), format!("duplicate pool endpoint address {a}"))
                }
                Ok(_) if weight == 0 || weight > 1000 => {
                    self.error(e.span(), format!("weight {weight} is out of range 1..=1000"))
                }
                Ok(a) => {
                    endpoints.push(a);
                    weights.push(weight);
                }
                Err(_) => match dns_endpoint(addr) {
                    Some(_) if weight == 0 || weight > 1000 => {
                        self.error(e.span(), format!("weight {weight} is out of range 1..=1000"))
                    }
                    Some((host, port)) if dns.iter().any(|d| d.host == host && d.port == port) => {
                        self.error(e.span(), format!("duplicate pool endpoint {addr}"))
                    }
                    Some((host, port)) => dns.push(DnsEndpoint { host, port, weight }),
                    None => self.error(
                        e.span(),
                        format!(
                            "invalid pool endpoint {addr:?}: expected IP:PORT or NAME:PORT, e.g. \"127.0.0.1:9000\" or \"origin.example.com:443\""
                        ),
                    ),
                },
            }
        }
        let budget = *p.retry_budget.get_ref();
        if !(0.0..=1.0).contains(&budget) {
            self.error(
                p.retry_budget.span(),
                "retry_budget is a share of requests in flight, from 0.0 to 1.0",
            );
        }
        let health = p.health.as_ref().map(|h| HealthCheck {
            method: http::Method::from_bytes(h.method.as_bytes()).unwrap_or(http::Method::GET),
            path: h.path.clone(),
            host: h.host.clone(),
            expect: h.expect.clone(),
            interval: h.interval.max(Duration::from_millis(50)),
            timeout: h.timeout,
            rise: h.rise.max(1),
            fall: h.fall.max(1),
            jitter: h.jitter.clamp(0.0, 0.5),
        });
        if let Some(h) = &p.health
            && (!h.path.starts_with('/') || http::Method::from_bytes(h.method.as_bytes()).is_err())
        {
            self.error(
                spanned.span(),
                format!("pool {name:?}: health check needs a method and a path starting with '/'"),
            );
        }
        let tls = if p.tls {
            let mut ca = Vec::new();
            if let Some(file) = &p.tls_ca_file {
                let path = self.base.join(file.get_ref());
                match CertificateDer::pem_file_iter(&path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                {
                    Ok(c) if !c.is_empty() => ca = c,
                    Ok(_) => self.error(
                        file.span(),
                        format!("no certificate found in {}", path.display()),
                    ),
                    Err(e) => self.error(
                        file.span(),
                        format!("cannot load CA file {}: {e}", path.display()),
                    ),
                }
            }
            if let Some(n) = &p.tls_server_name
                && rustls_pki_types::ServerName::try_from(n.get_ref().as_str()).is_err()
            {
                self.error(
                    n.span(),
                    format!("invalid TLS server name {:?}", n.get_ref()),
                );
            }
            Some(OriginTls {
                ca,
                server_name: p.tls_server_name.as_ref().map(|n| n.get_ref().clone()),
            })
        } else {
            for (key, v) in [
                ("tls_ca_file", &p.tls_ca_file),
                ("tls_server_name", &p.tls_server_name),
            ] {
                if let Some(v) = v {
                    self.error(v.span(), format!("{key} needs tls = true"));
                }
            }
            None
        };
        if let Some(h) = &p.host
            && http::HeaderValue::from_str(h.get_ref()).is_err()
        {
            self.error(h.span(), format!("invalid host {:?}", h.get_ref()));
        }
        let o = &p.outlier;
        Some(Pool {
            dns,
            transport: OriginTransport {
                protocol: p.protocol,
                tls,
            },
            host: p.host.as_ref().map(|h| h.get_ref().clone()),
            name: name.to_string(),
            endpoints,
            weights,
            algorithm: p.algorithm,
            retries: p.retries.min(10),
            retry_budget: budget.clamp(0.0, 1.0),
            per_try_timeout: p.per_try_timeout,
            max_requests: p.max_requests.max(1),
            health,
            outlier: Outlier {
                consecutive_failures: o.consecutive_failures,
                base_ejection: o.base_ejection,
                max_ejection: o.max_ejection.max(o.base_ejection),
                max_ejected_share: o.max_ejected_share.clamp(0.0, 1.0),
            },
        })
    }

    fn compression(&mut self, c: &schema::Compression) -> Compression {
        let mut prefer = Vec::new();
        for p in &c.prefer {
            match p.get_ref().parse::<Coding>() {
                Ok(coding) if prefer.contains(&coding) => {
                    self.error(p.span(), format!("{coding} is listed twice"))
                }
                Ok(coding) => prefer.push(coding),
                Err(e) => self.error(p.span(), e),
            }
        }
        let types = match &c.types {
            None => encoding::DEFAULT_COMPRESSIBLE
                .iter()
                .map(|t| t.to_string())
                .collect(),
            Some(list) => {
                let mut out = Vec::new();
                for t in list {
                    let v = t.get_ref().trim().to_ascii_lowercase();
                    if encoding::valid_type_pattern(&v) {
                        out.push(v);
                    } else {
                        self.error(
                            t.span(),
                            format!(
                                "invalid media type pattern {:?}: expected type/subtype, type/* or type/*+suffix",
                                t.get_ref()
                            ),
                        );
                    }
                }
                out
            }
        };
        Compression {
            enabled: c.enabled,
            prefer,
            types,
            min_bytes: c.min_bytes,
            stored_level: self.levels(&c.stored_level, schema::Levels::stored()),
            fly_level: self.levels(&c.fly_level, schema::Levels::fly()),
        }
    }

    fn levels(&mut self, l: &schema::Levels, defaults: schema::Levels) -> Levels {
        let mut pick = |v: &Option<toml::Spanned<i32>>,
                        d: &Option<toml::Spanned<i32>>,
                        coding: Coding,
                        range: std::ops::RangeInclusive<i32>| {
            let fallback = d.as_ref().map_or(*range.start(), |d| *d.get_ref());
            match v {
                None => fallback,
                Some(v) if range.contains(v.get_ref()) => *v.get_ref(),
                Some(v) => {
                    self.error(
                        v.span(),
                        format!(
                            "{coding} level {} is out of range {}..={}",
                            v.get_ref(),
                            range.start(),
                            range.end()
                        ),
                    );
                    fallback
                }
            }
        };
        Levels {
            zstd: pick(&l.zstd, &defaults.zstd, Coding::Zstd, -7..=22),
            br: pick(&l.br, &defaults.br, Coding::Br, 0..=11),
            gzip: pick(&l.gzip, &defaults.gzip, Coding::Gzip, 1..=9),
        }
    }

    fn header_names(&mut self, list: &[Spanned<String>]) -> Vec<http::HeaderName> {
        let mut names = Vec::new();
        for h in list {
            match http::HeaderName::from_bytes(h.get_ref().as_bytes()) {
                Ok(n) => {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                Err(_) => self.error(h.span(), format!("invalid header name {:?}", h.get_ref())),
            }
        }
        names
    }

    /// `kept`: steering headers the site forwards on purpose; they join the key.
    fn site_cache(
        &mut self,
        c: &schema::SiteCache,
        node: &schema::CacheNode,
        kept: &[http::HeaderName],
    ) -> SiteCache {
        let mut headers = self.header_names(&c.key_headers);
        for k in kept {
            if !headers.contains(k) {
                headers.push(k.clone());
            }
        }
        let mut force_ttl: Vec<(String, Duration)> = c
            .force_ttl
            .iter()
            .map(|f| (f.path_prefix.clone(), f.ttl))
            .collect();
        force_ttl.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        SiteCache {
            enabled: c.enabled,
            key: KeyRules {
                ignore_query: c.ignore_query,
                ignore_params: c.ignore_params.clone(),
                sort_query: c.sort_query,
                headers,
                cookies: c.key_cookies.clone(),
            },
            policy: Policy {
                heuristic_fraction: *node.heuristic_fraction.get_ref(),
                heuristic_max: node.heuristic_max,
                max_ttl: c.max_ttl,
                forced_ttl: None,
                cdn_cache_control: c.cdn_cache_control,
            },
            force_ttl,
            bypass_cookies: c.bypass_cookies.clone(),
            bypass_authorization: c.bypass_authorization,
            forward_ignored_params: c.forward_ignored_params,
        }
    }

    fn compile(&mut self, file: schema::File) -> Option<Snapshot> {
        let node_name = file.node.name.get_ref().trim().to_string();
        if node_name.is_empty()
            || !node_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            self.error(
                file.node.name.span(),
                "node.name must be a non-empty token of letters, digits, '-', '_' or '.' (it goes into Via)",
            );
        }

        let mut trusted_peers = Vec::new();
        for t in &file.node.trusted_peers {
            match t.get_ref().trim().parse::<Cidr>() {
                Ok(c) => trusted_peers.push(c),
                Err(e) => self.error(t.span(), format!("node.trusted_peers: {e}")),
            }
        }

        let https = self.addrs(&file.listen.https, "https listen");
        let http = self.addrs(&file.listen.http, "http listen");
        let admin = self.addrs(&file.listen.admin, "admin listen");
        let dns_servers = self.addrs(&file.origin.dns_servers, "DNS server");
        if https.is_empty() && http.is_empty() {
            self.error(
                0..0,
                "listen: at least one of `https` or `http` must list an address",
            );
        }

        let default_cert = match &file.tls {
            Some(t) => self.cert(&t.cert, &t.key),
            None => None,
        };

        let mut pools = BTreeMap::new();
        for (name, pool) in &file.pools {
            if let Some(p) = self.pool(name, pool) {
                pools.insert(name.clone(), p);
            }
        }

        let mut sites = Vec::new();
        let mut exact_hosts = HashMap::new();
        let mut wildcard_hosts = HashMap::new();
        let mut site_names: HashMap<String, ()> = HashMap::new();
        for spanned_site in &file.sites {
            let s = spanned_site.get_ref();
            let index = sites.len();
            if site_names.insert(s.name.get_ref().clone(), ()).is_some() {
                self.error(
                    s.name.span(),
                    format!("duplicate site name {:?}", s.name.get_ref()),
                );
            }
            if s.hosts.is_empty() {
                self.error(spanned_site.span(), "site has no hosts");
            }
            let mut hosts = Vec::new();
            for h in &s.hosts {
                let raw = h.get_ref();
                let valid = !raw.is_empty()
                    && raw.bytes().all(|b| {
                        b.is_ascii_alphanumeric()
                            || matches!(b, b'-' | b'.' | b'*' | b'[' | b']' | b':')
                    })
                    && (!raw.contains('*')
                        || (raw.starts_with("*.") && raw[2..].find('*').is_none()));
                if !valid {
                    self.error(
                        h.span(),
                        format!(
                            "invalid host {raw:?}: expected a DNS name, `*.domain` or an IP literal"
                        ),
                    );
                    continue;
                }
                let lower = raw.to_ascii_lowercase();
                let (table, key) = match lower.strip_prefix("*.") {
                    Some(rest) => (&mut wildcard_hosts, rest.to_string()),
                    None => (&mut exact_hosts, lower.clone()),
                };
                if table.insert(key, index).is_some() {
                    self.error(
                        h.span(),
                        format!("duplicate host {raw:?}: it is already served by another site"),
                    );
                }
                hosts.push(lower);
            }
            let cert = match (&s.cert, &s.key) {
                (Some(c), Some(k)) => self.cert(c, k),
                (Some(c), None) => {
                    self.error(c.span(), "site has `cert` but no `key`");
                    None
                }
                (None, Some(k)) => {
                    self.error(k.span(), "site has `key` but no `cert`");
                    None
                }
                (None, None) => None,
            };
            if cert.is_none() && s.cert.is_none() && file.tls.is_none() && !https.is_empty() {
                self.error(
                    spanned_site.span(),
                    format!(
                        "site {:?} has no certificate and there is no default [tls] certificate",
                        s.name.get_ref()
                    ),
                );
            }
            let mut routes = Vec::new();
            if s.routes.is_empty() {
                self.error(spanned_site.span(), "site has no routes");
            }
            for r in &s.routes {
                let route = r.get_ref();
                if !route.path_prefix.starts_with('/') {
                    self.error(
                        r.span(),
                        format!("path_prefix {:?} must start with '/'", route.path_prefix),
                    );
                }
                if !pools.contains_key(route.pool.get_ref()) {
                    self.error(
                        route.pool.span(),
                        format!(
                            "unknown pool {:?}; defined pools: {:?}",
                            route.pool.get_ref(),
                            pools.keys().collect::<Vec<_>>()
                        ),
                    );
                }
                routes.push(Route {
                    path_prefix: route.path_prefix.clone(),
                    pool: route.pool.get_ref().clone(),
                });
            }
            routes.sort_by_key(|r| std::cmp::Reverse(r.path_prefix.len()));
            let kept = self.header_names(&s.keep_request_headers);
            let strip_request_headers: Vec<http::HeaderName> = match &s.strip_request_headers {
                Some(list) => self.header_names(list),
                None => DEFAULT_STRIP_REQUEST_HEADERS
                    .iter()
                    .map(|n| http::HeaderName::from_static(n))
                    .collect(),
            }
            .into_iter()
            .filter(|n| !kept.contains(n))
            .collect();
            let site_cache = self.site_cache(&s.cache, &file.cache, &kept);
            let compression = self.compression(&s.compression);
            if let Some(shield) = &s.shield
                && let Some(pool) = pools.get(shield.get_ref())
                && pool.algorithm != Algorithm::ConsistentHash
            {
                self.error(
                    shield.span(),
                    format!(
                        "shield pool {:?} must use algorithm = \"consistent-hash\": every edge has to ask the same shield for a URL",
                        shield.get_ref()
                    ),
                );
            }
            if let Some(shield) = &s.shield
                && !pools.contains_key(shield.get_ref())
            {
                self.error(
                    shield.span(),
                    format!(
                        "unknown shield pool {:?}; defined pools: {:?}",
                        shield.get_ref(),
                        pools.keys().collect::<Vec<_>>()
                    ),
                );
            }
            sites.push(Arc::new(Site {
                name: s.name.get_ref().clone(),
                hosts,
                cert,
                plain_http: s.plain_http,
                http3: s.http3.unwrap_or(file.listen.http3) && file.listen.http3,
                max_request_body_bytes: s
                    .max_request_body_bytes
                    .unwrap_or(file.limits.max_request_body_bytes),
                cache: site_cache,
                compression,
                shield: s.shield.as_ref().map(|p| p.get_ref().clone()),
                shield_fallback: s.shield_fallback,
                routes,
                strip_request_headers,
                request_body_min_rate: s.request_body_min_rate.unwrap_or(1024),
                request_body_grace: s.request_body_grace.unwrap_or(Duration::from_secs(10)),
            }));
        }

        if file.limits.max_request_header_bytes < 1024 {
            self.error(
                0..0,
                "limits.max_request_header_bytes must be at least 1024",
            );
        }
        if file.limits.max_uri_bytes < 64 {
            self.error(0..0, "limits.max_uri_bytes must be at least 64");
        }

        let fraction = *file.cache.heuristic_fraction.get_ref();
        if !(0.0..=1.0).contains(&fraction) {
            self.error(
                file.cache.heuristic_fraction.span(),
                "cache.heuristic_fraction must be between 0 and 1",
            );
        }
        if file.cache.max_object_memory_bytes > file.cache.memory_bytes {
            self.error(
                0..0,
                "cache.max_object_memory_bytes must not exceed cache.memory_bytes",
            );
        }
        let disk_dir = file
            .cache
            .disk_dir
            .as_ref()
            .map(|d| self.base.join(d.get_ref()));
        if file.reload.poll_interval < Duration::from_millis(100) {
            self.error(0..0, "reload.poll_interval must be at least 100ms");
        }

        if !self.errors.is_empty() {
            return None;
        }
        let mut shield_peers: Vec<std::net::IpAddr> = sites
            .iter()
            .filter_map(|s| s.shield.as_ref())
            .filter_map(|name| pools.get(name))
            .flat_map(|p| p.endpoints.iter().map(|e| e.ip().to_canonical()))
            .collect();
        shield_peers.sort();
        shield_peers.dedup();
        Some(Snapshot {
            version: NEXT_VERSION.fetch_add(1, Ordering::Relaxed),
            source: self.path.to_path_buf(),
            loaded_at: SystemTime::now(),
            node_name,
            trusted_peers,
            shield_peers,
            listen: Listen {
                https,
                http,
                admin,
                http3: file.listen.http3,
                alt_svc_max_age: file.listen.alt_svc_max_age,
            },
            timeouts: Timeouts {
                tls_handshake: file.timeouts.tls_handshake,
                request_header: file.timeouts.request_header,
                client_idle: file.timeouts.client_idle,
                origin_connect: file.timeouts.origin_connect,
                origin_tls_handshake: file.timeouts.origin_tls_handshake,
                origin_response_header: file.timeouts.origin_response_header,
                origin_body_idle: file.timeouts.origin_body_idle,
                shutdown_grace: file.timeouts.shutdown_grace,
            },
            limits: Limits {
                max_request_header_bytes: file.limits.max_request_header_bytes,
                max_uri_bytes: file.limits.max_uri_bytes,
            },
            origin: OriginSettings {
                max_idle_per_endpoint: file.origin.max_idle_per_endpoint,
                idle_timeout: file.origin.idle_timeout,
                max_connection_lifetime: Some(file.origin.max_connection_lifetime)
                    .filter(|d| !d.is_zero()),
                dns: DnsSettings {
                    servers: dns_servers,
                    min_ttl: file.origin.dns_min_ttl,
                    max_ttl: file.origin.dns_max_ttl.max(file.origin.dns_min_ttl),
                },
            },
            reload: Reload {
                watch_file: file.reload.watch_file,
                poll_interval: file.reload.poll_interval,
            },
            cache: CacheSettings {
                memory_bytes: file.cache.memory_bytes,
                max_object_memory_bytes: file.cache.max_object_memory_bytes,
                disk_dir,
                disk_bytes: file.cache.disk_bytes,
                hit_for_pass: file.cache.hit_for_pass,
                collapse_timeout: file.cache.collapse_timeout,
            },
            default_cert,
            sites,
            pools,
            exact_hosts,
            wildcard_hosts,
        })
    }
}

#[cfg(test)]
mod tests;
