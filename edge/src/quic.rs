//! The QUIC listener: HTTP/3 over quinn + h3. The endpoint lives for the whole process and its
//! TLS certificates are resolved per handshake, so reloads never touch open QUIC connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use h3::error::Code;
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::BodyExt;
use tokio::sync::watch;

use crate::body::{self, Activity, H3RequestBody, ProxyBody};
use crate::early;
use crate::hygiene;
use crate::lifecycle::{Tracker, shutting_down};
use crate::metrics::conns::{self as conn_metrics, CONNS, Handshake as Outcome};
use crate::pipeline::{self, ConnInfo, Shared, Transport};
use crate::protect::handshakes::{Admit, InProgress};

pub struct QuicServer {
    pub endpoint: quinn::Endpoint,
    pub local: SocketAddr,
    /// Used instead of the endpoint's own config while a site has `zero_rtt` on.
    pub zero_rtt: Arc<quinn::ServerConfig>,
    pub shared: Arc<Shared>,
    pub tracker: Tracker,
    pub shutdown: watch::Receiver<bool>,
}

impl QuicServer {
    pub async fn run(mut self) {
        loop {
            let incoming = tokio::select! {
                i = self.endpoint.accept() => i,
                _ = shutting_down(&mut self.shutdown) => break,
            };
            let Some(incoming) = incoming else { break };
            let limits = self.shared.runtime().snapshot.limits.clone();
            let incoming_peer = incoming.remote_address();
            let ip = incoming_peer.ip();
            let handshake = match self.shared.handshakes.admit(
                ip,
                incoming.remote_address_validated(),
                incoming.may_retry(),
                &limits,
            ) {
                Admit::Go(h) => h,
                Admit::Retry => {
                    let _ = incoming.retry();
                    continue;
                }
                Admit::Refuse => {
                    incoming.refuse();
                    continue;
                }
            };
            let client = Some(ip);
            let Ok(slot) = self.shared.conn_slots.acquire(client, &limits) else {
                // Over a connection limit: refused before any handshake work.
                incoming.refuse();
                continue;
            };
            let zero_rtt = self.shared.runtime().snapshot.zero_rtt();
            let connecting = if zero_rtt {
                incoming.accept_with(self.zero_rtt.clone())
            } else {
                incoming.accept()
            };
            let peer = incoming_peer;
            let connecting = match connecting {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(client = %peer, error = %e, "QUIC connection not accepted");
                    continue;
                }
            };
            let guard = self.tracker.enter();
            let shared = self.shared.clone();
            let shutdown = self.shutdown.clone();
            let local = self.local;
            let open = CONNS.accepted(conn_metrics::Transport::Quic);
            tokio::spawn(async move {
                let _guard = guard;
                let _open = open;
                let _slot = slot;
                if let Err(e) =
                    serve_connection(connecting, zero_rtt, handshake, local, shared, shutdown).await
                {
                    tracing::debug!(client = %peer, error = %e, "QUIC connection ended");
                }
            });
        }
    }
}

/// The connection, as soon as its requests may be read: with the 0-RTT config at once (the
/// handshake goes on in a task of its own, and its requests see it through
/// `early::Handshake`), else when the handshake completes.
async fn establish(
    connecting: quinn::Connecting,
    zero_rtt: bool,
    in_progress: InProgress,
    timeout: std::time::Duration,
) -> Result<(quinn::Connection, Option<early::Handshake>), Box<dyn std::error::Error + Send + Sync>>
{
    // Without early data there is nothing to read before the handshake: keep it simple.
    let early = if zero_rtt {
        let mut connecting = connecting;
        // The client's transport parameters come with its ClientHello: wait for them, so that
        // h3 opens its control streams with the client's stream credit known (opened
        // before, quinn may never wake the opener: Chromium then waited forever).
        if tokio::time::timeout(timeout, connecting.handshake_data())
            .await
            .is_err()
        {
            CONNS.handshake(true, Outcome::Timeout);
            return Err("QUIC handshake timed out".into());
        }
        connecting.into_0rtt()
    } else {
        Err(connecting)
    };
    let connecting = match early {
        // On a server this always succeeds; whether early data was accepted shows in
        // what the client sends before the handshake completes.
        Ok((conn, done)) => {
            let (confirm, handshake) = early::Handshake::pending();
            let watched = conn.clone();
            tokio::spawn(async move {
                let _in_progress = in_progress;
                match tokio::time::timeout(timeout, done).await {
                    Ok(_) if watched.close_reason().is_none() => {
                        CONNS.handshake(true, Outcome::Ok);
                        confirm.confirmed();
                    }
                    Ok(_) => CONNS.handshake(true, Outcome::Failed),
                    Err(_) => {
                        CONNS.handshake(true, Outcome::Timeout);
                        watched.close(quinn::VarInt::from_u32(0), b"handshake timeout");
                    }
                }
            });
            return Ok((conn, Some(handshake)));
        }
        Err(connecting) => connecting,
    };
    let conn = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(c)) => {
            CONNS.handshake(true, Outcome::Ok);
            c
        }
        Ok(Err(e)) => {
            CONNS.handshake(true, Outcome::Failed);
            return Err(e.into());
        }
        Err(e) => {
            CONNS.handshake(true, Outcome::Timeout);
            return Err(e.into());
        }
    };
    drop(in_progress);
    Ok((conn, None))
}

async fn serve_connection(
    connecting: quinn::Connecting,
    zero_rtt: bool,
    in_progress: InProgress,
    local: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let snap = shared.runtime().snapshot.clone();
    // The handshake and h3's setup boxed: inline, their states sized this connection's task
    // (7 KiB) for its whole life, idle or not.
    let (conn, handshake) = Box::pin(establish(
        connecting,
        zero_rtt,
        in_progress,
        snap.timeouts.tls_handshake,
    ))
    .await?;
    let info = Arc::new(ConnInfo {
        peer: conn.remote_address(),
        local,
        tls: true,
        transport: Transport::Quic,
        alt_svc: None,
        handshake,
    });
    let quic = conn.clone();
    let mut h3 = Box::pin(
        h3::server::builder()
            .max_field_section_size(u64::from(snap.limits.max_request_header_bytes) * 2)
            .build::<_, Bytes>(h3_quinn::Connection::new(conn)),
    )
    .await?;
    // QUIC's own idle timeout is reset by pings; this one counts requests.
    let activity = Arc::new(Activity::with_early_reset_min(
        snap.limits.early_reset_min_streams,
    ));
    let client_idle = snap.timeouts.client_idle;
    let mut draining = false;
    loop {
        let accepted = if draining {
            h3.accept().await
        } else {
            tokio::select! {
                a = h3.accept() => a,
                _ = shutting_down(&mut shutdown) => {
                    draining = true;
                    // GOAWAY: requests already accepted finish, new ones go elsewhere.
                    h3.shutdown(1).await?;
                    continue;
                }
                _ = activity.retired() => {
                    // Its last request, or a client resetting most of its requests early.
                    draining = true;
                    h3.shutdown(1).await?;
                    continue;
                }
                _ = activity.idle(client_idle) => {
                    tracing::debug!(client = %info.peer, "HTTP/3 connection idle; closing");
                    h3.shutdown(0).await?;
                    quic.close(quinn::VarInt::from_u32(0x100), b"idle");
                    return Ok(());
                }
            }
        };
        match accepted {
            Ok(Some(resolver)) => {
                let shared = shared.clone();
                let info = info.clone();
                let guard = activity.begin();
                let answering = activity.answering();
                if activity.count_request(snap.limits.max_requests_per_connection) && !draining {
                    // The connection's last request: GOAWAY, this one still served.
                    draining = true;
                    h3.shutdown(1).await?;
                }
                tokio::spawn(async move {
                    let _guard = guard;
                    match resolver.resolve_request().await {
                        Ok((req, stream)) => {
                            serve_request(req, stream, info, shared, answering).await
                        }
                        Err(e) => tracing::debug!(error = %e, "bad HTTP/3 request"),
                    }
                });
            }
            Ok(None) => return Ok(()),
            Err(e) => {
                if e.is_h3_no_error() {
                    return Ok(());
                }
                return Err(e.into());
            }
        }
    }
}

async fn serve_request(
    req: Request<()>,
    stream: h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>,
    info: Arc<ConnInfo>,
    shared: Arc<Shared>,
    answering: crate::body::Answering,
) {
    let malformed = match hygiene::content_length(req.headers()) {
        Err(e) => Some(e),
        Ok(_) => hygiene::connection_specific(req.headers()),
    };
    if let Some(reason) = malformed {
        // RFC 9114 §4.1.2: a malformed request is answered with a stream error; nothing of it
        // goes anywhere.
        tracing::info!(client = %info.peer, reason, "malformed HTTP/3 request");
        let mut stream = stream;
        stream.stop_sending(Code::H3_MESSAGE_ERROR);
        stream.stop_stream(Code::H3_MESSAGE_ERROR);
        return;
    }
    let content_length = hygiene::content_length(req.headers()).ok().flatten();
    let (mut send, recv) = stream.split();
    let mismatch = Arc::new(AtomicBool::new(false));
    let mut body: ProxyBody =
        H3RequestBody::new(recv, content_length, mismatch.clone()).boxed_unsync();
    if content_length.is_some_and(|n| n > 0) {
        // Read the first DATA frame before anything is forwarded, so that a body that already
        // overruns its content-length reaches no origin.
        let wait = shared.runtime().snapshot.timeouts.request_header;
        match body::settle_first(body, wait).await {
            Ok(b) => body = b,
            Err(_) => {
                reset(&mut send, &mismatch, Code::H3_REQUEST_INCOMPLETE);
                return;
            }
        }
    }
    let is_head = req.method() == Method::HEAD;
    let rule = crate::body::RateRule::for_responses(&shared.runtime().snapshot);
    let req = req.map(|()| body);
    // 1xx interim responses (crate::interim) go out as HEADERS frames before the final one.
    let (interim_tx, mut interim_rx) = hyper::ext::informational_channel();
    let interim = Some(crate::interim::Interim::new(interim_tx));
    // Boxed: the pipeline's state is large; on the stack it would make every request task's
    // future that much larger to move when it is spawned.
    let mut handled = Box::pin(pipeline::handle(shared, info, req, interim));
    let (resp, observed) = loop {
        tokio::select! {
            biased;
            Some(interim) = interim_rx.recv() => {
                if let Err(e) = send.send_response(interim).await {
                    tracing::debug!(error = %e, "HTTP/3 interim response not sent");
                }
            }
            resp = &mut handled => break resp,
        }
    };
    // Those queued while the final response was made still go first.
    while let Some(interim) = interim_rx.try_recv() {
        if let Err(e) = send.send_response(interim).await {
            tracing::debug!(error = %e, "HTTP/3 interim response not sent");
        }
    }
    drop(interim_rx);
    if mismatch.load(Ordering::Relaxed) {
        tracing::info!("HTTP/3 request body does not match its content-length; resetting");
        send.stop_stream(Code::H3_MESSAGE_ERROR);
        return;
    }
    let (mut parts, body) = resp.into_parts();
    // Tells the request series when the body ends (or is abandoned).
    let mut body = crate::metrics::requests::Timed::new(body, observed);
    // Connection-specific fields are forbidden in HTTP/3 (RFC 9114 §4.2).
    parts.headers.remove(header::CONNECTION);
    if let Err(e) = send.send_response(Response::from_parts(parts, ())).await {
        // Most often the client reset the stream: counted as a premature reset.
        tracing::debug!(error = %e, "HTTP/3 response head not sent");
        return;
    }
    answering.answered();
    let (mut waited, mut taken) = (std::time::Duration::ZERO, 0u64);
    if !is_head {
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => {
                        if data.is_empty() {
                            continue;
                        }
                        // Only the wait for the client (flow control) counts: a slow reader
                        // gets its stream reset, not the connection's other requests.
                        let len = data.len() as u64;
                        let start = edge_core::clock::now();
                        let budget = rule.next_wait(waited, taken);
                        match tokio::time::timeout(budget, send.send_data(data)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "HTTP/3 client went away");
                                return;
                            }
                            Err(_) => {
                                if budget >= rule.max_wait {
                                    crate::metrics::conns::CONNS.send_timeout();
                                } else {
                                    crate::metrics::conns::CONNS.slow_reader();
                                }
                                tracing::debug!(
                                    "HTTP/3 client not reading its response; resetting"
                                );
                                send.stop_stream(Code::H3_REQUEST_CANCELLED);
                                return;
                            }
                        }
                        waited += edge_core::clock::since(start);
                        taken += len;
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers()
                            && let Err(e) = send.send_trailers(trailers).await
                        {
                            tracing::debug!(error = %e, "HTTP/3 trailers not sent");
                            return;
                        }
                    }
                },
                Err(e) => {
                    // The origin failed mid-body: reset the stream so the client sees an abort,
                    // never a clean but short response.
                    tracing::warn!(error = %e, "origin body failed; resetting HTTP/3 stream");
                    send.stop_stream(Code::H3_INTERNAL_ERROR);
                    return;
                }
            }
        }
    }
    if let Err(e) = send.finish().await {
        tracing::debug!(error = %e, "HTTP/3 stream not finished");
    }
}

fn reset(
    send: &mut h3::server::RequestStream<h3_quinn::SendStream<Bytes>, Bytes>,
    mismatch: &AtomicBool,
    otherwise: Code,
) {
    let code = if mismatch.load(Ordering::Relaxed) {
        Code::H3_MESSAGE_ERROR
    } else {
        otherwise
    };
    send.stop_stream(code);
}

/// `h3=":PORT"; ma=SECONDS`
pub fn alt_svc_value(port: u16, max_age: u32) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("h3=\":{port}\"; ma={max_age}")).ok()
}
