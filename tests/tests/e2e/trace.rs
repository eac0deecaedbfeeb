//! W3C Trace Context (issue 15): a client's valid `traceparent` reaches the origin with the same
//! trace id and this hop's span as the parent id (its `tracestate` as it came); without one, or
//! with an invalid one, a new trace is started (unless `[log] start_traces = false`); the access
//! log names the trace and the span the origin saw.

use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_e2e::client::{Conn, Proto, TLS_PROTOS};
use edge_e2e::raw::{OriginMode, Recorded, RecordingOrigin};
use edge_e2e::{Edge, Setup};
use http::Method;
use serde_json::Value;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// The access record of request `id`, once written.
fn wait_record(edge: &Edge, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = edge.log();
        let found = log
            .lines()
            .filter(|l| l.starts_with("{\"ts\":"))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|r| r["request_id"] == id);
        if let Some(r) = found {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no access record for {id}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The request the origin received for `target`.
async fn received(origin: &RecordingOrigin, target: &str) -> Recorded {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = origin.requests().into_iter().find(|r| r.target == target) {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "origin never got {target}: {:?}",
            origin.requests()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A `traceparent` split into (trace id, parent id, flags), checked to be well formed.
fn parts(tp: &str) -> (String, String, String) {
    let f: Vec<&str> = tp.split('-').collect();
    assert_eq!(f.len(), 4, "{tp}");
    assert_eq!(f[0], "00", "{tp}");
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && s.bytes().any(|b| b != b'0')
    };
    assert!(hex(f[1], 32) && hex(f[2], 16) && f[3].len() == 2, "{tp}");
    (f[1].to_string(), f[2].to_string(), f[3].to_string())
}

/// GET `path` over `proto` with `headers`; returns the request id.
async fn get(
    setup: &Setup,
    edge: &Edge,
    proto: Proto,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    let target = match proto {
        Proto::Plain => setup.target(edge.http(), "localhost"),
        _ => setup.target(edge.https(), "localhost"),
    };
    let mut conn = Conn::connect(proto, &target).await.expect("connect");
    let r = conn
        .send(Method::GET, path, headers, Bytes::new())
        .await
        .expect("GET");
    assert_eq!(r.status, 200, "{proto:?} {path}: {}", r.text());
    r.header("x-request-id").expect("x-request-id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_traceparent_reaches_the_origin_with_this_hop_as_parent() {
    let setup = Setup::new("trace-continue");
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let sent = format!("00-{TRACE}-{PARENT}-01");
    for proto in TLS_PROTOS {
        let path = format!("/continued-{proto:?}");
        let id = get(
            &setup,
            &edge,
            proto,
            &path,
            &[("traceparent", &sent), ("tracestate", "vendor=abc,other=1")],
        )
        .await;
        let got = received(&origin, &path).await;
        let tp = got.header_all("traceparent");
        assert_eq!(tp.len(), 1, "{proto:?}: {got:?}");
        let (trace, parent, flags) = parts(tp[0]);
        assert_eq!(trace, TRACE, "{proto:?}: the trace id is kept");
        assert_ne!(
            parent, PARENT,
            "{proto:?}: the parent id is this hop's span"
        );
        assert_eq!(flags, "01", "{proto:?}: flags are kept");
        assert_eq!(got.header("tracestate"), Some("vendor=abc,other=1"));
        let rec = wait_record(&edge, &id);
        assert_eq!(rec["trace_id"], TRACE, "{rec}");
        assert_eq!(rec["span_id"], parent.as_str(), "{rec}");
        assert_eq!(rec["parent_id"], PARENT, "{rec}");
    }
    // Each request is a span of its own, even with the same traceparent.
    let a = get(
        &setup,
        &edge,
        Proto::Plain,
        "/again-a",
        &[("traceparent", &sent)],
    )
    .await;
    let b = get(
        &setup,
        &edge,
        Proto::Plain,
        "/again-b",
        &[("traceparent", &sent)],
    )
    .await;
    assert_ne!(
        wait_record(&edge, &a)["span_id"],
        wait_record(&edge, &b)["span_id"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_is_started_when_absent_and_an_invalid_one_is_replaced() {
    let setup = Setup::new("trace-start");
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));

    let id = get(&setup, &edge, Proto::H2, "/absent", &[]).await;
    let got = received(&origin, "/absent").await;
    let (trace, parent, _) = parts(got.header("traceparent").expect("a traceparent"));
    let rec = wait_record(&edge, &id);
    assert_eq!(rec["trace_id"], trace.as_str(), "{rec}");
    assert_eq!(rec["span_id"], parent.as_str(), "{rec}");
    assert!(rec["parent_id"].is_null(), "{rec}");

    let invalid = [
        format!("00-{}-{PARENT}-01", "0".repeat(32)),
        format!("00-{TRACE}-{}-01", "0".repeat(16)),
        format!("01-{TRACE}-{PARENT}-01"),
        format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
        format!("00-{TRACE}-{PARENT}-1"),
        "garbage".to_string(),
    ];
    for (i, bad) in invalid.iter().enumerate() {
        let path = format!("/invalid-{i}");
        let id = get(
            &setup,
            &edge,
            Proto::Plain,
            &path,
            &[("traceparent", bad), ("tracestate", "vendor=abc")],
        )
        .await;
        let got = received(&origin, &path).await;
        let tp = got.header_all("traceparent");
        assert_eq!(tp.len(), 1, "{bad}: {got:?}");
        let (trace, _, _) = parts(tp[0]);
        assert_ne!(trace, TRACE, "{bad}: a new trace");
        assert_eq!(
            got.header("tracestate"),
            None,
            "{bad}: the client's tracestate belongs to another trace"
        );
        assert_eq!(wait_record(&edge, &id)["trace_id"], trace.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_start_traces_off_only_the_clients_traces_go_on() {
    let setup = Setup::new("trace-off");
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let edge = Edge::start(
        &setup.dir,
        &setup.config(origin.addr, "\n[log]\nstart_traces = false\n"),
    );
    let id = get(&setup, &edge, Proto::Plain, "/none", &[]).await;
    let got = received(&origin, "/none").await;
    assert_eq!(got.header("traceparent"), None, "{got:?}");
    assert!(wait_record(&edge, &id)["trace_id"].is_null());

    let id = get(
        &setup,
        &edge,
        Proto::Plain,
        "/bad",
        &[("traceparent", "00-zz-zz-01"), ("tracestate", "a=1")],
    )
    .await;
    let got = received(&origin, "/bad").await;
    assert_eq!(
        got.header("traceparent"),
        None,
        "an invalid one is not passed on"
    );
    assert_eq!(got.header("tracestate"), None);
    assert!(wait_record(&edge, &id)["trace_id"].is_null());

    let sent = format!("00-{TRACE}-{PARENT}-00");
    let id = get(
        &setup,
        &edge,
        Proto::Plain,
        "/good",
        &[("traceparent", &sent)],
    )
    .await;
    let got = received(&origin, "/good").await;
    let (trace, parent, flags) = parts(got.header("traceparent").expect("continued"));
    assert_eq!((trace.as_str(), flags.as_str()), (TRACE, "00"));
    assert_eq!(wait_record(&edge, &id)["span_id"], parent.as_str());
}
