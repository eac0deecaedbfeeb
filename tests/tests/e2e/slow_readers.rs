//! Slow readers (issue 17): clients that take their responses too slowly hold the edge's
//! buffers and, through them, origin connections. A client that stops reading is cut off after
//! `timeouts.client_send`; one that trickles below `limits.client_min_send_rate` once past
//! `limits.client_send_grace` of waiting is cut off too (TCP: the connection; HTTP/3: the
//! stream, the connection's other requests go on); readers at a normal pace are not.

use std::time::Duration;

use bytes::{Buf, Bytes};
use edge_e2e::client::{Conn, Proto};
use edge_e2e::origin::Origin;
use edge_e2e::{Edge, Setup, Target};
use http::{Method, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(target: &Target, proto: Proto, path: &str) -> edge_e2e::client::Reply {
    let mut conn = Conn::connect(proto, target).await.expect("connect");
    conn.send(Method::GET, path, &[], Bytes::new())
        .await
        .expect("GET")
}

/// A config whose slow-reader rule is quick to trip: 1 MiB/s once past 2 s of waiting.
fn strict(setup: &Setup, origin: std::net::SocketAddr) -> String {
    setup.config(origin, "").replace(
        "max_request_body_bytes = 20971520",
        "max_request_body_bytes = 20971520\nclient_min_send_rate = \"1MiB\"\nclient_send_grace = \"2s\"\nmax_buffered_response_bytes = \"256KiB\"",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_tcp_reader_is_cut_off_and_a_normal_one_is_not() {
    let setup = Setup::new("slow-reader-rate");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &strict(&setup, origin.addr));
    let size = 64u64 << 20;
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(16 * 1024).expect("rcvbuf");
    let mut s = sock.connect(edge.http()).await.expect("connect");
    let req = format!("GET /big/{size} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    // 16 KiB every 250 ms: 64 KiB/s, a sixteenth of the minimum. Once the edge has given
    // up, what its kernel had already buffered is read at full speed (the close waits behind
    // it).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let trickle = tokio::spawn(async move {
        let mut got = 0u64;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got += n as u64,
            }
            if !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    });
    // Meanwhile a reader at loopback speed takes 8 MiB whole.
    let plain = setup.target(edge.http(), "localhost");
    let r = get(&plain, Proto::Plain, "/big/8388608").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.len, 8 << 20, "a normal reader was cut off");
    let cut = edge
        .wait_metric(
            "edge_client_slow_reader_closes_total",
            1,
            Duration::from_secs(20),
        )
        .await;
    assert!(cut >= 1, "the edge never cut the trickling reader off");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let got = tokio::time::timeout(Duration::from_secs(20), trickle)
        .await
        .expect("the connection was not closed")
        .expect("task");
    assert!(got < size, "the whole body came through: never cut off");
    assert_eq!(edge.metric("edge_client_slow_reader_closes_total").await, 1);
    assert_eq!(edge.metric("edge_client_send_timeouts_total").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http3_stream_nobody_reads_is_reset_and_its_connection_goes_on() {
    let setup = Setup::new("slow-reader-h3");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &strict(&setup, origin.addr));
    let target = setup.target(edge.https(), "localhost");
    let conn = Conn::connect(Proto::H3, &target).await.expect("connect");
    let mut send = conn.h3_sender().expect("h3");
    let size = 64u64 << 20;
    let req = Request::get(format!("https://localhost/big/{size}"))
        .body(())
        .expect("request");
    let mut stalled = send.send_request(req).await.expect("send");
    stalled.finish().await.expect("finish");
    let resp = stalled.recv_response().await.expect("head");
    assert_eq!(resp.status(), 200);
    // Not read: its flow-control window fills and the edge waits on us.
    let cut = edge
        .wait_metric(
            "edge_client_slow_reader_closes_total",
            1,
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(cut, 1);
    // The same connection still answers.
    let mut other = conn.h3_sender().expect("h3");
    let req = Request::get("https://localhost/c/h3-other?cc=max-age=60")
        .body(())
        .expect("request");
    let mut stream = other.send_request(req).await.expect("send");
    stream.finish().await.expect("finish");
    let resp = stream.recv_response().await.expect("head");
    assert_eq!(resp.status(), 200);
    // The stalled stream was reset: reading it ends in an error before the whole body.
    let mut got = 0u64;
    let outcome = loop {
        match stalled.recv_data().await {
            Ok(Some(mut chunk)) => got += chunk.copy_to_bytes(chunk.remaining()).len() as u64,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(
        outcome.is_err(),
        "the stream ended cleanly after {got} bytes"
    );
    assert!(got < size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_after_client_send() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let setup = Setup::new("slow-reader");
    let origin = Origin::start().await;
    let text = setup
        .config(origin.addr, "")
        .replace("[timeouts]\n", "[timeouts]\nclient_send = \"2s\"\n");
    let edge = Edge::start(&setup.dir, &text);
    // 64 MiB asked for, nothing read: the buffers fill, then the response waits on us.
    let size = 64u64 << 20;
    let mut s = tokio::net::TcpStream::connect(edge.http())
        .await
        .expect("connect");
    let req = format!("GET /big/{size} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Meanwhile others are served.
    let plain = setup.target(edge.http(), "localhost");
    let r = get(&plain, Proto::Plain, "/c/other?cc=max-age=60").await;
    assert_eq!(r.status, 200);
    let mut got = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n as u64,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read_all)
        .await
        .expect("the edge closed the connection");
    assert!(
        got < size,
        "the whole body came through ({got} bytes): never cut off"
    );
    assert_eq!(edge.metric("edge_client_send_timeouts_total").await, 1);
}

/// A connection told to finish (here: it carried its last request) drains its responses in
/// flight, and a client that stops reading during that drain is still cut off after
/// `client_send`, over HTTP/2 as over HTTP/1.1: a drain is no way around the slow-reader rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_stops_reading_while_its_connection_drains_is_cut_off() {
    let setup = Setup::new("slow-reader-h2-drain");
    let origin = Origin::start().await;
    let text = setup
        .config(origin.addr, "")
        .replace("[timeouts]\n", "[timeouts]\nclient_send = \"2s\"\n")
        .replace(
            "max_request_body_bytes = 20971520",
            "max_request_body_bytes = 20971520\nmax_requests_per_connection = 1",
        );
    let edge = Edge::start(&setup.dir, &text);
    let target = setup.target(edge.https(), "localhost");
    let conn = Conn::connect(Proto::H2, &target).await.expect("connect");
    let mut send = conn.h2_sender().expect("h2");
    let size = 64u64 << 20;
    let req = Request::get(format!("https://localhost/big/{size}"))
        .version(http::Version::HTTP_2)
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("request");
    let resp = send.send_request(req).await.expect("send");
    assert_eq!(resp.status(), 200);
    // Held, not read: the windows and the edge's buffers fill, then the response waits on us.
    let cut = edge
        .wait_metric(
            "edge_client_send_timeouts_total",
            1,
            Duration::from_secs(15),
        )
        .await;
    assert!(
        cut >= 1,
        "the draining connection kept a reader that stopped"
    );
    drop(resp);
}
