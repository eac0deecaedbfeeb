//! Health, readiness, drain and the status page on the admin listener, against real edge
//! processes: `/healthz` and `/readyz` for load balancers, `POST /drain` and SIGTERM taking the
//! node out of readiness (not out of service), `/status.json` counting what was served, and the
//! page itself in a real headless Chromium, driven over the DevTools protocol by
//! `tests/scripts/cdp.py` (python3, standard library only).
//!
//! The browser test saves its screenshot under the test's temp dir; with
//! `EDGE_UPDATE_DOCS=1` (or when `docs/status-page.png` is missing) it runs traffic for longer
//! and copies the screenshot to `docs/status-page.png` for the README.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use edge_e2e::admin::{self, AdminReply, token_toml};
use edge_e2e::client::{Conn, Proto};
use edge_e2e::origin::{Origin, dead_addr};
use edge_e2e::{Edge, Setup, Target};

const OPS: &str = "ops-secret-0123456789";
const VIEWER: &str = "viewer-secret-0123456789";
const SITE_ONLY: &str = "site-secret-0123456789";
const URLS_ONLY: &str = "urls-secret-0123456789";

/// Admin tokens: `ops` (may purge everything: may drain), `viewer` (read-only), and two that
/// may purge but not everything everywhere (`site` to one site, `urls` to URL purges).
fn tokens() -> String {
    [
        token_toml("ops", OPS, ""),
        token_toml("viewer", VIEWER, "read_only = true"),
        token_toml("site", SITE_ONLY, "sites = [\"local\"]"),
        token_toml("urls", URLS_ONLY, "kinds = [\"url\"]"),
    ]
    .concat()
}

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

async fn get(addr: SocketAddr, path: &str, secret: Option<&str>) -> AdminReply {
    let auth = secret.map(bearer);
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    admin::call(addr, "GET", path, &headers, b"").await
}

async fn drain(addr: SocketAddr, secret: Option<&str>, body: &str) -> AdminReply {
    let auth = secret.map(bearer);
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = auth.as_deref() {
        headers.push(("authorization", a));
    }
    admin::call(addr, "POST", "/drain", &headers, body.as_bytes()).await
}

async fn status_json(addr: SocketAddr, secret: Option<&str>) -> Value {
    let r = get(addr, "/status.json", secret).await;
    assert_eq!(r.status, 200, "/status.json: {}", r.body);
    r.json()
}

/// Polls `probe` until it returns Some, for at most `within`.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One HTTP/1.1 connection to the admin listener, kept open: it outlives the listener's
/// accept loop, which stops at SIGTERM.
struct AdminConn(hyper::client::conn::http1::SendRequest<Full<Bytes>>);

impl AdminConn {
    async fn open(addr: SocketAddr) -> AdminConn {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to admin");
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .expect("admin handshake");
        tokio::spawn(conn);
        AdminConn(send)
    }

    async fn get(&mut self, path: &str) -> (u16, String) {
        self.0.ready().await.expect("admin connection still open");
        let req = http::Request::get(path)
            .header("host", "admin")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = self.0.send_request(req).await.expect("admin answer");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_without_a_token_and_status_needs_one() {
    let setup = Setup::new("status-probes");
    let origin = Origin::start().await;
    let extra = format!("[admin]\nopen_metrics = false\n{}", tokens());
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, &extra));
    let a = edge.admin.expect("admin listener");

    let r = get(a, "/healthz", None).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let r = get(a, "/readyz", None).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = admin::call(a, "HEAD", "/readyz", &[], b"").await;
    assert_eq!(r.status, 200);
    let r = admin::call(a, "POST", "/healthz", &[], b"").await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));

    // The data needs a token off `open_metrics`; any valid one reads.
    let r = get(a, "/status.json", None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.header("www-authenticate").is_some());
    assert_eq!(get(a, "/status.json", Some("wrong")).await.status, 401);
    let s = status_json(a, Some(VIEWER)).await;
    assert_eq!(s["node"]["name"], "e2e-edge");
    // The page holds no data: anyone who reaches the listener gets it, with nothing to load
    // from elsewhere.
    let r = get(a, "/", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.body.contains("/status.json") && r.body.contains("drain-button"));
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        !r.body.contains("src=\"http") && !r.body.contains("href=\"http"),
        "the page loads nothing from elsewhere"
    );

    // The new routes are in the OpenAPI document, probes without security.
    let doc = get(a, "/openapi.json", None).await.json();
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/drain", "post"),
        ("/status.json", "get"),
        ("/", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    assert_eq!(doc["paths"]["/readyz"]["get"]["security"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_takes_the_node_out_of_readiness_not_out_of_service() {
    let setup = Setup::new("status-drain");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, &tokens()));
    let a = edge.admin.expect("admin listener");
    let local = setup.target(edge.http(), "localhost");

    // Refusals change nothing.
    let r = drain(a, None, "").await;
    assert_eq!(r.status, 401, "{}", r.body);
    for (secret, who) in [
        (VIEWER, "read-only"),
        (SITE_ONLY, "site-scoped"),
        (URLS_ONLY, "kind-scoped"),
    ] {
        let r = drain(a, Some(secret), "").await;
        assert_eq!(r.status, 403, "{who}: {}", r.body);
        assert!(r.json()["error"].as_str().is_some(), "{who}");
    }
    let r = drain(a, Some(OPS), "{\"drain\": \"yes\"}").await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = drain(a, Some(OPS), "{\"drian\": true}").await;
    assert_eq!(r.status, 400, "unknown field: {}", r.body);
    assert_eq!(get(a, "/readyz", None).await.status, 200);

    let r = drain(a, Some(OPS), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"draining": true, "previous": false}));
    let r = get(a, "/readyz", None).await;
    assert_eq!((r.status, r.body.as_str()), (503, "draining\n"));
    assert_eq!(
        get(a, "/healthz", None).await.status,
        200,
        "alive all along"
    );
    let s = status_json(a, None).await;
    assert_eq!(s["draining"], true);
    assert_eq!(s["ready"], false);
    assert_eq!(s["not_ready_reason"], "draining");

    // A load balancer takes the node out; whatever still reaches it is served.
    let r = edge_e2e::client::get(Proto::Plain, &local, "/c/drained?cc=max-age=60")
        .await
        .expect("request while draining");
    assert_eq!(r.status, StatusCode::OK);
    // Draining twice is no error; the answer says it already was.
    let r = drain(a, Some(OPS), "{\"drain\": true}").await;
    assert_eq!(r.json(), json!({"draining": true, "previous": true}));

    let r = drain(a, Some(OPS), "{\"drain\": false}").await;
    assert_eq!(r.json(), json!({"draining": false, "previous": true}));
    let r = get(a, "/readyz", None).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
    assert!(edge.log().contains("drain set through the admin API"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_makes_readyz_say_draining_while_requests_finish() {
    let setup = Setup::new("status-sigterm");
    let origin = Origin::start().await;
    // shutdown_grace is 10 s in the standard config: longer than this test needs.
    let mut edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let a = edge.admin.expect("admin listener");
    let local = setup.target(edge.http(), "localhost");

    // A response in flight (an event stream waiting for its second event) holds the process
    // in its drain until the test lets it end.
    let mut conn = Conn::connect(Proto::Plain, &local).await.expect("connect");
    let stream = tokio::spawn(async move { conn.get("/sse?n=2").await });
    eventually(
        "the stream to reach the origin",
        Duration::from_secs(10),
        || {
            let n = origin.hits("/sse");
            async move { (n == 1).then_some(()) }
        },
    )
    .await;
    let mut probe = AdminConn::open(a).await;
    assert_eq!(probe.get("/readyz").await, (200, "ready\n".into()));

    edge.signal("TERM");
    // The flag is set as the signal is handled: poll on the kept connection until it shows.
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let answer = probe.get("/readyz").await;
        if answer.0 != 200 {
            break answer;
        }
        assert!(Instant::now() < deadline, "/readyz still 200 after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(answer, (503, "draining\n".into()));
    let (status, body) = probe.get("/status.json").await;
    assert_eq!(status, 200);
    let s: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(s["draining"], true);

    origin.release_events(1);
    let r = stream.await.expect("join").expect("stream");
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.error.is_none(), "cut by the drain: {:?}", r.error);
    assert!(r.text().contains("event number 1"), "{}", r.text());
    assert_eq!(
        edge.wait_exit(Duration::from_secs(15)),
        Some(0),
        "edge did not exit cleanly; log:\n{}",
        edge.log()
    );
}

/// Sites and pools beyond the standard ones: `down.test` (plain HTTP) in front of an address
/// where nothing listens, and a pool with one dead endpoint among two; both health-checked
/// (passive ejection never takes a pool's last endpoint out).
async fn extra_config(origin: SocketAddr) -> String {
    let dead = dead_addr().await;
    let dead2 = dead_addr().await;
    format!(
        r#"
[cache]
disk_dir = "cache"

[pools.down]
endpoints = ["{dead}"]

[pools.down.health]
path = "/health"
interval = "1s"
fall = 1

[pools.static]
endpoints = ["{origin}", "{dead2}"]
algorithm = "least-in-flight"

[pools.static.health]
path = "/health"
interval = "1s"
fall = 1

[[sites]]
name = "down"
hosts = ["down.test"]
plain_http = "proxy"
routes = [{{ path_prefix = "/", pool = "down" }}]
"#
    )
}

/// The requests of one known batch, by protocol: `(protocol, path)`.
fn batch(tag: &str) -> Vec<(Proto, String)> {
    let cached = |p: &str| format!("/c/{tag}-{p}?cc=max-age=600");
    let mut out = Vec::new();
    for _ in 0..3 {
        out.push((Proto::Plain, cached("plain"))); // one miss, then hits
    }
    for proto in [Proto::H1, Proto::H2, Proto::H3] {
        for _ in 0..2 {
            out.push((proto, cached(&format!("{proto:?}"))));
        }
    }
    out
}

async fn send_batch(setup: &Setup, edge: &Edge, tag: &str) {
    let plain = setup.target(edge.http(), "localhost");
    let tls = setup.target(edge.https(), "localhost");
    for (proto, path) in batch(tag) {
        let target = if proto == Proto::Plain { &plain } else { &tls };
        let r = edge_e2e::client::get(proto, target, &path)
            .await
            .unwrap_or_else(|e| panic!("{proto:?} {path}: {e}"));
        assert_eq!(r.status, StatusCode::OK, "{proto:?} {path}");
    }
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_counts_what_was_served() {
    let setup = Setup::new("status-json");
    let origin = Origin::start().await;
    let extra = format!("{}{}", extra_config(origin.addr).await, tokens());
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, &extra));
    let a = edge.admin.expect("admin listener");

    // 9 responses 200 (h1: 3 plain + 2 TLS, h2: 2, h3: 2; per URL one miss then hits),
    // 2 × 502 or 503 from the dead pool and one 404 for an unknown host, all over HTTP/1.1.
    send_batch(&setup, &edge, "count").await;
    // The dead pool answers 502 (connection refused) until its first health check has
    // run, 503 (nothing in rotation) after: which one is a race with the checker's start.
    let mut down_statuses = Vec::new();
    for host in ["down.test", "down.test", "unknown.test"] {
        let t = setup.target(edge.http(), host);
        let r = edge_e2e::client::get(Proto::Plain, &t, "/")
            .await
            .expect("request");
        assert!(r.status.as_u16() >= 400, "{host}: {}", r.status);
        if host == "down.test" {
            assert!(
                matches!(r.status.as_u16(), 502 | 503),
                "{host}: {}",
                r.status
            );
            down_statuses.push(r.status.as_u16());
        }
    }
    let purge = admin::purge(
        a,
        OPS,
        &json!({"urls": [format!("http://localhost:{}/c/count-plain?cc=max-age=600", edge.http().port())]}),
    )
    .await;
    assert_eq!(purge.status, 200, "{}", purge.body);
    let purge_id = purge.json()["id"].as_str().expect("purge id").to_string();

    let s = status_json(a, None).await;
    let req = &s["requests"];
    assert_eq!(n(&req["total"]), 12, "{req}");
    assert_eq!(
        req["by_protocol"],
        json!({"h1": 8, "h2": 2, "h3": 2}),
        "{req}"
    );
    assert_eq!(
        req["by_status"],
        json!({"1xx": 0, "2xx": 9, "3xx": 0, "4xx": 1, "5xx": 2}),
        "{req}"
    );
    assert_eq!(n(&req["by_cache"]["hit"]), 5, "{req}");
    assert_eq!(n(&req["by_cache"]["miss"]), 4, "{req}");
    let cache_sum: u64 = req["by_cache"]
        .as_object()
        .expect("by_cache")
        .values()
        .map(n)
        .sum();
    assert_eq!(cache_sum, 12, "every response has one cache result: {req}");
    // The same counters as /metrics.
    assert_eq!(
        edge.metric("edge_responses_total{protocol=\"2\",status=\"2xx\"}")
            .await,
        2
    );
    assert_eq!(
        edge.metric("edge_cache_responses_total{result=\"hit\"}")
            .await,
        5
    );

    // Who and what.
    assert_eq!(
        s["node"],
        json!({"name": "e2e-edge", "pop": "e2e-edge", "region": "", "tier": "edge"})
    );
    assert_eq!(s["edge"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(n(&s["edge"]["pid"]), u64::from(edge.pid()));
    assert_eq!(n(&s["config"]["version"]), 1);
    assert_eq!(
        s["config"]["source"].as_str().map(PathBuf::from),
        Some(edge.config.clone())
    );
    let now = n(&s["now_unix_ms"]);
    let applied = n(&s["config"]["applied_unix_ms"]);
    assert!(applied > 0 && applied <= now, "{applied} vs {now}");
    // Uptime counts from the process's first clock reading (its first moments).
    let started = n(&s["edge"]["started_unix_ms"]);
    assert!(
        started <= now && now - started < 600_000,
        "{started} vs {now}"
    );
    assert!(n(&s["edge"]["uptime_s"]) < 600);
    assert_eq!(
        (s["ready"].clone(), s["draining"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(s["control_plane"]["etcd"], false);

    // Cache tiers: both, with their budgets and what they hold (the memory tier's counts
    // settle within a second, the disk tier's as each background write lands).
    let tiers = s["cache"]["tiers"].as_array().expect("tiers");
    assert_eq!(tiers.len(), 2, "{tiers:?}");
    assert_eq!(
        (tiers[0]["name"].clone(), tiers[1]["name"].clone()),
        (json!("memory"), json!("disk"))
    );
    assert!(n(&tiers[0]["budget_bytes"]) > 0 && n(&tiers[1]["budget_bytes"]) > 0);
    assert!(
        tiers[1]["dir"]
            .as_str()
            .is_some_and(|d| d.ends_with("cache"))
    );
    let tiers = eventually(
        "both tiers to count the objects",
        Duration::from_secs(15),
        || async {
            let s = status_json(a, None).await;
            let t = s["cache"]["tiers"].clone();
            let held = |i: usize| n(&t[i]["objects"]) > 0 && n(&t[i]["bytes"]) > 0;
            (held(0) && held(1)).then_some(t)
        },
    )
    .await;
    // 4 objects stored, one purged (URL purges remove at once); no room was needed.
    assert!(n(&tiers[0]["objects"]) <= 4, "{tiers}");
    assert_eq!(n(&tiers[0]["evictions"]), 0);

    // Pools: sorted by name, every endpoint with its state.
    let pools = s["pools"].as_array().expect("pools");
    let names: Vec<&str> = pools.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["down", "origin", "static"]);
    let main = &pools[1];
    assert_eq!(main["algorithm"], "round-robin");
    assert_eq!(n(&main["in_rotation"]), 1);
    let ep = &main["endpoints"][0];
    assert_eq!(ep["address"], origin.addr.to_string());
    assert_eq!(
        (ep["healthy"].clone(), ep["ejected"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(n(&ep["in_flight"]), 0);
    assert!(
        ep["latency_ewma_ms"].as_f64().is_some_and(|l| l > 0.0),
        "{ep}"
    );
    assert!(n(&main["connections_opened"]) >= 1);
    // The health checks take the dead endpoints out (fall = 1, every second).
    let static_pool = eventually(
        "the dead endpoints to fail their checks",
        Duration::from_secs(15),
        || async {
            let s = status_json(a, None).await;
            let p = s["pools"][2].clone();
            (p["in_rotation"] == 1 && s["pools"][0]["in_rotation"] == 0).then_some(p)
        },
    )
    .await;
    assert_eq!(static_pool["algorithm"], "least-in-flight");
    assert_eq!(static_pool["health_checks"], true);
    let states: Vec<(Value, Value)> = static_pool["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| (e["address"].clone(), e["in_rotation"].clone()))
        .collect();
    assert_eq!(states[0], (json!(origin.addr.to_string()), json!(true)));
    assert_eq!(states[1].1, json!(false));

    // The purge, newest first.
    let purges = &s["purges"];
    assert_eq!(n(&purges["kept"]), 1);
    assert_eq!(purges["recent"][0]["id"], purge_id.as_str());
    assert_eq!(purges["recent"][0]["kind"], "url");
    assert_eq!(purges["recent"][0]["token"], "ops");
    // The two 5xx, newest first, with what an operator needs to find them in the log.
    let errors = s["recent_errors"].as_array().expect("recent_errors");
    assert_eq!(errors.len(), 2, "{errors:?}");
    for (e, sent) in errors.iter().zip(down_statuses.iter().rev()) {
        assert_eq!(e["status"], *sent, "{e}");
        assert_eq!(e["protocol"], "1.1", "{e}");
        assert!(
            e["request_id"].as_str().is_some_and(|id| !id.is_empty()),
            "{e}"
        );
    }

    // The history: one sample every 2 s since before the first request, so once a sample
    // after the traffic is in, its intervals add up to exactly the totals.
    let history = eventually(
        "the history to hold every request",
        Duration::from_secs(15),
        || async {
            let s = status_json(a, None).await;
            let h = s["history"].clone();
            let sum: u64 = h["samples"]
                .as_array()?
                .iter()
                .map(|p| n(&p["requests"]))
                .sum();
            (sum == 12).then_some(h)
        },
    )
    .await;
    assert_eq!(
        (n(&history["interval_s"]), n(&history["window_s"])),
        (2, 300)
    );
    let samples = history["samples"].as_array().expect("samples");
    let by = |k: &str| -> f64 {
        samples
            .iter()
            .map(|p| p["rps"][k].as_f64().expect("rate") * n(&p["dt_ms"]) as f64 / 1000.0)
            .sum()
    };
    assert!(
        (by("h2") - 2.0).abs() < 0.05,
        "h2 rate × time = {}",
        by("h2")
    );
    assert!(
        (by("total") - 12.0).abs() < 0.1,
        "total rate × time = {}",
        by("total")
    );
    let errors: u64 = samples.iter().map(|p| n(&p["errors_5xx"])).sum();
    assert_eq!(errors, 2);
    let (hits, lookups) = samples.iter().fold((0, 0), |(h, l), p| {
        (h + n(&p["cache_hits"]), l + n(&p["cache_lookups"]))
    });
    assert_eq!(hits, 5);
    assert!(lookups >= 9, "{lookups}");
    assert!(
        samples
            .iter()
            .any(|p| p["hit_ratio"].as_f64().is_some_and(|r| r > 0.0))
    );
}

// ---- the page, in Chromium ----------------------------------------------------------------

fn have(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Chromium driven through `tests/scripts/cdp.py`: one JSON command per line in, one answer
/// per line out. The script ends Chromium's process group when its stdin closes.
struct Browser {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Browser {
    async fn start(dir: &Path) -> Browser {
        let chromium = ["chromium", "/usr/bin/chromium"]
            .into_iter()
            .find(|c| have(c));
        assert!(
            chromium.is_some() && have("python3"),
            "the status page test needs chromium and python3: install them with \
             `scripts/install-test-deps.sh` (or `apt-get install -y chromium python3`)"
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cdp.py");
        let mut child = tokio::process::Command::new("python3")
            .arg(&script)
            .args(["--chromium", chromium.unwrap_or("chromium")])
            .args(["--window", "1400x1000"])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start tests/scripts/cdp.py");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("cdp.py stdout");
        let mut browser = Browser {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        };
        let hello = browser.read().await;
        assert_eq!(hello["ok"], true, "Chromium did not start: {hello}");
        browser
    }

    async fn read(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("cdp.py answers within 60 s")
            .expect("read cdp.py")
            .expect("cdp.py exited");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("cdp.py said {line:?}: {e}"))
    }

    async fn cmd(&mut self, cmd: Value) -> Value {
        let stdin = self.stdin.as_mut().expect("cdp.py stdin");
        stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .expect("write to cdp.py");
        let answer = self.read().await;
        assert_eq!(answer["ok"], true, "{cmd} failed: {answer}");
        answer
    }

    async fn eval(&mut self, expr: &str) -> Value {
        self.cmd(json!({"op": "eval", "expr": expr})).await["value"].clone()
    }

    /// Evaluates `expr` until it is truthy.
    async fn wait_for(&mut self, what: &str, expr: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.eval(expr).await;
            if !(v.is_null() || v == false || v == "" || v == 0) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // EOF first: the script closes Chromium and ends its process group; only if it does
        // not exit does its own process get killed (kill_on_drop).
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.start_kill();
    }
}

/// The `data-value` of element `id` on the page, as a number.
fn value_of(id: &str) -> String {
    format!("Number(document.getElementById('{id}').dataset.value)")
}

/// Mixed traffic until `stop`: mostly hits, some misses, a few 404s and 502s, over all three
/// protocols, at a rate that changes over time (so the chart has a shape).
async fn traffic(
    plain: Target,
    tls: Target,
    down: Target,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) {
    let mut conns = Vec::new();
    for (proto, target) in [
        (Proto::Plain, &plain),
        (Proto::H1, &tls),
        (Proto::H2, &tls),
        (Proto::H3, &tls),
        (Proto::H3, &tls),
        (Proto::H2, &tls),
    ] {
        conns.push(Conn::connect(proto, target).await.expect("connect"));
    }
    let started = Instant::now();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let conn = &mut conns[(i % 6) as usize];
        let path = match i % 23 {
            0 => format!("/c/fresh-{i}?cc=max-age=600"),
            7 => "/no-such-page".to_string(),
            _ => format!("/c/hot-{}?cc=max-age=600", i % 40),
        };
        if conn.get(&path).await.is_ok() {
            sent.fetch_add(1, Ordering::Relaxed);
        }
        if i.is_multiple_of(97) {
            let _ = edge_e2e::client::get(Proto::Plain, &down, "/").await;
            sent.fetch_add(1, Ordering::Relaxed);
        }
        // 20 to 80 requests a second, in slow waves.
        let phase = started.elapsed().as_secs_f64() / 25.0 * std::f64::consts::TAU;
        let per_sec = 50.0 + 30.0 * phase.sin();
        tokio::time::sleep(Duration::from_secs_f64(1.0 / per_sec)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_status_page_in_chromium_shows_what_status_json_says() {
    let setup = Setup::new("status-page");
    let origin = Origin::start().await;
    let extra = format!(
        "[admin]\nopen_metrics = false\n{}{}",
        extra_config(origin.addr).await,
        tokens()
    );
    let config = setup.config(origin.addr, &extra).replacen(
        "name = \"e2e-edge\"",
        "name = \"fra1-edge-07\"\npop = \"fra1\"\nregion = \"eu-central\"",
        1,
    );
    let edge = Edge::start(&setup.dir, &config);
    let a = edge.admin.expect("admin listener");
    let page = format!("http://{a}/");
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/status-page.png");
    let update_docs = std::env::var_os("EDGE_UPDATE_DOCS").is_some() || !docs.exists();

    send_batch(&setup, &edge, "page").await;
    let mut browser = Browser::start(&setup.dir.join("chromium")).await;

    // Without a token the listener refuses the data, and the page says what to do.
    browser.cmd(json!({"op": "open", "url": page})).await;
    let banner = browser
        .wait_for(
            "the page to say it needs a token",
            "!document.getElementById('banner').hidden && document.getElementById('banner').textContent",
        )
        .await;
    assert!(
        banner.as_str().is_some_and(|b| b.contains("?token=")),
        "{banner}"
    );
    assert_eq!(browser.eval("document.body.dataset.updates").await, "0");

    // With one (in the URL, as an operator would bookmark it), it fills in.
    browser
        .cmd(json!({"op": "open", "url": format!("{page}?token={OPS}")}))
        .await;
    browser
        .wait_for(
            "the first refresh",
            "Number(document.body.dataset.updates) >= 1",
        )
        .await;
    let href = browser.eval("location.href").await;
    assert!(
        !href.as_str().unwrap_or_default().contains(OPS),
        "the token stays out of the address bar: {href}"
    );
    let s = status_json(a, Some(VIEWER)).await;
    let total = n(&s["requests"]["total"]);
    assert_eq!(total, 9);
    assert_eq!(browser.eval(&value_of("requests-total")).await, total);
    for p in ["h1", "h2", "h3"] {
        assert_eq!(
            browser.eval(&value_of(&format!("req-{p}"))).await,
            s["requests"]["by_protocol"][p],
            "{p}"
        );
    }
    assert_eq!(
        browser.eval(&value_of("status-2xx")).await,
        s["requests"]["by_status"]["2xx"]
    );
    assert_eq!(
        browser.eval(&value_of("cache-hit")).await,
        s["requests"]["by_cache"]["hit"]
    );
    assert_eq!(
        browser.eval(&value_of("config-version")).await,
        s["config"]["version"]
    );
    assert_eq!(
        browser
            .eval("document.getElementById('node-name').textContent")
            .await,
        "fra1-edge-07"
    );
    assert_eq!(
        browser
            .eval("document.getElementById('node-pop').textContent")
            .await,
        "fra1"
    );
    assert_eq!(
        browser
            .eval("document.getElementById('ready-state').dataset.value")
            .await,
        "ready"
    );
    let endpoint = browser
        .eval(&format!(
            "document.querySelector('[data-pool=\"origin\"] [data-endpoint=\"{}\"]').dataset.state",
            origin.addr
        ))
        .await;
    assert_eq!(endpoint, "up");

    // More traffic: the page follows without a reload.
    send_batch(&setup, &edge, "more").await;
    let expected = total + batch("more").len() as u64;
    browser
        .wait_for(
            "the page to count the new requests",
            &format!("{} === {expected}", value_of("requests-total")),
        )
        .await;
    let s = status_json(a, Some(VIEWER)).await;
    assert_eq!(n(&s["requests"]["total"]), expected);
    assert_eq!(
        browser.eval(&value_of("req-h3")).await,
        s["requests"]["by_protocol"]["h3"]
    );

    // A live node for the picture: waves of traffic over every protocol, a purge, the dead
    // endpoint found out by its health check; the chart gets a few minutes' worth when the
    // screenshot is for the README.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let load = tokio::spawn(traffic(
        setup.target(edge.http(), "localhost"),
        setup.target(edge.https(), "localhost"),
        setup.target(edge.http(), "down.test"),
        stop.clone(),
        sent.clone(),
    ));
    let purge = admin::purge(a, OPS, &json!({"tags": ["product-7"]})).await;
    assert_eq!(purge.status, 200, "{}", purge.body);
    let samples_wanted = if update_docs { 60 } else { 4 };
    let with_traffic = |s: &Value| {
        s["history"]["samples"]
            .as_array()
            .map_or(0, |v| v.iter().filter(|p| n(&p["requests"]) > 0).count())
    };
    eventually("samples with traffic", Duration::from_secs(180), || async {
        let s = status_json(a, Some(VIEWER)).await;
        let dead_found = s["pools"][0]["in_rotation"] == 0 && s["pools"][2]["in_rotation"] == 1;
        (with_traffic(&s) >= samples_wanted && dead_found).then_some(())
    })
    .await;
    // The chart draws what the history holds.
    browser
        .wait_for(
            "the chart to draw the samples",
            &format!(
                "Number(document.querySelector('#chart svg').dataset.samples) >= {samples_wanted}"
            ),
        )
        .await;
    browser
        .wait_for(
            "the dead endpoint to show as down",
            "document.querySelector('[data-pool=\"static\"] [data-state=\"down\"]') !== null",
        )
        .await;
    browser
        .wait_for(
            "the purge to be listed",
            "document.querySelector('[data-purge]') !== null",
        )
        .await;
    let shot = setup.dir.join("status-page.png");
    let taken = browser.cmd(json!({"op": "screenshot", "path": shot})).await;
    assert!(n(&taken["bytes"]) > 10_000, "{taken}");
    let png = std::fs::read(&shot).expect("screenshot file");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    eprintln!("status page screenshot: {}", shot.display());
    if update_docs {
        std::fs::create_dir_all(docs.parent().expect("docs dir")).expect("create docs/");
        std::fs::copy(&shot, &docs).expect("copy the screenshot to docs/");
        eprintln!("copied to {}", docs.display());
    }
    stop.store(true, Ordering::Relaxed);
    load.await.expect("traffic task");
    assert!(sent.load(Ordering::Relaxed) > 0);

    // The drain button: confirm (accepted by the script), POST /drain with the page's token;
    // the node leaves readiness and the page says so.
    browser
        .eval("document.getElementById('drain-button').click()")
        .await;
    eventually(
        "readyz to say draining",
        Duration::from_secs(15),
        || async {
            let r = get(a, "/readyz", None).await;
            (r.status == 503).then_some(())
        },
    )
    .await;
    let dialogs = browser.cmd(json!({"op": "dialogs"})).await["value"].clone();
    assert!(
        dialogs[0]
            .as_str()
            .is_some_and(|d| d.starts_with("Drain fra1-edge-07?")),
        "the button asks first: {dialogs}"
    );
    browser
        .wait_for(
            "the page to show the drain",
            "document.getElementById('ready-state').dataset.value === 'draining'",
        )
        .await;
    assert_eq!(
        browser
            .eval("document.getElementById('drain-button').textContent")
            .await,
        "Undo drain"
    );
    let errors = browser.cmd(json!({"op": "errors"})).await["value"].clone();
    assert_eq!(errors, json!([]), "no script errors on the page");
}
