//! Staged rollouts (issue 14): a version whose route answers 5xx is halted on its canary and
//! rolled back, the other nodes never run it; a good one is promoted to all; a rollout whose
//! controller dies stays halted at the canaries (status exits 1) until `abort`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use edge_e2e::client::{self, Proto};
use edge_e2e::etcd::Etcd;
use edge_e2e::origin::dead_addr;
use edge_e2e::raw::{OriginMode, RecordingOrigin};
use edge_e2e::{Edge, Setup, edge_binary};

const WITHIN: Duration = Duration::from_secs(15);

fn node_file(name: &str, pop: &str) -> String {
    format!(
        "[node]\nname = \"{name}\"\npop = \"{pop}\"\nregion = \"eu\"\n\n\
         [listen]\nhttp = [\"127.0.0.1:0\"]\nadmin = [\"127.0.0.1:0\"]\n"
    )
}

fn shared(origin: std::net::SocketAddr) -> String {
    edge_e2e::control::shared_doc(origin, "", "")
}

fn config(store: &str, args: &[&str]) -> Output {
    edge_e2e::control::edge_config(store, None, args)
}

fn push_args(dir: &Path, name: &str, text: &str) -> Vec<String> {
    let file = dir.join(name);
    std::fs::write(&file, text).expect("write");
    let node = dir.join("validate-node.toml");
    std::fs::write(&node, node_file("validate", "none")).expect("write");
    vec![
        "push".into(),
        file.to_string_lossy().into_owned(),
        "--node-file".into(),
        node.to_string_lossy().into_owned(),
    ]
}

fn start_node(dir: &Path, name: &str, pop: &str, store: &str) -> Edge {
    let node_dir = dir.join(name);
    std::fs::create_dir_all(&node_dir).expect("node dir");
    let file = node_dir.join("node.toml");
    std::fs::write(&file, node_file(name, pop)).expect("node file");
    let path = file.to_str().expect("utf-8");
    Edge::start_with(
        &node_dir,
        &["run", "--config", path, "--store", store],
        file.clone(),
    )
}

/// Which origin (index) answers a fresh uncacheable path on `edge`; `None` for an error.
async fn answered_by(
    setup: &Setup,
    edge: &Edge,
    origins: &[&RecordingOrigin],
    i: u64,
) -> Option<usize> {
    let target = setup.target(edge.http(), "localhost");
    // Found by its path: background traffic reaches the origins at the same time, so counting
    // requests before and after could credit another node's request.
    static UNIQUE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let path = format!("/private/r{i}-{n}");
    let r = client::get(Proto::Plain, &target, &path).await.ok()?;
    if r.status != http::StatusCode::OK {
        return None;
    }
    origins
        .iter()
        .position(|o| o.requests().iter().any(|r| r.target == path))
}

async fn wait_on(setup: &Setup, edge: &Edge, origins: &[&RecordingOrigin], want: usize) {
    let deadline = Instant::now() + WITHIN;
    let mut i = 1_000_000;
    while answered_by(setup, edge, origins, i).await != Some(want) {
        assert!(
            Instant::now() < deadline,
            "never on origin {want}; log:\n{}",
            edge.log()
        );
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn status(store: &str) -> (bool, String) {
    let out = config(store, &["status"]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Requests to every node until dropped: the canary's health is judged on real traffic.
fn traffic(setup: &Setup, nodes: &[&Edge]) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let targets: Vec<_> = nodes
        .iter()
        .map(|n| setup.target(n.http(), "localhost"))
        .collect();
    let flag = stop.clone();
    tokio::spawn(async move {
        let mut i = 0u64;
        while !flag.load(Ordering::Relaxed) {
            for t in &targets {
                i += 1;
                let _ = client::get(Proto::Plain, t, &format!("/private/load{i}")).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    stop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_canary_is_rolled_back_a_good_one_promoted_a_halted_one_waits() {
    let setup = Setup::new("control-rollout");
    let etcd = Etcd::start(&setup.dir);
    let store = etcd.url("edge");
    let a = RecordingOrigin::start(OriginMode::Normal).await;
    let b = RecordingOrigin::start(OriginMode::Normal).await;
    let origins = [&a, &b];
    let out = config(
        &store,
        &push_args(&setup.dir, "v1.toml", &shared(a.addr))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let par1 = start_node(&setup.dir, "par-1", "par", &store);
    let par2 = start_node(&setup.dir, "par-2", "par", &store);
    let fra1 = start_node(&setup.dir, "fra-1", "fra", &store);
    for n in [&par1, &par2, &fra1] {
        wait_on(&setup, n, &origins, 0).await;
    }
    let load = traffic(&setup, &[&par1, &par2, &fra1]);

    // Version 2 sends the route to a dead origin: its canary (POP fra) answers 502.
    let dead = dead_addr().await;
    let mut args = push_args(&setup.dir, "v2.toml", &shared(dead));
    args.extend(["--canary", "fra", "--watch", "2s", "--apply-within", "10s"].map(String::from));
    let out = config(&store, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a bad canary must fail the push: {said}"
    );
    assert!(said.contains("version 2 rolled back: 5xx ratio"), "{said}");
    wait_on(&setup, &fra1, &origins, 0).await;
    for n in [&par1, &par2] {
        assert!(
            !n.log().contains("version=2"),
            "a non-canary ran version 2:\n{}",
            n.log()
        );
    }
    assert!(
        fra1.log().contains("version=2"),
        "the canary never ran it:\n{}",
        fra1.log()
    );
    let (ok, table) = status(&store);
    assert!(ok && table.contains("version 2 rolled back"), "{table}");

    // Version 3 (origin b) is healthy on its canary: promoted everywhere.
    let mut args = push_args(&setup.dir, "v3.toml", &shared(b.addr));
    args.extend(["--canary", "fra-1", "--watch", "1s"].map(String::from));
    let out = config(&store, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("version 3 promoted"), "{said}");
    for n in [&par1, &par2, &fra1] {
        wait_on(&setup, n, &origins, 1).await;
    }

    // Version 4: the controller dies while it watches. The rollout stays at the canary.
    let mut args = push_args(&setup.dir, "v4.toml", &shared(a.addr));
    args.extend(["--canary", "fra", "--watch", "60s"].map(String::from));
    let mut controller = Command::new(edge_binary())
        .args(["config", "--store", &store])
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the controller");
    wait_on(&setup, &fra1, &origins, 0).await;
    let _ = controller.kill();
    let _ = controller.wait();
    let deadline = Instant::now() + WITHIN;
    let table = loop {
        let (ok, table) = status(&store);
        if !ok && table.contains("HALTED") {
            break table;
        }
        assert!(Instant::now() < deadline, "never halted:\n{table}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(table.contains("version 4"), "{table}");
    // Still halted: the canary keeps version 4, the others version 3.
    assert_eq!(answered_by(&setup, &fra1, &origins, 5).await, Some(0));
    assert_eq!(answered_by(&setup, &par1, &origins, 6).await, Some(1));
    // Each node's status page tells the same story.
    for (node, canary, version) in [(&fra1, true, 4), (&par1, false, 3)] {
        let s: serde_json::Value =
            serde_json::from_str(&node.admin_get("/status.json").await).expect("status json");
        let cp = &s["control_plane"];
        assert_eq!(cp["etcd"], true, "{cp}");
        assert_eq!(cp["canary"], canary, "{cp}");
        assert_eq!(cp["version"], version, "{cp}");
        assert_eq!(cp["rollout"]["version"], 4, "{cp}");
        assert_eq!(cp["rollout"]["state"], "canary", "{cp}");
        assert_eq!(cp["rollout"]["canaries"][0], "fra", "{cp}");
    }
    let out = config(&store, &["abort"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_on(&setup, &fra1, &origins, 1).await;
    let deadline = Instant::now() + WITHIN;
    while !status(&store).0 {
        assert!(Instant::now() < deadline, "{}", status(&store).1);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    load.store(true, Ordering::Relaxed);
}
