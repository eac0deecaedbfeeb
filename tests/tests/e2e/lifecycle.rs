//! Config reloads, `edge check`, and graceful shutdown of a real edge process.

use std::process::Command;
use std::time::{Duration, Instant};

use edge_e2e::client::{self, Conn, Proto};
use edge_e2e::origin::Origin;
use edge_e2e::{Edge, Fnv, Setup, edge_binary};
use http::StatusCode;

const SITE_C: &str = r#"
[[sites]]
name = "c"
hosts = ["c.test"]
cert = "c.pem"
key = "c.key"
routes = [{ path_prefix = "/", pool = "origin" }]
"#;

async fn wait_status(
    proto: Proto,
    target: &edge_e2e::Target,
    path: &str,
    want: StatusCode,
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(r) = client::get(proto, target, path).await
            && r.status == want
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_a_site_while_downloads_and_quic_connections_survive() {
    let setup = Setup::new("reload");
    let origin = Origin::start().await;
    // Only the signal may reload here, so the test shows SIGHUP works.
    let no_watch = "[reload]\nwatch_file = false\n";
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, no_watch));
    let local = setup.target(edge.https(), "localhost");
    let site_c = setup.target(edge.https(), "c.test");
    setup.ca.issue(&setup.dir, "c", &["c.test"]);

    // Before: c.test is unknown (its SNI gets the default certificate, which does not cover it).
    assert!(
        client::get(Proto::H2, &site_c, "/").await.is_err(),
        "c.test served before reload"
    );

    // A 3 s download on the old snapshot, and an open QUIC connection.
    let chunks = 40u64;
    let download = {
        let local = local.clone();
        tokio::spawn(async move {
            client::get(Proto::H2, &local, &format!("/drip?chunks={chunks}&ms=100")).await
        })
    };
    let mut quic = Conn::connect(Proto::H3, &local).await.expect("h3 connect");
    assert_eq!(
        quic.get("/before").await.expect("h3 GET").status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    std::fs::write(
        &edge.config,
        setup.config(origin.addr, &format!("{SITE_C}{no_watch}")),
    )
    .expect("write config");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        client::get(Proto::H2, &site_c, "/").await.is_err(),
        "reloaded without SIGHUP although watch_file = false"
    );
    edge.signal("HUP");
    assert!(
        wait_status(
            Proto::H2,
            &site_c,
            "/new",
            StatusCode::OK,
            Duration::from_secs(10)
        )
        .await,
        "c.test not served after SIGHUP; log:\n{}",
        edge.log()
    );
    assert!(
        edge.log().contains("config reloaded trigger=\"SIGHUP\""),
        "{}",
        edge.log()
    );
    for proto in [Proto::H1, Proto::H3] {
        assert!(
            wait_status(
                proto,
                &site_c,
                "/new",
                StatusCode::OK,
                Duration::from_secs(2)
            )
            .await,
            "{proto:?}"
        );
    }

    let r = download.await.expect("join").expect("download");
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.error.is_none(), "download cut by reload: {:?}", r.error);
    assert_eq!(r.len, chunks * 65536);
    assert_eq!(r.hash, Fnv::of_pattern(chunks * 65536));

    // The QUIC connection opened before the reload still carries requests.
    let r = quic
        .get("/after")
        .await
        .expect("h3 GET on the old connection after reload");
    assert_eq!(r.status, StatusCode::OK);
    assert!(quic.quic().expect("quic").close_reason().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_file_reloads_without_a_signal() {
    let setup = Setup::new("watch");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    setup.ca.issue(&setup.dir, "c", &["c.test"]);
    std::fs::write(&edge.config, setup.config(origin.addr, SITE_C)).expect("write config");
    let site_c = setup.target(edge.https(), "c.test");
    assert!(
        wait_status(
            Proto::H1,
            &site_c,
            "/",
            StatusCode::OK,
            Duration::from_secs(10)
        )
        .await,
        "no reload on file change; log:\n{}",
        edge.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_config_is_refused_with_location_and_the_old_snapshot_keeps_serving() {
    let setup = Setup::new("broken");
    let origin = Origin::start().await;
    let good = setup.config(origin.addr, "");
    let edge = Edge::start(&setup.dir, &good);
    let local = setup.target(edge.https(), "localhost");

    // Line 3 gets a typo'd key.
    let broken = good.replacen("[node]\n", "[node]\nnmae = \"typo\"\n", 1);
    let line = broken
        .lines()
        .position(|l| l.starts_with("nmae"))
        .expect("typo line")
        + 1;
    std::fs::write(&edge.config, &broken).expect("write config");
    edge.signal("HUP");
    let needle = format!("{}:{line}:1: unknown field `nmae`", edge.config.display());
    assert!(
        edge.wait_log(&needle, Duration::from_secs(10)),
        "expected {needle:?} in the log:\n{}",
        edge.log()
    );
    assert!(edge.log().contains("config reload refused"));
    for proto in [Proto::H1, Proto::H2, Proto::H3] {
        let r = client::get(proto, &local, "/still").await.expect("request");
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{proto:?}: old snapshot must keep serving"
        );
    }
}

#[test]
fn edge_check_names_file_line_and_column() {
    let setup = Setup::new("check");
    let bad = setup.dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[listen]\nhttp = [\"127.0.0.1:80\"]\n\n[timeouts]\norigin_connect = \"3 fortnights\"\n",
    )
    .expect("write");
    let out = Command::new(edge_binary())
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .expect("run edge check");
    assert!(!out.status.success(), "edge check accepted a bad file");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:5:18: invalid duration", bad.display())),
        "edge check said: {stderr}"
    );

    let good = setup.dir.join("good.toml");
    std::fs::write(
        &good,
        setup.config("127.0.0.1:9".parse().expect("addr"), ""),
    )
    .expect("write");
    let out = Command::new(edge_binary())
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .expect("run edge check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (3 sites, 1 pools)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_downloads_finish_then_exits() {
    let setup = Setup::new("drain");
    let origin = Origin::start().await;
    let mut edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let local = setup.target(edge.https(), "localhost");
    let chunks = 15u64;
    let mut downloads = Vec::new();
    for proto in [Proto::H1, Proto::H2, Proto::H3] {
        let mut conn = Conn::connect(proto, &local).await.expect("connect");
        downloads.push(tokio::spawn(async move {
            (
                proto,
                conn.get(&format!("/drip?chunks={chunks}&ms=100")).await,
            )
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    edge.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(edge.https()).await.is_err(),
        "new connections still accepted after SIGTERM"
    );
    for d in downloads {
        let (proto, r) = d.await.expect("join");
        let r = r.expect("download");
        assert_eq!(r.status, StatusCode::OK, "{proto:?}");
        assert!(
            r.error.is_none(),
            "{proto:?}: cut by shutdown: {:?}",
            r.error
        );
        assert_eq!(r.len, chunks * 65536, "{proto:?}");
    }
    let code = edge.wait_exit(Duration::from_secs(10));
    assert_eq!(
        code,
        Some(0),
        "edge did not exit cleanly after draining; log:\n{}",
        edge.log()
    );
}
