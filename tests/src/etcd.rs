//! A real single-member etcd (Debian's etcd 3.4) on loopback for end-to-end tests, optionally
//! with client TLS (`--client-cert-auth`) and etcd's user/role auth.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rcgen::ExtendedKeyUsagePurpose as Eku;

const INSTALL: &str = "apt-get install -y etcd-server etcd-client";
const READY_WITHIN: Duration = Duration::from_secs(15);
const IN_USE: &str = "address already in use";

/// Client-side TLS material of [`start_tls`]: the CA that signed the server certificate and a
/// client-auth certificate (CN `edge-e2e-client`, which is no etcd user) with its key.
#[derive(Clone, Debug)]
pub struct EtcdTls {
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A running etcd server. Killed (SIGKILL, by its own PID) on drop; the data stays on disk.
pub struct Etcd {
    child: Mutex<Option<Child>>,
    data: PathBuf,
    log: PathBuf,
    client_port: u16,
    peer_port: u16,
    /// Client material, server certificate, server key.
    tls: Option<(EtcdTls, PathBuf, PathBuf)>,
    /// Passwords of the users made by `enable_auth`; empty until auth is on.
    passwords: Mutex<HashMap<String, String>>,
}

impl Etcd {
    /// Starts etcd on 127.0.0.1 with data in `dir/etcd-data` and its log in `dir/etcd.log`;
    /// returns once it answers (panics with the log tail after 15 s).
    pub fn start(dir: &Path) -> Etcd {
        Self::launch(dir, None)
    }

    fn launch(dir: &Path, tls: Option<(EtcdTls, PathBuf, PathBuf)>) -> Etcd {
        binary("etcd");
        binary("etcdctl");
        let mut etcd = Etcd {
            child: Mutex::new(None),
            data: dir.join("etcd-data"),
            log: dir.join("etcd.log"),
            client_port: 0,
            peer_port: 0,
            tls,
            passwords: Mutex::new(HashMap::new()),
        };
        // etcd 3.4 does bind `127.0.0.1:0` and logs the real port (at info level only), but
        // keeps using the literal `:0` elsewhere: the advertised URLs (`member list` shows
        // `http://127.0.0.1:0`) and its grpc-gateway, which dials `127.0.0.1:0` (the JSON API
        // answers "connection refused", the log fills with gRPC warnings); and a restart could
        // not get the same port back. So pick free ports here (bind port 0, read it, drop the
        // listener) and start again with fresh ones if something took one in between.
        for attempt in 1.. {
            [etcd.client_port, etcd.peer_port] = free_ports();
            let _ = std::fs::remove_dir_all(&etcd.data);
            // 0700, or etcd warns about the permissions on every start.
            let mut mkdir = std::fs::DirBuilder::new();
            mkdir
                .mode(0o700)
                .create(&etcd.data)
                .expect("create etcd-data");
            match etcd.spawn_and_wait() {
                Ok(()) => return etcd,
                Err(why) if why == IN_USE && attempt < 5 => continue,
                Err(why) => etcd.fail(&why),
            }
        }
        unreachable!()
    }

    /// "127.0.0.1:PORT" (also for a TLS instance; see [`Etcd::client_url`]).
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// "http://127.0.0.1:PORT", or "https://…" for a TLS instance.
    pub fn client_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.endpoint())
    }

    /// "etcd://127.0.0.1:PORT/<prefix without leading slash>".
    pub fn url(&self, prefix: &str) -> String {
        let prefix = prefix.trim_start_matches('/');
        format!("etcd://{}/{prefix}", self.endpoint())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap().as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL to its own PID) and reaps it; the data stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.get_mut().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again (killing it first if it runs) on the same data dir and ports.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(why) = self.spawn_and_wait() {
            self.fail(&why);
        }
    }

    /// Whether the etcd process is alive.
    pub fn running(&self) -> bool {
        let mut child = self.child.lock().unwrap();
        child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// `etcdctl --endpoints=… ARGS` (TLS flags added for a TLS instance), without a user:
    /// stdout, or a panic with stderr.
    pub fn ctl(&self, args: &[&str]) -> String {
        self.try_ctl(args)
            .unwrap_or_else(|e| panic!("etcdctl {args:?}: {e}"))
    }

    /// `etcdctl --user=…`: `user` is `name:password`, or a name given to `enable_auth`.
    pub fn ctl_as(&self, user: &str, args: &[&str]) -> String {
        let out = self.try_ctl_as(user, args);
        out.unwrap_or_else(|e| panic!("etcdctl --user={user} {args:?}: {e}"))
    }

    /// Like [`Etcd::ctl`], but a failure is `Err(stderr)`.
    pub fn try_ctl(&self, args: &[&str]) -> Result<String, String> {
        self.run_ctl(None, args)
    }

    /// Like [`Etcd::ctl_as`], but a failure is `Err(stderr)`.
    pub fn try_ctl_as(&self, user: &str, args: &[&str]) -> Result<String, String> {
        if user.contains(':') {
            return self.run_ctl(Some(user), args);
        }
        let pw = self.passwords.lock().unwrap().get(user).cloned();
        let pw = pw.unwrap_or_else(|| panic!("no password known for etcd user {user}"));
        self.run_ctl(Some(&format!("{user}:{pw}")), args)
    }

    /// The store's current revision.
    pub fn revision(&self) -> i64 {
        let status = self
            .status()
            .unwrap_or_else(|e| panic!("etcd endpoint status: {e}"));
        let rev = status["header"]["revision"].as_i64();
        rev.unwrap_or_else(|| panic!("no revision in {status}"))
    }

    /// Compacts the history up to the current revision (physically, as root once auth is on),
    /// so reads and watches from older revisions get "required revision has been compacted".
    pub fn compact(&self) {
        let rev = self.revision().to_string();
        let args = ["compaction", "--physical", rev.as_str()];
        if let Err(e) = self.run_ctl(self.root().as_deref(), &args) {
            panic!("etcdctl compaction {rev}: {e}");
        }
    }

    /// Turns on etcd auth. Users: `root` (role root), `operator` (role `operator`: readwrite on
    /// `prefix`), `node` (role `node`: read on `prefix`, readwrite on `prefix/nodes/` (reports),
    /// `prefix/purges/` (a node records the purges its API accepts) and `prefix/acks/`). Prefix grants are etcd key ranges, so `/edge` also covers `/edge2`.
    /// Afterwards [`Etcd::ctl`] is anonymous (refused); use [`Etcd::ctl_as`].
    pub fn enable_auth(
        &self,
        prefix: &str,
        root_password: &str,
        operator_password: &str,
        node_password: &str,
    ) {
        let users = [
            ("root", root_password),
            ("operator", operator_password),
            ("node", node_password),
        ];
        for (user, pw) in users {
            self.ctl(&["user", "add", &format!("{user}:{pw}")]);
        }
        for role in ["operator", "node"] {
            self.ctl(&["role", "add", role]);
            self.ctl(&["user", "grant-role", role, role]);
        }
        let base = prefix.trim_end_matches('/');
        let (nodes, acks) = (format!("{base}/nodes/"), format!("{base}/acks/"));
        let purges = format!("{base}/purges/");
        let grants = [
            ("operator", "readwrite", prefix),
            ("node", "read", prefix),
            ("node", "readwrite", &nodes),
            ("node", "readwrite", &purges),
            ("node", "readwrite", &acks),
        ];
        for (role, perm, key) in grants {
            self.ctl(&["role", "grant-permission", role, perm, key, "--prefix=true"]);
        }
        // The server refuses with "root user does not have root role"; etcdctl 3.4 then creates
        // role root, grants it to user root and enables auth.
        self.ctl(&["auth", "enable"]);
        let mut pws = self.passwords.lock().unwrap();
        pws.extend(users.map(|(user, pw)| (user.to_string(), pw.to_string())));
    }

    fn root(&self) -> Option<String> {
        let pws = self.passwords.lock().unwrap();
        pws.get("root").map(|pw| format!("root:{pw}"))
    }

    /// `endpoint status` as root once auth is on: anonymous requests then fail with "user name
    /// is empty" in etcd 3.4 (even `endpoint health` reports unhealthy).
    fn status(&self) -> Result<serde_json::Value, String> {
        let out = self.run_ctl(
            self.root().as_deref(),
            &["endpoint", "status", "-w", "json"],
        )?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
        Ok(v[0]["Status"].clone())
    }

    fn run_ctl(&self, user: Option<&str>, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(binary("etcdctl"));
        clean_env(&mut cmd);
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.client_url()))
            .args(["--dial-timeout=2s", "--command-timeout=5s"]);
        if let Some((t, _, _)) = &self.tls {
            let flags = [
                ("--cacert", &t.ca),
                ("--cert", &t.client_cert),
                ("--key", &t.client_key),
            ];
            for (flag, path) in flags {
                cmd.arg(flag).arg(path);
            }
        }
        cmd.args(user.map(|u| format!("--user={u}")));
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run etcdctl");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(text(&out.stderr))
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log_start = std::fs::metadata(&self.log).map_or(0, |m| m.len());
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&self.log);
        let log = log.expect("open etcd log");
        let c = self.client_url();
        let p = format!("http://127.0.0.1:{}", self.peer_port);
        let flags = format!(
            "--name=edge-e2e --listen-client-urls={c} --advertise-client-urls={c} \
             --listen-peer-urls={p} --initial-advertise-peer-urls={p} \
             --initial-cluster=edge-e2e={p} --initial-cluster-state=new \
             --initial-cluster-token=edge-e2e --logger=zap --log-level=warn \
             --snapshot-count=1000 --heartbeat-interval=50 --election-timeout=500"
        );
        let mut cmd = Command::new(binary("etcd"));
        clean_env(&mut cmd);
        cmd.args(flags.split(' ')).arg("--data-dir").arg(&self.data);
        if let Some((t, cert, key)) = &self.tls {
            let flags = [
                ("--cert-file", cert),
                ("--key-file", key),
                ("--trusted-ca-file", &t.ca),
            ];
            for (flag, path) in flags {
                cmd.arg(flag).arg(path);
            }
            cmd.arg("--client-cert-auth");
        }
        let out = log.try_clone().expect("clone log");
        let child = cmd.stdin(Stdio::null()).stdout(out).stderr(log).spawn();
        *self.child.get_mut().unwrap() = Some(child.expect("spawn etcd"));
        let deadline = Instant::now() + READY_WITHIN;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.client_port));
        while Instant::now() < deadline {
            let child = self.child.get_mut().unwrap();
            if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                *child = None;
                if self.log_since(log_start).contains(IN_USE) {
                    return Err(IN_USE.into());
                }
                return Err(format!("etcd exited early ({status})"));
            }
            // Ready once `endpoint status` answers and names a leader.
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                && self
                    .status()
                    .is_ok_and(|s| s["leader"].as_u64().is_some_and(|l| l != 0))
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("etcd did not answer within {READY_WITHIN:?}"))
    }

    fn log_since(&self, offset: u64) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.seek(SeekFrom::Start(offset));
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The last 60 lines of the etcd log.
    pub fn log_tail(&self) -> String {
        let log = self.log_since(0);
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    fn fail(&mut self, why: &str) -> ! {
        self.kill();
        let tail = self.log_tail();
        panic!("{why}; tail of {}:\n{tail}", self.log.display())
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let tail = self.log_tail();
            eprintln!("--- etcd log ({}) ---\n{tail}", self.log.display());
        }
    }
}

/// Starts etcd with client TLS required: a fresh [`crate::TestCa`] signs a server certificate
/// (SANs 127.0.0.1 and localhost; serverAuth + clientAuth, because etcd 3.4's grpc-gateway
/// presents the server certificate as its client certificate) and a clientAuth certificate,
/// all written to `dir/etcd-tls/` (`NAME.pem`, `NAME.key`, CN `edge-e2e-NAME`).
pub fn start_tls(dir: &Path) -> (Etcd, EtcdTls) {
    let tls_dir = dir.join("etcd-tls");
    std::fs::create_dir_all(&tls_dir).expect("create etcd-tls dir");
    let ca = crate::TestCa::new();
    let ca_path = tls_dir.join("ca.pem");
    ca.write_ca(&ca_path);
    let issue = |name: &str, sans: &[&str], eku: Vec<Eku>| {
        let sans = sans.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut params = rcgen::CertificateParams::new(sans).expect("leaf params");
        let cn = format!("edge-e2e-{name}");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = eku;
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &ca.issuer).expect("sign leaf");
        let (pem, key_pem) = (
            tls_dir.join(format!("{name}.pem")),
            tls_dir.join(format!("{name}.key")),
        );
        std::fs::write(&pem, cert.pem()).expect("write cert");
        std::fs::write(&key_pem, key.serialize_pem()).expect("write key");
        (pem, key_pem)
    };
    let sans = ["127.0.0.1", "localhost"];
    let (cert, key) = issue("server", &sans, vec![Eku::ServerAuth, Eku::ClientAuth]);
    let (client_cert, client_key) = issue("client", &[], vec![Eku::ClientAuth]);
    let tls = EtcdTls {
        ca: ca_path,
        client_cert,
        client_key,
    };
    (Etcd::launch(dir, Some((tls.clone(), cert, key))), tls)
}

/// Two distinct free loopback ports (both listeners are held until both are picked).
fn free_ports() -> [u16; 2] {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    [bind(), bind()].map(|l| l.local_addr().unwrap().port())
}

/// Drops ETCD_* / ETCDCTL_* variables of the environment: etcd reads its flags from them too.
fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("ETCD_") || k.starts_with("ETCDCTL_") {
            cmd.env_remove(k.as_ref());
        }
    }
}

/// The path of `name` on PATH; panics with the install command when it is missing.
fn binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| panic!("`{name}` is not on PATH; the etcd tests need it: {INSTALL}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(etcd: &Etcd, user: Option<&str>, key: &str) -> String {
        let args = ["get", key, "--print-value-only"];
        let out = user.map_or_else(|| etcd.ctl(&args), |u| etcd.ctl_as(u, &args));
        out.trim().to_string()
    }

    #[test]
    fn etcd_data_survives_kill_and_restart_and_compaction_works() {
        let dir = crate::TempDir::new("etcd");
        let mut etcd = Etcd::start(&dir);
        let endpoint = etcd.endpoint();
        assert!(
            endpoint
                .strip_prefix("127.0.0.1:")
                .unwrap()
                .parse::<u16>()
                .is_ok()
        );
        assert_eq!(etcd.url("/edge"), format!("etcd://{endpoint}/edge"));
        assert_eq!(etcd.url("edge"), etcd.url("/edge"));
        assert_eq!(etcd.ctl(&["put", "/edge/k", "v1"]).trim(), "OK");
        let rev_v1 = etcd.revision().to_string();
        etcd.ctl(&["put", "/edge/k", "v2"]);

        let pid = etcd.pid().unwrap();
        etcd.kill();
        assert!(!etcd.running());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "etcd not reaped"
        );
        // (Not `try_ctl`: etcdctl waits out its 5 s command timeout against a dead server.)
        assert!(
            TcpStream::connect(&endpoint).is_err(),
            "the client port still answers"
        );
        etcd.restart();
        assert!(etcd.running());
        assert_eq!(etcd.endpoint(), endpoint);
        assert_eq!(value(&etcd, None, "/edge/k"), "v2");

        let old = ["get", "/edge/k", "--print-value-only", "--rev", &rev_v1];
        assert_eq!(etcd.ctl(&old).trim(), "v1");
        etcd.compact();
        let err = etcd.try_ctl(&old).unwrap_err();
        assert!(
            err.contains("required revision has been compacted"),
            "{err}"
        );
    }

    #[test]
    fn etcd_tls_and_auth() {
        let dir = crate::TempDir::new("etcd-tls");
        let (mut etcd, tls) = start_tls(&dir);
        assert!(etcd.client_url().starts_with("https://127.0.0.1:"));
        etcd.ctl(&["put", "/edge/config", "c0"]);
        // A client without a certificate is refused.
        let no_cert = Command::new(binary("etcdctl"))
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", etcd.client_url()))
            .args(["--dial-timeout=1s", "--command-timeout=1s", "--cacert"])
            .arg(&tls.ca)
            .args(["get", "/edge/config"])
            .output()
            .unwrap();
        assert!(
            !no_cert.status.success(),
            "a client without certificate got in"
        );

        etcd.enable_auth("/edge", "rootpw", "operatorpw", "nodepw");
        assert_eq!(
            etcd.ctl_as("operator", &["put", "/edge/config", "c1"])
                .trim(),
            "OK"
        );
        etcd.ctl_as("node", &["put", "/edge/nodes/n1", "up"]);
        etcd.ctl_as("node:nodepw", &["put", "/edge/acks/n1", "1"]);
        let denied = etcd.try_ctl_as("node", &["put", "/edge/config", "evil"]);
        assert!(denied.unwrap_err().contains("permission denied"));
        assert_eq!(value(&etcd, Some("node"), "/edge/config"), "c1");
        assert!(
            etcd.try_ctl_as("operator:wrong", &["get", "/edge/config"])
                .is_err()
        );
        assert!(
            etcd.try_ctl(&["get", "/edge/config"]).is_err(),
            "anonymous read"
        );

        etcd.restart();
        assert_eq!(value(&etcd, Some("root"), "/edge/nodes/n1"), "up");
        etcd.compact();
    }
}
