//! TCP listeners: TLS (HTTP/1.1 and HTTP/2 by ALPN) and plain HTTP.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;

use crate::metrics::conns::{self as conn_metrics, CONNS, Handshake};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::body::{self, Activity, Tracked};
use crate::lifecycle::{Tracker, shutting_down};
use crate::pipeline::{self, ConnInfo, Shared, Transport};
use crate::proxy_header;

pub struct TcpServer {
    pub listener: TcpListener,
    pub shared: Arc<Shared>,
    /// `None`: plain HTTP.
    pub tls: Option<TlsAcceptor>,
    pub alt_svc: Option<HeaderValue>,
    pub tracker: Tracker,
    pub shutdown: watch::Receiver<bool>,
}

impl TcpServer {
    pub async fn run(mut self) {
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = shutting_down(&mut self.shutdown) => break,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let snapshot = self.shared.runtime().snapshot.clone();
            // Per client address: a PROXY protocol source (a balancer) is not one client, so
            // its connections are counted by the visitor once the header is read.
            let by_peer = !snapshot.proxy_protocol.contains(peer.ip());
            let Ok(slot) = self
                .shared
                .conn_slots
                .acquire(by_peer.then_some(peer.ip()), &snapshot.limits)
            else {
                // Over a connection limit: closed before any TLS work.
                continue;
            };
            let _ = stream.set_nodelay(true);
            let local = match stream.local_addr() {
                Ok(a) => a,
                Err(_) => continue,
            };
            let shared = self.shared.clone();
            let tls = self.tls.clone();
            let alt_svc = self.alt_svc.clone();
            let guard = self.tracker.enter();
            let shutdown = self.shutdown.clone();
            let transport = if tls.is_some() {
                conn_metrics::Transport::Tls
            } else {
                conn_metrics::Transport::Tcp
            };
            let open = CONNS.accepted(transport);
            tokio::spawn(async move {
                let _guard = guard;
                let _open = open;
                let mut slot = slot;
                let info = |peer| {
                    Arc::new(ConnInfo {
                        handshake: None,
                        peer,
                        local,
                        tls: tls.is_some(),
                        transport: Transport::Tcp,
                        alt_svc: alt_svc.clone(),
                    })
                };
                let snapshot = shared.runtime().snapshot.clone();
                if snapshot.proxy_protocol.is_empty() {
                    return serve_accepted(stream, info(peer), tls.clone(), shared, shutdown).await;
                }
                // PROXY protocol sources are configured: a header is required from them and
                // refused from everyone else.
                let within = snapshot.timeouts.request_header;
                let refused = if snapshot.proxy_protocol.contains(peer.ip()) {
                    // Boxed, like every path's state: the task holds only what all paths share.
                    match Box::pin(proxy_header::read_required(stream, peer, within)).await {
                        Ok((stream, client)) => {
                            // Counted now by the visitor it carries.
                            let limits = &snapshot.limits;
                            if shared
                                .conn_slots
                                .acquire_client(&mut slot, client.ip(), limits)
                                .is_err()
                            {
                                return;
                            }
                            let info = info(client);
                            return serve_accepted(stream, info, tls.clone(), shared, shutdown)
                                .await;
                        }
                        Err(r) => r,
                    }
                } else {
                    match Box::pin(proxy_header::refuse_unexpected(&stream, within)).await {
                        Ok(()) => {
                            return serve_accepted(
                                stream,
                                info(peer),
                                tls.clone(),
                                shared,
                                shutdown,
                            )
                            .await;
                        }
                        Err(r) => r,
                    }
                };
                CONNS.proxy_refused(refused);
                tracing::debug!(client = %peer, reason = ?refused, "PROXY protocol: connection refused");
            });
        }
    }
}

/// Serves an accepted connection: the TLS handshake (on a TLS listener), then HTTP.
async fn serve_accepted<S>(
    stream: S,
    info: Arc<ConnInfo>,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Each path boxed: the connection's task is sized for its largest state, and a TLS
    // handshake or an HTTP/2 connection held inline made every plain HTTP/1.1 connection's
    // task 10 KiB while it sat idle.
    match tls {
        None => Box::pin(serve_connection(stream, false, info, shared, shutdown)).await,
        Some(acceptor) => Box::pin(serve_tls(stream, acceptor, info, shared, shutdown)).await,
    }
}

async fn serve_tls<S>(
    stream: S,
    acceptor: TlsAcceptor,
    info: Arc<ConnInfo>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The handshake's state is freed once it is done; only the TLS stream lives on.
    let handshake = shared.runtime().snapshot.timeouts.tls_handshake;
    let Some(tls) = Box::pin(tls_handshake(stream, acceptor, handshake, info.peer)).await else {
        return;
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    Box::pin(serve_connection(tls, h2, info, shared, shutdown)).await
}

async fn tls_handshake<S>(
    stream: S,
    acceptor: TlsAcceptor,
    within: Duration,
    peer: std::net::SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(within, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            CONNS.handshake(false, Handshake::Ok);
            if tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                CONNS.tls_resumed();
            }
            Some(tls)
        }
        Ok(Err(e)) => {
            CONNS.handshake(false, Handshake::Failed);
            tracing::debug!(client = %peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            CONNS.handshake(false, Handshake::Timeout);
            tracing::debug!(client = %peer, "TLS handshake timed out");
            None
        }
    }
}

/// Serves a hyper connection until it ends; on shutdown, or once no request has been in flight
/// for `client_idle`, asks it to finish gracefully (HTTP/2: GOAWAY; HTTP/1.1: close after the
/// response in flight) and lets it drain. A macro because hyper's HTTP/1 and HTTP/2
/// connections share the method but no trait.
macro_rules! drive {
    ($conn:expr, $shutdown:expr, $activity:expr, $idle:expr, $send:expr) => {{
        // Boxed by the caller: an idle connection's task then holds a pointer, not hyper's
        // whole connection state inline.
        let mut conn: std::pin::Pin<Box<_>> = $conn;
        let mut shutdown = $shutdown;
        let done = tokio::select! {
            res = conn.as_mut() => Some(res),
            stalled = $activity.send_stalled($send) => {
                // A client that does not read: nothing graceful can finish; drop it.
                tracing::debug!(?stalled, "client not reading its response; closing");
                match stalled {
                    crate::body::Stalled::Timeout => CONNS.send_timeout(),
                    crate::body::Stalled::TooSlow => CONNS.slow_reader(),
                }
                return;
            }
            _ = shutting_down(&mut shutdown) => None,
            _ = $activity.idle($idle) => {
                tracing::debug!("connection idle; closing");
                None
            }
            _ = $activity.retired() => {
                tracing::debug!("connection carried its last request; closing");
                None
            }
        };
        let res = match done {
            Some(res) => res,
            None => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = res {
            tracing::debug!(error = %e, "connection ended with error");
        }
    }};
}

/// Serves one connection with the protocol ALPN chose (plain HTTP is HTTP/1.1 only). Choosing
/// directly, rather than sniffing for an HTTP/2 preface, keeps one protocol's state per
/// connection and no rewind buffer.
async fn serve_connection<I>(
    io: I,
    h2: bool,
    info: Arc<ConnInfo>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let snap = shared.runtime().snapshot.clone();
    let header_limit = snap.limits.max_request_header_bytes as usize;
    let uri_limit = snap.limits.max_uri_bytes as usize;
    let activity = Arc::new(Activity::with_early_reset_min(
        snap.limits.early_reset_min_streams,
    ));
    let client_idle = snap.timeouts.client_idle;
    let client_send = crate::body::RateRule::for_responses(&snap);
    let counted = activity.clone();
    let cap = snap.limits.max_requests_per_connection;
    let svc = service_fn(move |req: Request<Incoming>| {
        let shared = shared.clone();
        let info = info.clone();
        let guard = counted.begin();
        let last = counted.count_request(cap);
        // Made before the future is first polled: a stream reset at once drops it unpolled.
        let answering = counted.answering();
        async move {
            // Boxed: the pipeline's state is large, and hyper moves the service future into
            // each HTTP/2 stream's task; a pointer moves, the state is built in place.
            let (mut resp, observed) =
                Box::pin(pipeline::handle(shared, info, req.map(body::incoming))).await;
            answering.answered();
            if last && !h2 {
                // HTTP/1.1: this response says so, and hyper closes after it.
                resp.headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(resp.map(|inner| Tracked {
                inner: crate::metrics::requests::Timed::new(inner, observed),
                _guard: guard,
            }))
        }
    });
    // hyper's own limits sit above ours so that the pipeline answers with a body and a request
    // id; past them hyper still answers 431/414 itself.
    if h2 {
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(header_limit * 2).unwrap_or(u32::MAX))
            .max_concurrent_streams(snap.limits.h2_max_concurrent_streams)
            .max_pending_accept_reset_streams(
                snap.limits.h2_max_pending_accept_reset_streams as usize,
            )
            .max_local_error_reset_streams(snap.limits.h2_max_local_error_reset_streams as usize)
            // Per stream in hyper; 400 KiB is its default.
            .max_send_buf_size(
                usize::try_from(snap.limits.max_buffered_response_bytes.min(400 * 1024))
                    .unwrap_or(400 * 1024),
            )
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .serve_connection(TokioIo::new(io), svc);
        let conn = Box::pin(conn);
        drive!(conn, shutdown, activity, client_idle, client_send);
    } else {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(snap.timeouts.request_header)
            .max_buf_size((header_limit + uri_limit) * 2 + 8192)
            .keep_alive(true);
        // hyper parses up to 100 fields in place; more costs an allocation per request, so
        // its cap is raised only when ours is above it.
        let max_headers = snap.limits.max_request_headers as usize;
        if max_headers > 100 {
            builder.max_headers(max_headers + 1);
        }
        let conn = Box::pin(
            builder
                .serve_connection(TokioIo::new(io), svc)
                .with_upgrades(),
        );
        drive!(conn, shutdown, activity, client_idle, client_send);
    }
}
