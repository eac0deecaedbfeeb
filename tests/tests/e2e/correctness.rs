//! Cache and proxy correctness through a real edge, with an origin that counts what reaches it:
//! non-WebSocket upgrades, when a fill becomes visible, list-valued `Age`, Structured-Field
//! `CDN-Cache-Control`, 204s, tolerant dates, `no-cache` with a validator, and a passing health
//! check ending a passive ejection. (Shutdown persistence and stale-when-down: correctness_stale.rs.)

use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_e2e::client::{self, Conn, Proto, Reply, TLS_PROTOS};
use edge_e2e::origin::Origin;
use edge_e2e::{Edge, Setup, Target, pattern_byte};
use http::{Method, StatusCode};

/// No single exchange may take longer than this.
const WAIT: Duration = Duration::from_secs(15);

async fn start(tag: &str, extra: &str) -> (Setup, Origin, Edge, Target) {
    let setup = Setup::new(tag);
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, extra));
    let target = setup.target(edge.https(), "localhost");
    (setup, origin, edge, target)
}

/// One GET on a fresh connection, bounded by `WAIT`.
async fn fetch(proto: Proto, target: &Target, path: &str, headers: &[(&str, &str)]) -> Reply {
    let req = client::request(proto, target, Method::GET, path, headers, Bytes::new());
    match tokio::time::timeout(WAIT, req).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("{proto:?} GET {path}: {e}"),
        Err(_) => panic!("{proto:?} GET {path}: no answer within {WAIT:?}"),
    }
}

/// One GET on an open connection, bounded by `WAIT`.
async fn on(conn: &mut Conn, proto: Proto, path: &str, headers: &[(&str, &str)]) -> Reply {
    let req = conn.send(Method::GET, path, headers, Bytes::new());
    match tokio::time::timeout(WAIT, req).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("{proto:?} GET {path}: {e}"),
        Err(_) => panic!("{proto:?} GET {path}: no answer within {WAIT:?}"),
    }
}

async fn connect(proto: Proto, target: &Target) -> Conn {
    match tokio::time::timeout(WAIT, Conn::connect(proto, target)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("{proto:?} connect: {e}"),
        Err(_) => panic!("{proto:?} connect: not within {WAIT:?}"),
    }
}

fn cs(r: &Reply) -> &str {
    r.header("cache-status").unwrap_or("<none>")
}

/// The path part of a `/c/` URL: what the origin counts by.
fn key(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Requests `url` twice over HTTP/2, 200 ms apart; returns both replies.
async fn twice(target: &Target, url: &str) -> (Reply, Reply) {
    let a = fetch(Proto::H2, target, url, &[]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b = fetch(Proto::H2, target, url, &[]).await;
    (a, b)
}

/// Checks a table of (URL, stored?) cases; returns one line per case that went wrong.
async fn stored_table(origin: &Origin, target: &Target, cases: &[(String, bool)]) -> Vec<String> {
    let mut wrong = Vec::new();
    for (url, stored) in cases {
        let (a, b) = twice(target, url).await;
        let hits = origin.hits(key(url));
        let hit = hits == 1 && cs(&b).contains("; hit");
        if a.status != StatusCode::OK || b.status != StatusCode::OK {
            wrong.push(format!("{url}: statuses {} then {}", a.status, b.status));
        } else if *stored && !hit {
            wrong.push(format!(
                "{url}: must be stored and fresh, but the second request was not a hit \
                 (Cache-Status `{}`, origin requests {hits})",
                cs(&b)
            ));
        } else if !*stored && hits != 2 {
            wrong.push(format!(
                "{url}: must not be served fresh from the cache, but the second request was \
                 (Cache-Status `{}`, origin requests {hits})",
                cs(&b)
            ));
        }
    }
    wrong
}

/// Issue 1: `Upgrade` other than WebSocket is no upgrade: hop-by-hop headers are dropped and the
/// GET is cached like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_websocket_upgrade_is_a_plain_cacheable_get() {
    let (setup, origin, edge, tls) = start("upgrade-foo", "").await;
    let plain = setup.target(edge.http(), "localhost");
    let asks = [("connection", "upgrade"), ("upgrade", "foo/2")];
    for (proto, target) in [(Proto::H1, &tls), (Proto::Plain, &plain)] {
        let url = format!("/c/upgrade-{proto:?}?cc=max-age=60&echo=headers");
        let first = fetch(proto, target, &url, &asks).await;
        assert_eq!(first.status, StatusCode::OK, "{proto:?}: {}", first.text());
        let seen = first.text().to_lowercase();
        for gone in ["upgrade:", "connection:"] {
            assert!(
                !seen.lines().any(|l| l.starts_with(gone)),
                "{proto:?}: `{gone}` reached the origin for `Upgrade: foo/2` (not WebSocket: \
                 no upgrade, hop-by-hop headers must be dropped); the origin saw:\n{seen}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let second = fetch(proto, target, &url, &asks).await;
        assert_eq!(second.status, StatusCode::OK, "{proto:?}");
        assert!(
            cs(&second).contains("; hit") && origin.hits(key(&url)) == 1,
            "{proto:?}: a GET with `Upgrade: foo/2` must be cached like any GET; second request: \
             Cache-Status `{}` (first `{}`), origin requests {}",
            cs(&second),
            cs(&first),
            origin.hits(key(&url))
        );
    }
}

/// Fetches 10 fresh 1 MiB objects over `proto`; right after each body, a range request on a
/// second connection, open and idle already, must be a cache hit. Returns one line per miss.
async fn range_right_after_body(
    origin: &Origin,
    target: &Target,
    proto: Proto,
    tag: &str,
) -> Vec<String> {
    let len = 1_048_576u64;
    let want: Vec<u8> = (0..100).map(pattern_byte).collect();
    let mut wrong = Vec::new();
    for i in 0..10 {
        let url = format!("/c/visible-{tag}-{proto:?}-{i}?cc=max-age=60&len={len}");
        let mut conn = connect(proto, target).await;
        let mut next = connect(proto, target).await;
        let full = on(&mut conn, proto, &url, &[]).await;
        assert_eq!(full.status, StatusCode::OK, "{proto:?} {url}");
        assert!(full.error.is_none(), "{proto:?} {url}: {:?}", full.error);
        assert_eq!(full.len, len, "{proto:?} {url}: whole body");
        let r = on(&mut next, proto, &url, &[("range", "bytes=0-99")]).await;
        let hits = origin.hits(key(&url));
        if r.status != StatusCode::PARTIAL_CONTENT
            || !cs(&r).contains("; hit")
            || hits != 1
            || r.body != want
        {
            wrong.push(format!(
                "{proto:?} #{i}: range right after the body: status {}, Cache-Status `{}`, \
                 origin requests {hits}, {} body bytes",
                r.status,
                cs(&r),
                r.len
            ));
        }
    }
    wrong
}

/// Issue 2: an object is in the cache by the time its client has the whole body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_is_a_hit_as_soon_as_its_client_has_the_body() {
    let (_s, origin, _edge, target) = start("visible", "").await;
    let mut wrong = Vec::new();
    for proto in TLS_PROTOS {
        wrong.extend(range_right_after_body(&origin, &target, proto, "mem").await);
    }
    assert!(
        wrong.is_empty(),
        "{} of 30 objects were not served from the cache right after their client had the \
         whole body (it must be visible by then):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Issue 2, disk tier: the object is too large for memory and lives on disk only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_only_object_is_a_hit_as_soon_as_its_client_has_the_body() {
    let setup = Setup::new("visible-disk");
    let extra = format!(
        "[cache]\ndisk_dir = \"{}\"\nmax_object_memory_bytes = \"512KiB\"\n",
        setup.dir.join("cache").display()
    );
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, &extra));
    let target = setup.target(edge.https(), "localhost");
    let wrong = range_right_after_body(&origin, &target, Proto::H1, "disk").await;
    assert!(
        wrong.is_empty(),
        "{} of 10 disk-only objects were not served from the cache right after their client had \
         the whole body:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Issue 5: `Age: 7200, 0` is 7200 (RFC 9111 §5.1: the first member), older than max-age=3600.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_valued_age_uses_its_first_member() {
    let (_s, origin, _edge, target) = start("age-list", "").await;
    // Control: a single Age below max-age is stored and counts on.
    let (_, b) = twice(&target, "/c/age-one?cc=max-age=3600&age=100").await;
    assert!(
        cs(&b).contains("; hit"),
        "control (Age: 100): Cache-Status `{}`",
        cs(&b)
    );
    let age: u64 = b.header("age").and_then(|a| a.parse().ok()).unwrap_or(0);
    assert!(
        age >= 100,
        "control: Age {age} on the hit, the origin said 100"
    );

    let url = "/c/age-list?cc=max-age=3600&age=7200_0";
    let (a, b) = twice(&target, url).await;
    assert_eq!(a.status, StatusCode::OK);
    let hits = origin.hits(key(url));
    assert!(
        hits == 2 && !cs(&b).contains("; hit"),
        "`Age: 7200, 0` with max-age=3600 is already stale (the first member counts), but the \
         second request was served fresh: Cache-Status `{}`, Age `{}`, origin requests {hits}",
        cs(&b),
        b.header("age").unwrap_or("<none>")
    );
}

/// Issue 6: an invalid `CDN-Cache-Control` is ignored whole, so `Cache-Control: no-store` rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_cdn_cache_control_is_ignored_whole() {
    let (_s, origin, _edge, target) = start("cdn-sf", "").await;
    let cases = [
        // `CDN-Cache-Control: max-age=60`: valid, overrides no-store.
        ("/c/cdn-valid?cc=no-store&cdn=max-age=60", true),
        // `CDN-Cache-Control: max-age=10000, &&&&&`: not a Dictionary.
        (
            "/c/cdn-junk?cc=no-store&cdn=max-age=10000,%20%26%26%26%26%26",
            false,
        ),
        // `CDN-Cache-Control: max-age="10000"`: a String, not an Integer.
        ("/c/cdn-quoted?cc=no-store&cdn=max-age=%2210000%22", false),
    ]
    .map(|(u, s)| (u.to_string(), s));
    let wrong = stored_table(&origin, &target, &cases).await;
    assert!(
        wrong.is_empty(),
        "CDN-Cache-Control is a Structured Field Dictionary (RFC 9213): an invalid one is \
         ignored and Cache-Control: no-store applies:\n{}",
        wrong.join("\n")
    );
}

/// Issue 7: a cacheable 204 is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cacheable_204_is_stored() {
    let (_s, origin, _edge, target) = start("no-content", "").await;
    let mut wrong = Vec::new();
    for proto in TLS_PROTOS {
        let url = format!("/c/nc-{proto:?}?status=204&cc=max-age=60");
        let a = fetch(proto, &target, &url, &[]).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{proto:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let b = fetch(proto, &target, &url, &[]).await;
        assert_eq!(b.status, StatusCode::NO_CONTENT, "{proto:?}");
        let hits = origin.hits(key(&url));
        if hits != 1 || !cs(&b).contains("; hit") {
            wrong.push(format!(
                "{proto:?}: first Cache-Status `{}`, second `{}`, origin requests {hits}",
                cs(&a),
                cs(&b)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "a 204 with max-age=60 must be stored and the second request a hit:\n{}",
        wrong.join("\n")
    );
}

/// `Expires` written as given, for the query (`%20` for spaces, `%2C` for commas).
fn expires_raw(name: &str, value: &str) -> String {
    let v = value.replace(' ', "%20").replace(',', "%2C");
    format!("/c/{name}?expires_raw={v}")
}

/// Issue 8: dates are parsed tolerantly (RFC 9110 §5.6.7); an unparseable one is in the past.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expires_dates_are_parsed_tolerantly() {
    let (_s, origin, _edge, target) = start("dates", "").await;
    let soon = std::time::SystemTime::now() + Duration::from_secs(3600);
    let fixdate = httpdate::fmt_http_date(soon); // "Sun, 06 Nov 1994 08:49:37 GMT"
    let parts: Vec<&str> = fixdate.split(' ').collect();
    let [wkday, day, month, year, time, _gmt] = parts[..] else {
        panic!("unexpected IMF-fixdate {fixdate}");
    };
    let wkday = wkday.trim_end_matches(',');
    let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let at = days.iter().position(|d| *d == wkday).expect("weekday");
    let wrong_day = days[(at + 1) % 7];
    let day_num: u32 = day.parse().expect("day");
    let cases = [
        ("exp-fixdate", fixdate.clone(), true),
        (
            "exp-wrong-weekday",
            format!("{wrong_day}, {day} {month} {year} {time} GMT"),
            true,
        ),
        (
            "exp-lower-month",
            format!("{wkday}, {day} {} {year} {time} GMT", month.to_lowercase()),
            true,
        ),
        (
            "exp-asctime",
            format!("{wkday} {month} {day_num:>2} {time} {year}"),
            true,
        ),
        ("exp-garbage", "garbage".to_string(), false),
    ];
    let table: Vec<(String, bool)> = cases
        .iter()
        .map(|(name, value, stored)| (expires_raw(name, value), *stored))
        .collect();
    let wrong = stored_table(&origin, &target, &table).await;
    let shown: Vec<String> = cases
        .iter()
        .map(|(n, v, _)| format!("{n}: Expires: {v}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "Expires one hour ahead in each tolerated form is fresh, `garbage` is expired:\n{}\n\
         (cases: {})",
        wrong.join("\n"),
        shown.join("; ")
    );
}

/// Issue 9: `no-cache` with a validator and no lifetime is stored, then revalidated each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cache_with_validator_is_stored_and_revalidated() {
    let (_s, origin, _edge, target) = start("nocache-etag", "").await;
    let url = "/c/nc-etag?cc=no-cache&etag=v1";
    let (a, b) = twice(&target, url).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.text().contains("v1"), "{}", a.text());
    let conditional = origin.conditional(key(url));
    assert_eq!(
        conditional,
        1,
        "the second request must revalidate the stored object with If-None-Match; first \
         Cache-Status `{}`, second `{}`, origin requests {}",
        cs(&a),
        cs(&b),
        origin.hits(key(url))
    );
    assert_eq!(b.status, StatusCode::OK);
    assert_eq!(
        b.text(),
        a.text(),
        "the body comes from the cache after the 304"
    );
    assert!(
        cs(&b).contains("fwd-status=304"),
        "Cache-Status `{}`",
        cs(&b)
    );
}

/// The test config with its `[pools.origin]` replaced by `pool` (a TOML table body).
fn config_with_pool(setup: &Setup, pool: &str) -> String {
    let dummy: std::net::SocketAddr = "127.0.0.1:9".parse().expect("addr");
    setup.config(dummy, "").replace(
        "[pools.origin]\nendpoints = [\"127.0.0.1:9\"]\n",
        &format!("[pools.origin]\n{pool}\n"),
    )
}

/// Issue 4: an endpoint ejected passively is back as soon as its health checks pass, not when
/// the (long) ejection runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_health_check_ends_a_passive_ejection() {
    let setup = Setup::new("eject-heal");
    let a = Origin::start().await;
    let b = Origin::start().await;
    let pool = format!(
        "endpoints = [\"{}\", \"{}\"]\nretries = 0\n\
         health = {{ path = \"/health\", interval = \"200ms\", timeout = \"150ms\", rise = 1, fall = 3 }}\n\
         outlier = {{ consecutive_failures = 1, base_ejection = \"30s\", max_ejected_share = 0.5 }}",
        a.addr, b.addr
    );
    let edge = Edge::start(&setup.dir, &config_with_pool(&setup, &pool));
    let target = setup.target(edge.https(), "localhost");
    // `/c/` fails on A while its `/health` still answers 200.
    a.set_failing(Some(502));
    let direct = setup.target(a.addr, "localhost");
    let health = fetch(Proto::Plain, &direct, "/health", &[]).await;
    assert_eq!(
        health.status,
        StatusCode::OK,
        "A's health check must still pass"
    );
    let mut failed = false;
    for i in 0..10 {
        let r = fetch(Proto::H1, &target, &format!("/c/ej-{i}?cc=no-store"), &[]).await;
        if r.status == StatusCode::BAD_GATEWAY {
            failed = true;
            break;
        }
    }
    assert!(
        failed,
        "round-robin never sent a request to the failing endpoint"
    );
    assert!(
        edge.wait_log("endpoint ejected", Duration::from_secs(2)),
        "A was not ejected after a 502 with consecutive_failures = 1"
    );
    a.set_failing(None);
    let healed = Instant::now();
    let mut sent = 0;
    while a.hits("/c/back") == 0 && healed.elapsed() < Duration::from_secs(2) {
        let r = fetch(Proto::H1, &target, "/c/back?cc=no-store", &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        a.hits("/c/back") > 0,
        "A answers its health checks (every 200 ms, rise = 1) and was healed, yet none of {sent} \
         requests in {:?} reached it (B got {}): a passing health check must end a passive \
         ejection instead of waiting out base_ejection = 30s",
        healed.elapsed(),
        b.hits("/c/back")
    );
}

/// Review, 2026-12-03: a large disk object is checked against its integrity hash on the read
/// after its last byte, and an HTTP/1.1 server never makes that read once the declared length
/// is written: a corrupted object reached HTTP/1.1 clients as a clean 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_disk_object_never_reaches_an_http1_client_whole() {
    let setup = Setup::new("disk-corrupt");
    let dir = setup.dir.join("cache");
    let extra = format!(
        "[cache]\ndisk_dir = \"{}\"\nmax_object_memory_bytes = \"512KiB\"\n",
        dir.display()
    );
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, &extra));
    let plain = setup.target(edge.http(), "localhost");
    let len: u64 = 2 << 20;
    let path = format!("/c/corrupt?cc=max-age=600&len={len}");
    let first = client::get(Proto::Plain, &plain, &path).await.expect("GET");
    assert_eq!(first.body.len() as u64, len);
    let good = client::get(Proto::Plain, &plain, &path).await.expect("GET");
    assert!(
        good.header("cache-status")
            .is_some_and(|s| s.contains("hit")),
        "{:?}",
        good.header("cache-status")
    );
    // The one content file of that size: flip a byte in its middle, length unchanged.
    let file = find_file_of_len(&dir, len).expect("the object's content file");
    let mut bytes = std::fs::read(&file).expect("read");
    bytes[(len / 2) as usize] ^= 0xff;
    std::fs::write(&file, &bytes).expect("write");
    match client::get(Proto::Plain, &plain, &path).await {
        Err(_) => {}
        Ok(r) => assert!(
            r.body.len() as u64 != len,
            "the corrupted object was served whole ({} bytes, Cache-Status {:?})",
            r.body.len(),
            r.header("cache-status")
        ),
    }
}

fn find_file_of_len(dir: &std::path::Path, len: u64) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        if p.is_dir() {
            if let Some(f) = find_file_of_len(&p, len) {
                return Some(f);
            }
        } else if entry.metadata().is_ok_and(|m| m.len() == len) {
            return Some(p);
        }
    }
    None
}
