//! Cache poisoning through the request head: whatever varies between two clients' requests
//! either is part of the cache key or never reaches the origin. Host variants, dot-segment
//! paths, steering headers and cloaked query parameters, sent by raw HTTP/1.1 sockets, the
//! `h2` crate and a raw HTTP/3 sender, against an origin that records the exact bytes it gets.

use std::time::Duration;

use bytes::Bytes;
use edge_e2e::client::{Conn, Proto};
use edge_e2e::raw::{
    H3_MESSAGE_ERROR, H3Outcome, OriginMode, Recorded, RecordingOrigin, h1_exchange, h2_request,
    h3_raw, parse_responses,
};
use edge_e2e::{Edge, Setup};
use http::Method;

const WAIT: Duration = Duration::from_millis(1500);

/// One site (`localhost`) in front of `origin`, plain HTTP proxied, `site_extra` appended to
/// the site, `tail` after it.
fn config(origin: std::net::SocketAddr, site_extra: &str, tail: &str) -> String {
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
origin_response_header = "3s"

[pools.origin]
endpoints = ["{origin}"]

[[sites]]
name = "local"
hosts = ["localhost", "127.0.0.1"]
plain_http = "proxy"
routes = [{{ path_prefix = "/", pool = "origin" }}]
{site_extra}
{tail}
"#
    )
}

/// One raw HTTP/1.1 request on its own connection; its single response.
async fn raw_get(edge: &Edge, request: &str) -> edge_e2e::raw::RawResponse {
    let out = h1_exchange(edge.http(), request.as_bytes(), WAIT).await;
    let mut responses = parse_responses(&out);
    assert_eq!(
        responses.len(),
        1,
        "{request:?} → {}",
        String::from_utf8_lossy(&out)
    );
    responses.remove(0)
}

fn is_hit(cache_status: Option<&str>) -> bool {
    cache_status.is_some_and(|c| c.split(';').any(|p| p.trim() == "hit"))
}

fn requests_for(origin: &RecordingOrigin, path: &str) -> Vec<Recorded> {
    origin
        .requests()
        .into_iter()
        .filter(|r| r.target == path || r.target.starts_with(&format!("{path}?")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_variants_reach_the_origin_normalised_and_never_poison_clean_clients() {
    let setup = Setup::new("host-poison");
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let edge = Edge::start(&setup.dir, &config(origin.addr, "", ""));
    let plain = edge.http().port();
    let https = edge.https().port();
    let plain_landing = format!("http://localhost:{plain}/landing");
    let tls_landing = format!("http://localhost:{https}/landing");

    // Raw HTTP/1.1: the Host spellings seen poisoning the cache, and the absolute form.
    let variants = [
        (
            "/redirect/1",
            "GET /redirect/1 HTTP/1.1\r\nHost: localhost:6666\r\n\r\n",
        ),
        (
            "/redirect/2",
            "GET /redirect/2 HTTP/1.1\r\nHost: LOCALHOST\r\n\r\n",
        ),
        (
            "/redirect/3",
            "GET /redirect/3 HTTP/1.1\r\nHost: localhost.\r\n\r\n",
        ),
        (
            "/redirect/4",
            "GET /redirect/4 HTTP/1.1\r\nHost: localhost:\r\n\r\n",
        ),
        (
            "/redirect/5",
            "GET http://LOCALHOST:6666/redirect/5 HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ),
    ];
    for (path, request) in variants {
        let r = raw_get(&edge, request).await;
        assert_eq!(r.status, 302, "{request:?}: {r:?}");
        assert_eq!(
            r.header("location"),
            Some(plain_landing.as_str()),
            "{request:?}"
        );
        let seen = requests_for(&origin, path);
        assert_eq!(seen.len(), 1, "{path}: {seen:?}");
        assert_eq!(
            seen[0].header_all("host"),
            [format!("localhost:{plain}")],
            "{request:?}: the origin gets the normalised host and the listener's port"
        );
        // A clean client now gets the stored answer, which is the clean one.
        let clean = raw_get(
            &edge,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        )
        .await;
        assert_eq!(clean.header("location"), Some(plain_landing.as_str()));
        assert!(
            is_hit(clean.header("cache-status")),
            "{path}: the variant shares the clean key: {clean:?}"
        );
        assert_eq!(requests_for(&origin, path).len(), 1);
    }

    // HTTP/2 with an odd :authority, then a clean HTTP/2 client.
    let target = setup.target(edge.https(), "localhost");
    let r = h2_request(
        &target,
        "GET",
        "https://LOCALHOST.:1234/redirect/h2",
        &[],
        None,
    )
    .await
    .expect("h2 request");
    assert_eq!(r.header("location"), Some(tls_landing.as_str()), "{r:?}");
    let mut conn = Conn::connect(Proto::H2, &target).await.expect("h2");
    let clean = conn.get("/redirect/h2").await.expect("clean h2");
    assert_eq!(clean.header("location"), Some(tls_landing.as_str()));
    assert_eq!(requests_for(&origin, "/redirect/h2").len(), 1);

    // HTTP/3 likewise.
    let r = h3_raw(
        &target,
        &[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "LOCALHOST.:1234"),
            (":path", "/redirect/h3"),
        ],
        &[],
        true,
    )
    .await;
    let H3Outcome::Response(r) = r else {
        panic!("h3: {r:?}")
    };
    assert_eq!(r.header("location"), Some(tls_landing.as_str()), "{r:?}");
    let mut conn = Conn::connect(Proto::H3, &target).await.expect("h3");
    let clean = conn.get("/redirect/h3").await.expect("clean h3");
    assert_eq!(clean.header("location"), Some(tls_landing.as_str()));
    for r in requests_for(&origin, "/redirect/h2")
        .iter()
        .chain(&requests_for(&origin, "/redirect/h3"))
    {
        assert_eq!(r.header_all("host"), [format!("localhost:{https}")]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_hosts_are_refused() {
    let setup = Setup::new("host-bad");
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let edge = Edge::start(&setup.dir, &config(origin.addr, "", ""));
    for request in [
        "GET /h/1 HTTP/1.1\r\nHost: localhost\r\nHost: evil.test\r\n\r\n",
        "GET /h/2 HTTP/1.1\r\nHost: localhost/evil\r\n\r\n",
        "GET /h/3 HTTP/1.1\r\nHost: local host\r\n\r\n",
        "GET /h/4 HTTP/1.1\r\nHost: localhost:99999\r\n\r\n",
    ] {
        let r = raw_get(&edge, request).await;
        assert_eq!(r.status, 400, "{request:?}: {r:?}");
    }
    let target = setup.target(edge.https(), "localhost");
    let port = edge.https().port();
    // HTTP/2: a `host` field that names something else than :authority is malformed.
    let r = h2_request(
        &target,
        "GET",
        &format!("https://localhost:{port}/h/5"),
        &[("host", "evil.test")],
        None,
    )
    .await;
    assert!(
        matches!(&r, Ok(resp) if resp.status == 400) || r.is_err(),
        "h2 host != :authority: {r:?}"
    );
    // HTTP/2: two host fields.
    let r = h2_request(
        &target,
        "GET",
        "/h/6",
        &[("host", "localhost"), ("host", "evil.test")],
        None,
    )
    .await;
    assert!(
        matches!(&r, Ok(resp) if resp.status == 400) || r.is_err(),
        "h2 two hosts: {r:?}"
    );
    // HTTP/3: host differs from :authority.
    let r = h3_raw(
        &target,
        &[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", "/h/7"),
            ("host", "evil.test"),
        ],
        &[],
        true,
    )
    .await;
    assert!(
        matches!(&r, H3Outcome::Reset(H3_MESSAGE_ERROR))
            || matches!(&r, H3Outcome::Response(resp) if resp.status == 400),
        "h3 host != :authority: {r:?}"
    );
    assert!(
        origin
            .requests()
            .iter()
            .all(|r| !r.target.starts_with("/h/")),
        "nothing ambiguous reached the origin: {:?}",
        origin.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segment_paths_are_resolved_once_for_policy_key_and_origin() {
    let setup = Setup::new("path-deception");
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let site = r#"
[sites.cache]
force_ttl = [{ path_prefix = "/static/", ttl = "1h" }]
"#;
    let edge = Edge::start(&setup.dir, &config(origin.addr, site, ""));
    let target = setup.target(edge.https(), "localhost");
    let port = edge.https().port();

    // The policy still works for what really is under /static/.
    raw_get(&edge, "GET /static/ok HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    let again = raw_get(&edge, "GET /static/ok HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(is_hit(again.header("cache-status")));

    // A private page reached through /static/%2e%2e/ must not take /static/'s forced TTL.
    let r = raw_get(
        &edge,
        "GET /static/%2e%2e/account/h1 HTTP/1.1\r\nHost: localhost\r\nCookie: session=alice\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    let r = h2_request(
        &target,
        "GET",
        &format!("https://localhost:{port}/static/%2E%2E/account/h2"),
        &[("cookie", "session=alice")],
        None,
    )
    .await
    .expect("h2");
    assert_eq!(r.status, 200, "{r:?}");
    let r = h3_raw(
        &target,
        &[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", "/static/.%2e/account/h3"),
            ("cookie", "session=alice"),
        ],
        &[],
        true,
    )
    .await;
    assert!(
        matches!(&r, H3Outcome::Response(resp) if resp.status == 200),
        "{r:?}"
    );

    for proto in ["h1", "h2", "h3"] {
        let path = format!("/account/{proto}");
        let seen = requests_for(&origin, &path);
        assert_eq!(
            seen.len(),
            1,
            "the origin got the resolved path: {:?}",
            origin.requests()
        );
        // An anonymous client asking for the page gets the origin's answer, not Alice's copy.
        let anon = raw_get(
            &edge,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        )
        .await;
        assert!(
            !is_hit(anon.header("cache-status")),
            "{path} was stored: {anon:?}"
        );
        assert_eq!(requests_for(&origin, &path).len(), 2, "{path}");
    }

    for (request, why) in [
        (
            "GET /static/../../etc HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "climbs above /",
        ),
        (
            "GET /%2e%2e/x HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "encoded climb",
        ),
        (
            "GET /a/%zz HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "broken escape",
        ),
    ] {
        let r = raw_get(&edge, request).await;
        assert_eq!(r.status, 400, "{why}: {r:?}");
    }
    // An encoded slash stays encoded (it is data), in the key and at the origin.
    let r = raw_get(
        &edge,
        "GET /files/a%2fb HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        requests_for(&origin, "/files/a%2Fb").len(),
        1,
        "{:?}",
        origin.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steering_and_forwarding_headers_from_clients_are_not_believed() {
    let setup = Setup::new("steering");
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let site = r#"
[sites.cache]
ignore_params = ["utm_source"]
"#;
    let tail = r#"
[[sites]]
name = "keeps"
hosts = ["b.test"]
plain_http = "proxy"
keep_request_headers = ["x-forwarded-scheme"]
routes = [{ path_prefix = "/", pool = "origin" }]
"#;
    let edge = Edge::start(&setup.dir, &config(origin.addr, site, tail));
    let port = edge.http().port();
    let hostile = "X-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\nX-Forwarded-Scheme: http\r\n\
        X-HTTP-Method-Override: DELETE\r\nForwarded: for=6.6.6.6;host=evil.test\r\n\
        X-Real-IP: 6.6.6.6\r\nX-Request-Id: evil-id\r\nX-Forwarded-Host: evil.test\r\n\
        X-Forwarded-Proto: https\r\nX-Forwarded-For: 6.6.6.6\r\nVia: 1.1 e2e-edge\r\n";
    let r = raw_get(
        &edge,
        &format!("GET /steer HTTP/1.1\r\nHost: localhost\r\n{hostile}\r\n"),
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = requests_for(&origin, "/steer");
    assert_eq!(seen.len(), 1);
    let o = &seen[0];
    for name in [
        "x-original-url",
        "x-rewrite-url",
        "x-forwarded-scheme",
        "x-http-method-override",
    ] {
        assert!(o.header(name).is_none(), "{name} reached the origin: {o:?}");
    }
    assert_eq!(
        o.header_all("forwarded"),
        [format!(
            "for=127.0.0.1;host=\"localhost:{port}\";proto=http"
        )]
    );
    assert_eq!(o.header_all("x-real-ip"), ["127.0.0.1"]);
    assert_eq!(
        o.header_all("x-forwarded-host"),
        [format!("localhost:{port}")]
    );
    assert_eq!(o.header_all("x-forwarded-proto"), ["http"]);
    assert_eq!(o.header_all("x-forwarded-for"), ["6.6.6.6, 127.0.0.1"]);
    assert_eq!(o.header_all("via"), ["1.1 e2e-edge"]);
    let id = o.header("x-request-id").expect("request id");
    assert_ne!(id, "evil-id");
    assert_eq!(r.header("x-request-id"), Some(id));
    // The stored answer is the one a clean request gets.
    let clean = raw_get(&edge, "GET /steer HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(is_hit(clean.header("cache-status")));
    assert!(!clean.text().contains("admin") && !clean.text().contains("6.6.6.6:"));

    // Over HTTP/2 and HTTP/3 the same headers are stripped.
    let target = setup.target(edge.https(), "localhost");
    for proto in [Proto::H2, Proto::H3] {
        let path = format!("/steer/{proto:?}");
        let mut conn = Conn::connect(proto, &target).await.expect("connect");
        let r = conn
            .send(
                Method::GET,
                &path,
                &[("x-original-url", "/admin"), ("x-real-ip", "6.6.6.6")],
                Bytes::new(),
            )
            .await
            .expect("request");
        assert_eq!(r.status, 200);
        let o = &requests_for(&origin, &path)[0];
        assert!(o.header("x-original-url").is_none(), "{proto:?}: {o:?}");
        assert_eq!(o.header_all("x-real-ip"), ["127.0.0.1"], "{proto:?}");
    }

    // Parameter cloaking: what the key leaves out, the origin does not see.
    raw_get(
        &edge,
        "GET /cloak?utm_source=x;callback=evil&id=1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    let seen = requests_for(&origin, "/cloak");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/cloak?id=1");

    // A site that keeps a steering header on purpose: forwarded, and part of the key.
    let with = raw_get(
        &edge,
        "GET /kept HTTP/1.1\r\nHost: b.test\r\nX-Forwarded-Scheme: http\r\n\r\n",
    )
    .await;
    let without = raw_get(&edge, "GET /kept HTTP/1.1\r\nHost: b.test\r\n\r\n").await;
    assert_eq!((with.status, without.status), (200, 200));
    let seen = requests_for(&origin, "/kept");
    assert_eq!(
        seen.len(),
        2,
        "a different header value is a different object"
    );
    assert_eq!(seen[0].header("x-forwarded-scheme"), Some("http"));
    assert_eq!(seen[1].header("x-forwarded-scheme"), None);
}
