//! etcd secured (issue 14): client certificates required and etcd users. The operator pushes
//! with its own credentials and both nodes (user `node`) apply the version and report it; the
//! node's credentials cannot push, a client without a certificate or with a wrong password is
//! refused, and a read-only `viewer` role can follow `status` and `history` but never read the
//! blobs, where certificate keys are.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use edge_e2e::client::{self, Proto};
use edge_e2e::etcd::{self, EtcdTls};
use edge_e2e::raw::{OriginMode, RecordingOrigin};
use edge_e2e::{Edge, Setup};

const WITHIN: Duration = Duration::from_secs(10);

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// A `[store]` table with the CA, the client certificate unless `cert` is false, and `user`
/// with its password in `<dir>/<user>.password`.
fn store_table(dir: &Path, tls: &EtcdTls, cert: bool, user: &str, password: &str) -> String {
    let pw = write(dir, &format!("{user}.password"), &format!("{password}\n"));
    let mut t = format!("[store]\nca_file = \"{}\"\n", tls.ca.display());
    if cert {
        t += &format!(
            "cert_file = \"{}\"\nkey_file = \"{}\"\n",
            tls.client_cert.display(),
            tls.client_key.display()
        );
    }
    t + &format!("user = \"{user}\"\npassword_file = \"{}\"\n", pw.display())
}

/// An operator's `--store-config` file in its own directory `dir/name`.
fn creds(dir: &Path, name: &str, tls: &EtcdTls, cert: bool, user: &str, pw: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).expect("creds dir");
    write(&d, "store.toml", &store_table(&d, tls, cert, user, pw))
}

fn node_file(name: &str) -> String {
    format!(
        "[node]\nname = \"{name}\"\npop = \"par\"\nregion = \"eu\"\n\n\
         [listen]\nhttp = [\"127.0.0.1:0\"]\n\n[cache]\nmemory_bytes = \"16MiB\"\n"
    )
}

/// One site in front of `origin`, with a certificate and key uploaded with the version.
fn shared(origin: std::net::SocketAddr) -> String {
    edge_e2e::control::shared_doc(origin, "cert = \"site.pem\"\nkey = \"site.key\"", "")
}

fn edge_config(store: &str, creds: &Path, args: &[&str]) -> Output {
    edge_e2e::control::edge_config(store, Some(creds), args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `edge config push FILE`, validated against a node file like the test nodes'.
fn push(store: &str, creds: &Path, file: &Path) -> Output {
    let node = write(
        file.parent().expect("dir"),
        "validate.toml",
        &node_file("v"),
    );
    let (file, node) = (file.to_str().expect("utf-8"), node.to_str().expect("utf-8"));
    let args = ["push", file, "-m", "secured", "--node-file", node];
    edge_config(store, creds, &args)
}

/// Which origin answers `path` on `edge` (a fresh URL each time, so nothing is cached).
async fn answered_by(
    setup: &Setup,
    edge: &Edge,
    path: &str,
    origins: &[&RecordingOrigin],
) -> Option<usize> {
    let target = setup.target(edge.http(), "localhost");
    let before: Vec<usize> = origins.iter().map(|o| o.requests().len()).collect();
    let reply = client::get(Proto::Plain, &target, path).await.ok()?;
    if reply.status != http::StatusCode::OK {
        return None;
    }
    origins
        .iter()
        .zip(before)
        .position(|(o, n)| o.requests().len() > n)
}

/// Polls until `edge config status` (as `creds`) succeeds and names every node in `names`.
async fn wait_status(store: &str, creds: &Path, names: &[&str]) -> String {
    let deadline = Instant::now() + WITHIN;
    loop {
        let out = edge_config(store, creds, &["status"]);
        let table = text(&out.stdout);
        if out.status.success() && names.iter().all(|n| table.contains(n)) {
            return table;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed {names:?} on version 1:\n{table}{}",
            text(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asserts `out` failed and its stderr contains `needle`.
fn refused(out: &Output, needle: &str, what: &str) {
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "{what} succeeded: {}",
        text(&out.stdout)
    );
    assert!(err.contains(needle), "{what}: no {needle:?} in: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secured_etcd_lets_each_role_do_its_part_and_nothing_more() {
    let setup = Setup::new("control-auth");
    let (etcd, tls) = etcd::start_tls(&setup.dir);
    etcd.enable_auth("/edge", "rootpw", "operatorpw", "nodepw");
    // A read-only role for dashboards: versions, the active pointer and reports; no blobs.
    etcd.ctl_as("root", &["user", "add", "viewer:viewerpw"]);
    etcd.ctl_as("root", &["role", "add", "viewer"]);
    etcd.ctl_as("root", &["user", "grant-role", "viewer", "viewer"]);
    for key in ["/edge/versions/", "/edge/control/", "/edge/nodes/"] {
        let args = [
            "role",
            "grant-permission",
            "viewer",
            "read",
            key,
            "--prefix=true",
        ];
        etcd.ctl_as("root", &args);
    }
    let store = etcd.url("edge");
    let operator = creds(&setup.dir, "operator", &tls, true, "operator", "operatorpw");
    let viewer = creds(&setup.dir, "viewer", &tls, true, "viewer", "viewerpw");

    // The operator pushes version 1 with the site's certificate and key uploaded.
    let a = RecordingOrigin::start(OriginMode::Normal).await;
    let b = RecordingOrigin::start(OriginMode::Normal).await;
    let origins = [&a, &b];
    let work = setup.dir.join("push");
    std::fs::create_dir_all(&work).expect("push dir");
    setup.ca.issue(&work, "site", &["localhost"]);
    let v1 = write(&work, "v1.toml", &shared(a.addr));
    let out = push(&store, &operator, &v1);
    assert!(out.status.success(), "operator push: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("version 1"),
        "{}",
        text(&out.stdout)
    );

    // Two nodes with the node user's credentials apply it and serve from origin a.
    let mut nodes = Vec::new();
    for name in ["par-1", "par-2"] {
        let dir = setup.dir.join(name);
        std::fs::create_dir_all(&dir).expect("node dir");
        let body = node_file(name) + "\n" + &store_table(&dir, &tls, true, "node", "nodepw");
        let file = write(&dir, "node.toml", &body);
        let args = [
            "run",
            "--config",
            file.to_str().expect("utf-8"),
            "--store",
            &store,
        ];
        nodes.push(Edge::start_with(&dir, &args, file.clone()));
    }
    for (i, node) in nodes.iter().enumerate() {
        let deadline = Instant::now() + WITHIN;
        let mut n = 0;
        while answered_by(&setup, node, &format!("/private/{i}/{n}"), &origins).await != Some(0) {
            assert!(
                Instant::now() < deadline,
                "node {i} never served v1:\n{}",
                node.log()
            );
            n += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Their reports, written as `node` under /edge/nodes/, show to the operator.
    let table = wait_status(&store, &operator, &["par-1", "par-2"]).await;
    assert!(table.starts_with("active version 1"), "{table}");
    for name in ["par-1", "par-2"] {
        let row = table.lines().find(|l| l.starts_with(name)).expect("row");
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!((cols[4], cols[cols.len() - 1]), ("1", "ok"), "{table}");
    }
    let reports = etcd.ctl_as("node", &["get", "--prefix", "/edge/nodes/", "--keys-only"]);
    assert!(reports.contains("/edge/nodes/par-1") && reports.contains("/edge/nodes/par-2"));

    // The node's own credentials cannot push: refused by etcd, nothing written.
    let keys = |p: &str| etcd.ctl_as("root", &["get", "--prefix", p, "--keys-only"]);
    let before = [
        keys("/edge/blobs/"),
        keys("/edge/versions/"),
        keys("/edge/control/"),
    ];
    // History without its AGE column (characters 11..21), which moves with the clock.
    let history = || {
        let h = text(&edge_config(&store, &operator, &["history"]).stdout);
        let cut = |l: &str| format!("{}|{}", l.get(..11).unwrap_or(l), l.get(21..).unwrap_or(""));
        h.lines().map(cut).collect::<Vec<_>>()
    };
    let history_before = history();
    assert_eq!(history_before.len(), 2, "{history_before:?}");
    let v2 = write(&work, "v2.toml", &shared(b.addr));
    let as_node = setup.dir.join("par-1").join("node.toml");
    refused(
        &push(&store, &as_node, &v2),
        "permission denied",
        "push as node",
    );
    let after = [
        keys("/edge/blobs/"),
        keys("/edge/versions/"),
        keys("/edge/control/"),
    ];
    assert_eq!(before, after, "a refused push wrote keys");
    assert_eq!(history(), history_before);
    assert_eq!(
        answered_by(&setup, &nodes[0], "/private/after", &origins).await,
        Some(0)
    );

    // No client certificate: etcd refuses the TLS handshake, whatever the password. (The CLI
    // only sees a broken pipe; etcd's log says why.)
    let no_cert = creds(&setup.dir, "no-cert", &tls, false, "operator", "operatorpw");
    let out = edge_config(&store, &no_cert, &["status"]);
    refused(&out, "etcd connect", "no client cert");
    let log = etcd.log_tail();
    assert!(log.contains("client didn't provide a certificate"), "{log}");
    // A wrong password.
    let wrong = creds(&setup.dir, "wrong", &tls, true, "operator", "not-it");
    let out = edge_config(&store, &wrong, &["status"]);
    refused(&out, "authentication failed", "wrong password");

    // The viewer follows status and history, but reads no blob: keys stay with the nodes.
    let table = wait_status(&store, &viewer, &["par-1", "par-2"]).await;
    assert!(table.starts_with("active version 1"), "{table}");
    let out = edge_config(&store, &viewer, &["history"]);
    assert!(
        out.status.success(),
        "history as viewer: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).lines().any(|l| l.starts_with("* 1")),
        "{}",
        text(&out.stdout)
    );
    let blobs = ["get", "--prefix", "/edge/blobs/"];
    let denied = etcd.try_ctl_as("viewer:viewerpw", &blobs);
    assert!(
        denied
            .as_ref()
            .is_err_and(|e| e.contains("permission denied")),
        "{denied:?}"
    );
    assert!(etcd.ctl_as("node", &blobs).contains("PRIVATE KEY"));
    refused(
        &push(&store, &viewer, &v2),
        "permission denied",
        "push as viewer",
    );
}
