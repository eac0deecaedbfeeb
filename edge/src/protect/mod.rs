//! Protection: per-site rate limits (a request filter) and security headers (a response
//! filter). The limits' keyed state lives in `limiter`; it is kept across reloads that do not
//! change a rule.

pub mod conns;
pub mod handshakes;
pub mod limiter;
mod per_address;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use config::Snapshot;
use config::protect::{LimitKey, RateLimitRule};
use http::{HeaderName, HeaderValue, Response, StatusCode, header};

use crate::body::{self, ProxyBody};
use crate::ctx::RequestCtx;
use crate::error::Error;
use crate::filters::{RequestFilter, Verdict};
use limiter::Limiter;

pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Each site's limiters, in the order of its rules.
pub type Limiters = HashMap<String, Vec<Arc<Limiter>>>;

/// The limiters of `snapshot`: a rule unchanged since `previous` keeps its state.
pub fn limiters(snapshot: &Snapshot, previous: Option<&Limiters>) -> Limiters {
    let mut out = HashMap::new();
    for site in &snapshot.sites {
        if site.rate_limits.is_empty() {
            continue;
        }
        let old = previous.and_then(|p| p.get(&site.name));
        let list = site
            .rate_limits
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let params = (r.rate, r.per, r.burst, r.max_keys);
                match old.and_then(|o| o.get(i)) {
                    Some(l) if l.params == params => l.clone(),
                    _ => Arc::new(Limiter::new(r.rate, r.per, r.burst, r.max_keys)),
                }
            })
            .collect();
        out.insert(site.name.clone(), list);
    }
    out
}

/// The request filter: every rule of the site that covers the request counts it; one over
/// its limit answers 429 (a report-only rule logs and counts instead).
pub struct RateLimits(pub Arc<Limiters>);

/// The /24 (IPv4) or /64 (IPv6) of an address.
fn prefix_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & 0xffff_ff00).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
    }
}

impl RequestFilter for RateLimits {
    fn name(&self) -> &'static str {
        "rate_limits"
    }

    fn on_request(&self, ctx: &mut RequestCtx) -> Result<Verdict, Error> {
        let Some(site) = &ctx.site else {
            return Ok(Verdict::Continue);
        };
        if site.rate_limits.is_empty() {
            return Ok(Verdict::Continue);
        }
        let Some(limiters) = self.0.get(&site.name) else {
            return Ok(Verdict::Continue);
        };
        let now = edge_core::clock::monotonic_ns();
        for (rule, limiter) in site.rate_limits.iter().zip(limiters) {
            if !rule.applies(&ctx.method, ctx.path()) {
                continue;
            }
            let verdict = match &rule.key {
                LimitKey::Client => limiter.check(ctx.client, now),
                LimitKey::Prefix => limiter.check(prefix_of(ctx.client), now),
                LimitKey::Site => limiter.check(0u8, now),
                LimitKey::Header(h) => {
                    limiter.check(ctx.head.headers.get(h).map(HeaderValue::as_bytes), now)
                }
            };
            match verdict {
                limiter::Verdict::Allowed { .. } => limiter.count(0),
                limiter::Verdict::Limited { retry_after } if rule.report_only => {
                    limiter.count(2);
                    tracing::info!(
                        request_id = %ctx.id,
                        client = %ctx.client,
                        rule = %rule.name,
                        retry_after_ms = retry_after.as_millis() as u64,
                        "rate limit would refuse (report only)"
                    );
                }
                limiter::Verdict::Limited { retry_after } => {
                    limiter.count(1);
                    return Ok(Verdict::Respond(too_many(rule, retry_after)));
                }
            }
        }
        Ok(Verdict::Continue)
    }
}

/// 429 with `Retry-After` and the IETF draft's fields (draft-ietf-httpapi-ratelimit-headers-09:
/// `RateLimit-Policy: "name";q=QUOTA;w=WINDOW` and `RateLimit: "name";r=REMAINING;t=RESET`).
fn too_many(rule: &RateLimitRule, retry_after: std::time::Duration) -> Response<ProxyBody> {
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut resp = Response::new(body::full(Bytes::from_static(b"Too many requests\n")));
    *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let h = resp.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    let window = rule.per.as_secs().max(1);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "\"{}\";q={};w={window}",
        rule.name,
        rule.rate + rule.burst
    )) {
        h.insert(&RATELIMIT_POLICY, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\";r=0;t={secs}", rule.name)) {
        h.insert(&RATELIMIT, v);
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The response filter: the site's security headers, added where the origin sent none (or
/// always, with `override`). HSTS only on HTTPS.
pub fn security_headers(ctx: &RequestCtx, resp: &mut Response<ProxyBody>) {
    let Some(site) = &ctx.site else { return };
    let sh = &site.security_headers;
    if sh.is_empty() {
        return;
    }
    let h = resp.headers_mut();
    let mut put = |name: &HeaderName, value: &HeaderValue| {
        if sh.override_origin || !h.contains_key(name) {
            h.insert(name.clone(), value.clone());
        }
    };
    if ctx.conn.tls
        && let Some(hsts) = &sh.hsts
    {
        put(&header::STRICT_TRANSPORT_SECURITY, hsts);
    }
    for (name, value) in &sh.set {
        put(name, value);
    }
}
