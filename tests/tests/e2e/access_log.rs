//! The access log (issue 15): one JSON object per request once its body has ended, with the
//! query redacted as `[log]` says, the origin endpoint and its time to response head, the
//! compression and trace id; aborted downloads marked; a file output reopened on SIGUSR1; and
//! per-site sampling that keeps every 5xx.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_e2e::client::{self, Conn, Proto};
use edge_e2e::origin::Origin;
use edge_e2e::{Edge, Setup};
use http::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The access records (JSON lines) in `text`, which may hold other log lines too.
fn records(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with("{\"ts\":"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid JSON {l:?}: {e}")))
        .collect()
}

/// Polls `read` until it holds the record of request `id`.
fn wait_record(read: impl Fn() -> String, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = read();
        if let Some(r) = records(&text).into_iter().find(|r| r["request_id"] == id) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no access record for request {id} in:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn request_id(r: &client::Reply) -> String {
    r.header("x-request-id").expect("x-request-id").to_string()
}

fn ms(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_line_per_request_with_its_fields() {
    let setup = Setup::new("alog-fields");
    let origin = Origin::start().await;
    let edge = Edge::start(
        &setup.dir,
        &setup.config(
            origin.addr,
            "\n[log]\nredact_query_params = [\"token\", \"sig\"]\n",
        ),
    );
    let target = setup.target(edge.https(), "localhost");
    let mut conn = Conn::connect(Proto::H2, &target).await.expect("connect");

    // A miss the edge compresses on the fly (uncacheable text above the minimum size).
    let path = "/c/page?cc=no-store&len=5000&text=1&token=s3cret&x=1&Sig=abc";
    let r = conn
        .send(
            Method::GET,
            path,
            &[
                ("accept-encoding", "gzip"),
                ("user-agent", "e2e-agent/1"),
                ("referer", "https://ref.test/"),
            ],
            Bytes::new(),
        )
        .await
        .expect("GET");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let id = request_id(&r);
    let rec = wait_record(|| edge.log(), &id);
    assert_eq!(rec["method"], "GET");
    assert_eq!(rec["path"], "/c/page");
    assert_eq!(
        rec["query"], "cc=no-store&len=5000&text=1&token=REDACTED&x=1&Sig=REDACTED",
        "{rec}"
    );
    assert!(!rec.to_string().contains("s3cret"), "{rec}");
    assert_eq!(rec["proto"], "2");
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["site"], "local");
    assert_eq!(rec["pool"], "origin");
    assert_eq!(rec["user_agent"], "e2e-agent/1");
    assert_eq!(rec["referer"], "https://ref.test/");
    assert_eq!(
        rec["bytes_sent"], r.len,
        "bytes sent are the compressed body's"
    );
    assert_eq!(rec["compression"], "gzip");
    assert_eq!(rec["aborted"], false);
    assert_eq!(rec["origin"], origin.addr.to_string());
    let (origin_ms, head_ms, duration_ms) = (
        ms(&rec["origin_ms"]),
        ms(&rec["head_ms"]),
        ms(&rec["duration_ms"]),
    );
    assert!(
        0.0 < origin_ms && origin_ms <= head_ms && head_ms <= duration_ms,
        "origin {origin_ms} ≤ head (TTFB) {head_ms} ≤ duration {duration_ms}: {rec}"
    );
    let trace = rec["trace_id"].as_str().expect("a trace id");
    assert!(
        trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()),
        "{trace}"
    );
    assert_eq!(
        rec["client"], "127.0.0.1",
        "the client address, not the socket"
    );
    assert!(rec["country"].is_null(), "no geo databases: no country");
    assert!(rec["ts"].as_str().is_some_and(|t| t.ends_with('Z')));

    // Stored, then a hit: no origin, no compression (the client accepts none).
    let cached = "/c/stored?cc=max-age=60&len=100";
    let miss = conn.get(cached).await.expect("miss");
    let hit = conn.get(cached).await.expect("hit");
    assert_eq!(hit.status, 200);
    let miss_rec = wait_record(|| edge.log(), &request_id(&miss));
    let hit_rec = wait_record(|| edge.log(), &request_id(&hit));
    assert_eq!(miss_rec["origin"], origin.addr.to_string());
    assert!(
        hit_rec["cache"].as_str().is_some_and(|c| c.contains("hit")),
        "{hit_rec}"
    );
    assert!(
        hit_rec["origin"].is_null() && hit_rec["origin_ms"].is_null(),
        "{hit_rec}"
    );
    assert!(hit_rec["compression"].is_null(), "{hit_rec}");
    assert_eq!(hit_rec["bytes_sent"], 100);
    assert_eq!(hit_rec["query"], "cc=max-age=60&len=100");

    // An answer of the edge's own (unknown host): logged too, without site or origin.
    let mut plain = Conn::connect(Proto::Plain, &setup.target(edge.http(), "localhost"))
        .await
        .expect("connect");
    let r = plain
        .send(Method::GET, "/x", &[("host", "nowhere.test")], Bytes::new())
        .await
        .expect("GET");
    assert_eq!(r.status, 404);
    let rec = wait_record(|| edge.log(), &request_id(&r));
    assert_eq!(rec["status"], 404);
    assert_eq!(rec["site"], "-");
    assert!(rec["origin"].is_null() && rec["query"].is_null(), "{rec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_format_without_the_query() {
    let setup = Setup::new("alog-combined");
    let origin = Origin::start().await;
    let edge = Edge::start(
        &setup.dir,
        &setup.config(
            origin.addr,
            "\n[log]\nformat = \"combined\"\nredact_query = true\n",
        ),
    );
    let target = setup.target(edge.http(), "localhost");
    let r = client::get(Proto::Plain, &target, "/c/comb?cc=no-store&token=s3cret")
        .await
        .expect("GET");
    assert_eq!(r.status, 200);
    let id = request_id(&r);
    assert!(
        edge.wait_log(&id, Duration::from_secs(10)),
        "no line for {id}"
    );
    let log = edge.log();
    let line = log
        .lines()
        .find(|l| l.contains(&id) && l.contains("\"GET "))
        .unwrap_or_else(|| panic!("no combined line for {id}:\n{log}"));
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.contains(&format!("\"GET /c/comb HTTP/1.1\" 200 {} ", r.len)),
        "{line}"
    );
    assert!(!line.contains("s3cret") && !line.contains('?'), "{line}");
    assert!(records(&log).is_empty(), "no JSON lines in combined mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_download_is_marked_aborted() {
    let setup = Setup::new("alog-abort");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let len: u64 = 64 << 20;
    let mut s = tokio::net::TcpStream::connect(edge.http())
        .await
        .expect("connect");
    s.write_all(format!("GET /bytes/{len} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
        .await
        .expect("write");
    // Read the head and some of the body, then go away.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 512 * 1024 {
        assert!(Instant::now() < deadline, "the body did not start");
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("read in time")
            .expect("read");
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
    }
    drop(s);
    let head = String::from_utf8_lossy(&got[..got.len().min(4096)]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let id = head
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect("x-request-id")
        .trim()
        .to_string();
    let rec = wait_record(|| edge.log(), &id);
    assert_eq!(rec["aborted"], true, "{rec}");
    assert_eq!(rec["status"], 200);
    let sent = rec["bytes_sent"].as_u64().expect("bytes_sent");
    assert!(sent < len, "{sent} of {len} sent: {rec}");

    // A complete one is not aborted, and its bytes are all of them.
    let r = client::get(
        Proto::Plain,
        &setup.target(edge.http(), "localhost"),
        "/bytes/300000",
    )
    .await
    .expect("GET");
    let rec = wait_record(|| edge.log(), &request_id(&r));
    assert_eq!(rec["aborted"], false, "{rec}");
    assert_eq!(rec["bytes_sent"], 300_000);

    // Nor is a small stored miss over HTTP/1.1, whose server stops polling the body once its
    // declared length is written (every such miss was logged aborted).
    for i in 0..5 {
        let r = client::get(
            Proto::Plain,
            &setup.target(edge.http(), "localhost"),
            &format!("/c/small-{i}?cc=max-age=60"),
        )
        .await
        .expect("GET");
        assert!(
            r.header("cache-status")
                .is_some_and(|s| s.contains("stored"))
        );
        let rec = wait_record(|| edge.log(), &request_id(&r));
        assert_eq!(rec["aborted"], false, "{rec}");
        assert_eq!(rec["bytes_sent"], r.len, "{rec}");
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_log_is_reopened_on_sigusr1_after_logrotate_renamed_it() {
    let setup = Setup::new("alog-file");
    let origin = Origin::start().await;
    // A relative path is taken from the config file's directory.
    let edge = Edge::start(
        &setup.dir,
        &setup.config(origin.addr, "\n[log]\naccess = \"access.log\"\n"),
    );
    let file = setup.dir.join("access.log");
    let rotated = setup.dir.join("access.log.1");
    let target = setup.target(edge.http(), "localhost");
    let get = |path: &'static str| {
        let target = target.clone();
        async move {
            let r = client::get(Proto::Plain, &target, path).await.expect("GET");
            assert_eq!(r.status, 200);
            request_id(&r)
        }
    };

    let first = get("/c/one?cc=no-store").await;
    wait_record(|| read(&file), &first);
    // logrotate: rename, then signal. Until the signal, lines follow the open file.
    std::fs::rename(&file, &rotated).expect("rename");
    let second = get("/c/two?cc=no-store").await;
    wait_record(|| read(&rotated), &second);
    edge.signal("USR1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !file.exists() {
        assert!(Instant::now() < deadline, "access.log not reopened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let third = get("/c/three?cc=no-store").await;
    wait_record(|| read(&file), &third);

    let old = records(&read(&rotated));
    let new = records(&read(&file));
    let ids = |v: &[Value]| -> Vec<String> {
        v.iter()
            .filter_map(|r| r["request_id"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(ids(&old), [first, second]);
    assert_eq!(ids(&new), [third]);
    assert!(records(&edge.log()).is_empty(), "no access lines on stderr");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_keeps_about_the_share_and_every_5xx() {
    let setup = Setup::new("alog-sample");
    let origin = Origin::start().await;
    let edge = Edge::start(
        &setup.dir,
        &setup.config(
            origin.addr,
            r#"
[[sites]]
name = "sampled"
hosts = ["sampled.test"]
plain_http = "proxy"
log_sample = 0.1
routes = [{ path_prefix = "/", pool = "origin" }]
"#,
        ),
    );
    let target = setup.target(edge.http(), "localhost");
    let mut conn = Conn::connect(Proto::Plain, &target).await.expect("connect");
    let host = [("host", "sampled.test")];
    for i in 0..100 {
        let r = conn
            .send(
                Method::GET,
                &format!("/c/ok{i}?cc=no-store"),
                &host,
                Bytes::new(),
            )
            .await
            .expect("GET");
        assert_eq!(r.status, 200);
    }
    let mut errors = Vec::new();
    for i in 0..10 {
        let r = conn
            .send(
                Method::GET,
                &format!("/c/err{i}?cc=no-store&status=500"),
                &host,
                Bytes::new(),
            )
            .await
            .expect("GET");
        assert_eq!(r.status, 500);
        errors.push(request_id(&r));
    }
    // Records are queued in the order bodies end: once the last is written, all are.
    let last = errors.last().cloned().unwrap_or_default();
    wait_record(|| edge.log(), &last);
    let recs = records(&edge.log());
    let ok = recs
        .iter()
        .filter(|r| r["site"] == "sampled" && r["status"] == 200)
        .count();
    assert!(
        (1..=30).contains(&ok),
        "{ok} of 100 logged at log_sample = 0.1"
    );
    for id in &errors {
        assert!(
            recs.iter().any(|r| r["request_id"] == id.as_str()),
            "5xx {id} not logged"
        );
    }
    // Other sites log everything.
    let r = conn.get("/c/all?cc=no-store").await.expect("GET");
    wait_record(|| edge.log(), &request_id(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_the_log_to_the_new_output() {
    let setup = Setup::new("alog-reload");
    let origin = Origin::start().await;
    let no_watch = "\n[reload]\nwatch_file = false\n";
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, no_watch));
    let target = setup.target(edge.http(), "localhost");
    let r = client::get(Proto::Plain, &target, "/c/before?cc=no-store")
        .await
        .expect("GET");
    let before = request_id(&r);
    wait_record(|| edge.log(), &before);

    let file = setup.dir.join("moved.log");
    let moved = format!("{no_watch}\n[log]\naccess = \"moved.log\"\n");
    std::fs::write(&edge.config, setup.config(origin.addr, &moved)).expect("write");
    edge.signal("HUP");
    assert!(edge.wait_log("config reloaded", Duration::from_secs(10)));
    let r = client::get(Proto::Plain, &target, "/c/after?cc=no-store")
        .await
        .expect("GET");
    let after = request_id(&r);
    wait_record(|| read(&file), &after);
    let on_stderr = records(&edge.log());
    assert!(on_stderr.iter().all(|r| r["request_id"] != after.as_str()));
    assert!(
        records(&read(&file))
            .iter()
            .all(|r| r["request_id"] != before.as_str())
    );
}
