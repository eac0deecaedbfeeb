//! Connections to origins: TCP (with a connect timeout), then TLS when the pool asks for it,
//! verifying the certificate against the pool's CA file or the built-in web roots, with the
//! pool's SNI name. ALPN tells the client whether it got HTTP/2.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::BoxError;

#[derive(Clone)]
pub struct OriginConnector {
    http: HttpConnector,
    tls: Option<TlsSide>,
    /// Connections opened (attempts), for the connection-reuse metric.
    pub opened: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Clone)]
struct TlsSide {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
    handshake_timeout: Duration,
}

/// Why a TLS connection to an origin failed (wrapped into a connect error by the client).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS handshake with {host} failed: {source}")]
    Handshake {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("TLS handshake with {host} took longer than {after:?}")]
    Timeout { host: String, after: Duration },
    #[error("no TLS server name for {0}")]
    Name(String),
}

impl OriginConnector {
    pub fn new(
        connect_timeout: Duration,
        transport: &config::OriginTransport,
        handshake_timeout: Duration,
    ) -> OriginConnector {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        // The scheme says whether we add TLS; the TCP part is the same.
        http.enforce_http(false);
        let tls = transport.tls.as_ref().map(|t| {
            let mut roots = rustls::RootCertStore::empty();
            if t.ca.is_empty() {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            } else {
                for c in &t.ca {
                    // Unusable certificates in the file were reported by config validation.
                    let _ = roots.add(c.clone());
                }
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth())
                .unwrap_or_else(|_| {
                    rustls::ClientConfig::builder()
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth()
                });
            cfg.alpn_protocols = match transport.protocol {
                config::OriginProtocol::H2 => vec![b"h2".to_vec()],
                config::OriginProtocol::Http1 => vec![b"http/1.1".to_vec()],
            };
            TlsSide {
                connector: TlsConnector::from(Arc::new(cfg)),
                server_name: t
                    .server_name
                    .as_ref()
                    .and_then(|n| ServerName::try_from(n.clone()).ok()),
                handshake_timeout,
            }
        });
        OriginConnector {
            http,
            tls,
            opened: Arc::default(),
        }
    }
}

impl tower_service::Service<Uri> for OriginConnector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower_service::Service::<Uri>::poll_ready(&mut self.http, cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut http = self.http.clone();
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .unwrap_or("")
                .trim_matches(['[', ']'])
                .to_string();
            let tcp = tower_service::Service::<Uri>::call(&mut http, uri).await?;
            let Some(tls) = tls else {
                return Ok(Stream::new(Io::Plain(tcp)));
            };
            let name = match tls.server_name {
                Some(n) => n,
                None => {
                    ServerName::try_from(host.clone()).map_err(|_| TlsError::Name(host.clone()))?
                }
            };
            let handshake = tls.connector.connect(name, tcp.into_inner());
            match tokio::time::timeout(tls.handshake_timeout, handshake).await {
                Ok(Ok(s)) => Ok(Stream::new(Io::Tls(Box::new(TokioIo::new(s))))),
                Ok(Err(source)) => Err(TlsError::Handshake { host, source }.into()),
                Err(_) => Err(TlsError::Timeout {
                    host,
                    after: tls.handshake_timeout,
                }
                .into()),
            }
        })
    }
}

/// A connection to an origin, plain or TLS.
pub struct Stream {
    io: Io,
    born: Born,
}

enum Io {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>),
}

/// When a connection was opened, attached to its pool metadata (max lifetime).
#[derive(Debug, Clone, Copy)]
pub struct Born(pub edge_core::clock::Instant);

impl Stream {
    fn new(io: Io) -> Stream {
        Stream {
            io,
            born: Born(edge_core::clock::now()),
        }
    }
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        let connected = match &self.io {
            Io::Plain(s) => s.connected(),
            Io::Tls(s) => {
                let (tcp, conn) = s.inner().get_ref();
                let connected = tcp.connected();
                if conn.alpn_protocol() == Some(b"h2") {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        };
        connected.extra(self.born)
    }
}

impl Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }
}
