//! OTLP span export (issue 15): with `[log] otlp`, each request of a sampled trace becomes a
//! server span at the collector (OTLP/HTTP, protobuf, decoded here by the protocol's own
//! types), with the trace id the origin saw, this hop's span id (the origin's parent), the
//! client's span as parent, and the request's attributes; unsampled traces send nothing, and
//! the access log can be off meanwhile.

use std::time::Duration;

use bytes::Bytes;
use edge_e2e::client::{Conn, Proto};
use edge_e2e::collector::Collector;
use edge_e2e::raw::{OriginMode, RecordingOrigin};
use edge_e2e::{Edge, Setup};
use http::Method;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn string(attrs: &[KeyValue], key: &str) -> String {
    match attr(attrs, key) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        other => panic!("{key}: {other:?} in {attrs:?}"),
    }
}

fn int(attrs: &[KeyValue], key: &str) -> i64 {
    match attr(attrs, key) {
        Some(any_value::Value::IntValue(n)) => *n,
        other => panic!("{key}: {other:?} in {attrs:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_requests_reach_the_collector_as_server_spans() {
    let setup = Setup::new("otlp");
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let collector = Collector::start().await;
    let extra = format!(
        "\n[log]\naccess = \"off\"\notlp = \"http://{}\"\n",
        collector.addr
    );
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, &extra));
    let target = setup.target(edge.https(), "localhost");
    let mut conn = Conn::connect(Proto::H2, &target).await.expect("connect");
    let mut send = async |path: &str, headers: &[(&str, &str)]| {
        let r = conn
            .send(Method::GET, path, headers, Bytes::new())
            .await
            .expect("GET");
        assert_eq!(r.status, 200, "{path}");
        r.header("x-request-id").expect("x-request-id").to_string()
    };
    let continued = send(
        "/continued",
        &[("traceparent", &format!("00-{TRACE}-{PARENT}-01"))],
    )
    .await;
    let started = send("/started", &[]).await;
    let unsampled = format!("00-{}-{PARENT}-00", "ab".repeat(16));
    send("/unsampled", &[("traceparent", &unsampled)]).await;

    let spans = collector.wait_spans(2, Duration::from_secs(10)).await;
    // The unsampled one could only come with or after the others: give it a batch to show up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let spans = if spans.len() == 2 {
        collector.spans()
    } else {
        spans
    };
    assert_eq!(
        spans.len(),
        2,
        "two sampled requests, two spans: {spans:#?}"
    );
    {
        let got = collector.received.lock().expect("lock");
        for (path, ctype) in &got.posts {
            assert_eq!(path, "/v1/traces");
            assert_eq!(ctype, "application/x-protobuf");
        }
        let resource = got.requests[0].resource_spans[0]
            .resource
            .as_ref()
            .expect("a resource");
        assert_eq!(string(&resource.attributes, "service.name"), "edge");
        assert_eq!(
            string(&resource.attributes, "service.instance.id"),
            "e2e-edge"
        );
    }

    let by_path = |p: &str| {
        spans
            .iter()
            .find(|s| string(&s.attributes, "url.path") == p)
            .unwrap_or_else(|| panic!("no span for {p}: {spans:#?}"))
            .clone()
    };
    let origin_parent = |p: &str| {
        let r = origin
            .requests()
            .into_iter()
            .find(|r| r.target == p)
            .unwrap_or_else(|| panic!("origin never got {p}"));
        let tp = r.header("traceparent").expect("traceparent").to_string();
        let f: Vec<&str> = tp.split('-').collect();
        (f[1].to_string(), f[2].to_string())
    };

    let c = by_path("/continued");
    assert_eq!(hex(&c.trace_id), TRACE);
    assert_eq!(
        hex(&c.parent_span_id),
        PARENT,
        "the client's span is the parent"
    );
    assert_eq!(
        (hex(&c.trace_id), hex(&c.span_id)),
        origin_parent("/continued"),
        "the origin's parent is this span"
    );
    assert_eq!(c.kind, SpanKind::Server as i32);
    assert_eq!(c.name, "GET");
    assert!(c.end_time_unix_nano >= c.start_time_unix_nano && c.start_time_unix_nano > 0);
    assert_eq!(int(&c.attributes, "http.response.status_code"), 200);
    assert_eq!(string(&c.attributes, "http.request.method"), "GET");
    assert_eq!(string(&c.attributes, "network.protocol.version"), "2");
    assert_eq!(string(&c.attributes, "edge.site"), "local");
    assert_eq!(string(&c.attributes, "edge.request_id"), continued);
    assert!(string(&c.attributes, "edge.cache_status").contains("fwd="));
    assert!(
        string(&c.attributes, "edge.origin.endpoint").ends_with(&origin.addr.port().to_string())
    );

    let s = by_path("/started");
    assert!(s.parent_span_id.is_empty(), "a started trace has no parent");
    assert_eq!(
        (hex(&s.trace_id), hex(&s.span_id)),
        origin_parent("/started")
    );
    assert_eq!(string(&s.attributes, "edge.request_id"), started);

    assert_eq!(
        edge.metric("edge_otlp_spans_total{result=\"exported\"}")
            .await,
        2
    );
    assert_eq!(
        edge.metric("edge_otlp_spans_total{result=\"failed\"}")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_spans_not_requests() {
    let setup = Setup::new("otlp-down");
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    // A port nobody listens on: bound, read, closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let extra = format!("\n[log]\notlp = \"http://{closed}\"\n");
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, &extra));
    let target = setup.target(edge.http(), "localhost");
    let mut conn = Conn::connect(Proto::Plain, &target).await.expect("connect");
    for i in 0..20 {
        let r = conn
            .send(Method::GET, &format!("/down-{i}"), &[], Bytes::new())
            .await
            .expect("GET");
        assert_eq!(r.status, 200);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while edge
        .metric("edge_otlp_spans_total{result=\"failed\"}")
        .await
        < 20
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            edge.metrics_text().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        edge.metric("edge_otlp_spans_total{result=\"exported\"}")
            .await,
        0
    );
}
