//! Phase: geo, after routing and before anything reads the cache. The client's own geo header
//! fields are removed (they are ours to set, never the client's); with databases loaded the
//! visitor's country, continent and ASN go to the origin (and into the key for sites that
//! cache by country); the site's access rules refuse a denied visitor with a 403 before the
//! cache is asked, so a blocked visitor never reads cached content.

use bytes::Bytes;
use geo::rules::{self, Decision};
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{self, ProxyBody};
use crate::ctx::RequestCtx;
use crate::metrics::geo::{Access, GEO};

const UNKNOWN: HeaderValue = HeaderValue::from_static("XX");

fn code(c: Option<geo::Code>) -> HeaderValue {
    c.and_then(|c| HeaderValue::from_bytes(&c.0).ok())
        .unwrap_or(UNKNOWN)
}

/// Sets the geo fields: whatever the client sent under their names is removed (they are ours
/// to set, never the client's); with databases, the visitor's country, continent (`XX` when
/// unknown) and ASN (when known) go on when the site sends them (the country also when the
/// site keys on it).
fn set_fields(ctx: &mut RequestCtx, enabled: bool) {
    let Some(site) = &ctx.site else { return };
    let g = &site.geo;
    let names = &g.headers;
    let fields = &mut ctx.head.headers;
    // A client's own values never pass.
    crate::headers::remove_named(fields, [&names.country, &names.continent, &names.asn]);
    if !enabled {
        return;
    }
    if g.send || g.cache_by_country {
        fields.insert(names.country.clone(), code(ctx.geo.country));
    }
    if g.send {
        fields.insert(names.continent.clone(), code(ctx.geo.continent));
        if let Some(asn) = ctx.geo.asn {
            fields.insert(names.asn.clone(), HeaderValue::from(asn));
        }
    }
}

/// Returns the refusal for a denied visitor; otherwise sets the geo fields on the request
/// head and lets it pass. On the head, not only on the origin request: the cache reads the
/// head for `Vary` (an origin answering `Vary: X-Edge-Country` must have its variants chosen
/// by our value, never by one a client wrote) and for sites that key on the country.
pub fn run(ctx: &mut RequestCtx) -> Option<Response<ProxyBody>> {
    let site = ctx.site.clone()?;
    let g = &site.geo;
    // One look at the loaded databases for the whole phase.
    let enabled = ctx.shared.geo.is_enabled();
    if enabled {
        GEO.request(ctx.geo.country);
    }
    set_fields(ctx, enabled);
    if g.access.is_empty() {
        return None;
    }
    let decision = rules::decide(&g.access, ctx.path(), ctx.client, ctx.geo);
    match decision {
        Decision::Allowed => {
            ctx.access = Some(Access::Allowed);
            None
        }
        Decision::Reported { rule } => {
            ctx.access = Some(Access::Reported);
            tracing::info!(
                request_id = %ctx.id,
                client = %ctx.client,
                country = ctx.geo.country.as_ref().map_or("XX", geo::Code::as_str),
                rule = %g.access[rule].path_prefix,
                "access rule would deny (report only)"
            );
            None
        }
        Decision::Denied { rule } => {
            ctx.access = Some(Access::Denied);
            tracing::debug!(
                request_id = %ctx.id,
                client = %ctx.client,
                rule = %g.access[rule].path_prefix,
                "access denied"
            );
            let mut resp = Response::new(body::full(Bytes::from(g.denied_body.clone())));
            *resp.status_mut() = StatusCode::FORBIDDEN;
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            );
            Some(resp)
        }
    }
}

/// Loads the `[geo]` databases before the node serves (a database that cannot be read at
/// start is an error: a node would otherwise serve without the rules it was given), then
/// checks the files every `check_every` off the request threads, following config reloads.
pub async fn start(shared: &std::sync::Arc<crate::state::Shared>) -> Result<(), crate::Error> {
    let paths = shared.runtime().snapshot.geo.databases.clone();
    let geo = shared.geo.clone();
    let first = tokio::task::spawn_blocking(move || geo.refresh(&paths))
        .await
        .map_err(|e| crate::Error::Geo(e.to_string()))?;
    if let Some(e) = first.failed.first() {
        return Err(crate::Error::Geo(e.to_string()));
    }
    for (path, kind) in shared.geo.databases() {
        tracing::info!(path = %path.display(), kind, "GeoIP database loaded");
    }
    let weak = std::sync::Arc::downgrade(shared);
    tokio::spawn(async move {
        loop {
            let Some(shared) = weak.upgrade() else { return };
            let snapshot = shared.runtime().snapshot.clone();
            let every = snapshot.geo.check_every;
            let (geo, paths) = (shared.geo.clone(), snapshot.geo.databases.clone());
            drop((shared, snapshot));
            if let Ok(done) = tokio::task::spawn_blocking(move || geo.refresh(&paths)).await {
                for path in &done.loaded {
                    tracing::info!(path = %path.display(), "GeoIP database reloaded");
                }
                for e in &done.failed {
                    tracing::error!(error = %e, "GeoIP database not loaded; the previous copy keeps answering");
                }
            }
            tokio::time::sleep(every).await;
        }
    });
    Ok(())
}
