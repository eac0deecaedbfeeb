//! The `edge` binary under test: building it once per run, starting it as a child process
//! with a config, reading its listeners' addresses, signalling, and its memory figures.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
            if p.file_name().is_some_and(|n| n == "target") {
                return;
            }
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
        // Nested crates (cache/rules) and the patched crates the edge links.
        "vendor",
    ] {
        walk(&workspace.join(dir), &mut newest);
    }
    walk(&workspace.join("Cargo.toml"), &mut newest);
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

    /// Polls `series` until it reaches `at_least` or `within` passes; its last value.
    pub async fn wait_metric(&self, series: &str, at_least: u64, within: Duration) -> u64 {
        let end = Instant::now() + within;
        loop {
            let v = self.metric(series).await;
            if v >= at_least || Instant::now() >= end {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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
