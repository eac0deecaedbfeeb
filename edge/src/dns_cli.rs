//! `edge dns --config FILE`: the GeoDNS server (`edge-dns`) as its own process. It reads the
//! same config as the edges (sites, `[dns]`, `[geo]`), reloads it when the file changes or on
//! SIGHUP (a refused file keeps the running zone), reads node reports from etcd when the file
//! has a `[store]` (or `--store` is given), and serves `/metrics` on `[dns] metrics`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::error::Error;

fn load(path: &Path) -> Result<config::Snapshot, Error> {
    config::load(path).map_err(|e| {
        for d in e.diagnostics() {
            eprintln!("{d}");
        }
        Error::Config(e)
    })
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        context: context.into(),
        source,
    }
}

pub async fn run(path: PathBuf, store_url: Option<String>) -> Result<(), Error> {
    let snapshot = load(&path)?;
    let dns = snapshot.dns.clone().ok_or_else(|| {
        Error::Dns(format!(
            "{}: no [dns] section: nothing to serve",
            path.display()
        ))
    })?;
    let geo = Arc::new(geo::GeoIp::default());
    refresh_geo(&geo, &snapshot).await;
    let mut node = control::NodeFile::read(&path).map_err(Error::Control)?;
    if let Some(url) = &store_url {
        node = node.with_store_url(url).map_err(Error::Control)?;
    }
    let store = if node.store.endpoints.is_empty() {
        None
    } else {
        Some(
            control::Store::connect(&node.store, &node.dir())
                .await
                .map_err(Error::Control)?,
        )
    };
    let server = Arc::new(
        edge_dns::Server::new(&snapshot, geo.clone()).map_err(|e| Error::Dns(e.to_string()))?,
    );
    let shutdown = CancellationToken::new();
    if let Some(addr) = dns.metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(io("binding dns.metrics"))?;
        let local = listener.local_addr().map_err(io("dns.metrics"))?;
        println!("listening dns-metrics {local}");
        tokio::spawn(metrics(listener, server.shared.metrics.clone()));
    }
    let mut term = signal(SignalKind::terminate()).map_err(io("installing SIGTERM"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(io("installing SIGHUP"))?;
    let stop = shutdown.clone();
    let reloader = server.clone();
    let poll = snapshot.reload.poll_interval;
    let mut stamp = modified(&path);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { stop.cancel(); return; }
                _ = tokio::signal::ctrl_c() => { stop.cancel(); return; }
                _ = hup.recv() => {}
                _ = tokio::time::sleep(poll) => {
                    let now = modified(&path);
                    if now == stamp { continue; }
                    stamp = now;
                }
            }
            match load(&path) {
                Ok(s) => {
                    refresh_geo(&geo, &s).await;
                    match reloader.reload(&s) {
                        Ok(()) => tracing::info!("dns: config reloaded"),
                        Err(e) => {
                            tracing::warn!(error = %e, "dns: reload refused, the running zone stays")
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "dns: config refused, the running zone stays"),
            }
        }
    });
    server
        .serve(
            &dns.listen,
            store,
            |bound| {
                let mut out = std::io::stdout().lock();
                for a in bound {
                    let _ = writeln!(out, "listening dns {a}");
                }
                let _ = writeln!(out, "ready");
                let _ = out.flush();
            },
            shutdown,
        )
        .await
        .map_err(|e| Error::Dns(e.to_string()))
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads the `[geo]` databases off the runtime threads (blocking file I/O).
async fn refresh_geo(geo: &Arc<geo::GeoIp>, snapshot: &config::Snapshot) {
    let paths = snapshot.geo.databases.clone();
    let g = geo.clone();
    match tokio::task::spawn_blocking(move || g.refresh(&paths)).await {
        Ok(r) => {
            for e in r.failed {
                tracing::warn!(error = %e, "dns: a geo database could not be read");
            }
        }
        Err(e) => tracing::warn!(error = %e, "dns: geo refresh task failed"),
    }
}

/// `GET /metrics`: the DNS server's metrics in the Prometheus text format.
async fn metrics(listener: tokio::net::TcpListener, m: Arc<edge_dns::metrics::Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let m = m.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let m = m.clone();
                    async move {
                        let (status, body) = if req.uri().path() == "/metrics" {
                            (http::StatusCode::OK, m.encode())
                        } else {
                            (http::StatusCode::NOT_FOUND, "not found\n".to_string())
                        };
                        http::Response::builder()
                            .status(status)
                            .header(
                                http::header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )
                            .body(Full::new(Bytes::from(body)))
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
