//! A stored response was found: serve it fresh (or stale where allowed), serve it stale while
//! one background refresh runs, or revalidate it with the origin first.

use cache::Storage as _;
use std::time::SystemTime;

use cache::Ticket;
use cache::plan;
use cache::rules::{self, Action};
use cache::status::{CacheStatus, Fwd};
use cache::store::Found;
use edge_core::clock;
use http::StatusCode;
use http::header::HeaderMap;
use http_body_util::BodyExt;

use super::miss::{on_miss, store_response};
use super::serve::serve;
use super::{Served, fetch};
use crate::body::ProxyBody;
use crate::ctx::RequestCtx;
use crate::error::Error;

/// `soft_purged`: a soft purge covers the object: it is stale whatever its lifetime says, and
/// served only as stale content may be (stale-while-revalidate, stale-if-error, origin down).
pub(super) async fn on_hit(
    ctx: &RequestCtx,
    found: Found,
    soft_purged: bool,
    body: ProxyBody,
) -> Result<Served, Error> {
    let now = clock::wall();
    let purged_policy;
    let policy = if soft_purged {
        purged_policy = cache::rules::Policy {
            forced_ttl: Some(std::time::Duration::ZERO),
            ..ctx.policy.clone()
        };
        &purged_policy
    } else {
        &ctx.policy
    };
    // The miss and revalidation paths are boxed: inline, their state would make every hit's
    // future (moved into its task's box) several kilobytes larger.
    let verdict = rules::evaluate(&ctx.head.headers, found.meta(), policy, now);
    let ttl = verdict.ttl_secs();
    match verdict.action {
        Action::Fresh | Action::StaleOk => match serve(ctx, &found, now).await {
            Ok(resp) => Ok((resp, CacheStatus::hit(ttl))),
            Err(e) => {
                tracing::warn!(error = %e, "stored object unreadable; fetching again");
                Box::pin(on_miss(ctx, Fwd::UriMiss, None, body)).await
            }
        },
        Action::StaleWhileRevalidate => {
            spawn_refresh(ctx.clone(), found.clone());
            match serve(ctx, &found, now).await {
                Ok(resp) => Ok((
                    resp,
                    CacheStatus {
                        detail: Some("stale-while-revalidate"),
                        ..CacheStatus::hit(ttl)
                    },
                )),
                Err(_) => Box::pin(on_miss(ctx, Fwd::Stale, None, body)).await,
            }
        }
        Action::Revalidate { stale_if_error } => {
            let fwd = plan::revalidation_fwd(&ctx.head.headers);
            Box::pin(revalidate(ctx, found, fwd, stale_if_error, ttl)).await
        }
    }
}

/// Conditional request to the origin for a stored response.
async fn revalidate(
    ctx: &RequestCtx,
    found: Found,
    fwd: Fwd,
    stale_if_error: bool,
    ttl: i64,
) -> Result<Served, Error> {
    let request_time = clock::wall();
    let ticket = ctx.shared.cache.store.ticket();
    let stale = |fwd_status| CacheStatus {
        hit: true,
        fwd: Some(Fwd::Stale),
        fwd_status,
        ttl: Some(ttl),
        detail: Some("stale-if-error"),
        ..Default::default()
    };
    match fetch::fetch(ctx, fetch::conditional_fields(ctx, &found)).await {
        Ok(resp) if resp.status() == StatusCode::NOT_MODIFIED => {
            let updated = freshen(ctx, &found, resp.headers(), request_time, ticket).await;
            let now = clock::wall();
            let new_ttl =
                rules::evaluate(&HeaderMap::new(), updated.meta(), &ctx.policy, now).ttl_secs();
            let resp = serve(ctx, &updated, now).await?;
            Ok((
                resp,
                CacheStatus {
                    fwd: Some(fwd),
                    fwd_status: Some(304),
                    ttl: Some(new_ttl),
                    ..Default::default()
                },
            ))
        }
        Ok(resp) if resp.status().is_server_error() && stale_if_error => {
            tracing::info!(
                status = resp.status().as_u16(),
                "origin error; serving stale (stale-if-error)"
            );
            Ok((
                serve(ctx, &found, clock::wall()).await?,
                stale(Some(resp.status().as_u16())),
            ))
        }
        Err(e) if stale_if_error && matches!(e, Error::Origin(_)) => {
            tracing::info!(error = %e, "origin failed; serving stale (stale-if-error)");
            Ok((serve(ctx, &found, clock::wall()).await?, stale(None)))
        }
        Err(Error::Origin(e))
            if e.unreachable()
                && rules::stale_when_down(
                    &ctx.head.headers,
                    found.meta(),
                    &ctx.policy,
                    clock::wall(),
                ) =>
        {
            tracing::info!(error = %e, "origin unreachable; serving stale");
            Ok((
                serve(ctx, &found, clock::wall()).await?,
                CacheStatus {
                    detail: Some("origin-down"),
                    ..stale(None)
                },
            ))
        }
        Err(e) => Err(e),
        Ok(resp) => Ok(store_response(ctx, resp, request_time, ticket, fwd, None).await),
    }
}

/// Applies a 304 to the stored response (RFC 9111 §4.3.4) and returns the updated one.
async fn freshen(
    ctx: &RequestCtx,
    found: &Found,
    not_modified: &HeaderMap,
    request_time: SystemTime,
    ticket: Ticket,
) -> Found {
    let mut meta = found.meta().clone();
    rules::merge_304(&mut meta.headers, not_modified);
    meta.request_time = request_time;
    meta.response_time = clock::wall();
    ctx.shared
        .cache
        .store
        .update_meta(&ctx.key, found, meta.clone(), ticket)
        .await;
    found.with_meta(meta, ticket)
}

/// One background refresh per stored object: the client already has the stale copy.
fn spawn_refresh(ctx: RequestCtx, found: Found) {
    let refresh_key = format!("refresh\n{}", found.variant(&ctx.key));
    let Some(leader) = ctx.shared.cache.collapser.try_lead(&refresh_key) else {
        return;
    };
    tokio::spawn(async move {
        let _leader = leader;
        // A refresh that ended between this request's lookup and `try_lead` has already
        // replaced the object (a new ticket): a second conditional request would repeat it.
        let current = match ctx
            .shared
            .cache
            .store
            .lookup(&ctx.key, &ctx.head.headers)
            .await
        {
            cache::Lookup::Hit(f) | cache::Lookup::Stale(f) => Some(f.ticket()),
            _ => None,
        };
        if current != Some(found.ticket()) {
            return;
        }
        let request_time = clock::wall();
        let ticket = ctx.shared.cache.store.ticket();
        match fetch::fetch(&ctx, fetch::conditional_fields(&ctx, &found)).await {
            Ok(resp) if resp.status() == StatusCode::NOT_MODIFIED => {
                freshen(&ctx, &found, resp.headers(), request_time, ticket).await;
            }
            Ok(resp) => {
                let (resp, _) =
                    store_response(&ctx, resp, request_time, ticket, Fwd::Stale, None).await;
                // Drive the body to its end so the tee stores it; nobody reads it.
                let mut body = resp.into_body();
                while let Some(frame) = body.frame().await {
                    if frame.is_err() {
                        break;
                    }
                }
            }
            Err(e) => {
                tracing::info!(error = %e, "background revalidation failed; keeping the stale copy")
            }
        }
    });
}
