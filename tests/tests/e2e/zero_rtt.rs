//! 0-RTT over HTTP/3 (issue 17): a resumed client's early GET is answered from early data
//! (the origin sees `Early-Data: 1`) while its handshake cannot yet complete; an early POST,
//! and an early GET to a site without 0-RTT, wait for the handshake; replayed early data is
//! not accepted a second time; an origin's 425 becomes a retry after the handshake, never a
//! 425 page. A UDP relay holds the server's datagrams back so that "before the handshake
//! completes" is a fact of the test, not a race.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use edge_e2e::origin::Origin;
use edge_e2e::udp_relay::UdpRelay;
use edge_e2e::{Edge, Setup};
use http::{Method, Request};

type SendRequest = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// One QUIC client endpoint whose TLS config (and so its session tickets) every connection
/// shares, as a browser's does.
struct Client {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
}

impl Client {
    fn new(setup: &Setup) -> Client {
        edge_e2e::init();
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(setup.ca.roots())
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        tls.enable_early_data = true;
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("QUIC TLS");
        let endpoint =
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("QUIC bind");
        Client {
            endpoint,
            config: quinn::ClientConfig::new(Arc::new(crypto)),
        }
    }

    fn connecting(&self, to: SocketAddr, host: &str) -> quinn::Connecting {
        self.endpoint
            .connect_with(self.config.clone(), to, host)
            .expect("QUIC connect")
    }

    /// A full handshake and one request, which leaves the client holding session tickets.
    async fn first_visit(&self, to: SocketAddr, host: &str) {
        let conn = self.connecting(to, host).await.expect("handshake");
        let mut send = h3_over(conn.clone()).await;
        let (status, _) = request(&mut send, Method::GET, host, "/echo/first").await;
        assert_eq!(status, 200);
        // Tickets come after the handshake; the response above came later still.
        conn.close(0u32.into(), b"done");
    }

    /// A resumed connection whose requests go out as early data.
    async fn resumed(&self, to: SocketAddr, host: &str) -> (quinn::Connection, SendRequest) {
        let (conn, _accepted) = self
            .connecting(to, host)
            .into_0rtt()
            .unwrap_or_else(|_| panic!("the client holds no ticket for 0-RTT to {host}"));
        let send = h3_over(conn.clone()).await;
        (conn, send)
    }
}

async fn h3_over(conn: quinn::Connection) -> SendRequest {
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .expect("h3 setup");
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    send
}

async fn request(send: &mut SendRequest, method: Method, host: &str, path: &str) -> (u16, String) {
    let req = Request::builder()
        .method(method.clone())
        .uri(format!("https://{host}{path}"))
        .body(())
        .expect("request");
    let mut stream = send.send_request(req).await.expect("send request");
    if method == Method::POST {
        stream
            .send_data(Bytes::from_static(b"form=1"))
            .await
            .expect("body");
    }
    stream.finish().await.expect("finish");
    let resp = stream.recv_response().await.expect("response");
    let mut body = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.expect("body") {
        body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    (
        resp.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Polls `f` for up to five seconds.
async fn eventually(f: impl Fn() -> bool) -> bool {
    for _ in 0..100 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

/// An edge whose site b answers safe requests from early data (site a does not), and a client
/// that has visited b once (so it holds tickets for it).
async fn start(tag: &str) -> (Setup, Origin, Edge, Client) {
    let setup = Setup::new(tag);
    let origin = Origin::start().await;
    let edge = Edge::start(
        &setup.dir,
        &setup.config(origin.addr, "zero_rtt = \"safe\"\n"),
    );
    let client = Client::new(&setup);
    client.first_visit(edge.https(), "b.test").await;
    (setup, origin, edge, client)
}

#[tokio::test]
async fn early_get_is_answered_before_the_handshake_and_nothing_else_is() {
    let (_setup, origin, edge, client) = start("zero-rtt").await;
    client.first_visit(edge.https(), "a.test").await;

    // A resumed visit whose handshake cannot complete: the server's packets are held.
    let relay = UdpRelay::start(edge.https()).await;
    relay.hold();
    let (_conn, mut send) = client.resumed(relay.addr, "b.test").await;
    let mut get_send = send.clone();
    let get = tokio::spawn(async move {
        request(&mut get_send, Method::GET, "b.test", "/echo/early-get").await
    });
    let mut post_send = send.clone();
    let post = tokio::spawn(async move {
        request(&mut post_send, Method::POST, "b.test", "/echo/early-post").await
    });
    assert!(
        eventually(|| origin.hits("/echo/early-get") == 1).await,
        "the early GET did not reach the origin before the handshake"
    );
    assert_eq!(origin.early_data("/echo/early-get"), 1, "no Early-Data: 1");
    // The POST is held at the edge until the client proves it is live.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        origin.hits("/echo/early-post"),
        0,
        "an early POST was forwarded"
    );

    relay.release().await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), get)
        .await
        .expect("GET answered")
        .expect("GET task");
    assert_eq!(status, 200);
    assert!(body.contains("early-data: 1"), "{body}");
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), post)
        .await
        .expect("POST answered")
        .expect("POST task");
    assert_eq!(status, 200);
    assert!(
        !body.contains("early-data"),
        "the POST went as early data:\n{body}"
    );
    assert_eq!(origin.hits("/echo/early-post"), 1);
    // A request after the handshake on the same connection is an ordinary one.
    let (status, body) = request(&mut send, Method::GET, "b.test", "/echo/later").await;
    assert_eq!(status, 200);
    assert!(!body.contains("early-data"), "{body}");

    drop(relay);

    // Site a has no 0-RTT: its early GET waits for the handshake too.
    let relay = UdpRelay::start(edge.https()).await;
    relay.hold();
    let (_conn, send) = client.resumed(relay.addr, "a.test").await;
    let mut get_send = send.clone();
    let get = tokio::spawn(async move {
        request(&mut get_send, Method::GET, "a.test", "/echo/off-site").await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(origin.hits("/echo/off-site"), 0, "answered from early data");
    relay.release().await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), get)
        .await
        .expect("answered")
        .expect("task");
    assert_eq!(status, 200);
    assert!(!body.contains("early-data"), "{body}");

    // An attacker replays a resumed client's first flight (its ClientHello and early data)
    // from another address once that connection is gone: the ticket was single-use, so the
    // early GET is not accepted a second time. (No packets held here: a short round trip
    // keeps the server's draining period, during which it would drop the copy anyway, short.)
    let relay = UdpRelay::start(edge.https()).await;
    let (conn, mut send) = client.resumed(relay.addr, "b.test").await;
    let (status, _) = request(&mut send, Method::GET, "b.test", "/echo/replayed").await;
    assert_eq!(status, 200);
    assert_eq!(origin.hits("/echo/replayed"), 1);
    conn.close(0u32.into(), b"done");
    drop((send, conn));
    relay.release().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    relay.replay().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        origin.hits("/echo/replayed"),
        1,
        "replayed early data was accepted"
    );

    assert!(
        edge.metric("edge_early_data_requests_total{result=\"answered\"}")
            .await
            >= 1
    );
    assert!(
        edge.metric("edge_early_data_requests_total{result=\"waited\"}")
            .await
            >= 2
    );
}

#[tokio::test]
async fn an_origin_425_becomes_a_retry_after_the_handshake() {
    let (_setup, origin, edge, client) = start("zero-rtt-425").await;
    let relay = UdpRelay::start(edge.https()).await;
    relay.hold();
    let (_conn, send) = client.resumed(relay.addr, "b.test").await;
    let mut get_send = send.clone();
    let get = tokio::spawn(async move {
        request(&mut get_send, Method::GET, "b.test", "/too-early/page").await
    });
    assert!(
        eventually(|| origin.early_data("/too-early/page") == 1).await,
        "the early GET did not reach the origin"
    );
    relay.release().await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), get)
        .await
        .expect("answered")
        .expect("task");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "after the handshake\n");
    assert_eq!(
        origin.hits("/too-early/page"),
        2,
        "one early try, one after"
    );
    assert_eq!(
        edge.metric("edge_early_data_requests_total{result=\"retried\"}")
            .await,
        1
    );
}
