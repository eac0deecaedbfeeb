//! `[[sites]]`: hosts, routes, certificates, compression and cache policy.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{duration, opt_duration, opt_size, size};

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
    #[serde(default)]
    pub geo: super::geo::SiteGeo,
    #[serde(default)]
    pub access: Vec<Spanned<super::geo::AccessRule>>,
    #[serde(default)]
    pub security_headers: super::protect::SecurityHeaders,
    #[serde(default)]
    pub rate_limits: Vec<Spanned<super::protect::RateLimit>>,
    /// Site rules, in order (`[[sites.rules]]`).
    #[serde(default)]
    pub rules: Vec<Spanned<super::rules::Rule>>,
    /// A/B buckets for the rules (`[sites.ab]`).
    pub ab: Option<Spanned<super::rules::Ab>>,
    /// TLS 1.3 early data over QUIC: `off`, or `safe` (GET/HEAD answered from early data).
    #[serde(default)]
    pub zero_rtt: ZeroRtt,
    /// GeoDNS overrides (`[sites.dns]`).
    #[serde(default)]
    pub dns: super::dns::SiteDns,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZeroRtt {
    #[default]
    Off,
    Safe,
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
    /// Geo steering: visitors from these countries (ISO codes) go to these pools...
    #[serde(default)]
    pub pools_by_country: std::collections::BTreeMap<String, Spanned<String>>,
    /// ...and from these continents (AF, AN, AS, EU, NA, OC, SA) to these; the country wins.
    #[serde(default)]
    pub pools_by_continent: std::collections::BTreeMap<String, Spanned<String>>,
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

pub(super) fn yes() -> bool {
    true
}

pub(super) fn slash() -> String {
    "/".to_string()
}
