//! The TOML file as written by an operator. Every table refuses unknown keys so that a typo is an
//! error with a location, not a silently ignored setting.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

pub mod admin;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub node: Node,
    pub listen: Listen,
    pub tls: Option<Tls>,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub origin: Origin,
    #[serde(default)]
    pub reload: Reload,
    #[serde(default)]
    pub cache: CacheNode,
    #[serde(default)]
    pub pools: BTreeMap<String, Spanned<Pool>>,
    #[serde(default)]
    pub sites: Vec<Spanned<Site>>,
    #[serde(default)]
    pub admin: admin::Admin,
    #[serde(default)]
    pub log: Log,
    /// How a node reaches the central store (node file only); read and checked by the
    /// control plane (`edge-control`), which needs it before any document exists.
    #[serde(default)]
    #[allow(dead_code)] // accepted here, read by edge-control
    pub store: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    #[serde(default = "default_node_name")]
    pub name: Spanned<String>,
    /// CIDR ranges of our own edges, shields and load balancers.
    #[serde(default)]
    pub trusted_peers: Vec<Spanned<String>>,
    /// The point of presence and region this node belongs to (reports, rollouts, purges).
    #[serde(default)]
    pub pop: Option<Spanned<String>>,
    #[serde(default)]
    pub region: Option<Spanned<String>>,
    #[serde(default)]
    pub tier: Tier,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            name: default_node_name(),
            trusted_peers: Vec::new(),
            pop: None,
            region: None,
            tier: Tier::Edge,
        }
    }
}

/// Edges face visitors; shields sit between edges and origins (and apply purges first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    #[default]
    Edge,
    Shield,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Edge => "edge",
            Tier::Shield => "shield",
        }
    }
}

fn default_node_name() -> Spanned<String> {
    Spanned::new(0..0, "edge".to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    #[serde(default)]
    pub https: Vec<Spanned<String>>,
    #[serde(default)]
    pub http: Vec<Spanned<String>>,
    #[serde(default)]
    pub admin: Vec<Spanned<String>>,
    #[serde(default = "yes")]
    pub http3: bool,
    #[serde(default = "default_alt_svc_max_age")]
    pub alt_svc_max_age: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    #[serde(deserialize_with = "duration")]
    pub tls_handshake: Duration,
    #[serde(deserialize_with = "duration")]
    pub request_header: Duration,
    #[serde(deserialize_with = "duration")]
    pub client_idle: Duration,
    #[serde(deserialize_with = "duration")]
    pub origin_connect: Duration,
    #[serde(deserialize_with = "duration")]
    pub origin_tls_handshake: Duration,
    #[serde(deserialize_with = "duration")]
    pub origin_response_header: Duration,
    #[serde(deserialize_with = "duration")]
    pub origin_body_idle: Duration,
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tls_handshake: Duration::from_secs(10),
            request_header: Duration::from_secs(10),
            client_idle: Duration::from_secs(75),
            origin_connect: Duration::from_secs(3),
            origin_tls_handshake: Duration::from_secs(5),
            origin_response_header: Duration::from_secs(30),
            origin_body_idle: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_request_header_bytes: u32,
    pub max_uri_bytes: u32,
    pub max_request_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_header_bytes: 32 * 1024,
            max_uri_bytes: 8 * 1024,
            max_request_body_bytes: 100 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Origin {
    pub max_idle_per_endpoint: usize,
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// Connections older than this are not reused (0: no limit).
    #[serde(deserialize_with = "duration")]
    pub max_connection_lifetime: Duration,
    /// DNS servers for endpoint names (`IP:PORT`); empty: the system's (/etc/resolv.conf).
    pub dns_servers: Vec<Spanned<String>>,
    #[serde(deserialize_with = "duration")]
    pub dns_min_ttl: Duration,
    #[serde(deserialize_with = "duration")]
    pub dns_max_ttl: Duration,
}

impl Default for Origin {
    fn default() -> Self {
        Origin {
            max_idle_per_endpoint: 256,
            idle_timeout: Duration::from_secs(60),
            max_connection_lifetime: Duration::ZERO,
            dns_servers: Vec::new(),
            dns_min_ttl: Duration::from_secs(1),
            dns_max_ttl: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reload {
    pub watch_file: bool,
    #[serde(deserialize_with = "duration")]
    pub poll_interval: Duration,
}

impl Default for Reload {
    fn default() -> Self {
        Reload {
            watch_file: true,
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// `[log]`: the access log and trace context.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `"stderr"`, `"stdout"`, `"off"` or a file path (relative to the config file's directory).
    pub access: Spanned<String>,
    pub format: LogFormat,
    /// Query parameters whose values the access log writes as `REDACTED`.
    pub redact_query_params: Vec<Spanned<String>>,
    /// Leave the query out of the access log altogether.
    pub redact_query: bool,
    /// Start a trace (a new `traceparent` to the origin) when the client sent none.
    pub start_traces: bool,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            access: Spanned::new(0..0, "stderr".to_string()),
            format: LogFormat::Json,
            redact_query_params: Vec::new(),
            redact_query: false,
            start_traces: true,
        }
    }
}

/// How access log records are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// The NCSA combined log format, with the request id and cache status appended.
    Combined,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub endpoints: Vec<Spanned<Endpoint>>,
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Extra tries after the first, each on another endpoint.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Retries in flight may be at most this share of the pool's requests in flight.
    #[serde(default = "default_retry_budget")]
    pub retry_budget: Spanned<f64>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub per_try_timeout: Option<Duration>,
    /// Circuit breaker: requests in flight to the pool past which new ones get 503.
    #[serde(default = "default_max_requests")]
    pub max_requests: u64,
    pub health: Option<Health>,
    #[serde(default)]
    pub outlier: Outlier,
    /// Connect to the endpoints with TLS.
    #[serde(default)]
    pub tls: bool,
    /// PEM file of CA certificates to trust instead of the built-in web roots.
    pub tls_ca_file: Option<Spanned<String>>,
    /// Name sent as SNI and verified in the certificate (default: the endpoint's host name).
    pub tls_server_name: Option<Spanned<String>>,
    /// `"http1"` (keep-alive) or `"h2"` (ALPN over TLS; prior knowledge without).
    #[serde(default)]
    pub protocol: OriginProtocol,
    /// `Host` header sent to this pool instead of the client's.
    pub host: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OriginProtocol {
    #[default]
    Http1,
    H2,
}

fn default_retries() -> u32 {
    2
}

fn default_retry_budget() -> Spanned<f64> {
    Spanned::new(0..0, 0.2)
}

fn default_max_requests() -> u64 {
    10_000
}

/// `"IP:PORT"` or `{ addr = "IP:PORT", weight = N }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Endpoint {
    Addr(String),
    Weighted { addr: String, weight: u32 },
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    #[default]
    RoundRobin,
    WeightedRoundRobin,
    LeastInFlight,
    P2cEwma,
    ConsistentHash,
    ClientIpHash,
    Random,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Health {
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    /// Expected statuses: `[200, 204]`; empty means any 2xx or 3xx.
    pub expect: Vec<u16>,
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// Each wait is the interval plus or minus up to this share of it.
    pub jitter: f64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            method: "GET".into(),
            path: "/".into(),
            host: None,
            expect: Vec::new(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 3,
            jitter: 0.1,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Outlier {
    /// Consecutive connect errors, timeouts or 5xx that eject an endpoint (0: never).
    pub consecutive_failures: u32,
    #[serde(deserialize_with = "duration")]
    pub base_ejection: Duration,
    #[serde(deserialize_with = "duration")]
    pub max_ejection: Duration,
    pub max_ejected_share: f64,
}

impl Default for Outlier {
    fn default() -> Self {
        Outlier {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(300),
            max_ejected_share: 0.5,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    pub name: Spanned<String>,
    pub hosts: Vec<Spanned<String>>,
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    #[serde(default)]
    pub plain_http: PlainHttp,
    pub http3: Option<bool>,
    pub max_request_body_bytes: Option<u64>,
    #[serde(default)]
    pub cache: SiteCache,
    #[serde(default)]
    pub compression: Compression,
    /// A pool of other edge nodes asked on a miss before the origin.
    pub shield: Option<Spanned<String>>,
    #[serde(default = "yes")]
    pub shield_fallback: bool,
    pub routes: Vec<Spanned<Route>>,
    /// Request headers that steer origins but are not in the cache key; `None`: the default list.
    pub strip_request_headers: Option<Vec<Spanned<String>>>,
    /// Steering headers this site forwards on purpose; each joins the cache key.
    #[serde(default)]
    pub keep_request_headers: Vec<Spanned<String>>,
    /// Minimum average request-body rate (bytes per second) after the grace period; 0: off.
    #[serde(default, deserialize_with = "opt_size")]
    pub request_body_min_rate: Option<u64>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub request_body_grace: Option<Duration>,
    /// Share of this site's requests written to the access log (5xx always are); 1: all.
    pub log_sample: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Compression {
    pub enabled: bool,
    pub prefer: Vec<Spanned<String>>,
    pub types: Option<Vec<Spanned<String>>>,
    #[serde(deserialize_with = "size")]
    pub min_bytes: u64,
    pub stored_level: Levels,
    pub fly_level: Levels,
}

impl Default for Compression {
    fn default() -> Self {
        let prefer = ["zstd", "br", "gzip"]
            .iter()
            .map(|c| Spanned::new(0..0, c.to_string()))
            .collect();
        Compression {
            enabled: true,
            prefer,
            types: None,
            min_bytes: 512,
            stored_level: Levels::stored(),
            fly_level: Levels::fly(),
        }
    }
}

/// Compression level per coding.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    pub zstd: Option<Spanned<i32>>,
    pub br: Option<Spanned<i32>>,
    pub gzip: Option<Spanned<i32>>,
}

impl Levels {
    fn of(zstd: i32, br: i32, gzip: i32) -> Levels {
        Levels {
            zstd: Some(Spanned::new(0..0, zstd)),
            br: Some(Spanned::new(0..0, br)),
            gzip: Some(Spanned::new(0..0, gzip)),
        }
    }

    pub fn stored() -> Levels {
        let l = crate::Levels::STORED;
        Levels::of(l.zstd, l.br, l.gzip)
    }

    pub fn fly() -> Levels {
        let l = crate::Levels::FLY;
        Levels::of(l.zstd, l.br, l.gzip)
    }
}

impl Default for Levels {
    fn default() -> Self {
        Levels::fly()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheNode {
    #[serde(deserialize_with = "size")]
    pub memory_bytes: u64,
    #[serde(deserialize_with = "size")]
    pub max_object_memory_bytes: u64,
    pub disk_dir: Option<Spanned<String>>,
    #[serde(deserialize_with = "size")]
    pub disk_bytes: u64,
    #[serde(deserialize_with = "duration")]
    pub hit_for_pass: Duration,
    #[serde(deserialize_with = "duration")]
    pub collapse_timeout: Duration,
    /// Size of the slices large objects are cached in when they are requested by range.
    #[serde(deserialize_with = "size")]
    pub slice_bytes: u64,
    /// Objects above this size, requested by range, are cached in slices; smaller ones whole.
    #[serde(deserialize_with = "size")]
    pub slice_above_bytes: u64,
    pub heuristic_fraction: Spanned<f64>,
    #[serde(deserialize_with = "duration")]
    pub heuristic_max: Duration,
}

impl Default for CacheNode {
    fn default() -> Self {
        CacheNode {
            memory_bytes: 256 << 20,
            max_object_memory_bytes: 8 << 20,
            disk_dir: None,
            disk_bytes: 10 << 30,
            hit_for_pass: Duration::from_secs(30),
            collapse_timeout: Duration::from_secs(10),
            slice_bytes: 1 << 20,
            slice_above_bytes: 16 << 20,
            heuristic_fraction: Spanned::new(0..0, 0.1),
            heuristic_max: Duration::from_secs(86_400),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteCache {
    pub enabled: bool,
    #[serde(deserialize_with = "opt_duration")]
    pub max_ttl: Option<Duration>,
    pub cdn_cache_control: bool,
    /// Response headers whose values tag objects for purges (Surrogate-Key: space-separated;
    /// Cache-Tag: comma-separated).
    pub tag_headers: Vec<Spanned<String>>,
    /// Remove the tag headers from responses to clients.
    pub strip_tag_headers: bool,
    /// Accept the `PURGE` method on the site's URLs (with an admin bearer token allowed to
    /// purge URLs of the site).
    pub purge_method: bool,
    /// How stale an object may be served while the origin cannot be reached; "0s": never.
    #[serde(deserialize_with = "duration")]
    pub serve_stale_when_origin_down: Duration,
    pub ignore_query: bool,
    pub ignore_params: Vec<String>,
    pub sort_query: bool,
    pub key_headers: Vec<Spanned<String>>,
    pub key_cookies: Vec<String>,
    pub bypass_cookies: Vec<String>,
    pub bypass_authorization: bool,
    pub force_ttl: Vec<ForceTtl>,
    /// Send `ignore_params` to the origin anyway (off: what is not in the key is not sent).
    pub forward_ignored_params: bool,
}

impl Default for SiteCache {
    fn default() -> Self {
        SiteCache {
            enabled: true,
            max_ttl: None,
            cdn_cache_control: true,
            serve_stale_when_origin_down: Duration::from_secs(86_400),
            tag_headers: ["surrogate-key", "cache-tag"]
                .iter()
                .map(|h| Spanned::new(0..0, h.to_string()))
                .collect(),
            strip_tag_headers: true,
            purge_method: false,
            ignore_query: false,
            ignore_params: Vec::new(),
            sort_query: false,
            key_headers: Vec::new(),
            key_cookies: Vec::new(),
            bypass_cookies: Vec::new(),
            bypass_authorization: false,
            force_ttl: Vec::new(),
            forward_ignored_params: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForceTtl {
    pub path_prefix: String,
    #[serde(deserialize_with = "duration")]
    pub ttl: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(default = "slash")]
    pub path_prefix: String,
    pub pool: Spanned<String>,
}

/// What the plain-HTTP listener does for a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlainHttp {
    /// 308 to the same path and query over HTTPS: the safe default for browsers.
    #[default]
    Redirect,
    /// Serve the site over plain HTTP too (test tools and internal clients).
    Proxy,
}

fn yes() -> bool {
    true
}

fn slash() -> String {
    "/".to_string()
}

fn default_alt_svc_max_age() -> u32 {
    86_400
}

/// Accepts `"250ms"`, `"10s"`, `"2m"`, `"1h"`, `"7d"` or a bare integer number of seconds.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    size(d).map(Some)
}

/// Accepts a byte count or `"512KiB"`, `"256MiB"`, `"10GiB"` (also KB/MB/GB, powers of 1000).
fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Bytes(b) => Ok(b),
        Raw::Text(t) => parse_size(&t).map_err(serde::de::Error::custom),
    }
}

pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid size {text:?}: expected e.g. 1048576, \"512KiB\", \"10GiB\"")
    })?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "invalid size unit {other:?} in {text:?}: use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid duration {text:?}: expected e.g. \"250ms\", \"10s\", \"2m\"")
    })?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?} in {text:?}: use ms, s, m, h or d"
            ));
        }
    };
    Ok(d)
}
