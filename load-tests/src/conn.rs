//! One client connection per protocol, with the request loop's single operation: send a GET,
//! read the whole body, report status and bytes.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;

use crate::LoadError;
use crate::stats::ErrorKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    H1,
    H2,
    H3,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::H1 => "HTTP/1.1",
            Proto::H2 => "HTTP/2",
            Proto::H3 => "HTTP/3",
        }
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
    /// `None`: plain TCP (HTTP/1.1 only).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Sent on every request (e.g. `accept-encoding: br`).
    pub headers: http::HeaderMap,
}

/// Accepts any certificate: for local benchmarks against self-signed servers only.
#[derive(Debug)]
struct Insecure(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Insecure {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// TLS client config: trust `ca_pem` (certificate pinning for local certificates) or, with
/// `insecure`, anything.
pub fn tls_config(
    proto: Proto,
    ca_pem: Option<&std::path::Path>,
    insecure: bool,
) -> Result<Arc<rustls::ClientConfig>, LoadError> {
    // Browsers (Chrome, Firefox, Safari) offer AES-128-GCM first; rustls offers AES-256-GCM
    // first, whose SHA-384 key schedule costs a server more per handshake. Offer what
    // browsers do, so servers are measured on the handshakes they see.
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.sort_by_key(|s| {
        use rustls::CipherSuite as C;
        match s.suite() {
            C::TLS13_AES_128_GCM_SHA256 => 0,
            C::TLS13_AES_256_GCM_SHA384 => 1,
            C::TLS13_CHACHA20_POLY1305_SHA256 => 2,
            _ => 3,
        }
    });
    let provider = Arc::new(provider);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| LoadError::Tls(e.to_string()))?;
    let mut cfg = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Insecure(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(path) = ca_pem {
            use rustls::pki_types::pem::PemObject;
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| LoadError::Tls(format!("{}: {e}", path.display())))?;
            for c in certs {
                let c = c.map_err(|e| LoadError::Tls(format!("{}: {e}", path.display())))?;
                roots.add(c).map_err(|e| LoadError::Tls(e.to_string()))?;
            }
        }
        if roots.is_empty() {
            return Err(LoadError::Usage(
                "HTTPS needs --ca FILE (the server's certificate or CA) or --insecure".into(),
            ));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    cfg.alpn_protocols = match proto {
        Proto::H1 => vec![b"http/1.1".to_vec()],
        Proto::H2 => vec![b"h2".to_vec()],
        Proto::H3 => vec![b"h3".to_vec()],
    };
    Ok(Arc::new(cfg))
}

pub enum Conn {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
    H3 {
        send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
        _endpoint: quinn::Endpoint,
    },
}

impl Conn {
    pub async fn connect(proto: Proto, target: &Target) -> Result<Conn, ErrorKind> {
        let name = ServerName::try_from(target.host.clone()).map_err(|_| ErrorKind::Tls)?;
        match proto {
            Proto::H1 | Proto::H2 => {
                let tcp = TcpStream::connect(target.addr)
                    .await
                    .map_err(|_| ErrorKind::Connect)?;
                let _ = tcp.set_nodelay(true);
                match (&target.tls, proto) {
                    (None, Proto::H1) => {
                        let (send, conn) = http1::handshake(TokioIo::new(tcp))
                            .await
                            .map_err(|_| ErrorKind::Io)?;
                        tokio::spawn(conn);
                        Ok(Conn::H1(send))
                    }
                    (None, _) => Err(ErrorKind::Tls),
                    (Some(cfg), _) => {
                        let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                            .connect(name, tcp)
                            .await
                            .map_err(|_| ErrorKind::Tls)?;
                        if proto == Proto::H2 {
                            let (send, conn) =
                                http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                                    .await
                                    .map_err(|_| ErrorKind::Io)?;
                            tokio::spawn(conn);
                            Ok(Conn::H2(send))
                        } else {
                            let (send, conn) = http1::handshake(TokioIo::new(tls))
                                .await
                                .map_err(|_| ErrorKind::Io)?;
                            tokio::spawn(conn);
                            Ok(Conn::H1(send))
                        }
                    }
                }
            }
            Proto::H3 => {
                let cfg = target.tls.clone().ok_or(ErrorKind::Tls)?;
                let crypto = quinn::crypto::rustls::QuicClientConfig::try_from((*cfg).clone())
                    .map_err(|_| ErrorKind::Tls)?;
                let local: SocketAddr = if target.addr.is_ipv6() {
                    SocketAddr::from(([0u16; 8], 0))
                } else {
                    SocketAddr::from(([0u8; 4], 0))
                };
                let mut endpoint = quinn::Endpoint::client(local).map_err(|_| ErrorKind::Quic)?;
                endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
                let conn = endpoint
                    .connect(target.addr, &target.host)
                    .map_err(|_| ErrorKind::Quic)?
                    .await
                    .map_err(|_| ErrorKind::Quic)?;
                let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
                    .await
                    .map_err(|_| ErrorKind::Quic)?;
                tokio::spawn(async move {
                    let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
                });
                Ok(Conn::H3 {
                    send,
                    _endpoint: endpoint,
                })
            }
        }
    }

    /// A handle for another concurrent stream on the same connection (HTTP/2, HTTP/3).
    pub fn clone_stream(&self) -> Option<Conn> {
        match self {
            Conn::H1(_) => None,
            Conn::H2(s) => Some(Conn::H2(s.clone())),
            Conn::H3 { send, _endpoint } => Some(Conn::H3 {
                send: send.clone(),
                _endpoint: _endpoint.clone(),
            }),
        }
    }

    /// GET `path`, read the whole body. Returns the status and body bytes.
    pub async fn get(
        &mut self,
        target: &Target,
        path: &str,
    ) -> Result<(StatusCode, u64), ErrorKind> {
        match self {
            Conn::H1(send) => {
                let mut req = Request::get(path)
                    .header(http::header::HOST, &target.host)
                    .body(Empty::new())
                    .map_err(|_| ErrorKind::Io)?;
                req.headers_mut().extend(target.headers.clone());
                send.ready().await.map_err(|_| ErrorKind::Io)?;
                let resp = send.send_request(req).await.map_err(|_| ErrorKind::Io)?;
                read_hyper(resp).await
            }
            Conn::H2(send) => {
                let uri = format!("https://{}:{}{path}", target.host, target.addr.port());
                let mut req = Request::get(uri)
                    .version(Version::HTTP_2)
                    .body(Empty::new())
                    .map_err(|_| ErrorKind::Io)?;
                req.headers_mut().extend(target.headers.clone());
                send.ready().await.map_err(|_| ErrorKind::Io)?;
                let resp = send.send_request(req).await.map_err(|_| ErrorKind::Io)?;
                read_hyper(resp).await
            }
            Conn::H3 { send, .. } => {
                let uri = format!("https://{}:{}{path}", target.host, target.addr.port());
                let mut req = Request::get(uri).body(()).map_err(|_| ErrorKind::Io)?;
                req.headers_mut().extend(target.headers.clone());
                let mut stream = send.send_request(req).await.map_err(|_| ErrorKind::Quic)?;
                stream.finish().await.map_err(|_| ErrorKind::Quic)?;
                let resp = stream.recv_response().await.map_err(|_| ErrorKind::Quic)?;
                let mut n = 0u64;
                while let Some(mut chunk) = stream.recv_data().await.map_err(|_| ErrorKind::Quic)? {
                    n += chunk.remaining() as u64;
                    chunk.advance(chunk.remaining());
                }
                Ok((resp.status(), n))
            }
        }
    }
}

async fn read_hyper(
    resp: http::Response<hyper::body::Incoming>,
) -> Result<(StatusCode, u64), ErrorKind> {
    let status = resp.status();
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ErrorKind::Io)?;
        if let Some(d) = frame.data_ref() {
            n += d.len() as u64;
        }
    }
    Ok((status, n))
}
