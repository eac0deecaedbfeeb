//! A stand-in OTLP/HTTP collector: accepts `POST /v1/traces` (protobuf), decodes each
//! `ExportTraceServiceRequest` with the protocol's own types and keeps it for the test.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

/// What the collector received: every decoded request, and the paths and content types used.
#[derive(Default)]
pub struct Received {
    pub requests: Vec<ExportTraceServiceRequest>,
    pub posts: Vec<(String, String)>,
}

pub struct Collector {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    pub async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind collector");
        let addr = listener.local_addr().expect("collector addr");
        let received = Arc::new(Mutex::new(Received::default()));
        let r = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let r = r.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let r = r.clone();
                            async move {
                                let path = req.uri().path().to_string();
                                let ctype = req
                                    .headers()
                                    .get("content-type")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_string();
                                let body = req.into_body().collect().await?.to_bytes();
                                let decoded = ExportTraceServiceRequest::decode(body.as_ref());
                                let mut got = r.lock().expect("lock");
                                got.posts.push((path, ctype));
                                let status = match decoded {
                                    Ok(d) => {
                                        got.requests.push(d);
                                        200
                                    }
                                    Err(_) => 400,
                                };
                                let mut resp = Response::new(Full::new(Bytes::new()));
                                *resp.status_mut() = http::StatusCode::from_u16(status)
                                    .unwrap_or(http::StatusCode::BAD_REQUEST);
                                resp.headers_mut().insert(
                                    "content-type",
                                    http::HeaderValue::from_static("application/x-protobuf"),
                                );
                                Ok::<_, hyper::Error>(resp)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Collector {
            addr,
            received,
            task,
        }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
        let got = self.received.lock().expect("lock");
        got.requests
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| ss.spans.clone())
            .collect()
    }

    /// Waits until at least `n` spans arrived (the edge exports once a second).
    pub async fn wait_spans(
        &self,
        n: usize,
        within: Duration,
    ) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
        let deadline = Instant::now() + within;
        loop {
            let spans = self.spans();
            if spans.len() >= n || Instant::now() > deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}
