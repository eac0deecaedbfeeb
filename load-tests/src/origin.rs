//! A minimal benchmark origin: `/obj/<name>?size=N` (or `/<N>k`) returns N bytes with
//! `Cache-Control: public, max-age=3600` (`&type=text`: compressible text/html instead of
//! binary; `&tag=T`: a `Surrogate-Key: T` header, for purge benchmarks; `&delay_ms=N`: answer
//! after N ms, uncacheable, for attacks that reset requests in flight). Anything else is 404.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::LoadError;

fn size_of(req: &Request<Incoming>) -> Option<usize> {
    let q = req.uri().query().unwrap_or("");
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "size")
        .and_then(|(_, v)| v.parse().ok())
}

fn param<'a>(req: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Text that compresses like HTML (about 4:1 with gzip), for compression benchmarks.
pub fn text_payload(len: usize) -> Bytes {
    const WORDS: [&str; 16] = [
        "edge", "cache", "origin", "shield", "<div>", "</div>", "purge", "stale", "fresh", "vary",
        "zstd", "brotli", "gzip", "header", "\n", "quic",
    ];
    let mut out = Vec::with_capacity(len + 16);
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
    out.into()
}

fn respond(req: &Request<Incoming>, payload: &Bytes, text: &Bytes) -> Response<Full<Bytes>> {
    let is_text = param(req, "type") == Some("text");
    let payload = if is_text { text } else { payload };
    let size = match (req.uri().path().starts_with("/obj/"), size_of(req)) {
        (true, Some(n)) => n.min(payload.len()),
        _ => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
            *r.status_mut() = StatusCode::NOT_FOUND;
            return r;
        }
    };
    let mut r = Response::new(Full::new(payload.slice(..size)));
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if param(req, "delay_ms").is_some() {
            "no-store"
        } else {
            "public, max-age=3600"
        }),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if is_text {
            "text/html; charset=utf-8"
        } else {
            "application/octet-stream"
        }),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Some(tag) = param(req, "tag").and_then(|t| HeaderValue::from_str(t).ok()) {
        h.insert("surrogate-key", tag);
    }
    r
}

/// Serves until the process ends. Prints `listening ADDR` once bound.
pub async fn serve(listen: SocketAddr, max_size: usize) -> Result<(), LoadError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| LoadError::Io {
            context: format!("binding {listen}"),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| LoadError::Io {
        context: "local address".into(),
        source,
    })?;
    println!("listening {addr}");
    let payload: Bytes = (0..max_size)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let text = text_payload(max_size);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let payload = payload.clone();
        let text = text.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let r = respond(&req, &payload, &text);
                let delay = param(&req, "delay_ms").and_then(|d| d.parse::<u64>().ok());
                // Reads a request body to its end before answering, as an application would:
                // answering first and closing with unread bytes makes the kernel send RST, which
                // can discard the response before the proxy reads it (a 502 that measures the
                // origin, not the proxy).
                async move {
                    let _ = req.into_body().collect().await;
                    if let Some(ms) = delay {
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    }
                    Ok::<_, Infallible>(r)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
