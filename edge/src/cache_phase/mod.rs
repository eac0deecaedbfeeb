//! The cache phase of the pipeline: look up, decide with the RFC 9111 rules (`cache::rules`),
//! serve from the store, revalidate, or fetch and store while streaming to the client.
//!
//! Decisions are the cache crate's pure functions; this module only does the I/O around them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::SystemTime;

use bytes::Bytes;
use cache::cache_control::CacheControl;
use cache::collapse::{Collapser, HitForPass, Leader, Outcome, Role};
use cache::encoding::{self, AcceptEncoding, Coding};
use cache::inflight::Inflight;
use cache::key::{cookie_value, primary_key};
use cache::rules::{self, Action, NotStorable, Policy, RangeAnswer, StoredMeta};
use cache::status::{CacheStatus, Fwd};
use cache::store::{DiskConfig, Fill, variant_key};
use cache::{CacheError, Found, Lookup, Store, StoreConfig};
use cache::{Purge, Ticket};
use config::Site;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use origin_shield::{Affinity, OriginError, Pool};
use tokio::io::{AsyncRead, ReadBuf};

use crate::body::{self, BoxError, ProxyBody};
use crate::compress::{self, Negotiated, Transcode};
use crate::error::Error;
use crate::headers;
use crate::metrics::{METRICS, Made};
use crate::pipeline::{ConnInfo, RequestCtx, Runtime, Shared, origin_response, send_to_origin};

pub static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Disk objects up to this size are read whole in one trip to the blocking pool; larger ones
/// stream.
const SMALL_DISK_OBJECT: u64 = 1024 * 1024;

/// The node's cache: one store, one collapser, one hit-for-pass memory. Built at start from
/// the first snapshot's `[cache]`; later changes to it need a restart.
pub struct CacheRuntime {
    pub store: Store,
    pub collapser: Collapser,
    pub hit_for_pass: HitForPass,
    pub settings: config::CacheSettings,
}

impl CacheRuntime {
    /// Takes a URL (every variant and encoding) out of the cache. In effect on return: fills
    /// already in flight publish nothing, and later requests do not collapse onto them.
    pub async fn purge(&self, primary: &str) -> cache::PurgeReport {
        let report = self.store.purge(&Purge::hard_key(primary)).await;
        self.collapser.forget(primary);
        self.hit_for_pass.forget(primary).await;
        report
    }

    pub async fn open(settings: &config::CacheSettings) -> Result<CacheRuntime, Error> {
        let store = Store::open(StoreConfig {
            memory_bytes: settings.memory_bytes,
            max_object_memory_bytes: settings.max_object_memory_bytes,
            disk: settings.disk_dir.as_ref().map(|dir| DiskConfig {
                dir: dir.clone(),
                max_bytes: settings.disk_bytes,
            }),
        })
        .await?;
        Ok(CacheRuntime {
            store,
            collapser: Collapser::default(),
            hit_for_pass: HitForPass::new(settings.hit_for_pass, 1 << 20),
            settings: settings.clone(),
        })
    }
}

/// What one cacheable request needs, cheap to clone into a background refresh.
#[derive(Clone)]
struct Job {
    shared: Arc<Shared>,
    rt: Arc<Runtime>,
    pool: Arc<Pool>,
    key: String,
    policy: Policy,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    max_body: u64,
    site: Arc<Site>,
    /// The client's `Accept-Encoding`, parsed; `headers` carries `identity` instead when the
    /// site compresses, so that the cache holds one identity representation per URL.
    accept: AcceptEncoding,
    /// The client's own `Accept-Encoding` fields, restored for requests passed through.
    client_ae: Option<Vec<HeaderValue>>,
    client_ip: std::net::IpAddr,
    /// The site's shield pool, unless this request already came through this node.
    shield: Option<Arc<Pool>>,
}

impl Job {
    /// The `Via` value this node adds to responses.
    fn via(&self) -> &str {
        &self.rt.via
    }

    fn store(&self) -> &Store {
        &self.shared.cache.store
    }

    fn affinity(&self) -> Affinity<'_> {
        Affinity {
            key: Some(&self.key),
            client_ip: Some(self.client_ip),
        }
    }

    /// Fetches for the cache: from the shield chosen by the cache key when the site has one
    /// (falling back to the origin when the shield cannot be reached, if allowed), else from
    /// the route's pool. `make` builds the request (bodiless, so it can be built twice).
    async fn fetch(
        &self,
        make: impl Fn() -> Request<ProxyBody>,
    ) -> Result<Response<hyper::body::Incoming>, Error> {
        if let Some(shield) = &self.shield {
            match send_to_origin(&self.rt, shield, make(), self.max_body, self.affinity()).await {
                Ok(resp) => return Ok(resp),
                Err(Error::Origin(e))
                    if self.site.shield_fallback
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
        send_to_origin(&self.rt, &self.pool, make(), self.max_body, self.affinity()).await
    }

    /// `origin_get` with the stored response's validators.
    fn conditional_get(&self, found: &Found) -> Request<ProxyBody> {
        let mut req = self.origin_get();
        for (name, value) in rules::validators(found.meta()) {
            req.headers_mut().insert(name, value);
        }
        req
    }

    /// A GET for the origin without the client's conditionals and range: the cache wants the
    /// whole representation, and answers those itself.
    fn origin_get(&self) -> Request<ProxyBody> {
        let mut headers = self.headers.clone();
        for h in [
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_MATCH,
            header::IF_UNMODIFIED_SINCE,
            header::IF_RANGE,
            header::RANGE,
        ] {
            headers.remove(h);
        }
        let mut req = Request::new(body::empty());
        *req.method_mut() = Method::GET;
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = headers;
        req
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    rt: &Arc<Runtime>,
    conn: &ConnInfo,
    ctx: &mut RequestCtx,
    site: &Arc<Site>,
    pool: &Arc<Pool>,
    mut parts: Parts,
    body: ProxyBody,
) -> Result<Response<ProxyBody>, Error> {
    // The key holds exactly what the origin is asked for: scheme, Host (with a non-default
    // listener port), normalised path.
    let scheme = ctx.scheme;
    let host = ctx.host.clone();
    let key = primary_key(
        scheme,
        &host,
        parts.uri.path(),
        parts.uri.query(),
        &parts.headers,
        &site.cache.key,
    );
    let accept = AcceptEncoding::from_headers(&parts.headers);
    let client_ae = if site.compression.enabled {
        let values: Vec<HeaderValue> = parts
            .headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .cloned()
            .collect();
        parts.headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        Some(values)
    } else {
        None
    };
    let shield = site
        .shield
        .as_ref()
        .filter(|_| !ctx.looped)
        .and_then(|name| rt.pools.get(name))
        .cloned();
    let job = Job {
        shared: shared.clone(),
        rt: rt.clone(),
        pool: pool.clone(),
        policy: site.cache.policy_for(parts.uri.path()),
        key,
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        // Moved, not cloned: hits never need the request again; passes put them back.
        headers: std::mem::take(&mut parts.headers),
        max_body: site.max_request_body_bytes,
        site: site.clone(),
        accept,
        client_ae,
        client_ip: conn.peer.ip(),
        shield,
    };
    let bypass = |detail| CacheStatus {
        detail: Some(detail),
        ..CacheStatus::fwd(Fwd::Bypass)
    };

    // Unsafe methods go through, then invalidate what they changed (RFC 9111 §4.4).
    if !parts.method.is_safe() {
        let resp = pass(&job, parts, body).await?;
        let pq = job.uri.path_and_query().map_or("/", |p| p.as_str());
        for target in rules::invalidation_paths(
            &job.method,
            resp.status(),
            &config::normalize_host(&host),
            pq,
            resp.headers(),
        ) {
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (target.as_str(), None),
            };
            let k = primary_key(scheme, &host, path, query, &job.headers, &site.cache.key);
            shared.cache.purge(&k).await;
        }
        ctx.cache_status = Some(bypass("method"));
        return Ok(resp);
    }
    if parts.method != Method::GET && parts.method != Method::HEAD {
        ctx.cache_status = Some(bypass("method"));
        return pass(&job, parts, body).await;
    }
    if ctx.looped {
        // Our own miss, sent to ourselves as the shield chosen for this key: the outer request
        // leads the fill and stores the answer. Collapsing behind it would wait for itself.
        ctx.cache_status = Some(bypass("loop"));
        return pass(&job, parts, body).await;
    }
    if ctx.has_body {
        // RFC 9110 gives a GET body no meaning, but an origin may act on it: its answer is
        // not the answer to the URL alone.
        ctx.cache_status = Some(bypass("body"));
        return pass(&job, parts, body).await;
    }
    if site
        .cache
        .bypass_cookies
        .iter()
        .any(|c| cookie_value(&job.headers, c).is_some())
    {
        ctx.cache_status = Some(bypass("cookie"));
        return pass(&job, parts, body).await;
    }
    if site.cache.bypass_authorization && job.headers.contains_key(header::AUTHORIZATION) {
        ctx.cache_status = Some(bypass("authorization"));
        return pass(&job, parts, body).await;
    }

    let (resp, status) = match job.store().lookup(&job.key, &job.headers).await {
        Lookup::Hit(found) => on_hit(&job, found, parts, body).await?,
        Lookup::Miss => on_miss(&job, Fwd::UriMiss, None, parts, body).await?,
        Lookup::VaryMiss { variant } => {
            on_miss(&job, Fwd::VaryMiss, Some(variant), parts, body).await?
        }
    };
    ctx.cache_status = Some(status);
    Ok(resp)
}

/// Forward the client's request as is, storing nothing.
async fn pass(job: &Job, mut parts: Parts, body: ProxyBody) -> Result<Response<ProxyBody>, Error> {
    parts.headers = job.headers.clone();
    if let Some(values) = &job.client_ae {
        parts.headers.remove(header::ACCEPT_ENCODING);
        for v in values {
            parts.headers.append(header::ACCEPT_ENCODING, v.clone());
        }
    }
    let req = Request::from_parts(parts, body);
    let resp = send_to_origin(&job.rt, &job.pool, req, job.max_body, job.affinity()).await?;
    Ok(origin_response(resp, &job.rt))
}

type Served = (Response<ProxyBody>, CacheStatus);

async fn on_hit(job: &Job, found: Found, parts: Parts, body: ProxyBody) -> Result<Served, Error> {
    let now = SystemTime::now();
    let verdict = rules::evaluate(&job.headers, found.meta(), &job.policy, now);
    let ttl = verdict.ttl_secs();
    match verdict.action {
        Action::Fresh | Action::StaleOk => match serve(job, &found, now).await {
            Ok(resp) => Ok((resp, CacheStatus::hit(ttl))),
            Err(e) => {
                tracing::warn!(error = %e, "stored object unreadable; fetching again");
                on_miss(job, Fwd::UriMiss, None, parts, body).await
            }
        },
        Action::StaleWhileRevalidate => {
            spawn_refresh(job.clone(), found.clone());
            match serve(job, &found, now).await {
                Ok(resp) => Ok((
                    resp,
                    CacheStatus {
                        detail: Some("stale-while-revalidate"),
                        ..CacheStatus::hit(ttl)
                    },
                )),
                Err(_) => on_miss(job, Fwd::Stale, None, parts, body).await,
            }
        }
        Action::Revalidate { stale_if_error } => {
            let fwd = if CacheControl::request(&job.headers).no_cache {
                Fwd::Request
            } else {
                Fwd::Stale
            };
            revalidate(job, found, fwd, stale_if_error, ttl).await
        }
    }
}

/// Conditional request to the origin for a stored response.
async fn revalidate(
    job: &Job,
    found: Found,
    fwd: Fwd,
    stale_if_error: bool,
    ttl: i64,
) -> Result<Served, Error> {
    let request_time = SystemTime::now();
    let ticket = job.store().ticket();
    let stale = |fwd_status| CacheStatus {
        hit: true,
        fwd: Some(Fwd::Stale),
        fwd_status,
        ttl: Some(ttl),
        detail: Some("stale-if-error"),
        ..Default::default()
    };
    match job.fetch(|| job.conditional_get(&found)).await {
        Ok(resp) if resp.status() == StatusCode::NOT_MODIFIED => {
            let updated = freshen(job, &found, resp.headers(), request_time, ticket).await;
            let now = SystemTime::now();
            let new_ttl =
                rules::evaluate(&HeaderMap::new(), updated.meta(), &job.policy, now).ttl_secs();
            let resp = serve(job, &updated, now).await?;
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
                serve(job, &found, SystemTime::now()).await?,
                stale(Some(resp.status().as_u16())),
            ))
        }
        Err(e) if stale_if_error && matches!(e, Error::Origin(_)) => {
            tracing::info!(error = %e, "origin failed; serving stale (stale-if-error)");
            Ok((serve(job, &found, SystemTime::now()).await?, stale(None)))
        }
        Err(e) => Err(e),
        Ok(resp) => Ok(store_response(job, resp, request_time, ticket, fwd, None).await),
    }
}

/// Applies a 304 to the stored response (RFC 9111 §4.3.4) and returns the updated one.
async fn freshen(
    job: &Job,
    found: &Found,
    not_modified: &HeaderMap,
    request_time: SystemTime,
    ticket: Ticket,
) -> Found {
    let mut meta = found.meta().clone();
    rules::merge_304(&mut meta.headers, not_modified);
    meta.request_time = request_time;
    meta.response_time = SystemTime::now();
    job.store()
        .update_meta(&job.key, found, meta.clone(), ticket)
        .await;
    found.with_meta(meta)
}

/// One background refresh per stored object: the client already has the stale copy.
fn spawn_refresh(job: Job, found: Found) {
    let refresh_key = format!("refresh\n{}", found.variant(&job.key));
    let Some(leader) = job.shared.cache.collapser.try_lead(&refresh_key) else {
        return;
    };
    tokio::spawn(async move {
        let _leader = leader;
        let request_time = SystemTime::now();
        let ticket = job.store().ticket();
        match job.fetch(|| job.conditional_get(&found)).await {
            Ok(resp) if resp.status() == StatusCode::NOT_MODIFIED => {
                freshen(&job, &found, resp.headers(), request_time, ticket).await;
            }
            Ok(resp) => {
                let (resp, _) =
                    store_response(&job, resp, request_time, ticket, Fwd::Stale, None).await;
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

/// A miss: fetch once for everyone asking the same thing at once. Requests collapse on the
/// URL (or, once the URL's Vary is known, on their variant); a follower reads the leader's
/// response only if its own request selects the same variant, otherwise it collapses again on
/// its own variant, so a client never gets another client's variant.
async fn on_miss(
    job: &Job,
    fwd: Fwd,
    variant: Option<String>,
    parts: Parts,
    body: ProxyBody,
) -> Result<Served, Error> {
    let cache = &job.shared.cache;
    if CacheControl::request(&job.headers).only_if_cached {
        return Err(Error::OnlyIfCached);
    }
    let pass_with = |detail| CacheStatus {
        detail: Some(detail),
        ..CacheStatus::fwd(fwd)
    };
    // HEAD and Range misses go through unchanged; their answers are not stored (a HEAD has no
    // body to store, and a 206 is only part of one).
    if job.method == Method::HEAD {
        return Ok((pass(job, parts, body).await?, pass_with("head")));
    }
    if job.headers.contains_key(header::RANGE) {
        return Ok((pass(job, parts, body).await?, pass_with("range")));
    }
    if cache.hit_for_pass.is_marked(&job.key).await {
        return Ok((pass(job, parts, body).await?, pass_with("hit-for-pass")));
    }
    let mut collapse_on = variant.unwrap_or_else(|| job.key.clone());
    // Two rounds at most: on the URL, then on this request's own variant.
    let mut outcome = Outcome::Failed;
    for _ in 0..2 {
        match cache.collapser.join(&collapse_on) {
            Role::Leader(leader) => {
                let request_time = SystemTime::now();
                let ticket = job.store().ticket();
                let resp = job.fetch(|| job.origin_get()).await?;
                return Ok(
                    store_response(job, resp, request_time, ticket, fwd, Some(leader)).await,
                );
            }
            Role::Follower(follower) => {
                outcome = follower.wait(cache.settings.collapse_timeout).await;
            }
        }
        let own_variant =
            |names: &[HeaderName]| variant_key(&job.key, &rules::vary_values(&job.headers, names));
        match &outcome {
            Outcome::Streaming(inflight) => {
                let mine = own_variant(&inflight.vary_names);
                if mine != inflight.variant {
                    collapse_on = mine;
                    continue;
                }
                let resp = streamed_response(inflight.clone(), job.via());
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
            Outcome::Stored => match job.store().lookup(&job.key, &job.headers).await {
                Lookup::Hit(found) => {
                    let now = SystemTime::now();
                    let ttl =
                        rules::evaluate(&job.headers, found.meta(), &job.policy, now).ttl_secs();
                    if let Ok(resp) = serve(job, &found, now).await {
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
        pass(job, parts, body).await?,
        CacheStatus {
            collapsed: true,
            ..pass_with(detail)
        },
    ))
}

/// Streams an origin response to the client, storing it on the way when the rules allow.
async fn store_response(
    job: &Job,
    resp: Response<hyper::body::Incoming>,
    request_time: SystemTime,
    ticket: Ticket,
    fwd: Fwd,
    leader: Option<Leader>,
) -> Served {
    let cache = &job.shared.cache;
    let status = resp.status();
    let (mut parts, incoming) = resp.into_parts();
    let broken_framing = headers::broken_framing(&parts.headers);
    headers::drop_length_beside_transfer_encoding(&mut parts.headers);
    headers::strip_hop_by_hop(&mut parts.headers);
    let verdict = if broken_framing {
        Err(NotStorable::Framing)
    } else {
        rules::storable(
            &Method::GET,
            &job.headers,
            status,
            &parts.headers,
            &job.policy,
        )
    };
    let mut cache_status = CacheStatus {
        fwd: Some(fwd),
        fwd_status: Some(status.as_u16()),
        ..Default::default()
    };
    let mut encode = Representation::Undecided;
    let body: ProxyBody = match verdict {
        Ok(()) => {
            let names = rules::vary_names(&parts.headers).unwrap_or_default();
            let meta = StoredMeta {
                status,
                headers: parts.headers.clone(),
                request_time,
                response_time: SystemTime::now(),
                vary: rules::vary_values(&job.headers, &names),
                body_len: 0,
                generation: 0,
            };
            let vary_names = names.clone();
            let fill = cache.store.fill(&job.key, meta, names, ticket);
            cache.hit_for_pass.forget(&job.key).await;
            cache_status.stored = true;
            let declared = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            // The coding this client gets is made at the stored level while the identity is
            // stored, and kept as a variant: the first hit in that coding finds it ready.
            let cfg = &job.site.compression;
            if status == StatusCode::OK && !encoding::has_content_encoding(&parts.headers) {
                let eligible = compress::eligible(cfg, &parts.headers, declared);
                let coding = (eligible
                    && job.method == Method::GET
                    && !job.headers.contains_key(header::RANGE))
                .then(|| job.accept.negotiate(&cfg.prefer))
                .flatten();
                encode = match coding {
                    Some(c) => Representation::Encode {
                        coding: c,
                        identity_variant: fill.variant().to_string(),
                        generation: fill.generation(),
                    },
                    None => Representation::Identity { varies: eligible },
                };
            }
            let small = declared.is_some_and(|n| n <= cache.store.config().max_object_memory_bytes);
            match leader {
                Some(leader) if small => {
                    // Everyone reads the object as it arrives: this client and the collapsed
                    // ones. The fetch no longer depends on this client staying connected.
                    let inflight = Inflight::new(
                        status,
                        parts.headers.clone(),
                        fill.variant().to_string(),
                        vary_names,
                    );
                    leader.announce(inflight.clone());
                    tokio::spawn(drive_fill(
                        body::origin_incoming(incoming, job.rt.snapshot.timeouts.origin_body_idle),
                        fill,
                        inflight.clone(),
                        leader,
                    ));
                    let resp = streamed_response(inflight, job.via());
                    return (encoded_on_store(job, resp, encode), cache_status);
                }
                leader => TeeBody {
                    inner: body::origin_incoming(
                        incoming,
                        job.rt.snapshot.timeouts.origin_body_idle,
                    ),
                    fill: Some(fill),
                    leader,
                    pending: None,
                    held: None,
                }
                .boxed_unsync(),
            }
        }
        Err(reason) => {
            if let Some(l) = leader {
                l.complete(Outcome::Uncacheable);
            }
            // Remember only what the response decided; a request's own no-store or
            // Authorization says nothing about other clients' requests.
            let request_made_it =
                matches!(reason, NotStorable::Authorization | NotStorable::Method)
                    || CacheControl::request(&job.headers).no_store;
            if !request_made_it {
                cache.hit_for_pass.mark(&job.key).await;
            }
            cache_status.detail = Some(reason.as_str());
            body::origin_incoming(incoming, job.rt.snapshot.timeouts.origin_body_idle)
        }
    };
    headers::append_list(&mut parts.headers, &header::VIA, job.via());
    let resp = Response::from_parts(parts, body);
    (encoded_on_store(job, resp, encode), cache_status)
}

/// What a stored 200 response is sent as, decided once while it is stored.
enum Representation {
    /// Not decided here (not a plain 200, or not stored): the compress phase decides.
    Undecided,
    /// As it came; `varies`: other clients may get it encoded (`Vary: Accept-Encoding`).
    Identity { varies: bool },
    /// In `coding`, made at the stored level and stored beside the identity.
    Encode {
        coding: Coding,
        identity_variant: String,
        generation: u64,
    },
}

/// The response to a miss as the client negotiated it. Marked `Negotiated`, so that the
/// compress phase does not evaluate the same response again.
fn encoded_on_store(
    job: &Job,
    resp: Response<ProxyBody>,
    encode: Representation,
) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    let body = match encode {
        Representation::Undecided => return Response::from_parts(parts, body),
        Representation::Identity { varies } => {
            if varies {
                compress::add_vary(&mut parts.headers);
            }
            body
        }
        Representation::Encode {
            coding,
            identity_variant,
            generation,
        } => {
            compress::mark_transformed(&mut parts.headers, Some(coding));
            compress::add_vary(&mut parts.headers);
            encode_for_store(job, body, &identity_variant, generation, coding)
        }
    };
    parts.extensions.insert(Negotiated);
    Response::from_parts(parts, body)
}

/// Reads the origin body into the store and the shared in-flight object, then publishes.
async fn drive_fill(
    mut origin: ProxyBody,
    mut fill: Fill,
    inflight: Arc<Inflight>,
    leader: Leader,
) {
    let mut storing = true;
    let clean = loop {
        match origin.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if storing && fill.push(data.clone()).await.is_err() {
                        storing = false;
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
    inflight.finish(clean);
    let outcome = if clean && storing {
        match fill.finish().await {
            Ok(()) => Outcome::Stored,
            Err(e) => {
                tracing::info!(error = %e, "response not stored");
                Outcome::Failed
            }
        }
    } else {
        Outcome::Failed
    };
    leader.complete(outcome);
}

/// A response read from an in-flight object.
fn streamed_response(inflight: Arc<Inflight>, via: &str) -> Response<ProxyBody> {
    let mut headers = inflight.headers.clone();
    headers::append_list(&mut headers, &header::VIA, via);
    let status = inflight.status;
    let stream = futures_util::stream::unfold(Some((inflight, 0usize)), |state| async move {
        let (inflight, i) = state?;
        match inflight.chunk(i).await {
            Ok(Some(chunk)) => Some((Ok(Frame::data(chunk)), Some((inflight, i + 1)))),
            Ok(None) => None,
            Err(e) => Some((Err(BoxError::from(e)), None)),
        }
    });
    let mut resp = Response::new(http_body_util::StreamBody::new(stream).boxed_unsync());
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// Builds the client's response from a stored one: conditional (304), range (206/416), HEAD,
/// and the content coding (a stored encoded variant, or one made now and stored).
async fn serve(
    job: &Job,
    found: &Found,
    now: SystemTime,
) -> Result<Response<ProxyBody>, CacheError> {
    let meta = found.meta();
    let age = rules::current_age(meta, now).as_secs();
    let mut headers = meta.headers.clone();
    headers.insert(header::AGE, HeaderValue::from(age));
    headers::append_list(&mut headers, &header::VIA, job.via());

    let cfg = &job.site.compression;
    let varies = meta.status == StatusCode::OK
        && compress::eligible(cfg, &meta.headers, Some(meta.body_len));
    let coding = if varies && job.method == Method::GET && !job.headers.contains_key(header::RANGE)
    {
        job.accept.negotiate(&cfg.prefer)
    } else {
        None
    };
    if varies {
        compress::add_vary(&mut headers);
    }

    if rules::not_modified(&job.headers, meta) {
        let mut resp = Response::new(body::empty());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        if coding.is_some() {
            // The validator of the representation this client would have received.
            compress::weaken_etag(&mut headers);
        }
        let keep = [
            header::CACHE_CONTROL,
            header::CONTENT_LOCATION,
            header::DATE,
            header::ETAG,
            header::EXPIRES,
            header::VARY,
            header::LAST_MODIFIED,
            header::AGE,
            header::VIA,
        ];
        for name in keep {
            for v in headers.get_all(&name) {
                resp.headers_mut().append(name.clone(), v.clone());
            }
        }
        return Ok(resp);
    }

    if let Some(coding) = coding {
        return serve_encoded(job, found, headers, coding).await;
    }

    let total = meta.body_len;
    let mut status = meta.status;
    let (start, len) = if job.method == Method::GET && meta.status == StatusCode::OK {
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        match rules::range(&job.headers, meta) {
            RangeAnswer::Full => (0, total),
            RangeAnswer::Partial { start, end } => {
                status = StatusCode::PARTIAL_CONTENT;
                if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{total}")) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
                (start, end - start + 1)
            }
            RangeAnswer::Unsatisfiable => {
                let mut resp = Response::new(body::empty());
                *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
                return Ok(resp);
            }
        }
    } else {
        (0, total)
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));

    let body = if job.method == Method::HEAD {
        body::empty()
    } else {
        stored_body(job, found, start, len).await?
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    if varies {
        resp.extensions_mut().insert(Negotiated);
    }
    Ok(resp)
}

/// A stored object in `coding`: its stored variant if there is one for this body; otherwise
/// the identity encoded now, at the stored level and into the store when no other request is
/// already doing that, else at the fast level for this client only.
async fn serve_encoded(
    job: &Job,
    found: &Found,
    mut headers: HeaderMap,
    coding: Coding,
) -> Result<Response<ProxyBody>, CacheError> {
    let store = job.store();
    compress::mark_transformed(&mut headers, Some(coding));
    let variant = match store.lookup_encoded(&job.key, found, coding).await {
        Some(encoded) => {
            let len = encoded.meta().body_len;
            match stored_body(job, &encoded, 0, len).await {
                Ok(body) => {
                    METRICS.variant_hit(coding);
                    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                    Some(body)
                }
                Err(e) => {
                    tracing::info!(error = %e, "stored encoded variant unreadable; encoding again");
                    None
                }
            }
        }
        None => None,
    };
    let body = match variant {
        Some(body) => body,
        None => {
            let identity = stored_body(job, found, 0, found.meta().body_len).await?;
            let identity_variant = found.variant(&job.key);
            encode_for_store(
                job,
                identity,
                &identity_variant,
                found.meta().generation,
                coding,
            )
        }
    };
    let mut resp = Response::new(body);
    *resp.headers_mut() = headers;
    resp.extensions_mut().insert(Negotiated);
    Ok(resp)
}

/// Encodes an identity body for the client, storing the result as the object's `coding`
/// variant when this request is the first to make it.
fn encode_for_store(
    job: &Job,
    identity: ProxyBody,
    identity_variant: &str,
    generation: u64,
    coding: Coding,
) -> ProxyBody {
    let cfg = &job.site.compression;
    let fill = job
        .store()
        .fill_encoded(identity_variant, generation, coding);
    match job.shared.cache.collapser.try_lead(fill.variant()) {
        Some(leader) => TeeBody {
            inner: Transcode::encoder(
                identity,
                coding,
                cfg.stored_level.of(coding),
                Made::Stored,
                false,
            )
            .boxed_unsync(),
            fill: Some(fill),
            leader: Some(leader),
            pending: None,
            held: None,
        }
        .boxed_unsync(),
        None => Transcode::encoder(identity, coding, cfg.fly_level.of(coding), Made::Fly, false)
            .boxed_unsync(),
    }
}

/// `len` bytes of a stored body from `start`.
async fn stored_body(
    job: &Job,
    found: &Found,
    start: u64,
    len: u64,
) -> Result<ProxyBody, CacheError> {
    let total = found.meta().body_len;
    Ok(match found {
        Found::Memory(obj) => {
            let end = usize::try_from(start + len)
                .unwrap_or(usize::MAX)
                .min(obj.body.len());
            let begin = usize::try_from(start).unwrap_or(0).min(end);
            body::full(obj.body.slice(begin..end))
        }
        Found::Disk { .. } if total <= SMALL_DISK_OBJECT => {
            let data = job.store().read_disk(found).await?;
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
        Found::Disk { .. } => {
            let reader = job.store().open_disk(found).await?;
            // Small objects need a small buffer: this is allocated per disk hit.
            let cap = usize::try_from(start + len)
                .unwrap_or(usize::MAX)
                .clamp(1, 64 * 1024);
            DiskBody {
                reader: Some(reader),
                skip: start,
                remaining: len,
                verify: start == 0 && len == total,
                buf: vec![0; cap],
            }
            .boxed_unsync()
        }
    })
}

/// Streams a disk object; a full read is verified against its integrity hash at the end, and a
/// mismatch aborts the response instead of ending it cleanly.
struct DiskBody {
    reader: Option<cache::DiskReader>,
    skip: u64,
    remaining: u64,
    verify: bool,
    buf: Vec<u8>,
}

impl Body for DiskBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.remaining == 0 {
                if let Some(reader) = this.reader.take()
                    && this.verify
                {
                    // Read to the end of the content so that the hash covers all of it.
                    let mut tail = [0u8; 1];
                    let mut rb = ReadBuf::new(&mut tail);
                    let mut reader = reader;
                    match Pin::new(&mut reader).poll_read(cx, &mut rb) {
                        Poll::Pending => {
                            this.reader = Some(reader);
                            return Poll::Pending;
                        }
                        Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                            if let Err(e) = reader.check() {
                                return Poll::Ready(Some(Err(Box::new(e))));
                            }
                        }
                        Poll::Ready(Ok(())) => {
                            return Poll::Ready(Some(Err(
                                "stored body is longer than recorded".into()
                            )));
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(Box::new(e)))),
                    }
                }
                return Poll::Ready(None);
            }
            let Some(reader) = this.reader.as_mut() else {
                return Poll::Ready(None);
            };
            let want = usize::try_from(this.skip + this.remaining)
                .unwrap_or(usize::MAX)
                .min(this.buf.len());
            let mut rb = ReadBuf::new(&mut this.buf[..want]);
            ready!(Pin::new(reader).poll_read(cx, &mut rb))?;
            let filled = rb.filled();
            if filled.is_empty() {
                return Poll::Ready(Some(Err("stored body is shorter than recorded".into())));
            }
            let skip = usize::try_from(this.skip)
                .unwrap_or(usize::MAX)
                .min(filled.len());
            this.skip -= skip as u64;
            let data = &filled[skip..];
            if data.is_empty() {
                continue;
            }
            let take = data
                .len()
                .min(usize::try_from(this.remaining).unwrap_or(usize::MAX));
            this.remaining -= take as u64;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(&data[..take])))));
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

type PushFuture = Pin<Box<dyn Future<Output = (Fill, Result<(), CacheError>)> + Send>>;

/// Passes an origin body to the client while filling the store. The store only sees the object
/// if the body ends cleanly; an error or a client that goes away abandons the fill.
struct TeeBody {
    inner: ProxyBody,
    fill: Option<Fill>,
    leader: Option<Leader>,
    pending: Option<PushFuture>,
    held: Option<Bytes>,
}

impl TeeBody {
    /// The whole body went through: publish the object, then release the followers.
    fn finish_fill(&mut self, fill: Fill) {
        let leader = self.leader.take();
        tokio::spawn(async move {
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
        });
    }
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(fut) = this.pending.as_mut() {
                let (fill, result) = ready!(fut.as_mut().poll(cx));
                this.pending = None;
                match result {
                    // Some servers stop polling once the declared length is written, so a
                    // body that knows it is complete finishes the fill now, not on a final poll.
                    Ok(()) if this.inner.is_end_stream() => this.finish_fill(fill),
                    Ok(()) => this.fill = Some(fill),
                    Err(e) => {
                        tracing::debug!(error = %e, "not storing this response");
                        this.leader = None;
                    }
                }
                if let Some(data) = this.held.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let frame = match frame.into_data() {
                        Ok(data) => {
                            if let Some(mut fill) = this.fill.take() {
                                let chunk = data.clone();
                                this.pending = Some(Box::pin(async move {
                                    let r = fill.push(chunk).await;
                                    (fill, r)
                                }));
                                this.held = Some(data);
                                continue;
                            }
                            Frame::data(data)
                        }
                        Err(frame) => frame,
                    };
                    return Poll::Ready(Some(Ok(frame)));
                }
                Some(Err(e)) => {
                    this.fill = None;
                    this.leader = None;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    if let Some(fill) = this.fill.take() {
                        this.finish_fill(fill);
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // While a fill is open, the final poll (which returns None) must still happen: that is
        // where the fill is finished. Servers stop polling a body that says it has ended.
        self.fill.is_none()
            && self.held.is_none()
            && self.pending.is_none()
            && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        if let Some(h) = &self.held {
            let n = h.len() as u64;
            hint.set_lower(hint.lower() + n);
            if let Some(u) = hint.upper() {
                hint.set_upper(u + n);
            }
        }
        hint
    }
}
