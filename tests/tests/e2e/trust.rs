//! `node.trusted_peers`: forwarding headers and the shield loop marker are believed from our
//! own edges only. A shield keys and forwards with the visitor's scheme and host; a client
//! that writes an edge's name into `Via` cannot switch the shield tier off.

use std::net::SocketAddr;
use std::time::Duration;

use edge_e2e::client::{self, Proto};
use edge_e2e::raw::{OriginMode, RecordingOrigin, parse_responses};
use edge_e2e::{Edge, Setup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn shield_config(origin: SocketAddr) -> String {
    format!(
        r#"
[node]
name = "shield-1"
trusted_peers = ["127.0.0.1/32"]

[listen]
http = ["127.0.0.1:0"]

[pools.origin]
endpoints = ["{origin}"]

[[sites]]
name = "local"
hosts = ["localhost"]
plain_http = "proxy"
routes = [{{ path_prefix = "/", pool = "origin" }}]
"#
    )
}

fn front_config(origin: SocketAddr, shield: SocketAddr) -> String {
    format!(
        r#"
[node]
name = "front-1"

[listen]
https = ["127.0.0.1:0"]
http = ["127.0.0.1:0"]

[tls]
cert = "default.pem"
key = "default.key"

[pools.origin]
endpoints = ["{origin}"]

[pools.shield]
endpoints = ["{shield}"]
algorithm = "consistent-hash"

[[sites]]
name = "local"
hosts = ["localhost"]
plain_http = "proxy"
shield = "shield"
shield_fallback = false
routes = [{{ path_prefix = "/", pool = "origin" }}]
"#
    )
}

/// One raw HTTP/1.1 request from a chosen loopback source address.
async fn from_addr(source: &str, to: SocketAddr, request: &str) -> edge_e2e::raw::RawResponse {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("source"))
        .expect("bind source address");
    let mut stream = socket.connect(to).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut out)).await;
    let mut responses = parse_responses(&out);
    assert_eq!(responses.len(), 1, "{}", String::from_utf8_lossy(&out));
    responses.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shield_keys_and_forwards_with_the_visitors_scheme_and_host() {
    let setup = Setup::new("shield-scheme");
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let shield_dir = setup.dir.join("shield");
    std::fs::create_dir_all(&shield_dir).expect("dir");
    let shield = Edge::start(&shield_dir, &shield_config(origin.addr));
    let front = Edge::start(&setup.dir, &front_config(origin.addr, shield.http()));
    let https_port = front.https().port();
    let http_port = front.http().port();

    let over_tls = client::get(
        Proto::H2,
        &setup.target(front.https(), "localhost"),
        "/scheme",
    )
    .await
    .expect("https GET");
    let over_plain = client::get(
        Proto::Plain,
        &setup.target(front.http(), "localhost"),
        "/scheme",
    )
    .await
    .expect("http GET");
    let over_tls_redirect = client::get(
        Proto::H1,
        &setup.target(front.https(), "localhost"),
        "/redirect/s",
    )
    .await
    .expect("https GET");
    assert!(
        over_tls.text().contains("x-forwarded-proto: https\n"),
        "the HTTPS visitor's answer: {}",
        over_tls.text()
    );
    assert!(
        over_plain.text().contains("x-forwarded-proto: http\n"),
        "{}",
        over_plain.text()
    );
    assert!(
        over_tls
            .text()
            .contains(&format!("host: localhost:{https_port}\n")),
        "{}",
        over_tls.text()
    );
    assert!(
        over_plain
            .text()
            .contains(&format!("host: localhost:{http_port}\n"))
    );
    assert_eq!(
        over_tls_redirect.header("location"),
        Some(format!("http://localhost:{https_port}/landing").as_str())
    );
    for r in [&over_tls, &over_plain] {
        let via = r.header("via").unwrap_or("");
        assert!(via.contains("shield-1"), "went through the shield: {via}");
    }
    let scheme_requests: Vec<_> = origin
        .requests()
        .into_iter()
        .filter(|r| r.target == "/scheme")
        .collect();
    assert_eq!(
        scheme_requests.len(),
        2,
        "one object per scheme at the shield too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_and_loop_markers_are_believed_only_from_trusted_peers() {
    let setup = Setup::new("trust");
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let shield_dir = setup.dir.join("shield");
    std::fs::create_dir_all(&shield_dir).expect("dir");
    let shield = Edge::start(&shield_dir, &shield_config(origin.addr));
    let shield_port = shield.http().port();

    // From 127.0.0.2 (not trusted): spoofed scheme, host, request id and Via are ignored.
    let spoofed = "GET /t/untrusted HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Proto: https\r\n\
        X-Forwarded-Host: LOCALHOST:9999\r\nX-Request-Id: spoofed-id\r\nX-Real-IP: 6.6.6.6\r\n\
        Via: 1.1 somewhere\r\nConnection: close\r\n\r\n";
    let r = from_addr("127.0.0.2", shield.http(), spoofed).await;
    assert_eq!(r.status, 200);
    let seen = origin.requests();
    let o = seen
        .iter()
        .find(|r| r.target == "/t/untrusted")
        .expect("reached origin");
    assert_eq!(o.header_all("x-forwarded-proto"), ["http"]);
    assert_eq!(o.header_all("host"), [format!("localhost:{shield_port}")]);
    assert_eq!(o.header_all("x-real-ip"), ["127.0.0.2"]);
    assert_eq!(o.header_all("via"), ["1.1 shield-1"]);
    assert_ne!(o.header("x-request-id"), Some("spoofed-id"));

    // From 127.0.0.1 (trusted): the same headers describe the visitor and are kept.
    let forwarded = spoofed.replace("/t/untrusted", "/t/trusted");
    let r = from_addr("127.0.0.1", shield.http(), &forwarded).await;
    assert_eq!(r.status, 200);
    let seen = origin.requests();
    let o = seen
        .iter()
        .find(|r| r.target == "/t/trusted")
        .expect("reached origin");
    assert_eq!(o.header_all("x-forwarded-proto"), ["https"]);
    assert_eq!(o.header_all("host"), ["localhost:9999"]);
    assert_eq!(o.header_all("x-request-id"), ["spoofed-id"]);
    assert_eq!(
        r.header("x-request-id"),
        Some("spoofed-id"),
        "one id across the tiers"
    );
    assert_eq!(o.header_all("x-real-ip"), ["6.6.6.6"]);
    assert_eq!(o.header_all("via"), ["1.1 somewhere, 1.1 shield-1"]);
}

/// Issue: a client could switch the shield tier off by sending `Via: 1.1 <node-name>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_switch_the_shield_off_with_via() {
    let setup = Setup::new("via-loop");
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let shield_dir = setup.dir.join("shield");
    std::fs::create_dir_all(&shield_dir).expect("dir");
    let shield = Edge::start(&shield_dir, &shield_config(origin.addr));
    let front = Edge::start(&setup.dir, &front_config(origin.addr, shield.http()));
    let r = from_addr(
        "127.0.0.3",
        front.http(),
        "GET /v/1 HTTP/1.1\r\nHost: localhost\r\nVia: 1.1 front-1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    let via = r.header("via").unwrap_or("");
    assert!(
        via.contains("shield-1"),
        "the miss went through the shield: {via}"
    );
}
