//! Range requests for objects not stored whole. The first slice is fetched with a range
//! request (as its own collapsed fill); its `Content-Range` tells the object's size. Objects
//! up to `cache.slice_above_bytes` are then fetched whole (collapsed, stored) and the range is
//! answered from the stream as the bytes arrive; larger ones stay in slices of
//! `cache.slice_bytes`: each fetched with a range request, stored as its own object tied to the
//! whole object's validators, and a client's ranges are assembled from them. A 10 GiB object
//! is never fetched whole, and its last MiB costs the origin about one slice.

use bytes::Bytes;
use cache::Storage as _;
use cache::collapse::{Outcome, Role};
use cache::plan::{self, StoredAnswer};
use cache::rules::{self, Action, StoredMeta};
use cache::status::{CacheStatus, Fwd};
use cache::store::{Found, SLICE_SIZE, SLICE_TOTAL, slice_index_key, slice_key};
use cache::{Lookup, Ticket};
use edge_core::clock;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;

use super::bodies::RangesOf;
use super::{Served, fetch};
use crate::body::{self, BoxError, ProxyBody};
use crate::ctx::RequestCtx;
use crate::error::Error;
use crate::headers;

/// Where an object requested by range stands.
enum Probe {
    /// Cached in slices: this is the index.
    Sliced(Box<Found>),
    /// Small enough to fetch whole.
    Whole,
    /// The origin answered the first-slice request with the whole object (it does not do
    /// ranges): stored from this response, the client's ranges cut from it.
    Full(
        Response<hyper::body::Incoming>,
        std::time::SystemTime,
        Ticket,
    ),
    /// Not cacheable this way: this is the origin's answer to our first-slice request.
    Answer(Response<ProxyBody>),
}

pub(super) async fn on_range_miss(
    ctx: &RequestCtx,
    fwd: Fwd,
    body: ProxyBody,
) -> Result<Served, Error> {
    match probe(ctx).await? {
        Probe::Sliced(index) => serve_sliced(ctx, &index, fwd).await,
        Probe::Whole => {
            let served = super::miss::collapsed(ctx, fwd, None, body).await?;
            Ok(cut(ctx, served))
        }
        Probe::Full(resp, request_time, ticket) => {
            let served =
                super::miss::store_response(ctx, resp, request_time, ticket, fwd, None).await;
            Ok(cut(ctx, served))
        }
        Probe::Answer(resp) => Ok((
            resp,
            CacheStatus {
                detail: Some("range"),
                ..CacheStatus::fwd(fwd)
            },
        )),
    }
}

fn num(meta: &StoredMeta, name: &str) -> Option<u64> {
    meta.headers.get(name)?.to_str().ok()?.parse().ok()
}

/// The slice index of the object, if it is cached in slices and fresh.
async fn fresh_index(ctx: &RequestCtx) -> Option<Found> {
    let store = &ctx.shared.cache.store;
    let Lookup::Hit(index) = store
        .lookup(&slice_index_key(&ctx.key), &HeaderMap::new())
        .await
    else {
        return None;
    };
    let verdict = rules::evaluate(&ctx.head.headers, index.meta(), &ctx.policy, clock::wall());
    match verdict.action {
        Action::Fresh | Action::StaleOk | Action::StaleWhileRevalidate => Some(index),
        Action::Revalidate { .. } => {
            // Stale slices: start over (a new index, new slices), the simple and safe way.
            ctx.shared.cache.purge(&ctx.key).await;
            None
        }
    }
}

/// Finds out how to serve the object: from its slice index, or by fetching its first slice.
async fn probe(ctx: &RequestCtx) -> Result<Probe, Error> {
    if let Some(index) = fresh_index(ctx).await {
        return Ok(Probe::Sliced(Box::new(index)));
    }
    let cache = &ctx.shared.cache;
    let first = slice_key(&ctx.key, 0);
    match cache.collapser.join(&first) {
        Role::Follower(f) => {
            let outcome = f.wait(cache.settings.collapse_timeout).await;
            if outcome == Outcome::Stored
                && let Some(index) = fresh_index(ctx).await
            {
                return Ok(Probe::Sliced(Box::new(index)));
            }
            Ok(Probe::Whole)
        }
        Role::Leader(leader) => {
            let size = cache.settings.slice_bytes;
            let request_time = clock::wall();
            let ticket = cache.store.ticket();
            let resp = fetch_range(ctx, 0, size - 1).await?;
            let status = resp.status();
            let total = content_range_total(resp.headers());
            match (status, total) {
                // Whole fetches stream through the in-flight object, so they stay within the
                // per-object memory limit; anything larger is sliced.
                (StatusCode::PARTIAL_CONTENT, Some(total))
                    if total
                        > cache
                            .settings
                            .slice_above_bytes
                            .min(cache.settings.max_object_memory_bytes) =>
                {
                    let stored = store_first_slice(ctx, resp, total, request_time, ticket).await;
                    leader.complete(if stored.is_ok() {
                        Outcome::Stored
                    } else {
                        Outcome::Failed
                    });
                    stored?;
                    match fresh_index(ctx).await {
                        Some(index) => Ok(Probe::Sliced(Box::new(index))),
                        None => Ok(Probe::Whole),
                    }
                }
                // Small: fetch it whole, the ordinary collapsed way.
                (StatusCode::PARTIAL_CONTENT, Some(_)) => {
                    leader.complete(Outcome::Failed);
                    Ok(Probe::Whole)
                }
                (StatusCode::OK, _) => {
                    leader.complete(Outcome::Failed);
                    Ok(Probe::Full(resp, request_time, ticket))
                }
                _ => {
                    leader.complete(Outcome::Uncacheable);
                    Ok(Probe::Answer(crate::upstream::origin_response(
                        resp, &ctx.rt,
                    )))
                }
            }
        }
    }
}

/// The client's ranges cut from a whole response as it streams (a response served from the
/// store has them already).
fn cut(ctx: &RequestCtx, (resp, status): Served) -> Served {
    if resp.status() != StatusCode::OK || resp.headers().contains_key(header::CONTENT_RANGE) {
        return (resp, status);
    }
    let (mut parts, body) = resp.into_parts();
    let Some(total) = cache::framing::declared_length(&parts.headers) else {
        // Unknown length: the whole body is a valid answer to a range request.
        return (Response::from_parts(parts, body), status);
    };
    let meta = StoredMeta {
        status: StatusCode::OK,
        headers: parts.headers.clone(),
        request_time: clock::wall(),
        response_time: clock::wall(),
        vary: Vec::new(),
        body_len: total,
        generation: 0,
        parsed: Default::default(),
    };
    let head = ranged_head(ctx, &meta);
    let body = match &head.answer {
        StoredAnswer::Body {
            start,
            len,
            partial: true,
        } => RangesOf::single(body, *start, *len).boxed_unsync(),
        StoredAnswer::Multipart { parts, closing } => {
            RangesOf::multipart(body, parts.clone(), closing.clone()).boxed_unsync()
        }
        StoredAnswer::Unsatisfiable { .. } => body::empty(),
        _ => return (Response::from_parts(parts, body), status),
    };
    let via = parts
        .headers
        .get_all(header::VIA)
        .iter()
        .cloned()
        .collect::<Vec<_>>();
    parts.status = head.status;
    parts.headers = head.headers;
    for v in via {
        parts.headers.append(header::VIA, v);
    }
    (Response::from_parts(parts, body), status)
}

/// The head of a range answer over a representation described by `meta` (its `body_len` is
/// the whole object's size), with no content coding.
fn ranged_head(ctx: &RequestCtx, meta: &StoredMeta) -> plan::StoredHead {
    let identity = cache::encoding::CompressPolicy {
        enabled: false,
        types: cache::encoding::MediaTypes::empty(),
        min_bytes: 0,
        prefer: &[],
    };
    plan::stored_head(
        &Method::GET,
        &ctx.head.headers,
        &ctx.compress.accept,
        meta,
        &identity,
        clock::wall(),
    )
}

/// `bytes A-B/TOTAL` → TOTAL.
fn content_range_total(h: &HeaderMap) -> Option<u64> {
    let v = h.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let (unit, rest) = v.trim().split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    rest.split_once('/')?.1.trim().parse().ok()
}

/// `bytes A-B/TOTAL` → (A, B).
fn content_range_span(h: &HeaderMap) -> Option<(u64, u64)> {
    let v = h.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let span = v.trim().strip_prefix("bytes ")?.split_once('/')?.0;
    let (a, b) = span.split_once('-')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// A GET for bytes `start..=end` of the object.
async fn fetch_range(
    ctx: &RequestCtx,
    start: u64,
    end: u64,
) -> Result<Response<hyper::body::Incoming>, Error> {
    let mut fields = fetch::whole_get_fields(ctx);
    if let Ok(v) = HeaderValue::from_str(&format!("bytes={start}-{end}")) {
        fields.insert(header::RANGE, v);
    }
    fetch::fetch(ctx, fields).await
}

/// The validator slices must share with their index: a slice of another version of the object
/// must never be served beside this one's.
fn validator(h: &HeaderMap) -> Option<&HeaderValue> {
    h.get(header::ETAG).or_else(|| h.get(header::LAST_MODIFIED))
}

/// Reads a slice body whole (at most `limit` bytes).
async fn read_all(
    body: hyper::body::Incoming,
    ctx: &RequestCtx,
    limit: u64,
) -> Result<Bytes, Error> {
    let idle = ctx.rt.snapshot.timeouts.origin_body_idle;
    let mut body = body::origin_incoming(body, idle);
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Error::Origin(origin_shield::OriginError::Protocol {
                endpoint: ctx.conn.local,
                source: e,
            })
        })?;
        if let Some(d) = frame.data_ref() {
            if out.len() as u64 + d.len() as u64 > limit {
                return Err(Error::BadRequest(
                    "the origin sent more than the slice asked for",
                ));
            }
            out.extend_from_slice(d);
        }
    }
    Ok(out.freeze())
}

/// Every slice carries the object's surrogate keys: a tag purge finds them all.
fn slice_tags(ctx: &RequestCtx, headers: &HeaderMap) -> Vec<std::sync::Arc<str>> {
    ctx.site
        .as_ref()
        .map(|s| super::response_tags(s, headers))
        .unwrap_or_default()
}

/// Stores the slice index (the object's headers, size and slice size) and slice 0.
async fn store_first_slice(
    ctx: &RequestCtx,
    resp: Response<hyper::body::Incoming>,
    total: u64,
    request_time: std::time::SystemTime,
    ticket: Ticket,
) -> Result<(), Error> {
    let store = &ctx.shared.cache.store;
    let size = ctx.shared.cache.settings.slice_bytes;
    let (mut parts, incoming) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    let mut whole = parts.headers.clone();
    whole.remove(header::CONTENT_RANGE);
    whole.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    // Storable as the whole object would be (the rules refuse a 206 as such).
    if rules::storable(
        &Method::GET,
        &ctx.head.headers,
        StatusCode::OK,
        &whole,
        &ctx.policy,
    )
    .is_err()
        || rules::vary_names(&whole).is_none_or(|n| !n.is_empty())
    {
        return Err(Error::BadRequest("not cacheable in slices"));
    }
    let data = read_all(incoming, ctx, size).await?;
    let tags = slice_tags(ctx, &whole);
    let meta = |headers: HeaderMap, len: u64| StoredMeta {
        status: StatusCode::OK,
        headers,
        request_time,
        response_time: clock::wall(),
        vary: Vec::new(),
        body_len: len,
        generation: 0,
        parsed: Default::default(),
    };
    let mut index_headers = whole.clone();
    index_headers.remove(header::CONTENT_LENGTH);
    index_headers.insert(SLICE_TOTAL, HeaderValue::from(total));
    index_headers.insert(SLICE_SIZE, HeaderValue::from(size));
    let mut index = store.fill_part(
        &ctx.key,
        &slice_index_key(&ctx.key),
        meta(index_headers, 0),
        ticket,
    );
    index.set_tags(tags.clone());
    let mut first = whole;
    first.insert(header::CONTENT_LENGTH, HeaderValue::from(data.len() as u64));
    let mut slice = store.fill_part(&ctx.key, &slice_key(&ctx.key, 0), meta(first, 0), ticket);
    slice.set_tags(tags);
    let stored = async {
        slice.push(data).await?;
        slice.finish().await?;
        index.finish().await
    };
    stored.await.map_err(Error::from)
}

/// Serves the client's ranges of a sliced object.
async fn serve_sliced(ctx: &RequestCtx, index: &Found, fwd: Fwd) -> Result<Served, Error> {
    let im = index.meta();
    let (Some(total), Some(size)) = (num(im, SLICE_TOTAL), num(im, SLICE_SIZE)) else {
        return Err(Error::BadRequest("unreadable slice index"));
    };
    let mut meta = im.clone();
    meta.headers.remove(SLICE_TOTAL);
    meta.headers.remove(SLICE_SIZE);
    meta.body_len = total;
    let head = ranged_head(ctx, &meta);
    let slices = Slices {
        ctx: ctx.clone(),
        validator: validator(&meta.headers).cloned(),
        total,
        size,
    };
    let body = match head.answer.clone() {
        StoredAnswer::Body { start, len, .. } => slices.stream(start, len),
        StoredAnswer::Multipart { parts, closing } => {
            let mut bodies = Vec::new();
            for p in parts {
                bodies.push(body::full(p.preamble));
                bodies.push(slices.stream(p.start, p.end - p.start + 1));
            }
            bodies.push(body::full(closing));
            body::concat(bodies)
        }
        StoredAnswer::NotModified | StoredAnswer::Unsatisfiable { .. } => body::empty(),
    };
    let mut headers = head.headers;
    ctx.rt.append_via(&mut headers);
    let mut resp = Response::new(body);
    *resp.status_mut() = head.status;
    *resp.headers_mut() = headers;
    let ttl = rules::evaluate(&ctx.head.headers, &meta, &ctx.policy, clock::wall()).ttl_secs();
    let _ = fwd;
    Ok((
        resp,
        CacheStatus {
            detail: Some("slices"),
            ..CacheStatus::hit(ttl)
        },
    ))
}

/// Reads byte ranges of a sliced object, slice by slice, from the store or the origin.
#[derive(Clone)]
struct Slices {
    ctx: RequestCtx,
    validator: Option<HeaderValue>,
    total: u64,
    size: u64,
}

impl Slices {
    /// `len` bytes from `start`, as a body.
    fn stream(&self, start: u64, len: u64) -> ProxyBody {
        let state = (self.clone(), start, start + len);
        let s = futures_util::stream::unfold(Some(state), |state| async move {
            let (slices, pos, end) = state?;
            if pos >= end {
                return None;
            }
            let n = pos / slices.size;
            match slices.get(n).await {
                Ok(data) => {
                    let from = usize::try_from(pos - n * slices.size).unwrap_or(usize::MAX);
                    let upto = usize::try_from((end - n * slices.size).min(data.len() as u64))
                        .unwrap_or(usize::MAX);
                    if from >= upto {
                        let e: BoxError = "slice shorter than its index says".into();
                        return Some((Err(e), None));
                    }
                    let chunk = data.slice(from..upto);
                    let next = pos + chunk.len() as u64;
                    Some((Ok(http_body::Frame::data(chunk)), Some((slices, next, end))))
                }
                Err(e) => Some((Err(BoxError::from(e.to_string())), None)),
            }
        });
        http_body_util::StreamBody::new(s).boxed_unsync()
    }

    /// Slice `n`: from the store, else fetched (collapsed with other requests for it) and
    /// stored. A slice whose validator differs from its index's means the object changed: the
    /// slices and the index are purged and the response fails.
    async fn get(&self, n: u64) -> Result<Bytes, Error> {
        let ctx = &self.ctx;
        let cache = &ctx.shared.cache;
        let key = slice_key(&ctx.key, n);
        for _ in 0..2 {
            if let Lookup::Hit(found) = cache.store.lookup(&key, &HeaderMap::new()).await {
                return self.bytes_of(&found).await;
            }
            match cache.collapser.join(&key) {
                Role::Leader(leader) => {
                    let got = self.fetch_slice(n, &key).await;
                    leader.complete(if got.is_ok() {
                        Outcome::Stored
                    } else {
                        Outcome::Failed
                    });
                    return got;
                }
                Role::Follower(f) => {
                    f.wait(cache.settings.collapse_timeout).await;
                }
            }
        }
        self.fetch_slice(n, &key).await
    }

    async fn bytes_of(&self, found: &Found) -> Result<Bytes, Error> {
        match found {
            Found::Memory(obj) => Ok(obj.body.clone()),
            Found::Disk(_) => Ok(self.ctx.shared.cache.store.read_disk(found).await?),
        }
    }

    async fn fetch_slice(&self, n: u64, key: &str) -> Result<Bytes, Error> {
        let ctx = &self.ctx;
        let store = &ctx.shared.cache.store;
        let start = n * self.size;
        let end = (start + self.size).min(self.total) - 1;
        let request_time = clock::wall();
        let ticket = store.ticket();
        let resp = fetch_range(ctx, start, end).await?;
        let same = resp.status() == StatusCode::PARTIAL_CONTENT
            && content_range_total(resp.headers()) == Some(self.total)
            && content_range_span(resp.headers()) == Some((start, end))
            && validator(resp.headers()) == self.validator.as_ref();
        if !same {
            tracing::info!(request_id = %ctx.id, slice = n, "the object changed while cached in slices; purging them");
            ctx.shared.cache.purge(&ctx.key).await;
            return Err(Error::BadRequest(
                "the object changed while it was being sliced",
            ));
        }
        let (mut parts, incoming) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers);
        let data = read_all(incoming, ctx, end - start + 1).await?;
        parts.headers.remove(header::CONTENT_RANGE);
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(data.len() as u64));
        let meta = StoredMeta {
            status: StatusCode::OK,
            headers: parts.headers,
            request_time,
            response_time: clock::wall(),
            vary: Vec::new(),
            body_len: 0,
            generation: 0,
            parsed: Default::default(),
        };
        let tags = slice_tags(ctx, &meta.headers);
        let mut fill = store.fill_part(&ctx.key, key, meta, ticket);
        fill.set_tags(tags);
        let stored = async {
            fill.push(data.clone()).await?;
            fill.finish().await
        };
        if let Err(e) = stored.await {
            tracing::debug!(error = %e, slice = n, "slice not stored");
        }
        Ok(data)
    }
}
