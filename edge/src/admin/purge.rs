//! Purges: `POST /purge` on the admin listener, the `PURGE` method on a site's URLs, and the
//! one function both end in. Everything a request may be refused for (token, rate, body,
//! scope) is checked before anything is purged: a refused purge purges nothing.

use std::time::Duration;

use cache::purge::{KeyParts, Purge, PurgeMode, PurgeScope};
use cache::{Storage as _, key::primary_key};
use config::{AdminSettings, Site, Snapshot};
use edge_core::clock;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use purge_api::request::MAX_BODY_BYTES;
use purge_api::{
    Kind, PurgeApiError, PurgeRecord, PurgeRequest, RequestError, Status, Targets, Token, UrlTarget,
};

use super::json;
use crate::body::ProxyBody;
use crate::ctx::RequestCtx;
use crate::error::Error;
use crate::hygiene;
use crate::metrics::PURGE_METRICS;
use crate::metrics::purge::Outcome;
use crate::pipeline::{Runtime, Shared};

/// A purge body that has not arrived in this time is refused (a slow client holds no more).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The token of a request that only reads (metrics, purge records): any valid token.
pub(crate) fn reader<'a>(
    admin: &'a AdminSettings,
    headers: &HeaderMap,
) -> Result<&'a Token, Box<Response<ProxyBody>>> {
    admin
        .tokens
        .authenticate(headers)
        .map_err(|e| Box::new(refusal(&e.into())))
}

/// The response for a refused request: its status, `{"error", "field"}` and the headers it
/// must carry (`WWW-Authenticate`, `Retry-After`).
fn refusal(e: &PurgeApiError) -> Response<ProxyBody> {
    let mut resp = json(e.status(), &e.to_json());
    for (name, value) in e.headers() {
        resp.headers_mut().insert(name, value);
    }
    resp
}

fn refused(e: PurgeApiError, kind: Option<Kind>, soft: bool) -> Response<ProxyBody> {
    let outcome = match &e {
        PurgeApiError::Auth(_) => Outcome::Unauthorized,
        PurgeApiError::Forbidden(_) => Outcome::Forbidden,
        PurgeApiError::RateLimited(_) => Outcome::RateLimited,
        PurgeApiError::Request(_) => Outcome::Invalid,
    };
    PURGE_METRICS.purge(kind, soft, outcome);
    tracing::info!(status = e.status().as_u16(), error = %e, "purge refused");
    refusal(&e)
}

/// `POST /purge`.
pub async fn post(shared: &Shared, rt: &Runtime, req: Request<Incoming>) -> Response<ProxyBody> {
    let (parts, incoming) = req.into_parts();
    let admin = &rt.snapshot.admin;
    let token = match admin.tokens.authenticate(&parts.headers) {
        Ok(t) => t,
        Err(e) => return refused(e.into(), None, false),
    };
    if let Err(e) = rt.purge_limiter.check(&token.name, clock::now().into_std()) {
        return refused(e.into(), None, false);
    }
    let body = match read_body(&parts.headers, incoming).await {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let request = match purge_api::request::parse(&body, &parts.headers) {
        Ok(r) => r,
        Err(e) => return refused(e.into(), None, false),
    };
    let (kind, soft) = (request.targets.kind(), request.soft);
    match scopes(&rt.snapshot, &shared.listen_ports(), token, &request) {
        Ok(scopes) => json(
            StatusCode::OK,
            &apply(shared, rt, token, request, scopes).await,
        ),
        Err(e) => refused(e, Some(kind), soft),
    }
}

/// The body, at most `MAX_BODY_BYTES` (413 beyond, said by the length up front when given).
async fn read_body(
    headers: &HeaderMap,
    incoming: Incoming,
) -> Result<Vec<u8>, Box<Response<ProxyBody>>> {
    let too_large = || {
        Box::new(refused(
            RequestError::TooLarge {
                limit: MAX_BODY_BYTES,
            }
            .into(),
            None,
            false,
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let limited = Limited::new(incoming, MAX_BODY_BYTES);
    match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(Box::new(refused(
            RequestError::Json("the request body could not be read".into()).into(),
            None,
            false,
        ))),
        Err(_) => Err(Box::new(super::text(
            StatusCode::REQUEST_TIMEOUT,
            "the request body arrived too slowly\n".into(),
        ))),
    }
}

/// The `PURGE` method on a URL of a site that enables it: purges that URL (every scheme,
/// variant and encoding), with the same tokens as the admin API; `Fastly-Soft-Purge: 1` makes
/// it soft.
pub async fn purge_method(ctx: &RequestCtx) -> Result<Response<ProxyBody>, Error> {
    let rt = ctx.rt.clone();
    let site = ctx.site()?.clone();
    let soft = ctx
        .head
        .headers
        .get("fastly-soft-purge")
        .is_some_and(|v| v.as_bytes() == b"1");
    let token = match rt.snapshot.admin.tokens.authenticate(&ctx.head.headers) {
        Ok(t) => t,
        Err(e) => return Ok(refused(e.into(), Some(Kind::Url), soft)),
    };
    if let Err(e) = rt.purge_limiter.check(&token.name, clock::now().into_std()) {
        return Ok(refused(e.into(), Some(Kind::Url), soft));
    }
    if let Err(e) = token.may_purge(Kind::Url, &site.name) {
        return Ok(refused(e.into(), Some(Kind::Url), soft));
    }
    let path_and_query = match ctx.head.uri.query() {
        Some(q) => format!("{}?{q}", ctx.path()),
        None => ctx.path().to_string(),
    };
    let scope = PurgeScope::Url {
        host: ctx.host_name.clone(),
        path_query: key_path(&site, ctx.path(), ctx.head.uri.query()),
        ports: ctx.shared.listen_ports(),
    };
    let request = PurgeRequest {
        targets: Targets::Urls(vec![UrlTarget {
            scheme: Some(ctx.scheme.to_string()),
            host: ctx.host_name.clone(),
            port: None,
            path_and_query,
        }]),
        soft,
    };
    let record = apply(&ctx.shared, &rt, token, request, vec![scope]).await;
    Ok(json(StatusCode::OK, &record))
}

/// Applies the purge (in effect when this returns), records and counts it; with the control
/// plane's bus, fans it out to every node instead and waits for their acknowledgements.
async fn apply(
    shared: &Shared,
    rt: &Runtime,
    token: &Token,
    request: PurgeRequest,
    scopes: Vec<PurgeScope>,
) -> PurgeRecord {
    if let Some(bus) = shared.bus.get() {
        return super::fanout::fan_out(shared, rt, bus, token, request).await;
    }
    let id = shared.purges.next_id(&rt.snapshot.node_name);
    apply_scopes(shared, &id, &token.name, request, scopes).await
}

/// Applies `scopes` of purge `id` on this node, records and counts it.
pub(crate) async fn apply_scopes(
    shared: &Shared,
    id: &str,
    token: &str,
    request: PurgeRequest,
    scopes: Vec<PurgeScope>,
) -> PurgeRecord {
    let mode = if request.soft {
        PurgeMode::Soft
    } else {
        PurgeMode::Hard
    };
    let start = clock::now();
    let mut purged = 0u64;
    for scope in scopes {
        let report = shared.cache.store.purge(&Purge::new(scope, mode)).await;
        purged += report.objects as u64;
    }
    let took = start.elapsed();
    let kind = request.targets.kind();
    PURGE_METRICS.purge(Some(kind), request.soft, Outcome::Done);
    PURGE_METRICS.done(kind, purged, took);
    let record = PurgeRecord {
        id: id.to_string(),
        status: Status::Done,
        purged,
        took_us: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
        token: token.to_string(),
        at_unix_ms: clock::unix_ms(),
        request,
        acks: Vec::new(),
        pending: Vec::new(),
    };
    tracing::info!(
        purge_id = %record.id,
        token = %record.token,
        kind = kind.as_str(),
        soft = record.request.soft,
        targets = targets_len(&record.request.targets),
        purged = record.purged,
        took_us = record.took_us,
        "purge done"
    );
    shared.purges.insert(record.clone());
    record
}

fn targets_len(t: &Targets) -> usize {
    match t {
        Targets::Urls(v) => v.len(),
        Targets::Prefixes(v) => v.len(),
        Targets::Tags(v) | Targets::Hosts(v) => v.len(),
        Targets::Everything { sites } => sites.as_ref().map_or(1, Vec::len),
    }
}

/// What the store is asked to purge, every target checked against the config and the
/// token's scope first (400 for an unknown host or site, 403 for one out of scope).
/// `ports`: the node's listener ports (keys carry non-default ones).
pub fn scopes(
    snap: &Snapshot,
    ports: &[u16],
    token: &Token,
    request: &PurgeRequest,
) -> Result<Vec<PurgeScope>, PurgeApiError> {
    let bad = |field: &str, index: usize, reason: String| {
        PurgeApiError::from(RequestError::BadItem {
            field: field.to_string(),
            index,
            reason,
        })
    };
    let site_of = |field: &str, index: usize, host: &str| {
        snap.site_for_host(host)
            .cloned()
            .ok_or_else(|| bad(field, index, format!("no site on this node serves {host}")))
    };
    let mut out = Vec::new();
    match &request.targets {
        Targets::Urls(urls) => {
            for (i, u) in urls.iter().enumerate() {
                let site = site_of("urls", i, &u.host)?;
                token.may_purge(Kind::Url, &site.name)?;
                let (path, query) = match u.path_and_query.split_once('?') {
                    Some((p, q)) => (p, Some(q)),
                    None => (u.path_and_query.as_str(), None),
                };
                let path = hygiene::normalize_path(path)
                    .map_err(|reason| bad("urls", i, reason.to_string()))?;
                out.push(PurgeScope::Url {
                    host: config::normalize_host(&u.host).into_owned(),
                    path_query: key_path(&site, &path, query),
                    ports: ports.to_vec(),
                });
            }
        }
        Targets::Prefixes(prefixes) => {
            for (i, p) in prefixes.iter().enumerate() {
                let site = site_of("prefixes", i, &p.host)?;
                token.may_purge(Kind::Prefix, &site.name)?;
                let path = hygiene::normalize_path(&p.path_prefix)
                    .map_err(|reason| bad("prefixes", i, reason.to_string()))?;
                out.push(PurgeScope::Prefix {
                    host: config::normalize_host(&p.host).into_owned(),
                    path_prefix: path.into_owned(),
                });
            }
        }
        Targets::Tags(tags) => match &token.sites {
            // An every-site token purges the tag wherever it is.
            None => {
                token.may_purge(Kind::Tag, "")?;
                out.extend(tags.iter().map(|t| PurgeScope::Tag {
                    site: None,
                    tag: t.clone(),
                }));
            }
            Some(sites) => {
                for site in sites {
                    token.may_purge(Kind::Tag, site)?;
                    out.extend(tags.iter().map(|t| PurgeScope::Tag {
                        site: Some(site.clone()),
                        tag: t.clone(),
                    }));
                }
            }
        },
        Targets::Hosts(hosts) => {
            for (i, h) in hosts.iter().enumerate() {
                let site = site_of("hosts", i, h)?;
                token.may_purge(Kind::Host, &site.name)?;
                out.push(PurgeScope::Host(config::normalize_host(h).into_owned()));
            }
        }
        Targets::Everything { sites } => match (sites, &token.sites) {
            (None, None) => {
                token.may_purge(Kind::Everything, "")?;
                out.push(PurgeScope::All);
            }
            (None, Some(mine)) => {
                for name in mine {
                    token.may_purge(Kind::Everything, name)?;
                    if let Some(site) = snap.sites.iter().find(|s| &s.name == name) {
                        out.extend(site_scopes(site));
                    }
                }
            }
            (Some(named), _) => {
                for (i, name) in named.iter().enumerate() {
                    let site = snap
                        .sites
                        .iter()
                        .find(|s| &s.name == name)
                        .ok_or_else(|| bad("sites", i, format!("no site is named {name}")))?;
                    token.may_purge(Kind::Everything, name)?;
                    out.extend(site_scopes(site));
                }
            }
        },
    }
    Ok(out)
}

/// Everything a site serves: its hosts, and the subdomains of its wildcard hosts.
fn site_scopes(site: &Site) -> impl Iterator<Item = PurgeScope> + '_ {
    site.hosts.iter().map(|h| match h.strip_prefix("*.") {
        Some(domain) => PurgeScope::Domain(domain.to_string()),
        None => PurgeScope::Host(h.clone()),
    })
}

/// The path and query as the site's cache key holds them (ignored and sorted parameters).
fn key_path(site: &Site, path: &str, query: Option<&str>) -> String {
    let key = primary_key(
        "https",
        "h",
        path,
        query,
        &HeaderMap::new(),
        &site.cache.key,
    );
    KeyParts::of(&key).map_or_else(|| path.to_string(), |k| k.path_query.to_string())
}

/// The value of a header as `edge purge` and tests send it.
pub fn bearer(secret: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("Bearer {secret}")).ok()
}
