//! The config source seam as an operator sees it: a snapshot's version is the file source's
//! revision (distinct contents read), a reload that reads nothing new keeps the running
//! snapshot, and a certificate file named by the config is watched like the config itself.

use std::time::{Duration, Instant};

use edge_e2e::client::{self, Proto};
use edge_e2e::origin::Origin;
use edge_e2e::{Edge, Setup};
use http::StatusCode;

const WAIT: Duration = Duration::from_secs(10);

/// Waits until the log holds `needle`, with the log in the failure message.
fn expect_log(edge: &Edge, needle: &str) {
    assert!(
        edge.wait_log(needle, WAIT),
        "expected {needle:?} in the log:\n{}",
        edge.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reload_version_is_the_file_source_revision() {
    let setup = Setup::new("revision");
    let origin = Origin::start().await;
    // Only SIGHUP reloads here, so every step is one fetch.
    let no_watch = "[reload]\nwatch_file = false\n";
    let good = setup.config(origin.addr, no_watch);
    let edge = Edge::start(&setup.dir, &good);
    expect_log(&edge, "edge ready version=1 ");

    // Nothing new to read: the running snapshot stays, no rebuild.
    edge.signal("HUP");
    expect_log(&edge, "config unchanged trigger=\"SIGHUP\" version=1");
    assert!(!edge.log().contains("config reloaded"), "{}", edge.log());

    // An edit is the next revision.
    let edited = good.replace(
        "origin_response_header = \"2s\"",
        "origin_response_header = \"3s\"",
    );
    assert_ne!(edited, good);
    std::fs::write(&edge.config, &edited).expect("write config");
    edge.signal("HUP");
    expect_log(
        &edge,
        "config reloaded trigger=\"SIGHUP\" version=2 previous=1",
    );

    // A refused document still took a revision (3); going back to the served text is another
    // distinct read (4), so versions only ever grow.
    std::fs::write(
        &edge.config,
        edited.replacen("[node]\n", "[node]\nnmae = 1\n", 1),
    )
    .expect("write config");
    edge.signal("HUP");
    expect_log(&edge, "config reload refused, keeping version 2: ");
    std::fs::write(&edge.config, &edited).expect("write config");
    edge.signal("HUP");
    expect_log(
        &edge,
        "config reloaded trigger=\"SIGHUP\" version=4 previous=2",
    );

    let local = setup.target(edge.https(), "localhost");
    let r = client::get(Proto::H2, &local, "/after").await.expect("GET");
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_certificate_file_alone_reloads_the_config() {
    let setup = Setup::new("rotate");
    let origin = Origin::start().await;
    // Site a's certificate starts out for another name: clients refuse it.
    setup.ca.issue(&setup.dir, "a", &["stale.test"]);
    let fast = "[reload]\npoll_interval = \"200ms\"\n";
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, fast));
    let a = setup.target(edge.https(), "a.test");
    assert!(
        client::get(Proto::H1, &a, "/").await.is_err(),
        "a.test served with a certificate for stale.test"
    );

    // Renew the certificate in place; the config file is not touched and no signal is sent.
    setup.ca.issue(&setup.dir, "a", &["a.test"]);
    let deadline = Instant::now() + WAIT;
    let mut served = false;
    while !served && Instant::now() < deadline {
        served = client::get(Proto::H1, &a, "/")
            .await
            .is_ok_and(|r| r.status == StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served,
        "renewed certificate not served; log:\n{}",
        edge.log()
    );
    // The certificate and key are written one after the other, so a poll may catch only the
    // first (refused: they do not match); the version is 2 or 3.
    expect_log(&edge, "config reloaded trigger=\"file change\"");
    for proto in [Proto::H2, Proto::H3] {
        let r = client::get(proto, &a, "/").await.expect("GET");
        assert_eq!(r.status, StatusCode::OK, "{proto:?}");
    }
}
