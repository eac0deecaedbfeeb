//! The request pipeline. One function per request whose phases read in order:
//! limits → route → policy → origin → response → log. Each request reads exactly one config
//! snapshot (`Runtime`), loaded once at its start; a reload never changes a request mid-flight.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use config::{PlainHttp, Site, Snapshot};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use origin_shield::{Affinity, OriginError, Pools};

use crate::body::{self, ProxyBody};
use crate::error::Error;
use crate::headers;
use crate::hygiene;
use crate::metrics::METRICS;

/// Everything a request needs from one config snapshot, swapped as a whole on reload.
pub struct Runtime {
    pub snapshot: Arc<Snapshot>,
    /// `Via` value this node adds to responses (`1.1 NODE`), built once per snapshot.
    pub via: String,
    pub pools: Pools,
}

impl Runtime {
    /// Builds the runtime for `snapshot`. Pools keep the previous snapshot's endpoint state
    /// and, when their connection settings did not change, its warm connections.
    pub fn new(snapshot: Arc<Snapshot>, previous: Option<&Runtime>) -> Runtime {
        Runtime {
            pools: {
                let pools = Pools::from_snapshot(&snapshot, previous.map(|p| &p.pools));
                pools.start_background();
                pools
            },
            via: format!("1.1 {}", snapshot.node_name),
            snapshot,
        }
    }
}

/// State shared by every connection of the process.
pub struct Shared {
    runtime: ArcSwap<Runtime>,
    pub cache: crate::cache_phase::CacheRuntime,
    pub config_path: PathBuf,
    /// The port of the first HTTPS listener as bound (config may say 0), for redirects.
    pub https_port: AtomicU16,
    id_base: u64,
    next_id: AtomicU64,
}

impl Shared {
    pub fn new(
        snapshot: Snapshot,
        config_path: PathBuf,
        cache: crate::cache_phase::CacheRuntime,
    ) -> Shared {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 40);
        Shared {
            runtime: ArcSwap::from_pointee(Runtime::new(Arc::new(snapshot), None)),
            cache,
            config_path,
            https_port: AtomicU16::new(443),
            id_base: seed,
            next_id: AtomicU64::new(0),
        }
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    pub fn swap(&self, snapshot: Snapshot) -> Arc<Runtime> {
        let next = Arc::new(Runtime::new(Arc::new(snapshot), Some(&self.runtime.load())));
        self.runtime.store(next.clone());
        next
    }

    fn next_request_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:016x}",
            self.id_base
                .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Quic,
}

/// What a request knows about the connection it came on.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
    pub transport: Transport,
    /// The `Alt-Svc` value this listener advertises on TCP responses (None: no HTTP/3 here).
    pub alt_svc: Option<HeaderValue>,
}

/// The per-request context, filled in as the phases run.
pub(crate) struct RequestCtx {
    pub id: String,
    start: Instant,
    method: Method,
    version: Version,
    path: String,
    site: Option<Arc<Site>>,
    pool: Option<String>,
    pub cache_status: Option<cache::status::CacheStatus>,
    /// What the compress phase needs from the request.
    compress: crate::compress::RequestFacts,
    /// The request already passed through this node (its name is in `Via`): never send it to
    /// a shield again.
    pub looped: bool,
    /// The visitor's scheme (ours, or a trusted peer's `X-Forwarded-Proto`).
    pub scheme: &'static str,
    /// The `Host` the origin receives and the cache key holds.
    pub host: String,
    /// A GET or HEAD that carries a body: passed through, never cached or collapsed.
    pub has_body: bool,
}

pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<ProxyBody>,
) -> Response<ProxyBody> {
    let rt = shared.runtime();
    let mut ctx = RequestCtx {
        id: shared.next_request_id(),
        start: Instant::now(),
        method: req.method().clone(),
        version: req.version(),
        path: req.uri().path().to_string(),
        site: None,
        pool: None,
        cache_status: None,
        compress: Default::default(),
        looped: false,
        scheme: "http",
        host: String::new(),
        has_body: false,
    };
    let mut resp = match proxy(&shared, &rt, &conn, &mut ctx, req).await {
        // Phase: compress.
        Ok(resp) => match &ctx.site {
            Some(site) => crate::compress::respond(&site.compression, &ctx.compress, resp),
            None => resp,
        },
        Err(e) => {
            let status = e.status(conn.tls);
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
    };
    finish_response(&rt, &conn, &ctx, &mut resp);
    METRICS.response(
        ctx.version,
        resp.status().as_u16(),
        ctx.cache_status.as_ref(),
    );
    tracing::info!(
        target: "access",
        request_id = %ctx.id,
        client = %conn.peer,
        proto = headers::via_protocol(ctx.version),
        method = %ctx.method,
        path = %ctx.path,
        site = ctx.site.as_ref().map_or("-", |s| s.name.as_str()),
        pool = ctx.pool.as_deref().unwrap_or("-"),
        status = resp.status().as_u16(),
        cache = ctx.cache_status.as_ref().map_or_else(String::new, |c| c.render("")),
        head_ms = ctx.start.elapsed().as_secs_f64() * 1000.0,
        config_version = rt.snapshot.version,
    );
    resp
}

async fn proxy(
    shared: &Arc<Shared>,
    rt: &Arc<Runtime>,
    conn: &ConnInfo,
    ctx: &mut RequestCtx,
    req: Request<ProxyBody>,
) -> Result<Response<ProxyBody>, Error> {
    let snap = &rt.snapshot;

    // Phase: limits that do not depend on the site.
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > snap.limits.max_uri_bytes as usize {
        return Err(Error::UriTooLong {
            len: uri_len,
            limit: snap.limits.max_uri_bytes,
        });
    }
    let header_len = headers::header_block_size(req.headers());
    if header_len > snap.limits.max_request_header_bytes as usize {
        return Err(Error::HeadersTooLarge {
            len: header_len,
            limit: snap.limits.max_request_header_bytes,
        });
    }

    // Phase: hygiene. One normalised host and path, used by everything after this.
    let trusted = snap.is_trusted(conn.peer.ip());
    let authority = hygiene::request_authority(req.version(), req.uri(), req.headers())
        .map_err(Error::BadRequest)?;
    let (host, _claimed_port) = hygiene::parse_host(authority).map_err(Error::BadRequest)?;
    let mut host = host.into_owned();
    let mut scheme = if conn.tls { "https" } else { "http" };
    let mut origin_host = None;
    if trusted {
        // Our own edge forwarding a visitor: key and forward with the visitor's scheme and
        // host, not the ones of the hop between us.
        if let Some(p) = req.headers().get(&headers::X_FORWARDED_PROTO) {
            match p.as_bytes() {
                b"https" => scheme = "https",
                b"http" => scheme = "http",
                _ => {}
            }
        }
        if let Some(h) = req.headers().get(&headers::X_FORWARDED_HOST)
            && let Ok(h) = h.to_str()
            && let Ok((name, port)) = hygiene::parse_host(h)
        {
            host = name.into_owned();
            origin_host = Some(match port {
                Some(p) => format!("{host}:{p}"),
                None => host.clone(),
            });
        }
        if let Some(id) = req.headers().get(&headers::X_REQUEST_ID)
            && let Ok(id) = id.to_str()
            && !id.is_empty()
            && id.len() <= 64
        {
            ctx.id = id.to_string();
        }
    }
    let origin_host =
        origin_host.unwrap_or_else(|| hygiene::origin_host(&host, conn.local.port(), scheme));
    let path = hygiene::normalize_path(req.uri().path()).map_err(Error::BadRequest)?;
    if path != req.uri().path() {
        ctx.path = path.to_string();
    }

    // Phase: route.
    let site = snap
        .site_for_host(&host)
        .ok_or_else(|| Error::UnknownHost(host.clone()))?
        .clone();
    ctx.site = Some(site.clone());

    // Phase: policy.
    if !conn.tls && site.plain_http == PlainHttp::Redirect {
        return Ok(redirect_to_https(
            &host,
            shared.https_port.load(Ordering::Relaxed),
            req.uri(),
        ));
    }
    let route = site.route(&ctx.path).ok_or(Error::NoRoute)?;
    ctx.pool = Some(route.pool.clone());
    let pool = rt
        .pools
        .get(&route.pool)
        .ok_or_else(|| Error::NoPool(route.pool.clone()))?;
    let max_body = site.max_request_body_bytes;
    if let Some(len) = hygiene::content_length(req.headers()).map_err(Error::BadRequest)?
        && len > max_body
    {
        return Err(Error::BodyTooLarge { limit: max_body });
    }

    ctx.compress = crate::compress::RequestFacts::new(req.method(), req.headers());
    // The loop marker is only believed from our own peers: anyone can write our name in Via.
    ctx.looped = trusted && headers::via_names(req.headers(), &snap.node_name);

    // Phase: origin request. The target is the normalised path; for what may be stored, the
    // query loses the parameters the key leaves out.
    let cacheable_method = matches!(*req.method(), Method::GET | Method::HEAD);
    let query = match req.uri().query() {
        Some(q) if site.cache.enabled && cacheable_method && !site.cache.forward_ignored_params => {
            if site.cache.key.ignore_query {
                None
            } else {
                hygiene::strip_params(q, &site.cache.key.ignore_params)
            }
        }
        Some(q) => Some(std::borrow::Cow::Borrowed(q)),
        None => None,
    };
    // Rebuilt only when normalising changed something: most targets are already clean.
    let target = if path != req.uri().path() || query.as_deref() != req.uri().query() {
        Some(hygiene::origin_form(&ctx.path, query.as_deref()).map_err(Error::BadRequest)?)
    } else {
        None
    };
    let (mut parts, body) = req.into_parts();
    if let Some(target) = target {
        parts.uri = target;
    }
    let client_upgrade = parts.extensions.remove::<OnUpgrade>();
    let upgrade_proto = parts.headers.get(header::UPGRADE).cloned();
    let wants_upgrade = headers::strip_hop_by_hop(&mut parts.headers);
    let upgrade = match (wants_upgrade, upgrade_proto, &client_upgrade) {
        (true, Some(proto), Some(_)) if parts.version == Version::HTTP_11 => {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, proto);
            true
        }
        _ => false,
    };
    if parts.version >= Version::HTTP_2 {
        headers::join_cookies(&mut parts.headers);
    }
    let via = format!(
        "{} {}",
        headers::via_protocol(parts.version),
        snap.node_name
    );
    let host_value =
        HeaderValue::from_str(&origin_host).map_err(|_| Error::BadRequest("invalid Host"))?;
    headers::rewrite_upstream(
        &mut parts.headers,
        &headers::Upstream {
            client_ip: conn.peer.ip(),
            trusted,
            scheme,
            host: &host_value,
            via: &via,
            request_id: &ctx.id,
            strip: &site.strip_request_headers,
        },
    );
    ctx.scheme = scheme;
    ctx.host = origin_host;

    // The body: cut off when too large or too slow, and settled for methods without body
    // semantics, whose body (if any) makes the request a pass.
    let mut body = body;
    if !body.is_end_stream() {
        if site.request_body_min_rate > 0 {
            body = body::MinRate::new(body, site.request_body_min_rate, site.request_body_grace)
                .boxed_unsync();
        }
        body = Limited::new(body, usize::try_from(max_body).unwrap_or(usize::MAX)).boxed_unsync();
    }
    if matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
    ) {
        let (settled, has_body) = body::settle(body, snap.timeouts.request_header)
            .await
            .map_err(|e| match e {
                body::Unsettled::Timeout => Error::RequestTimeout,
                body::Unsettled::Failed(e) => client_body_error(e, max_body),
            })?;
        body = settled;
        ctx.has_body = has_body;
    }

    // Phase: cache (WebSocket upgrades never touch it).
    if !upgrade && site.cache.enabled {
        return crate::cache_phase::handle(shared, rt, conn, ctx, &site, pool, parts, body).await;
    }
    if !upgrade {
        ctx.cache_status = Some(cache::status::CacheStatus {
            detail: Some("disabled"),
            ..cache::status::CacheStatus::fwd(cache::status::Fwd::Bypass)
        });
    }

    // Phase: origin.
    let affinity = Affinity {
        key: None,
        client_ip: Some(conn.peer.ip()),
    };
    let mut resp = send_to_origin(
        rt,
        pool,
        Request::from_parts(parts, body),
        max_body,
        affinity,
    )
    .await?;

    // Phase: response.
    if upgrade && resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let origin_upgrade = hyper::upgrade::on(&mut resp);
        if let Some(client_upgrade) = client_upgrade {
            tokio::spawn(tunnel(client_upgrade, origin_upgrade, ctx.id.clone()));
        }
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, body::empty()));
    }
    Ok(origin_response(resp, rt))
}

/// Sends a prepared request to one endpoint of `pool`.
pub(crate) async fn send_to_origin(
    rt: &Runtime,
    pool: &origin_shield::Pool,
    req: Request<ProxyBody>,
    max_body: u64,
    affinity: Affinity<'_>,
) -> Result<Response<hyper::body::Incoming>, Error> {
    pool.send(req, rt.snapshot.timeouts.origin_response_header, affinity)
        .await
        .map_err(|e| {
            if e.find_source::<LengthLimitError>().is_some() {
                Error::BodyTooLarge { limit: max_body }
            } else if e.find_source::<body::SlowBody>().is_some() {
                Error::RequestTimeout
            } else {
                Error::Origin(e)
            }
        })
}

/// A client body that failed before anything went to the origin.
fn client_body_error(e: body::BoxError, max_body: u64) -> Error {
    if e.downcast_ref::<LengthLimitError>().is_some() {
        Error::BodyTooLarge { limit: max_body }
    } else if e.downcast_ref::<body::SlowBody>().is_some() {
        Error::RequestTimeout
    } else {
        Error::BadRequest("the request body could not be read")
    }
}

/// An origin response on its way to the client: hop-by-hop headers gone, `via` added.
pub(crate) fn origin_response(
    resp: Response<hyper::body::Incoming>,
    rt: &Runtime,
) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    headers::drop_length_beside_transfer_encoding(&mut parts.headers);
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::append_list(&mut parts.headers, &header::VIA, &rt.via);
    Response::from_parts(
        parts,
        body::origin_incoming(body, rt.snapshot.timeouts.origin_body_idle),
    )
}

/// Bytes flow both ways after a `101 Switching Protocols` (WebSocket) until either side closes.
async fn tunnel(client: OnUpgrade, origin: OnUpgrade, id: String) {
    let (client, origin) = match tokio::try_join!(client, origin) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::info!(request_id = %id, error = %e, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut origin = TokioIo::new(origin);
    match tokio::io::copy_bidirectional(&mut client, &mut origin).await {
        Ok((up, down)) => tracing::debug!(request_id = %id, up, down, "tunnel closed"),
        Err(e) => tracing::debug!(request_id = %id, error = %e, "tunnel aborted"),
    }
}

fn redirect_to_https(host: &str, https_port: u16, uri: &http::Uri) -> Response<ProxyBody> {
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

fn finish_response(
    rt: &Runtime,
    conn: &ConnInfo,
    ctx: &RequestCtx,
    resp: &mut Response<ProxyBody>,
) {
    let h = resp.headers_mut();
    // Values that change with every response are marked "never index" so that HPACK and QPACK
    // send them as literals instead of churning the dynamic table on each response.
    if let Some(status) = &ctx.cache_status
        && let Ok(mut v) = HeaderValue::from_str(&status.render(&rt.snapshot.node_name))
    {
        v.set_sensitive(true);
        h.insert(crate::cache_phase::CACHE_STATUS.clone(), v);
    }
    if let Ok(mut v) = HeaderValue::from_str(&ctx.id) {
        v.set_sensitive(true);
        h.insert(&headers::X_REQUEST_ID, v);
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
            Error::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            // Over TLS the connection may have been reused for a name we do not serve
            // (RFC 9110 §15.5.20); over plain HTTP there is simply nothing here.
            Error::UnknownHost(_) if tls => StatusCode::MISDIRECTED_REQUEST,
            Error::UnknownHost(_) | Error::NoRoute => StatusCode::NOT_FOUND,
            Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
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
            Error::UnknownHost(_) => "this server does not serve that host",
            Error::NoRoute => "no route for this path",
            Error::BodyTooLarge { .. } => "the request body is too large",
            Error::RequestTimeout => "the request body arrived too slowly",
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
