//! Real clients: hyper over TCP (+ tokio-rustls) for HTTP/1.1 and HTTP/2, h3 over quinn for
//! HTTP/3. Bodies are hashed as they stream, so 100 MiB responses are never held whole.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::Fnv;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1 over TLS.
    H1,
    /// HTTP/2 over TLS.
    H2,
    /// HTTP/3 over QUIC.
    H3,
    /// HTTP/1.1 over plain TCP.
    Plain,
}

pub const TLS_PROTOS: [Proto; 3] = [Proto::H1, Proto::H2, Proto::H3];

#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// SNI and authority host.
    pub host: String,
    pub roots: Arc<rustls::RootCertStore>,
}

/// Bodies larger than this are hashed, not kept.
const KEEP: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    /// The first `KEEP` bytes of the body.
    pub body: Bytes,
    pub len: u64,
    pub hash: Fnv,
    /// Set when the body did not end cleanly (reset stream, closed connection).
    pub error: Option<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

enum Inner {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
    H3 {
        send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
        conn: quinn::Connection,
        _endpoint: quinn::Endpoint,
    },
}

pub struct Conn {
    proto: Proto,
    target: Target,
    inner: Inner,
    /// DER of the certificate the server presented (TLS only).
    pub peer_cert: Option<Vec<u8>>,
}

/// A TLS connection to `target` (SNI `target.host`, trusting `target.roots`) offering `alpn`.
pub(crate) async fn connect_tls(
    target: &Target,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let name = ServerName::try_from(target.host.clone()).map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(target, alpn)));
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))
}

pub(crate) fn tls_config(target: &Target, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(target.roots.clone())
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg
}

impl Conn {
    pub async fn connect(proto: Proto, target: &Target) -> Result<Conn, String> {
        crate::init();
        let (inner, peer_cert) = match proto {
            Proto::Plain => {
                let tcp = TcpStream::connect(target.addr)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                let (send, conn) = http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn.with_upgrades());
                (Inner::H1(send), None)
            }
            Proto::H1 | Proto::H2 => {
                let alpn: &[&[u8]] = if proto == Proto::H2 {
                    &[b"h2"]
                } else {
                    &[b"http/1.1"]
                };
                let tls = connect_tls(target, alpn).await?;
                let cert = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.to_vec());
                let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                let io = TokioIo::new(tls);
                if proto == Proto::H2 {
                    if negotiated.as_deref() != Some(b"h2") {
                        return Err(format!("ALPN did not pick h2: {negotiated:?}"));
                    }
                    let (send, conn) = http2::handshake(TokioExecutor::new(), io)
                        .await
                        .map_err(|e| e.to_string())?;
                    tokio::spawn(conn);
                    (Inner::H2(send), cert)
                } else {
                    let (send, conn) = http1::handshake(io).await.map_err(|e| e.to_string())?;
                    tokio::spawn(conn.with_upgrades());
                    (Inner::H1(send), cert)
                }
            }
            Proto::H3 => {
                let mut tls = tls_config(target, &[b"h3"]);
                tls.enable_early_data = true;
                let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
                    .map_err(|e| e.to_string())?;
                let local: SocketAddr = if target.addr.is_ipv6() {
                    "[::1]:0"
                } else {
                    "127.0.0.1:0"
                }
                .parse()
                .expect("addr");
                let mut endpoint =
                    quinn::Endpoint::client(local).map_err(|e| format!("QUIC client bind: {e}"))?;
                endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
                let conn = endpoint
                    .connect(target.addr, &target.host)
                    .map_err(|e| format!("QUIC connect: {e}"))?
                    .await
                    .map_err(|e| format!("QUIC handshake: {e}"))?;
                let cert = conn
                    .peer_identity()
                    .and_then(|id| {
                        id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                            .ok()
                    })
                    .and_then(|certs| certs.first().map(|c| c.to_vec()));
                let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
                    .await
                    .map_err(|e| format!("h3 setup: {e}"))?;
                tokio::spawn(async move {
                    let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
                });
                (
                    Inner::H3 {
                        send,
                        conn,
                        _endpoint: endpoint,
                    },
                    cert,
                )
            }
        };
        Ok(Conn {
            proto,
            target: target.clone(),
            inner,
            peer_cert,
        })
    }

    /// For HTTP/3: the h3 request sender, for tests that drive streams themselves (read a
    /// response slowly, or not at all).
    pub fn h3_sender(&self) -> Option<h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>> {
        match &self.inner {
            Inner::H3 { send, .. } => Some(send.clone()),
            _ => None,
        }
    }

    /// For HTTP/2: the hyper request sender, for tests that read a response slowly or not at all.
    pub fn h2_sender(&self) -> Option<http2::SendRequest<Full<Bytes>>> {
        match &self.inner {
            Inner::H2(send) => Some(send.clone()),
            _ => None,
        }
    }

    /// For HTTP/3: the QUIC connection, to check it survives events such as a reload.
    pub fn quic(&self) -> Option<&quinn::Connection> {
        match &self.inner {
            Inner::H3 { conn, .. } => Some(conn),
            _ => None,
        }
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, String> {
        // A `host` header overrides the Host / :authority (SNI stays the target's name).
        let host_override = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.to_string());
        let authority = host_override
            .clone()
            .unwrap_or_else(|| format!("{}:{}", self.target.host, self.target.addr.port()));
        let mut b = Request::builder().method(method);
        b = match self.proto {
            Proto::H1 | Proto::Plain => b.uri(path).header(
                "host",
                host_override.as_deref().unwrap_or(&self.target.host),
            ),
            Proto::H2 | Proto::H3 => {
                b.uri(format!("https://{authority}{path}"))
                    .version(if self.proto == Proto::H2 {
                        Version::HTTP_2
                    } else {
                        Version::HTTP_3
                    })
            }
        };
        for (k, v) in headers {
            if !k.eq_ignore_ascii_case("host") {
                b = b.header(*k, *v);
            }
        }
        match &mut self.inner {
            Inner::H1(send) => {
                let req = b.body(Full::new(body)).map_err(|e| e.to_string())?;
                send.ready().await.map_err(|e| e.to_string())?;
                let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
                Ok(read_hyper(resp).await)
            }
            Inner::H2(send) => {
                let req = b.body(Full::new(body)).map_err(|e| e.to_string())?;
                send.ready().await.map_err(|e| e.to_string())?;
                let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
                Ok(read_hyper(resp).await)
            }
            Inner::H3 { send, .. } => {
                if !body.is_empty() {
                    b = b.header("content-length", body.len());
                }
                let req = b.body(()).map_err(|e| e.to_string())?;
                let mut stream = send
                    .send_request(req)
                    .await
                    .map_err(|e| format!("h3 send_request: {e}"))?;
                let mut off = 0;
                while off < body.len() {
                    let end = (off + 256 * 1024).min(body.len());
                    stream
                        .send_data(body.slice(off..end))
                        .await
                        .map_err(|e| format!("h3 send_data: {e}"))?;
                    off = end;
                }
                // A server that has answered already may stop reading the request stream
                // (STOP_SENDING with H3_NO_ERROR, RFC 9114 §4.1): finishing then fails, but
                // the response is there to read.
                let finished = stream.finish().await;
                let resp = stream.recv_response().await.map_err(|e| match &finished {
                    Err(f) => format!("h3 finish: {f}; recv_response: {e}"),
                    Ok(()) => format!("h3 recv_response: {e}"),
                })?;
                let mut reply = Reply {
                    status: resp.status(),
                    version: resp.version(),
                    headers: resp.headers().clone(),
                    body: Bytes::new(),
                    len: 0,
                    hash: Fnv::default(),
                    error: None,
                };
                let mut kept = Vec::new();
                loop {
                    match stream.recv_data().await {
                        Ok(Some(mut chunk)) => {
                            let data = chunk.copy_to_bytes(chunk.remaining());
                            absorb(&mut reply, &mut kept, &data);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            reply.error = Some(e.to_string());
                            break;
                        }
                    }
                }
                reply.body = Bytes::from(kept);
                Ok(reply)
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> Result<Reply, String> {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }
}

fn absorb(reply: &mut Reply, kept: &mut Vec<u8>, data: &[u8]) {
    reply.hash.update(data);
    reply.len += data.len() as u64;
    if kept.len() < KEEP {
        let room = KEEP - kept.len();
        kept.extend_from_slice(&data[..data.len().min(room)]);
    }
}

async fn read_hyper(resp: http::Response<hyper::body::Incoming>) -> Reply {
    let (parts, mut body) = resp.into_parts();
    let mut reply = Reply {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body: Bytes::new(),
        len: 0,
        hash: Fnv::default(),
        error: None,
    };
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    absorb(&mut reply, &mut kept, d);
                }
            }
            Err(e) => {
                reply.error = Some(e.to_string());
                break;
            }
        }
    }
    reply.body = Bytes::from(kept);
    reply
}

/// One request on a fresh connection.
pub async fn request(
    proto: Proto,
    target: &Target,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Reply, String> {
    Conn::connect(proto, target)
        .await?
        .send(method, path, headers, body)
        .await
}

pub async fn get(proto: Proto, target: &Target, path: &str) -> Result<Reply, String> {
    request(proto, target, Method::GET, path, &[], Bytes::new()).await
}
