//! Process lifecycle: bind listeners, serve, reload config, drain on shutdown.

use cache::Storage as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use config::{ConfigError, ConfigSource, Document, FileSource, Snapshot};

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
/// The file is read through a [`FileSource`], which also watches it (and the certificate, key
/// and CA files it names) for changes.
pub async fn serve(config_path: PathBuf, on_ready: impl FnOnce(&Bound)) -> Result<(), Error> {
    // The pace is set from the first snapshot's [reload] before anyone waits on `changed`.
    let source = FileSource::new(config_path.clone(), Duration::from_secs(1));
    serve_source(Arc::new(source), config_path, None, on_ready).await
}

/// `edge run`: from the file alone, or, with a store (`--store`, or endpoints in the node
/// file's `[store]`), from the node file joined with the active version in etcd.
pub async fn serve_node(
    config_path: PathBuf,
    store: Option<String>,
    on_ready: impl FnOnce(&Bound),
) -> Result<(), Error> {
    let path = config_path.clone();
    let node = tokio::task::spawn_blocking(move || control::NodeFile::read(&path))
        .await
        .map_err(|e| Error::Control(control::ControlError::Settings(e.to_string())))?
        .map_err(Error::Control)?;
    let node = match store {
        Some(url) => node.with_store_url(&url).map_err(Error::Control)?,
        None if node.store.endpoints.is_empty() => return serve(config_path, on_ready).await,
        None => node,
    };
    let bus = Some(Arc::new(control::PurgeBus::new(&node)));
    let source = control::EtcdSource::start(&config_path, node);
    source.set_stats(|| {
        let (requests, status_5xx) = crate::metrics::METRICS.totals();
        control::ReportStats {
            requests,
            status_5xx,
        }
    });
    let source = Arc::new(source);
    let page = source.clone();
    crate::admin::status::set_control(move || page.control_status());
    serve_source(source, config_path, bus, on_ready).await
}

/// Serves the documents of `source`: the first one now, later ones on SIGHUP or when the source
/// says it changed. `config_path` is only what `Shared` records.
async fn serve_source<S: ConfigSource>(
    source: Arc<S>,
    config_path: PathBuf,
    bus: Option<Arc<control::PurgeBus>>,
    on_ready: impl FnOnce(&Bound),
) -> Result<(), Error> {
    // The source records what it read (a file: stamped before reading), so a write racing with
    // start-up still shows up in `changed` and triggers a reload.
    let (doc, compiled) = compile_off_runtime(source.fetch().await?).await;
    let snapshot = match compiled {
        Ok(s) => s,
        Err(e) => {
            source.refused(&doc, &e);
            return Err(e.into());
        }
    };
    if snapshot.listen.https.is_empty() && snapshot.listen.http.is_empty() {
        // Allowed by the compiler for a file that only configures `[dns]`.
        return Err(Error::Dns(format!(
            "{}: no https or http listener to serve (a file with only [dns] is for `edge dns`)",
            doc.name.display()
        )));
    }
    source.applied(&doc, &snapshot);
    crate::metrics::conns::CONNS.config_applied(snapshot.version);
    drop(doc);
    source.apply_reload_settings(&snapshot.reload);
    let listen = snapshot.listen.clone();
    let grace = snapshot.timeouts.shutdown_grace;
    let client_idle = snapshot.timeouts.client_idle;
    let cache = crate::cache_phase::CacheRuntime::open(&snapshot.cache).await?;
    let shared = Arc::new(Shared::new(snapshot, config_path, cache));
    crate::metrics::tiers::start(shared.cache.store.clone());
    crate::metrics::origins::register(&shared);
    crate::geo_phase::start(&shared).await?;
    crate::metrics::limits::start_sweeper(&shared);
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
        Some((
            tls::quic_config(&shared, client_idle, false)?,
            Arc::new(tls::quic_config(&shared, client_idle, true)?),
        ))
    } else {
        None
    };

    let mut bound = Bound::default();
    let mut endpoints = Vec::new();
    // Started only once every listener is bound and missed purges are applied (below).
    let mut servers: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> =
        Vec::new();
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
        if let (Some((cfg, zero_rtt)), Some(udp)) = (&quic_config, udp) {
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
            servers.push(Box::pin(
                QuicServer {
                    endpoint,
                    local,
                    zero_rtt: zero_rtt.clone(),
                    shared: shared.clone(),
                    tracker: tracker.clone(),
                    shutdown: stop_rx.clone(),
                }
                .run(),
            ));
        }
        servers.push(Box::pin(
            TcpServer {
                listener: tcp,
                shared: shared.clone(),
                tls: Some(tls_acceptor.clone()),
                alt_svc,
                tracker: tracker.clone(),
                shutdown: stop_rx.clone(),
            }
            .run(),
        ));
    }
    if let Some(first) = bound.https.first() {
        shared.https_port.store(first.port(), Ordering::Relaxed);
    }
    for addr in &listen.http {
        let (tcp, local) = bind_tcp(*addr, "HTTP").await?;
        bound.http.push(local);
        servers.push(Box::pin(
            TcpServer {
                listener: tcp,
                shared: shared.clone(),
                tls: None,
                alt_svc: None,
                tracker: tracker.clone(),
                shutdown: stop_rx.clone(),
            }
            .run(),
        ));
    }

    let mut ports: Vec<u16> = bound
        .https
        .iter()
        .chain(&bound.http)
        .map(|a| a.port())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    let _ = shared.listen_ports.set(ports);
    // Purges missed while this node was away are applied before it serves from its cache.
    if let Some(bus) = bus {
        crate::admin::fanout::start(&shared, bus).await;
    }
    for server in servers {
        tokio::spawn(server);
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
    let reloader = tokio::spawn(reload_loop(
        shared.clone(),
        source.clone(),
        hup,
        stop_rx.clone(),
    ));

    tracing::info!(
        version = shared.runtime().snapshot.version,
        config = %source.describe(),
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
    // First of all: `/readyz` says 503 from now on, so a load balancer probing an admin
    // connection still open sees the node going away rather than a healthy one.
    shared.draining.store(true, Ordering::Relaxed);
    // Leave the control plane's live set first: purges stop waiting for this node.
    let _ = tokio::time::timeout(Duration::from_secs(1), source.stopping()).await;
    let open = tracker.active();
    tracing::info!(open_connections = open, grace = ?grace, "shutting down: no new connections, draining");
    let _ = stop_tx.send(true);
    let started = edge_core::clock::now();
    let drained = tokio::time::timeout(grace, tracker.wait_idle())
        .await
        .is_ok();
    if !drained {
        tracing::warn!(
            still_open = tracker.active(),
            "grace period over; closing the rest"
        );
    }
    // Objects stored in the last moments are still being written to disk: let them land, in
    // what is left of the grace period, so a restart finds them.
    let left = grace.saturating_sub(edge_core::clock::since(started));
    if tokio::time::timeout(left, shared.cache.store.flush())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; some cache writes did not reach the disk");
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

/// Reloads on SIGHUP and, when `[reload] watch_file` is on, when the source says it changed.
/// An invalid document is refused and logged; the running snapshot stays.
async fn reload_loop<S: ConfigSource>(
    shared: Arc<Shared>,
    source: Arc<S>,
    mut hup: tokio::signal::unix::Signal,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        // Read per round so a reload can turn watching on or off (its pace is the source's).
        let watch = source.always_watch() || shared.runtime().snapshot.reload.watch_file;
        let trigger = tokio::select! {
            _ = hup.recv() => "SIGHUP",
            () = source.changed(), if watch => {
                if source.always_watch() { "store change" } else { "file change" }
            }
            _ = shutting_down(&mut stop) => return,
        };
        reload(&shared, &*source, trigger).await;
    }
}

/// Compiling parses keys and certificates: CPU work kept off the runtime's threads. The
/// document comes back with the result (the source may keep it).
async fn compile_off_runtime(doc: Document) -> (Document, Result<Snapshot, ConfigError>) {
    let doc = Arc::new(doc);
    let input = doc.clone();
    let result = tokio::task::spawn_blocking(move || config::compile(&input))
        .await
        .unwrap_or_else(|e| {
            Err(ConfigError::Invalid(vec![config::Diagnostic {
                file: doc.name.clone(),
                location: None,
                reason: format!("compile task failed: {e}"),
            }]))
        });
    let doc = Arc::try_unwrap(doc).unwrap_or_else(|shared| (*shared).clone());
    (doc, result)
}

/// Fetches the source's current document and, when it is a revision the node does not serve
/// yet, compiles it and swaps it in.
pub async fn reload<S: ConfigSource>(shared: &Arc<Shared>, source: &S, trigger: &str) {
    let refuse = |e: ConfigError| {
        for d in e.diagnostics() {
            tracing::error!(
                trigger,
                "config reload refused, keeping version {}: {d}",
                shared.runtime().snapshot.version
            );
        }
    };
    let doc = match source.fetch().await {
        Ok(doc) => doc,
        Err(e) => return refuse(e),
    };
    let running = shared.runtime().snapshot.version;
    // Equal revisions of one source are equal documents: rebuilding the runtime would only
    // churn (a `touch`, a SIGHUP without an edit, a spurious wake-up).
    if doc.revision == running {
        tracing::info!(trigger, version = running, "config unchanged");
        return;
    }
    let (doc, compiled) = compile_off_runtime(doc).await;
    let snapshot = match compiled {
        Ok(snapshot) => snapshot,
        Err(e) => {
            source.refused(&doc, &e);
            crate::metrics::conns::CONNS.config_refused();
            return refuse(e);
        }
    };
    source.applied(&doc, &snapshot);
    crate::metrics::conns::CONNS.config_applied(snapshot.version);
    drop(doc);
    let old = shared.runtime();
    if snapshot.listen != old.snapshot.listen {
        tracing::warn!("listener settings changed; they take effect at the next restart");
    }
    if snapshot.cache != old.snapshot.cache {
        tracing::warn!("[cache] store settings changed; they take effect at the next restart");
    }
    let version = snapshot.version;
    let sites = snapshot.sites.len();
    source.apply_reload_settings(&snapshot.reload);
    shared.swap(snapshot);
    tracing::info!(
        trigger,
        version,
        previous = old.snapshot.version,
        sites,
        "config reloaded"
    );
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
