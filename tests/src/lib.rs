#![forbid(unsafe_code)]
//! Harness for end-to-end tests: a test CA, the real `edge` binary as a child process, an
//! instrumented origin on loopback, and real HTTP/1.1, HTTP/2 (hyper) and HTTP/3 (h3 + quinn)
//! clients.
#![allow(clippy::unwrap_used)]

pub mod admin;
pub mod client;
pub mod collector;
pub mod control;
pub mod dns_client;
pub mod etcd;
pub mod origin;
pub mod purge_node;
pub mod raw;
pub mod udp_relay;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

pub use client::{Proto, Reply, Target};

pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// A fresh directory under the system temp dir, unique per test.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "edge-e2e-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// The real DB-IP database `scripts/fetch-geoip.sh` fetched (`scripts/test.sh` runs it).
/// Missing: the test fails with the command to run.
pub fn geoip_database() -> PathBuf {
    let path = geo::fetched_dbip_database();
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-geoip.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A [`temp_dir`] removed when dropped (kept if the test failed).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir(temp_dir(tag))
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The payload of a chunked body (whole, as read to the end).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A test CA and leaf certificates signed by it.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "edge e2e test CA");
        let key = rcgen::KeyPair::generate().expect("ca key");
        let issuer = rcgen::CertifiedIssuer::self_signed(params, key).expect("ca cert");
        TestCa { issuer }
    }

    pub fn cert_der(&self) -> rustls_pki_types::CertificateDer<'static> {
        self.issuer.der().clone()
    }

    pub fn write_ca(&self, path: &Path) {
        std::fs::write(path, self.issuer.pem()).expect("write CA");
    }

    /// Writes `NAME.pem` and `NAME.key` for `names` into `dir`; returns the leaf DER.
    pub fn issue(&self, dir: &Path, file: &str, names: &[&str]) -> Vec<u8> {
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).expect("write leaf");
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).expect("write key");
        cert.der().to_vec()
    }

    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert_der()).expect("add CA root");
        roots
    }
}

/// Path of the `edge` binary built from this workspace (same profile as the test). It is
/// (re)built first, so tests never run a stale binary; `EDGE_BIN` skips that and uses the given
/// binary as is.
pub fn edge_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("EDGE_BIN") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/<test-binary> → target/<profile>/edge
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary lives in target/<profile>/deps")
            .to_path_buf();
        let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let bin = profile_dir.join("edge");
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        let sources = newest_source(&workspace);
        if built.is_some() && built >= sources {
            return bin;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&workspace)
            .args(["build", "--quiet", "-p", "edge", "--target-dir"])
            .arg(&target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo to build the edge binary");
        assert!(status.success(), "building the edge binary failed");
        assert!(bin.exists(), "no edge binary at {}", bin.display());
        bin
    })
    .clone()
}

/// The newest modification time among the sources the edge binary is built from.
fn newest_source(workspace: &Path) -> Option<std::time::SystemTime> {
    fn walk(p: &Path, newest: &mut Option<std::time::SystemTime>) {
        let Ok(meta) = std::fs::metadata(p) else {
            return;
        };
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    walk(&e.path(), newest);
                }
            }
        } else if let Ok(m) = meta.modified()
            && newest.is_none_or(|n| m > n)
        {
            *newest = Some(m);
        }
    }
    let mut newest = None;
    for dir in [
        "edge",
        "cache",
        "config",
        "origin-shield",
        "purge-api",
        "geo",
        "control",
        "core",
        "rules",
        "dns",
    ] {
        walk(&workspace.join(dir).join("src"), &mut newest);
        walk(&workspace.join(dir).join("Cargo.toml"), &mut newest);
    }
    walk(&workspace.join("Cargo.lock"), &mut newest);
    newest
}

/// A running `edge` process. Killed (by its own PID) on drop.
pub struct Edge {
    child: Child,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub https: Option<SocketAddr>,
    pub http3: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    /// Every bound listener, in the order printed: (kind, address).
    pub listeners: Vec<(String, SocketAddr)>,
    stderr: PathBuf,
}

impl Edge {
    /// Writes `config_text` to `dir/edge.toml` and starts `edge run` on it.
    pub fn start(dir: &Path, config_text: &str) -> Edge {
        let config = dir.join("edge.toml");
        std::fs::write(&config, config_text).expect("write config");
        Self::start_with(
            dir,
            &["run", "--config", config.to_str().expect("utf-8 path")],
            config.clone(),
        )
    }

    /// Runs `edge ARGS...` and waits for its `ready` line.
    pub fn start_with(dir: &Path, args: &[&str], config: PathBuf) -> Edge {
        let stderr = dir.join(format!("edge-{}.log", std::process::id()));
        let log = std::fs::File::create(&stderr).expect("log file");
        let mut child = Command::new(edge_binary())
            .args(args)
            .args(["--workers", "2"])
            .env(
                "RUST_LOG",
                std::env::var("EDGE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn edge");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the child never blocks on a full pipe.
                    continue;
                }
            }
        });
        let mut edge = Edge {
            child,
            dir: dir.to_path_buf(),
            config,
            https: None,
            http3: None,
            http: None,
            admin: None,
            listeners: Vec::new(),
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => panic!(
                    "edge did not print `ready` within 30 s; its log:\n{}",
                    edge.log()
                ),
            };
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some("listening"), Some(kind), Some(addr)) => {
                    let addr: SocketAddr = addr.parse().expect("listening address");
                    edge.listeners.push((kind.to_string(), addr));
                    match kind {
                        "https" if edge.https.is_none() => edge.https = Some(addr),
                        "http3" if edge.http3.is_none() => edge.http3 = Some(addr),
                        "http" if edge.http.is_none() => edge.http = Some(addr),
                        "admin" if edge.admin.is_none() => edge.admin = Some(addr),
                        _ => {}
                    }
                }
                (Some("ready"), None, None) => break,
                _ => {}
            }
        }
        // The reader thread keeps draining stdout after `rx` is gone.
        edge
    }

    /// The admin listener's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        self.metrics_text_accepting("*/*").await
    }

    /// The body of `GET path` on the admin listener (which must answer 200).
    pub async fn admin_get(&self, path: &str) -> String {
        let addr = self.admin.expect("edge has an admin listener");
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to admin");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let req = format!("GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut out = String::new();
        stream.read_to_string(&mut out).await.expect("read");
        let (head, body) = out.split_once("\r\n\r\n").expect("a response head");
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {out}");
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            return dechunk(body);
        }
        body.to_string()
    }

    /// The raw `/metrics` response (head and body) for an `Accept` field.
    pub async fn metrics_text_accepting(&self, accept: &str) -> String {
        let addr = self.admin.expect("edge has an admin listener");
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to admin");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(
                format!(
                    "GET /metrics HTTP/1.1\r\nhost: admin\r\naccept: {accept}\r\nconnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .expect("write");
        let mut out = String::new();
        stream.read_to_string(&mut out).await.expect("read");
        assert!(out.starts_with("HTTP/1.1 200"), "metrics: {out}");
        out
    }

    /// One sample from `/metrics`, e.g. `edge_compress_encodes_total{coding="br",made="stored"}`.
    pub async fn metric(&self, series: &str) -> u64 {
        let text = self.metrics_text().await;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn https(&self) -> SocketAddr {
        self.https.expect("edge has an https listener")
    }

    pub fn http(&self) -> SocketAddr {
        self.http.expect("edge has an http listener")
    }

    /// Everything the edge logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Peak resident memory (VmHWM) of the edge process in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:")
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Polls the log until it contains `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- edge log ({}) ---\n{}",
                self.stderr.display(),
                self.log()
            );
        }
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("status field")
}

/// A standard test setup: a CA, certificates for `localhost`, `a.test` and `b.test`, and a
/// config with one site per name routed to `origin`.
pub struct Setup {
    pub ca: Arc<TestCa>,
    pub dir: PathBuf,
    pub leaf_a: Vec<u8>,
    pub leaf_b: Vec<u8>,
}

/// The directory goes with the test: a full run used to leave ~450 MB of caches, logs and
/// etcd data in the temp dir. A failed test keeps it, for reading.
impl Drop for Setup {
    fn drop(&mut self) {
        drop(TempDir(std::mem::take(&mut self.dir)));
    }
}

impl Setup {
    pub fn new(tag: &str) -> Setup {
        init();
        let dir = temp_dir(tag);
        let ca = TestCa::new();
        ca.write_ca(&dir.join("ca.pem"));
        ca.issue(&dir, "default", &["localhost", "127.0.0.1"]);
        let leaf_a = ca.issue(&dir, "a", &["a.test"]);
        let leaf_b = ca.issue(&dir, "b", &["b.test"]);
        Setup {
            ca: Arc::new(ca),
            dir,
            leaf_a,
            leaf_b,
        }
    }

    pub fn target(&self, addr: SocketAddr, host: &str) -> Target {
        Target {
            addr,
            host: host.to_string(),
            roots: Arc::new(self.ca.roots()),
        }
    }

    /// Config for sites `localhost`, `a.test`, `b.test` in front of `origin`, plus `extra` TOML.
    pub fn config(&self, origin: SocketAddr, extra: &str) -> String {
        format!(
            r#"
[node]
name = "e2e-edge"

[listen]
https = ["127.0.0.1:0"]
http = ["127.0.0.1:0"]
admin = ["127.0.0.1:0"]

[tls]
cert = "default.pem"
key = "default.key"

[timeouts]
origin_response_header = "2s"
request_header = "1s"
shutdown_grace = "10s"

[limits]
max_request_header_bytes = 8192
max_uri_bytes = 2048
max_request_body_bytes = 20971520

[pools.origin]
endpoints = ["{origin}"]

[[sites]]
name = "local"
hosts = ["localhost", "127.0.0.1"]
plain_http = "proxy"
routes = [{{ path_prefix = "/", pool = "origin" }}]

[[sites]]
name = "a"
hosts = ["a.test"]
cert = "a.pem"
key = "a.key"
plain_http = "redirect"
max_request_body_bytes = 1024
routes = [{{ path_prefix = "/", pool = "origin" }}]

[[sites]]
name = "b"
hosts = ["b.test"]
cert = "b.pem"
key = "b.key"
routes = [{{ path_prefix = "/", pool = "origin" }}]
{extra}
"#
        )
    }
}

/// The deterministic content of `/bytes/N` on the test origin.
pub fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(31).wrapping_add(i >> 13) % 251) as u8
}

/// FNV-1a, streamed: enough to compare large bodies without holding them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn update(&mut self, data: &[u8]) {
        for b in data {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    pub fn of_pattern(len: u64) -> Fnv {
        let mut h = Fnv::default();
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut i = 0;
        while i < len {
            buf.clear();
            let end = (i + 64 * 1024).min(len);
            buf.extend((i..end).map(pattern_byte));
            h.update(&buf);
            i = end;
        }
        h
    }
}
