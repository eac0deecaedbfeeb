//! `[sites.security_headers]` and `[[sites.rate_limits]]`.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{duration, opt_duration};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityHeaders {
    /// `Strict-Transport-Security` on HTTPS responses.
    pub hsts: Option<Hsts>,
    /// `X-Content-Type-Options: nosniff`.
    pub content_type_options: bool,
    pub referrer_policy: Option<Spanned<String>>,
    pub content_security_policy: Option<Spanned<String>>,
    pub permissions_policy: Option<Spanned<String>>,
    /// Replace the origin's own values (default: add only what the origin did not send).
    #[serde(rename = "override")]
    pub override_origin: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hsts {
    #[serde(deserialize_with = "duration")]
    pub max_age: Duration,
    #[serde(default)]
    pub include_subdomains: bool,
    #[serde(default)]
    pub preload: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Names the rule in `RateLimit`/`RateLimit-Policy` and in metrics.
    pub name: Spanned<String>,
    #[serde(default = "super::sites::slash")]
    pub path_prefix: String,
    /// Methods the rule counts (default: all).
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
    /// `client` (the address), `prefix` (its /24 or /64), `header:NAME`, or `site` (one
    /// bucket for the whole site).
    #[serde(default = "client")]
    pub key: Spanned<String>,
    /// Requests allowed per `per`, on average...
    pub rate: Spanned<u64>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub per: Option<Duration>,
    /// ...plus this many at once.
    #[serde(default)]
    pub burst: u64,
    /// Keys tracked at most; the oldest are dropped first when full.
    #[serde(default)]
    pub max_keys: Option<usize>,
    #[serde(default)]
    pub report_only: bool,
}

fn client() -> Spanned<String> {
    Spanned::new(0..0, "client".to_string())
}
