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
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::body::{self, Activity, Tracked};
use crate::lifecycle::{Tracker, shutting_down};
use crate::pipeline::{self, ConnInfo, Shared, Transport};
use crate::proxy_header;
use config::Snapshot;

/// How long an HTTP/1.1 connection stays idle before hyper hands it back to wait with nothing
/// but its socket: a client whose next request comes sooner (a busy keep-alive connection)
/// keeps its buffers and dispatcher instead of rebuilding them, ~2.5k instructions a request.
/// The same quiet period as HTTP/2's (`h2`'s `RELEASE_AFTER`).
const IDLE_HANDOFF_AFTER: Duration = Duration::from_millis(250);

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
    S: AsyncRead + AsyncWrite + Unpin + Send + Readable + 'static,
{
    // Each path boxed: the connection's task is sized for its largest state, and a TLS
    // handshake or an HTTP/2 connection held inline made every plain HTTP/1.1 connection's
    // task 10 KiB while it sat idle.
    match tls {
        None => Box::pin(serve_http1(stream, info, shared, shutdown)).await,
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
    S: AsyncRead + AsyncWrite + Unpin + Send + Readable + 'static,
{
    // The handshake's state is freed once it is done; only the TLS stream lives on, boxed:
    // held inline, its kilobyte of rustls state was a slot in this future, in the protocol's
    // future (as an argument) and in hyper's connection, three copies per idle connection.
    let handshake = shared.runtime().snapshot.timeouts.tls_handshake;
    let Some(tls) = Box::pin(tls_handshake(stream, acceptor, handshake, info.peer)).await else {
        return;
    };
    let tls = Box::new(tls);
    // Each protocol's state boxed on its own, sized for itself.
    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
        Box::pin(serve_http2(tls, info, shared, shutdown)).await
    } else {
        Box::pin(serve_http1(tls, info, shared, shutdown)).await
    }
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

/// Serves `conn` (hyper's HTTP/1.1 or HTTP/2 connection, pinned) until it ends or `finish`
/// resolves, then asks it to finish gracefully and lets what is in flight drain. The
/// slow-reader rule (`stalled`) holds throughout: a stall returns from the enclosing function.
/// A macro: hyper's two connection types share no trait for `graceful_shutdown`.
macro_rules! serve_then_drain {
    ($conn:expr, $stalled:expr, $finish:expr) => {{
        let finished = tokio::select! {
            res = $conn.as_mut() => Some(res),
            s = &mut $stalled => return report_stalled(s),
            () = $finish => None,
        };
        match finished {
            Some(res) => res,
            None => {
                $conn.as_mut().graceful_shutdown();
                tokio::select! {
                    res = $conn.as_mut() => res,
                    s = &mut $stalled => return report_stalled(s),
                }
            }
        }
    }};
}

/// What serving either protocol needs: the connection's activity (idle, slow-reader and
/// request-count rules), its limits, and the service that runs the pipeline per request.
struct Setup<S> {
    snap: Arc<Snapshot>,
    activity: Arc<Activity>,
    client_idle: Duration,
    client_send: crate::body::RateRule,
    svc: S,
}

/// `h1_interim`: an HTTP/1.1 connection's one channel for 1xx interim responses, whose
/// sender each request gets; none for HTTP/2, where hyper makes one per stream.
fn setup(
    info: Arc<ConnInfo>,
    shared: Arc<Shared>,
    h1_interim: Option<hyper::ext::InformationalSender>,
) -> Setup<
    impl hyper::service::HttpService<
        Incoming,
        ResBody = Tracked,
        Error = Infallible,
        Future: Send + 'static,
    > + Unpin
    + Send
    + 'static,
> {
    let snap = shared.runtime().snapshot.clone();
    let activity = Arc::new(Activity::with_early_reset_min(
        snap.limits.early_reset_min_streams,
    ));
    let client_idle = snap.timeouts.client_idle;
    let client_send = crate::body::RateRule::for_responses(&snap);
    let counted = activity.clone();
    let cap = snap.limits.max_requests_per_connection;
    let h2 = h1_interim.is_none();
    let svc = service_fn(move |req: Request<Incoming>| {
        let shared = shared.clone();
        let info = info.clone();
        let interim = h1_interim
            .as_ref()
            .map(|tx| crate::interim::Interim::new(tx.for_request()));
        let guard = counted.begin();
        let last = counted.count_request(cap);
        // Made before the future is first polled: a stream reset at once drops it unpolled.
        let answering = counted.answering();
        async move {
            // Boxed: the pipeline's state is large, and hyper moves the service future into
            // each HTTP/2 stream's task; a pointer moves, the state is built in place.
            let (mut resp, observed) = Box::pin(pipeline::handle(
                shared,
                info,
                req.map(body::incoming),
                interim,
            ))
            .await;
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
    Setup {
        snap,
        activity,
        client_idle,
        client_send,
        svc,
    }
}

/// HTTP/2 (ALPN chose it; plain HTTP is HTTP/1.1 only). Choosing by ALPN, rather than sniffing
/// for a preface, keeps one protocol's state per connection and no rewind buffer. Serves until
/// the connection ends; on shutdown, once no request has been in flight for `client_idle`, or
/// after its last allowed request, asks it to finish gracefully (GOAWAY) and lets it drain,
/// under the slow-reader rule throughout.
async fn serve_http2<I>(
    io: I,
    info: Arc<ConnInfo>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Setup {
        snap,
        activity,
        client_idle,
        client_send,
        svc,
    } = setup(info, shared, None);
    // hyper's own limits sit above ours so that the pipeline answers with a body and a
    // request id; past them hyper still answers 431/414 itself.
    let header_limit = snap.limits.max_request_header_bytes as usize;
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(header_limit * 2).unwrap_or(u32::MAX))
        .max_concurrent_streams(snap.limits.h2_max_concurrent_streams)
        .max_pending_accept_reset_streams(snap.limits.h2_max_pending_accept_reset_streams as usize)
        .max_local_error_reset_streams(snap.limits.h2_max_local_error_reset_streams as usize)
        // Per stream in hyper; 400 KiB is its default.
        .max_send_buf_size(
            usize::try_from(snap.limits.max_buffered_response_bytes.min(400 * 1024))
                .unwrap_or(400 * 1024),
        )
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .serve_connection(TokioIo::new(io), svc);
    drop(snap);
    // Boxed: an idle connection's task then holds a pointer, not hyper's whole state inline.
    let mut conn = Box::pin(conn);
    let mut shutdown = shutdown;
    let mut stalled = std::pin::pin!(activity.send_stalled(client_send));
    let res = serve_then_drain!(conn, stalled, async {
        tokio::select! {
            _ = shutting_down(&mut shutdown) => {}
            _ = activity.idle(client_idle) => tracing::debug!("connection idle; closing"),
            _ = activity.retired() => {
                tracing::debug!("connection carried its last request; closing");
            }
        }
    });
    if let Err(e) = res {
        tracing::debug!(error = %e, "connection ended with error");
    }
}

/// HTTP/1.1: hyper serves while a request is in flight; between requests it hands the socket
/// back (`idle_handoff`, vendored hyper) and only the socket and this future are held until
/// the next request's first byte, for up to `client_idle`. The header read timeout then runs
/// from that byte, as nginx's `client_header_timeout` does after its `keepalive_timeout`.
async fn serve_http1<I>(
    io: I,
    info: Arc<ConnInfo>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) where
    I: Readable + AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let interim = hyper::ext::InformationalSender::for_connection();
    let conn = setup(info, shared, Some(interim.clone()));
    let (snap, activity, svc) = (conn.snap, conn.activity, conn.svc);
    let (client_idle, client_send) = (conn.client_idle, conn.client_send);
    // hyper's own limits sit above ours (see serve_http2).
    let header_limit = snap.limits.max_request_header_bytes as usize;
    let uri_limit = snap.limits.max_uri_bytes as usize;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(snap.timeouts.request_header)
        .max_buf_size((header_limit + uri_limit) * 2 + 8192)
        .keep_alive(true)
        .idle_handoff(true)
        .idle_handoff_after(IDLE_HANDOFF_AFTER);
    // hyper parses up to 100 fields in place; more costs an allocation per request, so its
    // cap is raised only when ours is above it.
    let max_headers = snap.limits.max_request_headers as usize;
    if max_headers > 100 {
        builder.max_headers(max_headers + 1);
    }
    drop(snap);
    // One timer each for the connection's life, not per request: they outlive every
    // stretch of serving and every idle wait.
    let idle = std::pin::pin!(activity.idle(client_idle));
    let stalled = std::pin::pin!(activity.send_stalled(client_send));
    let retired = std::pin::pin!(activity.retired());
    let stop = std::pin::pin!(shutting_down(&mut shutdown));
    let (mut idle, mut stalled, mut retired, mut stop) = (idle, stalled, retired, stop);
    let (mut io, mut svc) = (io, svc);
    loop {
        // Boxed: hyper's buffers, dispatcher and timers exist only while serving.
        let mut conn = Box::pin(
            builder
                .serve_connection(TokioIo::new(io), svc)
                .informational(interim.receiver())
                .with_upgrades(),
        );
        let res = serve_then_drain!(conn, stalled, async {
            tokio::select! {
                _ = &mut stop => {}
                // hyper keeps the connection only while a request is in flight or its head
                // is arriving (under the header read timeout), so this rarely fires here.
                _ = &mut idle => {}
                _ = &mut retired => {
                    tracing::debug!("connection carried its last request; closing");
                }
            }
        });
        if let Err(e) = res {
            tracing::debug!(error = %e, "connection ended with error");
            return;
        }
        if !conn.is_idle_handoff() {
            return;
        }
        let Some(parts) = std::pin::Pin::into_inner(conn).into_parts() else {
            return;
        };
        // hyper hands off only with nothing read: no bytes of the next request are dropped.
        debug_assert!(parts.read_buf.is_empty());
        (io, svc) = (parts.io.into_inner(), parts.service);
        let readable = tokio::select! {
            r = io.readable() => r.is_ok(),
            _ = &mut idle => {
                tracing::debug!("connection idle; closing");
                false
            }
            _ = &mut stop => false,
        };
        if !readable {
            // Nothing in flight: close (TLS: with close_notify), bounded for a peer that
            // does not read.
            let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
            return;
        }
    }
}

/// A client that does not read its response: nothing graceful can finish; dropped.
fn report_stalled(stalled: crate::body::Stalled) {
    tracing::debug!(?stalled, "client not reading its response; closing");
    match stalled {
        crate::body::Stalled::Timeout => CONNS.send_timeout(),
        crate::body::Stalled::TooSlow => CONNS.slow_reader(),
    }
}

/// A transport whose readability can be awaited without reading from it: an idle HTTP/1.1
/// connection waits for its next request this way, holding nothing but the socket.
pub(crate) trait Readable {
    fn readable(&mut self) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
}

impl Readable for tokio::net::TcpStream {
    fn readable(&mut self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
        tokio::net::TcpStream::readable(self)
    }
}

impl<T: Readable + ?Sized + Send> Readable for Box<T> {
    fn readable(&mut self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
        (**self).readable()
    }
}

impl<S: Readable + Send> Readable for tokio_rustls::server::TlsStream<S> {
    // hyper hands off only after a read found nothing, so rustls holds no plaintext: the
    // next TLS record arriving is the next thing to read.
    fn readable(&mut self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
        self.get_mut().0.readable()
    }
}
