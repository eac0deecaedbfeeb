//! Request framing on every path to the origin: bodies on GET/HEAD, request smuggling through a
//! pooled origin connection, malformed HTTP/3 requests, origin responses with broken framing,
//! slow request bodies and idle connections.

use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_e2e::client::{Conn, Proto};
use edge_e2e::origin::Origin;
use edge_e2e::raw::{
    H3_MESSAGE_ERROR, H3Outcome, OriginMode, Recorded, RecordingOrigin, h1_exchange,
    h1_exchange_paced, h2_request_paced, h3_raw, parse_responses,
};
use edge_e2e::{Edge, Setup};
use http::Method;

fn config(origin: std::net::SocketAddr, timeouts: &str, site_extra: &str) -> String {
    format!(
        r#"
[node]
name = "e2e-edge"

[listen]
https = ["127.0.0.1:0"]
http = ["127.0.0.1:0"]
admin = ["127.0.0.1:0"]

[tls]
cert = "default.pem"
key = "default.key"

[timeouts]
{timeouts}

[pools.origin]
endpoints = ["{origin}"]

[[sites]]
name = "local"
hosts = ["localhost", "127.0.0.1"]
plain_http = "proxy"
routes = [{{ path_prefix = "/", pool = "origin" }}]
{site_extra}
"#
    )
}

const SHORT: &str = "origin_response_header = \"3s\"";

fn is_hit(cache_status: Option<&str>) -> bool {
    cache_status.is_some_and(|c| c.split(';').any(|p| p.trim() == "hit"))
}

fn requests_for(origin: &RecordingOrigin, path: &str) -> Vec<Recorded> {
    origin
        .requests()
        .into_iter()
        .filter(|r| r.target == path)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_with_a_body_is_forwarded_with_its_body_and_not_cached() {
    let setup = Setup::new("get-body");
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let edge = Edge::start(&setup.dir, &config(origin.addr, SHORT, ""));
    let target = setup.target(edge.https(), "localhost");
    let plain = setup.target(edge.http(), "localhost");
    for proto in [Proto::Plain, Proto::H1, Proto::H2, Proto::H3] {
        let path = format!("/gb/{proto:?}");
        let t = if proto == Proto::Plain {
            &plain
        } else {
            &target
        };
        let mut conn = Conn::connect(proto, t).await.expect("connect");
        let r = conn
            .send(Method::GET, &path, &[], Bytes::from_static(b"hello-body"))
            .await
            .expect("GET with body");
        assert_eq!(r.status, 200, "{proto:?}");
        let status = r.header("cache-status").unwrap_or("");
        assert!(
            status.contains("fwd=bypass") && status.contains("detail=body"),
            "{proto:?}: {status}"
        );
        let seen = requests_for(&origin, &path);
        assert_eq!(seen.len(), 1, "{proto:?}");
        assert_eq!(seen[0].body, b"hello-body", "{proto:?}: {:?}", seen[0]);
        assert_eq!(seen[0].header_all("content-length"), ["10"], "{proto:?}");
        assert!(seen[0].header("transfer-encoding").is_none());
        // Nothing was stored for the URL: a plain GET asks the origin, then hits.
        let r = conn.get(&path).await.expect("GET");
        assert_eq!(r.status, 200);
        assert!(!is_hit(r.header("cache-status")));
        let r = conn.get(&path).await.expect("GET");
        assert!(is_hit(r.header("cache-status")), "{proto:?}");
        assert_eq!(requests_for(&origin, &path).len(), 2, "{proto:?}");
    }
    // HEAD with a body over a raw socket.
    let out = h1_exchange(
        edge.http(),
        b"HEAD /gb/head HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc",
        Duration::from_millis(1500),
    )
    .await;
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let seen = requests_for(&origin, "/gb/head");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, b"abc");
}

/// The attack end to end: an origin that answers before reading the body, a GET with a body,
/// then a POST whose body hides a request. The origin must see exactly the requests the client
/// meant, on every protocol, however the edge pools its origin connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_body_cannot_smuggle_a_request_to_the_origin() {
    let setup = Setup::new("smuggle");
    let origin = RecordingOrigin::start(OriginMode::AnswerBeforeBody).await;
    let edge = Edge::start(&setup.dir, &config(origin.addr, SHORT, ""));
    let hidden = "GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";
    for round in 0..3 {
        let raw = format!(
            "GET /sm/a{round} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello world\
             POST /sm/b{round} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{hidden}",
            hidden.len()
        );
        let out = h1_exchange(edge.http(), raw.as_bytes(), Duration::from_millis(1500)).await;
        let responses = parse_responses(&out);
        assert_eq!(responses.len(), 2, "{}", String::from_utf8_lossy(&out));
        assert!(responses.iter().all(|r| r.status == 200), "{responses:?}");
    }
    let target = setup.target(edge.https(), "localhost");
    for proto in [Proto::H1, Proto::H2, Proto::H3] {
        let mut conn = Conn::connect(proto, &target).await.expect("connect");
        for (method, path, body) in [
            (Method::GET, format!("/sm/{proto:?}/a"), "hello world"),
            (Method::POST, format!("/sm/{proto:?}/b"), hidden),
        ] {
            let r = conn
                .send(method, &path, &[], Bytes::from(body.to_string()))
                .await
                .expect("request");
            assert_eq!(r.status, 200, "{proto:?} {path}");
        }
    }
    // Let any smuggled bytes arrive before looking.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = origin.requests();
    let summary: Vec<(String, String, String)> = seen
        .iter()
        .map(|r| {
            (
                r.method.clone(),
                r.target.clone(),
                String::from_utf8_lossy(&r.body).into_owned(),
            )
        })
        .collect();
    assert_eq!(seen.len(), 6 + 6, "exactly the requests sent: {summary:#?}");
    assert!(
        seen.iter()
            .all(|r| r.target != "/smuggled" && !r.is_garbage()),
        "{summary:#?}"
    );
    for r in &seen {
        let want: &[u8] = if r.method == "GET" {
            b"hello world"
        } else {
            hidden.as_bytes()
        };
        assert_eq!(r.body, want, "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http3_requests_are_reset_and_reach_no_origin() {
    let setup = Setup::new("h3-malformed");
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let edge = Edge::start(&setup.dir, &config(origin.addr, SHORT, ""));
    let target = setup.target(edge.https(), "localhost");
    let head = |method: &'static str, path: &'static str| {
        vec![
            (":method", method),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", path),
        ]
    };
    let with = |mut fields: Vec<(&'static str, &'static str)>,
                extra: &[(&'static str, &'static str)]| {
        fields.extend_from_slice(extra);
        fields
    };
    let body54 = [b'x'; 54];
    type Fields = Vec<(&'static str, &'static str)>;
    let cases: Vec<(&str, Fields, Vec<&[u8]>)> = vec![
        (
            "te gzip",
            with(head("GET", "/m/1"), &[("te", "gzip")]),
            vec![],
        ),
        (
            "connection",
            with(head("GET", "/m/2"), &[("connection", "keep-alive")]),
            vec![],
        ),
        (
            "transfer-encoding",
            with(head("POST", "/m/3"), &[("transfer-encoding", "chunked")]),
            vec![b"5\r\nhello\r\n0\r\n\r\n"],
        ),
        (
            "upgrade",
            with(head("GET", "/m/4"), &[("upgrade", "websocket")]),
            vec![],
        ),
        (
            "cl abc",
            with(head("POST", "/m/5"), &[("content-length", "abc")]),
            vec![b"abc"],
        ),
        (
            "cl list",
            with(head("POST", "/m/6"), &[("content-length", "5, 6")]),
            vec![b"hello"],
        ),
        (
            "cl negative",
            with(head("POST", "/m/7"), &[("content-length", "-1")]),
            vec![],
        ),
        (
            "two cl",
            with(
                head("POST", "/m/8"),
                &[("content-length", "5"), ("content-length", "6")],
            ),
            vec![b"hello"],
        ),
        (
            "cl short",
            with(head("POST", "/m/9"), &[("content-length", "5")]),
            vec![&body54],
        ),
        (
            "cl long",
            with(head("POST", "/m/10"), &[("content-length", "60")]),
            vec![b"0123456789"],
        ),
        (
            "duplicate :path",
            with(head("GET", "/m/11"), &[(":path", "/m/11b")]),
            vec![],
        ),
        (
            "pseudo after regular",
            vec![
                (":method", "GET"),
                (":scheme", "https"),
                ("accept", "*/*"),
                (":authority", "localhost"),
                (":path", "/m/12"),
            ],
            vec![],
        ),
    ];
    for (what, fields, data) in &cases {
        let outcome = h3_raw(&target, fields, data, true).await;
        assert_eq!(outcome, H3Outcome::Reset(H3_MESSAGE_ERROR), "{what}");
    }
    // A well-formed request on the same listener works, body and all.
    let ok = h3_raw(
        &target,
        &with(head("POST", "/m/ok"), &[("content-length", "5")]),
        &[b"hello"],
        true,
    )
    .await;
    assert!(
        matches!(&ok, H3Outcome::Response(r) if r.status == 200),
        "{ok:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = origin.requests();
    assert_eq!(
        seen.len(),
        1,
        "only the valid request reached the origin: {seen:#?}"
    );
    assert_eq!(seen[0].target, "/m/ok");
    assert_eq!(seen[0].body, b"hello");

    // HTTP/2 does the same for a content-length the DATA overruns (hyper's h2 checks it),
    // also when the DATA frame comes in a later read than the head (it raced under load).
    for (path, pause) in [
        ("/m/h2", None),
        ("/m/h2-later", Some(Duration::from_millis(150))),
    ] {
        let r = h2_request_paced(
            &target,
            "POST",
            &format!("https://localhost:{}{path}", edge.https().port()),
            &[("content-length", "5")],
            Some(&body54),
            pause,
        )
        .await;
        assert!(r.is_err(), "{path}: {r:?}");
    }
    // An honest body sent after a pause still goes through.
    let ok = h2_request_paced(
        &target,
        "POST",
        &format!("https://localhost:{}/m/h2-ok", edge.https().port()),
        &[("content-length", "5")],
        Some(b"hello"),
        Some(Duration::from_millis(150)),
    )
    .await
    .expect("honest HTTP/2 POST");
    assert_eq!(ok.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(requests_for(&origin, "/m/h2").is_empty());
    assert!(requests_for(&origin, "/m/h2-later").is_empty());
    assert_eq!(requests_for(&origin, "/m/h2-ok")[0].body, b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_responses_with_broken_framing_are_never_stored() {
    let setup = Setup::new("origin-framing");
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let edge = Edge::start(&setup.dir, &config(origin.addr, SHORT, ""));
    let target = setup.target(edge.http(), "localhost");
    for path in ["/cl-te", "/dup-cl"] {
        for _ in 0..2 {
            let r = edge_e2e::client::get(Proto::Plain, &target, path)
                .await
                .expect("GET");
            assert!(!is_hit(r.header("cache-status")), "{path}: {r:?}");
            if r.status == 200 {
                assert_eq!(r.body.as_ref(), b"hello", "{path}");
            } else {
                assert_eq!(r.status, 502, "{path}");
            }
        }
        assert_eq!(requests_for(&origin, path).len(), 2, "{path} was stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_request_body_is_cut_off_while_an_honest_upload_is_not() {
    let setup = Setup::new("slow-body");
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let site = "request_body_min_rate = 1000\nrequest_body_grace = \"1s\"\n";
    let edge = Edge::start(
        &setup.dir,
        &config(origin.addr, "origin_response_header = \"20s\"", site),
    );
    let head = b"POST /upload/slow HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n";
    let mut parts: Vec<&[u8]> = vec![head];
    parts.extend(std::iter::repeat_n(&b"x"[..], 20));
    let started = Instant::now();
    let out = h1_exchange_paced(
        edge.http(),
        &parts,
        Duration::from_millis(300),
        Duration::from_millis(1500),
    )
    .await;
    let responses = parse_responses(&out);
    assert_eq!(responses.len(), 1, "{}", String::from_utf8_lossy(&out));
    assert_eq!(responses[0].status, 408, "{:?}", responses[0]);
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    assert!(
        requests_for(&origin, "/upload/slow")
            .iter()
            .all(|r| r.body.len() < 100_000),
        "the origin never got the whole trickled body"
    );

    // 2 MiB as fast as the client can: far above the minimum rate.
    let target = setup.target(edge.https(), "localhost");
    for proto in [Proto::H1, Proto::H2, Proto::H3] {
        let path = format!("/upload/{proto:?}");
        let r = edge_e2e::client::request(
            proto,
            &target,
            Method::POST,
            &path,
            &[],
            Bytes::from(vec![7u8; 2 << 20]),
        )
        .await
        .expect("upload");
        assert_eq!(r.status, 200, "{proto:?}");
        assert_eq!(requests_for(&origin, &path)[0].body.len(), 2 << 20);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_and_http3_connections_are_closed_but_busy_ones_are_not() {
    let setup = Setup::new("idle");
    let origin = Origin::start().await;
    let edge = Edge::start(
        &setup.dir,
        &config(
            origin.addr,
            "client_idle = \"1s\"\norigin_response_header = \"5s\"",
            "",
        ),
    );
    let target = setup.target(edge.https(), "localhost");

    // A request that takes longer than the idle timeout is not cut.
    for proto in [Proto::H2, Proto::H3] {
        let mut conn = Conn::connect(proto, &target).await.expect("connect");
        let r = conn.get("/slow?ms=2500").await.expect("slow request");
        assert_eq!(r.status, 200, "{proto:?}");
        assert!(r.error.is_none(), "{proto:?}");
    }

    // HTTP/2: after one request, the connection goes once idle.
    let mut h2 = Conn::connect(Proto::H2, &target).await.expect("h2");
    assert_eq!(h2.get("/bytes/10").await.expect("GET").status, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        h2.get("/bytes/10").await.is_err(),
        "idle HTTP/2 connection still open"
    );

    // HTTP/3: the QUIC connection is closed by the edge (pings would keep QUIC's own timer
    // alive; the edge counts requests).
    let h3 = Conn::connect(Proto::H3, &target).await.expect("h3");
    let quic = h3.quic().expect("quic").clone();
    let closed = tokio::time::timeout(Duration::from_secs(5), quic.closed()).await;
    assert!(closed.is_ok(), "idle HTTP/3 connection still open");
    drop(h3);

    // A connection that never sends a request at all (TLS + HTTP/2 preface only).
    let mut idle = Conn::connect(Proto::H2, &target).await.expect("h2");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(idle.get("/bytes/1").await.is_err());
}
