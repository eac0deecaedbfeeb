//! The cache through a real edge, with an origin that counts what reaches it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_e2e::client::{self, Conn, Proto, Reply, TLS_PROTOS};
use edge_e2e::origin::Origin;
use edge_e2e::{Edge, Setup, Target, pattern_byte};
use http::{Method, StatusCode};

async fn start(tag: &str, extra: &str) -> (Setup, Origin, Edge, Target) {
    let setup = Setup::new(tag);
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, extra));
    let target = setup.target(edge.https(), "localhost");
    (setup, origin, edge, target)
}

async fn get(target: &Target, path: &str, headers: &[(&str, &str)]) -> Reply {
    client::request(Proto::H2, target, Method::GET, path, headers, Bytes::new())
        .await
        .expect("request")
}

fn cache_status(r: &Reply) -> &str {
    r.header("cache-status").unwrap_or("<none>")
}

fn age(r: &Reply) -> u64 {
    r.header("age")
        .and_then(|a| a.parse().ok())
        .expect("Age header on a cached response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_after_miss_on_every_protocol_with_age_and_cache_status() {
    let (_s, origin, _edge, target) = start("hit", "").await;
    // Each protocol once as the first (storing) client: HTTP/1.1 servers stop polling a body
    // after its declared length, which once left fills unfinished.
    for first_proto in [Proto::H1, Proto::H2, Proto::H3] {
        let name = format!("hit-{first_proto:?}");
        let path = format!("/c/{name}?cc=public,max-age=60");
        let first = client::get(first_proto, &target, &path).await.expect("GET");
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(
            cache_status(&first),
            "e2e-edge; fwd=uri-miss; fwd-status=200; stored"
        );
        // The fill is published before the body's last bytes leave: the next request hits.
        let next = get(&target, &path, &[]).await;
        assert!(
            cache_status(&next).contains("hit"),
            "{first_proto:?}: {}",
            cache_status(&next)
        );
        for proto in TLS_PROTOS {
            let r = client::get(proto, &target, &path).await.expect("GET");
            assert_eq!(r.status, StatusCode::OK, "{proto:?}");
            assert_eq!(r.text(), first.text(), "{proto:?}: same body from cache");
            assert!(
                cache_status(&r).starts_with("e2e-edge; hit; ttl="),
                "{proto:?}: {}",
                cache_status(&r)
            );
            assert!(age(&r) <= 60);
        }
        assert_eq!(
            origin.hits(&format!("/c/{name}")),
            1,
            "one origin request for all the hits"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_freshness_source_and_each_refusal() {
    let (_s, origin, _edge, target) = start("fresh", "").await;
    // (name, query, stored?)
    let table = [
        ("maxage", "cc=max-age=60", true),
        ("smaxage", "cc=s-maxage=60,max-age=0", true),
        ("expires", "expires=60", true),
        ("heuristic", "lm=100000", true),
        ("cdncc", "cc=no-store&cdn=max-age=60", true),
        ("nostore", "cc=no-store,max-age=60", false),
        ("private", "cc=private,max-age=60", false),
        ("nocache", "cc=no-cache", false),
        ("nothing", "x=1", false),
        ("expired", "cc=max-age=0", false),
    ];
    for (name, query, stored) in table {
        let path = format!("/c/{name}?{query}");
        let a = get(&target, &path, &[]).await;
        assert_eq!(a.status, StatusCode::OK, "{name}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let b = get(&target, &path, &[]).await;
        let hits = origin.hits(&format!("/c/{name}"));
        if stored {
            assert_eq!(
                hits,
                1,
                "{name}: expected a hit, Cache-Status {}",
                cache_status(&b)
            );
            assert!(
                cache_status(&b).contains("; hit"),
                "{name}: {}",
                cache_status(&b)
            );
        } else {
            assert_eq!(
                hits,
                2,
                "{name}: must not be served from cache ({})",
                cache_status(&b)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_object_is_revalidated_and_a_304_updates_stored_headers() {
    let (_s, origin, _edge, target) = start("reval", "").await;
    let path = "/c/reval?cc=max-age=1&etag=v1";
    let first = get(&target, path, &[]).await;
    assert!(first.text().contains("v1"));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let second = get(&target, path, &[]).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.text(), first.text(), "body kept after 304");
    assert_eq!(
        origin.conditional("/c/reval"),
        1,
        "the origin got a conditional request"
    );
    assert!(
        cache_status(&second).contains("fwd=stale; fwd-status=304"),
        "{}",
        cache_status(&second)
    );
    assert_eq!(
        second.header("x-revalidated"),
        Some("2"),
        "headers from the 304 were merged"
    );
    // Fresh again: the next request is a hit that keeps the updated header.
    let third = get(&target, path, &[]).await;
    assert!(
        cache_status(&third).contains("; hit"),
        "{}",
        cache_status(&third)
    );
    assert_eq!(third.header("x-revalidated"), Some("2"));
    assert_eq!(origin.hits("/c/reval"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_keeps_one_variant_per_request_header_value() {
    let (_s, origin, _edge, target) = start("vary", "").await;
    let path = "/c/vary?cc=max-age=60&vary=accept-language";
    let en = get(&target, path, &[("accept-language", "en")]).await;
    let fr = get(&target, path, &[("accept-language", "fr")]).await;
    assert!(
        cache_status(&fr).contains("fwd=vary-miss"),
        "{}",
        cache_status(&fr)
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let en2 = get(&target, path, &[("accept-language", "en")]).await;
    let fr2 = get(&target, path, &[("accept-language", "fr")]).await;
    assert!(en.text().contains("lang=en") && fr.text().contains("lang=fr"));
    assert_eq!(en2.text(), en.text());
    assert_eq!(fr2.text(), fr.text());
    assert_eq!(origin.hits("/c/vary"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_serves_at_once_and_refreshes_exactly_once() {
    let (_s, origin, _edge, target) = start("swr", "").await;
    let path = "/c/swr?cc=max-age=1,stale-while-revalidate=30&delay_ms=300";
    let first = get(&target, path, &[]).await;
    assert!(first.text().contains("v1"));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // Ten concurrent requests while stale: all get v1 immediately (the origin takes 300 ms).
    let replies = futures_util::future::join_all((0..10).map(|_| get(&target, path, &[]))).await;
    for r in &replies {
        assert!(
            r.text().contains("v1"),
            "stale copy expected, got {}",
            r.text()
        );
        assert!(
            cache_status(r).contains("detail=stale-while-revalidate"),
            "{}",
            cache_status(r)
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(&target, path, &[]).await;
        if r.text().contains("v2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the background refresh never landed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(origin.hits("/c/swr"), 2, "exactly one background refresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_serves_stale_inside_the_window_and_the_error_after() {
    let (_s, origin, _edge, target) = start("sie", "").await;
    let inside = "/c/sie-in?cc=max-age=1,stale-if-error=60";
    let outside = "/c/sie-out?cc=max-age=1,stale-if-error=1";
    let a = get(&target, inside, &[]).await;
    get(&target, outside, &[]).await;
    tokio::time::sleep(Duration::from_millis(2300)).await;
    origin.set_failing(Some(503));
    let b = get(&target, inside, &[]).await;
    assert_eq!(b.status, StatusCode::OK, "stale inside the window");
    assert_eq!(b.text(), a.text());
    assert!(
        cache_status(&b).contains("detail=stale-if-error"),
        "{}",
        cache_status(&b)
    );
    let c = get(&target, outside, &[]).await;
    assert_eq!(
        c.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "past the window the error passes through"
    );
    origin.set_failing(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_covers_a_dead_origin_too() {
    let setup = Setup::new("sie-dead");
    let origin = Origin::start().await;
    let no_watch = "[reload]\nwatch_file = false\n";
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, no_watch));
    let target = setup.target(edge.https(), "localhost");
    let path = "/c/dead?cc=max-age=1,stale-if-error=60";
    let a = get(&target, path, &[]).await;
    // Point the pool at a dead address: connect errors from now on.
    let dead = edge_e2e::origin::dead_addr().await;
    std::fs::write(&edge.config, setup.config(dead, no_watch)).expect("write");
    edge.signal("HUP");
    assert!(edge.wait_log("config reloaded", Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let b = get(&target, path, &[]).await;
    assert_eq!(b.status, StatusCode::OK, "{}", b.text());
    assert_eq!(b.text(), a.text());
    let c = get(&target, "/c/never-cached?cc=max-age=60", &[]).await;
    assert_eq!(c.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_methods_invalidate_the_target_and_location() {
    let (_s, origin, _edge, target) = start("inval", "").await;
    let cached = "/c/inv?cc=max-age=60";
    get(&target, cached, &[]).await;
    get(&target, "/c/loc?cc=max-age=60", &[]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(cache_status(&get(&target, cached, &[]).await).contains("hit"));
    // POST to the same URI: the next GET goes to the origin.
    let r = client::request(
        Proto::H2,
        &target,
        Method::POST,
        cached,
        &[],
        Bytes::from_static(b"x"),
    )
    .await
    .expect("POST");
    assert_eq!(r.status, StatusCode::OK);
    let after = get(&target, cached, &[]).await;
    assert!(
        cache_status(&after).contains("fwd=uri-miss"),
        "{}",
        cache_status(&after)
    );
    assert_eq!(origin.hits("/c/inv"), 3, "GET, POST, GET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_head_conditional_and_only_if_cached_from_cache() {
    let (_s, origin, _edge, target) = start("range", "").await;
    let path = "/c/range?cc=max-age=60&len=100000&etag=r1";
    let full = get(&target, path, &[]).await;
    assert_eq!(full.len, 100_000);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let r = get(&target, path, &[("range", "bytes=1000-1999")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.header("content-range"), Some("bytes 1000-1999/100000"));
    let want: Vec<u8> = (1000..2000).map(pattern_byte).collect();
    assert!(r.body == want, "range bytes differ");
    let r = get(&target, path, &[("range", "bytes=-10")]).await;
    assert_eq!(r.header("content-range"), Some("bytes 99990-99999/100000"));
    let r = get(&target, path, &[("range", "bytes=200000-")]).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), Some("bytes */100000"));

    let r = client::request(Proto::H1, &target, Method::HEAD, path, &[], Bytes::new())
        .await
        .expect("HEAD");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), Some("100000"));
    assert_eq!(r.len, 0);
    assert!(cache_status(&r).contains("hit"));

    let r = get(&target, path, &[("if-none-match", "\"r1\"")]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert_eq!(r.header("etag"), Some("\"r1\""));

    assert_eq!(
        origin.hits("/c/range"),
        1,
        "all answered from the one stored copy"
    );

    let r = get(
        &target,
        "/c/absent?cc=max-age=60",
        &[("cache-control", "only-if-cached")],
    )
    .await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(origin.hits("/c/absent"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_misses_make_one_origin_request() {
    let (_s, origin, _edge, target) = start("collapse", "").await;
    let path = "/c/herd?cc=max-age=60&delay_ms=300";
    let mut conns = Vec::new();
    for proto in [Proto::H2, Proto::H2, Proto::H3, Proto::H3] {
        conns.push(Conn::connect(proto, &target).await.expect("connect"));
    }
    let mut tasks = Vec::new();
    for i in 0..100 {
        let target = target.clone();
        let proto = [Proto::H2, Proto::H3, Proto::H1][i % 3];
        tasks.push(tokio::spawn(async move {
            client::get(proto, &target, path).await
        }));
    }
    let mut bodies = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.expect("join").expect("GET");
        assert_eq!(r.status, StatusCode::OK);
        bodies.insert(r.text());
    }
    assert_eq!(
        origin.hits("/c/herd"),
        1,
        "100 concurrent misses must make one origin request"
    );
    assert_eq!(bodies.len(), 1, "everyone got the same object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncacheable_slow_object_is_not_serialised() {
    let (_s, origin, _edge, target) = start("hfp", "").await;
    let path = "/c/slowpass?cc=no-store&delay_ms=500";
    let first = get(&target, path, &[]).await;
    assert!(
        cache_status(&first).contains("detail=no-store"),
        "{}",
        cache_status(&first)
    );
    let replies = futures_util::future::join_all((0..10).map(|_| get(&target, path, &[]))).await;
    for r in &replies {
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            cache_status(r).contains("detail=hit-for-pass"),
            "{}",
            cache_status(r)
        );
    }
    assert_eq!(origin.hits("/c/slowpass"), 11);
    assert_eq!(
        origin.max_concurrent("/c/slowpass"),
        10,
        "hit-for-pass requests must reach the origin together, not one after another"
    );
}

fn disk_cache(dir: &std::path::Path) -> String {
    format!(
        "[cache]\ndisk_dir = \"{}\"\nmax_object_memory_bytes = \"1MiB\"\n",
        dir.join("cache").display()
    )
}

/// The config with the HTTPS listener on `addr`: the cache key holds the listener's port, so a
/// restarted node finds its disk objects only on the same port (as in production).
fn pin_https(config: &str, addr: std::net::SocketAddr) -> String {
    config.replace(
        "https = [\"127.0.0.1:0\"]",
        &format!("https = [\"{addr}\"]"),
    )
}

async fn wait_hit(target: &Target, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cache_status(&get(target, path, &[]).await).contains("; hit") {
        assert!(Instant::now() < deadline, "{path} never became a hit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_tier_survives_a_restart_and_age_keeps_counting() {
    let setup = Setup::new("restart");
    let origin = Origin::start().await;
    let config = setup.config(origin.addr, &disk_cache(&setup.dir));
    let small = "/c/persist-small?cc=max-age=600";
    let big_len = 5_000_000u64; // over the 1 MiB memory limit: disk only
    let big = format!("/c/persist-big?cc=max-age=600&len={big_len}");
    let pinned;
    let (small_body, age_before) = {
        let mut edge = Edge::start(&setup.dir, &config);
        pinned = pin_https(&config, edge.https());
        let target = setup.target(edge.https(), "localhost");
        let a = get(&target, small, &[]).await;
        get(&target, &big, &[]).await;
        wait_hit(&target, small).await;
        wait_hit(&target, &big).await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let hit = get(&target, small, &[]).await;
        edge.signal("TERM");
        assert_eq!(edge.wait_exit(Duration::from_secs(10)), Some(0));
        (a.text(), age(&hit))
    };
    assert!(age_before >= 2);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let edge = Edge::start(&setup.dir, &pinned);
    let target = setup.target(edge.https(), "localhost");
    let r = get(&target, small, &[]).await;
    assert!(
        cache_status(&r).contains("; hit"),
        "small object lost on restart: {}",
        cache_status(&r)
    );
    assert_eq!(r.text(), small_body);
    assert!(
        age(&r) > age_before,
        "Age went from {age_before} to {} across the restart",
        age(&r)
    );
    let r = get(&target, &big, &[]).await;
    assert!(
        cache_status(&r).contains("; hit"),
        "big object lost on restart: {}",
        cache_status(&r)
    );
    assert_eq!(r.len, big_len);
    assert_eq!(
        r.hash,
        edge_e2e::Fnv::of_pattern(big_len),
        "disk body differs"
    );
    assert_eq!(origin.hits("/c/persist-small"), 1);
    assert_eq!(origin.hits("/c/persist-big"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_writing_never_leaves_a_truncated_object() {
    let setup = Setup::new("crash");
    let origin = Origin::start().await;
    let config = setup.config(origin.addr, &disk_cache(&setup.dir));
    let len = 40_000_000u64;
    let want = edge_e2e::Fnv::of_pattern(len);
    let done = "/c/crash-done?cc=max-age=600&len=3000000";
    let pinned;
    {
        let mut edge = Edge::start(&setup.dir, &config);
        pinned = pin_https(&config, edge.https());
        let target = setup.target(edge.https(), "localhost");
        get(&target, done, &[]).await;
        wait_hit(&target, done).await;
        // Large downloads in flight, killed part-way.
        let downloads: Vec<_> = (0..3)
            .map(|i| {
                let target = target.clone();
                tokio::spawn(async move {
                    client::get(
                        Proto::H2,
                        &target,
                        &format!("/c/crash-{i}?cc=max-age=600&len={len}"),
                    )
                    .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(150)).await;
        edge.signal("KILL");
        edge.wait_exit(Duration::from_secs(5));
        let mut cut = 0;
        for d in downloads {
            match d.await.expect("join") {
                Ok(r) if r.len == len && r.error.is_none() => {}
                Ok(r) => {
                    assert!(
                        r.error.is_some(),
                        "a cut download must look cut, not end cleanly"
                    );
                    cut += 1;
                }
                Err(_) => cut += 1,
            }
        }
        assert!(
            cut > 0,
            "no download was in flight at the kill; the test proves nothing"
        );
    }
    let edge = Edge::start(&setup.dir, &pinned);
    let target = setup.target(edge.https(), "localhost");
    for i in 0..3 {
        let r = get(
            &target,
            &format!("/c/crash-{i}?cc=max-age=600&len={len}"),
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.error.is_none(), "crash-{i}: {:?}", r.error);
        assert_eq!(
            r.len,
            len,
            "crash-{i}: truncated body served ({})",
            cache_status(&r)
        );
        assert_eq!(
            r.hash,
            want,
            "crash-{i}: corrupted body served ({})",
            cache_status(&r)
        );
    }
    let r = get(&target, done, &[]).await;
    assert!(
        cache_status(&r).contains("; hit"),
        "completed object lost: {}",
        cache_status(&r)
    );
    assert_eq!(r.hash, edge_e2e::Fnv::of_pattern(3_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_site_key_rules_bypass_and_forced_ttl() {
    let setup = Setup::new("keys");
    let origin = Origin::start().await;
    let extra = r#"
[[sites]]
name = "keyed"
hosts = ["keyed.test"]
plain_http = "proxy"
routes = [{ path_prefix = "/", pool = "origin" }]
[sites.cache]
ignore_params = ["utm_source"]
sort_query = true
key_headers = ["x-device"]
bypass_cookies = ["session"]
bypass_authorization = true
force_ttl = [{ path_prefix = "/c/forced", ttl = "1h" }]

[[sites]]
name = "nocache"
hosts = ["nocache.test"]
plain_http = "proxy"
routes = [{ path_prefix = "/", pool = "origin" }]
[sites.cache]
enabled = false
"#;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, extra));
    let keyed = setup.target(edge.http(), "keyed.test");
    let plain = |t: &Target, path: &str, h: &[(&str, &str)]| {
        let t = t.clone();
        let path = path.to_string();
        let h: Vec<(String, String)> = h
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        async move {
            let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            client::request(Proto::Plain, &t, Method::GET, &path, &h, Bytes::new())
                .await
                .expect("GET")
        }
    };
    // Ignored and reordered parameters map to one object.
    plain(&keyed, "/c/k?cc=max-age=60&b=2&a=1&utm_source=mail", &[]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = plain(&keyed, "/c/k?a=1&cc=max-age=60&b=2", &[]).await;
    assert!(
        cache_status(&r).contains("; hit"),
        "ignored/sorted params: {}",
        cache_status(&r)
    );
    // A key header splits the object per value.
    let r = plain(
        &keyed,
        "/c/k?cc=max-age=60&b=2&a=1",
        &[("x-device", "mobile")],
    )
    .await;
    assert!(
        cache_status(&r).contains("fwd=uri-miss"),
        "key header: {}",
        cache_status(&r)
    );
    assert_eq!(origin.hits("/c/k"), 2);
    // A session cookie bypasses the cache entirely.
    let r = plain(
        &keyed,
        "/c/k?a=1&cc=max-age=60&b=2",
        &[("cookie", "session=abc")],
    )
    .await;
    assert!(
        cache_status(&r).contains("fwd=bypass; detail=cookie"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(origin.hits("/c/k"), 3);
    // So does Authorization on this site.
    let r = plain(
        &keyed,
        "/c/k?a=1&cc=max-age=60&b=2",
        &[("authorization", "Bearer t")],
    )
    .await;
    assert!(
        cache_status(&r).contains("fwd=bypass; detail=authorization"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(origin.hits("/c/k"), 4);
    // A forced TTL stores what the origin said not to keep fresh.
    plain(&keyed, "/c/forced?cc=max-age=0", &[]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = plain(&keyed, "/c/forced?cc=max-age=0", &[]).await;
    assert!(
        cache_status(&r).contains("; hit"),
        "forced ttl: {}",
        cache_status(&r)
    );
    // A site with caching off never stores.
    let off = setup.target(edge.http(), "nocache.test");
    plain(&off, "/c/off?cc=max-age=60", &[]).await;
    let r = plain(&off, "/c/off?cc=max-age=60", &[]).await;
    assert!(
        cache_status(&r).contains("fwd=bypass; detail=disabled"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(origin.hits("/c/off"), 2);
}

/// Collapsed requests read the object as it streams: a fetch that takes longer than the
/// collapse timeout still serves everyone from one origin request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collapsed_requests_stream_along_with_a_slow_fetch() {
    let (_s, origin, _edge, target) =
        start("stream-herd", "[cache]\ncollapse_timeout = \"500ms\"\n").await;
    let len = 1_000_000u64; // 16 chunks, 100 ms apart: about 1.6 s, three collapse timeouts
    let path = format!("/c/slowherd?cc=max-age=60&len={len}&drip_ms=100");
    let want = edge_e2e::Fnv::of_pattern(len);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let target = target.clone();
            let path = path.clone();
            let proto = [Proto::H1, Proto::H2, Proto::H3][i % 3];
            tokio::spawn(async move { client::get(proto, &target, &path).await })
        })
        .collect();
    let mut collapsed = 0;
    for t in tasks {
        let r = t.await.expect("join").expect("GET");
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(
            (r.len, r.hash),
            (len, want),
            "body differs ({})",
            cache_status(&r)
        );
        if cache_status(&r).contains("collapsed") {
            collapsed += 1;
        }
    }
    assert_eq!(
        origin.hits("/c/slowherd"),
        1,
        "every request must share the one fetch"
    );
    assert_eq!(collapsed, 19);
    // And the object was stored once complete.
    wait_hit(&target, &path).await;
}
