//! Geo (issue 16): the real client address (trusted `X-Forwarded-For`, never an untrusted
//! one), GeoIP databases written by the test (loopback and documentation ranges mapped to
//! chosen countries) and the real DB-IP one, geo headers to the origin (a client's spoofed
//! one removed), access rules over HTTP/1.1, HTTP/2 and HTTP/3, steering by country, a copy
//! per country in the cache that one URL purge removes, and databases replaced on disk.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_e2e::client::{Conn, Proto, Reply, TLS_PROTOS};
use edge_e2e::raw::{OriginMode, RecordingOrigin};
use edge_e2e::{Edge, Setup, admin};
use geo::writer::{Value, Writer};
use http::Method;

const SECRET: &str = "geo-purge-secret";

/// 127/8 is Germany, 203.0.113/24 the US (with an ASN), 198.51.100/24 Brazil, 192.0.2/24
/// Belarus; the rest is unknown.
fn test_db(germany: &str) -> Vec<u8> {
    let ip = |s: &str| s.parse().expect("ip");
    Writer::new("Edge-Test-Country")
        .insert(ip("127.0.0.0"), 8, Value::country_code(germany))
        .insert(ip("203.0.113.0"), 24, Value::country_code("US"))
        .insert(ip("198.51.100.0"), 24, Value::country_code("BR"))
        .insert(ip("192.0.2.0"), 24, Value::country_code("BY"))
        .to_bytes()
}

fn asn_db() -> Vec<u8> {
    Writer::new("Edge-Test-ASN")
        .insert(
            "203.0.113.0".parse().expect("ip"),
            24,
            Value::asn(64_500, "Test US"),
        )
        .to_bytes()
}

fn config(setup: &Setup, origins: [SocketAddr; 3], trusted: &str, extra: &str) -> String {
    let [main, us, sa] = origins;
    format!(
        r#"
[node]
name = "geo-edge"
trusted_peers = [{trusted}]

[listen]
https = ["127.0.0.1:0"]
http = ["127.0.0.1:0"]
admin = ["127.0.0.1:0"]

[tls]
cert = "default.pem"
key = "default.key"

[geo]
databases = ["country.mmdb", "asn.mmdb"]
check_every = "200ms"

{tokens}

[pools.origin]
endpoints = ["{main}"]

[pools.us]
endpoints = ["{us}"]

[pools.sa]
endpoints = ["{sa}"]

[[sites]]
name = "geo"
hosts = ["localhost", "127.0.0.1"]
plain_http = "proxy"
routes = [{{ path_prefix = "/", pool = "origin", pools_by_country = {{ US = "us" }}, pools_by_continent = {{ SA = "sa" }} }}]
{extra}
"#,
        tokens = admin::token_toml("ops", SECRET, ""),
    )
    .replace("__DIR__", &setup.dir.display().to_string())
}

fn write_dbs(dir: &Path) {
    std::fs::write(dir.join("country.mmdb"), test_db("DE")).expect("write db");
    std::fs::write(dir.join("asn.mmdb"), asn_db()).expect("write db");
}

struct Bed {
    main: RecordingOrigin,
    us: RecordingOrigin,
    sa: RecordingOrigin,
    edge: Edge,
    setup: Setup,
}

impl Bed {
    async fn start(tag: &str, trusted: &str, extra: &str) -> Bed {
        let setup = Setup::new(tag);
        write_dbs(&setup.dir);
        let main = RecordingOrigin::start(OriginMode::Normal).await;
        let us = RecordingOrigin::start(OriginMode::Normal).await;
        let sa = RecordingOrigin::start(OriginMode::Normal).await;
        let text = config(&setup, [main.addr, us.addr, sa.addr], trusted, extra);
        let edge = Edge::start(&setup.dir, &text);
        Bed {
            main,
            us,
            sa,
            edge,
            setup,
        }
    }

    async fn get(&self, proto: Proto, path: &str, headers: &[(&str, &str)]) -> Reply {
        let target = match proto {
            Proto::Plain => self.setup.target(self.edge.http(), "localhost"),
            _ => self.setup.target(self.edge.https(), "localhost"),
        };
        let mut conn = Conn::connect(proto, &target).await.expect("connect");
        conn.send(Method::GET, path, headers, Bytes::new())
            .await
            .expect("GET")
    }
}

/// The header lines the origin reflected in its body.
fn reflected(reply: &Reply, name: &str) -> Option<String> {
    let text = reply.text();
    let prefix = format!("{name}: ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geo_headers_follow_the_trusted_client_address_and_never_the_clients_own() {
    let bed = Bed::start("geo-headers", "\"127.0.0.1\"", "").await;
    for proto in [Proto::Plain, Proto::H1, Proto::H2, Proto::H3] {
        // The peer itself (127.0.0.1, trusted but forwarding nothing): Germany.
        let r = bed
            .get(
                proto,
                &format!("/private/{proto:?}-self"),
                &[("x-edge-country", "FR")],
            )
            .await;
        assert_eq!(r.status, 200, "{proto:?}: {}", r.text());
        assert_eq!(
            reflected(&r, "x-edge-country").as_deref(),
            Some("DE"),
            "{proto:?}: {}",
            r.text()
        );
        assert_eq!(
            reflected(&r, "x-edge-continent").as_deref(),
            Some("EU"),
            "{proto:?}"
        );
        assert_eq!(reflected(&r, "x-edge-asn"), None, "no ASN known for 127/8");
        // A visitor behind our trusted hop: the rightmost untrusted address of the list.
        let r = bed
            .get(
                proto,
                &format!("/private/{proto:?}-fwd"),
                &[
                    ("x-forwarded-for", "198.51.100.1, 192.0.2.7"),
                    ("x-edge-country", "FR"),
                    ("x-edge-continent", "OC"),
                ],
            )
            .await;
        assert_eq!(
            reflected(&r, "x-edge-country").as_deref(),
            Some("BY"),
            "{}",
            r.text()
        );
        assert_eq!(reflected(&r, "x-edge-continent").as_deref(), Some("EU"));
        assert_eq!(
            reflected(&r, "x-forwarded-for").as_deref(),
            Some("198.51.100.1, 192.0.2.7, 127.0.0.1"),
            "appended to, as it came"
        );
        // Unknown addresses are XX; the ASN database fills in the ASN.
        let r = bed
            .get(
                proto,
                &format!("/private/{proto:?}-xx"),
                &[("x-forwarded-for", "100.64.0.1")],
            )
            .await;
        assert_eq!(reflected(&r, "x-edge-country").as_deref(), Some("XX"));
        let r = bed
            .get(
                proto,
                &format!("/private/{proto:?}-asn"),
                &[("x-forwarded-for", "203.0.113.9")],
            )
            .await;
        assert_eq!(
            reflected(&r, "x-edge-asn").as_deref(),
            Some("64500"),
            "{}",
            r.text()
        );
    }
    // The access log names the visitor and its country.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = bed.edge.log();
        if log.contains("\"client\":\"192.0.2.7\"") && log.contains("\"country\":\"BY\"") {
            break;
        }
        assert!(Instant::now() < deadline, "no logged visitor:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        bed.edge
            .metric("edge_geo_requests_total{country=\"DE\"}")
            .await
            >= 4
    );
    assert!(
        bed.edge
            .metric("edge_geo_requests_total{country=\"other\"}")
            .await
            >= 4,
        "BY is not in the default list"
    );
    assert!(
        bed.edge
            .metric("edge_geo_requests_total{country=\"XX\"}")
            .await
            >= 4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peers_forwarding_headers_are_not_believed() {
    // No trusted peers: 127.0.0.1 is a visitor like any other.
    let bed = Bed::start(
        "geo-untrusted",
        "",
        "\n[sites.geo]\ncountry_header = \"CF-IPCountry\"\n",
    )
    .await;
    let r = bed
        .get(
            Proto::H2,
            "/private/untrusted",
            &[("x-forwarded-for", "203.0.113.9"), ("cf-ipcountry", "US")],
        )
        .await;
    assert_eq!(
        reflected(&r, "cf-ipcountry").as_deref(),
        Some("DE"),
        "{}",
        r.text()
    );
    assert_eq!(reflected(&r, "x-edge-country"), None, "renamed");
    // Nor does it steer: the US pool is for US visitors.
    assert!(bed.us.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steering_sends_each_country_to_its_pool() {
    let bed = Bed::start("geo-steer", "\"127.0.0.1\"", "").await;
    let cases = [
        ("203.0.113.5", &bed.us),
        ("198.51.100.5", &bed.sa),
        ("192.0.2.5", &bed.main),
        ("100.64.0.1", &bed.main),
    ];
    for (i, (visitor, origin)) in cases.iter().enumerate() {
        let path = format!("/private/steer-{i}");
        let r = bed
            .get(Proto::H1, &path, &[("x-forwarded-for", visitor)])
            .await;
        assert_eq!(r.status, 200);
        assert!(
            origin.requests().iter().any(|r| r.target == path),
            "{visitor} should reach its pool"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_rules_deny_allow_and_report_before_the_cache() {
    let rules = "\n[sites.geo]\ndenied_body = \"Not available in your country\\n\"\n\n\
        [[sites.access]]\ndeny = [\"country:US\", \"192.0.2.0/25\"]\n\n\
        [[sites.access]]\npath_prefix = \"/eu/\"\nallow = [\"continent:EU\"]\n\n\
        [[sites.access]]\npath_prefix = \"/beta/\"\ndeny = [\"country:BR\"]\nreport_only = true\n";
    let bed = Bed::start("geo-acl", "\"127.0.0.1\"", rules).await;
    // Cached first by an allowed visitor: a denied one must not read it.
    let r = bed.get(Proto::H1, "/cached", &[]).await;
    assert_eq!(r.status, 200);
    for proto in TLS_PROTOS {
        let us = [("x-forwarded-for", "203.0.113.5")];
        let r = bed.get(proto, "/cached", &us).await;
        assert_eq!(r.status, 403, "{proto:?}");
        assert_eq!(r.text(), "Not available in your country\n");
        let r = bed
            .get(proto, "/cached", &[("x-forwarded-for", "192.0.2.1")])
            .await;
        assert_eq!(r.status, 403, "{proto:?}: the range is denied");
        let r = bed
            .get(proto, "/cached", &[("x-forwarded-for", "192.0.2.200")])
            .await;
        assert_eq!(r.status, 200, "{proto:?}: outside the /25");
        // /eu/ lets only Europe in; its rule decides alone for its paths.
        let r = bed
            .get(proto, "/eu/x", &[("x-forwarded-for", "198.51.100.5")])
            .await;
        assert_eq!(r.status, 403, "{proto:?}");
        let r = bed
            .get(proto, "/eu/x", &[("x-forwarded-for", "192.0.2.200")])
            .await;
        assert_eq!(r.status, 200, "{proto:?}: Belarus is in Europe");
        let r = bed
            .get(proto, "/eu/x", &[("x-forwarded-for", "100.64.0.1")])
            .await;
        assert_eq!(r.status, 403, "{proto:?}: unknown is not Europe");
        // Report only: served, counted.
        let r = bed
            .get(proto, "/beta/x", &[("x-forwarded-for", "198.51.100.5")])
            .await;
        assert_eq!(r.status, 200, "{proto:?}");
    }
    assert_eq!(
        bed.main
            .requests()
            .iter()
            .filter(|r| r.target == "/cached")
            .count(),
        1,
        "one fill; the allowed visitors after it were hits"
    );
    let site = "site=\"geo\"";
    assert_eq!(
        bed.edge
            .metric(&format!(
                "edge_access_decisions_total{{{site},result=\"denied\"}}"
            ))
            .await,
        12
    );
    assert_eq!(
        bed.edge
            .metric(&format!(
                "edge_access_decisions_total{{{site},result=\"reported\"}}"
            ))
            .await,
        3
    );
    assert!(
        bed.edge
            .log()
            .contains("access rule would deny (report only)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_by_country_keeps_a_copy_per_country_and_one_url_purge_takes_them_all() {
    let bed = Bed::start(
        "geo-cache",
        "\"127.0.0.1\"",
        "\n[sites.geo]\ncache_by_country = true\n",
    )
    .await;
    let de: [(&str, &str); 0] = [];
    let by = [("x-forwarded-for", "192.0.2.9")];
    let fetch = async |h: &[(&str, &str)]| {
        let r = bed.get(Proto::H2, "/geo-page", h).await;
        assert_eq!(r.status, 200);
        (
            reflected(&r, "x-edge-country"),
            r.header("cache-status").unwrap_or("").to_string(),
        )
    };
    let (c, _) = fetch(&de).await;
    assert_eq!(c.as_deref(), Some("DE"));
    let (c, _) = fetch(&by).await;
    assert_eq!(
        c.as_deref(),
        Some("BY"),
        "Belarus got its own copy, not Germany's"
    );
    let (c, status) = fetch(&de).await;
    assert_eq!(c.as_deref(), Some("DE"));
    assert!(status.contains("hit"), "{status}");
    let (c, status) = fetch(&by).await;
    assert_eq!(c.as_deref(), Some("BY"));
    assert!(status.contains("hit"), "{status}");
    let fills = || {
        bed.main
            .requests()
            .iter()
            .filter(|r| r.target == "/geo-page")
            .count()
    };
    assert_eq!(fills(), 2);
    // One URL purge removes both countries' copies.
    let admin = bed.edge.admin.expect("admin listener");
    let reply = admin::purge(
        admin,
        SECRET,
        &serde_json::json!({"urls": ["https://localhost/geo-page"]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    fetch(&de).await;
    fetch(&by).await;
    assert_eq!(fills(), 4, "both refetched after the purge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_database_answers_without_a_restart_and_a_corrupt_one_changes_nothing() {
    let bed = Bed::start("geo-reload", "\"127.0.0.1\"", "").await;
    let country = async |path: &str| {
        let r = bed.get(Proto::H1, path, &[]).await;
        reflected(&r, "x-edge-country")
    };
    assert_eq!(country("/private/r0").await.as_deref(), Some("DE"));
    let db = bed.setup.dir.join("country.mmdb");
    let replace = |bytes: &[u8]| {
        let tmp = db.with_extension("new");
        std::fs::write(&tmp, bytes).expect("write");
        std::fs::rename(&tmp, &db).expect("rename");
    };
    replace(&test_db("AT"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        n += 1;
        if country(&format!("/private/r1-{n}")).await.as_deref() == Some("AT") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new database never answered:\n{}",
            bed.edge.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Corrupt: logged, counted, and the last good copy keeps answering.
    replace(b"this is not a MaxMind database");
    let deadline = Instant::now() + Duration::from_secs(10);
    while bed
        .edge
        .metric("edge_geo_database_reloads_total{result=\"failed\"}")
        .await
        < 1
    {
        assert!(
            Instant::now() < deadline,
            "the corrupt file was never tried:\n{}",
            bed.edge.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(country("/private/r2").await.as_deref(), Some("AT"));
    assert!(
        bed.edge.log().contains("the previous copy keeps answering"),
        "{}",
        bed.edge.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_dbip_database_places_real_addresses() {
    let setup = Setup::new("geo-real");
    let db = edge_e2e::geoip_database();
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let text = format!(
        "[node]\nname = \"real\"\ntrusted_peers = [\"127.0.0.1\"]\n[listen]\nhttp = [\"127.0.0.1:0\"]\n\
         [geo]\ndatabases = [\"{}\"]\n[pools.o]\nendpoints = [\"{}\"]\n\
         [[sites]]\nname = \"s\"\nhosts = [\"localhost\"]\nplain_http = \"proxy\"\nroutes = [{{ path_prefix = \"/\", pool = \"o\" }}]\n",
        db.display(),
        origin.addr
    );
    let edge = Edge::start(&setup.dir, &text);
    let target = setup.target(edge.http(), "localhost");
    let mut conn = Conn::connect(Proto::Plain, &target).await.expect("connect");
    for (visitor, country, continent) in [
        ("8.8.8.8", "US", "NA"),
        ("193.0.6.139", "NL", "EU"),
        ("2001:67c:2e8:22::c100:68b", "NL", "EU"),
        ("202.12.27.33", "JP", "AS"),
        ("10.1.2.3", "XX", "XX"),
    ] {
        let r = conn
            .send(
                Method::GET,
                &format!("/private/{visitor}"),
                &[("x-forwarded-for", visitor)],
                Bytes::new(),
            )
            .await
            .expect("GET");
        assert_eq!(
            reflected(&r, "x-edge-country").as_deref(),
            Some(country),
            "{visitor}"
        );
        assert_eq!(
            reflected(&r, "x-edge-continent").as_deref(),
            Some(continent),
            "{visitor}"
        );
    }
}

/// Sends `prefix` then a GET over plain TCP from `from` (a loopback source address);
/// returns the raw response, empty when the edge closed without one.
async fn raw_get(edge: SocketAddr, from: &str, prefix: &[u8], path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind the source");
    let mut s = sock.connect(edge).await.expect("connect");
    let mut req = prefix.to_vec();
    req.extend_from_slice(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    if s.write_all(&req).await.is_err() {
        return String::new();
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn v2_header(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, local: bool) -> Vec<u8> {
    let mut h = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
    h.push(if local { 0x20 } else { 0x21 });
    h.push(0x11);
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_protocol_from_a_configured_source_sets_the_client_and_is_refused_from_others() {
    let setup = Setup::new("geo-proxy");
    write_dbs(&setup.dir);
    let main = RecordingOrigin::start(OriginMode::Normal).await;
    let us = RecordingOrigin::start(OriginMode::Normal).await;
    let sa = RecordingOrigin::start(OriginMode::Normal).await;
    let text = config(&setup, [main.addr, us.addr, sa.addr], "", "").replace(
        "admin = [\"127.0.0.1:0\"]",
        "admin = [\"127.0.0.1:0\"]\nproxy_protocol = [\"127.0.0.1\"]",
    );
    let edge = Edge::start(&setup.dir, &text);
    let http = edge.http();
    let origin_saw = |path: &str| {
        let all = main
            .requests()
            .into_iter()
            .chain(us.requests())
            .chain(sa.requests());
        all.into_iter().find(|r| r.target == path)
    };

    // v1 from the balancer (127.0.0.1): the visitor is 203.0.113.5, a US address.
    let r = raw_get(
        http,
        "127.0.0.1",
        b"PROXY TCP4 203.0.113.5 127.0.0.1 40000 80\r\n",
        "/private/v1",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let got = origin_saw("/private/v1").expect("reached an origin");
    assert_eq!(got.header("x-forwarded-for"), Some("203.0.113.5"));
    assert_eq!(got.header("x-edge-country"), Some("US"));
    assert!(
        us.requests().iter().any(|r| r.target == "/private/v1"),
        "steered as a US visitor"
    );
    // v2, IPv4: Brazil.
    let r = raw_get(
        http,
        "127.0.0.1",
        &v2_header([198, 51, 100, 7], [127, 0, 0, 1], 40001, 80, false),
        "/private/v2",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let got = origin_saw("/private/v2").expect("reached an origin");
    assert_eq!(got.header("x-forwarded-for"), Some("198.51.100.7"));
    assert_eq!(got.header("x-edge-country"), Some("BR"));
    // v2 LOCAL (the balancer's own health check): the peer stays the client.
    let r = raw_get(
        http,
        "127.0.0.1",
        &v2_header([0; 4], [0; 4], 0, 0, true),
        "/private/local",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(
        origin_saw("/private/local")
            .expect("reached")
            .header("x-forwarded-for"),
        Some("127.0.0.1")
    );
    // The balancer must send one: without it the connection is refused.
    let r = raw_get(http, "127.0.0.1", b"", "/private/none").await;
    assert!(r.is_empty(), "{r}");
    // Anyone else (127.0.0.2) may not send one...
    let r = raw_get(
        http,
        "127.0.0.2",
        b"PROXY TCP4 203.0.113.5 127.0.0.1 40000 80\r\n",
        "/private/spoof",
    )
    .await;
    assert!(r.is_empty(), "{r}");
    assert!(origin_saw("/private/spoof").is_none());
    // ...and is served as itself without one (PUT-like prefixes are not mistaken for one).
    let r = raw_get(http, "127.0.0.2", b"", "/private/direct").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(
        origin_saw("/private/direct")
            .expect("reached")
            .header("x-forwarded-for"),
        Some("127.0.0.2")
    );
    // And on the TLS listener: the header, then the handshake.
    let https = edge.https();
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let mut tcp = sock.connect(https).await.expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(b"PROXY TCP4 192.0.2.44 127.0.0.1 40002 443\r\n")
        .await
        .expect("header");
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(setup.ca.roots())
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector
        .connect(name, tcp)
        .await
        .expect("TLS after the header");
    tls.write_all(b"GET /private/tls HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    let got = origin_saw("/private/tls").expect("reached");
    assert_eq!(got.header("x-forwarded-for"), Some("192.0.2.44"));
    assert_eq!(got.header("x-edge-country"), Some("BY"));
    assert_eq!(
        edge.metric("edge_proxy_protocol_refused_total{reason=\"missing\"}")
            .await,
        1
    );
    assert_eq!(
        edge.metric("edge_proxy_protocol_refused_total{reason=\"unexpected\"}")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_varying_on_the_country_header_is_keyed_by_ours_not_the_clients() {
    let setup = Setup::new("geo-vary");
    write_dbs(&setup.dir);
    let origin = edge_e2e::origin::Origin::start().await;
    let unused: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let edge = Edge::start(
        &setup.dir,
        &config(&setup, [origin.addr, unused, unused], "\"127.0.0.1\"", ""),
    );
    let target = setup.target(edge.http(), "localhost");
    let path = "/c/vary-geo?cc=max-age=60&vary=x-edge-country&echo=headers";
    let get = async |headers: &[(&str, &str)]| {
        let mut conn = Conn::connect(Proto::Plain, &target).await.expect("connect");
        let r = conn
            .send(Method::GET, path, headers, Bytes::new())
            .await
            .expect("GET");
        assert_eq!(r.status, 200);
        (r.text(), r.header("cache-status").unwrap_or("").to_string())
    };
    // A German visitor claiming Belarus: the origin sees DE, and the copy is Germany's.
    let (body, _) = get(&[("x-edge-country", "BY")]).await;
    assert!(body.contains("x-edge-country: DE"), "{body}");
    // A real Belarusian visitor must not be served that copy.
    let (body, status) = get(&[("x-forwarded-for", "192.0.2.9")]).await;
    assert!(body.contains("x-edge-country: BY"), "{status}\n{body}");
    // And a German visitor, claiming anything, gets Germany's copy from the cache.
    let (body, status) = get(&[("x-edge-country", "FR")]).await;
    assert!(body.contains("x-edge-country: DE"), "{body}");
    assert!(status.contains("hit"), "{status}");
    assert_eq!(origin.hits("/c/vary-geo"), 2);
}
