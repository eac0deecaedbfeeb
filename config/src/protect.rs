//! Compiled protection settings of a site: security headers and rate limits. Enforced by the
//! edge (`edge/src/protect`); here they are data.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};

#[derive(Debug, Clone, Default)]
pub struct SecurityHeaders {
    /// `Strict-Transport-Security`, for HTTPS responses only.
    pub hsts: Option<HeaderValue>,
    /// The others, for every response.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Replace what the origin sent (else only add what it did not).
    pub override_origin: bool,
}

impl SecurityHeaders {
    pub fn is_empty(&self) -> bool {
        self.hsts.is_none() && self.set.is_empty()
    }
}

/// What a rate limit counts requests by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    /// The client's address.
    Client,
    /// The client's /24 (IPv4) or /64 (IPv6).
    Prefix,
    /// A request header's value (requests without it share one bucket).
    Header(HeaderName),
    /// One bucket for the whole site.
    Site,
}

#[derive(Debug, Clone)]
pub struct RateLimitRule {
    pub name: String,
    pub path_prefix: String,
    /// Empty: every method.
    pub methods: Vec<Method>,
    pub key: LimitKey,
    /// `rate` requests per `per` on average, `burst` more at once.
    pub rate: u64,
    pub per: Duration,
    pub burst: u64,
    pub max_keys: usize,
    pub report_only: bool,
}

impl RateLimitRule {
    /// Whether the rule counts a request with this method and path.
    pub fn applies(&self, method: &Method, path: &str) -> bool {
        path.starts_with(&self.path_prefix)
            && (self.methods.is_empty() || self.methods.contains(method))
    }
}
