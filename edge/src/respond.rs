//! What the edge answers itself (errors, redirects), and the finishing touches every response
//! gets on its way out (`Cache-Status`, `X-Request-Id`, `Alt-Svc`).

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use origin_shield::OriginError;

use crate::body::{self, ProxyBody};
use crate::ctx::RequestCtx;
use crate::error::Error;
use crate::headers;
use crate::state::Transport;

/// The response for a request that failed with `e`.
pub fn error(ctx: &RequestCtx, e: &Error) -> Response<ProxyBody> {
    let status = e.status(ctx.conn.tls);
    if status.is_server_error() {
        tracing::warn!(request_id = %ctx.id, status = status.as_u16(), error = %e, "request failed");
    } else {
        tracing::info!(request_id = %ctx.id, status = status.as_u16(), error = %e, "request rejected");
    }
    let mut resp = error_response(status, e.public_message(), &ctx.id);
    if matches!(e, Error::Origin(OriginError::Overloaded { .. })) {
        // Circuit breaker: tell clients when to come back instead of letting them hammer.
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

pub fn redirect_to_https(host: &str, https_port: u16, uri: &http::Uri) -> Response<ProxyBody> {
    let bare = config::normalize_host(host);
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{bare}{port}{path}");
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

pub(crate) fn error_response(status: StatusCode, message: &str, id: &str) -> Response<ProxyBody> {
    let text = format!(
        "{} {}\n{message}\nrequest-id: {id}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::PAYLOAD_TOO_LARGE {
        // The unread request body makes the connection unusable for another request.
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Written into a buffer the header value then owns: rendering to a `String` and copying it
/// into a `HeaderValue` cost an allocation and a copy on every response.
fn cache_status_value(
    status: &cache::status::CacheStatus,
    node: &str,
) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let mut buf = Vec::with_capacity(node.len() + 64);
    status.write_to(node, &mut buf);
    HeaderValue::from_maybe_shared(bytes::Bytes::from(buf))
}

/// Headers every response gets on its way out.
pub fn finish(ctx: &RequestCtx, resp: &mut Response<ProxyBody>) {
    let (rt, conn) = (&ctx.rt, &ctx.conn);
    let h = resp.headers_mut();
    // Values that change with every response are marked "never index" so that HPACK and QPACK
    // send them as literals instead of churning the dynamic table on each response.
    if let Some(status) = &ctx.cache_status
        && let Ok(mut v) = cache_status_value(status, &rt.snapshot.node_name)
    {
        v.set_sensitive(true);
        h.insert(&headers::CACHE_STATUS, v);
    }
    if let Ok(mut v) = HeaderValue::from_str(&ctx.id) {
        v.set_sensitive(true);
        h.insert(&headers::X_REQUEST_ID, v);
    }
    if !ctx.trusted
        && let Some(site) = &ctx.site
        && site.cache.strip_tag_headers
    {
        // Surrogate keys are for purging, not for visitors (they may name internal things).
        headers::remove_named(h, &site.cache.tag_headers);
    }
    if let Some(age) = h.get_mut(header::AGE) {
        age.set_sensitive(true);
    }
    if conn.transport == Transport::Tcp
        && let Some(alt_svc) = &conn.alt_svc
        && ctx.site.as_ref().is_some_and(|s| s.http3)
    {
        h.insert(header::ALT_SVC, alt_svc.clone());
    }
}

impl Error {
    pub fn status(&self, tls: bool) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Error::HeadersTooLarge { .. } | Error::TooManyHeaders { .. } => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            // Over TLS the connection may have been reused for a name we do not serve
            // (RFC 9110 §15.5.20); over plain HTTP there is simply nothing here.
            Error::UnknownHost(_) if tls => StatusCode::MISDIRECTED_REQUEST,
            Error::UnknownHost(_) | Error::NoRoute => StatusCode::NOT_FOUND,
            Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            // Nobody reads it: the connection is gone.
            Error::HandshakeFailed => StatusCode::TOO_EARLY,
            Error::OnlyIfCached => StatusCode::GATEWAY_TIMEOUT,
            Error::NoPool(_) => StatusCode::BAD_GATEWAY,
            Error::Origin(o) => match o {
                OriginError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                OriginError::NoHealthy { .. } | OriginError::Overloaded { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                OriginError::ClientBody { .. } => StatusCode::BAD_REQUEST,
                _ => StatusCode::BAD_GATEWAY,
            },
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client is told: no internal addresses, no config details.
    pub fn public_message(&self) -> &'static str {
        match self {
            Error::BadRequest(m) => m,
            Error::UriTooLong { .. } => "the request URI is too long",
            Error::HeadersTooLarge { .. } => "the request header block is too large",
            Error::TooManyHeaders { .. } => "the request has too many header fields",
            Error::UnknownHost(_) => "this server does not serve that host",
            Error::NoRoute => "no route for this path",
            Error::BodyTooLarge { .. } => "the request body is too large",
            Error::RequestTimeout => "the request body arrived too slowly",
            Error::HandshakeFailed => "the TLS handshake did not complete",
            Error::OnlyIfCached => "not in cache (only-if-cached)",
            Error::NoPool(_) => "the site's origin pool is not configured",
            Error::Origin(o) => match o {
                OriginError::Timeout { .. } => "the origin did not respond in time",
                OriginError::Connect { .. } | OriginError::NoEndpoint { .. } => {
                    "the origin could not be reached"
                }
                OriginError::NoHealthy { .. } => "no healthy origin server is available",
                OriginError::Overloaded { .. } => "the origin is at capacity; retry shortly",
                OriginError::ClientBody { .. } => "the request body could not be read",
                OriginError::Tls { .. } => "the TLS connection to the origin failed",
                OriginError::Protocol { .. } => "the origin failed to answer",
            },
            _ => "internal error",
        }
    }
}
