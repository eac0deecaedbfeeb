//! Listener behaviour: several addresses (IPv4 and IPv6), TLS versions and session resumption,
//! and round-robin over a pool's origins.

use std::sync::Arc;

use bytes::Bytes;
use edge_e2e::client::{self, Proto, TLS_PROTOS};
use edge_e2e::origin::Origin;
use edge_e2e::{Edge, Setup};
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use rustls::HandshakeKind;
use rustls::pki_types::ServerName;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_ipv4_and_ipv6_addresses_over_every_protocol() {
    let setup = Setup::new("dual");
    let origin = Origin::start().await;
    let config = setup.config(origin.addr, "").replace(
        r#"https = ["127.0.0.1:0"]"#,
        r#"https = ["127.0.0.1:0", "[::1]:0"]"#,
    );
    let edge = Edge::start(&setup.dir, &config);
    let https: Vec<_> = edge
        .listeners
        .iter()
        .filter(|(k, _)| k == "https")
        .map(|(_, a)| *a)
        .collect();
    let quic: Vec<_> = edge
        .listeners
        .iter()
        .filter(|(k, _)| k == "http3")
        .map(|(_, a)| *a)
        .collect();
    assert_eq!(https.len(), 2, "{:?}", edge.listeners);
    assert_eq!(
        https, quic,
        "QUIC listens on the same addresses and ports as TCP"
    );
    assert!(https.iter().any(|a| a.is_ipv6()) && https.iter().any(|a| a.is_ipv4()));
    for addr in https {
        for proto in TLS_PROTOS {
            let r = client::get(proto, &setup.target(addr, "localhost"), "/dual")
                .await
                .expect("GET");
            assert_eq!(r.status, StatusCode::OK, "{proto:?} on {addr}");
            assert_eq!(r.text(), "ok /dual");
        }
    }
}

async fn tls_request(
    cfg: Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
) -> (rustls::ProtocolVersion, Option<HandshakeKind>, StatusCode) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    let version = tls.get_ref().1.protocol_version().expect("version");
    let kind = tls.get_ref().1.handshake_kind();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1");
    tokio::spawn(conn);
    let req = Request::get("/tls")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .expect("req");
    let resp = send.send_request(req).await.expect("response");
    let status = resp.status();
    // Reading the body also reads the TLS 1.3 session tickets the server sent after the handshake.
    let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
    (version, kind, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_and_1_3_both_resume_sessions() {
    edge_e2e::init();
    let setup = Setup::new("tls");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    for (version, name) in [
        (&rustls::version::TLS12, "TLS 1.2"),
        (&rustls::version::TLS13, "TLS 1.3"),
    ] {
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_root_certificates(setup.ca.roots())
        .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let cfg = Arc::new(cfg);
        let (v, kind, status) = tls_request(cfg.clone(), edge.https()).await;
        assert_eq!(v, version.version, "{name}");
        assert_eq!(kind, Some(HandshakeKind::Full), "{name}");
        assert_eq!(status, StatusCode::OK, "{name}");
        let (_, kind, status) = tls_request(cfg, edge.https()).await;
        assert_eq!(
            kind,
            Some(HandshakeKind::Resumed),
            "{name}: second connection did not resume"
        );
        assert_eq!(status, StatusCode::OK, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_round_robin_over_the_pools_origins() {
    let setup = Setup::new("rr");
    let one = Origin::start().await;
    let two = Origin::start().await;
    let config = setup.config(one.addr, "").replace(
        &format!(r#"endpoints = ["{}"]"#, one.addr),
        &format!(r#"endpoints = ["{}", "{}"]"#, one.addr, two.addr),
    );
    let edge = Edge::start(&setup.dir, &config);
    let target = setup.target(edge.https(), "localhost");
    let mut conn = client::Conn::connect(Proto::H2, &target)
        .await
        .expect("connect");
    for _ in 0..20 {
        assert_eq!(conn.get("/rr").await.expect("GET").status, StatusCode::OK);
    }
    assert_eq!((one.hits("/rr"), two.hits("/rr")), (10, 10));
}
