//! `[pools.NAME]`: endpoints, balancing, health checks, outlier ejection, retries.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{duration, opt_duration};

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
