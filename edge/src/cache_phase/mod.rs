//! The cache phase of the pipeline: decide with the pure planners (`cache::plan`,
//! `cache::rules`), then look up and serve (`hit`), fetch and store (`miss`), revalidate, or pass.
//! This module tree only does the I/O around the decisions.
//!
//! - `hit`: fresh, stale-while-revalidate, revalidation, background refresh
//! - `miss`: collapsing, storing while streaming, the representation of a new object
//! - `serve`: responses made from stored objects, encoded variants
//! - `bodies`: the body types (disk objects, tee into the store, in-flight objects)
//! - `fetch`: the origin requests the cache makes

mod bodies;
mod fetch;
mod hit;
mod miss;
mod ranges;
mod serve;

use cache::Storage as _;
use cache::collapse::{Collapser, HitForPass};
use cache::encoding::CompressPolicy;
use cache::key::primary_key;
use cache::plan::{self, Bypass, RequestPlan};
use cache::rules;
use cache::status::{CacheStatus, Fwd};
use cache::store::DiskConfig;
use cache::{Lookup, Purge, Store, StoreConfig};
use http::Response;
use http::header::{self, HeaderValue};

use crate::body::ProxyBody;
use crate::ctx::RequestCtx;
use crate::error::Error;

/// A response and the `Cache-Status` it goes out with.
type Served = (Response<ProxyBody>, CacheStatus);

/// The node's cache: one store, one collapser, one hit-for-pass memory. Built at start from
/// the first snapshot's `[cache]`; later changes to it need a restart.
pub struct CacheRuntime {
    pub store: Store,
    pub collapser: Collapser,
    pub hit_for_pass: HitForPass,
    pub settings: config::CacheSettings,
}

/// Content files the disk tier keeps open: a sixteenth of the descriptor limit (raised to the
/// hard limit at start), so client connections keep the rest; at most 4,096.
fn open_files_for_disk_hits() -> u64 {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit.current.map_or(4096, |n| (n / 16).min(4096))
}

impl CacheRuntime {
    pub async fn open(settings: &config::CacheSettings) -> Result<CacheRuntime, Error> {
        let store = Store::open(StoreConfig {
            memory_bytes: settings.memory_bytes,
            max_object_memory_bytes: settings.max_object_memory_bytes,
            disk: settings.disk_dir.as_ref().map(|dir| DiskConfig {
                dir: dir.clone(),
                max_bytes: settings.disk_bytes,
                open_files: open_files_for_disk_hits(),
            }),
        })
        .await?;
        Ok(CacheRuntime {
            collapser: Collapser::with_clock(store.purge_clock()),
            store,
            hit_for_pass: HitForPass::new(settings.hit_for_pass, 1 << 20),
            settings: settings.clone(),
        })
    }

    /// Takes a URL (every variant and encoding) out of the cache. In effect on return: fills
    /// already in flight publish nothing, and later requests do not collapse onto them.
    pub async fn purge(&self, primary: &str) -> cache::PurgeReport {
        let report = self.store.purge(&Purge::hard_key(primary)).await;
        self.collapser.forget(primary);
        self.hit_for_pass.forget(primary).await;
        report
    }
}

/// The surrogate keys a response tags itself with (the site's tag headers). The headers stay
/// in the stored copy: `respond::finish` strips them from visitors' responses, while a trusted
/// peer (an edge asking this node as its shield) gets them, so its copy purges by tag too.
pub(crate) fn response_tags(
    site: &config::Site,
    headers: &http::HeaderMap,
) -> Vec<std::sync::Arc<str>> {
    let names = &site.cache.tag_headers;
    if names.is_empty() {
        return Vec::new();
    }
    let values = names.iter().flat_map(|n| {
        // Cache-Tag (Cloudflare) lists with commas; Surrogate-Key (Fastly) with spaces.
        let sep = if n.as_str() == "cache-tag" {
            b','
        } else {
            b' '
        };
        headers.get_all(n).iter().map(move |v| (v.as_bytes(), sep))
    });
    let (tags, dropped) = cache::store::parse_tags(values);
    if dropped > 0 {
        crate::metrics::PURGE_METRICS.tags_dropped(dropped as u64);
    }
    tags.iter()
        .map(|t| std::sync::Arc::from(cache::purge::site_tag(&site.name, t)))
        .collect()
}

/// The site's compression settings as the representation rules take them.
fn compress_policy(c: &config::Compression) -> CompressPolicy<'_> {
    CompressPolicy {
        enabled: c.enabled,
        types: &c.types,
        min_bytes: c.min_bytes,
        prefer: &c.prefer,
    }
}

pub(crate) async fn handle(
    ctx: &mut RequestCtx,
    body: ProxyBody,
) -> Result<Response<ProxyBody>, Error> {
    let site = ctx.site()?.clone();
    // The key holds exactly what the origin is asked for: scheme, Host (with a non-default
    // listener port), normalised path.
    ctx.key = primary_key(
        ctx.scheme,
        ctx.host(),
        ctx.head.uri.path(),
        ctx.head.uri.query(),
        &ctx.head.headers,
        &site.cache.key,
    );
    crate::rules_phase::extend_key(ctx);
    ctx.policy = site.cache.policy_for(ctx.path());
    let bypass = |detail| CacheStatus {
        detail: Some(detail),
        ..CacheStatus::fwd(Fwd::Bypass)
    };
    let decided = plan::request(
        &ctx.method,
        &ctx.head.headers,
        ctx.has_body,
        ctx.looped,
        Bypass {
            cookies: &site.cache.bypass_cookies,
            authorization: site.cache.bypass_authorization,
        },
    );
    let decided = if crate::rules_phase::private(ctx) {
        RequestPlan::Pass {
            detail: "private",
            invalidate: false,
        }
    } else {
        decided
    };
    match decided {
        RequestPlan::Pass { detail, invalidate } => {
            ctx.cache_status = Some(bypass(detail));
            let resp = Box::pin(fetch::pass(ctx, body)).await?;
            if invalidate {
                let (status, fields) = (resp.status(), resp.headers().clone());
                Box::pin(invalidate_after(ctx, status, &fields)).await;
            }
            return Ok(resp);
        }
        RequestPlan::Lookup => {}
    }
    // One identity object per URL: the cache asks the origin for identity and matches Vary on
    // it; the client's own value is kept for requests passed through.
    if site.compression.enabled {
        let values: Vec<HeaderValue> = ctx
            .head
            .headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .cloned()
            .collect();
        ctx.head.headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        ctx.client_ae = Some(values);
    }
    let lookup = ctx
        .shared
        .cache
        .store
        .lookup(&ctx.key, &ctx.head.headers)
        .await;
    let (resp, status) = match lookup {
        Lookup::Hit(found) => hit::on_hit(ctx, found, false, body).await?,
        Lookup::Stale(found) => hit::on_hit(ctx, found, true, body).await?,
        // Misses are boxed: their state would otherwise size every hit's future (see hit.rs).
        Lookup::Miss => Box::pin(miss::on_miss(ctx, Fwd::UriMiss, None, body)).await?,
        Lookup::VaryMiss { variant } => {
            Box::pin(miss::on_miss(ctx, Fwd::VaryMiss, Some(variant), body)).await?
        }
    };
    ctx.cache_status = Some(status);
    Ok(resp)
}

/// After a successful unsafe method, its target and the URLs its `Location` and
/// `Content-Location` name are invalid (RFC 9111 §4.4).
async fn invalidate_after(ctx: &RequestCtx, status: http::StatusCode, fields: &http::HeaderMap) {
    let Ok(site) = ctx.site() else { return };
    let pq = ctx.head.uri.path_and_query().map_or("/", |p| p.as_str());
    for target in rules::invalidation_paths(&ctx.method, status, &ctx.host_name, pq, fields) {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target.as_str(), None),
        };
        let k = primary_key(
            ctx.scheme,
            ctx.host(),
            path,
            query,
            &ctx.head.headers,
            &site.cache.key,
        );
        ctx.shared.cache.purge(&k).await;
    }
}
