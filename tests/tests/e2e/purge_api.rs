//! The purge API as its users see it: bearer tokens and their scopes, refused bodies, the
//! Cloudflare and Fastly request shapes, purge records, the `PURGE` method, the OpenAPI
//! document against the live router, purge metrics and the per-token rate limit. Every
//! refused request is checked to have purged nothing (the origin sees no new request).

use std::net::SocketAddr;
use std::time::Duration;

use edge_e2e::admin::{self, AdminReply};
use edge_e2e::purge_node::{PurgeNode as Node, key, version};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
/// Every kind on every site.
const OPS: &str = "ops-secret-0123456789";
/// `sites = ["a"]`, `kinds = ["tag"]`.
const SCOPED: &str = "scoped-secret-abcdef";
/// `read_only = true`.
const READER: &str = "reader-secret-987654";

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

/// One admin request, bounded.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    h: &[(&str, &str)],
    body: &[u8],
) -> AdminReply {
    match tokio::time::timeout(WAIT, admin::call(addr, method, path, h, body)).await {
        Ok(r) => r,
        Err(_) => panic!("{method} {path}: no answer within {WAIT:?}"),
    }
}

/// An edge with three tokens (OPS, SCOPED, READER); `extra` goes before them.
async fn start(tag: &str, extra: &str) -> Node {
    Node::start(
        tag,
        extra,
        &[
            ("ops", OPS, ""),
            ("scoped", SCOPED, "sites = [\"a\"]\nkinds = [\"tag\"]"),
            ("reader", READER, "read_only = true"),
        ],
    )
    .await
}

/// A refusal: the status, a JSON body with an `error` string.
fn assert_refused(reply: &AdminReply, status: u16, what: &str) -> Value {
    assert_eq!(reply.status, status, "{what}: {}", reply.body);
    let body = reply.json();
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: {body}"
    );
    if status == 401 {
        let auth = reply.header("www-authenticate").unwrap_or_default();
        assert!(
            auth.starts_with("Bearer"),
            "{what}: WWW-Authenticate {auth:?}"
        );
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_scopes_refuse_before_anything_is_purged() {
    let node = start("api-auth", "").await;
    let (a, b) = (
        "/c/auth-a?cc=max-age=600&ctag=shared",
        "/c/auth-b?cc=max-age=600&ctag=shared",
    );
    node.cache("a.test", a).await;
    node.cache("b.test", b).await;
    let url = format!("https://a.test{a}");
    let (wrong, basic) = (bearer("not-a-configured-secret"), format!("Basic {OPS}"));
    let (scoped, reader) = (bearer(SCOPED), bearer(READER));
    let tags = json!({"tags": ["shared"]}).to_string();
    let all = json!({"everything": true}).to_string();
    let (urls, hosts) = (
        json!({"urls": [url]}).to_string(),
        json!({"hosts": ["b.test"]}).to_string(),
    );
    let cases = [
        ("no Authorization", "", &tags, 401),
        ("a wrong secret", &wrong, &tags, 401),
        ("Basic credentials", &basic, &tags, 401),
        ("the tag-only token purging a URL", &scoped, &urls, 403),
        ("the site-a token purging host b.test", &scoped, &hosts, 403),
        ("the read-only token purging tags", &reader, &tags, 403),
        ("the read-only token purging everything", &reader, &all, 403),
    ];
    for (what, auth, body, status) in cases {
        let mut h = vec![("content-type", "application/json")];
        if !auth.is_empty() {
            h.push(("authorization", auth));
        }
        let reply = call(node.admin(), "POST", "/purge", &h, body.as_bytes()).await;
        assert_refused(&reply, status, what);
        node.assert_hit("a.test", a, what).await;
        node.assert_hit("b.test", b, what).await;
    }
    // Allowed: the scoped token's tag purge reaches site a's objects only.
    let answer = node.purge(SCOPED, json!({"tags": ["shared"]})).await;
    assert_eq!(answer["purged"], 1, "only site a's object: {answer}");
    node.assert_miss("a.test", a, "scoped tag purge").await;
    node.assert_hit("b.test", b, "scoped tag purge (site b)")
        .await;
    // The read-only token may read the record.
    let id = answer["id"].as_str().expect("id");
    let auth = bearer(READER);
    let reply = call(
        node.admin(),
        "GET",
        &format!("/purge/{id}"),
        &[("authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(
        reply.status, 200,
        "read-only token reads a record: {}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_naming_the_field_and_purge_nothing() {
    let node = start("api-bodies", "").await;
    let path = "/c/body?cc=max-age=600&ctag=bt";
    node.cache("a.test", path).await;
    let url = format!("https://a.test{path}");
    let huge = json!({"urls": vec![url.clone(); 64 * 1024 / url.len() + 16]}).to_string();
    assert!(huge.len() > 64 * 1024);
    let cases: [(&str, String, u16, Option<&str>); 7] = [
        (
            "malformed JSON",
            format!("{{\"urls\": [\"{url}\""),
            400,
            None,
        ),
        (
            "unknown field",
            json!({"url": [url]}).to_string(),
            400,
            Some("url"),
        ),
        (
            "two kinds",
            json!({"urls": [url], "tags": ["bt"]}).to_string(),
            400,
            None,
        ),
        (
            "empty list",
            json!({"tags": []}).to_string(),
            400,
            Some("tags"),
        ),
        ("not an object", json!(["bt"]).to_string(), 400, None),
        ("a body over 64 KiB", huge, 413, None),
        (
            "a host no site serves",
            json!({"urls": ["https://c.test/c/body"]}).to_string(),
            400,
            Some("urls[0]"),
        ),
    ];
    let auth = bearer(OPS);
    for (what, body, status, field) in cases {
        let h = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        let reply = call(node.admin(), "POST", "/purge", &h, body.as_bytes()).await;
        let answer = assert_refused(&reply, status, what);
        if let Some(field) = field {
            assert_eq!(answer["field"], field, "{what}: {answer}");
        }
        node.assert_hit("a.test", path, what).await;
    }
    // Over 64 KiB without a Content-Length (chunked): 413 too, once the limit is crossed.
    let mut req = format!(
        "POST /purge HTTP/1.1\r\nhost: admin\r\nauthorization: {auth}\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    let filler = format!("{{\"tags\": [\"bt\"{}", ", \"bt\"".repeat(12_000));
    for chunk in filler.as_bytes().chunks(16 * 1024) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    assert!(filler.len() > 64 * 1024);
    req.extend_from_slice(b"0\r\n\r\n");
    let exchange = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(node.admin()).await.ok()?;
        s.write_all(&req).await.ok()?;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        Some(String::from_utf8_lossy(&out).into_owned())
    };
    let answer = tokio::time::timeout(WAIT, exchange).await.expect("bounded");
    let answer = answer.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 413"), "chunked: {answer}");
    node.assert_hit("a.test", path, "chunked over 64 KiB").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudflare_and_fastly_shapes_purge_what_they_name() {
    let node = start("api-shapes", "").await;
    let cc = "cc=max-age=600";
    // Cloudflare `files`: a string, and an object with headers.
    let (f1, f2, f3) = (
        format!("/c/f1?{cc}"),
        format!("/c/f2?{cc}"),
        format!("/c/f3?{cc}"),
    );
    for p in [&f1, &f2, &f3] {
        node.cache("a.test", p).await;
    }
    let answer = node
        .purge(OPS, json!({"files": [format!("https://a.test{f1}")]}))
        .await;
    assert_eq!(answer["purged"], 1, "{answer}");
    let answer = node
        .purge(
            OPS,
            json!({"files": [{"url": format!("https://a.test{f2}"), "headers": {}}]}),
        )
        .await;
    assert_eq!(answer["purged"], 1, "{answer}");
    node.assert_miss("a.test", &f1, "files string").await;
    node.assert_miss("a.test", &f2, "files object").await;
    node.assert_hit("a.test", &f3, "files sibling").await;

    // Cache-Tag tags, and the record of that purge.
    let tagged = [
        format!("/c/t1?{cc}&ctag=cf1,other"),
        format!("/c/t2?{cc}&ctag=cf1"),
        format!("/c/t3?{cc}&ctag=other"),
    ];
    for p in &tagged {
        node.cache("a.test", p).await;
    }
    let answer = node.purge(OPS, json!({"tags": ["cf1"]})).await;
    assert_eq!(answer["purged"], 2, "{answer}");
    node.assert_miss("a.test", &tagged[0], "tag cf1").await;
    node.assert_miss("a.test", &tagged[1], "tag cf1").await;
    node.assert_hit("a.test", &tagged[2], "tag other").await;
    let id = answer["id"].as_str().expect("id");
    let auth = bearer(OPS);
    let reply = call(
        node.admin(),
        "GET",
        &format!("/purge/{id}"),
        &[("authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let record = reply.json();
    assert_eq!(
        record, answer,
        "GET /purge/{{id}} gives the answer of the purge"
    );
    assert_eq!(
        record["request"]["targets"]["tags"],
        json!(["cf1"]),
        "{record}"
    );
    let unknown = call(
        node.admin(),
        "GET",
        "/purge/no-such-purge",
        &[("authorization", &auth)],
        b"",
    )
    .await;
    assert_refused(&unknown, 404, "unknown purge id");
    let anonymous = call(node.admin(), "GET", &format!("/purge/{id}"), &[], b"").await;
    assert_refused(&anonymous, 401, "purge record without a token");

    // Prefixes.
    let (d1, d2, dx) = (
        format!("/c/dir/x?{cc}"),
        format!("/c/dir/y?{cc}"),
        format!("/c/dirx?{cc}"),
    );
    for p in [&d1, &d2, &dx] {
        node.cache("a.test", p).await;
    }
    node.purge(OPS, json!({"prefixes": ["a.test/c/dir/"]}))
        .await;
    node.assert_miss("a.test", &d1, "prefix").await;
    node.assert_miss("a.test", &d2, "prefix").await;
    node.assert_hit("a.test", &dx, "outside the prefix").await;

    // Fastly: an empty body and a Surrogate-Key header.
    let keyed = [
        format!("/c/k1?{cc}&sk=k1%20z"),
        format!("/c/k2?{cc}&sk=k2"),
        format!("/c/k3?{cc}&sk=k3%20z"),
    ];
    for p in &keyed {
        node.cache("a.test", p).await;
    }
    let h = [("authorization", auth.as_str()), ("surrogate-key", "k1 k2")];
    let reply = call(node.admin(), "POST", "/purge", &h, b"").await;
    assert_eq!(reply.status, 200, "Fastly purge: {}", reply.body);
    let answer = reply.json();
    assert_eq!(
        (&answer["status"], &answer["purged"]),
        (&json!("done"), &json!(2)),
        "{answer}"
    );
    node.assert_miss("a.test", &keyed[0], "Surrogate-Key k1")
        .await;
    node.assert_miss("a.test", &keyed[1], "Surrogate-Key k2")
        .await;
    node.assert_hit("a.test", &keyed[2], "Surrogate-Key k3")
        .await;

    // Fastly soft purge: revalidated (a conditional request, answered 304), body kept.
    let soft = format!("/c/soft?{cc}&etag=e1&sk=softkey");
    let v = node.cache("a.test", &soft).await;
    let cond = node.origin.conditional(key(&soft));
    let h = [
        ("authorization", auth.as_str()),
        ("surrogate-key", "softkey"),
        ("fastly-soft-purge", "1"),
    ];
    let reply = call(node.admin(), "POST", "/purge", &h, b"").await;
    assert_eq!(reply.status, 200, "Fastly soft purge: {}", reply.body);
    assert_eq!(reply.json()["request"]["soft"], true, "{}", reply.body);
    let after = node.get("a.test", &soft).await;
    assert_eq!(
        node.origin.conditional(key(&soft)),
        cond + 1,
        "soft: revalidated"
    );
    assert_eq!(version(&after), v, "soft: the 304 kept the body");

    // Hosts, then everything.
    let b = format!("/c/on-b?{cc}");
    node.cache("b.test", &b).await;
    node.purge(OPS, json!({"hosts": ["a.test"]})).await;
    node.assert_miss("a.test", &f3, "host a.test").await;
    node.assert_miss("a.test", &tagged[2], "host a.test").await;
    node.assert_hit("b.test", &b, "host a.test (b.test)").await;
    node.purge(OPS, json!({"purge_everything": true})).await;
    node.assert_miss("a.test", &f3, "purge_everything").await;
    node.assert_miss("b.test", &b, "purge_everything").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_live_route() {
    let node = start("api-openapi", "").await;
    let auth = bearer(OPS);
    let h = [("authorization", auth.as_str())];
    let reply = call(node.admin(), "GET", "/openapi.json", &[], b"").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let doc = reply.json();
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "openapi {version:?}");
    let record = node.purge(OPS, json!({"tags": ["nothing-has-this"]})).await;
    let id = record["id"].as_str().expect("id").to_string();
    let routes = [
        ("GET", "/metrics"),
        ("POST", "/purge"),
        ("GET", "/purge/{id}"),
        ("GET", "/openapi.json"),
    ];
    for (method, template) in routes {
        let op = &doc["paths"][template][method.to_lowercase()];
        assert!(
            op.is_object(),
            "{method} {template} missing from the document: {}",
            doc["paths"]
        );
        let path = template.replace("{id}", &id);
        let body: &[u8] = if method == "POST" {
            br#"{"tags": ["nothing-has-this"]}"#
        } else {
            b""
        };
        let live = call(node.admin(), method, &path, &h, body).await;
        assert_eq!(live.status, 200, "{method} {path}: {}", live.body);
    }
    let record_path = format!("/purge/{id}");
    for (method, path, allow) in [
        ("POST", "/metrics", "GET"),
        ("GET", "/purge", "POST"),
        ("DELETE", record_path.as_str(), "GET"),
        ("PUT", "/openapi.json", "GET"),
    ] {
        let r = call(node.admin(), method, path, &h, b"").await;
        assert_eq!(r.status, 405, "{method} {path}: {}", r.body);
        let allowed = r.header("allow").unwrap_or_default();
        assert!(
            allowed.contains(allow),
            "{method} {path}: Allow {allowed:?}"
        );
    }
    for path in ["/nope", "/purge/", "/purge/a/b", "/openapi.json/x"] {
        let r = call(node.admin(), "GET", path, &h, b"").await;
        assert_eq!(r.status, 404, "GET {path}: {}", r.body);
    }
}

fn samples<'a>(text: &'a str, prefix: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    text.lines()
        .filter(move |l| l.starts_with(prefix))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series, value.parse().ok()?))
        })
}

fn sample(text: &str, series: &str) -> f64 {
    samples(text, series)
        .find(|(s, _)| *s == series)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_metrics_count_requests_and_the_tag_index() {
    let node = start("api-metrics", "").await;
    let tagged = [
        "/c/m1?cc=max-age=600&ctag=mt",
        "/c/m2?cc=max-age=600&sk=mt%20x",
        "/c/m3?cc=max-age=600&ctag=keep",
    ];
    for p in tagged {
        node.cache("a.test", p).await;
    }
    node.cache("a.test", "/c/m-untagged?cc=max-age=600").await;
    assert_eq!(
        node.edge.metric("edge_cache_tag_index_objects").await,
        3,
        "three tagged objects"
    );
    node.purge(OPS, json!({"tags": ["mt"]})).await;
    let refused = call(
        node.admin(),
        "POST",
        "/purge",
        &[],
        br#"{"tags": ["keep"]}"#,
    )
    .await;
    assert_refused(&refused, 401, "no token");
    let text = node.edge.metrics_text().await;
    let done = sample(
        &text,
        r#"edge_purge_requests_total{kind="tag",mode="hard",result="done"}"#,
    );
    assert!(done >= 1.0, "a done tag purge counted:\n{text}");
    let unauthorized: f64 = samples(&text, "edge_purge_requests_total{")
        .filter(|(s, _)| s.contains(r#"result="unauthorized""#))
        .map(|(_, v)| v)
        .sum();
    assert!(unauthorized >= 1.0, "the refused purge counted:\n{text}");
    assert!(
        sample(&text, "edge_purge_duration_seconds_count") >= 1.0,
        "{text}"
    );
    // The purged objects leave the index (in the background): one tagged object is left.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut objects = u64::MAX;
    while tokio::time::Instant::now() < deadline {
        objects = node.edge.metric("edge_cache_tag_index_objects").await;
        if objects == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(objects, 1, "the tag index after purging tag mt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_metrics_need_a_token() {
    let node = start("api-closed-metrics", "[admin]\nopen_metrics = false\n").await;
    let anonymous = call(node.admin(), "GET", "/metrics", &[], b"").await;
    assert_refused(&anonymous, 401, "metrics without a token");
    let auth = bearer(READER);
    let r = call(
        node.admin(),
        "GET",
        "/metrics",
        &[("authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("edge_purge_requests_total"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_is_per_token() {
    let node = start("api-rate", "[admin]\npurge_rate = 0.001\npurge_burst = 2\n").await;
    let path = "/c/rl?cc=max-age=600&ctag=rl";
    node.purge(OPS, json!({"tags": ["rl"]})).await;
    node.purge(OPS, json!({"tags": ["rl"]})).await;
    node.cache("a.test", path).await;
    let third = admin::purge(node.admin(), OPS, &json!({"tags": ["rl"]})).await;
    assert_refused(&third, 429, "the third purge in a row");
    let retry = third.header("retry-after").unwrap_or_default();
    assert!(
        retry.parse::<u64>().is_ok_and(|s| s >= 1),
        "Retry-After {retry:?}"
    );
    node.assert_hit("a.test", path, "rate limited").await;
    // Another token has its own bucket.
    let answer = node.purge(SCOPED, json!({"tags": ["rl"]})).await;
    assert_eq!(answer["purged"], 1, "{answer}");
    node.assert_miss("a.test", path, "the other token's purge")
        .await;
}
