//! `[dns]` and `[sites.dns]` (GeoDNS): what a valid file compiles into, the defaults, and where
//! each mistake is reported.

use super::*;

use std::net::IpAddr;

/// A valid `[dns]` with nothing but what is required: two POPs, one name server in the zone.
const DNS: &str = r#"[dns]
zone = "cdn.example.net"
nameservers = [{ name = "ns1.cdn.example.net", addresses = ["192.0.2.53"] }]

[[dns.pops]]
name = "fra"
location = [50.11, 8.68]
addresses = ["192.0.2.10"]

[[dns.pops]]
name = "nyc"
location = [40.71, -74.01]
addresses = ["192.0.2.20"]
"#;

/// A site, for `[sites.dns]` to follow (a `[dns]` after it starts a new table).
const SITE: &str = r#"[pools.p]
endpoints = ["127.0.0.1:2"]

[[sites]]
name = "shop"
hosts = ["shop.example.com"]
routes = [{ pool = "p" }]
"#;

const LISTEN: &str = "[listen]\nhttp = [\"127.0.0.1:1\"]\n";

/// Where an error case expects its diagnostic: right before this mark, which is removed.
const MARK: char = '^';

/// `base` with `from` (which must be there) replaced by `to`.
fn edit(base: &str, from: &str, to: &str) -> String {
    assert!(base.contains(from), "{from:?} is not in the base text");
    base.replacen(from, to, 1)
}

/// `text` without its marks, and the 1-based line and column of each mark, in order.
fn marks(text: &str) -> (String, Vec<(usize, usize)>) {
    let mut out = String::with_capacity(text.len());
    let mut at = Vec::new();
    let (mut line, mut col) = (1, 1);
    for c in text.chars() {
        match c {
            MARK => at.push((line, col)),
            '\n' => {
                out.push(c);
                (line, col) = (line + 1, 1);
            }
            _ => {
                out.push(c);
                col += c.len_utf8();
            }
        }
    }
    (out, at)
}

/// `text` without its one mark, and where the mark was.
fn unmark(text: &str) -> (String, (usize, usize)) {
    let (out, at) = marks(text);
    assert_eq!(at.len(), 1, "one mark in {text}");
    (out, at[0])
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("IP address")
}

#[test]
fn a_full_dns_section_compiles_into_the_snapshot() {
    let dir = temp_dir("geodns-full");
    let text = r#"
[pools.origin]
endpoints = ["127.0.0.1:9"]

[[sites]]
name = "Shop"
hosts = ["shop.example.com", "example.org"]
routes = [{ pool = "origin" }]
dns = { pin = { de = "fra", US = "nyc" }, exclude = ["sin"] }

[[sites]]
name = "my_site"
hosts = ["www.example.com"]
routes = [{ pool = "origin" }]
dns = { label = "Store" }

[dns]
zone = "CDN.Example.NET."
delegated = ["Example.ORG."]
listen = ["127.0.0.1:5353", "[::1]:5353"]
metrics = "127.0.0.1:9153"
ttl = "2m"
answers = 2
hostmaster = "ops.example.net."
ecs_ipv4_prefix = 20
ecs_ipv6_prefix = 48
nameservers = [
  { name = "NS1.cdn.example.net", addresses = ["192.0.2.53", "2001:db8::53"] },
  { name = "ns.provider.example" },
]
probe = { interval = "1s", timeout = "500ms", fall = 3, rise = 4 }
overload = { enter = 1.2, leave = 0.9 }

[[dns.pops]]
name = "fra"
location = [50.11, 8.68]
addresses = ["192.0.2.10", "2001:db8::10"]
probes = ["http://192.0.2.10:8080/readyz", "http://fra.internal/readyz"]
capacity_rps = 50000.0
capacity_cpu = 64.0

[[dns.pops]]
name = "nyc"
location = [40.71, -74.01]
addresses = ["192.0.2.20"]
draining = true

[[dns.pops]]
name = "sin"
location = [-1.35, 103.82]
addresses = ["192.0.2.30"]
"#;
    let snap = compile_in(&dir, text).unwrap_or_else(|e| panic!("valid [dns]: {e}"));
    assert!(snap.listen.https.is_empty() && snap.listen.http.is_empty());
    let dns = snap.dns.as_deref().expect("Snapshot::dns");
    assert_eq!(dns.zone, "cdn.example.net", "lower case, no trailing dot");
    assert_eq!(dns.delegated, vec!["example.org".to_string()]);
    assert_eq!(
        dns.listen,
        vec![
            "127.0.0.1:5353".parse::<SocketAddr>().expect("addr"),
            "[::1]:5353".parse().expect("addr"),
        ]
    );
    assert_eq!(dns.metrics, Some("127.0.0.1:9153".parse().expect("addr")));
    assert_eq!((dns.ttl, dns.answers), (120, 2));
    assert_eq!(dns.hostmaster, "ops.example.net");
    assert_eq!((dns.ecs_ipv4_prefix, dns.ecs_ipv6_prefix), (20, 48));
    let ns: Vec<(&str, &[IpAddr])> = dns
        .nameservers
        .iter()
        .map(|n| (n.name.as_str(), n.addresses.as_slice()))
        .collect();
    assert_eq!(
        ns,
        vec![
            (
                "ns1.cdn.example.net",
                &[ip("192.0.2.53"), ip("2001:db8::53")][..]
            ),
            ("ns.provider.example", &[][..]),
        ],
        "a name server outside the zone needs no glue"
    );
    assert_eq!(
        (
            dns.probe.interval,
            dns.probe.timeout,
            dns.probe.fall,
            dns.probe.rise
        ),
        (Duration::from_secs(1), Duration::from_millis(500), 3, 4)
    );
    assert_eq!((dns.overload_enter, dns.overload_leave), (1.2, 0.9));

    let names: Vec<&str> = dns.pops.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["fra", "nyc", "sin"], "config order");
    let fra = &dns.pops[0];
    assert_eq!((fra.latitude, fra.longitude), (50.11, 8.68));
    assert_eq!(fra.addresses, vec![ip("192.0.2.10"), ip("2001:db8::10")]);
    let probes: Vec<String> = fra.probes.iter().map(|u| u.to_string()).collect();
    assert_eq!(
        probes,
        [
            "http://192.0.2.10:8080/readyz",
            "http://fra.internal/readyz"
        ]
    );
    assert_eq!(
        (fra.capacity_rps, fra.capacity_cpu, fra.draining),
        (Some(50_000.0), Some(64.0), false)
    );
    let nyc = &dns.pops[1];
    assert_eq!((nyc.latitude, nyc.longitude), (40.71, -74.01));
    assert!(nyc.probes.is_empty());
    assert_eq!((nyc.capacity_rps, nyc.capacity_cpu), (None, None));
    assert!(nyc.draining);
    assert_eq!(
        (dns.pops[2].latitude, dns.pops[2].longitude),
        (-1.35, 103.82)
    );

    // The label defaults to the site's name in lower case; pins are upper case.
    let shop = &snap.sites[0].dns;
    assert_eq!(shop.label, "shop");
    let mut pin = shop.pin.clone();
    pin.sort();
    assert_eq!(
        pin,
        vec![(*b"DE", "fra".to_string()), (*b"US", "nyc".to_string())]
    );
    assert_eq!(shop.exclude, vec!["sin".to_string()]);
    // A site name that is no DNS label is fine with a label of its own.
    let store = &snap.sites[1].dns;
    assert_eq!(
        (store.label.as_str(), store.pin.len(), store.exclude.len()),
        ("store", 0, 0)
    );
}

/// A file with only `[dns]` (what `edge dns` may run on): no `[listen]`, no sites.
#[test]
fn a_dns_only_file_compiles_with_the_defaults() {
    let dir = temp_dir("geodns-defaults");
    let snap = compile_in(&dir, DNS).unwrap_or_else(|e| panic!("[dns] alone: {e}"));
    assert!(snap.sites.is_empty());
    assert!(snap.listen.https.is_empty() && snap.listen.http.is_empty());
    let dns = snap.dns.as_deref().expect("Snapshot::dns");
    assert_eq!(dns.zone, "cdn.example.net");
    assert!(dns.delegated.is_empty() && dns.listen.is_empty() && dns.metrics.is_none());
    assert_eq!((dns.ttl, dns.answers), (30, 1));
    assert_eq!(dns.hostmaster, "hostmaster.cdn.example.net");
    assert_eq!((dns.ecs_ipv4_prefix, dns.ecs_ipv6_prefix), (24, 56));
    assert_eq!((dns.overload_enter, dns.overload_leave), (1.0, 0.8));
    assert_eq!(
        (
            dns.probe.interval,
            dns.probe.timeout,
            dns.probe.fall,
            dns.probe.rise
        ),
        (Duration::from_secs(5), Duration::from_secs(2), 2, 2)
    );
    assert_eq!(dns.nameservers.len(), 1);
    assert_eq!(dns.nameservers[0].addresses, vec![ip("192.0.2.53")]);
    let pops: Vec<(&str, f64, f64, &[IpAddr])> = dns
        .pops
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.latitude,
                p.longitude,
                p.addresses.as_slice(),
            )
        })
        .collect();
    assert_eq!(
        pops,
        vec![
            ("fra", 50.11, 8.68, &[ip("192.0.2.10")][..]),
            ("nyc", 40.71, -74.01, &[ip("192.0.2.20")][..]),
        ]
    );
    assert!(dns.pops.iter().all(|p| p.probes.is_empty()
        && p.capacity_rps.is_none()
        && p.capacity_cpu.is_none()
        && !p.draining));

    // Only `[dns]` lets a file go without a listener.
    let err = compile_in(&dir, SITE).expect_err("no [listen], no [dns]");
    assert!(
        err.diagnostics()
            .iter()
            .any(|d| d.reason.contains("listen: at least one")),
        "{err}"
    );
    // Without `[dns]` the snapshot has none, and site names need not be DNS labels.
    let text = format!("{LISTEN}{}", edit(SITE, "\"shop\"", "\"my_site\""));
    let snap = compile_in(&dir, &text).unwrap_or_else(|e| panic!("no [dns]: {e}"));
    assert!(snap.dns.is_none());
}

mod errors;
