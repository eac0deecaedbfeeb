//! Phase: site rules (`[[sites.rules]]`, the `site-rules` crate), after geo and the request
//! filters and before the cache. The engine decides; this phase applies: authentication
//! first, then a redirect or direct answer, the URL rewrite (what the cache key and the origin
//! see), the pool, request header operations and cache-key additions. What concerns the
//! response (header operations, the A/B pin cookie, response-phase rules) is kept in the
//! context for [`respond`]. A site without rules pays one `is_empty` check.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use site_rules::{Decision, HeaderOp, RequestFacts, Terminal};

use crate::body::{self, ProxyBody};
use crate::ctx::RequestCtx;
use crate::error::Error;
use crate::hygiene;

/// What the request rules left for the response and the cache.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub response_headers: Vec<HeaderOp>,
    pub set_cookie: Option<HeaderValue>,
    /// Appended to the cache key (`\nr:NAME=VALUE`), so one class never reads another's copy.
    pub cache_key: Vec<(String, String)>,
    /// Kept out of the shared cache (authenticated, or a rule said so).
    pub private: bool,
    /// A rule answered (redirect, direct response): response-phase rules leave that alone.
    pub answered: bool,
}

fn code(c: &Option<geo::Code>) -> Option<&str> {
    c.as_ref().and_then(|c| std::str::from_utf8(&c.0).ok())
}

/// The request as the rules see it. `random` only picks a new visitor's A/B value: the
/// request id is unique and unpredictable enough for that (a per-process random base).
pub fn facts(ctx: &RequestCtx) -> RequestFacts<'_> {
    RequestFacts {
        method: &ctx.method,
        host: &ctx.host_name,
        path: ctx.path(),
        query: ctx.head.uri.query(),
        headers: &ctx.head.headers,
        client: ctx.client,
        https: ctx.scheme == "https",
        country: code(&ctx.geo.country),
        continent: code(&ctx.geo.continent),
        asn: ctx.geo.asn,
        now: site_rules::timestamp(edge_core::clock::wall()),
        request_id: &ctx.id,
        random: u64::from_str_radix(&ctx.id, 16).unwrap_or(0),
    }
}

/// Owned copies of what authentication reads, for a password check off the runtime threads.
struct Owned {
    method: Method,
    host: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    client: std::net::IpAddr,
    https: bool,
    id: String,
}

impl Owned {
    fn of(ctx: &RequestCtx) -> Owned {
        Owned {
            method: ctx.method.clone(),
            host: ctx.host_name.clone(),
            path: ctx.path().to_string(),
            query: ctx.head.uri.query().map(str::to_string),
            headers: ctx.head.headers.clone(),
            client: ctx.client,
            https: ctx.scheme == "https",
            id: ctx.id.to_string(),
        }
    }

    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            method: &self.method,
            host: &self.host,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            client: self.client,
            https: self.https,
            country: None,
            continent: None,
            asn: None,
            now: site_rules::timestamp(edge_core::clock::wall()),
            request_id: &self.id,
            random: 0,
        }
    }
}

fn answer(status: StatusCode, content_type: HeaderValue, body: String) -> Response<ProxyBody> {
    let mut resp = Response::new(body::full(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Runs the site's request rules; `Some` is the answer when the request goes no further (a
/// failed authentication, a redirect, a direct response).
pub async fn run(ctx: &mut RequestCtx) -> Result<Option<Response<ProxyBody>>, Error> {
    if ctx.site()?.rules.is_empty() {
        return Ok(None);
    }
    let site = ctx.site()?.clone();
    let d: Decision = site.rules.evaluate(&facts(ctx));
    if d.matched.is_empty() && d.set_cookie.is_none() {
        // Nothing to apply and nothing for the response: most requests on most sites.
        return Ok(None);
    }
    if let Some((rule, auth)) = &d.auth {
        let verdict = if auth.is_cheap(&facts(ctx)) {
            auth.verify(&facts(ctx))
        } else {
            // Password hashes are slow by design: off the runtime threads.
            let owned = Owned::of(ctx);
            let auth = auth.clone();
            tokio::task::spawn_blocking(move || auth.verify(&owned.facts()))
                .await
                .map_err(|e| Error::Task(format!("authentication task: {e}")))?
        };
        if let Err(e) = verdict {
            tracing::info!(request_id = %ctx.id, rule = %rule, reason = ?e.kind, "edge authentication failed");
            let mut resp = answer(
                e.status(),
                HeaderValue::from_static("text/plain; charset=utf-8"),
                "authentication required\n".to_string(),
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, e.www_authenticate().clone());
            return Ok(Some(resp));
        }
    }
    let mut outcome = Outcome {
        response_headers: d.response_headers,
        set_cookie: d.set_cookie,
        cache_key: d.cache_key,
        private: d.private,
        answered: false,
    };
    if let Some(terminal) = d.terminal {
        let resp = match terminal {
            Terminal::Redirect { status, location } => {
                let mut r = answer(
                    status,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                    String::new(),
                );
                r.headers_mut().insert(header::LOCATION, location);
                r
            }
            Terminal::Respond(r) => answer(r.status, r.content_type, r.body),
        };
        // Response header rules and the pin cookie still apply to it (see `respond`).
        outcome.cache_key.clear();
        outcome.answered = true;
        ctx.rules = Some(Box::new(outcome));
        return Ok(Some(resp));
    }
    if let Some(to) = &d.rewrite {
        // Internal: the client's URL is unchanged; routing, the cache key and the origin see
        // the new one.
        ctx.head.uri =
            hygiene::origin_form(&to.path, to.query.as_deref()).map_err(Error::BadRequest)?;
        ctx.path_set(to.path.clone());
        if d.pool.is_none() {
            let route = site.route(ctx.path()).ok_or(Error::NoRoute)?;
            let pool = geo::rules::steer(route, ctx.geo);
            set_pool(ctx, pool)?;
        }
    }
    if let Some(pool) = &d.pool {
        set_pool(ctx, pool)?;
    }
    site_rules::apply_owned(d.request_headers, &mut ctx.head.headers);
    ctx.rules = Some(Box::new(outcome));
    Ok(None)
}

fn set_pool(ctx: &mut RequestCtx, name: &str) -> Result<(), Error> {
    let pool = ctx
        .rt
        .pools
        .get(name)
        .ok_or_else(|| Error::NoPool(name.to_string()))?
        .clone();
    ctx.pool = Some(pool);
    Ok(())
}

/// The response side: the request rules' header operations and pin cookie, then the
/// response-phase rules (which may match on the status and replace the response).
pub fn respond(ctx: &mut RequestCtx, resp: &mut Response<ProxyBody>) {
    let Some(site) = ctx.site.as_ref().filter(|s| !s.rules.is_empty()).cloned() else {
        return;
    };
    let answered = ctx.rules.as_ref().is_some_and(|o| o.answered);
    let later = if site.rules.has_response_rules() && !answered {
        let d = site
            .rules
            .evaluate_response(&facts(ctx), resp.status().as_u16());
        if let Some(r) = d.respond {
            *resp = answer(r.status, r.content_type, r.body);
        }
        d.response_headers
    } else {
        Vec::new()
    };
    // The request rules' operations first, then the response rules'.
    if let Some(o) = ctx.rules.as_mut() {
        site_rules::apply_owned(std::mem::take(&mut o.response_headers), resp.headers_mut());
        if let Some(cookie) = o.set_cookie.take() {
            resp.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    site_rules::apply_owned(later, resp.headers_mut());
}

/// The cache key additions, `\nr:NAME=VALUE` each (a purge by URL matches on what comes
/// before the first `\n`, so it still finds every class's copy).
pub fn extend_key(ctx: &mut RequestCtx) {
    let Some(o) = &ctx.rules else { return };
    for (name, value) in &o.cache_key {
        ctx.key.push_str("\nr:");
        ctx.key.push_str(name);
        ctx.key.push('=');
        ctx.key.push_str(value);
    }
}

/// Whether the rules keep this request's response out of the shared cache.
pub fn private(ctx: &RequestCtx) -> bool {
    ctx.rules.as_ref().is_some_and(|o| o.private)
}
