//! The TOML file as written by an operator. Every table refuses unknown keys so that a typo is an
//! error with a location, not a silently ignored setting.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

pub mod admin;
pub mod dns;
pub mod geo;
mod pools;
pub mod protect;
pub mod rules;
mod sites;

pub use pools::*;
use sites::yes;
pub use sites::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub node: Node,
    #[serde(default)]
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
    #[serde(default)]
    pub geo: geo::Geo,
    /// GeoDNS (`edge dns`).
    pub dns: Option<Spanned<dns::Dns>>,
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
    /// Sources (CIDR ranges, e.g. an L4 load balancer) whose TCP connections must start with
    /// a PROXY protocol header (v1 or v2); from anyone else one is refused.
    #[serde(default)]
    pub proxy_protocol: Vec<Spanned<String>>,
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
    /// How long a response may wait for a client that does not read it (a slow reader holds
    /// buffers and an origin connection); then the connection is closed.
    #[serde(deserialize_with = "duration")]
    pub client_send: Duration,
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
            client_send: Duration::from_secs(60),
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
    /// Header fields per request (all protocols).
    pub max_request_headers: u32,
    /// Requests on one connection before the edge closes it gracefully (0: no cap).
    pub max_requests_per_connection: u64,
    /// Open connections from one client address, TCP and QUIC together (0: no cap).
    pub max_connections_per_client: u32,
    /// Open client connections on the node (0: no cap).
    pub max_connections: u32,
    pub h2_max_concurrent_streams: u32,
    /// Streams a client may reset before the edge accepted them (rapid reset).
    pub h2_max_pending_accept_reset_streams: u32,
    /// Streams the edge may reset for the client's errors before closing the connection.
    pub h2_max_local_error_reset_streams: u32,
    /// QUIC handshakes in progress on the node above which new ones must first prove their
    /// address with a Retry (0: always; a very large number: never).
    pub quic_retry_above: u32,
    /// QUIC handshakes in progress from one client address at most (0: no cap).
    pub quic_max_handshakes_per_client: u32,
    /// New connections (TCP and QUIC) per second from one client address, on average (0: no
    /// limit), with `new_connections_burst` more at once.
    pub new_connections_per_client: u32,
    pub new_connections_burst: u32,
    /// Slow readers: once a connection has waited `client_send_grace` in all on a client to
    /// read its responses, it must have taken at least this many bytes per second of that
    /// waiting, else it is closed (0: no minimum).
    #[serde(deserialize_with = "size")]
    pub client_min_send_rate: u64,
    #[serde(deserialize_with = "duration")]
    pub client_send_grace: Duration,
    /// Response bytes buffered for one client connection (HTTP/3: the QUIC send window;
    /// HTTP/2: per stream, at most 400 KiB, hyper's default).
    #[serde(deserialize_with = "size")]
    pub max_buffered_response_bytes: u64,
    /// Concurrent request streams per HTTP/3 connection.
    pub quic_max_concurrent_streams: u32,
    /// Requests an HTTP/2 or HTTP/3 connection carries before the early-reset rule judges it
    /// (more than half reset before their answer: GOAWAY).
    pub early_reset_min_streams: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_header_bytes: 32 * 1024,
            max_uri_bytes: 8 * 1024,
            max_request_body_bytes: 100 * 1024 * 1024,
            max_request_headers: 100,
            max_requests_per_connection: 10_000,
            max_connections_per_client: 1_000,
            max_connections: 0,
            h2_max_concurrent_streams: 256,
            h2_max_pending_accept_reset_streams: 20,
            h2_max_local_error_reset_streams: 1024,
            quic_retry_above: 64,
            quic_max_handshakes_per_client: 256,
            new_connections_per_client: 0,
            new_connections_burst: 100,
            client_min_send_rate: 512,
            client_send_grace: Duration::from_secs(20),
            max_buffered_response_bytes: 2 * 1024 * 1024,
            // quinn keeps an entry per allowed stream for the connection's life: at 256 its
            // two stream maps took 17 KiB of an idle connection's 63. 100 is quic-go's
            // default (Caddy's).
            quic_max_concurrent_streams: 100,
            early_reset_min_streams: 500,
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
    /// An OTLP/HTTP collector (`http://host:port`, or a URL ending in `/v1/traces`) that gets
    /// one server span per sampled request.
    pub otlp: Option<Spanned<String>>,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            access: Spanned::new(0..0, "stderr".to_string()),
            format: LogFormat::Json,
            redact_query_params: Vec::new(),
            redact_query: false,
            start_traces: true,
            otlp: None,
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

impl Default for Listen {
    fn default() -> Self {
        Listen {
            https: Vec::new(),
            http: Vec::new(),
            admin: Vec::new(),
            http3: yes(),
            alt_svc_max_age: default_alt_svc_max_age(),
            proxy_protocol: Vec::new(),
        }
    }
}

fn default_alt_svc_max_age() -> u32 {
    86_400
}

/// Accepts `"250ms"`, `"10s"`, `"2m"`, `"1h"`, `"7d"` or a bare integer number of seconds.
pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
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

pub(super) fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

pub(super) fn opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    size(d).map(Some)
}

/// Accepts a byte count or `"512KiB"`, `"256MiB"`, `"10GiB"` (also KB/MB/GB, powers of 1000).
pub(super) fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
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
