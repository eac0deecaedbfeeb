//! HTTP/1.1 keep-alive: an idle connection lives for `client_idle`; `request_header` bounds
//! only the time a request head takes to arrive (from accept, or from its first byte after an
//! idle period), as nginx's `keepalive_timeout` and `client_header_timeout` do. An idle
//! HTTP/2 connection gives its buffers back and works whole after each idle period.

use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_e2e::client::{Conn, Proto};
use edge_e2e::origin::Origin;
use edge_e2e::raw::{OriginMode, RecordingOrigin};
use edge_e2e::{Edge, Fnv, Setup, pattern_byte};
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// request_header 1 s (the test default), client_idle 3 s.
fn config(setup: &Setup, origin: std::net::SocketAddr) -> String {
    setup.config(origin, "").replace(
        "request_header = \"1s\"",
        "request_header = \"1s\"\nclient_idle = \"3s\"",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http1_connection_lasts_client_idle_not_request_header() {
    let setup = Setup::new("keepalive-idle");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &config(&setup, origin.addr));
    for (proto, addr) in [(Proto::Plain, edge.http()), (Proto::H1, edge.https())] {
        let target = setup.target(addr, "localhost");
        let mut conn = Conn::connect(proto, &target).await.expect("connect");
        assert_eq!(conn.get("/bytes/10").await.expect("first").status, 200);
        // Idle past request_header (1 s), within client_idle (3 s): the same connection works.
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let second = conn.get("/bytes/10").await;
        assert_eq!(
            second.map(|r| r.status.as_u16()),
            Ok(200),
            "{proto:?}: keep-alive connection closed after request_header, before client_idle"
        );
        // Idle past client_idle: closed.
        tokio::time::sleep(Duration::from_millis(4500)).await;
        assert!(
            conn.get("/bytes/10").await.is_err(),
            "{proto:?}: idle connection still open after client_idle"
        );
    }
}

/// Reads until the peer closes; `None` if it did not within `within`.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    Some(start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_head_is_cut_after_request_header_on_new_and_kept_alive_connections() {
    let setup = Setup::new("keepalive-head");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &config(&setup, origin.addr));

    // A connection that sends nothing is closed after request_header, not client_idle.
    let mut silent = TcpStream::connect(edge.http()).await.expect("connect");
    let took = closed_within(&mut silent, Duration::from_millis(2500)).await;
    assert!(
        took.is_some(),
        "silent connection not closed after request_header"
    );

    // After a request and an idle period, a head that starts but never ends is cut
    // request_header after its first byte, well before client_idle.
    let mut tcp = TcpStream::connect(edge.http()).await.expect("connect");
    let head = exchange(
        &mut tcp,
        b"GET /bytes/10 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tcp.write_all(b"GET /bytes/10 HTTP/1.1\r\nHost: loc")
        .await
        .expect("write a partial head");
    let took = closed_within(&mut tcp, Duration::from_millis(2500)).await;
    assert!(
        took.is_some(),
        "a partial head after an idle period was not cut after request_header"
    );
}

/// Writes `request` and reads one response with a Content-Length body, as text.
async fn exchange(tcp: &mut TcpStream, request: &[u8]) -> String {
    tcp.write_all(request).await.expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return String::from_utf8_lossy(&got).into_owned();
            }
        }
        let n = tcp.read(&mut buf).await.expect("read");
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balancer_s_kept_alive_connection_keeps_its_visitor_across_idle_periods() {
    let setup = Setup::new("keepalive-proxy");
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let text = config(&setup, origin.addr).replace(
        "admin = [\"127.0.0.1:0\"]",
        "admin = [\"127.0.0.1:0\"]\nproxy_protocol = [\"127.0.0.1\"]",
    );
    let edge = Edge::start(&setup.dir, &text);
    let mut tcp = TcpStream::connect(edge.http()).await.expect("connect");
    let first = exchange(
        &mut tcp,
        b"PROXY TCP4 203.0.113.5 127.0.0.1 40000 80\r\n\
          GET /ka/1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // Idle past request_header: the connection waits for its next request holding only the
    // socket, and is served again as the same visitor.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = exchange(&mut tcp, b"GET /ka/2 HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    let seen: Vec<_> = origin
        .requests()
        .into_iter()
        .map(|r| {
            (
                r.target.clone(),
                r.header("x-forwarded-for").map(str::to_string),
            )
        })
        .collect();
    for path in ["/ka/1", "/ka/2"] {
        assert!(
            seen.iter()
                .any(|(t, xff)| t == path && xff.as_deref() == Some("203.0.113.5")),
            "{path} not forwarded for the visitor: {seen:?}"
        );
    }
}

/// An idle HTTP/2 connection holds no read, write or HPACK scratch buffer (vendored h2 drops
/// them once it has had no streams for 250 ms and takes them back with the next frame). Each request after
/// an idle period comes through whole: a long Huffman-coded header both ways, an upload and a
/// response larger than any of those buffers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_carries_whole_requests_after_each_idle_period() {
    // Past vendored h2's `RELEASE_AFTER` (250 ms) with room for a busy machine.
    const IDLE: Duration = Duration::from_millis(600);
    let setup = Setup::new("keepalive-h2-idle");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let target = setup.target(edge.https(), "localhost");
    let mut conn = Conn::connect(Proto::H2, &target).await.expect("connect");
    let upload: Bytes = (0..300_000u64)
        .map(|i| pattern_byte(i ^ 0x33))
        .collect::<Vec<u8>>()
        .into();
    let mut upload_hash = Fnv::default();
    upload_hash.update(&upload);
    for round in 0..3 {
        // Idle: the connection has had no stream for a while (its buffers are gone).
        tokio::time::sleep(IDLE).await;
        let long = format!("{round}-{}", "header value;".repeat(300));
        let echo = conn
            .send(
                Method::GET,
                "/echo/idle",
                &[("x-long", &long)],
                Bytes::new(),
            )
            .await
            .expect("echo");
        assert_eq!(echo.status, 200, "round {round}");
        assert!(
            echo.text().contains(&format!("x-long: {long}\n")),
            "round {round}: the long header did not reach the origin whole"
        );

        // A short pause: not idle long enough, the buffers are kept.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let up = conn
            .send(Method::POST, "/upload", &[], upload.clone())
            .await
            .expect("upload");
        assert_eq!(
            up.text(),
            format!("len={} fnv={:016x}", upload.len(), upload_hash.0),
            "round {round}"
        );

        tokio::time::sleep(IDLE).await;
        let len = 200_000u64;
        let big = conn
            .get(&format!("/bytes/{len}?round={round}"))
            .await
            .expect("download");
        assert_eq!(big.status, 200, "round {round}");
        assert_eq!(
            (big.len, big.hash, big.error),
            (len, Fnv::of_pattern(len), None),
            "round {round}: response body"
        );
    }
}
