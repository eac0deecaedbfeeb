//! RFC 9111 rules as pure functions of (request, stored response, now). No I/O, no clock of
//! their own: callers pass `now`, tests pass a simulated one.
//!
//! Where the RFC leaves a choice, the safer one for a shared cache is taken (and tested):
//! - responses with `Set-Cookie` are not stored (they usually carry one user's session);
//! - qualified `private="…"` and `no-cache="…"` are treated like the unqualified forms;
//! - an invalid `Expires` means already expired; conflicting duplicate directives mean stale;
//! - `must-revalidate`, `proxy-revalidate` and `s-maxage` forbid every kind of stale serving
//!   (max-stale, stale-while-revalidate, stale-if-error);
//! - ranges are answered from whole stored responses or slices (`ranges`); a 206 from an
//!   origin is stored only as a slice, by the cache phase.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode};

use crate::cache_control::CacheControl;

mod conditional;
mod parsed;
mod ranges;
mod vary;

pub use conditional::{merge_304, not_modified, validators};
pub use parsed::{PARSED_BYTES, Parsed};
pub use ranges::{MAX_RANGES, RangeAnswer, RangeSet, range, ranges};
pub use vary::{normalize_vary_value, vary_matches, vary_names, vary_values};

pub static CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// Per-site knobs that shape the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Heuristic freshness: this fraction of the time since Last-Modified (RFC 9111 §4.2.2).
    pub heuristic_fraction: f64,
    pub heuristic_max: Duration,
    /// Cap on any freshness lifetime.
    pub max_ttl: Option<Duration>,
    /// Overrides the origin's freshness (a per-path rule matched).
    pub forced_ttl: Option<Duration>,
    /// Obey `CDN-Cache-Control` (RFC 9213) over `Cache-Control`.
    pub cdn_cache_control: bool,
    /// How stale a response may be and still be served while the origin cannot be reached
    /// (RFC 9111 §4.2.4, "always online"); zero: never.
    pub stale_when_down: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            heuristic_fraction: 0.1,
            heuristic_max: Duration::from_secs(86_400),
            max_ttl: None,
            forced_ttl: None,
            cdn_cache_control: true,
            stale_when_down: Duration::from_secs(86_400),
        }
    }
}

/// A stored response's metadata: everything the rules need, nothing about where the body is.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMeta {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// When the request that produced this response was sent (RFC 9111 §4.2.3).
    pub request_time: SystemTime,
    /// When its response head arrived.
    pub response_time: SystemTime,
    /// The request's normalised values of the headers `Vary` names.
    pub vary: Vec<(HeaderName, Option<String>)>,
    pub body_len: u64,
    /// Which body this is: set by the store when an object is filled, kept by revalidation.
    pub generation: u64,
    /// The header fields every hit reads, parsed once (`Parsed::default()` when making one).
    pub parsed: Parsed,
}

impl StoredMeta {
    /// `Cache-Control: no-transform` (see [`crate::encoding::no_transform`]), parsed once.
    pub fn no_transform(&self) -> bool {
        self.parsed.of(self).cc.no_transform
    }

    /// The response's Cache-Control under `policy` (see [`response_cc`]), parsed once.
    fn cc(&self, policy: &Policy) -> &CacheControl {
        let facts = self.parsed.of(self);
        match &facts.cdn {
            Some(cdn) if policy.cdn_cache_control => cdn,
            _ => &facts.cc,
        }
    }
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    Method,
    Status,
    Partial,
    NoStore,
    Private,
    Authorization,
    VaryStar,
    SetCookie,
    NoFreshness,
    /// `Content-Length` with `Transfer-Encoding`, or disagreeing lengths: the body read may not
    /// be the one the origin meant.
    Framing,
}

impl NotStorable {
    pub fn as_str(self) -> &'static str {
        match self {
            NotStorable::Method => "method",
            NotStorable::Status => "status",
            NotStorable::Partial => "partial",
            NotStorable::NoStore => "no-store",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::VaryStar => "vary-star",
            NotStorable::SetCookie => "set-cookie",
            NotStorable::NoFreshness => "no-freshness",
            NotStorable::Framing => "framing",
        }
    }
}

/// The directives this cache obeys for a response: CDN-Cache-Control when present (RFC 9213),
/// else Cache-Control.
pub fn response_cc(headers: &HeaderMap, policy: &Policy) -> CacheControl {
    if policy.cdn_cache_control
        && let Some(cc) = CacheControl::from_cdn_headers(headers, &CDN_CACHE_CONTROL)
    {
        return cc;
    }
    CacheControl::from_headers(headers, &header::CACHE_CONTROL).unwrap_or_default()
}

/// Status codes cacheable by default (RFC 9110 §15.1).
pub fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Status codes whose caching semantics we implement (for `must-understand`).
fn understood(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 302 | 303 | 307 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// RFC 9111 §3: may this response to this request be stored by a shared cache?
pub fn storable(
    method: &Method,
    req_headers: &HeaderMap,
    status: StatusCode,
    resp_headers: &HeaderMap,
    policy: &Policy,
) -> Result<(), NotStorable> {
    if method != Method::GET {
        return Err(NotStorable::Method);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        return Err(NotStorable::Partial);
    }
    if status.is_informational() || status == StatusCode::NOT_MODIFIED {
        return Err(NotStorable::Status);
    }
    let req_cc = CacheControl::request(req_headers);
    let cc = response_cc(resp_headers, policy);
    if req_cc.no_store {
        return Err(NotStorable::NoStore);
    }
    if cc.must_understand {
        if !understood(status) {
            return Err(NotStorable::Status);
        }
    } else if cc.no_store {
        return Err(NotStorable::NoStore);
    }
    if cc.private {
        return Err(NotStorable::Private);
    }
    if req_headers.contains_key(header::AUTHORIZATION)
        && !(cc.public || cc.must_revalidate || cc.s_maxage.is_some())
    {
        return Err(NotStorable::Authorization);
    }
    if vary_names(resp_headers).is_none() {
        return Err(NotStorable::VaryStar);
    }
    if resp_headers.contains_key(header::SET_COOKIE) {
        return Err(NotStorable::SetCookie);
    }
    let explicit = cc.max_age.is_some()
        || cc.s_maxage.is_some()
        || resp_headers.contains_key(header::EXPIRES)
        || policy.forced_ttl.is_some();
    let heuristic = heuristically_cacheable(status)
        && (cc.public || resp_headers.contains_key(header::LAST_MODIFIED));
    // `no-cache` with a validator: stored and revalidated on every use, so that a 304 costs
    // the origin no body (RFC 9111 §3, §4.2.4: no freshness needed to store).
    let revalidated = cc.no_cache
        && (resp_headers.contains_key(header::ETAG)
            || resp_headers.contains_key(header::LAST_MODIFIED));
    if !(explicit || heuristic || revalidated) {
        return Err(NotStorable::NoFreshness);
    }
    Ok(())
}

/// A date header, read leniently (see `dates`).
pub fn http_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    crate::dates::parse(headers.get(name)?.to_str().ok()?)
}

fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or(Duration::ZERO)
}

/// RFC 9111 §4.2.1, with the policy's forced TTL and cap.
pub fn freshness_lifetime(meta: &StoredMeta, policy: &Policy) -> Duration {
    lifetime_under(meta, policy, meta.cc(policy))
}

/// The freshness lifetime given the response's Cache-Control, parsed once by the caller (a hit
/// needs it for the lifetime and for the stale rules).
fn lifetime_under(meta: &StoredMeta, policy: &Policy, cc: &CacheControl) -> Duration {
    let lifetime = origin_lifetime(meta, policy, cc);
    match policy.max_ttl {
        Some(cap) => lifetime.min(cap),
        None => lifetime,
    }
}

fn origin_lifetime(meta: &StoredMeta, policy: &Policy, cc: &CacheControl) -> Duration {
    if let Some(forced) = policy.forced_ttl {
        return forced;
    }
    if let Some(s) = cc.s_maxage {
        return Duration::from_secs(s);
    }
    if let Some(s) = cc.max_age {
        return Duration::from_secs(s);
    }
    let date = http_date(&meta.headers, &header::DATE).unwrap_or(meta.response_time);
    if meta.headers.contains_key(header::EXPIRES) {
        // An invalid Expires (e.g. "0") means already expired (RFC 9111 §5.3).
        return match http_date(&meta.headers, &header::EXPIRES) {
            Some(expires) => since(expires, date),
            None => Duration::ZERO,
        };
    }
    if heuristically_cacheable(meta.status)
        && let Some(lm) = http_date(&meta.headers, &header::LAST_MODIFIED)
    {
        let h = since(date, lm).mul_f64(policy.heuristic_fraction.clamp(0.0, 1.0));
        return h.min(policy.heuristic_max);
    }
    Duration::ZERO
}

/// RFC 9111 §4.2.3: the age of the stored response at `now`.
pub fn current_age(meta: &StoredMeta, now: SystemTime) -> Duration {
    meta.parsed.of(meta).initial_age + since(now, meta.response_time)
}

/// Whether a stored response may be served stale because the origin cannot be reached
/// (connect or TLS failure, timeout; not an answer, however bad): within the policy's window,
/// and unless a directive forbids stale serving (`must-revalidate`, `proxy-revalidate`,
/// `s-maxage`, `no-cache`) or the client asked for a validated response.
pub fn stale_when_down(
    req_headers: &HeaderMap,
    meta: &StoredMeta,
    policy: &Policy,
    now: SystemTime,
) -> bool {
    let cc = meta.cc(policy);
    let req = CacheControl::request(req_headers);
    if cc.must_revalidate
        || cc.proxy_revalidate
        || cc.s_maxage.is_some()
        || cc.no_cache
        || req.no_cache
        || policy.stale_when_down.is_zero()
    {
        return false;
    }
    let staleness = current_age(meta, now).saturating_sub(freshness_lifetime(meta, policy));
    staleness <= policy.stale_when_down
}

/// What to do with a stored response for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Serve it.
    Fresh,
    /// Stale, but the client accepts it (`max-stale`).
    StaleOk,
    /// Stale within `stale-while-revalidate`: serve it and refresh in the background.
    StaleWhileRevalidate,
    /// Ask the origin (conditionally). When that fails, serving the stored response is allowed
    /// if `stale_if_error`.
    Revalidate { stale_if_error: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    pub age: Duration,
    pub lifetime: Duration,
}

impl Verdict {
    /// Seconds of freshness left (negative when stale), for `Cache-Status: ttl=`.
    pub fn ttl_secs(&self) -> i64 {
        let life = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX);
        let age = i64::try_from(self.age.as_secs()).unwrap_or(i64::MAX);
        life.saturating_sub(age)
    }
}

/// RFC 9111 §4: may the stored response answer this request now?
pub fn evaluate(
    req_headers: &HeaderMap,
    meta: &StoredMeta,
    policy: &Policy,
    now: SystemTime,
) -> Verdict {
    let req = CacheControl::request(req_headers);
    let cc = meta.cc(policy);
    let age = current_age(meta, now);
    let lifetime = lifetime_under(meta, policy, cc);
    let verdict = |action| Verdict {
        action,
        age,
        lifetime,
    };
    let no_stale = cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.is_some();
    let staleness = age.saturating_sub(lifetime);
    let sie = |staleness: Duration| {
        let window = cc.stale_if_error.or(req.stale_if_error);
        !no_stale && window.is_some_and(|w| staleness <= Duration::from_secs(w))
    };
    if cc.no_cache || req.no_cache {
        return verdict(Action::Revalidate {
            stale_if_error: sie(staleness),
        });
    }
    let fresh = age < lifetime;
    let client_ok = req.max_age.is_none_or(|m| age <= Duration::from_secs(m))
        && req
            .min_fresh
            .is_none_or(|m| lifetime.saturating_sub(age) >= Duration::from_secs(m));
    if fresh && client_ok {
        return verdict(Action::Fresh);
    }
    if fresh {
        // Fresh for us, too old for this client: ask the origin, nothing stale is involved.
        return verdict(Action::Revalidate {
            stale_if_error: sie(staleness),
        });
    }
    if !no_stale {
        let client_stale_ok = match req.max_stale {
            Some(None) => true,
            Some(Some(s)) => staleness <= Duration::from_secs(s),
            None => false,
        };
        if client_stale_ok && req.max_age.is_none_or(|m| age <= Duration::from_secs(m)) {
            return verdict(Action::StaleOk);
        }
        if cc
            .stale_while_revalidate
            .is_some_and(|w| staleness <= Duration::from_secs(w))
            && req.max_age.is_none()
        {
            return verdict(Action::StaleWhileRevalidate);
        }
    }
    verdict(Action::Revalidate {
        stale_if_error: sie(staleness),
    })
}

/// RFC 9111 §4.4: the same-host paths a successful unsafe request invalidates: its own target
/// and any `Location` / `Content-Location` on the same host.
pub fn invalidation_paths(
    method: &Method,
    status: StatusCode,
    host: &str,
    path_and_query: &str,
    resp_headers: &HeaderMap,
) -> Vec<String> {
    if method.is_safe() || !(status.is_success() || status.is_redirection()) {
        return Vec::new();
    }
    let mut out = vec![path_and_query.to_string()];
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(v) = resp_headers.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        if v.starts_with('/') {
            out.push(v.to_string());
        } else if let Ok(uri) = v.parse::<http::Uri>()
            && let Some(auth) = uri.authority()
            && auth.host().eq_ignore_ascii_case(host)
        {
            out.push(uri.path_and_query().map_or("/", |p| p.as_str()).to_string());
        }
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests;
