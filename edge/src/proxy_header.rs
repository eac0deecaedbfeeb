//! The PROXY protocol on TCP listeners (`listen.proxy_protocol`): a connection from one of the
//! configured sources (an L4 load balancer) must open with a v1 or v2 header, which gives the
//! visitor's address; a connection from anywhere else that sends one is refused (its claim
//! is the visitor's own). QUIC has no such header.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use edge_core::proxy_protocol::{self, Proxied};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Bytes read while looking for a header; more than a v1 line and a v2 header with a few TLVs.
const MAX_HEADER: usize = 1024;

/// A stream that first gives back bytes read past a PROXY header.
pub struct Prefixed {
    head: Bytes,
    inner: TcpStream,
}

impl Prefixed {
    pub fn plain(inner: TcpStream) -> Prefixed {
        Prefixed {
            head: Bytes::new(),
            inner,
        }
    }
}

impl crate::tcp::Readable for Prefixed {
    // Bytes read past the PROXY header are waiting already.
    async fn readable(&mut self) -> io::Result<()> {
        if self.head.has_remaining() {
            return Ok(());
        }
        self.inner.readable().await
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.head.has_remaining() {
            let n = self.head.len().min(buf.remaining());
            buf.put_slice(&self.head[..n]);
            self.head.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A configured source sent no (valid) header.
    Missing,
    /// Someone else sent one.
    Unexpected,
    /// Nothing arrived in time.
    Timeout,
}

/// Reads the header a configured source must send: the visitor's address (the peer's own for
/// a LOCAL header, e.g. the balancer's health check) and the stream to go on with.
pub async fn read_required(
    mut stream: TcpStream,
    peer: SocketAddr,
    within: Duration,
) -> Result<(Prefixed, SocketAddr), Refused> {
    let mut buf = Vec::with_capacity(256);
    let read = async {
        loop {
            let mut chunk = [0u8; 512];
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|_| Refused::Missing)?;
            if n == 0 {
                return Err(Refused::Missing);
            }
            buf.extend_from_slice(&chunk[..n]);
            match proxy_protocol::parse(&buf) {
                Ok(Some((proxied, used))) => return Ok((proxied, used)),
                Ok(None) if buf.len() < MAX_HEADER => {}
                _ => return Err(Refused::Missing),
            }
        }
    };
    let (proxied, used) = tokio::time::timeout(within, read)
        .await
        .map_err(|_| Refused::Timeout)??;
    let client = match proxied {
        Proxied::Addrs { source, .. } => source,
        Proxied::Local => peer,
    };
    let head = Bytes::from(buf).slice(used..);
    Ok((
        Prefixed {
            head,
            inner: stream,
        },
        client,
    ))
}

/// Refuses a header from a source that may not send one: looks at the first bytes without
/// taking them (a TLS ClientHello or an HTTP method is told apart in a byte or a few).
pub async fn refuse_unexpected(stream: &TcpStream, within: Duration) -> Result<(), Refused> {
    let look = async {
        let mut seen = 0;
        loop {
            let mut first = [0u8; 16];
            let n = stream
                .peek(&mut first)
                .await
                .map_err(|_| Refused::Missing)?;
            if n == 0 || !proxy_protocol::looks_like_proxy(&first[..n]) {
                return Ok(());
            }
            if n >= 12 {
                return Err(Refused::Unexpected);
            }
            // A prefix ("P", "PRO"…) of a header or of a method such as PUT: wait for more.
            if n == seen {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen = n;
        }
    };
    tokio::time::timeout(within, look)
        .await
        .unwrap_or(Err(Refused::Timeout))
}
