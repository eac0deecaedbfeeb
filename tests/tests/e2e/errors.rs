//! What clients see when things go wrong, and TLS/listener behaviour: status codes with request
//! ids, aborts on mid-body origin failure, SNI, Alt-Svc and the redirect listener.

use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_e2e::client::{self, Conn, Proto, TLS_PROTOS};
use edge_e2e::origin::{Origin, dead_addr};
use edge_e2e::{Edge, Setup};
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TINY_SITE: &str = r#"
[[sites]]
name = "tiny"
hosts = ["tiny.test"]
plain_http = "proxy"
max_request_body_bytes = 1024
routes = [{ path_prefix = "/", pool = "origin" }]
"#;

/// Error bodies name the request id that the response header and the log also carry.
fn assert_error_reply(r: &client::Reply, status: StatusCode, edge: &Edge, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    let id = r
        .header("x-request-id")
        .unwrap_or_else(|| panic!("{what}: no x-request-id"));
    assert!(
        r.text().contains(&format!("request-id: {id}")),
        "{what}: body {:?}",
        r.text()
    );
    assert!(
        edge.wait_log(id, Duration::from_secs(5)),
        "{what}: request id {id} not in the edge log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_origin_is_502_on_every_protocol() {
    let setup = Setup::new("502");
    let edge = Edge::start(&setup.dir, &setup.config(dead_addr().await, ""));
    let target = setup.target(edge.https(), "localhost");
    for proto in TLS_PROTOS {
        let r = client::get(proto, &target, "/").await.expect("request");
        assert_error_reply(&r, StatusCode::BAD_GATEWAY, &edge, &format!("{proto:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_that_resets_is_502() {
    // Accepts, reads a little, and closes without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await;
            drop(s);
        }
    });
    let setup = Setup::new("reset");
    let edge = Edge::start(&setup.dir, &setup.config(addr, ""));
    let target = setup.target(edge.https(), "localhost");
    let r = client::get(Proto::H2, &target, "/").await.expect("request");
    assert_error_reply(&r, StatusCode::BAD_GATEWAY, &edge, "reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_origin_is_504_after_the_header_timeout() {
    let setup = Setup::new("504");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let target = setup.target(edge.https(), "localhost");
    let replies = futures_util::future::join_all(TLS_PROTOS.map(|p| {
        let target = target.clone();
        async move { (p, client::get(p, &target, "/slow?ms=6000").await) }
    }))
    .await;
    for (proto, r) in replies {
        let r = r.expect("request");
        assert_error_reply(
            &r,
            StatusCode::GATEWAY_TIMEOUT,
            &edge,
            &format!("{proto:?}"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_is_421_over_tls_and_404_over_plain_http() {
    let setup = Setup::new("421");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let target = setup.target(edge.https(), "localhost");
    for proto in TLS_PROTOS {
        // SNI localhost (served), Host / :authority unknown.example.
        let r = client::request(
            proto,
            &target,
            Method::GET,
            "/",
            &[("host", "unknown.example")],
            Bytes::new(),
        )
        .await
        .expect("request");
        assert_error_reply(
            &r,
            StatusCode::MISDIRECTED_REQUEST,
            &edge,
            &format!("{proto:?}"),
        );
    }
    let r = client::request(
        Proto::Plain,
        &setup.target(edge.http(), "unknown.example"),
        Method::GET,
        "/",
        &[],
        Bytes::new(),
    )
    .await
    .expect("plain request");
    assert_error_reply(&r, StatusCode::NOT_FOUND, &edge, "plain unknown host");
    assert_eq!(origin.hits("/"), 0, "nothing reached the origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_431_and_uri_414() {
    let setup = Setup::new("limits");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let target = setup.target(edge.https(), "localhost");
    let big = "v".repeat(10 * 1024); // limit 8 KiB
    let long_path = format!("/{}", "p".repeat(3000)); // limit 2048
    for proto in TLS_PROTOS {
        let r = client::request(
            proto,
            &target,
            Method::GET,
            "/h",
            &[("x-big", &big)],
            Bytes::new(),
        )
        .await
        .expect("request");
        assert_error_reply(
            &r,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &edge,
            &format!("{proto:?} 431"),
        );
        let r = client::get(proto, &target, &long_path)
            .await
            .expect("request");
        assert_error_reply(
            &r,
            StatusCode::URI_TOO_LONG,
            &edge,
            &format!("{proto:?} 414"),
        );
        // Just under the limits still works.
        let r = client::request(
            proto,
            &target,
            Method::GET,
            "/h",
            &[("x-big", &"v".repeat(6000))],
            Bytes::new(),
        )
        .await
        .expect("request");
        assert_eq!(r.status, StatusCode::OK, "{proto:?} within limits");
    }
    assert_eq!(origin.hits(&long_path), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_site_limit_is_413() {
    let setup = Setup::new("413");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, TINY_SITE));
    // Site a.test allows 1 KiB: a declared 2 KiB body is refused before it is read.
    let target = setup.target(edge.https(), "a.test");
    for proto in TLS_PROTOS {
        let r = client::request(
            proto,
            &target,
            Method::POST,
            "/upload",
            &[],
            Bytes::from(vec![1u8; 2048]),
        )
        .await
        .expect("request");
        assert_error_reply(
            &r,
            StatusCode::PAYLOAD_TOO_LARGE,
            &edge,
            &format!("{proto:?}"),
        );
        let r = client::request(
            proto,
            &target,
            Method::POST,
            "/upload",
            &[],
            Bytes::from(vec![1u8; 1000]),
        )
        .await
        .expect("request");
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{proto:?} under the limit: {}",
            r.text()
        );
    }
    // A chunked body with no length is cut off when it crosses the limit.
    let mut tcp = tokio::net::TcpStream::connect(edge.http())
        .await
        .expect("connect");
    let mut req =
        b"POST /upload HTTP/1.1\r\nHost: tiny.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        req.extend_from_slice(b"400\r\n");
        req.extend_from_slice(&[b'z'; 1024]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    tcp.write_all(&req).await.expect("write");
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut resp)).await;
    let resp = String::from_utf8_lossy(&resp);
    assert!(
        resp.starts_with("HTTP/1.1 413"),
        "chunked over limit: {resp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_dying_mid_body_aborts_the_client_response() {
    let setup = Setup::new("abort");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let target = setup.target(edge.https(), "localhost");
    for proto in [Proto::H1, Proto::H2, Proto::H3, Proto::Plain] {
        let t = if proto == Proto::Plain {
            setup.target(edge.http(), "localhost")
        } else {
            target.clone()
        };
        let r = client::get(proto, &t, "/die").await.expect("response head");
        assert_eq!(r.status, StatusCode::OK, "{proto:?}");
        assert!(
            r.len < 1024 * 1024,
            "{proto:?}: got the whole promised body?"
        );
        assert!(
            r.error.is_some(),
            "{proto:?}: a truncated body ended cleanly after {} bytes",
            r.len
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_each_sites_certificate_and_tcp_responses_advertise_h3() {
    let setup = Setup::new("sni");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    for proto in TLS_PROTOS {
        for (host, leaf) in [("a.test", &setup.leaf_a), ("b.test", &setup.leaf_b)] {
            let mut conn = Conn::connect(proto, &setup.target(edge.https(), host))
                .await
                .expect("connect");
            assert_eq!(
                conn.peer_cert.as_ref(),
                Some(leaf),
                "{proto:?} {host}: wrong certificate"
            );
            let r = conn.get("/x").await.expect("GET");
            assert_eq!(r.status, StatusCode::OK, "{proto:?} {host}");
            let want = format!("h3=\":{}\"; ma=86400", edge.https().port());
            match proto {
                Proto::H3 => assert!(r.header("alt-svc").is_none(), "h3 needs no Alt-Svc"),
                _ => assert_eq!(r.header("alt-svc"), Some(want.as_str()), "{proto:?} {host}"),
            }
        }
    }
    // The plain listener does not advertise h3 (browsers only use Alt-Svc from secure origins).
    let r = client::get(Proto::Plain, &setup.target(edge.http(), "localhost"), "/x")
        .await
        .expect("GET");
    assert!(r.header("alt-svc").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_listener_redirects_with_path_and_query() {
    let setup = Setup::new("redirect");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let r = client::get(
        Proto::Plain,
        &setup.target(edge.http(), "a.test"),
        "/deep/path?x=1&y=two%20words",
    )
    .await
    .expect("GET");
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        r.header("location"),
        Some(
            format!(
                "https://a.test:{}/deep/path?x=1&y=two%20words",
                edge.https().port()
            )
            .as_str()
        )
    );
    assert_eq!(origin.hits("/deep/path"), 0);

    // curl follows it to the HTTPS listener and gets the origin's answer.
    let out = std::process::Command::new("curl")
        .args(["-sS", "-L", "--cacert"])
        .arg(setup.dir.join("ca.pem"))
        .args([
            "--resolve",
            &format!("a.test:{}:127.0.0.1", edge.http().port()),
        ])
        .args([
            "--resolve",
            &format!("a.test:{}:127.0.0.1", edge.https().port()),
        ])
        .arg(format!(
            "http://a.test:{}/deep/path?x=1",
            edge.http().port()
        ))
        .output()
        .expect("curl is required for this test: apt-get install -y curl");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok /deep/path");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_headers_are_cut_off() {
    let setup = Setup::new("slowloris");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let mut tcp = tokio::net::TcpStream::connect(edge.http())
        .await
        .expect("connect");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: local")
        .await
        .expect("write");
    let start = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the edge kept a connection with an unfinished head open for 10 s"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "closed before the 1 s timeout"
    );
    assert_eq!(origin.hits("/"), 0);
}
