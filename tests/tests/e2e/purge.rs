//! Purges through the admin API, end to end: every kind, hard and soft, over HTTP/1.1, HTTP/2
//! and HTTP/3 clients, against an origin that counts its requests. Siblings stay hits; a
//! soft-purged object is revalidated (a 304 makes it fresh again); Vary variants and stored
//! encodings all go; tags survive a restart; a purge during an in-flight fill wins.

use std::time::Duration;

use bytes::Bytes;
use edge_e2e::admin::{self, token_toml};
use edge_e2e::client::{self, Proto, Reply};
use edge_e2e::origin::Origin;
use edge_e2e::purge_node::{PurgeNode, key, version};
use edge_e2e::{Edge, Setup, Target};
use http::Method;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);
const OPS: &str = "ops-secret-0123456789";

async fn fetch_with(proto: Proto, target: &Target, path: &str, headers: &[(&str, &str)]) -> Reply {
    let req = client::request(proto, target, Method::GET, path, headers, Bytes::new());
    match tokio::time::timeout(WAIT, req).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("GET {path} over {proto:?}: {e}"),
        Err(_) => panic!("GET {path} over {proto:?}: no answer within {WAIT:?}"),
    }
}

async fn fetch(proto: Proto, target: &Target, path: &str) -> Reply {
    fetch_with(proto, target, path, &[]).await
}

/// A purge node with one admin token (OPS).
struct Node(PurgeNode);

impl Node {
    async fn start(tag: &str, extra: &str) -> Node {
        Node(PurgeNode::start(tag, extra, &[("ops", OPS, "")]).await)
    }

    fn target(&self, host: &str) -> Target {
        self.0.target(host)
    }

    async fn purge(&self, body: serde_json::Value) -> serde_json::Value {
        self.0.purge(OPS, body).await
    }
}

impl std::ops::Deref for Node {
    type Target = PurgeNode;
    fn deref(&self) -> &PurgeNode {
        &self.0
    }
}

/// What a purge kind targets in one round, and its sibling that must stay cached.
struct Round {
    host: &'static str,
    url: String,
    sibling_host: &'static str,
    sibling: String,
    body: serde_json::Value,
}

fn round(proto: Proto, kind: &str, soft: bool, port: u16) -> Round {
    let p = format!("{proto:?}-{kind}-{soft}").to_lowercase();
    let cc = "cc=max-age=600&etag=e1";
    let (host, sibling_host) = ("a.test", "a.test");
    let url = format!("/c/{p}/t?{cc}&sk=t-{p}%20common");
    let sibling = format!("/c/{p}-s?{cc}&sk=s-{p}%20common");
    let mut r = match kind {
        "url" => Round {
            body: json!({"urls": [format!("https://a.test:{port}{}", url)]}),
            host,
            url,
            sibling_host,
            sibling,
        },
        "prefix" => Round {
            body: json!({"prefixes": [format!("a.test/c/{p}/")]}),
            host,
            url,
            sibling_host,
            sibling,
        },
        "tag" => Round {
            body: json!({"tags": [format!("t-{p}")]}),
            host,
            url,
            sibling_host,
            sibling,
        },
        "host" => Round {
            body: json!({"hosts": ["a.test"]}),
            host,
            url,
            sibling_host: "b.test",
            sibling,
        },
        "everything" => Round {
            body: json!({"everything": true, "sites": ["a"]}),
            host,
            url,
            sibling_host: "b.test",
            sibling,
        },
        other => panic!("unknown kind {other}"),
    };
    if soft {
        r.body["soft"] = json!(true);
    }
    r
}

/// Every purge kind, hard then soft, with one protocol's clients.
async fn every_kind_hard_and_soft(proto: Proto) {
    let node = Node::start(&format!("purge-kinds-{proto:?}"), "").await;
    let port = node.edge.https().port();
    for kind in ["url", "prefix", "tag", "host", "everything"] {
        for soft in [false, true] {
            let r = round(proto, kind, soft, port);
            let (t, s) = (node.target(r.host), node.target(r.sibling_host));
            let first = fetch(proto, &t, &r.url).await;
            fetch(proto, &s, &r.sibling).await;
            // Both cached: a second round trip does not reach the origin.
            assert_eq!(version(&fetch(proto, &t, &r.url).await), version(&first));
            fetch(proto, &s, &r.sibling).await;
            let (t_hits, s_hits) = (
                node.origin.hits(key(&r.url)),
                node.origin.hits(key(&r.sibling)),
            );
            let t_cond = node.origin.conditional(key(&r.url));
            assert_eq!(
                (t_hits, s_hits),
                (1, 1),
                "{kind} soft={soft}: cached before the purge"
            );

            let answer = node.purge(r.body.clone()).await;
            let after = fetch(proto, &t, &r.url).await;
            let what = format!("{kind} soft={soft} over {proto:?} ({answer})");
            assert_eq!(after.status, 200, "{what}");
            if soft {
                // Revalidated: one conditional request, answered 304, the stored body kept.
                assert_eq!(node.origin.conditional(key(&r.url)), t_cond + 1, "{what}");
                assert_eq!(
                    version(&after),
                    version(&first),
                    "{what}: the 304 kept the body"
                );
                // Fresh again: the next request is a hit.
                fetch(proto, &t, &r.url).await;
                assert_eq!(
                    node.origin.hits(key(&r.url)),
                    t_hits + 1,
                    "{what}: fresh after the 304"
                );
            } else {
                assert_eq!(
                    node.origin.hits(key(&r.url)),
                    t_hits + 1,
                    "{what}: a miss after the purge"
                );
                assert!(
                    version(&after) > version(&first),
                    "{what}: new content: {}",
                    after.text()
                );
            }
            fetch(proto, &s, &r.sibling).await;
            assert_eq!(
                node.origin.hits(key(&r.sibling)),
                s_hits,
                "{what}: the sibling stays a hit"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_hard_and_soft_over_http1() {
    every_kind_hard_and_soft(Proto::H1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_hard_and_soft_over_http2() {
    every_kind_hard_and_soft(Proto::H2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_hard_and_soft_over_http3() {
    every_kind_hard_and_soft(Proto::H3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_purged_object_is_served_stale_while_one_revalidation_runs() {
    let node = Node::start("purge-soft-swr", "").await;
    let t = node.target("a.test");
    let url = "/c/swr?cc=max-age=600,stale-while-revalidate=60&etag=s1";
    let first = fetch(Proto::H2, &t, url).await;
    node.purge(json!({"urls": [format!("https://a.test{}", url)], "soft": true}))
        .await;
    // Several clients at once: every one gets the stored body at once, stale.
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move { fetch(Proto::H2, &t, url).await }));
    }
    for task in tasks {
        let r = task.await.expect("task");
        assert_eq!(version(&r), version(&first));
        let cs = r.header("cache-status").unwrap_or_default().to_string();
        assert!(cs.contains("hit"), "served from the cache: {cs}");
    }
    // One revalidation went to the origin, in the background.
    let deadline = tokio::time::Instant::now() + WAIT;
    while node.origin.conditional(key(url)) < 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        node.origin.conditional(key(url)),
        1,
        "exactly one revalidation"
    );
    assert_eq!(
        node.origin.hits(key(url)),
        2,
        "the fill and the one revalidation"
    );
    // Its 304 made the object fresh: no more origin requests.
    let again = fetch(Proto::H2, &t, url).await;
    assert_eq!(version(&again), version(&first));
    assert!(
        !again
            .header("cache-status")
            .unwrap_or_default()
            .contains("stale"),
        "fresh again: {:?}",
        again.header("cache-status")
    );
    assert_eq!(node.origin.hits(key(url)), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_purge_takes_every_vary_variant_and_stored_encoding() {
    let node = Node::start("purge-vary", "").await;
    let t = node.target("a.test");
    let url = "/c/varied?cc=max-age=600&vary=accept-language&len=4000&text=1";
    let clients: [&[(&str, &str)]; 4] = [
        &[("accept-language", "en"), ("accept-encoding", "gzip")],
        &[("accept-language", "fr"), ("accept-encoding", "br")],
        &[("accept-language", "en"), ("accept-encoding", "zstd")],
        &[("accept-language", "fr")],
    ];
    for h in clients {
        fetch_with(Proto::H2, &t, url, h).await;
        fetch_with(Proto::H2, &t, url, h).await;
    }
    assert_eq!(node.origin.hits(key(url)), 2, "one fill per language");
    let answer = node
        .purge(json!({"urls": [format!("https://a.test:{}{}", node.edge.https().port(), url)]}))
        .await;
    assert!(
        answer["purged"].as_u64().unwrap_or(0) >= 2,
        "both variants counted: {answer}"
    );
    // Each language's first request after the purge asks for a stored encoding of the old
    // body: it must be a miss, and what it gets is the new body.
    for h in [clients[2], clients[1]] {
        let r = fetch_with(Proto::H2, &t, url, h).await;
        let cs = r.header("cache-status").unwrap_or_default().to_string();
        assert!(!cs.contains("; hit"), "{h:?} after the purge: {cs}");
        let coding = r
            .header("content-encoding")
            .unwrap_or("identity")
            .to_string();
        let body = if coding == "identity" {
            r.body.to_vec()
        } else {
            edge_e2e::origin::decode(&coding, &r.body)
                .await
                .expect("decodes")
        };
        let text = String::from_utf8_lossy(&body);
        let v: u64 = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix('v')?.parse().ok())
            .unwrap_or_else(|| panic!("no version in {text:?}"));
        assert!(v >= 3, "{h:?}: the pre-purge body (v{v}) came back");
    }
    for h in clients {
        fetch_with(Proto::H2, &t, url, h).await;
    }
    assert_eq!(
        node.origin.hits(key(url)),
        4,
        "each variant fetched again once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_survive_a_restart_and_still_purge() {
    let setup = Setup::new("purge-restart");
    let origin = Origin::start().await;
    let extra = format!(
        "[cache]\ndisk_dir = \"{}\"\n{}",
        setup.dir.join("cache").display(),
        token_toml("ops", OPS, "")
    );
    let config = setup.config(origin.addr, &extra);
    let urls: Vec<String> = (0..12)
        .map(|i| format!("/c/kept-{i}?cc=max-age=600&ctag=release-7,page-{i}"))
        .collect();
    let pinned;
    {
        let mut edge = Edge::start(&setup.dir, &config);
        pinned = config.replace(
            "https = [\"127.0.0.1:0\"]",
            &format!("https = [\"{}\"]", edge.https()),
        );
        let t = setup.target(edge.https(), "a.test");
        for u in &urls {
            let r = fetch(Proto::H2, &t, u).await;
            assert!(
                r.header("cache-tag").is_none(),
                "tag headers are not for visitors"
            );
        }
        edge.signal("TERM");
        assert_eq!(edge.wait_exit(Duration::from_secs(15)), Some(0));
    }
    let edge = Edge::start(&setup.dir, &pinned);
    let t = setup.target(edge.https(), "a.test");
    // Still cached after the restart.
    for u in &urls {
        fetch(Proto::H2, &t, u).await;
        assert_eq!(origin.hits(key(u)), 1, "{u} survived the restart");
    }
    let index = edge.metric("edge_cache_tag_index_objects").await;
    assert_eq!(
        index,
        urls.len() as u64,
        "the tag index was rebuilt from disk"
    );
    let reply = admin::purge(
        edge.admin.expect("admin"),
        OPS,
        &json!({"tags": ["release-7"]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["purged"], urls.len() as u64, "{}", reply.body);
    for u in &urls {
        fetch(Proto::H2, &t, u).await;
        assert_eq!(origin.hits(key(u)), 2, "{u} purged by its tag");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_during_an_inflight_fill_is_never_undone() {
    let node = Node::start("purge-inflight", "").await;
    let t = node.target("a.test");
    let url = "/c/slowfill?cc=max-age=600&delay_ms=1500";
    // A fill in flight (the origin answers in 1.5 s).
    let early = {
        let t = t.clone();
        tokio::spawn(async move { fetch(Proto::H2, &t, url).await })
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while node.origin.hits(key(url)) < 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.purge(json!({"urls": [format!("https://a.test{}", url)]}))
        .await;
    // Admitted after the purge, while the old fill is still running: never its body.
    let late = {
        let t = t.clone();
        tokio::spawn(async move { fetch(Proto::H1, &t, url).await })
    };
    let early = early.await.expect("early");
    let late = late.await.expect("late");
    assert_eq!(version(&early), 1);
    assert!(
        version(&late) >= 2,
        "a request after the purge got the pre-purge body"
    );
    let next = fetch(Proto::H3, &t, url).await;
    assert!(
        version(&next) >= 2,
        "the pre-purge fill was stored: {}",
        next.text()
    );
}
