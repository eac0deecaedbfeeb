//! Purging from outside the JSON API: `edge purge` and `edge token-hash` against a real
//! node, the `PURGE` method on a site's URLs, the admin listener over TLS, and `edge check`
//! refusing an admin address off loopback without TLS.

use std::net::SocketAddr;
use std::process::{Output, Stdio};
use std::time::Duration;

use edge_e2e::admin::{self, token_toml};
use edge_e2e::client::{Proto, TLS_PROTOS};
use edge_e2e::purge_node::{PurgeNode, key, version};
use edge_e2e::{Setup, edge_binary};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);
const OPS: &str = "ops-secret-0123456789";
/// `sites = ["a"]`, `kinds = ["url"]`.
const SITE_A: &str = "site-a-secret-424242";

/// `edge ARGS...`, bounded; killed (it is our child) if it overruns.
async fn edge(args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(edge_binary());
    cmd.args(args)
        .stdin(Stdio::null())
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    match tokio::time::timeout(WAIT, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("edge {args:?}: {e}"),
        Err(_) => panic!("edge {args:?}: did not exit within {WAIT:?}"),
    }
}

fn explain(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A purge node with two tokens (OPS, SITE_A) and their secrets in files `token` (OPS) and
/// `wrong-token`.
struct Node(PurgeNode);

impl std::ops::Deref for Node {
    type Target = PurgeNode;
    fn deref(&self) -> &PurgeNode {
        &self.0
    }
}

impl Node {
    async fn start(tag: &str, extra: &str) -> Node {
        let node = PurgeNode::start(
            tag,
            extra,
            &[
                ("ops", OPS, ""),
                ("site-a", SITE_A, "sites = [\"a\"]\nkinds = [\"url\"]"),
            ],
        )
        .await;
        std::fs::write(node.setup.dir.join("token"), format!("{OPS}\n")).expect("token file");
        std::fs::write(node.setup.dir.join("wrong-token"), "not-the-secret\n").expect("token file");
        Node(node)
    }

    fn file(&self, name: &str) -> String {
        self.setup.dir.join(name).display().to_string()
    }

    /// `edge purge --admin ADMIN --token-file FILE ARGS...`.
    async fn purge_cli(&self, admin: &str, token_file: &str, args: &[&str]) -> Output {
        let file = self.file(token_file);
        let mut all = vec!["purge", "--admin", admin, "--token-file", &file];
        all.extend_from_slice(args);
        edge(&all).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_purge_purges_by_url_tag_and_everything() {
    let node = Node::start("cli-purge", "").await;
    let admin = format!("http://{}", node.admin());
    let (u, t1, t2, other, b) = (
        "/c/cli-u?cc=max-age=600",
        "/c/cli-t1?cc=max-age=600&ctag=cli-tag",
        "/c/cli-t2?cc=max-age=600&sk=cli-tag",
        "/c/cli-o?cc=max-age=600&ctag=cli-other",
        "/c/cli-b?cc=max-age=600",
    );
    for p in [u, t1, t2, other] {
        node.cache("a.test", p).await;
    }
    node.cache("b.test", b).await;

    // A wrong token: non-zero exit, nothing purged.
    let url = format!("https://a.test{u}");
    for args in [
        &["--url", url.as_str()][..],
        &["--tag", "cli-tag"],
        &["--everything"],
    ] {
        let out = node.purge_cli(&admin, "wrong-token", args).await;
        assert!(
            !out.status.success(),
            "wrong token {args:?}: {}",
            explain(&out)
        );
    }
    for p in [u, t1, t2, other] {
        node.assert_hit("a.test", p, "after wrong-token purges")
            .await;
    }
    node.assert_hit("b.test", b, "after wrong-token purges")
        .await;

    let out = node.purge_cli(&admin, "token", &["--url", &url]).await;
    assert!(out.status.success(), "--url: {}", explain(&out));
    let answer: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", explain(&out)));
    assert_eq!(answer["status"], "done", "{answer}");
    node.assert_miss("a.test", u, "--url").await;
    node.assert_hit("a.test", t1, "--url sibling").await;

    let out = node.purge_cli(&admin, "token", &["--tag", "cli-tag"]).await;
    assert!(out.status.success(), "--tag: {}", explain(&out));
    node.assert_miss("a.test", t1, "--tag (Cache-Tag)").await;
    node.assert_miss("a.test", t2, "--tag (Surrogate-Key)")
        .await;
    node.assert_hit("a.test", other, "--tag: another tag").await;

    let out = node.purge_cli(&admin, "token", &["--everything"]).await;
    assert!(out.status.success(), "--everything: {}", explain(&out));
    node.assert_miss("a.test", other, "--everything").await;
    node.assert_miss("b.test", b, "--everything").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_hash_prints_the_sha256_config_takes() {
    let hash = admin::token_hash(OPS);
    assert_eq!(hash.len(), 64, "{hash:?}");
    assert!(
        hash.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "lower-case hex: {hash:?}"
    );
    assert_ne!(hash, admin::token_hash("another-secret"));
    // A node configured with it accepts the secret (and only it).
    let node = Node::start("cli-token-hash", "").await;
    let ok = admin::purge(node.admin(), OPS, &serde_json::json!({"tags": ["x"]})).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let bad = admin::purge(node.admin(), &hash, &serde_json::json!({"tags": ["x"]})).await;
    assert_eq!(bad.status, 401, "the hash is not the secret: {}", bad.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_speaks_tls_when_configured() {
    let extra = "[admin]\ntls = { cert = \"default.pem\", key = \"default.key\" }\n";
    let node = Node::start("cli-admin-tls", extra).await;
    let port = node.admin().port();
    // Plain HTTP to it gets no HTTP answer.
    let plain = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(node.admin()).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        Some(out)
    };
    let answer = tokio::time::timeout(WAIT, plain)
        .await
        .expect("the admin listener answers or closes");
    let text = String::from_utf8_lossy(answer.as_deref().unwrap_or_default()).into_owned();
    assert!(!text.starts_with("HTTP/"), "plain HTTP answered: {text}");

    let (tagged, other) = (
        "/c/tls-t?cc=max-age=600&ctag=t",
        "/c/tls-o?cc=max-age=600&ctag=o",
    );
    node.cache("a.test", tagged).await;
    node.cache("a.test", other).await;
    let https = format!("https://127.0.0.1:{port}");
    let ca = node.file("ca.pem");
    // Without the CA (public roots only) the certificate is not trusted.
    let out = node.purge_cli(&https, "token", &["--tag", "t"]).await;
    assert!(!out.status.success(), "untrusted: {}", explain(&out));
    node.assert_hit("a.test", tagged, "untrusted admin certificate")
        .await;
    // Plain http:// to a TLS listener fails too.
    let http = format!("http://127.0.0.1:{port}");
    let out = node.purge_cli(&http, "token", &["--tag", "t"]).await;
    assert!(!out.status.success(), "http:// to TLS: {}", explain(&out));
    node.assert_hit("a.test", tagged, "http:// to a TLS admin")
        .await;

    let out = node
        .purge_cli(&https, "token", &["--ca-file", &ca, "--tag", "t"])
        .await;
    assert!(out.status.success(), "over TLS: {}", explain(&out));
    node.assert_miss("a.test", tagged, "edge purge over TLS")
        .await;
    node.assert_hit("a.test", other, "edge purge over TLS")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_check_refuses_an_admin_address_off_loopback_without_tls() {
    let setup = Setup::new("cli-check-exposed");
    let origin: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let loopback = setup.config(origin, &token_toml("ops", OPS, ""));
    let file = setup.dir.join("exposed.toml");
    // The same config is fine on loopback.
    std::fs::write(&file, &loopback).expect("write config");
    let out = edge(&["check", "--config", &file.display().to_string()]).await;
    assert!(out.status.success(), "loopback admin: {}", explain(&out));

    let exposed = loopback.replace("admin = [\"127.0.0.1:0\"]", "admin = [\"0.0.0.0:0\"]");
    assert_ne!(exposed, loopback);
    std::fs::write(&file, &exposed).expect("write config");
    let line = exposed
        .lines()
        .position(|l| l.starts_with("admin = [\"0.0.0.0:0\"]"))
        .expect("admin line")
        + 1;
    let out = edge(&["check", "--config", &file.display().to_string()]).await;
    assert!(
        !out.status.success(),
        "exposed admin accepted: {}",
        explain(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let diag = stderr
        .lines()
        .find(|l| l.contains("loopback"))
        .unwrap_or_else(|| panic!("no loopback diagnostic: {}", explain(&out)));
    assert!(
        diag.contains(&format!("{}:{line}:", file.display())),
        "file:line:col of the admin address (line {line}): {diag}"
    );
    let col = diag
        .split(&format!("{}:{line}:", file.display()))
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|c| c.parse::<usize>().ok());
    assert!(col.is_some_and(|c| c >= 1), "a column: {diag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_method_needs_a_token_and_only_works_where_enabled() {
    // The `[sites.cache]` table follows the last site: b.
    let node = Node::start("cli-purge-method", "[sites.cache]\npurge_method = true\n").await;
    let auth = format!("Bearer {OPS}");
    for proto in TLS_PROTOS {
        let path = format!("/c/pm-{proto:?}?cc=max-age=600").to_lowercase();
        let v = node.cache("b.test", &path).await;
        let what = format!("PURGE over {proto:?}");
        let anonymous = node.send(proto, "b.test", "PURGE", &path, &[]).await;
        assert_eq!(
            anonymous.status,
            401,
            "{what} without a token: {}",
            anonymous.text()
        );
        node.assert_hit("b.test", &path, &format!("{what} without a token"))
            .await;
        let site_a = format!("Bearer {SITE_A}");
        let other_site = node
            .send(
                proto,
                "b.test",
                "PURGE",
                &path,
                &[("authorization", &site_a)],
            )
            .await;
        assert_eq!(
            other_site.status,
            403,
            "{what}, a site-a token: {}",
            other_site.text()
        );
        node.assert_hit("b.test", &path, &format!("{what} with a site-a token"))
            .await;
        let r = node
            .send(proto, "b.test", "PURGE", &path, &[("authorization", &auth)])
            .await;
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        let answer: Value =
            serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{what}: {e}: {}", r.text()));
        assert_eq!(answer["status"], "done", "{what}: {answer}");
        assert_eq!(
            node.origin.hits(key(&path)),
            1,
            "{what}: the PURGE is not proxied"
        );
        let after = node.get("b.test", &path).await;
        assert_eq!(node.origin.hits(key(&path)), 2, "{what}: a miss after it");
        assert!(version(&after) > v, "{what}: new content");
    }
    // `Fastly-Soft-Purge: 1`: soft, so the next request revalidates and keeps the body.
    let soft = "/c/pm-soft?cc=max-age=600&etag=s1";
    let v = node.cache("b.test", soft).await;
    let h = [("authorization", auth.as_str()), ("fastly-soft-purge", "1")];
    let r = node.send(Proto::H1, "b.test", "PURGE", soft, &h).await;
    assert_eq!(r.status, 200, "soft PURGE: {}", r.text());
    let after = node.get("b.test", soft).await;
    assert_eq!(
        node.origin.conditional(key(soft)),
        1,
        "soft PURGE: revalidated"
    );
    assert_eq!(version(&after), v, "soft PURGE: the 304 kept the body");
    // Site a does not enable it: a PURGE is just another unsafe method, proxied to the origin
    // (which answers 200), never a purge-API purge.
    let path = "/c/pm-a?cc=max-age=600";
    node.cache("a.test", path).await;
    let r = node
        .send(
            Proto::H2,
            "a.test",
            "PURGE",
            path,
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(
        node.origin.hits(key(path)),
        2,
        "the PURGE reached the origin"
    );
    assert!(
        serde_json::from_slice::<Value>(&r.body).is_err(),
        "not a purge record: {}",
        r.text()
    );
    assert!(
        r.text().starts_with("/c/pm-a v2"),
        "the origin's answer: {}",
        r.text()
    );
    // RFC 9111 §4.4: a 2xx to an unsafe method invalidates the target URI.
    node.assert_miss(
        "a.test",
        path,
        "a PURGE answered 200 by the origin invalidates",
    )
    .await;
}
