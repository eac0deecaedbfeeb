//! Origin requests made for the cache: whole-representation GETs (the cache answers
//! conditionals and ranges itself), through the shield chosen by the cache key when the site has
//! one.

use std::sync::Arc;

use cache::rules;
use cache::store::Found;
use edge_core::clock;
use http::header::{self, HeaderMap, HeaderName};
use http::{Method, Response};
use origin_shield::{OriginError, Pool};

use crate::body::{self, ProxyBody};
use crate::ctx::RequestCtx;
use crate::error::Error;
use crate::upstream;

/// The site's shield pool, unless this request already came through this node.
fn shield(ctx: &RequestCtx) -> Option<Arc<Pool>> {
    let site = ctx.site.as_ref()?;
    let name = site.shield.as_ref().filter(|_| !ctx.looped)?;
    ctx.rt.pools.get(name).cloned()
}

/// The header fields of a GET for the whole representation: the client's, rewritten for the
/// origin, without its conditionals and range.
pub fn whole_get_fields(ctx: &RequestCtx) -> HeaderMap {
    static CONDITIONALS_AND_RANGE: [HeaderName; 6] = [
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
        header::RANGE,
    ];
    upstream::rewrite(ctx, &CONDITIONALS_AND_RANGE)
}

/// The same, with a stored response's validators: a revalidation.
pub fn conditional_fields(ctx: &RequestCtx, found: &Found) -> HeaderMap {
    let mut fields = whole_get_fields(ctx);
    for (name, value) in rules::validators(found.meta()) {
        fields.insert(name, value);
    }
    fields
}

/// Fetches for the cache: from the shield when the site has one (falling back to the origin
/// when the shield cannot be reached, if allowed), else from the route's pool. The request is
/// bodiless, so it can be made twice.
pub async fn fetch(
    ctx: &RequestCtx,
    fields: HeaderMap,
) -> Result<Response<hyper::body::Incoming>, Error> {
    let shield = shield(ctx);
    // A second try (the origin after the shield, or once more after a 425 to early data)
    // needs the fields again; with neither possible, the only try takes them, uncopied.
    let again = shield.is_some() || ctx.early.is_some();
    let mut fields = Some(fields);
    let mut make = || {
        let fields = if again { fields.clone() } else { fields.take() };
        upstream::request(
            ctx,
            Method::GET,
            ctx.head.uri.clone(),
            fields.unwrap_or_default(),
            body::empty(),
        )
    };
    let key = Some(ctx.key.as_str());
    if let Some(shield) = shield {
        let sent = clock::now();
        match upstream::send_made(ctx, &shield, &mut make, key).await {
            Ok(resp) => {
                upstream::note_origin(ctx, sent, &resp);
                return Ok(resp);
            }
            Err(Error::Origin(e))
                if ctx.site()?.shield_fallback
                    && matches!(
                        e,
                        OriginError::Connect { .. }
                            | OriginError::NoHealthy { .. }
                            | OriginError::NoEndpoint { .. }
                            | OriginError::Timeout { .. }
                            | OriginError::Overloaded { .. }
                    ) =>
            {
                tracing::info!(pool = %shield.name, error = %e, "shield unavailable; going to the origin");
            }
            Err(e) => return Err(e),
        }
    }
    let pool = ctx.pool()?;
    let sent = clock::now();
    let resp = upstream::send_made(ctx, pool, &mut make, key).await?;
    upstream::note_origin(ctx, sent, &resp);
    Ok(resp)
}

/// A request the cache stays out of, sent as the client made it.
pub async fn pass(ctx: &RequestCtx, body: ProxyBody) -> Result<Response<ProxyBody>, Error> {
    upstream::pass(ctx, body).await
}
