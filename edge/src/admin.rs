//! The admin listener: plain HTTP/1.1 for operators, never for site traffic.
//! `GET /metrics` returns every counter in the Prometheus text format.

use cache::Storage as _;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::{self, ProxyBody};
use crate::lifecycle::shutting_down;
use crate::metrics::{METRICS, PURGE_METRICS};
use crate::pipeline::Shared;

pub async fn run(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutting_down(&mut shutdown) => break,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(answer(&shared, req.method(), req.uri().path()).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(shared: &Shared, method: &Method, path: &str) -> Response<ProxyBody> {
    let (status, content_type, text) = match (method, path) {
        (&Method::GET, "/metrics") => {
            let store = &shared.cache.store;
            let mut text = METRICS.render(store.memory_bytes().await, store.disk_bytes());
            PURGE_METRICS.render(&mut text, store.tag_index_size());
            render_pools(&shared.runtime().pools, &mut text);
            (
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text,
            )
        }
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "use GET\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: the admin listener serves GET /metrics\n".to_string(),
        ),
    };
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Per-pool and per-endpoint metrics of the current snapshot's pools.
fn render_pools(pools: &origin_shield::Pools, out: &mut String) {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering;
    let mut pools: Vec<_> = pools.iter().collect();
    pools.sort_by(|a, b| a.name.cmp(&b.name));
    out.push_str("# HELP edge_origin_connections_opened_total Connections opened to the pool's endpoints (the rest of its requests reused one).\n# TYPE edge_origin_connections_opened_total counter\n");
    for p in &pools {
        let _ = writeln!(
            out,
            "edge_origin_connections_opened_total{{pool=\"{}\"}} {}",
            p.name,
            p.client.connections_opened()
        );
    }
    type Gauge = fn(&origin_shield::Endpoint, &[std::net::SocketAddr]) -> String;
    let gauges: [(&str, &str, Gauge); 3] = [
        (
            "edge_origin_endpoint_up",
            "1 when the endpoint is in rotation (healthy and not ejected).",
            |e, up| u8::from(up.contains(&e.addr)).to_string(),
        ),
        (
            "edge_origin_endpoint_in_flight",
            "Requests in flight to the endpoint.",
            |e, _| e.state.in_flight.load(Ordering::Relaxed).to_string(),
        ),
        (
            "edge_origin_endpoint_latency_ewma_seconds",
            "Moving average of response-head latency.",
            |e, _| format!("{:.6}", e.state.ewma().as_secs_f64()),
        ),
    ];
    let members: Vec<_> = pools
        .iter()
        .map(|p| (p, p.members(), p.in_rotation()))
        .collect();
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (p, m, up) in &members {
            for e in &m.endpoints {
                let _ = writeln!(
                    out,
                    "{name}{{pool=\"{}\",endpoint=\"{}\"}} {}",
                    p.name,
                    e.addr,
                    value(e, up)
                );
            }
        }
    }
}
