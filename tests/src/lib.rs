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
mod edge;
pub mod etcd;
pub mod origin;
pub mod purge_node;
pub mod raw;
pub mod udp_relay;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Once};

pub use client::{Proto, Reply, Target};
pub use edge::{Edge, edge_binary};

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
    /// The standard config with the `origin` pool's endpoint lines replaced by `pool` (TLS
    /// origins, several endpoints, health checks...).
    pub fn config_with_pool(&self, pool: &str, extra: &str) -> String {
        let dummy = SocketAddr::from(([127, 0, 0, 1], 9));
        self.config(dummy, extra).replace(
            "[pools.origin]\nendpoints = [\"127.0.0.1:9\"]\n",
            &format!("[pools.origin]\n{pool}\n"),
        )
    }

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
