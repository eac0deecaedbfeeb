//! The way to the origin: the upstream request rewrite (hop-by-hop gone, our framing, the
//! forwarding headers, `Via`, `Host`), sending through a pool, responses on their way back, and
//! WebSocket tunnels. Only requests that go to an origin pay for the rewrite; hits never do.

use edge_core::clock;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::LengthLimitError;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use origin_shield::{Affinity, AnsweredBy, Pool};

use crate::body::{self, ProxyBody};
use crate::ctx::RequestCtx;
use crate::error::Error;
use crate::headers;
use crate::log::OriginAnswer;
use crate::state::Runtime;

/// The client's header fields as the origin gets them, without those in `skip`.
pub fn rewrite(ctx: &RequestCtx, skip: &[HeaderName]) -> HeaderMap {
    let strip = ctx
        .site
        .as_ref()
        .map_or(&[][..], |s| &s.strip_request_headers[..]);
    // Made here, for origin requests only. It cannot fail: the host passed `parse_host`
    // (letters, digits, `-._`, or a bracketed IPv6 literal) and a port is digits.
    let host = HeaderValue::from_str(ctx.host()).unwrap_or_else(|_| {
        tracing::error!(host = %ctx.host(), "unrepresentable Host reached the origin rewrite");
        HeaderValue::from_static("invalid")
    });
    let mut fields = headers::upstream_fields(
        &ctx.head.headers,
        &headers::Upstream {
            client_ip: ctx.conn.peer.ip(),
            trusted: ctx.trusted,
            scheme: ctx.scheme,
            host: &host,
            via: ctx.rt.via_for(ctx.version),
            request_id: &ctx.id,
            strip,
            skip,
        },
    );
    if ctx.version >= http::Version::HTTP_2 {
        headers::join_cookies(&mut fields);
    }
    crate::early::mark(ctx, &mut fields);
    // The trace goes on with this hop as the parent (see `trace` for why any client's counts).
    crate::trace::propagate(ctx.trace.as_ref(), &mut fields);
    fields
}

/// A request for the origin: `method` and `uri` with `fields` (already rewritten) and `body`;
/// the origin's interim responses to it go on to `ctx`'s client.
pub fn request(
    ctx: &RequestCtx,
    method: Method,
    uri: Uri,
    fields: HeaderMap,
    body: ProxyBody,
) -> Request<ProxyBody> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = fields;
    if let Some(interim) = &ctx.interim {
        interim.forward_from(&mut req);
    }
    req
}

/// The client's own request, forwarded as it is (after the rewrite), storing nothing.
pub async fn pass(ctx: &RequestCtx, body: ProxyBody) -> Result<Response<ProxyBody>, Error> {
    static ACCEPT_ENCODING: [HeaderName; 1] = [header::ACCEPT_ENCODING];
    let fields = match &ctx.client_ae {
        Some(values) => {
            let mut fields = rewrite(ctx, &ACCEPT_ENCODING);
            for v in values {
                fields.append(header::ACCEPT_ENCODING, v.clone());
            }
            fields
        }
        None => rewrite(ctx, &[]),
    };
    let pool = ctx.pool()?.clone();
    let sent = clock::now();
    // Only a bodiless request stays early (`early::settle`): the retry after a 425 sends an
    // empty body again.
    let mut body = Some(body);
    let make = || {
        let body = body.take().unwrap_or_else(body::empty);
        request(
            ctx,
            ctx.method.clone(),
            ctx.head.uri.clone(),
            fields.clone(),
            body,
        )
    };
    let resp = send_made(ctx, &pool, make, None).await?;
    note_origin(ctx, sent, &resp);
    Ok(origin_response(resp, &ctx.rt))
}

/// `send` of what `make` makes, and once more after the handshake when an origin says 425 to
/// a request from early data (`crate::early`).
pub async fn send_made(
    ctx: &RequestCtx,
    pool: &Pool,
    mut make: impl FnMut() -> Request<ProxyBody>,
    key: Option<&str>,
) -> Result<Response<hyper::body::Incoming>, Error> {
    let resp = send(&ctx.rt, pool, make(), ctx.max_body(), affinity(ctx, key)).await?;
    if !crate::early::retry_after_425(ctx, resp.status()).await? {
        return Ok(resp);
    }
    drop(resp);
    let mut req = make();
    req.headers_mut().remove(&crate::early::EARLY_DATA);
    send(&ctx.rt, pool, req, ctx.max_body(), affinity(ctx, key)).await
}

/// Notes in `ctx`, for the access log, the endpoint that gave `resp` (per `Pool::send`) and the
/// time since `sent`: its time to response head.
pub fn note_origin<B>(ctx: &RequestCtx, sent: clock::Instant, resp: &Response<B>) {
    if let Some(by) = resp.extensions().get::<AnsweredBy>() {
        ctx.origin.set(OriginAnswer {
            endpoint: by.0,
            head: clock::since(sent),
        });
    }
}

pub fn affinity<'a>(ctx: &RequestCtx, key: Option<&'a str>) -> Affinity<'a> {
    Affinity {
        key,
        client_ip: Some(ctx.client),
    }
}

/// Sends a prepared request to one endpoint of `pool`.
pub async fn send(
    rt: &Runtime,
    pool: &Pool,
    req: Request<ProxyBody>,
    max_body: u64,
    affinity: Affinity<'_>,
) -> Result<Response<hyper::body::Incoming>, Error> {
    pool.send(req, rt.snapshot.timeouts.origin_response_header, affinity)
        .await
        .map_err(|e| {
            if e.find_source::<LengthLimitError>().is_some() {
                Error::BodyTooLarge { limit: max_body }
            } else if e.find_source::<body::SlowBody>().is_some() {
                Error::RequestTimeout
            } else {
                Error::Origin(e)
            }
        })
}

/// An origin response on its way to the client: hop-by-hop headers gone, `via` added.
pub fn origin_response(resp: Response<hyper::body::Incoming>, rt: &Runtime) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    headers::drop_length_beside_transfer_encoding(&mut parts.headers);
    headers::strip_hop_by_hop(&mut parts.headers);
    rt.append_via(&mut parts.headers);
    Response::from_parts(
        parts,
        body::origin_incoming(body, rt.snapshot.timeouts.origin_body_idle),
    )
}

/// A WebSocket upgrade (HTTP/1.1 GET with `Connection: upgrade`, `Upgrade: websocket`):
/// forwarded with its upgrade headers, and on `101` both sides are joined.
pub async fn upgrade(
    ctx: &mut RequestCtx,
    client: OnUpgrade,
    proto: HeaderValue,
    body: ProxyBody,
) -> Result<Response<ProxyBody>, Error> {
    let mut fields = rewrite(ctx, &[]);
    fields.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    fields.insert(header::UPGRADE, proto);
    let req = request(ctx, ctx.method.clone(), ctx.head.uri.clone(), fields, body);
    let pool = ctx.pool()?.clone();
    let sent = clock::now();
    let mut resp = send(&ctx.rt, &pool, req, ctx.max_body(), affinity(ctx, None)).await?;
    note_origin(ctx, sent, &resp);
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(origin_response(resp, &ctx.rt));
    }
    let origin = hyper::upgrade::on(&mut resp);
    tokio::spawn(tunnel(client, origin, ctx.id.to_string()));
    let (parts, _) = resp.into_parts();
    Ok(Response::from_parts(parts, body::empty()))
}

/// Bytes flow both ways after a `101 Switching Protocols` (WebSocket) until either side closes.
async fn tunnel(client: OnUpgrade, origin: OnUpgrade, id: String) {
    let (client, origin) = match tokio::try_join!(client, origin) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::info!(request_id = %id, error = %e, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut origin = TokioIo::new(origin);
    match tokio::io::copy_bidirectional(&mut client, &mut origin).await {
        Ok((up, down)) => tracing::debug!(request_id = %id, up, down, "tunnel closed"),
        Err(e) => tracing::debug!(request_id = %id, error = %e, "tunnel aborted"),
    }
}
