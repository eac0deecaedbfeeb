//! Config from etcd (issue 14): real etcd, real edge processes, the `edge config` CLI. A push
//! reaches every node and shows in its answers; a version one node cannot compile is refused
//! there (and reported) while the others run it; rollback; an etcd outage keeps nodes serving,
//! a node restarted during it starts from its last known good version, and a version pushed
//! once etcd is back reaches it without a restart.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use edge_e2e::client::{self, Proto};
use edge_e2e::etcd::Etcd;
use edge_e2e::raw::{OriginMode, RecordingOrigin};
use edge_e2e::{Edge, Setup};

const WITHIN: Duration = Duration::from_secs(10);

fn node_file(name: &str, pop: &str) -> String {
    format!(
        "[node]\nname = \"{name}\"\npop = \"{pop}\"\nregion = \"eu\"\n\n\
         [listen]\nhttp = [\"127.0.0.1:0\"]\n\n[cache]\nmemory_bytes = \"16MiB\"\n\
         disk_dir = \"cache\"\ndisk_bytes = \"64MiB\"\n"
    )
}

/// The shared document: one site in front of `origin`; `extra` appended.
fn shared(origin: std::net::SocketAddr, extra: &str) -> String {
    edge_e2e::control::shared_doc(origin, "", extra)
}

fn edge_config(store: &str, args: &[&str]) -> Output {
    edge_e2e::control::edge_config(store, None, args)
}

/// Pushes `file`, validated against a node file like the test nodes' (plain HTTP only).
fn push(store: &str, file: &Path, extra: &[&str]) -> String {
    let node = file.with_file_name("validate-node.toml");
    std::fs::write(&node, node_file("validate", "none")).expect("node file");
    let node = node.to_str().expect("utf-8").to_string();
    let mut args = vec![
        "push",
        file.to_str().expect("utf-8"),
        "-m",
        "test",
        "--node-file",
        &node,
    ];
    args.extend_from_slice(extra);
    let out = edge_config(store, &args);
    assert!(
        out.status.success(),
        "push {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start_node(dir: &Path, name: &str, pop: &str, store: &str) -> Edge {
    let node_dir = dir.join(name);
    std::fs::create_dir_all(&node_dir).expect("node dir");
    let file = node_dir.join("node.toml");
    std::fs::write(&file, node_file(name, pop)).expect("node file");
    start_node_file(&node_dir, &file, store)
}

fn start_node_file(dir: &Path, file: &Path, store: &str) -> Edge {
    let path = file.to_str().expect("utf-8");
    Edge::start_with(
        dir,
        &["run", "--config", path, "--store", store],
        file.to_path_buf(),
    )
}

/// Which origin answers `path` on `edge` (each request a fresh URL, so nothing is cached).
async fn answered_by(
    setup: &Setup,
    edge: &Edge,
    path: &str,
    origins: &[&RecordingOrigin],
) -> Result<usize, String> {
    let target = setup.target(edge.http(), "localhost");
    let before: Vec<usize> = origins.iter().map(|o| o.requests().len()).collect();
    let reply = client::get(Proto::Plain, &target, path).await?;
    if reply.status != http::StatusCode::OK {
        return Err(format!("{} {}", reply.status, reply.text()));
    }
    origins
        .iter()
        .zip(before)
        .position(|(o, n)| o.requests().len() > n)
        .ok_or_else(|| "no origin saw it".to_string())
}

/// Polls until every node's next request goes to origin `want`.
async fn wait_all_on(
    setup: &Setup,
    nodes: &[&Edge],
    origins: &[&RecordingOrigin],
    want: usize,
    what: &str,
) {
    let deadline = Instant::now() + WITHIN;
    let mut i = 0u64;
    for node in nodes {
        loop {
            i += 1;
            let slug = what.replace(|c: char| !c.is_ascii_alphanumeric(), "-");
            let got = answered_by(setup, node, &format!("/private/{slug}/{i}"), origins).await;
            if got.as_ref() == Ok(&want) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: a node still answers from origin {got:?}, not {want}; its log:\n{}",
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn status(store: &str) -> (bool, String) {
    let out = edge_config(store, &["status"]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Polls `edge config status` until `accept` says yes.
async fn wait_status(store: &str, what: &str, accept: impl Fn(bool, &str) -> bool) -> String {
    let deadline = Instant::now() + WITHIN;
    loop {
        let (ok, table) = status(store);
        if accept(ok, &table) {
            return table;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: status never matched:\n{table}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_reach_every_node_a_bad_one_is_refused_where_it_fails_and_rollback_restores() {
    let setup = Setup::new("control-config");
    let etcd = Etcd::start(&setup.dir);
    let store = etcd.url("edge");
    let a = RecordingOrigin::start(OriginMode::Normal).await;
    let b = RecordingOrigin::start(OriginMode::Normal).await;
    let origins = [&a, &b];

    // An invalid document is refused before anything is written.
    let bad = write(
        &setup.dir,
        "bad.toml",
        &shared(a.addr, "").replace("pool = \"origin\"", "pool = \"nope\""),
    );
    let out = edge_config(&store, &["push", bad.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:8:39: unknown pool \"nope\""),
        "{err}"
    );
    assert!(
        edge_config(&store, &["history"])
            .stdout
            .split(|&b| b == b'\n')
            .count()
            <= 2
    );

    let v1 = write(&setup.dir, "v1.toml", &shared(a.addr, ""));
    assert!(push(&store, &v1, &[]).contains("version 1"));
    let n1 = start_node(&setup.dir, "par-1", "par", &store);
    let n2 = start_node(&setup.dir, "par-2", "par", &store);
    let n3 = start_node(&setup.dir, "fra-1", "fra", &store);
    let nodes = [&n1, &n2, &n3];
    wait_all_on(&setup, &nodes, &origins, 0, "v1").await;

    // Version 2 moves the pool to origin b: every node follows without a restart.
    let v2 = write(&setup.dir, "v2.toml", &shared(b.addr, ""));
    assert!(push(&store, &v2, &[]).contains("version 2"));
    wait_all_on(&setup, &nodes, &origins, 1, "v2").await;
    let table = wait_status(&store, "all on 2", |ok, t| {
        ok && t.matches(" 2 ").count() >= 3
    })
    .await;
    for name in ["par-1", "par-2", "fra-1"] {
        assert!(table.contains(name), "{table}");
    }

    // Version 3 names a key pair each node keeps on its own disk; fra-1 does not have it.
    setup.ca.issue(&setup.dir, "site", &["localhost"]);
    for node in ["par-1", "par-2"] {
        for f in ["site.pem", "site.key"] {
            std::fs::copy(setup.dir.join(f), setup.dir.join(node).join(f)).expect("copy");
        }
    }
    let v3 = write(
        &setup.dir,
        "v3.toml",
        &shared(a.addr, "").replace(
            "plain_http = \"proxy\"",
            "plain_http = \"proxy\"\ncert = \"site.pem\"\nkey = \"site.key\"",
        ),
    );
    assert!(
        push(&store, &v3, &["--local", "site.pem", "--local", "site.key"]).contains("version 3")
    );
    wait_all_on(&setup, &[&n1, &n2], &origins, 0, "v3").await;
    let table = wait_status(&store, "fra-1 refuses 3", |ok, t| {
        !ok && t.contains("ERROR in version 3")
    })
    .await;
    let fra = table
        .lines()
        .find(|l| l.starts_with("fra-1"))
        .expect("fra-1 row");
    assert!(fra.contains("site.pem"), "{table}");
    // fra-1 keeps serving version 2.
    assert_eq!(
        answered_by(&setup, &n3, "/private/fra-still-2", &origins).await,
        Ok(1)
    );
    assert!(n3.log().contains("config reload refused"), "{}", n3.log());

    // Rollback: version 2 again everywhere, and nothing to report.
    let out = edge_config(&store, &["rollback"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_all_on(&setup, &nodes, &origins, 1, "rollback").await;
    wait_status(&store, "all fine on 2", |ok, _| ok).await;

    // History and diff show what happened.
    let out = edge_config(&store, &["history"]);
    let history = String::from_utf8_lossy(&out.stdout);
    assert_eq!(history.lines().count(), 4, "{history}");
    assert!(history.lines().any(|l| l.starts_with("* 2")), "{history}");
    let out = edge_config(&store, &["diff", "2", "3"]);
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(diff.contains("+cert = \"site.pem\""), "{diff}");
    assert!(
        diff.contains(&format!("-endpoints = [\"{}\"]", b.addr)),
        "{diff}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_outage_keeps_nodes_serving_and_they_catch_up_after_it() {
    let setup = Setup::new("control-outage");
    let mut etcd = Etcd::start(&setup.dir);
    let store = etcd.url("edge");
    let a = RecordingOrigin::start(OriginMode::Normal).await;
    let b = RecordingOrigin::start(OriginMode::Normal).await;
    let origins = [&a, &b];
    push(
        &store,
        &write(&setup.dir, "v1.toml", &shared(a.addr, "")),
        &[],
    );
    let mut n1 = start_node(&setup.dir, "ams-1", "ams", &store);
    wait_all_on(&setup, &[&n1], &origins, 0, "v1").await;

    // Cached (on disk too) before the outage: asked until a hit. (Under a loaded machine a
    // request right after the first can still miss while the fill is being published; what
    // matters here is that the object is stored before etcd goes away.)
    let target = setup.target(n1.http(), "localhost");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = client::get(Proto::Plain, &target, "/kept")
            .await
            .expect("GET /kept");
        if r.header("cache-status").is_some_and(|s| s.contains("hit")) {
            break;
        }
        assert!(Instant::now() < deadline, "never cached");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = |o: &RecordingOrigin| o.requests().iter().filter(|r| r.target == "/kept").count();
    let fetched = seen(&a);
    assert!(fetched >= 1, "cached");

    etcd.kill();
    for i in 0..20 {
        let got = answered_by(&setup, &n1, &format!("/private/outage/{i}"), &origins).await;
        assert_eq!(got, Ok(0), "request {i} during the outage");
    }
    // A restart while etcd is down starts from the last known good version.
    drop(n1);
    let node_dir = setup.dir.join("ams-1");
    n1 = start_node_file(&node_dir, &node_dir.join("node.toml"), &store);
    assert_eq!(
        answered_by(&setup, &n1, "/private/lkg", &origins).await,
        Ok(0)
    );
    assert!(n1.log().contains("last known good"), "{}", n1.log());
    // It cannot know which purges it missed: what it cached is revalidated before reuse.
    let target = setup.target(n1.http(), "localhost");
    let r = client::get(Proto::Plain, &target, "/kept")
        .await
        .expect("GET /kept");
    let status = r.header("cache-status").unwrap_or("");
    assert!(
        status.contains("fwd="),
        "served unchecked after a blind restart: {status}"
    );
    assert_eq!(seen(&a), fetched + 1, "the origin was asked again");

    // etcd back: a version pushed now reaches the node by itself.
    etcd.restart();
    push(
        &store,
        &write(&setup.dir, "v2.toml", &shared(b.addr, "")),
        &[],
    );
    wait_all_on(&setup, &[&n1], &origins, 1, "after the outage").await;

    // A compacted history does not stop the node from following.
    etcd.compact();
    push(
        &store,
        &write(&setup.dir, "v3.toml", &shared(a.addr, "")),
        &[],
    );
    wait_all_on(&setup, &[&n1], &origins, 0, "after compaction").await;
    wait_status(&store, "reports version 3", |ok, t| {
        ok && t.contains("ams-1") && t.contains(" 3 ")
    })
    .await;
}
