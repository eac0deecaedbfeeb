//! The admin listener: HTTP/1.1 for operators and purge tooling, never for site traffic.
//! Over TLS whenever it is off loopback (config refuses otherwise). Routes (see
//! `purge_api::openapi::ROUTES`, served as an OpenAPI document at `/openapi.json`):
//! `GET /metrics` (Prometheus text), `POST /purge`, `GET /purge/{id}`, `GET /openapi.json`,
//! and for operators and load balancers (see `status`): `GET /healthz`, `GET /readyz`,
//! `POST /drain`, `GET /status.json` and `GET /`, the status page.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::{self, ProxyBody};
use crate::lifecycle::shutting_down;
use crate::pipeline::Shared;

pub mod fanout;
pub mod purge;
pub mod status;

/// What the router serves; each is one entry of `purge_api::openapi::ROUTES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Purge,
    PurgeRecord(String),
    OpenApi,
    Healthz,
    Readyz,
    Drain,
    StatusJson,
    StatusPage,
}

/// The route for a method and path: `Ok(None)` for an unknown path, `Err(allowed)` for a known
/// path asked with the wrong method.
pub fn route(method: &Method, path: &str) -> Result<Option<Route>, &'static str> {
    let (route, allowed) = match path {
        "/metrics" => (Route::Metrics, Method::GET),
        "/purge" => (Route::Purge, Method::POST),
        "/openapi.json" => (Route::OpenApi, Method::GET),
        "/healthz" => (Route::Healthz, Method::GET),
        "/readyz" => (Route::Readyz, Method::GET),
        "/drain" => (Route::Drain, Method::POST),
        "/status.json" => (Route::StatusJson, Method::GET),
        "/" => (Route::StatusPage, Method::GET),
        p => match p.strip_prefix("/purge/") {
            Some(id) if !id.is_empty() && !id.contains('/') => {
                (Route::PurgeRecord(id.to_string()), Method::GET)
            }
            _ => return Ok(None),
        },
    };
    if *method == allowed || (allowed == Method::GET && *method == Method::HEAD) {
        Ok(Some(route))
    } else if allowed == Method::GET {
        Err("GET, HEAD")
    } else {
        Err("POST")
    }
}

pub async fn run(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    status::start_sampler();
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
            // The certificate is the current snapshot's, per connection: a reload changes it.
            let tls = shared.runtime().snapshot.admin.tls.clone();
            let service_shared = shared.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                let shared = service_shared.clone();
                async move { Ok::<_, Infallible>(answer(&shared, req).await) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10));
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
                Some(cert) => {
                    let Some(cfg) = tls_config(cert) else {
                        return;
                    };
                    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                    let handshake = tokio::time::timeout(
                        shared.runtime().snapshot.timeouts.tls_handshake,
                        acceptor.accept(stream),
                    );
                    if let Ok(Ok(tls)) = handshake.await {
                        let _ = http.serve_connection(TokioIo::new(tls), service).await;
                    }
                }
            }
        });
    }
}

/// TLS 1.2/1.3, HTTP/1.1 only, the admin certificate for every name.
fn tls_config(cert: Arc<rustls::sign::CertifiedKey>) -> Option<Arc<rustls::ServerConfig>> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(Fixed(cert)));
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Some(Arc::new(cfg))
}

async fn answer(shared: &Shared, req: Request<Incoming>) -> Response<ProxyBody> {
    let route = match route(req.method(), req.uri().path()) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return text(
                StatusCode::NOT_FOUND,
                "not found: see GET /openapi.json for the admin API\n".into(),
            );
        }
        Err(allowed) => {
            let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, format!("use {allowed}\n"));
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allowed));
            return resp;
        }
    };
    let rt = shared.runtime();
    let admin = &rt.snapshot.admin;
    match route {
        Route::OpenApi => json(StatusCode::OK, &purge_api::openapi::document()),
        // Load balancers and orchestrators probe these without credentials.
        Route::Healthz => status::healthz(),
        Route::Readyz => status::readyz(shared),
        Route::StatusPage => status::page(),
        Route::Drain => status::drain(shared, &rt, req).await,
        // Read like the metrics (the same counters, and more).
        Route::StatusJson => {
            if !admin.open_metrics
                && let Err(resp) = purge::reader(admin, req.headers())
            {
                return *resp;
            }
            status::status_json(shared, &rt)
        }
        Route::Metrics => {
            if !admin.open_metrics
                && let Err(resp) = purge::reader(admin, req.headers())
            {
                return *resp;
            }
            let accept = req.headers().get(header::ACCEPT);
            let openmetrics = accept
                .and_then(|v| v.to_str().ok())
                .is_some_and(wants_openmetrics);
            let (body, content_type) = crate::metrics::requests::render(openmetrics);
            let mut resp = text(StatusCode::OK, body);
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            resp.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("accept"));
            resp
        }
        Route::PurgeRecord(id) => {
            if let Err(resp) = purge::reader(admin, req.headers()) {
                return *resp;
            }
            let record = match shared.bus.get() {
                Some(bus) => fanout::record(shared, bus, &id).await,
                None => shared.purges.get(&id),
            };
            match record {
                Some(record) => json(StatusCode::OK, &record),
                None => json(
                    StatusCode::NOT_FOUND,
                    &serde_json::json!({"error": format!("no purge {id} in this node's journal")}),
                ),
            }
        }
        Route::Purge => purge::post(shared, &rt, req).await,
    }
}

/// Whether an `Accept` field prefers OpenMetrics to the Prometheus text format (as
/// Prometheus itself asks: `application/openmetrics-text;version=1.0.0,...,text/plain;q=0.5`).
/// Ties go to OpenMetrics; no mention, or `q=0`, means the text format.
fn wants_openmetrics(accept: &str) -> bool {
    let mut best = (0.0_f32, 0.0_f32); // (openmetrics, text/plain or */*)
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/openmetrics-text" => best.0 = best.0.max(q),
            "text/plain" | "text/*" | "*/*" => best.1 = best.1.max(q),
            _ => {}
        }
    }
    best.0 > 0.0 && best.0 >= best.1
}

pub(crate) fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut resp = Response::new(body::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

pub(crate) fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<ProxyBody> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut resp = Response::new(body::full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// One certificate for every name.
#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Per-pool and per-endpoint metrics of the current snapshot's pools.
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The router serves exactly what `purge_api::openapi::ROUTES` (and so `/openapi.json`)
    /// lists.
    #[test]
    fn the_router_and_the_documented_routes_agree() {
        for (method, path) in purge_api::openapi::ROUTES {
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let concrete = path.replace("{id}", "n1-1-abcdef");
            assert!(
                matches!(route(&m, &concrete), Ok(Some(_))),
                "{method} {path} is documented but not served"
            );
        }
        let probes = [
            "/",
            "/metrics",
            "/purge",
            "/purge/n1-1-abcdef",
            "/openapi.json",
            "/healthz",
            "/readyz",
            "/drain",
            "/status.json",
        ];
        for path in probes {
            for m in [Method::GET, Method::POST] {
                if let Ok(Some(r)) = route(&m, path) {
                    let template = match r {
                        Route::PurgeRecord(_) => "/purge/{id}",
                        _ => path,
                    };
                    assert!(
                        purge_api::openapi::ROUTES.contains(&(m.as_str(), template)),
                        "{m} {path} is served but not documented"
                    );
                }
            }
        }
        assert_eq!(route(&Method::GET, "/status"), Ok(None));
        assert_eq!(route(&Method::GET, "/drain"), Err("POST"));
        assert_eq!(route(&Method::POST, "/readyz"), Err("GET, HEAD"));
        assert_eq!(route(&Method::HEAD, "/healthz"), Ok(Some(Route::Healthz)));
    }

    #[test]
    fn metrics_format_follows_accept() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let cases = [
            (prometheus, true),
            ("application/openmetrics-text; version=1.0.0", true),
            ("text/plain", false),
            ("*/*", false),
            ("", false),
            ("text/plain;q=1, application/openmetrics-text;q=0.5", false),
            ("application/openmetrics-text;q=0, */*", false),
            ("application/json", false),
        ];
        for (accept, want) in cases {
            assert_eq!(wants_openmetrics(accept), want, "{accept}");
        }
    }
}
