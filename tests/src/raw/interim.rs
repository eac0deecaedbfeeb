//! Clients that show 1xx interim responses, which hyper's client hides: a raw HTTP/1.1 socket,
//! the `h2` crate (`poll_informational`) and the `h3` crate (a second `recv_response`). Each
//! calls `release` once the first interim response has arrived and only then reads on, so a
//! server that held interim responses back until the final one fails the exchange (nothing
//! arrives within [`TIMEOUT`]) instead of passing it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Buf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{RawResponse, TIMEOUT};
use crate::Target;
use crate::client::{Proto, connect_tls, tls_config};

/// The interim responses received, in order, then the final one.
#[derive(Debug)]
pub struct WithInterim {
    pub interim: Vec<RawResponse>,
    pub last: RawResponse,
}

/// GET `path` from `target` over `proto` (`Plain`: HTTP/1.1 without TLS; `H2`; `H3`).
pub async fn get_with_interim(
    proto: Proto,
    target: &Target,
    path: &str,
    release: impl FnOnce(),
) -> Result<WithInterim, String> {
    crate::init();
    let run = async {
        match proto {
            Proto::Plain => h1(target, path, release).await,
            Proto::H2 => h2(target, path, release).await,
            Proto::H3 => h3(target, path, release).await,
            Proto::H1 => Err("TLS HTTP/1.1 is not offered here; use Proto::Plain".into()),
        }
    };
    tokio::time::timeout(TIMEOUT, run)
        .await
        .map_err(|_| format!("no complete exchange within {TIMEOUT:?}"))?
}

fn fields(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_string(), v)
        })
        .collect()
}

/// One response head from `buf` if complete (its body empty), and the bytes it used.
fn parse_head(buf: &[u8]) -> Option<(RawResponse, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    let head = RawResponse {
        status,
        headers,
        body: Vec::new(),
    };
    Some((head, end))
}

async fn h1(target: &Target, path: &str, release: impl FnOnce()) -> Result<WithInterim, String> {
    h1_version(target.addr, &target.host, path, "HTTP/1.1", release).await
}

/// A raw HTTP/1.x exchange on a plain socket: `version` is "HTTP/1.1" or "HTTP/1.0".
pub async fn h1_version(
    addr: SocketAddr,
    host: &str,
    path: &str,
    version: &str,
    release: impl FnOnce(),
) -> Result<WithInterim, String> {
    let mut tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let req = format!("GET {path} {version}\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut interim = Vec::new();
    let mut release = Some(release);
    loop {
        while let Some((mut head, used)) = parse_head(&buf) {
            if !(100..200).contains(&head.status) {
                // The final head: read to the end of the connection (`Connection: close`).
                head.body = buf.split_off(used);
                tcp.read_to_end(&mut head.body)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(WithInterim {
                    interim,
                    last: head,
                });
            }
            buf.drain(..used);
            interim.push(head);
            if let Some(r) = release.take() {
                r();
            }
        }
        let mut chunk = [0u8; 8192];
        let n = tcp.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "connection closed before a final response: {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn h2(target: &Target, path: &str, release: impl FnOnce()) -> Result<WithInterim, String> {
    let tls = connect_tls(target, &[b"h2"]).await?;
    let (client, connection) = h2::client::handshake(tls)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let result = async {
        let uri = format!("https://{}:{}{path}", target.host, target.addr.port());
        let req = http::Request::get(uri)
            .body(())
            .map_err(|e| e.to_string())?;
        let mut client = client.ready().await.map_err(|e| e.to_string())?;
        let (mut response, _send) = client.send_request(req, true).map_err(|e| e.to_string())?;
        let mut interim = Vec::new();
        if let Some(first) = std::future::poll_fn(|cx| response.poll_informational(cx)).await {
            let first = first.map_err(|e| e.to_string())?;
            interim.push(RawResponse {
                status: first.status().as_u16(),
                headers: fields(first.headers()),
                body: Vec::new(),
            });
        }
        release();
        let response = response.await.map_err(|e| e.to_string())?;
        let (parts, mut recv) = response.into_parts();
        let mut body = Vec::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            let _ = recv.flow_control().release_capacity(chunk.len());
            body.extend_from_slice(&chunk);
        }
        let last = RawResponse {
            status: parts.status.as_u16(),
            headers: fields(&parts.headers),
            body,
        };
        Ok(WithInterim { interim, last })
    }
    .await;
    driver.abort();
    result
}

async fn h3(target: &Target, path: &str, release: impl FnOnce()) -> Result<WithInterim, String> {
    let mut tls = tls_config(target, &[b"h3"]);
    tls.enable_early_data = false;
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
    let local: SocketAddr = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    let mut endpoint = quinn::Endpoint::client(local).map_err(|e| format!("bind: {e}"))?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn = endpoint
        .connect(target.addr, &target.host)
        .map_err(|e| format!("QUIC connect: {e}"))?
        .await
        .map_err(|e| format!("QUIC handshake: {e}"))?;
    let (mut driver, mut send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .map_err(|e| format!("h3 setup: {e}"))?;
    let closer = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    let result = async {
        let uri = format!("https://{}:{}{path}", target.host, target.addr.port());
        let req = http::Request::get(uri)
            .body(())
            .map_err(|e| e.to_string())?;
        let mut stream = send.send_request(req).await.map_err(|e| e.to_string())?;
        stream.finish().await.map_err(|e| e.to_string())?;
        let mut interim = Vec::new();
        let mut release = Some(release);
        let last = loop {
            let resp = stream.recv_response().await.map_err(|e| e.to_string())?;
            let raw = RawResponse {
                status: resp.status().as_u16(),
                headers: fields(resp.headers()),
                body: Vec::new(),
            };
            if !resp.status().is_informational() {
                break raw;
            }
            interim.push(raw);
            if let Some(r) = release.take() {
                r();
            }
        };
        let mut last = last;
        while let Some(mut chunk) = stream.recv_data().await.map_err(|e| e.to_string())? {
            while chunk.has_remaining() {
                let c = chunk.chunk();
                last.body.extend_from_slice(c);
                let n = c.len();
                chunk.advance(n);
            }
        }
        Ok(WithInterim { interim, last })
    }
    .await;
    closer.abort();
    endpoint.close(0u32.into(), b"done");
    result
}
