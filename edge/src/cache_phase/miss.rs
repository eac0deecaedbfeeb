//! Nothing usable was stored: fetch once for everyone asking the same thing at once, and store
//! the answer while it streams to them.

use cache::Storage as _;
use std::sync::Arc;
use std::time::SystemTime;

use cache::collapse::{Leader, Outcome, Role};
use cache::encoding::Coding;
use cache::inflight::Inflight;
use cache::plan::{self, MissPlan, Representation};
use cache::rules::{self, NotStorable, StoredMeta};
use cache::status::{CacheStatus, Fwd};
use cache::store::{Fill, variant_key};
use cache::{Lookup, Ticket, encoding};
use edge_core::clock;
use http::header::HeaderName;
use http::{Method, Response};
use http_body_util::BodyExt;

use super::bodies::{TeeBody, streamed_response};
use super::serve::{encode_for_store, serve};
use super::{Served, compress_policy, fetch};
use crate::body::{self, ProxyBody};
use crate::ctx::RequestCtx;
use crate::error::Error;
use crate::headers;

/// A miss: requests collapse on the URL (or, once the URL's Vary is known, on their variant);
/// a follower reads the leader's response only if its own request selects the same variant,
/// otherwise it collapses again on its own variant, so a client never gets another client's
/// variant.
pub(super) async fn on_miss(
    ctx: &RequestCtx,
    fwd: Fwd,
    variant: Option<String>,
    body: ProxyBody,
) -> Result<Served, Error> {
    let cache = &ctx.shared.cache;
    let pass_with = |detail| CacheStatus {
        detail: Some(detail),
        ..CacheStatus::fwd(fwd)
    };
    let marked = cache.hit_for_pass.is_marked(&ctx.key).await;
    match plan::miss(&ctx.method, &ctx.head.headers, marked) {
        MissPlan::OnlyIfCached => Err(Error::OnlyIfCached),
        MissPlan::Pass(detail) => Ok((fetch::pass(ctx, body).await?, pass_with(detail))),
        MissPlan::Range => super::ranges::on_range_miss(ctx, fwd, body).await,
        MissPlan::Fetch => collapsed(ctx, fwd, variant, body).await,
    }
}

/// Fetches once for every request asking the same thing at once, and stores the answer.
pub(super) async fn collapsed(
    ctx: &RequestCtx,
    fwd: Fwd,
    variant: Option<String>,
    body: ProxyBody,
) -> Result<Served, Error> {
    let cache = &ctx.shared.cache;
    let pass_with = |detail| CacheStatus {
        detail: Some(detail),
        ..CacheStatus::fwd(fwd)
    };
    let mut collapse_on = variant.unwrap_or_else(|| ctx.key.clone());
    // Two rounds at most: on the URL, then on this request's own variant.
    let mut outcome = Outcome::Failed;
    for _ in 0..2 {
        match cache.collapser.join(&collapse_on) {
            Role::Leader(leader) => {
                let request_time = clock::wall();
                let ticket = cache.store.ticket();
                let resp = fetch::fetch(ctx, fetch::whole_get_fields(ctx)).await?;
                return Ok(
                    store_response(ctx, resp, request_time, ticket, fwd, Some(leader)).await,
                );
            }
            Role::Follower(follower) => {
                outcome = follower.wait(cache.settings.collapse_timeout).await;
            }
        }
        let own_variant = |names: &[HeaderName]| {
            variant_key(&ctx.key, &rules::vary_values(&ctx.head.headers, names))
        };
        match &outcome {
            Outcome::Streaming(inflight) => {
                let mine = own_variant(&inflight.vary_names);
                if mine != inflight.variant {
                    collapse_on = mine;
                    continue;
                }
                let resp = streamed_response(inflight.clone(), &ctx.rt);
                return Ok((
                    resp,
                    CacheStatus {
                        fwd: Some(fwd),
                        fwd_status: Some(inflight.status.as_u16()),
                        collapsed: true,
                        ..Default::default()
                    },
                ));
            }
            Outcome::Stored => match cache.store.lookup(&ctx.key, &ctx.head.headers).await {
                Lookup::Hit(found) => {
                    let now = clock::wall();
                    let ttl = rules::evaluate(&ctx.head.headers, found.meta(), &ctx.policy, now)
                        .ttl_secs();
                    if let Ok(resp) = serve(ctx, &found, now).await {
                        return Ok((
                            resp,
                            CacheStatus {
                                fwd: Some(fwd),
                                collapsed: true,
                                ttl: Some(ttl),
                                ..Default::default()
                            },
                        ));
                    }
                    break;
                }
                Lookup::VaryMiss { variant } if variant != collapse_on => {
                    collapse_on = variant;
                    continue;
                }
                _ => break,
            },
            Outcome::Uncacheable | Outcome::Failed => break,
        }
    }
    let detail = match outcome {
        Outcome::Uncacheable => "uncacheable",
        _ => "collapse-failed",
    };
    Ok((
        fetch::pass(ctx, body).await?,
        CacheStatus {
            collapsed: true,
            ..pass_with(detail)
        },
    ))
}

/// Streams an origin response to the client, storing it on the way when the rules allow.
pub(super) async fn store_response(
    ctx: &RequestCtx,
    resp: Response<hyper::body::Incoming>,
    request_time: SystemTime,
    ticket: Ticket,
    fwd: Fwd,
    leader: Option<Leader>,
) -> Served {
    let cache = &ctx.shared.cache;
    let idle = ctx.rt.snapshot.timeouts.origin_body_idle;
    let status = resp.status();
    let (mut parts, incoming) = resp.into_parts();
    let tags = ctx
        .site
        .as_ref()
        .map(|s| super::response_tags(s, &parts.headers))
        .unwrap_or_default();
    let broken_framing = headers::broken_framing(&parts.headers);
    headers::drop_length_beside_transfer_encoding(&mut parts.headers);
    headers::strip_hop_by_hop(&mut parts.headers);
    let verdict = if broken_framing {
        Err(NotStorable::Framing)
    } else {
        rules::storable(
            &Method::GET,
            &ctx.head.headers,
            status,
            &parts.headers,
            &ctx.policy,
        )
    };
    let mut cache_status = CacheStatus {
        fwd: Some(fwd),
        fwd_status: Some(status.as_u16()),
        ..Default::default()
    };
    let mut encode = Encode::Undecided;
    let body: ProxyBody = match verdict {
        Ok(()) => {
            let names = rules::vary_names(&parts.headers).unwrap_or_default();
            let meta = StoredMeta {
                status,
                headers: parts.headers.clone(),
                request_time,
                response_time: clock::wall(),
                vary: rules::vary_values(&ctx.head.headers, &names),
                body_len: 0,
                generation: 0,
                parsed: Default::default(),
            };
            let vary_names = names.clone();
            let mut fill = cache.store.fill(&ctx.key, meta, names, ticket);
            fill.set_tags(tags);
            cache.hit_for_pass.forget(&ctx.key).await;
            cache_status.stored = true;
            let declared = cache::framing::declared_length(&parts.headers);
            // The coding this client gets is made at the stored level while the identity is
            // stored, and kept as a variant: the first hit in that coding finds it ready.
            let site = ctx.site.as_ref();
            if let Some(site) = site {
                encode = match plan::representation(
                    &ctx.method,
                    &ctx.head.headers,
                    &ctx.compress.accept,
                    status,
                    &parts.headers,
                    declared,
                    &compress_policy(&site.compression),
                ) {
                    Representation::Undecided => Encode::Undecided,
                    Representation::Identity { varies } => Encode::Identity { varies },
                    Representation::Encode(coding) => Encode::Stored {
                        coding,
                        identity_variant: fill.variant().to_string(),
                        generation: fill.generation(),
                    },
                };
            }
            let small = declared.is_some_and(|n| n <= cache.store.config().max_object_memory_bytes);
            if http_body::Body::is_end_stream(&incoming) {
                // No body of its own (a 204, an empty 200): an HTTP/1.1 server never polls such
                // a body, so the fill is finished here, not by its last poll.
                let outcome = match fill.finish().await {
                    Ok(()) => Outcome::Stored,
                    Err(e) => {
                        tracing::info!(error = %e, "response not stored");
                        Outcome::Failed
                    }
                };
                if let Some(l) = leader {
                    l.complete(outcome);
                }
                ctx.rt.append_via(&mut parts.headers);
                let resp = Response::from_parts(parts, body::empty());
                return (negotiated(ctx, resp, encode), cache_status);
            }
            match leader {
                Some(leader) if small => {
                    // Everyone reads the object as it arrives: this client and the collapsed
                    // ones. The fetch no longer depends on this client staying connected.
                    // The origin's head goes no further than the readers' shared copy.
                    let inflight = Inflight::new(
                        status,
                        std::mem::take(&mut parts.headers),
                        fill.variant().to_string(),
                        vary_names,
                    );
                    leader.announce(inflight.clone());
                    tokio::spawn(drive_fill(
                        body::origin_incoming(incoming, idle),
                        fill,
                        inflight.clone(),
                        leader,
                    ));
                    // A body the origin sent with its head is a task hop away (the fill
                    // task): wait for it, so that the head and the first chunk leave in one
                    // write, as they came; the fill task ends the wait as soon as it has to
                    // wait itself (a slow origin), so the head never waits on the network.
                    inflight.first().await;
                    let resp = streamed_response(inflight, &ctx.rt);
                    return (negotiated(ctx, resp, encode), cache_status);
                }
                leader => {
                    TeeBody::new(body::origin_incoming(incoming, idle), fill, leader).boxed_unsync()
                }
            }
        }
        Err(reason) => {
            if let Some(l) = leader {
                l.complete(Outcome::Uncacheable);
            }
            if plan::marks_hit_for_pass(reason, &ctx.head.headers) {
                cache.hit_for_pass.mark(&ctx.key).await;
            }
            cache_status.detail = Some(reason.as_str());
            body::origin_incoming(incoming, idle)
        }
    };
    ctx.rt.append_via(&mut parts.headers);
    let resp = Response::from_parts(parts, body);
    (negotiated(ctx, resp, encode), cache_status)
}

/// What a stored 200 response is sent as, decided once while it is stored.
enum Encode {
    /// Not decided here (not a plain 200, or not stored): the compress phase decides.
    Undecided,
    /// As it came; `varies`: other clients may get it encoded (`Vary: Accept-Encoding`).
    Identity { varies: bool },
    /// In `coding`, made at the stored level and stored beside the identity.
    Stored {
        coding: Coding,
        identity_variant: String,
        generation: u64,
    },
}

/// The response to a miss as the client negotiated it. Marked settled, so that the compress
/// phase does not evaluate the same response again.
fn negotiated(ctx: &RequestCtx, resp: Response<ProxyBody>, encode: Encode) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    let body = match encode {
        Encode::Undecided => return Response::from_parts(parts, body),
        Encode::Identity { varies } => {
            if varies {
                encoding::add_vary(&mut parts.headers);
            }
            body
        }
        Encode::Stored {
            coding,
            identity_variant,
            generation,
        } => {
            encoding::mark_transformed(&mut parts.headers, Some(coding));
            encoding::add_vary(&mut parts.headers);
            encode_for_store(ctx, body, &identity_variant, generation, coding)
        }
    };
    ctx.compress.settled.set();
    Response::from_parts(parts, body)
}

/// `fut`, telling `inflight`'s readers whenever it has to wait (see `Inflight::first`).
async fn noting_waits<F: Future>(fut: F, inflight: &Inflight) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let polled = fut.as_mut().poll(cx);
        if polled.is_pending() {
            inflight.waiting();
        }
        polled
    })
    .await
}

/// Reads the origin body into the store and the shared in-flight object, then publishes.
async fn drive_fill(
    mut origin: ProxyBody,
    mut fill: Fill,
    inflight: Arc<Inflight>,
    leader: Leader,
) {
    let mut storing = true;
    // The last bytes, held back until the object is published: a client that has the whole
    // body finds the object with its next request (HTTP/1.1 servers end a response once its
    // declared length is written, without waiting for our end of stream).
    let mut last = None;
    let clean = loop {
        match noting_waits(origin.frame(), &inflight).await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if storing
                        && noting_waits(fill.push(data.clone()), &inflight)
                            .await
                            .is_err()
                    {
                        storing = false;
                    }
                    if http_body::Body::is_end_stream(&origin) || (storing && fill.is_complete()) {
                        last = Some(data);
                        break true;
                    }
                    inflight.push(data);
                }
            }
            Some(Err(e)) => {
                tracing::info!(error = %e, "origin body failed mid-stream");
                break false;
            }
            None => break true,
        }
    };
    let outcome = if clean && storing {
        match noting_waits(fill.finish(), &inflight).await {
            Ok(()) => Outcome::Stored,
            Err(e) => {
                tracing::info!(error = %e, "response not stored");
                Outcome::Failed
            }
        }
    } else {
        Outcome::Failed
    };
    // Complete by its declared length, the origin's end of stream may still be on its way
    // (never after an error: nothing more is coming then).
    let drain = last.is_some() && !http_body::Body::is_end_stream(&origin);
    if let Some(data) = last {
        inflight.push(data);
    }
    inflight.finish(clean);
    leader.complete(outcome);
    // Read it, so that the origin connection is left clean (more bytes would be its error).
    if drain {
        while let Some(Ok(_)) = origin.frame().await {}
    }
}
