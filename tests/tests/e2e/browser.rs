//! A real headless Chromium loads the built-in demo over HTTP/3, both forced and by discovering
//! h3 through our Alt-Svc header, and again with 0-RTT on. Needs chromium, openssl and python3 (scripts/test.sh installs
//! them); fails loudly, with the install command, when they are missing.

use std::path::PathBuf;
use std::process::Command;

use rustls::pki_types::pem::PemObject;

use edge_e2e::client::{self, Proto};
use edge_e2e::{Edge, TempDir, init};
use http::StatusCode;

fn browser_check() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tool = root.join("../../shared/tools/browser-h3-check");
    assert!(
        tool.exists(),
        "{} is missing: the shared/ folder must sit beside the project",
        tool.display()
    );
    tool
}

fn run_check(args: &[&str]) -> (bool, String) {
    let out = Command::new(browser_check())
        .args(args)
        .env("BROWSER_H3_TIMEOUT", "90")
        .output()
        .expect("run browser-h3-check");
    let text = format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        out.status.code(),
        Some(2),
        "browser-h3-check could not run (missing prerequisite?): install with \
         `apt-get install -y chromium openssl python3` or run scripts/test.sh\n{text}"
    );
    (
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "h3",
        text,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_loads_the_demo_over_http3() {
    init();
    let dir = TempDir::new("browser");
    let demo_dir = dir.join("demo");
    let edge = Edge::start_with(
        &dir,
        &[
            "demo",
            "--port",
            "0",
            "--http-port",
            "0",
            "--dir",
            demo_dir.to_str().expect("utf-8"),
        ],
        demo_dir.join("edge.toml"),
    );
    let cert = demo_dir.join("cert.pem");

    // The demo serves its pages through the edge over HTTP/3 (our own client first).
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&cert)
        .expect("cert")
        .flatten()
    {
        roots.add(c).expect("root");
    }
    let target = edge_e2e::Target {
        addr: edge.https(),
        host: "localhost".into(),
        roots: std::sync::Arc::new(roots),
    };
    for path in [
        "/",
        "/static/app.css",
        "/static/app.js",
        "/img/logo.svg",
        "/api/items",
    ] {
        let r = client::get(Proto::H3, &target, path).await.expect("h3 GET");
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(
            r.header("cache-control").is_some(),
            "{path} has cache headers"
        );
    }

    let url = format!("https://localhost:{}/", edge.https().port());
    let cert = cert.to_str().expect("utf-8");
    let (ok, text) = run_check(&[&url, cert]);
    assert!(ok, "Chromium did not load the demo over h3:\n{text}");
    let (ok, text) = run_check(&["--alt-svc", &url, cert]);
    assert!(ok, "Chromium did not switch to h3 via Alt-Svc:\n{text}");

    // With 0-RTT on, QUIC connections are read before their handshake completes: Chromium
    // must still get its pages (it once waited forever when h3 opened its streams too soon).
    let config = demo_dir.join("edge.toml");
    let text = std::fs::read_to_string(&config).expect("demo config");
    let text = text.replacen(
        "[[sites.routes]]",
        "zero_rtt = \"safe\"\n\n[[sites.routes]]",
        1,
    );
    std::fs::write(&config, text).expect("write demo config");
    assert!(
        edge.wait_log("config reloaded", std::time::Duration::from_secs(10)),
        "the demo did not reload with 0-RTT on"
    );
    for round in 0..3 {
        let (ok, text) = run_check(&[&url, cert]);
        assert!(
            ok,
            "round {round}: Chromium did not load the 0-RTT site over h3:\n{text}"
        );
    }
}
