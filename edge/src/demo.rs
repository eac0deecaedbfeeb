//! `edge demo`: a small built-in origin with realistic cache headers, a self-signed certificate
//! made at start, and an edge in front of both. Needs nothing outside this binary.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::body::{self, BoxError, ProxyBody};
use crate::error::Error;

const INDEX: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>edge demo</title>
<link rel="stylesheet" href="/static/app.css">
<link rel="icon" href="/img/logo.svg">
</head>
<body>
<header><img src="/img/logo.svg" alt="" width="48" height="48"><h1>edge demo</h1></header>
<p>This page came through the edge. Its assets have long cache lifetimes; the API does not.</p>
<p>Protocol of this page: <strong id="proto">?</strong></p>
<ul>
<li><a href="/api/time">/api/time</a> (no-store)</li>
<li><a href="/api/items">/api/items</a> (max-age=5, stale-while-revalidate=30)</li>
<li><a href="/large.bin">/large.bin</a> (64 MiB, streamed)</li>
</ul>
<img src="/img/pixel.png" alt="" width="1" height="1">
<script src="/static/vendor.js"></script>
<script src="/static/app.js"></script>
</body>
</html>
"#;

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;color:#222}\nheader{display:flex;gap:1rem;align-items:center}\n";
const JS: &str = "document.getElementById('proto').textContent = (performance.getEntriesByType('navigation')[0] || {}).nextHopProtocol || 'unknown';\n";
const SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 48"><circle cx="24" cy="24" r="20" fill="#2a6"/><path d="M14 24h20M24 14v20" stroke="#fff" stroke-width="4"/></svg>"##;
/// A 1x1 transparent PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];
/// A 60 KB script that compresses like a real bundle (the edge serves it as zstd/br/gzip).
fn vendor_js() -> String {
    let mut out = String::from("/* demo vendor bundle */\n");
    for i in 0..600 {
        out.push_str(&format!(
            "export function widget{i}(el, opts) {{ const state = {{ id: {i}, open: false, items: [] }}; \
             el.addEventListener('click', () => {{ state.open = !state.open; el.dataset.open = String(state.open); }}); \
             return state; }}\n"
        ));
    }
    out
}

const LARGE_BYTES: u64 = 64 * 1024 * 1024;
/// Fixed so validators stay stable across demo restarts.
const LAST_MODIFIED: &str = "Mon, 02 Nov 2026 10:00:00 GMT";

/// Starts the demo origin on `127.0.0.1:0` and returns its address.
pub async fn start_origin() -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|source| Error::Io {
            context: "binding the demo origin".into(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Io {
        context: "demo origin address".into(),
        source,
    })?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    Ok::<_, Infallible>(origin_response(req).await)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn origin_response(req: Request<Incoming>) -> Response<ProxyBody> {
    let path = req.uri().path().to_string();
    let (status, ctype, cache, body): (StatusCode, &str, &str, ProxyBody) =
        match (req.method(), path.as_str()) {
            (&Method::GET | &Method::HEAD, "/" | "/index.html") => (
                StatusCode::OK,
                "text/html; charset=utf-8",
                "public, max-age=60",
                body::full(INDEX),
            ),
            (&Method::GET | &Method::HEAD, "/static/app.css") => (
                StatusCode::OK,
                "text/css",
                "public, max-age=31536000, immutable",
                body::full(CSS),
            ),
            (&Method::GET | &Method::HEAD, "/static/app.js") => (
                StatusCode::OK,
                "text/javascript",
                "public, max-age=31536000, immutable",
                body::full(JS),
            ),
            (&Method::GET | &Method::HEAD, "/static/vendor.js") => (
                StatusCode::OK,
                "text/javascript",
                "public, max-age=31536000, immutable",
                body::full(vendor_js()),
            ),
            (&Method::GET | &Method::HEAD, "/img/logo.svg") => (
                StatusCode::OK,
                "image/svg+xml",
                "public, max-age=86400",
                body::full(SVG),
            ),
            (&Method::GET | &Method::HEAD, "/img/pixel.png") => (
                StatusCode::OK,
                "image/png",
                "public, max-age=86400",
                body::full(Bytes::from_static(PNG)),
            ),
            (&Method::GET | &Method::HEAD, "/api/time") => (
                StatusCode::OK,
                "application/json",
                "no-store",
                body::full(format!("{{\"unix_ms\":{}}}\n", unix_ms())),
            ),
            (&Method::GET | &Method::HEAD, "/api/items") => (
                StatusCode::OK,
                "application/json",
                "public, max-age=5, stale-while-revalidate=30, stale-if-error=300",
                body::full("[{\"id\":1,\"name\":\"apple\"},{\"id\":2,\"name\":\"pear\"}]\n"),
            ),
            (&Method::POST, "/api/echo") => {
                let upload = req.into_body().collect().await.map(|c| c.to_bytes());
                match upload {
                    Ok(bytes) => (
                        StatusCode::OK,
                        "application/octet-stream",
                        "no-store",
                        body::full(bytes),
                    ),
                    Err(_) => (
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        "no-store",
                        body::full("bad body\n"),
                    ),
                }
            }
            (&Method::GET | &Method::HEAD, "/large.bin") => (
                StatusCode::OK,
                "application/octet-stream",
                "public, max-age=3600",
                RepeatBody::new(LARGE_BYTES).boxed_unsync(),
            ),
            _ => (
                StatusCode::NOT_FOUND,
                "text/plain",
                "public, max-age=10",
                body::full("not found\n"),
            ),
        };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if status == StatusCode::OK && cache.starts_with("public") {
        h.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_static(LAST_MODIFIED),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("\"{:x}\"", fnv(path.as_bytes()))) {
            h.insert(header::ETAG, v);
        }
    }
    if let Some(n) = resp.body().size_hint().exact() {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    resp
}

fn unix_ms() -> u128 {
    u128::from(edge_core::clock::unix_ms())
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A large body made of one shared 64 KiB chunk: streams without allocating per chunk.
struct RepeatBody {
    chunk: Bytes,
    remaining: u64,
}

impl RepeatBody {
    fn new(len: u64) -> Self {
        let chunk: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
        RepeatBody {
            chunk: Bytes::from(chunk),
            remaining: len,
        }
    }
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len() as u64);
        self.remaining -= n;
        let data = self.chunk.slice(..n as usize);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

pub struct DemoFiles {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub cert: PathBuf,
}

/// Writes a self-signed certificate (localhost, 127.0.0.1, ::1) and an edge config that proxies
/// to the demo origin.
pub fn write_files(
    dir: &Path,
    origin: SocketAddr,
    https_port: u16,
    http_port: u16,
) -> Result<DemoFiles, Error> {
    let io = |context: &str| {
        let context = context.to_string();
        move |source| Error::Io { context, source }
    };
    std::fs::create_dir_all(dir).map_err(io("creating the demo directory"))?;
    let ck = rcgen::generate_simple_self_signed(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])
    .map_err(|e| Error::Tls(format!("generating the demo certificate: {e}")))?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).map_err(io("writing the demo certificate"))?;
    std::fs::write(&key, ck.signing_key.serialize_pem()).map_err(io("writing the demo key"))?;
    let config = dir.join("edge.toml");
    let text = format!(
        r#"# Written by `edge demo`. Edit it while the demo runs: the edge reloads on change.
[node]
name = "demo-edge"

[listen]
https = ["127.0.0.1:{https_port}"]
http = ["127.0.0.1:{http_port}"]
admin = ["127.0.0.1:0"]     # GET /metrics
http3 = true

[tls]
cert = "cert.pem"
key = "key.pem"

[timeouts]
shutdown_grace = "5s"

[cache]
memory_bytes = "128MiB"
disk_dir = "cache"
disk_bytes = "1GiB"

[pools.demo-origin]
endpoints = ["{origin}"]

[[sites]]
name = "demo"
hosts = ["localhost", "127.0.0.1"]
# Plain HTTP proxies too, so HTTP/1.1-only tools can reach the demo.
plain_http = "proxy"

[[sites.routes]]
path_prefix = "/"
pool = "demo-origin"
"#
    );
    std::fs::write(&config, text).map_err(io("writing the demo config"))?;
    Ok(DemoFiles {
        dir: dir.to_path_buf(),
        config,
        cert,
    })
}

pub fn print_banner(files: &DemoFiles, origin: SocketAddr, bound: &crate::server::Bound) {
    let https = bound.https.first().map_or(0, |a| a.port());
    let http = bound.http.first().map_or(0, |a| a.port());
    let admin = bound
        .admin
        .first()
        .map_or_else(|| "-".to_string(), |a| a.to_string());
    let cert = files.cert.display();
    println!(
        r#"
edge demo is running
  edge (HTTP/1.1, HTTP/2, HTTP/3):  https://localhost:{https}/
  edge (plain HTTP):                http://localhost:{http}/
  demo origin (direct):             http://{origin}/
  certificate:                      {cert}
  config (edit it to reload):       {config}

Try:
  curl -v --cacert {cert} https://localhost:{https}/
  curl -v --http2 --cacert {cert} https://localhost:{https}/static/app.css
  curl -sv --compressed -o /dev/null --cacert {cert} https://localhost:{https}/static/vendor.js
  curl -s http://{admin}/metrics
  curl -s --cacert {cert} https://localhost:{https}/large.bin | wc -c
  curl -v http://localhost:{http}/api/items
  ../shared/tools/browser-h3-check https://localhost:{https}/ {cert}
  ../shared/tools/browser-h3-check --alt-svc https://localhost:{https}/ {cert}
Stop with Ctrl-C."#,
        config = files.config.display(),
    );
}
