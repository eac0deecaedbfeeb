//! Origin pools through a real edge: health checks, retries, replay safety, circuit breaking,
//! all-down behaviour, and the shield tier with several edge processes.

use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_e2e::client::{self, Proto, Reply};
use edge_e2e::origin::Origin;
use edge_e2e::{Edge, Setup, Target};
use http::{Method, StatusCode};

/// The test config with its `[pools.origin]` replaced by `pool` (a TOML table body).
async fn get(target: &Target, path: &str) -> Result<Reply, String> {
    client::request(Proto::H1, target, Method::GET, path, &[], Bytes::new()).await
}

async fn endpoint_up(edge: &Edge, pool: &str, addr: std::net::SocketAddr) -> u64 {
    edge.metric(&format!(
        "edge_origin_endpoint_up{{pool=\"{pool}\",endpoint=\"{addr}\"}}"
    ))
    .await
}

/// Polls until the endpoint's `up` gauge is `want`; returns how long that took.
async fn wait_up(edge: &Edge, addr: std::net::SocketAddr, want: u64, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if endpoint_up(edge, "origin", addr).await == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "endpoint {addr} did not reach up={want} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_origin_leaves_rotation_and_comes_back_without_failed_requests() {
    let setup = Setup::new("health");
    let a = Origin::start().await;
    let mut b = Origin::start().await;
    // interval × fall = 600 ms to leave, interval × rise = 400 ms to come back.
    let pool = format!(
        "endpoints = [\"{}\", \"{}\"]\nhealth = {{ path = \"/health\", interval = \"200ms\", timeout = \"150ms\", fall = 3, rise = 2, jitter = 0.1 }}",
        a.addr, b.addr
    );
    let edge = Edge::start(&setup.dir, &setup.config_with_pool(&pool, ""));
    let target = setup.target(edge.https(), "localhost");
    assert_eq!(endpoint_up(&edge, "origin", b.addr).await, 1);

    // 30 GETs, one every 50 ms, with the kill in the middle: every one succeeds (a request that
    // hits the dead endpoint is retried on the live one).
    let mut left = None;
    for i in 0..30 {
        if i == 10 {
            b.stop();
            let start = Instant::now();
            // Requests go on while we wait for the health checks to notice.
            let waiter = async {
                // interval × fall, plus the jitter, one check timeout and polling slack.
                wait_up(
                    &edge,
                    b.addr,
                    0,
                    Duration::from_millis(600 + 60 + 150 + 400),
                )
                .await
            };
            let r = get(&target, "/headers").await.expect("GET during the kill");
            assert_eq!(r.status, StatusCode::OK, "GET {i} during the kill");
            waiter.await;
            left = Some(start.elapsed());
            continue;
        }
        let r = get(&target, &format!("/headers?i={i}"))
            .await
            .unwrap_or_else(|e| panic!("GET {i}: {e}"));
        assert_eq!(r.status, StatusCode::OK, "GET {i}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = left.expect("kill happened");
    assert!(
        left <= Duration::from_millis(1210),
        "left rotation after {left:?}"
    );
    assert_eq!(endpoint_up(&edge, "origin", a.addr).await, 1);

    // Out of rotation: everything goes to A.
    let before = b.hits("/headers");
    for _ in 0..10 {
        assert_eq!(
            get(&target, "/headers").await.expect("GET").status,
            StatusCode::OK
        );
    }
    assert_eq!(b.hits("/headers"), before);

    // Restarted: back within interval × rise (plus slack), and traffic reaches it again.
    b.restart().await;
    let back = wait_up(
        &edge,
        b.addr,
        1,
        Duration::from_millis(400 + 40 + 150 + 400),
    )
    .await;
    assert!(
        back <= Duration::from_millis(1000),
        "came back after {back:?}"
    );
    for _ in 0..10 {
        assert_eq!(
            get(&target, "/headers").await.expect("GET").status,
            StatusCode::OK
        );
    }
    assert!(
        b.hits("/headers") > before,
        "the restarted endpoint gets requests again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_requests_retry_and_a_sent_post_is_never_replayed() {
    let setup = Setup::new("retry");
    let a = Origin::start().await;
    let b = Origin::start().await;
    let pool = format!(
        "endpoints = [\"{}\", \"{}\"]\nper_try_timeout = \"300ms\"\noutlier = {{ consecutive_failures = 0 }}",
        a.addr, b.addr
    );
    let edge = Edge::start(&setup.dir, &setup.config_with_pool(&pool, ""));
    let target = setup.target(edge.https(), "localhost");

    // A POST whose body reached the origin, which then never answers: 504, and exactly one
    // origin saw it once.
    let body = Bytes::from(vec![b'p'; 4096]);
    let r = client::request(
        Proto::H2,
        &target,
        Method::POST,
        "/slow?ms=2000",
        &[("content-type", "application/octet-stream")],
        body,
    )
    .await
    .expect("POST");
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        a.hits("/slow") + b.hits("/slow"),
        1,
        "the POST was sent once, never replayed"
    );

    // A GET in the same situation is tried on each endpoint (the budget allows it).
    let r = get(&target, "/slow?ms=2000").await.expect("GET");
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        a.hits("/slow") + b.hits("/slow"),
        3,
        "GET tried on both endpoints"
    );

    // A dead endpoint: GETs and bodiless POSTs (never sent) succeed on the other one.
    b.stop();
    for i in 0..6 {
        let r = get(&target, &format!("/headers?g={i}")).await.expect("GET");
        assert_eq!(r.status, StatusCode::OK);
        let r = client::request(
            Proto::H1,
            &target,
            Method::POST,
            "/headers",
            &[],
            Bytes::new(),
        )
        .await
        .expect("POST");
        assert_eq!(
            r.status,
            StatusCode::OK,
            "a POST refused by the connect is retried"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_answers_503_with_retry_after_at_once() {
    let setup = Setup::new("breaker");
    let origin = Origin::start().await;
    let pool = format!("endpoints = [\"{}\"]\nmax_requests = 2", origin.addr);
    let edge = Edge::start(&setup.dir, &setup.config_with_pool(&pool, ""));
    let target = setup.target(edge.https(), "localhost");
    let slow: Vec<_> = (0..2)
        .map(|i| {
            let t = target.clone();
            tokio::spawn(async move { get(&t, &format!("/slow?ms=1500&i={i}")).await })
        })
        .collect();
    // Wait until both are at the origin.
    for _ in 0..100 {
        if origin.hits("/slow") == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = get(&target, "/headers").await.expect("third request");
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(
        origin.hits("/headers"),
        0,
        "shed before reaching the origin"
    );
    for s in slow {
        assert_eq!(s.await.expect("join").expect("slow").status, StatusCode::OK);
    }
    // Capacity again once they finished.
    assert_eq!(
        get(&target, "/headers").await.expect("GET").status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_down_serves_stale_where_allowed_else_503() {
    let setup = Setup::new("alldown");
    let origin = Origin::start().await;
    let pool = format!(
        "endpoints = [\"{}\"]\nhealth = {{ path = \"/health\", interval = \"100ms\", timeout = \"100ms\", fall = 2, rise = 2 }}",
        origin.addr
    );
    let edge = Edge::start(&setup.dir, &setup.config_with_pool(&pool, ""));
    let target = setup.target(edge.https(), "localhost");
    let path = "/c/sie?cc=max-age=1,stale-if-error=60";
    let first = get(&target, path).await.expect("GET");
    assert_eq!(first.status, StatusCode::OK);
    origin.stop();
    wait_up(&edge, origin.addr, 0, Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = get(&target, path).await.expect("GET stale");
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.body, first.body, "the stored copy");
    assert!(
        stale
            .header("cache-status")
            .unwrap_or("")
            .contains("stale-if-error"),
        "{:?}",
        stale.header("cache-status")
    );
    let none = get(&target, "/c/never-cached").await.expect("GET");
    assert_eq!(none.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8_lossy(&none.body).contains("no healthy origin"));
}

/// Config for an edge whose site asks the shield pool first.
fn edge_with_shield(
    setup: &Setup,
    origin: std::net::SocketAddr,
    shield: &str,
    node: &str,
) -> String {
    setup
        .config(
            origin,
            &format!(
                "\n[pools.shields]\nendpoints = [\"{shield}\"]\nalgorithm = \"consistent-hash\"\n"
            ),
        )
        .replace("name = \"e2e-edge\"", &format!("name = \"{node}\""))
        .replace(
            "name = \"local\"\nhosts = [\"localhost\", \"127.0.0.1\"]",
            "name = \"local\"\nhosts = [\"localhost\", \"127.0.0.1\"]\nshield = \"shields\"",
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shield_turns_misses_of_many_edges_into_one_origin_request() {
    let origin = Origin::start().await;
    let s_setup = Setup::new("shield-s");
    let shield = Edge::start(
        &s_setup.dir,
        &s_setup
            .config(origin.addr, "")
            .replace("name = \"e2e-edge\"", "name = \"shield-1\""),
    );
    let shield_http = shield.http.expect("shield http listener");
    let e1_setup = Setup::new("shield-e1");
    let e1 = Edge::start(
        &e1_setup.dir,
        &edge_with_shield(&e1_setup, origin.addr, &shield_http.to_string(), "edge-1"),
    );
    let e2_setup = Setup::new("shield-e2");
    let e2 = Edge::start(
        &e2_setup.dir,
        &edge_with_shield(&e2_setup, origin.addr, &shield_http.to_string(), "edge-2"),
    );
    let targets = [
        e1_setup.target(e1.https(), "localhost"),
        e2_setup.target(e2.https(), "localhost"),
    ];

    // 50 concurrent misses for one object, spread over both edges.
    let path = "/c/shielded?cc=max-age=60&delay_ms=300";
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let t = targets[i % 2].clone();
            tokio::spawn(async move { get(&t, path).await })
        })
        .collect();
    let mut bodies = Vec::new();
    for t in tasks {
        let r = t.await.expect("join").expect("GET");
        assert_eq!(r.status, StatusCode::OK);
        bodies.push(r.body);
    }
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "one object for everyone"
    );
    assert_eq!(
        origin.hits("/c/shielded"),
        1,
        "one origin request for 50 misses on 2 edges"
    );

    // Shield stopped: the edges go to the origin directly.
    drop(shield);
    for (i, t) in targets.iter().enumerate() {
        let p = format!("/c/after-shield-{i}?cc=max-age=60");
        let r = get(t, &p).await.expect("GET with the shield down");
        assert_eq!(r.status, StatusCode::OK, "edge {i} without its shield");
        assert_eq!(origin.hits(&format!("/c/after-shield-{i}")), 1);
    }

    // The shield comes back on its address: the edges use it again.
    let back = Edge::start(
        &s_setup.dir,
        &s_setup
            .config(origin.addr, "")
            .replace("name = \"e2e-edge\"", "name = \"shield-1\"")
            .replace(
                "\nhttp = [\"127.0.0.1:0\"]",
                &format!("\nhttp = [\"{shield_http}\"]"),
            ),
    );
    let path = "/c/back?cc=max-age=60&delay_ms=200";
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let t = targets[i % 2].clone();
            tokio::spawn(async move { get(&t, path).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("join").expect("GET").status, StatusCode::OK);
    }
    assert_eq!(
        origin.hits("/c/back"),
        1,
        "both edges went through the shield again"
    );
    // The access log is one JSON object per line.
    assert!(
        back.wait_log(r#""path":"/c/back""#, Duration::from_secs(5)),
        "the shield served it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shield_that_lists_itself_does_not_loop() {
    let origin = Origin::start().await;
    let setup = Setup::new("shield-self");
    let text = setup
        .config(origin.addr, "")
        .replace("name = \"e2e-edge\"", "name = \"shield-self\"");
    let shield = Edge::start(&setup.dir, &text);
    let own = shield.http.expect("http listener");
    // Now point its own site at a shield pool holding its own address, and reload.
    let looped = text.replace(
        "name = \"local\"\nhosts = [\"localhost\", \"127.0.0.1\"]",
        "name = \"local\"\nhosts = [\"localhost\", \"127.0.0.1\"]\nshield = \"shields\"",
    ) + &format!(
        "\n[pools.shields]\nendpoints = [\"{own}\"]\nalgorithm = \"consistent-hash\"\n"
    );
    std::fs::write(&shield.config, looped).expect("write config");
    shield.signal("HUP");
    assert!(
        shield.wait_log("config reloaded", Duration::from_secs(5)),
        "reload: {}",
        shield.log()
    );
    let target = setup.target(shield.https(), "localhost");
    let start = Instant::now();
    let r = get(&target, "/c/self?cc=max-age=60").await.expect("GET");
    assert_eq!(r.status, StatusCode::OK);
    assert!(start.elapsed() < Duration::from_secs(2), "no loop");
    assert_eq!(origin.hits("/c/self"), 1);
    // Exactly two passes through the node: the client's request, and the one it sent to
    // itself as its own shield, which then went to the origin. Access lines are written by a
    // thread of their own after each body ends: wait for the second (and make sure no third
    // follows it).
    let passes = || {
        shield
            .log()
            .lines()
            .filter(|l| l.contains(r#""path":"/c/self""#))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while passes() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(passes(), 2, "{}", shield.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_origins_are_verified_and_speak_http1_or_h2() {
    let setup = Setup::new("origin-tls");
    setup.ca.issue(&setup.dir, "origin", &["origin.test"]);
    let origin =
        Origin::start_tls(&setup.dir.join("origin.pem"), &setup.dir.join("origin.key")).await;
    let tls = |extra: &str| {
        format!(
            "endpoints = [\"{}\"]\ntls = true\ntls_ca_file = \"ca.pem\"\n{extra}",
            origin.addr
        )
    };
    for (name, pool, version) in [
        (
            "http1",
            tls("tls_server_name = \"origin.test\""),
            "HTTP/1.1",
        ),
        (
            "h2",
            tls(
                "tls_server_name = \"origin.test\"\nprotocol = \"h2\"\nhost = \"backend.internal\"",
            ),
            "HTTP/2.0",
        ),
    ] {
        let edge = Edge::start(&setup.dir, &setup.config_with_pool(&pool, ""));
        let target = setup.target(edge.https(), "localhost");
        for proto in [Proto::H1, Proto::H2, Proto::H3] {
            let r = client::request(proto, &target, Method::GET, "/headers", &[], Bytes::new())
                .await
                .expect("GET");
            assert_eq!(r.status, StatusCode::OK, "{name} {proto:?}");
            let text = String::from_utf8_lossy(&r.body).to_string();
            assert!(
                text.lines().next().unwrap_or("").ends_with(version),
                "{name}: origin saw {text}"
            );
            if name == "h2" {
                assert!(text.contains("host: backend.internal"), "{name}: {text}");
            }
        }
    }

    // A certificate that does not verify: for a name it does not carry, and (second edge)
    // against the built-in web roots instead of the test CA. Clear 502s and a log line.
    for (name, pool) in [
        ("wrong name", tls("tls_server_name = \"other.test\"")),
        (
            "unknown issuer",
            format!(
                "endpoints = [\"{}\"]\ntls = true\ntls_server_name = \"origin.test\"",
                origin.addr
            ),
        ),
    ] {
        let edge = Edge::start(&setup.dir, &setup.config_with_pool(&pool, ""));
        let target = setup.target(edge.https(), "localhost");
        let r = get(&target, "/headers").await.expect("GET");
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{name}");
        assert!(
            String::from_utf8_lossy(&r.body).contains("TLS connection to the origin failed"),
            "{name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(
            edge.wait_log("TLS to origin", Duration::from_secs(2)),
            "{name}: no log line: {}",
            edge.log()
        );
        let log = edge.log();
        assert!(
            log.contains("certificate") || log.contains("Certificate"),
            "{name}: the log says why: {log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused_until_their_maximum_lifetime() {
    let setup = Setup::new("lifetime");
    let origin = Origin::start().await;
    let edge = Edge::start(
        &setup.dir,
        &setup.config(
            origin.addr,
            "\n[origin]\nmax_connection_lifetime = \"400ms\"\n",
        ),
    );
    let target = setup.target(edge.https(), "localhost");
    for i in 0..5 {
        let r = get(&target, &format!("/headers?i={i}")).await.expect("GET");
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!(
        origin.connections(),
        1,
        "one kept-alive connection for 5 requests"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The old connection serves one more request, then is let go; the next opens a new one,
    // which is reused again.
    for i in 0..5 {
        let r = get(&target, &format!("/headers?j={i}")).await.expect("GET");
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!(origin.connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_endpoint_is_ejected_passively_and_never_the_whole_pool() {
    let setup = Setup::new("outlier");
    let good = Origin::start().await;
    let bad = Origin::start().await;
    bad.set_failing(Some(503));
    // No active checks: only what requests see. Retries off, so each answer is the endpoint's.
    let pool = format!(
        "endpoints = [\"{}\", \"{}\"]\nretries = 0\noutlier = {{ consecutive_failures = 3, base_ejection = \"30s\", max_ejected_share = 0.5 }}",
        good.addr, bad.addr
    );
    let edge = Edge::start(&setup.dir, &setup.config_with_pool(&pool, ""));
    let target = setup.target(edge.https(), "localhost");
    let mut failures = 0;
    for i in 0..20 {
        let r = get(&target, &format!("/c/o{i}?cc=no-store"))
            .await
            .expect("GET");
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            failures += 1;
        }
    }
    // Round-robin sends every other request to the bad endpoint until it has failed 3 times.
    assert_eq!(failures, 3, "ejected after 3 consecutive 503s");
    assert_eq!(endpoint_up(&edge, "origin", bad.addr).await, 0);
    assert_eq!(endpoint_up(&edge, "origin", good.addr).await, 1);
    assert!(edge.wait_log("endpoint ejected", Duration::from_secs(1)));

    // Now the good one fails too: it is not ejected (that would empty the pool past the
    // share), its 503s reach the client instead of a blanket "no endpoint".
    good.set_failing(Some(503));
    for i in 0..6 {
        let r = get(&target, &format!("/c/p{i}?cc=no-store"))
            .await
            .expect("GET");
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(String::from_utf8_lossy(&r.body).contains("origin failing"));
    }
    assert_eq!(endpoint_up(&edge, "origin", good.addr).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_goes_quiet_mid_body_is_cut_off() {
    let setup = Setup::new("body-idle");
    let origin = Origin::start().await;
    let text = setup.config(origin.addr, "").replace(
        "shutdown_grace = \"10s\"",
        "shutdown_grace = \"10s\"\norigin_body_idle = \"300ms\"",
    );
    let edge = Edge::start(&setup.dir, &text);
    let target = setup.target(edge.https(), "localhost");
    // Chunks every 100 ms are fine; one every 1.5 s is not.
    let ok = get(&target, "/drip?chunks=5&ms=100").await.expect("GET");
    assert!(ok.error.is_none(), "{:?}", ok.error);
    assert_eq!(ok.len, 5 * 65536);
    let cut = get(&target, "/drip?chunks=3&ms=1500").await.expect("GET");
    assert_eq!(cut.status, StatusCode::OK, "the head arrived in time");
    assert!(
        cut.error.is_some(),
        "the body must be aborted, not ended cleanly"
    );
    assert!(cut.len < 3 * 65536);
    assert!(
        edge.wait_log("origin sent nothing", Duration::from_secs(2)),
        "{}",
        edge.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_origin_closed_is_never_handed_out_again() {
    let setup = Setup::new("closed-conn");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let target = setup.target(edge.https(), "localhost");
    // Interleaved: a request whose answer closes the connection, then one that keeps it.
    for i in 0..10 {
        let r = get(&target, &format!("/close?i={i}"))
            .await
            .expect("GET /close");
        assert_eq!(
            r.status,
            StatusCode::OK,
            "request {i} after a closed connection"
        );
        let r = get(&target, &format!("/headers?i={i}")).await.expect("GET");
        assert_eq!(
            r.status,
            StatusCode::OK,
            "request {i} on a fresh connection"
        );
    }
    // Every /close used up its connection: at least one new connection per closing answer.
    assert!(origin.connections() >= 10, "{}", origin.connections());
    let log = edge.log();
    assert!(
        !log.contains(r#""status":502"#) && !log.contains("status=502"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_stalls_the_tls_handshake_is_given_up_on() {
    let setup = Setup::new("tls-stall");
    // Accepts TCP connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            conns.push(s);
        }
    });
    let pool = format!(
        "endpoints = [\"{addr}\"]\ntls = true\ntls_server_name = \"origin.test\"\nretries = 0"
    );
    let text = setup.config_with_pool(&pool, "").replace(
        "shutdown_grace = \"10s\"",
        "shutdown_grace = \"10s\"\norigin_tls_handshake = \"300ms\"",
    );
    let edge = Edge::start(&setup.dir, &text);
    let target = setup.target(edge.https(), "localhost");
    let start = Instant::now();
    let r = get(&target, "/headers").await.expect("GET");
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    // Given up after the handshake timeout, long before the 2 s response-head timeout.
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    assert!(
        edge.wait_log("took longer than 300ms", Duration::from_secs(2)),
        "{}",
        edge.log()
    );
    held.abort();
}
