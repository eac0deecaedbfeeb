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

mod bodies;
mod content;
mod routes;

use bodies::{ChannelBody, PatternBody, big};
use content::cacheable;
use routes::respond;

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
    /// Requests that carried `Early-Data: 1` (RFC 8470), per path.
    early: Mutex<HashMap<String, u64>>,
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
            rustls::crypto::aws_lc_rs::default_provider(),
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

    /// Requests for `path` that came with `Early-Data: 1`.
    pub fn early_data(&self, path: &str) -> u64 {
        self.stats
            .early
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
