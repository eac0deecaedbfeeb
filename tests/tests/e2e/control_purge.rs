//! Purge fan-out over etcd (issue 14): one shield and three edges in three POPs, separate
//! processes, a real etcd. A purge by URL, tag or prefix through one node's API reaches every
//! node (the next request on each is a miss with new content) and the call returns with every
//! node's acknowledgement, the shield's first; an edge stopped during two purges applies both
//! when it comes back, before it serves them from its cache; an edge refetching from the
//! shield while a purge spreads never keeps the pre-purge body.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use edge_e2e::admin::{self, token_toml};
use edge_e2e::client::{self, Proto, Reply};
use edge_e2e::etcd::Etcd;
use edge_e2e::origin::Origin;
use edge_e2e::purge_node::version;
use edge_e2e::{Edge, Setup, edge_binary};
use serde_json::{Value, json};

const SECRET: &str = "fanout-secret";
const WITHIN: Duration = Duration::from_secs(10);

/// Fields drop in order: the processes stop before `setup` removes their directory.
struct Bed {
    store: String,
    origin: Origin,
    shield: Edge,
    edges: Vec<Edge>,
    _etcd: Etcd,
    setup: Setup,
}

fn node_file(name: &str, pop: &str, tier: &str) -> String {
    format!(
        "[node]\nname = \"{name}\"\npop = \"{pop}\"\nregion = \"eu\"\ntier = \"{tier}\"\n\n\
         [listen]\nhttp = [\"127.0.0.1:0\"]\nadmin = [\"127.0.0.1:0\"]\n\n\
         [cache]\nmemory_bytes = \"16MiB\"\ndisk_dir = \"cache\"\ndisk_bytes = \"64MiB\"\n"
    )
}

fn push(bed_dir: &Path, store: &str, name: &str, text: &str) {
    let file = bed_dir.join(name);
    std::fs::write(&file, text).expect("write");
    let node = bed_dir.join("validate-node.toml");
    std::fs::write(&node, node_file("validate", "none", "edge")).expect("write");
    let out = Command::new(edge_binary())
        .args(["config", "--store", store, "push"])
        .arg(&file)
        .arg("--node-file")
        .arg(&node)
        .output()
        .expect("edge config push");
    assert!(
        out.status.success(),
        "push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_node(dir: &Path, name: &str, pop: &str, tier: &str, store: &str) -> Edge {
    let node_dir = dir.join(name);
    std::fs::create_dir_all(&node_dir).expect("node dir");
    let file = node_dir.join("node.toml");
    if !file.exists() {
        std::fs::write(&file, node_file(name, pop, tier)).expect("node file");
    }
    let path = file.to_str().expect("utf-8");
    Edge::start_with(
        &node_dir,
        &["run", "--config", path, "--store", store],
        file.clone(),
    )
}

fn shared(
    origin: std::net::SocketAddr,
    shield: Option<std::net::SocketAddr>,
    tokens: &str,
) -> String {
    let (pool, site) = match shield {
        Some(s) => (
            format!("\n[pools.shields]\nendpoints = [\"{s}\"]\nalgorithm = \"consistent-hash\"\n"),
            "shield = \"shields\"\n",
        ),
        None => (String::new(), ""),
    };
    format!(
        r#"[pools.origin]
endpoints = ["{origin}"]
{pool}
[[sites]]
name = "local"
hosts = ["localhost", "127.0.0.1"]
plain_http = "proxy"
{site}routes = [{{ path_prefix = "/", pool = "origin" }}]
{tokens}"#
    )
}

async fn status_ok(store: &str, nodes: usize) {
    let deadline = Instant::now() + WITHIN;
    loop {
        let out = Command::new(edge_binary())
            .args(["config", "--store", store, "status"])
            .output()
            .expect("edge config status");
        let table = String::from_utf8_lossy(&out.stdout).into_owned();
        let rows = table.lines().filter(|l| l.ends_with(" ok")).count();
        if out.status.success() && rows == nodes {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed {nodes} nodes ok:\n{table}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Bed {
    async fn start(tag: &str) -> Bed {
        let setup = Setup::new(tag);
        let etcd = Etcd::start(&setup.dir);
        let store = etcd.url("edge");
        let origin = Origin::start().await;
        let tokens = token_toml("ops", SECRET, "");
        push(
            &setup.dir,
            &store,
            "v1.toml",
            &shared(origin.addr, None, &tokens),
        );
        let shield = start_node(&setup.dir, "shield-1", "par", "shield", &store);
        // The shield's own address is known now: every site goes through it. (The shield
        // lists itself and goes to the origin.)
        let shield_addr = shield.http.expect("shield http");
        push(
            &setup.dir,
            &store,
            "v2.toml",
            &shared(origin.addr, Some(shield_addr), &tokens),
        );
        let edges = [
            ("edge-par", "par"),
            ("edge-fra", "fra"),
            ("edge-ams", "ams"),
        ]
        .iter()
        .map(|(name, pop)| start_node(&setup.dir, name, pop, "edge", &store))
        .collect();
        status_ok(&store, 4).await;
        Bed {
            setup,
            store,
            origin,
            shield,
            edges,
            _etcd: etcd,
        }
    }

    async fn get(&self, edge: &Edge, path: &str) -> Reply {
        let target = self.setup.target(edge.http(), "localhost");
        tokio::time::timeout(WITHIN, client::get(Proto::Plain, &target, path))
            .await
            .unwrap_or_else(|_| panic!("GET {path}: no answer"))
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    async fn purge(&self, edge: &Edge, body: Value) -> Value {
        let r = admin::purge(edge.admin.expect("admin"), SECRET, &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }
}

fn cache_status(r: &Reply) -> String {
    r.header("cache-status").unwrap_or("").to_string()
}

/// Every node's acknowledgement, the shield's first.
fn assert_all_acked(record: &Value, what: &str) {
    assert_eq!(record["status"], "done", "{what}: {record:#}");
    let acks = record["acks"].as_array().expect("acks");
    let nodes: Vec<&str> = acks.iter().filter_map(|a| a["node"].as_str()).collect();
    assert_eq!(nodes.len(), 4, "{what}: {record:#}");
    assert_eq!(acks[0]["tier"], "shield", "{what}: {record:#}");
    for n in ["shield-1", "edge-par", "edge-fra", "edge-ams"] {
        assert!(nodes.contains(&n), "{what}: no ack from {n}: {record:#}");
    }
    let pending = record.get("pending").and_then(Value::as_array);
    assert!(pending.is_none_or(Vec::is_empty), "{what}: {record:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_tag_and_prefix_purges_reach_every_node_with_an_ack_from_each() {
    let bed = Bed::start("fanout").await;
    let cases = [
        (
            "/c/u1?cc=max-age=600",
            json!({"urls": ["http://localhost/c/u1?cc=max-age=600"]}),
        ),
        ("/c/t1?cc=max-age=600&sk=news", json!({"tags": ["news"]})),
        (
            "/c/dir/p1?cc=max-age=600",
            json!({"prefixes": ["localhost/c/dir/"]}),
        ),
    ];
    for (path, body) in cases {
        for edge in &bed.edges {
            bed.get(edge, path).await;
            // The fill is stored just after its body reached the client: a request right
            // after may still follow the fill in flight (collapsed) instead of hitting.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let again = bed.get(edge, path).await;
                if cache_status(&again).contains("hit") {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{path}: {}",
                    cache_status(&again)
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let before = version(&bed.get(&bed.edges[0], path).await);
        // Through one edge's API; every node acknowledges before the answer.
        let record = bed.purge(&bed.edges[1], body.clone()).await;
        assert_all_acked(&record, path);
        for edge in &bed.edges {
            let r = bed.get(edge, path).await;
            assert!(
                cache_status(&r).contains("fwd="),
                "{path} after the purge: {}",
                cache_status(&r)
            );
            assert!(
                version(&r) > before,
                "{path}: pre-purge body after the purge"
            );
        }
        // The record, as any node's API shows it later.
        let id = record["id"].as_str().expect("id");
        let shown = admin::call(
            bed.edges[1].admin.expect("admin"),
            "GET",
            &format!("/purge/{id}"),
            &[("authorization", &format!("Bearer {SECRET}"))],
            b"",
        )
        .await;
        assert_eq!(
            shown.json()["acks"].as_array().map(Vec::len),
            Some(4),
            "{}",
            shown.body
        );
    }
    assert!(
        bed.shield.log().contains("purge done"),
        "the shield applied purges"
    );

    // `edge purge --store`: straight onto the bus, no node's API in between.
    let path = "/c/cli1?cc=max-age=600";
    for edge in &bed.edges {
        bed.get(edge, path).await;
    }
    let out = Command::new(edge_binary())
        .args(["purge", "--store", &bed.store, "--url"])
        .arg(format!("http://localhost{path}"))
        .output()
        .expect("edge purge --store");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record: Value = serde_json::from_str(&said).expect("JSON record");
    assert_all_acked(&record, "edge purge --store");
    for edge in &bed.edges {
        let r = bed.get(edge, path).await;
        assert!(cache_status(&r).contains("fwd="), "{}", cache_status(&r));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_stopped_during_two_purges_applies_both_before_serving_them() {
    let mut bed = Bed::start("fanout-away").await;
    let paths = ["/c/away1?cc=max-age=600", "/c/away2?cc=max-age=600"];
    let ams = bed.edges.pop().expect("edge-ams");
    for p in paths {
        bed.get(&ams, p).await;
    }
    // Stopped cleanly: it leaves the live set, so the purges do not wait for it.
    ams.signal("TERM");
    let mut ams = ams;
    assert_eq!(ams.wait_exit(WITHIN), Some(0), "{}", ams.log());
    for p in paths {
        let record = bed
            .purge(
                &bed.edges[0],
                json!({"urls": [format!("http://localhost{p}")]}),
            )
            .await;
        assert_eq!(record["status"], "done", "{record:#}");
        assert_eq!(
            record["acks"].as_array().map(Vec::len),
            Some(3),
            "{record:#}"
        );
    }
    // Back: its disk cache still holds both, but the first requests are misses.
    let ams = start_node(&bed.setup.dir, "edge-ams", "ams", "edge", &bed.store);
    for p in paths {
        let r = bed.get(&ams, p).await;
        assert!(
            cache_status(&r).contains("fwd="),
            "{p} served from before the purge: {}",
            cache_status(&r)
        );
        assert!(version(&r) >= 2, "{p}");
    }
    assert!(ams.log().contains("purge done"), "{}", ams.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_refetching_from_the_shield_during_a_purge_never_keeps_the_old_body() {
    let bed = Bed::start("fanout-order").await;
    // Ten rounds: without shield-first ordering, most runs fail within them.
    for round in 0..10 {
        let path = format!("/c/ordered{round}?cc=max-age=600");
        let first = version(&bed.get(&bed.edges[0], &path).await);
        // A client keeps asking edge-par while the purge spreads.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (hammer_stop, target, p) = (
            stop.clone(),
            bed.setup.target(bed.edges[0].http(), "localhost"),
            path.clone(),
        );
        let hammer = tokio::spawn(async move {
            while !hammer_stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = client::get(Proto::Plain, &target, &p).await;
            }
        });
        let record = bed
            .purge(
                &bed.edges[2],
                json!({"urls": [format!("http://localhost{path}")]}),
            )
            .await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = hammer.await;
        assert_all_acked(&record, &path);
        let after = version(&bed.get(&bed.edges[0], &path).await);
        assert!(
            after > first,
            "round {round}: edge-par kept version {after} after the purge (was {first})"
        );
    }
    assert!(bed.origin.hits("/c/ordered0") >= 2);
}
