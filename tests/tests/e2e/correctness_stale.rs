//! What the cache keeps when things stop: fresh objects across a SIGTERM right after their
//! fills, and stale objects served while the origin cannot be reached.

use std::time::Duration;

use bytes::Bytes;
use edge_e2e::client::{self, Conn, Proto, Reply};
use edge_e2e::origin::Origin;
use edge_e2e::{Edge, Setup, Target};
use http::{Method, StatusCode};

/// No single exchange may take longer than this.
const WAIT: Duration = Duration::from_secs(15);

/// One GET on a fresh HTTP/2 connection, bounded by `WAIT`.
async fn fetch(target: &Target, path: &str) -> Reply {
    let req = client::request(Proto::H2, target, Method::GET, path, &[], Bytes::new());
    match tokio::time::timeout(WAIT, req).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("GET {path}: {e}"),
        Err(_) => panic!("GET {path}: no answer within {WAIT:?}"),
    }
}

fn cs(r: &Reply) -> &str {
    r.header("cache-status").unwrap_or("<none>")
}

fn key(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// The config with the HTTPS listener on `addr`: the cache key holds the listener's port.
fn pin_https(config: &str, addr: std::net::SocketAddr) -> String {
    config.replace(
        "https = [\"127.0.0.1:0\"]",
        &format!("https = [\"{addr}\"]"),
    )
}

/// Issue 3: a SIGTERM right after fills keeps every fresh object on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_fills_keeps_every_fresh_object() {
    let setup = Setup::new("term-keep");
    let origin = Origin::start().await;
    let extra = format!(
        "[cache]\ndisk_dir = \"{}\"\n",
        setup.dir.join("cache").display()
    );
    let config = setup.config(origin.addr, &extra);
    let urls: Vec<String> = (0..20)
        .map(|i| format!("/c/keep-{i}?cc=max-age=600"))
        .collect();
    let pinned;
    {
        let mut edge = Edge::start(&setup.dir, &config);
        pinned = pin_https(&config, edge.https());
        let target = setup.target(edge.https(), "localhost");
        let mut conn = match tokio::time::timeout(WAIT, Conn::connect(Proto::H2, &target)).await {
            Ok(Ok(c)) => c,
            other => panic!("connect: {:?}", other.err()),
        };
        for url in &urls {
            let r = tokio::time::timeout(WAIT, conn.get(url))
                .await
                .expect("answer in time")
                .expect("GET");
            assert_eq!(r.status, StatusCode::OK, "{url}");
        }
        drop(conn);
        edge.signal("TERM");
        assert_eq!(
            edge.wait_exit(Duration::from_secs(15)),
            Some(0),
            "SIGTERM: clean exit"
        );
    }
    let edge = Edge::start(&setup.dir, &pinned);
    let target = setup.target(edge.https(), "localhost");
    let mut lost = Vec::new();
    for url in &urls {
        let r = fetch(&target, url).await;
        assert_eq!(r.status, StatusCode::OK, "{url}");
        if !cs(&r).contains("; hit") || origin.hits(key(url)) != 1 {
            lost.push(format!(
                "{}: Cache-Status `{}`, origin requests {}",
                key(url),
                cs(&r),
                origin.hits(key(url))
            ));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of 20 fresh objects (max-age=600, fetched just before SIGTERM) were lost across the \
         restart on the same port and disk dir:\n{}",
        lost.len(),
        lost.join("\n")
    );
}

/// The edge's own verdict on a config file (`edge check`): Err with its output when refused.
fn edge_check(config: &std::path::Path) -> Result<(), String> {
    let out = std::process::Command::new(edge_e2e::edge_binary())
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("run edge check");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Stores three objects with max-age=1 on `host`, lets them go stale, then: a 500 from the origin
/// reaches the client; with the origin stopped, `must-revalidate` gets an error and the plain
/// object is served stale with `detail=origin-down`.
async fn stale_when_down(tag: &str, extra: &str, host: &str) {
    let setup = Setup::new(tag);
    let origin = Origin::start().await;
    let config = setup.config(origin.addr, extra);
    let file = setup.dir.join("edge.toml");
    std::fs::write(&file, &config).expect("write config");
    if let Err(e) = edge_check(&file) {
        panic!("the edge refuses the config:\n{extra}\n{e}");
    }
    let edge = Edge::start(&setup.dir, &config);
    let target = setup.target(edge.https(), host);
    let plain = "/c/down-plain?cc=max-age=1";
    let errs = "/c/down-500?cc=max-age=1";
    let must = "/c/down-mr?cc=max-age=1,must-revalidate";
    let stored = fetch(&target, plain).await;
    assert_eq!(stored.status, StatusCode::OK, "{plain}");
    for url in [errs, must] {
        assert_eq!(fetch(&target, url).await.status, StatusCode::OK, "{url}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    origin.set_failing(Some(500));
    let r = fetch(&target, errs).await;
    assert_eq!(
        r.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "an origin answering 500 is not unreachable: its 500 must reach the client (only \
         stale-if-error covers it); got {} with Cache-Status `{}`",
        r.status,
        cs(&r)
    );
    origin.set_failing(None);

    origin.stop();
    let r = fetch(&target, must).await;
    assert!(
        r.status == StatusCode::BAD_GATEWAY || r.status == StatusCode::GATEWAY_TIMEOUT,
        "a stale must-revalidate object is never served while the origin is down: got {} \
         with Cache-Status `{}`",
        r.status,
        cs(&r)
    );
    let r = fetch(&target, plain).await;
    assert!(
        r.status == StatusCode::OK
            && r.text() == stored.text()
            && cs(&r).contains("detail=origin-down"),
        "with the origin unreachable, the stale copy must be served: got {} `{}` with \
         Cache-Status `{}` (stored body `{}`)",
        r.status,
        r.text().trim(),
        cs(&r),
        stored.text().trim()
    );
}

/// Issue 10: `serve_stale_when_origin_down` (set on site `b.test`, the last in the config).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_served_while_origin_is_down_when_configured() {
    let extra = "[sites.cache]\nserve_stale_when_origin_down = \"1d\"\n";
    stale_when_down("stale-down-key", extra, "b.test").await;
}

/// Issue 10, the default (on, one day): a site without the key serves stale too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_served_while_origin_is_down_by_default() {
    stale_when_down("stale-down-default", "", "localhost").await;
}
