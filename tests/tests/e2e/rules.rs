//! Site rules (issue 20) over HTTP/1.1, HTTP/2 and HTTP/3, against two real origins (the main
//! pool and a canary pool): device and cookie steering with separate cache entries, a 90/10
//! A/B split over 2,000 visitors that sticks, time windows set around now, URL and header
//! rewrites as the origin and the client see them, redirects, a direct answer, and Basic and
//! JWT authentication at the edge with nothing reaching the origin on failure.

use base64::Engine as _;
use bytes::Bytes;
use edge_e2e::client::{Conn, Proto, Reply, TLS_PROTOS};
use edge_e2e::origin::Origin;
use edge_e2e::{Edge, Setup, Target};
use http::Method;

const MOBILE_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
const DESKTOP_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const SECRET: &str = "an-hs256-secret-of-32-bytes-or-more!";

/// `HH:MM` in UTC, `minutes` from now.
fn clock_in(minutes: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let m = (now / 60 + minutes).rem_euclid(24 * 60);
    format!("{:02}:{:02}", m / 60, m % 60)
}

fn rules(canary: std::net::SocketAddr) -> String {
    let hash = bcrypt::hash_with_salt("open sesame", 4, [7u8; 16])
        .expect("bcrypt")
        .to_string();
    format!(
        r#"
[sites.ab]
by = "cookie"
cookie = "ab"
pin = "30d"

[[sites.rules]]
name = "maintenance"
when = {{ path_prefix = "/down/" }}
respond = {{ status = 503, body = "down for maintenance\n", content_type = "text/plain" }}

[[sites.rules]]
name = "moved"
when = {{ path_prefix = "/old/" }}
redirect = {{ status = 301, location = "https://${{host}}/new${{path}}" }}

[[sites.rules]]
name = "staff"
when = {{ path_prefix = "/echo/staff/" }}
auth = {{ basic = {{ realm = "staff", users = {{ alice = "{hash}" }} }} }}

[[sites.rules]]
name = "api"
when = {{ path_prefix = "/echo/api/" }}
auth = {{ jwt = {{ from = "header", keys = [{{ alg = "HS256", secret = "{SECRET}" }}], audience = "shop" }} }}

[[sites.rules]]
name = "mobile"
when = {{ device = ["mobile", "tablet"] }}
pool = "canary"
cache_key = ["device"]

[[sites.rules]]
name = "beta"
when = {{ cookie = {{ name = "beta", equals = "1" }} }}
pool = "canary"

[[sites.rules]]
name = "variant-b"
when = {{ all = [ {{ path_prefix = "/echo/ab" }}, {{ bucket = [90, 99] }} ] }}
pool = "canary"

[[sites.rules]]
name = "window-now"
when = {{ path_prefix = "/echo/window-now", time = {{ from = "{now_from}", to = "{now_to}" }} }}
pool = "canary"

[[sites.rules]]
name = "window-later"
when = {{ path_prefix = "/echo/window-later", time = {{ from = "{later_from}", to = "{later_to}" }} }}
pool = "canary"

[[sites.rules]]
name = "pretty-urls"
when = {{ path_prefix = "/pretty/" }}
rewrite = {{ from = "^/pretty/(.*)$", to = "/echo/ugly/$1" }}
request_headers = {{ set = {{ "X-Edge-Client" = "${{client}}" }}, remove = ["X-Debug"] }}

[[sites.rules]]
name = "tag"
response_headers = {{ set = {{ "X-Rules" = "seen" }} }}

[[sites.rules]]
name = "not-found"
phase = "response"
when = {{ status = [404] }}
response_headers = {{ set = {{ "X-Not-Found" = "yes" }} }}

[[sites.rules]]
name = "friendly-5xx"
phase = "response"
when = {{ status = ["500-599"] }}
respond = {{ body = "sorry, try again soon\n", content_type = "text/plain" }}

[pools.canary]
endpoints = ["{canary}"]
"#,
        now_from = clock_in(-60),
        now_to = clock_in(60),
        later_from = clock_in(120),
        later_to = clock_in(180),
    )
}

struct World {
    _setup: Setup,
    main: Origin,
    canary: Origin,
    _edge: Edge,
    target: Target,
}

async fn world(tag: &str) -> World {
    let setup = Setup::new(tag);
    let main = Origin::start().await;
    let canary = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(main.addr, &rules(canary.addr)));
    let target = setup.target(edge.https(), "b.test");
    World {
        _setup: setup,
        main,
        canary,
        _edge: edge,
        target,
    }
}

async fn send(conn: &mut Conn, path: &str, headers: &[(&str, &str)]) -> Reply {
    conn.send(Method::GET, path, headers, Bytes::new())
        .await
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_and_cookies_steer_to_pools_with_separate_cache_entries() {
    let w = world("rules-steer").await;
    for proto in TLS_PROTOS {
        let mut conn = Conn::connect(proto, &w.target).await.expect("connect");
        let path = format!("/c/page-{proto:?}?cc=max-age=60");
        let stored = format!("/c/page-{proto:?}");
        let mobile = send(&mut conn, &path, &[("user-agent", MOBILE_UA)]).await;
        assert_eq!(mobile.status, 200, "{proto:?}");
        assert_eq!(
            w.canary.hits(&stored),
            1,
            "{proto:?}: mobile went to the canary"
        );
        let desktop = send(&mut conn, &path, &[("user-agent", DESKTOP_UA)]).await;
        assert_eq!(desktop.status, 200);
        assert_eq!(
            w.main.hits(&stored),
            1,
            "{proto:?}: desktop got the mobile copy instead of its own"
        );
        // Both copies now come from the cache, each to its own class.
        for ua in [MOBILE_UA, DESKTOP_UA] {
            let r = send(&mut conn, &path, &[("user-agent", ua)]).await;
            assert_eq!(r.status, 200);
        }
        assert_eq!(w.canary.hits(&stored), 1, "{proto:?}");
        assert_eq!(w.main.hits(&stored), 1, "{proto:?}");
        // A beta cookie goes to the canary too (a pass-through path: never stored).
        let echo = format!("/echo/beta-{proto:?}");
        let r = send(&mut conn, &echo, &[("cookie", "theme=dark; beta=1")]).await;
        assert_eq!(r.status, 200);
        assert_eq!(w.canary.hits(&echo), 1, "{proto:?}: beta cookie");
        let r = send(&mut conn, &echo, &[("cookie", "beta=0")]).await;
        assert_eq!(r.status, 200);
        assert_eq!(w.main.hits(&echo), 1, "{proto:?}: no beta");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_90_10_split_holds_over_2000_visitors_and_sticks() {
    let w = world("rules-ab").await;
    let mut conn = Conn::connect(Proto::H2, &w.target).await.expect("connect");
    let mut canary_visitors = Vec::new();
    let mut main_visitors = Vec::new();
    for i in 0..2000 {
        let cookie = format!("ab=visitor-{i}");
        let before = w.canary.hits("/echo/ab");
        let r = send(&mut conn, "/echo/ab", &[("cookie", &cookie)]).await;
        assert_eq!(r.status, 200);
        if w.canary.hits("/echo/ab") > before {
            canary_visitors.push(cookie);
        } else {
            main_visitors.push(cookie);
        }
    }
    let share = canary_visitors.len() as f64 / 20.0;
    assert!(
        (8.0..=12.0).contains(&share),
        "variant B got {share} % of 2,000 visitors, not 10 ± 2"
    );
    assert_eq!(w.main.hits("/echo/ab") as usize, main_visitors.len());
    // Sticky: the same visitors come back to the same side, on every protocol.
    for proto in TLS_PROTOS {
        let mut conn = Conn::connect(proto, &w.target).await.expect("connect");
        for (cookies, origin) in [(&canary_visitors, &w.canary), (&main_visitors, &w.main)] {
            for cookie in cookies.iter().take(20) {
                let before = origin.hits("/echo/ab");
                send(&mut conn, "/echo/ab", &[("cookie", cookie)]).await;
                assert_eq!(origin.hits("/echo/ab"), before + 1, "{proto:?} {cookie}");
            }
        }
    }
    // A visitor without the cookie is pinned with one.
    let r = send(&mut conn, "/echo/ab", &[]).await;
    let set = r.header("set-cookie").expect("a pin cookie");
    for part in [
        "ab=",
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
        "Max-Age=2592000",
        "Path=/",
    ] {
        assert!(set.contains(part), "{set} lacks {part}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_windows_rewrites_redirects_and_direct_answers() {
    let w = world("rules-actions").await;
    for proto in TLS_PROTOS {
        let mut conn = Conn::connect(proto, &w.target).await.expect("connect");
        // A window around now routes; one later today does not (yet).
        let now = format!("/echo/window-now-{proto:?}");
        let later = format!("/echo/window-later-{proto:?}");
        send(&mut conn, &now, &[]).await;
        send(&mut conn, &later, &[]).await;
        assert_eq!(w.canary.hits(&now), 1, "{proto:?}: window around now");
        assert_eq!(w.main.hits(&later), 1, "{proto:?}: window later");

        // An internal rewrite: the origin sees the new URL and the added header, not the
        // removed one; the client sees its own URL answered, with the response header rule.
        let r = send(
            &mut conn,
            &format!("/pretty/{proto:?}?x=1"),
            &[("x-debug", "1")],
        )
        .await;
        assert_eq!(r.status, 200);
        let seen = r.text();
        assert!(
            seen.starts_with(&format!("GET /echo/ugly/{proto:?}?x=1")),
            "{proto:?}: {seen}"
        );
        assert!(seen.contains("x-edge-client: 127.0.0.1"), "{seen}");
        assert!(!seen.contains("x-debug"), "{seen}");
        assert_eq!(r.header("x-rules"), Some("seen"));

        let r = send(&mut conn, "/old/post?id=3", &[]).await;
        assert_eq!(r.status, 301);
        assert_eq!(r.header("location"), Some("https://b.test/new/old/post"));

        let r = send(&mut conn, "/down/cart", &[]).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.text(), "down for maintenance\n");
        assert_eq!(r.header("x-rules"), Some("seen"));
    }
    assert_eq!(w.main.hits("/old/post") + w.main.hits("/down/cart"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_rules_match_the_origin_status() {
    let w = world("rules-response").await;
    w.main.set_failing(Some(502));
    for proto in TLS_PROTOS {
        let mut conn = Conn::connect(proto, &w.target).await.expect("connect");
        // The origin's 502 keeps its status and gets the friendly body.
        let r = send(&mut conn, &format!("/c/failing-{proto:?}"), &[]).await;
        assert_eq!(r.status, 502, "{proto:?}");
        assert_eq!(r.text(), "sorry, try again soon\n", "{proto:?}");
        assert_eq!(r.header("x-rules"), Some("seen"));
        // A 404 gets a header and keeps its body.
        let r = send(&mut conn, "/missing/thing", &[]).await;
        assert_eq!(r.status, 404, "{proto:?}");
        assert_eq!(r.header("x-not-found"), Some("yes"), "{proto:?}");
        assert_eq!(r.text(), "not here\n");
        // A rule's own 503 answer is not replaced.
        let r = send(&mut conn, "/down/x", &[]).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.text(), "down for maintenance\n");
    }
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn jwt(secret: &str, claims: serde_json::Value) -> String {
    let head = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = b64(claims.to_string().as_bytes());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let sig = ring::hmac::sign(&key, format!("{head}.{body}").as_bytes());
    format!("{head}.{body}.{}", b64(sig.as_ref()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_and_jwt_auth_at_the_edge() {
    let w = world("rules-auth").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let valid = jwt(SECRET, serde_json::json!({"aud": "shop", "exp": now + 600}));
    let expired = jwt(SECRET, serde_json::json!({"aud": "shop", "exp": now - 600}));
    let wrong_key = jwt(
        "another-secret-that-is-32-bytes-long",
        serde_json::json!({"aud": "shop", "exp": now + 600}),
    );
    let good = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:open sesame")
    );
    let bad = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:guess")
    );
    for proto in TLS_PROTOS {
        let mut conn = Conn::connect(proto, &w.target).await.expect("connect");
        let staff = format!("/echo/staff/{proto:?}");
        let r = send(&mut conn, &staff, &[]).await;
        assert_eq!(r.status, 401, "{proto:?}: no credentials");
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Basic realm=\"staff\""),
            "{challenge}"
        );
        let r = send(&mut conn, &staff, &[("authorization", &bad)]).await;
        assert_eq!(r.status, 401, "{proto:?}: wrong password");
        assert_eq!(
            w.main.hits(&staff),
            0,
            "{proto:?}: a failure reached the origin"
        );
        let r = send(&mut conn, &staff, &[("authorization", &good)]).await;
        assert_eq!(r.status, 200, "{proto:?}: right password");
        assert_eq!(w.main.hits(&staff), 1);

        let api = format!("/echo/api/{proto:?}");
        for (token, what) in [
            (None, "missing"),
            (Some(&expired), "expired"),
            (Some(&wrong_key), "wrong key"),
        ] {
            let header = token.map(|t| format!("Bearer {t}"));
            let headers: Vec<(&str, &str)> = header
                .as_deref()
                .map(|h| vec![("authorization", h)])
                .unwrap_or_default();
            let r = send(&mut conn, &api, &headers).await;
            assert_eq!(r.status, 401, "{proto:?}: {what} token");
            let challenge = r.header("www-authenticate").unwrap_or_default();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
        }
        assert_eq!(
            w.main.hits(&api),
            0,
            "{proto:?}: a failure reached the origin"
        );
        let bearer = format!("Bearer {valid}");
        let r = send(&mut conn, &api, &[("authorization", &bearer)]).await;
        assert_eq!(r.status, 200, "{proto:?}: valid token");
        assert_eq!(w.main.hits(&api), 1);
    }
}

/// `edge rules test` says what the rules would do with a request, sending nothing; `edge
/// check` lists them as understood.
#[tokio::test]
async fn the_rules_test_command_explains_a_request() {
    let setup = Setup::new("rules-cli");
    let config = setup.dir.join("edge.toml");
    let canary: std::net::SocketAddr = "127.0.0.1:9".parse().expect("addr");
    std::fs::write(&config, setup.config(canary, &rules(canary))).expect("write config");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(edge_e2e::edge_binary())
            .args(args)
            .output()
            .expect("run edge");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let cfg = config.to_str().expect("path");
    let out = run(&[
        "rules",
        "test",
        "--config",
        cfg,
        "--request",
        "GET https://b.test/pretty/shoes?size=9",
        "-H",
        &format!("User-Agent: {MOBILE_UA}"),
        "-H",
        "X-Debug: 1",
    ]);
    for line in [
        "site: b (host b.test)",
        "matched: mobile, pretty-urls, tag",
        "device: mobile",
        "rewrite: /echo/ugly/shoes?size=9",
        "pool: canary",
        "request headers: remove x-debug; set x-edge-client: 192.0.2.1",
        "response headers: set x-rules: seen",
        "cache key: https://b.test/echo/ugly/shoes?size=9 r:device=mobile",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "no line {line:?} in:\n{out}"
        );
    }
    let out = run(&[
        "rules",
        "test",
        "--config",
        cfg,
        "--request",
        "GET https://b.test/old/x",
    ]);
    assert!(
        out.contains("answer: redirect 301 → https://b.test/new/old/x"),
        "{out}"
    );
    let out = run(&["check", "--config", cfg]);
    assert!(out.contains("site b:"), "{out}");
    assert!(out.contains("rule mobile:"), "{out}");
}
