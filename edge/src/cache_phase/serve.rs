//! Responses made from stored objects: the head comes from the pure planner
//! (`cache::plan::stored_head`: 304, 206, 416, HEAD, the coding), the body from memory, disk or
//! a stored encoded variant (made now, and stored, when there is none yet).

use cache::Storage as _;
use std::time::SystemTime;

use cache::CacheError;
use cache::encoding::Coding;
use cache::plan::{self, StoredAnswer};
use cache::store::Found;
use http::header::{self, HeaderMap};
use http::{Method, Response};
use http_body_util::BodyExt;

use super::bodies::{DiskBody, TeeBody};
use super::compress_policy;
use crate::body::{self, ProxyBody};
use crate::compress::Transcode;
use crate::ctx::RequestCtx;
use crate::metrics::{METRICS, Made};

/// Disk objects up to this size are read whole (one read of a kept-open file when the page
/// cache holds it, else one trip to the blocking pool); larger ones stream.
const SMALL_DISK_OBJECT: u64 = 1024 * 1024;

/// Builds the client's response from a stored one.
pub(super) async fn serve(
    ctx: &RequestCtx,
    found: &Found,
    now: SystemTime,
) -> Result<Response<ProxyBody>, CacheError> {
    let policy = ctx.site.as_ref().map_or(
        cache::encoding::CompressPolicy {
            enabled: false,
            types: cache::encoding::MediaTypes::empty(),
            min_bytes: 0,
            prefer: &[],
        },
        |s| compress_policy(&s.compression),
    );
    let head = plan::stored_head_in(
        hyper::ext::take_header_map().unwrap_or_default(),
        &ctx.method,
        &ctx.head.headers,
        &ctx.compress.accept,
        found.meta(),
        &policy,
        now,
    );
    let mut headers = head.headers;
    ctx.rt.append_via(&mut headers);
    let body = match (head.answer, head.coding) {
        (StoredAnswer::NotModified | StoredAnswer::Unsatisfiable { .. }, _) => body::empty(),
        (_, _) if ctx.method == Method::HEAD => body::empty(),
        (StoredAnswer::Body { .. }, Some(coding)) => {
            serve_encoded(ctx, found, &mut headers, coding).await?
        }
        (StoredAnswer::Body { start, len, .. }, None) => {
            stored_body(ctx, found, start, len).await?
        }
        (StoredAnswer::Multipart { parts, closing }, _) => {
            let mut bodies = Vec::with_capacity(parts.len() * 2 + 1);
            for p in parts {
                bodies.push(body::full(p.preamble));
                bodies.push(stored_body(ctx, found, p.start, p.end - p.start + 1).await?);
            }
            bodies.push(body::full(closing));
            body::concat(bodies)
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = head.status;
    *resp.headers_mut() = headers;
    if head.negotiated {
        ctx.compress.settled.set();
    }
    Ok(resp)
}

/// A stored object in `coding`: its stored variant if there is one for this body; otherwise
/// the identity encoded now, at the stored level and into the store when no other request is
/// already doing that, else at the fast level for this client only.
async fn serve_encoded(
    ctx: &RequestCtx,
    found: &Found,
    headers: &mut HeaderMap,
    coding: Coding,
) -> Result<ProxyBody, CacheError> {
    let store = &ctx.shared.cache.store;
    if let Some(encoded) = store.lookup_encoded(&ctx.key, found, coding).await {
        let len = encoded.meta().body_len;
        match stored_body(ctx, &encoded, 0, len).await {
            Ok(body) => {
                METRICS.variant_hit(coding);
                headers.insert(header::CONTENT_LENGTH, cache::plan::decimal(len));
                return Ok(body);
            }
            Err(e) => {
                tracing::info!(error = %e, "stored encoded variant unreadable; encoding again");
            }
        }
    }
    let identity = stored_body(ctx, found, 0, found.meta().body_len).await?;
    let identity_variant = found.variant(&ctx.key);
    Ok(encode_for_store(
        ctx,
        identity,
        &identity_variant,
        found.meta().generation,
        coding,
    ))
}

/// Encodes an identity body for the client, storing the result as the object's `coding`
/// variant when this request is the first to make it.
pub(super) fn encode_for_store(
    ctx: &RequestCtx,
    identity: ProxyBody,
    identity_variant: &str,
    generation: u64,
    coding: Coding,
) -> ProxyBody {
    let Some(site) = &ctx.site else {
        return identity;
    };
    let cfg = &site.compression;
    let fill = ctx
        .shared
        .cache
        .store
        .fill_encoded(&ctx.key, identity_variant, generation, coding);
    match ctx.shared.cache.collapser.try_lead(fill.variant()) {
        Some(leader) => {
            let encoder = Transcode::encoder(
                identity,
                coding,
                cfg.stored_level.of(coding),
                Made::Stored,
                false,
            );
            TeeBody::new(encoder.boxed_unsync(), fill, Some(leader)).boxed_unsync()
        }
        None => Transcode::encoder(identity, coding, cfg.fly_level.of(coding), Made::Fly, false)
            .boxed_unsync(),
    }
}

/// `len` bytes of a stored body from `start`.
pub(super) async fn stored_body(
    ctx: &RequestCtx,
    found: &Found,
    start: u64,
    len: u64,
) -> Result<ProxyBody, CacheError> {
    let store = &ctx.shared.cache.store;
    let total = found.meta().body_len;
    Ok(match found {
        Found::Memory(obj) => {
            let end = usize::try_from(start + len)
                .unwrap_or(usize::MAX)
                .min(obj.body.len());
            let begin = usize::try_from(start).unwrap_or(0).min(end);
            body::full(obj.body.slice(begin..end))
        }
        Found::Disk(_) if total <= SMALL_DISK_OBJECT => {
            let data = store.read_disk(found).await?;
            if data.len() as u64 != total {
                return Err(CacheError::Truncated {
                    got: data.len() as u64,
                    expected: total,
                });
            }
            let begin = usize::try_from(start).unwrap_or(0);
            let end = usize::try_from(start + len)
                .unwrap_or(usize::MAX)
                .min(data.len());
            body::full(data.slice(begin.min(end)..end))
        }
        Found::Disk(_) => {
            let reader = store.open_disk(found).await?;
            DiskBody::new(reader, start, len, start == 0 && len == total).boxed_unsync()
        }
    })
}
