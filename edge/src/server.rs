//! Process lifecycle: bind listeners, serve, reload config, drain on shutdown.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::error::Error;
use crate::lifecycle::{Tracker, shutting_down};
use crate::pipeline::Shared;
use crate::quic::{QuicServer, alt_svc_value};
use crate::tcp::TcpServer;
use crate::tls;

/// The addresses actually bound (the config may ask for port 0).
#[derive(Debug, Default, Clone)]
pub struct Bound {
    pub https: Vec<SocketAddr>,
    pub quic: Vec<SocketAddr>,
    pub http: Vec<SocketAddr>,
    pub admin: Vec<SocketAddr>,
}

/// Loads `config_path`, binds every listener, calls `on_ready`, and serves until SIGTERM/SIGINT.
pub async fn serve(config_path: PathBuf, on_ready: impl FnOnce(&Bound)) -> Result<(), Error> {
    // Stamp the file before reading it: a write racing with start-up then still triggers a reload.
    let stamp = file_stamp(&config_path);
    let snapshot = config::load(&config_path)?;
    let listen = snapshot.listen.clone();
    let grace = snapshot.timeouts.shutdown_grace;
    let client_idle = snapshot.timeouts.client_idle;
    let cache = crate::cache_phase::CacheRuntime::open(&snapshot.cache).await?;
    let shared = Arc::new(Shared::new(snapshot, config_path, cache));
    // Endpoint names resolve before the node says it is ready, so its first requests do not
    // meet pools it has not resolved yet.
    shared
        .runtime()
        .pools
        .wait_resolved(Duration::from_secs(5))
        .await;
    let tracker = Tracker::default();
    let (stop_tx, stop_rx) = watch::channel(false);

    let tls_acceptor = TlsAcceptor::from(tls::tcp_config(&shared)?);
    let quic_config = if listen.http3 && !listen.https.is_empty() {
        Some(tls::quic_config(&shared, client_idle)?)
    } else {
        None
    };

    let mut bound = Bound::default();
    let mut endpoints = Vec::new();
    for addr in &listen.https {
        let (tcp, udp) = bind_tcp_and_udp(*addr, quic_config.is_some()).await?;
        let local = tcp.local_addr().map_err(|source| Error::Io {
            context: format!("local address of {addr}"),
            source,
        })?;
        bound.https.push(local);
        let alt_svc = match (&quic_config, &udp) {
            (Some(_), Some(_)) => alt_svc_value(local.port(), listen.alt_svc_max_age),
            _ => None,
        };
        if let (Some(cfg), Some(udp)) = (&quic_config, udp) {
            let endpoint = quinn::Endpoint::new(
                quinn::EndpointConfig::default(),
                Some(cfg.clone()),
                udp,
                Arc::new(quinn::TokioRuntime),
            )
            .map_err(|source| Error::Bind {
                what: "QUIC",
                addr: local,
                source,
            })?;
            bound.quic.push(local);
            endpoints.push(endpoint.clone());
            tokio::spawn(
                QuicServer {
                    endpoint,
                    local,
                    shared: shared.clone(),
                    tracker: tracker.clone(),
                    shutdown: stop_rx.clone(),
                }
                .run(),
            );
        }
        tokio::spawn(
            TcpServer {
                listener: tcp,
                shared: shared.clone(),
                tls: Some(tls_acceptor.clone()),
                alt_svc,
                tracker: tracker.clone(),
                shutdown: stop_rx.clone(),
            }
            .run(),
        );
    }
    if let Some(first) = bound.https.first() {
        shared.https_port.store(first.port(), Ordering::Relaxed);
    }
    for addr in &listen.http {
        let (tcp, local) = bind_tcp(*addr, "HTTP").await?;
        bound.http.push(local);
        tokio::spawn(
            TcpServer {
                listener: tcp,
                shared: shared.clone(),
                tls: None,
                alt_svc: None,
                tracker: tracker.clone(),
                shutdown: stop_rx.clone(),
            }
            .run(),
        );
    }

    for addr in &listen.admin {
        let (tcp, local) = bind_tcp(*addr, "admin").await?;
        bound.admin.push(local);
        tokio::spawn(crate::admin::run(tcp, shared.clone(), stop_rx.clone()));
    }

    let mut term = signal(SignalKind::terminate()).map_err(|source| Error::Io {
        context: "installing the SIGTERM handler".into(),
        source,
    })?;
    let hup = signal(SignalKind::hangup()).map_err(|source| Error::Io {
        context: "installing the SIGHUP handler".into(),
        source,
    })?;
    let reloader = tokio::spawn(reload_loop(shared.clone(), stamp, hup, stop_rx.clone()));

    tracing::info!(
        version = shared.runtime().snapshot.version,
        https = ?bound.https,
        http3 = ?bound.quic,
        http = ?bound.http,
        "edge ready"
    );
    on_ready(&bound);

    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
    let open = tracker.active();
    tracing::info!(open_connections = open, grace = ?grace, "shutting down: no new connections, draining");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(grace, tracker.wait_idle())
        .await
        .is_ok();
    if !drained {
        tracing::warn!(
            still_open = tracker.active(),
            "grace period over; closing the rest"
        );
    }
    for ep in &endpoints {
        ep.close(0u32.into(), b"shutdown");
    }
    for ep in &endpoints {
        let _ = tokio::time::timeout(Duration::from_secs(1), ep.wait_idle()).await;
    }
    reloader.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Binds TCP and, for HTTP/3, UDP on the same port. With port 0 the kernel picks the TCP port;
/// if that port is taken for UDP, try another.
async fn bind_tcp_and_udp(
    addr: SocketAddr,
    want_udp: bool,
) -> Result<(TcpListener, Option<std::net::UdpSocket>), Error> {
    let mut last_err = None;
    for _ in 0..20 {
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                what: "HTTPS",
                addr,
                source,
            })?;
        if !want_udp {
            return Ok((tcp, None));
        }
        let port = tcp.local_addr().map(|a| a.port()).unwrap_or(addr.port());
        match std::net::UdpSocket::bind(SocketAddr::new(addr.ip(), port)) {
            Ok(udp) => return Ok((tcp, Some(udp))),
            Err(e) if addr.port() == 0 => last_err = Some(e),
            Err(source) => {
                return Err(Error::Bind {
                    what: "QUIC",
                    addr,
                    source,
                });
            }
        }
    }
    Err(Error::Bind {
        what: "QUIC",
        addr,
        source: last_err.unwrap_or_else(|| std::io::Error::other("no free port")),
    })
}

/// Reloads on SIGHUP and when the file's modification time or size changes. An invalid file is
/// refused and logged; the running snapshot stays.
async fn reload_loop(
    shared: Arc<Shared>,
    mut stamp: Option<(SystemTime, u64)>,
    mut hup: tokio::signal::unix::Signal,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        // Read per round so a reload can turn watching on or off and change its pace.
        let watch = shared.runtime().snapshot.reload.clone();
        let trigger = tokio::select! {
            _ = hup.recv() => "SIGHUP",
            _ = tokio::time::sleep(watch.poll_interval), if watch.watch_file => {
                let now = file_stamp(&shared.config_path);
                if now == stamp { continue; }
                "file change"
            }
            _ = shutting_down(&mut stop) => return,
        };
        stamp = file_stamp(&shared.config_path);
        reload(&shared, trigger).await;
    }
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

pub async fn reload(shared: &Arc<Shared>, trigger: &str) {
    let path = shared.config_path.clone();
    let loaded = tokio::task::spawn_blocking(move || config::load(&path)).await;
    match loaded {
        Ok(Ok(snapshot)) => {
            let old = shared.runtime();
            if snapshot.listen != old.snapshot.listen {
                tracing::warn!("listener settings changed; they take effect at the next restart");
            }
            if snapshot.cache != old.snapshot.cache {
                tracing::warn!(
                    "[cache] store settings changed; they take effect at the next restart"
                );
            }
            let version = snapshot.version;
            let sites = snapshot.sites.len();
            shared.swap(snapshot);
            tracing::info!(
                trigger,
                version,
                previous = old.snapshot.version,
                sites,
                "config reloaded"
            );
        }
        Ok(Err(e)) => {
            for d in e.diagnostics() {
                tracing::error!(
                    trigger,
                    "config reload refused, keeping version {}: {d}",
                    shared.runtime().snapshot.version
                );
            }
        }
        Err(e) => tracing::error!(trigger, error = %e, "config reload task failed"),
    }
}

/// Prints the bound addresses on stdout in a stable form that scripts and tests read.
/// A TCP listener on `addr` and the address it really got (the config may say port 0).
async fn bind_tcp(
    addr: SocketAddr,
    what: &'static str,
) -> Result<(TcpListener, SocketAddr), Error> {
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })?;
    let local = tcp.local_addr().map_err(|source| Error::Io {
        context: format!("local address of {addr}"),
        source,
    })?;
    Ok((tcp, local))
}

pub fn print_bound(b: &Bound) {
    let mut out = std::io::stdout().lock();
    for a in &b.https {
        let _ = writeln!(out, "listening https {a}");
    }
    for a in &b.quic {
        let _ = writeln!(out, "listening http3 {a}");
    }
    for a in &b.http {
        let _ = writeln!(out, "listening http {a}");
    }
    for a in &b.admin {
        let _ = writeln!(out, "listening admin {a}");
    }
    let _ = writeln!(out, "ready");
    let _ = out.flush();
}
