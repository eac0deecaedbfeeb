//! Protection (issue 17, first part): per-site rate limits (429 with `Retry-After` and the
//! IETF draft's `RateLimit`/`RateLimit-Policy` fields, other clients unaffected, report-only
//! rules) over HTTP/1.1, HTTP/2 and HTTP/3, keyed by client address and by header; security
//! headers added where the origin sent none, HSTS on HTTPS only.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use edge_e2e::client::{Conn, Proto, Reply, TLS_PROTOS};
use edge_e2e::origin::Origin;
use edge_e2e::{Edge, Setup, Target};
use http::Method;

async fn get(target: &Target, proto: Proto, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut conn = Conn::connect(proto, target).await.expect("connect");
    conn.send(Method::GET, path, headers, Bytes::new())
        .await
        .expect("GET")
}

/// A plain HTTP/1.1 GET from a chosen loopback source address: the status code.
async fn status_from(edge: SocketAddr, from: &str, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind");
    let mut s = sock.connect(edge).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

const RULES: &str = r#"
[[sites.rate_limits]]
name = "api"
path_prefix = "/c/api/"
key = "header:x-api-key"
rate = 1
per = "60s"
burst = 2

[[sites.rate_limits]]
name = "per-client"
path_prefix = "/c/ip/"
rate = 1
per = "60s"
burst = 1

[[sites.rate_limits]]
name = "watch"
path_prefix = "/c/watch/"
rate = 1
per = "60s"
report_only = true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_is_429_with_the_draft_headers_and_other_clients_go_on() {
    let setup = Setup::new("ratelimit");
    let origin = Origin::start().await;
    // The rules go to the last site of the test config ("b"); "local" gets them too below.
    let text = setup
        .config(origin.addr, "")
        .replace("routes = [{ path_prefix = \"/\", pool = \"origin\" }]\n\n[[sites]]\nname = \"a\"", &format!("routes = [{{ path_prefix = \"/\", pool = \"origin\" }}]\n{RULES}\n[[sites]]\nname = \"a\""));
    let edge = Edge::start(&setup.dir, &text);
    let target = setup.target(edge.https(), "localhost");
    for proto in TLS_PROTOS {
        let key = format!("client-{proto:?}");
        let path = format!("/c/api/{proto:?}?cc=max-age=60");
        for i in 0..3 {
            let r = get(&target, proto, &path, &[("x-api-key", &key)]).await;
            assert_eq!(
                r.status, 200,
                "{proto:?} request {i} is within rate + burst"
            );
        }
        let r = get(&target, proto, &path, &[("x-api-key", &key)]).await;
        assert_eq!(r.status, 429, "{proto:?}");
        let retry: u64 = r
            .header("retry-after")
            .expect("retry-after")
            .parse()
            .expect("secs");
        assert!((1..=60).contains(&retry), "{retry}");
        assert_eq!(r.header("ratelimit-policy"), Some("\"api\";q=3;w=60"));
        let rl = r.header("ratelimit").expect("ratelimit");
        assert!(rl.starts_with("\"api\";r=0;t="), "{rl}");
        // Another key is not affected, even on the same (cached) URL.
        let r = get(&target, proto, &path, &[("x-api-key", "someone-else")]).await;
        assert_eq!(r.status, 200, "{proto:?}");
    }
    // Keyed by client address: 127.0.0.1 uses its two, 127.0.0.2 still has its own.
    let http = edge.http();
    assert_eq!(status_from(http, "127.0.0.1", "/c/ip/x").await, 200);
    assert_eq!(status_from(http, "127.0.0.1", "/c/ip/x").await, 200);
    assert_eq!(status_from(http, "127.0.0.1", "/c/ip/x").await, 429);
    assert_eq!(status_from(http, "127.0.0.2", "/c/ip/x").await, 200);
    // Paths no rule covers are not counted.
    for _ in 0..5 {
        assert_eq!(status_from(http, "127.0.0.1", "/c/free").await, 200);
    }
    // Report only: served, counted, logged.
    for _ in 0..3 {
        assert_eq!(status_from(http, "127.0.0.1", "/c/watch/x").await, 200);
    }
    let m = |rule: &str, result: &str| {
        format!(
            "edge_rate_limit_decisions_total{{site=\"local\",rule=\"{rule}\",result=\"{result}\"}}"
        )
    };
    assert_eq!(edge.metric(&m("api", "limited")).await, 3);
    assert_eq!(edge.metric(&m("per-client", "limited")).await, 1);
    assert_eq!(edge.metric(&m("watch", "reported")).await, 2);
    assert!(
        edge.metric("edge_rate_limit_keys{site=\"local\",rule=\"api\"}")
            .await
            >= 4
    );
    assert!(edge.log().contains("rate limit would refuse (report only)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_are_added_where_the_origin_sent_none() {
    let setup = Setup::new("sec-headers");
    let origin = Origin::start().await;
    let extra = "\n[sites.security_headers]\nhsts = { max_age = \"365d\", include_subdomains = true }\n\
        content_type_options = true\nreferrer_policy = \"strict-origin-when-cross-origin\"\n\
        content_security_policy = \"default-src 'self'\"\n";
    // Site "b" (the last one) gets them; "a" has none.
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, extra));
    let b = setup.target(edge.https(), "b.test");
    for proto in TLS_PROTOS {
        let r = get(&b, proto, "/c/page?cc=max-age=60", &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("strict-transport-security"),
            Some("max-age=31536000; includeSubDomains"),
            "{proto:?}"
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(
            r.header("referrer-policy"),
            Some("strict-origin-when-cross-origin")
        );
        assert_eq!(
            r.header("content-security-policy"),
            Some("default-src 'self'")
        );
        assert_eq!(r.header("permissions-policy"), None, "not configured");
        // The origin's own values win unless `override`.
        let r = get(&b, proto, "/sec-headers", &[]).await;
        assert_eq!(
            r.header("content-security-policy"),
            Some("default-src 'none'")
        );
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    let a = setup.target(edge.https(), "a.test");
    let r = get(&a, Proto::H2, "/c/page?cc=max-age=60", &[]).await;
    assert_eq!(
        r.header("strict-transport-security"),
        None,
        "site a configured none"
    );
    assert_eq!(r.header("x-content-type-options"), None);

    // With override, ours replace the origin's; HSTS never goes out over plain HTTP.
    let setup2 = Setup::new("sec-headers-override");
    let text = setup2
        .config(origin.addr, "")
        .replace(
            "plain_http = \"proxy\"\nroutes = [{ path_prefix = \"/\", pool = \"origin\" }]",
            "plain_http = \"proxy\"\nroutes = [{ path_prefix = \"/\", pool = \"origin\" }]\nsecurity_headers = { override = true, hsts = { max_age = \"1d\" }, content_security_policy = \"default-src 'self'\" }",
        );
    let edge2 = Edge::start(&setup2.dir, &text);
    let local_tls = setup2.target(edge2.https(), "localhost");
    let r = get(&local_tls, Proto::H1, "/sec-headers", &[]).await;
    assert_eq!(
        r.header("content-security-policy"),
        Some("default-src 'self'")
    );
    assert_eq!(r.header("strict-transport-security"), Some("max-age=86400"));
    let plain = setup2.target(edge2.http(), "localhost");
    let r = get(&plain, Proto::Plain, "/sec-headers", &[]).await;
    assert_eq!(
        r.header("content-security-policy"),
        Some("default-src 'self'")
    );
    assert_eq!(
        r.header("strict-transport-security"),
        None,
        "HSTS is for HTTPS only"
    );
}

fn limited_config(setup: &Setup, origin: SocketAddr) -> String {
    setup.config(origin, "").replace(
        "max_request_body_bytes = 20971520",
        "max_request_body_bytes = 20971520\nmax_connections_per_client = 3\n\
         max_requests_per_connection = 3\nmax_request_headers = 20",
    )
}

/// Whether a plain TCP connection from `from` gets an answer (a refused one is closed at once).
async fn answered(from: &str, edge: SocketAddr) -> bool {
    status_from(edge, from, "/c/x?cc=max-age=60").await == 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_client_are_capped_across_tcp_and_quic() {
    let setup = Setup::new("conn-limits");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &limited_config(&setup, origin.addr));
    let http = edge.http();
    // Three idle connections from 127.0.0.1 hold its three slots.
    let mut held = Vec::new();
    for _ in 0..3 {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        held.push(sock.connect(http).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !answered("127.0.0.1", http).await,
        "a fourth TCP connection is refused"
    );
    // QUIC counts against the same client.
    let tls = setup.target(edge.https(), "localhost");
    let h3 = tokio::time::timeout(Duration::from_secs(5), Conn::connect(Proto::H3, &tls)).await;
    assert!(
        !matches!(h3, Ok(Ok(_))),
        "an HTTP/3 connection is refused too"
    );
    // Another client is not affected.
    assert!(answered("127.0.0.2", http).await);
    // A connection closed gives its slot back.
    drop(held.pop());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !answered("127.0.0.1", http).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        edge.metric("edge_connections_refused_total{limit=\"client\"}")
            .await
            >= 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_carries_at_most_its_requests_and_too_many_fields_are_431() {
    let setup = Setup::new("conn-requests");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &limited_config(&setup, origin.addr));
    let tls = setup.target(edge.https(), "localhost");
    for proto in TLS_PROTOS {
        let mut conn = Conn::connect(proto, &tls).await.expect("connect");
        for i in 1..=3 {
            let r = conn
                .send(Method::GET, "/c/r?cc=max-age=60", &[], Bytes::new())
                .await
                .unwrap_or_else(|e| panic!("{proto:?} request {i}: {e}"));
            assert_eq!(r.status, 200, "{proto:?} request {i}");
            if proto == Proto::H1 && i == 3 {
                assert_eq!(
                    r.header("connection"),
                    Some("close"),
                    "the last one says so"
                );
            }
        }
        // The fourth needs a new connection: this one was closed (HTTP/1.1) or sent GOAWAY.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let fourth = conn
            .send(Method::GET, "/c/r?cc=max-age=60", &[], Bytes::new())
            .await;
        assert!(
            fourth.is_err(),
            "{proto:?}: a fourth request on the same connection"
        );
        let mut fresh = Conn::connect(proto, &tls).await.expect("reconnect");
        let r = fresh
            .send(Method::GET, "/c/r?cc=max-age=60", &[], Bytes::new())
            .await
            .expect("GET");
        assert_eq!(r.status, 200);

        // 25 header fields, over the limit of 20: 431 with our body, on every protocol.
        let names: Vec<String> = (0..25).map(|i| format!("x-field-{i}")).collect();
        let fields: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        let r = fresh
            .send(Method::GET, "/c/many", &fields, Bytes::new())
            .await
            .expect("GET");
        assert_eq!(r.status, 431, "{proto:?}");
        assert!(r.text().contains("too many header fields"), "{}", r.text());
    }
}

/// The attack tools' view of `edge`'s HTTPS listener, trusting the test CA.
fn attack_target(
    setup: &Setup,
    edge: &Edge,
    proto: load_tests::conn::Proto,
) -> load_tests::conn::Target {
    load_tests::conn::Target {
        addr: edge.https(),
        host: "localhost".into(),
        tls: Some(
            load_tests::conn::tls_config(proto, Some(&setup.dir.join("ca.pem")), false)
                .expect("tls config"),
        ),
        headers: Default::default(),
    }
}

/// A well-behaved client asking over `proto` on one connection for `secs`, asserting every
/// answer; resolves to how many it got.
fn bystander(setup: &Setup, edge: &Edge, proto: Proto, secs: u64) -> tokio::task::JoinHandle<u32> {
    let tls = setup.target(edge.https(), "localhost");
    tokio::spawn(async move {
        let mut conn = Conn::connect(proto, &tls).await.expect("connect");
        let mut answered = 0;
        let until = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < until {
            let r = conn
                .send(Method::GET, "/c/good?cc=max-age=60", &[], Bytes::new())
                .await
                .expect("the good client is always answered");
            assert_eq!(r.status, 200);
            answered += 1;
        }
        answered
    })
}

/// Runs the rapid-reset attacker against `edge` while a well-behaved HTTP/2 client asks on
/// its own connection; returns the attack's report and how many answers the good client got
/// (it must get every one).
async fn rapid_reset_with_a_bystander(
    setup: &Setup,
    edge: &Edge,
    path: &str,
    hold: Duration,
) -> (load_tests::attack::AttackReport, u32) {
    let good = bystander(setup, edge, Proto::H2, 2);
    let target = attack_target(setup, edge, load_tests::conn::Proto::H2);
    let report =
        load_tests::attack::rapid_reset(&target, path, 200_000, Duration::from_secs(10), hold)
            .await
            .expect("attack");
    (report, good.await.expect("join"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_rapid_reset_attacker_is_cut_off_while_others_are_served() {
    // Defaults: h2's budget of streams reset before they were accepted closes it first.
    let setup = Setup::new("rapid-reset");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let (report, answered) =
        rapid_reset_with_a_bystander(&setup, &edge, "/c/attack?cc=max-age=60", Duration::ZERO)
            .await;
    assert!(report.closed_by_server, "never cut off: {report:?}");
    assert!(report.streams < 20_000, "cut off late: {report:?}");
    assert!(answered > 10, "{answered}");

    // Streams reset once the edge works on them (each waits on a slow origin) are not h2's
    // to count: ours closes the connection when more than half of 500+ requests were reset
    // before their answer. (h2's budget is raised here so that only ours can act.)
    let setup = Setup::new("rapid-reset-ours");
    let text = setup.config(origin.addr, "").replace(
        "max_request_body_bytes = 20971520",
        "max_request_body_bytes = 20971520\nh2_max_pending_accept_reset_streams = 1000000",
    );
    let edge = Edge::start(&setup.dir, &text);
    let (report, answered) = rapid_reset_with_a_bystander(
        &setup,
        &edge,
        "/c/slow-attack?delay_ms=2000",
        Duration::from_millis(5),
    )
    .await;
    assert!(report.closed_by_server, "never cut off: {report:?}");
    assert!(report.streams < 5_000, "cut off late: {report:?}");
    assert!(answered > 10, "{answered}");
    assert_eq!(
        edge.metric("edge_early_reset_closes_total").await,
        1,
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quic_handshake_flood_meets_retry_and_clients_are_still_served() {
    let setup = Setup::new("quic-flood");
    let origin = Origin::start().await;
    let text = setup.config(origin.addr, "").replace(
        "max_request_body_bytes = 20971520",
        "max_request_body_bytes = 20971520\nquic_retry_above = 4\nquic_max_handshakes_per_client = 0",
    );
    let edge = Edge::start(&setup.dir, &text);
    let tls = setup.target(edge.https(), "localhost");
    let good = tokio::spawn(async move {
        let mut served = 0;
        for i in 0..20 {
            let mut conn = Conn::connect(Proto::H3, &tls)
                .await
                .expect("a good HTTP/3 client connects");
            let r = conn
                .send(
                    Method::GET,
                    &format!("/c/q{i}?cc=max-age=60"),
                    &[],
                    Bytes::new(),
                )
                .await
                .expect("and is answered");
            assert_eq!(r.status, 200);
            served += 1;
        }
        served
    });
    let target = attack_target(&setup, &edge, load_tests::conn::Proto::H3);
    let report = load_tests::attack::quic_handshakes(&target, 300, Duration::from_secs(20))
        .await
        .expect("flood");
    assert_eq!(good.await.expect("join"), 20);
    let retries = edge.metric("edge_quic_retries_total").await;
    assert!(retries > 0, "Retry never kicked in: {report:?}");
    // Real clients follow a Retry: the flood's handshakes still complete, just proven.
    assert!(report.completed > 250, "{report:?}");
    // Every handshake is given back: completed, failed or timed out.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while edge.metric("edge_quic_handshakes_in_progress").await > 0 {
        assert!(std::time::Instant::now() < deadline, "{report:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("quic flood: {report:?}, {retries} retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http3_client_resetting_most_requests_is_told_to_go_away() {
    let setup = Setup::new("h3-resets");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let good = bystander(&setup, &edge, Proto::H3, 2);
    let target = attack_target(&setup, &edge, load_tests::conn::Proto::H3);
    // Each request waits 50 ms on the origin and is reset after 5 ms.
    let report = load_tests::attack::h3_resets(
        &target,
        "/c/h3-attack?delay_ms=50",
        20_000,
        Duration::from_secs(15),
        Duration::from_millis(5),
    )
    .await
    .expect("attack");
    assert!(report.closed_by_server, "never told to go: {report:?}");
    assert!(report.streams < 5_000, "told late: {report:?}");
    assert!(good.await.expect("join") > 10);
    assert_eq!(
        edge.metric("edge_early_reset_closes_total").await,
        1,
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_flood_is_cut_off_within_the_header_budget() {
    let setup = Setup::new("continuation");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let good = bystander(&setup, &edge, Proto::H2, 1);
    let target = attack_target(&setup, &edge, load_tests::conn::Proto::H2);
    let report = load_tests::attack::continuation(&target, 64 << 20, Duration::from_secs(10))
        .await
        .expect("flood");
    // The test config allows 8 KiB of request header; hyper's h2 list limit is twice that.
    // What the attacker wrote includes what loopback socket buffers absorbed before the close
    // reached it (a few MiB at most); without the limit it would write all 64 MiB.
    assert!(report.closed_by_server, "never cut off: {report:?}");
    assert!(report.bytes_sent < 16 << 20, "cut off late: {report:?}");
    assert!(report.elapsed_ms < 2_000, "cut off late: {report:?}");
    assert!(good.await.expect("join") > 5);
    eprintln!("CONTINUATION flood: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_slowloris_connections_are_cut_on_time_and_others_are_served() {
    let setup = Setup::new("slowloris");
    let origin = Origin::start().await;
    // The test config gives request heads 1 s.
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let rss_before = edge.rss_kib();
    let good = tokio::spawn({
        let plain = setup.target(edge.http(), "localhost");
        async move {
            let mut answered = 0;
            let until = std::time::Instant::now() + Duration::from_secs(3);
            while std::time::Instant::now() < until {
                let mut conn = Conn::connect(Proto::Plain, &plain).await.expect("connect");
                let r = conn
                    .send(Method::GET, "/c/good?cc=max-age=60", &[], Bytes::new())
                    .await
                    .expect("the good client is always answered");
                assert_eq!(r.status, 200);
                answered += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answered
        }
    });
    let sources: Vec<std::net::IpAddr> = (2..6)
        .map(|i| std::net::IpAddr::from([127, 0, 0, i]))
        .collect();
    let report = load_tests::attack::slowloris(
        edge.http(),
        &sources,
        3_000,
        Duration::from_millis(300),
        Duration::from_secs(6),
    )
    .await
    .expect("slowloris");
    assert!(report.opened >= 2_900, "{report:?}");
    assert_eq!(
        report.closed_by_server, report.opened,
        "every one cut: {report:?}"
    );
    assert!(report.longest_open_ms < 3_000, "cut late: {report:?}");
    assert!(good.await.expect("join") > 20);
    let grown_mib = edge.peak_rss_kib().saturating_sub(rss_before) / 1024;
    assert!(
        grown_mib < 200,
        "{grown_mib} MiB for 3,000 slow connections"
    );
    eprintln!("slowloris: {report:?}, peak RSS +{grown_mib} MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_per_client_are_rate_limited() {
    let setup = Setup::new("conn-rate");
    let origin = Origin::start().await;
    let text = setup.config(origin.addr, "").replace(
        "max_request_body_bytes = 20971520",
        "max_request_body_bytes = 20971520\nnew_connections_per_client = 1\nnew_connections_burst = 4",
    );
    let edge = Edge::start(&setup.dir, &text);
    let http = edge.http();
    // A burst of 5 (1 + 4) is allowed, then about one a second.
    let mut served = 0;
    for _ in 0..10 {
        if answered("127.0.0.1", http).await {
            served += 1;
        }
    }
    assert!(
        (5..=6).contains(&served),
        "{served} of 10 quick connections served"
    );
    // Another address has its own budget.
    assert!(answered("127.0.0.2", http).await);
    assert!(
        edge.metric("edge_connections_refused_total{limit=\"rate\"}")
            .await
            >= 4
    );
    // And the budget refills.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(answered("127.0.0.1", http).await);
}
