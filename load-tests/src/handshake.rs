//! `edge-load handshake`: new connections per second, closed loop. Over TLS (HTTP/1.1) each
//! connection does a full handshake (or a resumption, with `--resume`), one small GET and
//! closes; over QUIC each completes the handshake and closes. The rate a server sustains,
//! and its CPU time per handshake (measured outside, from /proc), are what handshake-bench.sh
//! compares.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::LoadError;
use crate::conn::{Proto, Target};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub proto: &'static str,
    pub resume: bool,
    pub seconds: f64,
    pub handshakes: u64,
    /// Of them, resumed (TLS only; a server without resumption shows 0).
    pub resumed: u64,
    pub failed: u64,
    pub per_second: f64,
    pub p50_us: u64,
    pub p99_us: u64,
}

#[derive(Default)]
struct Counts {
    done: AtomicU64,
    resumed: AtomicU64,
    failed: AtomicU64,
}

/// Runs `workers` loops of connect-handshake-close for `duration`.
pub async fn run(
    target: &Target,
    proto: Proto,
    path: &str,
    workers: usize,
    duration: Duration,
    resume: bool,
) -> Result<Report, LoadError> {
    let mut cfg = (*target.tls.clone().ok_or_else(|| {
        LoadError::Usage("handshakes need https:// and --ca or --insecure".into())
    })?)
    .clone();
    if !resume {
        cfg.resumption = rustls::client::Resumption::disabled();
    }
    let cfg = Arc::new(cfg);
    let quic = match proto {
        Proto::H3 => Some(quic_endpoint(target, &cfg)?),
        Proto::H1 => None,
        Proto::H2 => {
            return Err(LoadError::Usage(
                "handshake: --proto h1 (TLS) or h3 (QUIC)".into(),
            ));
        }
    };
    let counts = Arc::new(Counts::default());
    let deadline = Instant::now() + duration;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (target, cfg, counts, quic) =
            (target.clone(), cfg.clone(), counts.clone(), quic.clone());
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            target.host
        );
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = match &quic {
                    Some(endpoint) => quic_once(endpoint, &target).await,
                    None => tls_once(&target, &cfg, request.as_bytes()).await,
                };
                match ok {
                    Some(resumed) => {
                        latencies.push(t.elapsed().as_micros() as u64);
                        counts.done.fetch_add(1, Ordering::Relaxed);
                        if resumed {
                            counts.resumed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.unwrap_or_default());
    }
    if let Some(endpoint) = quic {
        endpoint.wait_idle().await;
    }
    let seconds = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let handshakes = counts.done.load(Ordering::Relaxed);
    Ok(Report {
        proto: if proto == Proto::H3 { "QUIC" } else { "TLS" },
        resume,
        seconds,
        handshakes,
        resumed: counts.resumed.load(Ordering::Relaxed),
        failed: counts.failed.load(Ordering::Relaxed),
        per_second: handshakes as f64 / seconds,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
    })
}

/// One TLS connection: handshake, GET, read to the end. `Some(resumed)` when it worked.
async fn tls_once(
    target: &Target,
    cfg: &Arc<rustls::ClientConfig>,
    request: &[u8],
) -> Option<bool> {
    let name = rustls::pki_types::ServerName::try_from(target.host.clone()).ok()?;
    let tcp = TcpStream::connect(target.addr).await.ok()?;
    let _ = tcp.set_nodelay(true);
    let mut tls = tokio_rustls::TlsConnector::from(cfg.clone())
        .connect(name, tcp)
        .await
        .ok()?;
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    tls.write_all(request).await.ok()?;
    // Reading to the end also takes in the session tickets a TLS 1.3 server sends.
    let mut sink = Vec::with_capacity(4096);
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut sink)).await;
    let got_response = sink.starts_with(b"HTTP/1.1 ");
    match read {
        Ok(Ok(_)) if got_response => Some(resumed),
        // Some servers close without close_notify: the response is what counts.
        Ok(Err(_)) if got_response => Some(resumed),
        _ => None,
    }
}

async fn quic_once(endpoint: &quinn::Endpoint, target: &Target) -> Option<bool> {
    let connecting = endpoint.connect(target.addr, &target.host).ok()?;
    let conn = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .ok()?
        .ok()?;
    conn.close(0u32.into(), b"done");
    Some(false)
}

fn quic_endpoint(
    target: &Target,
    cfg: &Arc<rustls::ClientConfig>,
) -> Result<quinn::Endpoint, LoadError> {
    let mut cfg = (**cfg).clone();
    cfg.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(cfg)
        .map_err(|e| LoadError::Tls(e.to_string()))?;
    let local: std::net::SocketAddr = if target.addr.is_ipv6() {
        std::net::SocketAddr::from(([0u16; 8], 0))
    } else {
        std::net::SocketAddr::from(([0u8; 4], 0))
    };
    let mut endpoint = quinn::Endpoint::client(local).map_err(|source| LoadError::Io {
        context: "QUIC endpoint".into(),
        source,
    })?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    Ok(endpoint)
}
