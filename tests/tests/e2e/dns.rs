//! Endpoint names resolved through a real DNS server (dnsmasq on loopback) whose answers the
//! test changes: the pool follows them when their TTL runs out, not before, and requests in
//! flight are not dropped.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_e2e::client::{self, Proto};
use edge_e2e::origin::Origin;
use edge_e2e::{Edge, Setup};
use http::{Method, StatusCode};

struct Dnsmasq {
    child: Child,
    hosts: PathBuf,
    addr: SocketAddr,
}

fn dnsmasq_binary() -> PathBuf {
    for p in ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "dnsmasq is missing: apt-get install -y dnsmasq-base (scripts/install-test-deps.sh does it)"
    );
}

impl Dnsmasq {
    /// Serves the names in `hosts` (hosts-file lines) with answers of `ttl` seconds.
    fn start(dir: &Path, hosts: &str, ttl: u32) -> Dnsmasq {
        let file = dir.join("dns-hosts");
        std::fs::write(&file, hosts).expect("hosts file");
        for _ in 0..10 {
            // A port free for UDP and TCP right now.
            let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
            let addr = udp.local_addr().expect("addr");
            drop(udp);
            let mut child = Command::new(dnsmasq_binary())
                .args([
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    "--pid-file=",
                    "--user=root",
                ])
                .arg(format!("--port={}", addr.port()))
                .arg(format!("--addn-hosts={}", file.display()))
                .arg(format!("--local-ttl={ttl}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn dnsmasq");
            std::thread::sleep(Duration::from_millis(200));
            if child.try_wait().expect("dnsmasq status").is_none() {
                return Dnsmasq {
                    child,
                    hosts: file,
                    addr,
                };
            }
        }
        panic!("dnsmasq did not start on a free port");
    }

    /// New answers: rewrite the hosts file and tell dnsmasq to reread it.
    fn set(&self, hosts: &str) {
        std::fs::write(&self.hosts, hosts).expect("hosts file");
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "SIGHUP to dnsmasq");
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_follows_changing_dns_answers_when_their_ttl_expires() {
    let setup = Setup::new("dns");
    let a = Origin::start().await;
    let port = a.addr.port();
    let b = Origin::start_on(SocketAddr::from(([127, 0, 0, 2], port))).await;
    let dns = Dnsmasq::start(&setup.dir, "127.0.0.1 app.test\n", 3);

    let dummy: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let text = setup
        .config(
            dummy,
            &format!(
                "\n[origin]\ndns_servers = [\"{}\"]\ndns_min_ttl = \"100ms\"\ndns_max_ttl = \"30s\"\n",
                dns.addr
            ),
        )
        .replace(
            "[pools.origin]\nendpoints = [\"127.0.0.1:9\"]\n",
            &format!("[pools.origin]\nendpoints = [\"app.test:{port}\"]\n"),
        );
    let edge = Edge::start(&setup.dir, &text);
    // The name was resolved before `ready` (3 s answer).
    let resolved_at = Instant::now();
    let target = setup.target(edge.https(), "localhost");
    let get = |path: String| {
        let t = target.clone();
        async move {
            client::request(Proto::H1, &t, Method::GET, &path, &[], Bytes::new())
                .await
                .expect("GET")
        }
    };
    for i in 0..3 {
        assert_eq!(get(format!("/headers?i={i}")).await.status, StatusCode::OK);
    }
    assert_eq!((a.hits("/headers"), b.hits("/headers")), (3, 0));

    // A long download from A, in flight while the answer changes.
    let slow = tokio::spawn(get("/drip?chunks=24&ms=150".to_string()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    dns.set("127.0.0.2 app.test\n");

    // Requests every 50 ms until one reaches B.
    let switched = loop {
        let r = get("/headers".to_string()).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "no request fails while the pool changes"
        );
        if b.hits("/headers") > 0 {
            break resolved_at.elapsed();
        }
        assert!(
            resolved_at.elapsed() < Duration::from_secs(8),
            "the pool never followed the new answer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Not before the 3 s TTL of the first answer ran out (the edge resolved it just before
    // printing `ready`), and soon after.
    assert!(
        switched >= Duration::from_millis(2500),
        "followed after {switched:?}: the TTL was not honoured"
    );
    assert!(
        switched <= Duration::from_millis(4500),
        "followed after {switched:?}"
    );
    // After the switch everything goes to B.
    let before = a.hits("/headers");
    for _ in 0..5 {
        assert_eq!(get("/headers".to_string()).await.status, StatusCode::OK);
    }
    assert_eq!(a.hits("/headers"), before);
    assert_eq!(
        edge.metric(&format!(
            "edge_origin_endpoint_up{{pool=\"origin\",endpoint=\"127.0.0.2:{port}\"}}"
        ))
        .await,
        1
    );
    // The download that started on A finished.
    let r = slow.await.expect("join");
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.len, 24 * 65536, "the whole download");
    assert_eq!(a.hits("/drip"), 1);
}
