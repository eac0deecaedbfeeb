//! The request pipeline: one function per request whose phases read in order, over one
//! per-request context (`RequestCtx`) and one config snapshot read at its start:
//!
//! hygiene → route → early data (wait for the handshake unless safe) → geo → request filters
//! (limits, …) → site rules (auth, redirect/respond, rewrite, pool, headers) → `PURGE` (when
//! the site enables it) → body → cache (lookup; on a miss the upstream rewrite and the origin)
//! or pass → response filters (compress) → response rules → finish → log after the body.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use config::PlainHttp;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, Version};
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::upgrade::OnUpgrade;

pub use crate::state::{ConnInfo, Runtime, Shared, Transport};

use crate::body::{self, ProxyBody};
use crate::ctx::RequestCtx;
use crate::error::Error;
use crate::headers;
use crate::hygiene;
use crate::log::{Logged, Record};
use crate::metrics::METRICS;
use crate::{respond, upstream};

pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<ProxyBody>,
    interim: Option<crate::interim::Interim>,
) -> (Response<ProxyBody>, crate::metrics::requests::Observed) {
    let (head, body) = req.into_parts();
    let mut ctx = RequestCtx::new(shared, conn, head, interim);
    let mut resp = match proxy(&mut ctx, body).await {
        // Response filters: compression.
        Ok(resp) => match &ctx.site {
            Some(site) => crate::compress::respond(&site.compression, &ctx.compress, resp),
            None => resp,
        },
        Err(e) => respond::error(&ctx, &e),
    };
    crate::rules_phase::respond(&mut ctx, &mut resp);
    respond::finish(&ctx, &mut resp);
    crate::protect::security_headers(&ctx, &mut resp);
    METRICS.response(
        ctx.version,
        resp.status().as_u16(),
        ctx.cache_status.as_ref(),
    );
    // The caller's body wrapper tells `observed` when the body ends: no extra box here.
    let observed = observe(&ctx, &resp);
    let resp = log_after_body(&ctx, resp);
    // The request's header map goes back to this thread's pool, where a response takes it
    // (`serve`): one map allocation fewer per request.
    hyper::ext::put_header_map(std::mem::take(&mut ctx.head.headers));
    (resp, observed)
}

/// The labelled request series: counted at the head; the returned value is told when the
/// body ends.
fn observe(ctx: &RequestCtx, resp: &Response<ProxyBody>) -> crate::metrics::requests::Observed {
    use crate::metrics::requests;
    let site = ctx.site.as_ref().map_or("-", |s| s.name.as_str());
    if resp.status().is_server_error() {
        // The status page's recent errors: a lock per 5xx, nothing per other response.
        crate::admin::status::note_error(crate::admin::status::RecentError {
            at_unix_ms: edge_core::clock::unix_ms(),
            status: resp.status().as_u16(),
            protocol: crate::headers::via_protocol(ctx.version).to_string(),
            method: ctx.method.to_string(),
            host: ctx.host().to_string(),
            path: ctx.path().to_string(),
            site: site.to_string(),
            request_id: ctx.id.to_string(),
        });
    }
    let metrics = requests::site(site);
    if let Some(result) = ctx.access {
        metrics.access(result);
    }
    requests::head(
        metrics,
        requests::protocol_index(ctx.version),
        requests::method_index(&ctx.method),
        resp.status().as_u16(),
        crate::metrics::cache_result(ctx.cache_status.as_ref()),
        ctx.start,
    )
}

async fn proxy(ctx: &mut RequestCtx, body: ProxyBody) -> Result<Response<ProxyBody>, Error> {
    normalize(ctx)?;
    if let Some(redirect) = route(ctx)? {
        return Ok(redirect);
    }
    crate::early::gate(ctx).await?;
    if let Some(denied) = crate::geo_phase::run(ctx) {
        return Ok(denied);
    }
    if let Some(answer) = ctx.rt.clone().filters.run(ctx)? {
        return Ok(answer);
    }
    if let Some(answer) = crate::rules_phase::run(ctx).await? {
        return Ok(answer);
    }
    if ctx.method.as_str() == "PURGE" && ctx.site()?.cache.purge_method {
        // Boxed: a purge's fan-out state (11 KiB) would otherwise be part of every request's
        // future, copied into its task on each request.
        return Box::pin(crate::admin::purge::purge_method(ctx)).await;
    }
    let body = prepare_body(ctx, body).await?;
    crate::early::settle(ctx).await?;
    if let Some((client, proto)) = websocket(ctx) {
        return Box::pin(upstream::upgrade(ctx, client, proto, body)).await;
    }
    if ctx.site()?.cache.enabled {
        return crate::cache_phase::handle(ctx, body).await;
    }
    ctx.cache_status = Some(cache::status::CacheStatus {
        detail: Some("disabled"),
        ..cache::status::CacheStatus::fwd(cache::status::Fwd::Bypass)
    });
    Box::pin(upstream::pass(ctx, body)).await
}

/// Phase: hygiene. One normalised host and path, and who we believe, for everything after.
fn normalize(ctx: &mut RequestCtx) -> Result<(), Error> {
    let snap = ctx.rt.snapshot.clone();
    ctx.trusted = snap.is_trusted(ctx.conn.peer.ip());
    if ctx.trusted
        && let Some(ip) = headers::client_behind(&ctx.head.headers, |ip| snap.is_trusted(ip))
    {
        ctx.client = ip;
    }
    ctx.geo = ctx.shared.geo.lookup(ctx.client);
    let head = &ctx.head;
    let authority = hygiene::request_authority(head.version, &head.uri, &head.headers)
        .map_err(Error::BadRequest)?;
    let (name, _claimed_port) = hygiene::parse_host(authority).map_err(Error::BadRequest)?;
    let mut host = name.into_owned();
    ctx.scheme = if ctx.conn.tls { "https" } else { "http" };
    let mut origin_host = None;
    if ctx.trusted {
        // Our own edge forwarding a visitor: key and forward with the visitor's scheme and
        // host, not the ones of the hop between us.
        match head
            .headers
            .get(&headers::X_FORWARDED_PROTO)
            .map(HeaderValue::as_bytes)
        {
            Some(b"https") => ctx.scheme = "https",
            Some(b"http") => ctx.scheme = "http",
            _ => {}
        }
        if let Some(h) = head.headers.get(&headers::X_FORWARDED_HOST)
            && let Ok(h) = h.to_str()
            && let Ok((name, port)) = hygiene::parse_host(h)
        {
            host = name.into_owned();
            // The visitor's host as they wrote it: with their port, or alone.
            origin_host = Some(port.map(|p| format!("{host}:{p}")));
        }
        if let Some(id) = head.headers.get(&headers::X_REQUEST_ID)
            && let Ok(id) = id.to_str()
            && let Some(id) = crate::request_id::RequestId::new(id)
        {
            ctx.id = id;
        }
    }
    // The loop marker is only believed from our own peers: anyone can write our name in Via.
    ctx.looped = ctx.trusted && headers::via_names(&head.headers, &snap.node_name);
    let with_port = origin_host
        .unwrap_or_else(|| hygiene::origin_host(&host, ctx.conn.local.port(), ctx.scheme));
    let path = hygiene::normalize_path(head.uri.path()).map_err(Error::BadRequest)?;
    let changed = (path != head.uri.path()).then(|| path.into_owned());
    ctx.compress = crate::compress::RequestFacts::new(&head.method, &head.headers);
    if let Some(path) = changed {
        ctx.path_set(path);
    }
    ctx.host_set(with_port);
    ctx.host_name = host;
    Ok(())
}

/// Phase: route. The site by host, the pool by path; plain HTTP may be redirected.
fn route(ctx: &mut RequestCtx) -> Result<Option<Response<ProxyBody>>, Error> {
    let host = &ctx.host_name;
    let site = ctx
        .rt
        .snapshot
        .site_for_host(host)
        .ok_or_else(|| Error::UnknownHost(host.clone()))?
        .clone();
    ctx.site = Some(site.clone());
    if !ctx.conn.tls && site.plain_http == PlainHttp::Redirect {
        let port = ctx.shared.https_port.load(Ordering::Relaxed);
        return Ok(Some(respond::redirect_to_https(
            &ctx.host_name,
            port,
            &ctx.head.uri,
        )));
    }
    let route = site.route(ctx.path()).ok_or(Error::NoRoute)?;
    let pool = geo::rules::steer(route, ctx.geo);
    ctx.pool = Some(
        ctx.rt
            .pools
            .get(pool)
            .ok_or_else(|| Error::NoPool(pool.to_string()))?
            .clone(),
    );
    // The target the origin gets: the normalised path; for what may be stored, the query
    // without the parameters the key leaves out.
    let cacheable = matches!(ctx.method, Method::GET | Method::HEAD);
    let uri = &ctx.head.uri;
    let query = match uri.query() {
        Some(q) if site.cache.enabled && cacheable && !site.cache.forward_ignored_params => {
            if site.cache.key.ignore_query {
                None
            } else {
                hygiene::strip_params(q, &site.cache.key.ignore_params)
            }
        }
        Some(q) => Some(std::borrow::Cow::Borrowed(q)),
        None => None,
    };
    // Rebuilt only when normalising changed something: most targets are already clean.
    if ctx.path() != uri.path() || query.as_deref() != uri.query() || uri.scheme().is_some() {
        ctx.head.uri =
            hygiene::origin_form(ctx.path(), query.as_deref()).map_err(Error::BadRequest)?;
    }
    Ok(None)
}

/// Phase: the request body. Cut off when too large or too slow, and settled for methods
/// without body semantics, whose body (if any) makes the request a pass.
async fn prepare_body(ctx: &mut RequestCtx, mut body: ProxyBody) -> Result<ProxyBody, Error> {
    let site = ctx.site()?.clone();
    let max_body = site.max_request_body_bytes;
    if !body.is_end_stream() {
        use crate::metrics::requests;
        let counted = requests::site(&site.name);
        let proto = requests::protocol_index(ctx.version);
        body = requests::CountedIn::new(body, counted, proto).boxed_unsync();
        if site.request_body_min_rate > 0 {
            body = body::MinRate::new(body, site.request_body_min_rate, site.request_body_grace)
                .boxed_unsync();
        }
        body = Limited::new(body, usize::try_from(max_body).unwrap_or(usize::MAX)).boxed_unsync();
    }
    let wait = ctx.rt.snapshot.timeouts.request_header;
    let unsettled = |e| match e {
        body::Unsettled::Timeout => Error::RequestTimeout,
        body::Unsettled::Failed(e) => body::client_body_error(e, max_body),
    };
    if overrun_possible(ctx, &body) {
        // HTTP/2 frames a body apart from its content-length: read the first DATA frame
        // before anything is forwarded, so that one already overrunning the length (h2
        // checks each frame) reaches no origin, whichever read brought it. HTTP/3 does the
        // same in crate::quic.
        body = body::settle_first(body, wait).await.map_err(unsettled)?;
    }
    if matches!(
        ctx.method,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
    ) {
        let (settled, has_body) = body::settle(body, wait).await.map_err(unsettled)?;
        body = settled;
        ctx.has_body = has_body;
    }
    Ok(body)
}

/// Whether an HTTP/2 request declares a body length its DATA frames could overrun, and its
/// client sends the body without waiting for `100 Continue` (which HTTP/2 here does not send:
/// reading first would hold such a client until it gives up waiting).
fn overrun_possible(ctx: &RequestCtx, body: &ProxyBody) -> bool {
    ctx.version == Version::HTTP_2
        && !body.is_end_stream()
        && matches!(hygiene::content_length(&ctx.head.headers), Ok(Some(n)) if n > 0)
        && !ctx
            .head
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// A WebSocket upgrade the client asked for (an HTTP/1.1 GET with `Connection: upgrade` and
/// `Upgrade: websocket`), if any: its upgrade handle and protocol. Any other `Upgrade` is
/// not one we support: its hop-by-hop headers go and the request is an ordinary one (else any
/// client could make any request skip the cache by adding two headers).
fn websocket(ctx: &mut RequestCtx) -> Option<(OnUpgrade, HeaderValue)> {
    if ctx.version != Version::HTTP_11 || ctx.method != Method::GET {
        return None;
    }
    let asks = ctx
        .head
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let proto = ctx.head.headers.get(header::UPGRADE)?.clone();
    let websocket = proto.to_str().is_ok_and(|p| {
        p.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
    });
    if !asks || !websocket {
        return None;
    }
    let client = ctx.head.extensions.remove::<OnUpgrade>()?;
    Some((client, proto))
}

/// Phase: log. The record is written (and its span exported) when the response body ends
/// (or is dropped). Nothing is built when the log is off or the site's sampling leaves the
/// request out (5xx are kept), and no span goes to the collector without a sampled trace.
fn log_after_body(ctx: &RequestCtx, resp: Response<ProxyBody>) -> Response<ProxyBody> {
    let snapshot = &ctx.rt.snapshot;
    let status = resp.status().as_u16();
    let format = ctx
        .shared
        .access_log
        .prepare(snapshot)
        .filter(|_| match &ctx.site {
            Some(site) => status >= 500 || crate::log::sampled(&ctx.id, site.log_sample),
            None => true,
        });
    let otlp = snapshot
        .log
        .otlp
        .clone()
        .filter(|_| ctx.trace.is_some_and(|t| t.flags & 0x01 != 0));
    if format.is_none() && otlp.is_none() {
        return resp;
    }
    let header = |name: header::HeaderName| {
        ctx.head
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let query = match ctx.head.uri.query() {
        Some(q) if !snapshot.log.redact_query => {
            Some(crate::log::redact_query(q, &snapshot.log.redact_query_params).into_owned())
        }
        _ => None,
    };
    let record = Record {
        format,
        otlp,
        request_id: ctx.id.to_string(),
        client: ctx.client.to_string(),
        country: ctx.geo.country,
        proto: headers::via_protocol(ctx.version),
        method: ctx.method.to_string(),
        host: ctx.host().to_string(),
        path: ctx.path().to_string(),
        query,
        site: ctx
            .site
            .as_ref()
            .map_or("-", |s| s.name.as_str())
            .to_string(),
        pool: ctx
            .pool
            .as_ref()
            .map_or_else(|| "-".into(), |p| p.name.clone()),
        status,
        cache: ctx
            .cache_status
            .as_ref()
            .map_or_else(String::new, |c| c.render(&snapshot.node_name)),
        config_version: snapshot.version,
        user_agent: header(header::USER_AGENT),
        referer: header(header::REFERER),
        head_ms: edge_core::clock::since(ctx.start).as_secs_f64() * 1000.0,
        origin: ctx.origin.get(),
        compression: resp
            .headers()
            .get(header::CONTENT_ENCODING)
            .map(|v| crate::log::coding_name(v.as_bytes())),
        trace: ctx.trace,
        ..Default::default()
    };
    let (parts, body) = resp.into_parts();
    let declared = cache::framing::declared_length(&parts.headers);
    let body = Logged::new(body, record, ctx.shared.clone(), ctx.start, declared).boxed_unsync();
    Response::from_parts(parts, body)
}
