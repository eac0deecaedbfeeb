//! GeoDNS (issue 19): `edge dns` on loopback ports, asked by hickory-built queries over UDP and
//! TCP and by `dig`. A test GeoIP database maps documentation subnets to countries, so answers
//! depend on the Client Subnet option (RFC 7871) as they would for resolvers worldwide; POP
//! health comes from real edge processes probed over HTTP and from node reports in a real
//! etcd.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use edge_e2e::dns_client::{ResponseCode, addresses, ask, ask_tcp, dig, query, subnet, udp_raw};
use edge_e2e::etcd::Etcd;
use edge_e2e::{Edge, TempDir};
use geo::writer::{Value, Writer};
use hickory_proto::rr::RecordType;

const FRA: &str = "192.0.2.10";
const FRA6: &str = "2001:db8::10";
const NYC: &str = "192.0.2.20";
const SIN: &str = "192.0.2.30";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// 192.0.2/24 Germany, 198.51.100/24 the US, 203.0.113/24 Japan, 127/8 (the resolver itself,
/// without ECS) Brazil.
fn geo_db(dir: &Path) {
    let db = Writer::new("Edge-Test-Country")
        .insert(ip("192.0.2.0"), 24, Value::country_code("DE"))
        .insert(ip("198.51.100.0"), 24, Value::country_code("US"))
        .insert(ip("203.0.113.0"), 24, Value::country_code("JP"))
        .insert(ip("127.0.0.0"), 8, Value::country_code("BR"))
        .to_bytes();
    std::fs::write(dir.join("country.mmdb"), db).expect("write db");
}

struct Pop<'a> {
    name: &'a str,
    at: (f64, f64),
    addresses: &'a [&'a str],
    extra: String,
}

fn pop<'a>(name: &'a str, at: (f64, f64), addresses: &'a [&'a str]) -> Pop<'a> {
    Pop {
        name,
        at,
        addresses,
        extra: String::new(),
    }
}

fn config(pops: &[Pop<'_>], dns_extra: &str, site_extra: &str) -> String {
    let mut s = format!(
        r#"
[geo]
databases = ["country.mmdb"]

[pools.origin]
endpoints = ["127.0.0.1:9"]

[[sites]]
name = "shop"
hosts = ["shop.example.com", "example.org"]
routes = [{{ path_prefix = "/", pool = "origin" }}]
{site_extra}

[dns]
zone = "cdn.test"
delegated = ["example.org"]
listen = ["127.0.0.1:0", "[::1]:0"]
metrics = "127.0.0.1:0"
ttl = "2s"
nameservers = [{{ name = "ns1.cdn.test", addresses = ["192.0.2.53"] }}]
{dns_extra}
"#
    );
    for p in pops {
        let addrs: Vec<String> = p.addresses.iter().map(|a| format!("\"{a}\"")).collect();
        s.push_str(&format!(
            "\n[[dns.pops]]\nname = \"{}\"\nlocation = [{}, {}]\naddresses = [{}]\n{}\n",
            p.name,
            p.at.0,
            p.at.1,
            addrs.join(", "),
            p.extra
        ));
    }
    s
}

fn three_pops() -> Vec<Pop<'static>> {
    vec![
        pop("fra", (50.11, 8.68), &[FRA, FRA6]),
        pop("nyc", (40.71, -74.01), &[NYC]),
        pop("sin", (1.35, 103.82), &[SIN]),
    ]
}

fn start_dns(dir: &Path, text: &str, args: &[&str]) -> Edge {
    let path = dir.join("dns.toml");
    std::fs::write(&path, text).expect("write config");
    let mut all = vec!["dns", "--config", path.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    Edge::start_with(dir, &all, path.clone())
}

fn dns_addrs(e: &Edge) -> Vec<SocketAddr> {
    e.listeners
        .iter()
        .filter(|(k, _)| k == "dns")
        .map(|(_, a)| *a)
        .collect()
}

/// The A answer for `name` to a resolver sending `subnet`.
async fn a_for(server: SocketAddr, name: &str, subnet: &str) -> Vec<IpAddr> {
    let (net, len) = subnet.split_once('/').expect("subnet/len");
    let m = ask(
        server,
        &query(
            name,
            RecordType::A,
            Some((ip(net), len.parse().expect("len"))),
        ),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    addresses(&m)
}

#[tokio::test]
async fn answers_depend_on_the_client_subnet_and_echo_its_scope() {
    let dir = TempDir::new("geodns-ecs");
    geo_db(&dir);
    let e = start_dns(
        &dir,
        &config(&three_pops(), "", "dns = { pin = { JP = \"fra\" } }"),
        &[],
    );
    let addrs = dns_addrs(&e);
    assert_eq!(
        addrs.len(),
        2,
        "UDP+TCP on 127.0.0.1 and [::1]: {:?}",
        e.listeners
    );
    let v4 = addrs[0];

    // Germany → Frankfurt, the US → New York: one name, two answers by subnet.
    let de = ask(
        v4,
        &query("shop.cdn.test.", RecordType::A, Some((ip("192.0.2.0"), 24))),
    )
    .await;
    assert_eq!(addresses(&de), vec![ip(FRA)]);
    assert!(de.metadata.authoritative, "AA set");
    assert_eq!(de.answers[0].ttl, 2, "the configured TTL");
    // RFC 7871: family, source prefix and address echoed, scope = what the answer used.
    assert_eq!(subnet(&de), Some((ip("192.0.2.0"), 24, 24)));
    assert_eq!(
        a_for(v4, "shop.cdn.test.", "198.51.100.0/24").await,
        vec![ip(NYC)]
    );
    // A longer prefix than we use is cut to /24, and the scope says so.
    let long = ask(
        v4,
        &query(
            "shop.cdn.test.",
            RecordType::A,
            Some((ip("198.51.100.128"), 25)),
        ),
    )
    .await;
    assert_eq!(addresses(&long), vec![ip(NYC)]);
    assert_eq!(subnet(&long), Some((ip("198.51.100.128"), 25, 24)));
    // The site's pin: Japan goes to Frankfurt, not to the nearer Singapore.
    assert_eq!(
        a_for(v4, "shop.cdn.test.", "203.0.113.0/24").await,
        vec![ip(FRA)]
    );
    // No ECS: the resolver's own address (127.0.0.1: Brazil → New York), and no ECS back.
    let plain = ask(v4, &query("shop.cdn.test.", RecordType::A, None)).await;
    assert_eq!(addresses(&plain), vec![ip(NYC)]);
    assert_eq!(subnet(&plain), None);
    // AAAA: the POP's IPv6 address; the apex of a delegated zone is answered directly.
    let aaaa = ask(
        v4,
        &query(
            "shop.cdn.test.",
            RecordType::AAAA,
            Some((ip("192.0.2.0"), 24)),
        ),
    )
    .await;
    assert_eq!(addresses(&aaaa), vec![ip(FRA6)]);
    assert_eq!(
        a_for(v4, "example.org.", "198.51.100.0/24").await,
        vec![ip(NYC)]
    );
    // The same over TCP and over IPv6.
    let tcp = ask_tcp(
        v4,
        &query("shop.cdn.test.", RecordType::A, Some((ip("192.0.2.0"), 24))),
    )
    .await;
    assert_eq!(addresses(&tcp), vec![ip(FRA)]);
    assert_eq!(
        a_for(addrs[1], "shop.cdn.test.", "198.51.100.0/24").await,
        vec![ip(NYC)]
    );

    // dig, an independent client: ECS, TCP, IPv6.
    let short = |args: &[&str]| dig(v4, args);
    assert_eq!(
        short(&["shop.cdn.test", "A", "+subnet=192.0.2.0/24", "+short"]),
        vec![FRA]
    );
    assert_eq!(
        short(&[
            "shop.cdn.test",
            "A",
            "+subnet=198.51.100.0/24",
            "+tcp",
            "+short"
        ]),
        vec![NYC]
    );
    assert_eq!(
        dig(
            addrs[1],
            &["shop.cdn.test", "AAAA", "+subnet=192.0.2.0/24", "+short"]
        ),
        vec![FRA6]
    );
    let full = short(&["shop.cdn.test", "A", "+subnet=192.0.2.0/24"]).join("\n");
    assert!(
        full.contains("CLIENT-SUBNET: 192.0.2.0/24/24"),
        "dig shows the echoed scope:\n{full}"
    );
    assert!(full.contains(" aa"), "dig shows AA:\n{full}");

    // Metrics: answers by POP and country, queries by type.
    let m = e
        .listeners
        .iter()
        .find(|(k, _)| k == "dns-metrics")
        .map(|(_, a)| *a)
        .expect("metrics listener");
    let text = http_get(m, "/metrics").await;
    assert!(
        text.contains(
            r#"edge_dns_answers_total{site="shop",pop="fra",country="DE",reason="nearest"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"edge_dns_answers_total{site="shop",pop="fra",country="JP",reason="pinned"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"edge_dns_queries_total{type="AAAA",rcode="NOERROR"}"#),
        "{text}"
    );
    assert!(
        text.contains("edge_dns_query_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn names_outside_refused_unknown_nxdomain_and_bad_packets_do_not_stop_it() {
    let dir = TempDir::new("geodns-zone");
    geo_db(&dir);
    let e = start_dns(&dir, &config(&three_pops(), "", ""), &[]);
    let s = dns_addrs(&e)[0];

    let out = ask(s, &query("www.example.net.", RecordType::A, None)).await;
    assert_eq!(out.metadata.response_code, ResponseCode::Refused);
    assert!(out.answers.is_empty());
    let nx = ask(s, &query("nothing.cdn.test.", RecordType::A, None)).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(nx.metadata.authoritative);
    assert!(
        nx.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA),
        "SOA for negative caching"
    );
    // A name that exists, a type it does not have: NODATA (NOERROR, no answer, SOA).
    let nodata = ask(s, &query("shop.cdn.test.", RecordType::MX, None)).await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    // Apex SOA and NS (with glue), in the delegated zone too.
    assert_eq!(dig(s, &["cdn.test", "NS", "+short"]), vec!["ns1.cdn.test."]);
    let soa = ask(s, &query("example.org.", RecordType::SOA, None)).await;
    assert_eq!(soa.answers.len(), 1);
    let ns = ask(s, &query("cdn.test.", RecordType::NS, None)).await;
    assert_eq!(addresses(&ns), Vec::<IpAddr>::new());
    assert!(
        ns.additionals
            .iter()
            .any(|r| r.record_type() == RecordType::A),
        "glue"
    );
    // The letter case of the question is kept in the answer (0x20 randomisation).
    let mixed = ask(
        s,
        &query("ShOp.CdN.TeSt.", RecordType::A, Some((ip("192.0.2.0"), 24))),
    )
    .await;
    assert_eq!(mixed.answers[0].name.to_ascii(), "ShOp.CdN.TeSt.");

    // Malformed: garbage and a header-only fragment get nothing; a header that promises a
    // question it lacks gets FORMERR; an ECS with host bits past its prefix gets FORMERR.
    assert_eq!(
        udp_raw(s, b"\x01\x02\x03", Duration::from_millis(300)).await,
        None
    );
    let no_question = [0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    let r = udp_raw(s, &no_question, Duration::from_secs(2))
        .await
        .expect("an answer to a short query");
    let r = hickory_proto::op::Message::from_vec(&r).expect("decodes");
    assert_eq!(r.metadata.id, 0x1234);
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    // (192.0.2.0/20 sends three address bytes; the third has bits past the prefix.)
    let bad_ecs = ask(
        s,
        &query("shop.cdn.test.", RecordType::A, Some((ip("192.0.2.0"), 20))),
    )
    .await;
    assert_eq!(bad_ecs.metadata.response_code, ResponseCode::FormErr);
    for junk in [
        vec![0xffu8; 512],
        (0..=255u8).collect::<Vec<_>>(),
        vec![0u8; 40],
    ] {
        let _ = udp_raw(s, &junk, Duration::from_millis(100)).await;
    }
    // Still answering.
    assert_eq!(
        a_for(s, "shop.cdn.test.", "198.51.100.0/24").await,
        vec![ip(NYC)]
    );
}

/// Polls `f` until it returns true or `within` passes; returns how long it took.
async fn until(within: Duration, mut f: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if f().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn edge_pop(dir: &Path, admin_port: u16) -> Edge {
    Edge::start(
        dir,
        &format!(
            r#"
[node]
name = "fra-1"
pop = "fra"
[listen]
http = ["127.0.0.1:0"]
admin = ["127.0.0.1:{admin_port}"]
[pools.origin]
endpoints = ["127.0.0.1:9"]
[[sites]]
name = "shop"
hosts = ["shop.example.com"]
routes = [{{ path_prefix = "/", pool = "origin" }}]
"#
        ),
    )
}

#[tokio::test]
async fn a_stopped_pop_leaves_the_answers_within_the_ttl_and_returns_when_restarted() {
    let dir = TempDir::new("geodns-probe");
    let pop_dir = TempDir::new("geodns-probe-fra");
    geo_db(&dir);
    let admin = free_port();
    let fra_edge = edge_pop(&pop_dir, admin);
    let mut pops = three_pops();
    pops[0].extra = format!("probes = [\"http://127.0.0.1:{admin}/readyz\"]");
    let dns = "probe = { interval = \"200ms\", timeout = \"500ms\", fall = 2, rise = 2 }";
    let e = start_dns(&dir, &config(&pops, dns, ""), &[]);
    let s = dns_addrs(&e)[0];
    assert_eq!(
        a_for(s, "shop.cdn.test.", "192.0.2.0/24").await,
        vec![ip(FRA)]
    );

    drop(fra_edge); // kills the process
    // Gone within one TTL (2 s) plus the probes' fall (2 × 200 ms) — with a second to spare
    // for a loaded machine.
    let took = until(Duration::from_secs(4), async || {
        a_for(s, "shop.cdn.test.", "192.0.2.0/24").await == vec![ip(NYC)]
    })
    .await
    .expect("Frankfurt left the answers");
    assert!(took < Duration::from_millis(3400), "took {took:?}");
    let m = e
        .listeners
        .iter()
        .find(|(k, _)| k == "dns-metrics")
        .map(|(_, a)| *a)
        .expect("metrics");
    assert!(
        http_get(m, "/metrics")
            .await
            .contains(r#"edge_dns_pop_up{pop="fra"} 0"#)
    );

    let _back = edge_pop(&pop_dir, admin);
    until(Duration::from_secs(5), async || {
        a_for(s, "shop.cdn.test.", "192.0.2.0/24").await == vec![ip(FRA)]
    })
    .await
    .expect("Frankfurt came back after its restart");

    // A config the server refuses keeps the running zone; a good one adds the POP it names.
    let path = dir.join("dns.toml");
    std::fs::write(&path, "[dns]\nzone = \"bad name!\"\n").expect("write");
    assert!(
        e.wait_log("config refused", Duration::from_secs(5)),
        "{}",
        e.log()
    );
    assert_eq!(
        a_for(s, "shop.cdn.test.", "192.0.2.0/24").await,
        vec![ip(FRA)]
    );
    let mut pops = three_pops();
    pops.push(pop("kassel", (51.0, 9.0), &["192.0.2.40"]));
    std::fs::write(&path, config(&pops, dns, "")).expect("write");
    until(Duration::from_secs(5), async || {
        a_for(s, "shop.cdn.test.", "192.0.2.0/24").await == vec![ip("192.0.2.40")]
    })
    .await
    .expect("Kassel, at Germany's centre, answers after the reload");
}

fn report(etcd: &Etcd, node: &str, pop: &str, requests: u64, at: u64) {
    let value = serde_json::json!({
        "node": node, "pop": pop, "region": "eu", "tier": "edge", "version": 1,
        "applied_at": 0, "error": null, "failed_version": null, "requests": requests,
        "5xx": 0, "cpu": 0.0, "reported_at": at,
    });
    etcd.ctl(&["put", &format!("/edge/nodes/{node}"), &value.to_string()]);
}

#[tokio::test]
async fn node_reports_in_etcd_decide_liveness_and_overload_with_hysteresis() {
    let dir = TempDir::new("geodns-etcd");
    geo_db(&dir);
    let etcd = Etcd::start(&dir);
    let mut pops = three_pops();
    pops[0].extra = "capacity_rps = 100".into();
    let e = start_dns(
        &dir,
        &config(&pops, "", ""),
        &["--store", &etcd.url("/edge")],
    );
    let s = dns_addrs(&e)[0];
    let german = async || a_for(s, "shop.cdn.test.", "192.0.2.0/24").await;

    // No node of Frankfurt reports: it is not in the answers (New York and Singapore report).
    let t0 = 1_000_000u64;
    report(&etcd, "nyc-1", "nyc", 0, t0);
    report(&etcd, "sin-1", "sin", 0, t0);
    until(Duration::from_secs(6), async || {
        german().await == vec![ip(NYC)]
    })
    .await
    .expect("a POP without live nodes leaves the answers");

    // Its node reports: back. Then 150 req/s against a capacity of 100: spilled to New York;
    // 90 req/s (over `leave` = 80 %): still spilled; 50 req/s: back.
    let mut requests = 0;
    let mut at = t0;
    let mut step = |rate: u64| {
        at += 2;
        requests += 2 * rate;
        report(&etcd, "fra-1", "fra", requests, at);
    };
    step(0);
    until(Duration::from_secs(6), async || {
        german().await == vec![ip(FRA)]
    })
    .await
    .expect("Frankfurt answers once its node reports");
    for (rate, want) in [(150, NYC), (90, NYC), (50, FRA)] {
        step(rate);
        until(Duration::from_secs(6), async || {
            german().await == vec![ip(want)]
        })
        .await
        .unwrap_or_else(|| panic!("at {rate} req/s the answer is {want}"));
        // And it stays so (hysteresis, not a flap) for a couple of report reads.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(german().await, vec![ip(want)], "at {rate} req/s");
    }
    let m = e
        .listeners
        .iter()
        .find(|(k, _)| k == "dns-metrics")
        .map(|(_, a)| *a)
        .expect("metrics");
    assert!(
        http_get(m, "/metrics")
            .await
            .contains(r#"reason="spilled""#)
    );
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}
