//! An instrumented HTTP/1.1 origin on loopback: counts requests per path and connections, and
//! misbehaves on request (slow heads, bodies that die half-way, WebSocket echo).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::{Fnv, pattern_byte};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type OriginBody = UnsyncBoxBody<Bytes, BoxError>;

#[derive(Default)]
struct Stats {
    hits: Mutex<HashMap<String, u64>>,
    /// Requests in flight and the most ever in flight at once, per path.
    inflight: Mutex<HashMap<String, (u64, u64)>>,
    /// Requests that carried If-None-Match, per path.
    conditional: Mutex<HashMap<String, u64>>,
    connections: AtomicU64,
    /// When set, `/c/` answers with this status instead of content.
    failing: Mutex<Option<u16>>,
    /// The `Accept-Encoding` of the last request per path ("" when absent).
    accept_encoding: Mutex<HashMap<String, String>>,
    /// `/sse` sends its next event only when a permit is here.
    events: Gate,
    /// Body bytes sent by `/big/` (what a ranged cache costs the origin).
    big_bytes: AtomicU64,
    /// `/big/` answers with this ETag version (a changed object).
    big_version: AtomicU64,
}

struct Gate(tokio::sync::Semaphore);

impl Default for Gate {
    fn default() -> Self {
        Gate(tokio::sync::Semaphore::new(0))
    }
}

pub struct Origin {
    pub addr: SocketAddr,
    stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
    /// Every connection's task, so that `stop` can cut them all like a dying process would.
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Origin {
    pub async fn start() -> Origin {
        Self::start_with(None).await
    }

    /// A plain origin on `addr` (e.g. another loopback address with a chosen port).
    pub async fn start_on(addr: SocketAddr) -> Origin {
        let stats = Arc::new(Stats::default());
        let (addr, task, conns) = Self::spawn_at(addr, stats.clone(), None).await;
        Origin {
            addr,
            stats,
            task,
            conns,
        }
    }

    /// An origin serving HTTPS (HTTP/1.1 or HTTP/2 by ALPN) with `cert_pem`/`key_pem`.
    pub async fn start_tls(cert_pem: &Path, key_pem: &Path) -> Origin {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(cert_pem)
            .expect("cert file")
            .collect::<Result<Vec<_>, _>>()
            .expect("certs");
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key_pem).expect("key");
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self::start_with(Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Origin {
        let stats = Arc::new(Stats::default());
        let (addr, task, conns) =
            Self::spawn_at("127.0.0.1:0".parse().expect("addr"), stats.clone(), tls).await;
        Origin {
            addr,
            stats,
            task,
            conns,
        }
    }

    #[allow(clippy::type_complexity)]
    async fn spawn_at(
        at: SocketAddr,
        stats: Arc<Stats>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> (
        SocketAddr,
        tokio::task::JoinHandle<()>,
        Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    ) {
        let listener = TcpListener::bind(at).await.expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let s = stats.clone();
        let c = conns.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                s.connections.fetch_add(1, Ordering::Relaxed);
                let s = s.clone();
                let tls = tls.clone();
                let handle = tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let s = s.clone();
                        async move { Ok::<_, Infallible>(respond(req, s).await) }
                    });
                    match tls {
                        None => {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .with_upgrades()
                                .await;
                        }
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = hyper_util::server::conn::auto::Builder::new(
                                hyper_util::rt::TokioExecutor::new(),
                            )
                            .serve_connection(TokioIo::new(tls), svc)
                            .await;
                        }
                    }
                });
                c.lock().expect("lock").push(handle.abort_handle());
            }
        });
        (addr, task, conns)
    }

    /// Stops like a killed process: the listener closes (connections are refused) and every
    /// open connection is cut.
    pub fn stop(&self) {
        self.task.abort();
        for c in self.conns.lock().expect("lock").drain(..) {
            c.abort();
        }
    }

    /// Starts again on the same address, keeping the counters.
    pub async fn restart(&mut self) {
        self.stop();
        // The aborted accept loop releases the port once its task is dropped.
        for _ in 0..100 {
            if let Ok(l) = std::net::TcpListener::bind(self.addr) {
                drop(l);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (_, task, conns) = Self::spawn_at(self.addr, self.stats.clone(), None).await;
        self.task = task;
        self.conns = conns;
    }

    /// Requests seen for `path` (without query).
    /// Body bytes `/big/` has sent so far.
    pub fn big_bytes(&self) -> u64 {
        self.stats.big_bytes.load(Ordering::Relaxed)
    }

    /// Makes `/big/` objects a new version (another ETag).
    pub fn bump_big_version(&self) {
        self.stats.big_version.fetch_add(1, Ordering::Relaxed);
    }

    pub fn hits(&self, path: &str) -> u64 {
        self.stats
            .hits
            .lock()
            .expect("stats lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::Relaxed)
    }

    /// The most requests for `path` that were ever in flight together.
    pub fn max_concurrent(&self, path: &str) -> u64 {
        self.stats
            .inflight
            .lock()
            .expect("lock")
            .get(path)
            .map_or(0, |v| v.1)
    }

    /// Requests for `path` that were conditional (If-None-Match).
    pub fn conditional(&self, path: &str) -> u64 {
        self.stats
            .conditional
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// The `Accept-Encoding` the last request for `path` carried ("" when it had none).
    pub fn accept_encoding(&self, path: &str) -> Option<String> {
        self.stats
            .accept_encoding
            .lock()
            .expect("lock")
            .get(path)
            .cloned()
    }

    /// Lets `/sse` streams send `n` more events.
    pub fn release_events(&self, n: usize) {
        self.stats.events.0.add_permits(n);
    }

    /// Makes every `/c/` request fail with `status` (None: healthy again).
    pub fn set_failing(&self, status: Option<u16>) {
        *self.stats.failing.lock().expect("lock") = status;
    }
}

/// Decrements the in-flight count of a path when the response is done.
struct InFlight(Arc<Stats>, String);

impl InFlight {
    fn enter(stats: &Arc<Stats>, path: &str) -> InFlight {
        let mut m = stats.inflight.lock().expect("lock");
        let e = m.entry(path.to_string()).or_default();
        e.0 += 1;
        e.1 = e.1.max(e.0);
        InFlight(stats.clone(), path.to_string())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut m) = self.0.inflight.lock()
            && let Some(e) = m.get_mut(&self.1)
        {
            e.0 -= 1;
        }
    }
}

fn query_str<'a>(req: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// `/c/NAME?cc=..&etag=..&lm=SECS_AGO&expires=SECS&cdn=..&vary=..&len=N&delay_ms=..&status=..&sk=..&ctag=..`:
/// content whose cache headers the test chooses. The body names the version (the n-th request
/// for the path) unless `len` asks for N pattern bytes. A matching If-None-Match gets a 304
/// carrying `x-revalidated: n`.
///
/// Also: `cdn` is percent-decoded (`%20` space, `%2C` comma, `%26` `&`, `%22` quote), so any
/// field value can be sent; `expires_raw=V` sends `Expires: V` verbatim (percent-decoded);
/// `age=V` sends `Age: V` with each `_` written as `, ` (`age=7200_0` → `Age: 7200, 0`);
/// `echo=headers` makes the body list the request headers as the origin received them.
async fn cacheable(
    req: Request<Incoming>,
    stats: Arc<Stats>,
    path: String,
    n: u64,
) -> Response<OriginBody> {
    let _inflight = InFlight::enter(&stats, &path);
    // Only reads are slow: a write to the same URL (to invalidate it) answers at once.
    if let Some(ms) = query_str(&req, "delay_ms")
        .and_then(|v| v.parse().ok())
        .filter(|_| req.method().is_safe())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let failing = *stats.failing.lock().expect("lock");
    if let Some(code) = failing {
        let mut r = text(
            StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "origin failing\n",
        );
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return r;
    }
    let etag = query_str(&req, "etag").map(|e| format!("\"{e}\""));
    let mut headers = http::HeaderMap::new();
    let now = std::time::SystemTime::now();
    headers.insert(
        header::DATE,
        HeaderValue::from_str(&httpdate::fmt_http_date(now)).expect("date"),
    );
    if let Some(cc) = query_str(&req, "cc") {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_str(&cc.replace("%20", " ")).expect("cc"),
        );
    }
    if let Some(cdn) = query_str(&req, "cdn") {
        headers.insert(
            "cdn-cache-control",
            HeaderValue::from_str(&percent_decode(cdn)).expect("cdn"),
        );
    }
    if let Some(raw) = query_str(&req, "expires_raw") {
        headers.insert(
            header::EXPIRES,
            HeaderValue::from_str(&percent_decode(raw)).expect("expires_raw"),
        );
    }
    if let Some(age) = query_str(&req, "age") {
        headers.insert(
            header::AGE,
            HeaderValue::from_str(&age.replace('_', ", ")).expect("age"),
        );
    }
    if let Some(e) = &etag {
        headers.insert(header::ETAG, HeaderValue::from_str(e).expect("etag"));
    }
    if let Some(ago) = query_str(&req, "lm").and_then(|v| v.parse::<u64>().ok()) {
        let lm = now - Duration::from_secs(ago);
        headers.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(&httpdate::fmt_http_date(lm)).expect("lm"),
        );
    }
    if let Some(secs) = query_str(&req, "expires").and_then(|v| v.parse::<u64>().ok()) {
        let e = now + Duration::from_secs(secs);
        headers.insert(
            header::EXPIRES,
            HeaderValue::from_str(&httpdate::fmt_http_date(e)).expect("expires"),
        );
    }
    if let Some(v) = query_str(&req, "vary") {
        headers.insert(header::VARY, HeaderValue::from_str(v).expect("vary"));
    }
    // Surrogate keys: `sk=a%20b` (Fastly's Surrogate-Key), `ctag=a,b` (Cloudflare's Cache-Tag).
    if let Some(v) = query_str(&req, "sk") {
        headers.insert(
            "surrogate-key",
            HeaderValue::from_str(&percent_decode(v)).expect("sk"),
        );
    }
    if let Some(v) = query_str(&req, "ctag") {
        headers.insert(
            "cache-tag",
            HeaderValue::from_str(&percent_decode(v)).expect("ctag"),
        );
    }
    if let (Some(e), Some(inm)) = (&etag, req.headers().get(header::IF_NONE_MATCH)) {
        *stats
            .conditional
            .lock()
            .expect("lock")
            .entry(path.clone())
            .or_default() += 1;
        if inm.to_str().is_ok_and(|v| v.contains(e.as_str())) {
            let mut r = Response::new(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            *r.headers_mut() = headers;
            r.headers_mut()
                .insert("x-revalidated", HeaderValue::from(n));
            return r;
        }
    }
    let status = query_str(&req, "status")
        .and_then(|v| v.parse().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::OK);
    let drip = query_str(&req, "drip_ms").and_then(|v| v.parse::<u64>().ok());
    let encoded = query_str(&req, "ce").map(str::to_string);
    let mut r = match query_str(&req, "len").and_then(|v| v.parse::<u64>().ok()) {
        Some(len) if query_str(&req, "text").is_some() || encoded.is_some() => {
            let mut body = text_body(&path, n, len as usize);
            if let Some(coding) = &encoded {
                body = encode(coding, &body).await;
                headers.insert(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_str(coding).expect("coding"),
                );
            }
            let mut r = Response::new(
                http_body_util::Full::new(Bytes::from(body))
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        Some(len) if drip.is_some() => {
            // `len` pattern bytes in 64 KiB chunks, one every `drip_ms`.
            let ms = drip.unwrap_or(0);
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(async move {
                let mut pos = 0u64;
                while pos < len {
                    let end = (pos + 65536).min(len);
                    let chunk: Vec<u8> = (pos..end).map(pattern_byte).collect();
                    if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                        return;
                    }
                    pos = end;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            });
            let mut r = Response::new(ChannelBody { rx }.boxed_unsync());
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            r
        }
        Some(len) => {
            let mut r = Response::new(PatternBody { pos: 0, len }.boxed_unsync());
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            r
        }
        None => {
            let lang = req
                .headers()
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string();
            // `echo=ae`: the body also names the Accept-Encoding it was made for.
            let ae = match query_str(&req, "echo") {
                Some("ae") => format!(
                    " ae={}",
                    req.headers()
                        .get(header::ACCEPT_ENCODING)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                ),
                // `echo=headers`: the body also lists the request's headers, one a line.
                Some("headers") => {
                    let mut out = String::from("\n");
                    for (name, value) in req.headers() {
                        out.push_str(&format!(
                            "{}: {}\n",
                            name,
                            value.to_str().unwrap_or("<binary>")
                        ));
                    }
                    out
                }
                _ => String::new(),
            };
            text(status, format!("{path} v{n} lang={lang}{ae}\n"))
        }
    };
    *r.status_mut() = status;
    for (k, v) in &headers {
        r.headers_mut().insert(k, v.clone());
    }
    if let Some(ct) = query_str(&req, "ct") {
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&ct.replace("%2B", "+")).expect("ct"),
        );
    }
    r
}

/// `len` bytes of text naming the path and version first, then words from a small vocabulary
/// in a deterministic order: compressible like real HTML, not trivially so.
pub fn text_body(path: &str, version: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "edge", "cache", "origin", "shield", "<div>", "</div>", "purge", "stale", "fresh", "vary",
        "zstd", "brotli", "gzip", "header", "\n", "quic",
    ];
    let mut out = format!("{path} v{version}\n").into_bytes();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % 16) as usize].as_bytes());
        out.push(b' ');
        if x.is_multiple_of(97) {
            out.extend_from_slice(format!("{}", x % 100_000).as_bytes());
        }
    }
    out.truncate(len);
    out
}

/// Compresses `data` with a coding named as in `Content-Encoding`.
pub async fn encode(coding: &str, data: &[u8]) -> Vec<u8> {
    use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder};
    let mut out = Vec::new();
    let r = match coding {
        "gzip" => GzipEncoder::new(data).read_to_end(&mut out).await,
        "br" => BrotliEncoder::new(data).read_to_end(&mut out).await,
        "zstd" => ZstdEncoder::new(data).read_to_end(&mut out).await,
        other => panic!("unknown coding {other}"),
    };
    r.expect("encode");
    out
}

/// Decodes a body in a coding named as in `Content-Encoding`; an error for a broken stream.
pub async fn decode(coding: &str, data: &[u8]) -> Result<Vec<u8>, String> {
    use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
    let mut out = Vec::new();
    let r = match coding {
        "gzip" => GzipDecoder::new(data).read_to_end(&mut out).await,
        "br" => BrotliDecoder::new(data).read_to_end(&mut out).await,
        "zstd" => ZstdDecoder::new(data).read_to_end(&mut out).await,
        other => return Err(format!("unknown coding {other}")),
    };
    r.map_err(|e| format!("{coding} decode: {e}"))?;
    Ok(out)
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An address where nothing listens (connection refused).
pub async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a
}

/// `%XX` escapes decoded (case-insensitive hex); anything else, a broken escape included, is kept.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_num(req: &Request<Incoming>, key: &str, default: u64) -> u64 {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(default)
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<OriginBody> {
    let body: Bytes = body.into();
    let mut r = Response::new(
        http_body_util::Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

async fn respond(mut req: Request<Incoming>, stats: Arc<Stats>) -> Response<OriginBody> {
    let path = req.uri().path().to_string();
    let n = {
        let mut hits = stats.hits.lock().expect("stats lock");
        let e = hits.entry(path.clone()).or_default();
        *e += 1;
        *e
    };
    let ae = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    stats
        .accept_encoding
        .lock()
        .expect("lock")
        .insert(path.clone(), ae);
    if path == "/sse" {
        // `n` events of an event stream, each sent only once the test releases it.
        let n = query_num(&req, "n", 3);
        let (tx, rx) = mpsc::channel(1);
        let stats = stats.clone();
        tokio::spawn(async move {
            for i in 0..n {
                let event = format!("id: {i}\ndata: event number {i}\n\n");
                if tx.send(Ok(Bytes::from(event))).await.is_err() {
                    return;
                }
                if i + 1 < n {
                    match stats.events.0.acquire().await {
                        Ok(permit) => permit.forget(),
                        Err(_) => return,
                    }
                }
            }
        });
        let mut r = Response::new(ChannelBody { rx }.boxed_unsync());
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return r;
    }
    if path.starts_with("/c/") {
        return cacheable(req, stats, path, n).await;
    }
    if path == "/health" {
        return text(StatusCode::OK, "ok\n");
    }
    if path == "/close" {
        // Answers, then closes the connection (as an origin shedding keep-alive would).
        let mut r = text(StatusCode::OK, "closing\n");
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }

    if let Some(n) = path.strip_prefix("/big/") {
        return big(&req, &stats, n.parse().unwrap_or(0));
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let len: u64 = n.parse().unwrap_or(0);
        let mut r = Response::new(PatternBody { pos: 0, len }.boxed_unsync());
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        return r;
    }
    match path.as_str() {
        "/upload" => {
            let mut body = req.into_body();
            let mut hash = Fnv::default();
            let mut len = 0u64;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => {
                        if let Some(d) = f.data_ref() {
                            hash.update(d);
                            len += d.len() as u64;
                        }
                    }
                    Err(e) => return text(StatusCode::BAD_REQUEST, format!("body error: {e}")),
                }
            }
            text(StatusCode::OK, format!("len={len} fnv={:016x}", hash.0))
        }
        "/headers" => {
            let mut out = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
            for (name, value) in req.headers() {
                out.push_str(&format!(
                    "{}: {}\n",
                    name,
                    value.to_str().unwrap_or("<binary>")
                ));
            }
            let mut r = text(StatusCode::OK, out);
            // Hop-by-hop headers the edge must strip on the way back.
            r.headers_mut().insert(
                header::CONNECTION,
                HeaderValue::from_static("x-origin-private"),
            );
            r.headers_mut()
                .insert("x-origin-private", HeaderValue::from_static("secret"));
            r.headers_mut()
                .insert("keep-alive", HeaderValue::from_static("timeout=5"));
            r
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(query_num(&req, "ms", 5000))).await;
            text(StatusCode::OK, "slow")
        }
        "/die" => {
            // Promise 1 MiB, send 64 KiB, then fail: the edge must abort, not end cleanly.
            let (tx, rx) = mpsc::channel(2);
            tokio::spawn(async move {
                let _ = tx.send(Ok(Bytes::from(vec![b'x'; 64 * 1024]))).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = tx.send(Err("origin died".into())).await;
            });
            let mut r = Response::new(ChannelBody { rx }.boxed_unsync());
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(1024 * 1024u64));
            r
        }
        "/drip" => {
            // `chunks` × 64 KiB, one every `ms`: a long download for reload and drain tests.
            let chunks = query_num(&req, "chunks", 20);
            let ms = query_num(&req, "ms", 100);
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(async move {
                for i in 0..chunks {
                    let chunk: Vec<u8> = (i * 65536..(i + 1) * 65536).map(pattern_byte).collect();
                    if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            });
            let mut r = Response::new(ChannelBody { rx }.boxed_unsync());
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(chunks * 65536));
            r
        }
        "/ws" => {
            let is_ws = req
                .headers()
                .get(header::UPGRADE)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
            if !is_ws {
                return text(StatusCode::BAD_REQUEST, "expected a websocket upgrade");
            }
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = upgrade.await else { return };
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 4096];
                // Echo, prefixed so the test knows the origin (not the edge) answered.
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let mut out = b"echo:".to_vec();
                    out.extend_from_slice(&buf[..n]);
                    if io.write_all(&out).await.is_err() {
                        break;
                    }
                }
            });
            let mut r = Response::new(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut()
                .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            r
        }
        _ => text(StatusCode::OK, format!("ok {path}")),
    }
}

struct PatternBody {
    pos: u64,
    len: u64,
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.pos >= self.len {
            return Poll::Ready(None);
        }
        let end = (self.pos + 64 * 1024).min(self.len);
        let chunk: Vec<u8> = (self.pos..end).map(pattern_byte).collect();
        self.pos = end;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.pos)
    }
}

struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, BoxError>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

/// `/big/N`: N pattern bytes (generated, never stored; N may be 10 GiB), cacheable for a
/// minute, with an ETag and single byte ranges (`Range: bytes=A-B`, `A-`, `-N`), counting
/// the body bytes it sends.
fn big(req: &Request<Incoming>, stats: &Arc<Stats>, len: u64) -> Response<OriginBody> {
    let version = stats.big_version.load(Ordering::Relaxed);
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .filter(|v| !v.contains(','))
        .and_then(|v| {
            let (a, b) = v.split_once('-')?;
            match (a.trim(), b.trim()) {
                ("", n) => {
                    let n: u64 = n.parse().ok()?;
                    Some((len.saturating_sub(n), len.checked_sub(1)?))
                }
                (a, "") => Some((a.parse().ok()?, len.checked_sub(1)?)),
                (a, b) => Some((
                    a.parse().ok()?,
                    b.parse::<u64>().ok()?.min(len.checked_sub(1)?),
                )),
            }
        })
        .filter(|(a, b)| a <= b && *a < len);
    let (start, end, status) = match range {
        Some((a, b)) => (a, b + 1, StatusCode::PARTIAL_CONTENT),
        None => (0, len, StatusCode::OK),
    };
    let counted = CountedPattern {
        inner: PatternBody {
            pos: start,
            len: end,
        },
        stats: stats.clone(),
    };
    let mut r = Response::new(counted.boxed_unsync());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"big-{len}-v{version}\"")).expect("etag"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)).expect("range"),
        );
    }
    r
}

/// A pattern body that counts what it sends.
struct CountedPattern {
    inner: PatternBody,
    stats: Arc<Stats>,
}

impl Body for CountedPattern {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &polled
            && let Some(d) = f.data_ref()
        {
            self.stats
                .big_bytes
                .fetch_add(d.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
