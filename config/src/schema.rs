//! The TOML file as written by an operator. Every table refuses unknown keys so that a typo is an
//! error with a location, not a silently ignored setting.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

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
    pub pools: BTreeMap<String, Spanned<Pool>>,
    #[serde(default)]
    pub sites: Vec<Spanned<Site>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    #[serde(default = "default_node_name")]
    pub name: Spanned<String>,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            name: default_node_name(),
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
    pub origin_response_header: Duration,
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
            origin_response_header: Duration::from_secs(30),
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
}

impl Default for Origin {
    fn default() -> Self {
        Origin {
            max_idle_per_endpoint: 256,
            idle_timeout: Duration::from_secs(60),
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub endpoints: Vec<Spanned<String>>,
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
    pub routes: Vec<Spanned<Route>>,
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

/// Accepts `"250ms"`, `"10s"`, `"2m"`, `"1h"` or a bare integer number of seconds.
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
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?} in {text:?}: use ms, s, m or h"
            ));
        }
    };
    Ok(d)
}
