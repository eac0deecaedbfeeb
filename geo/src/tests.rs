#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::path::PathBuf;

use crate::writer::{Value, Writer};
use crate::{Code, Database, Geo, GeoIp};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn code(s: &str) -> Option<Code> {
    Some(Code(s.as_bytes().try_into().unwrap()))
}

fn geo(country: &str, continent: &str, asn: Option<u32>) -> Geo {
    Geo {
        country: code(country),
        continent: code(continent),
        asn,
    }
}

fn dbip() -> Vec<u8> {
    Writer::new("DBIP-Country-Lite")
        .insert(ip("127.0.0.0"), 8, Value::country_code("DE"))
        .insert(ip("127.0.0.2"), 32, Value::country_code("US"))
        .insert(ip("127.0.0.3"), 32, Value::country_code("ZZ"))
        .insert(ip("2001:db8::"), 32, Value::country_code("jp"))
        .to_bytes()
}

#[test]
fn each_layout_decodes() {
    let db = Database::from_bytes(dbip()).unwrap();
    assert_eq!(db.database_type(), "DBIP-Country-Lite");
    let geoip2 = Database::from_bytes(
        Writer::new("GeoLite2-Country")
            .insert(ip("10.0.0.0"), 8, Value::geoip2_country("FR", "EU"))
            .to_bytes(),
    )
    .unwrap();
    let asn = Database::from_bytes(
        Writer::new("GeoLite2-ASN")
            .insert(ip("127.0.0.0"), 16, Value::asn(64_512, "Test Net"))
            .to_bytes(),
    )
    .unwrap();
    let cases: [(&Database, &str, Geo); 10] = [
        // The country layout has no continent: it comes from the table.
        (&db, "127.0.0.1", geo("DE", "EU", None)),
        (&db, "127.9.9.9", geo("DE", "EU", None)),
        (&db, "127.0.0.2", geo("US", "NA", None)),
        // `ZZ` is the database's unknown.
        (&db, "127.0.0.3", Geo::default()),
        (&db, "::ffff:127.0.0.2", geo("US", "NA", None)),
        (&db, "2001:db8::1", geo("JP", "AS", None)),
        (&db, "192.0.2.1", Geo::default()),
        (&geoip2, "10.1.2.3", geo("FR", "EU", None)),
        (
            &asn,
            "127.0.5.5",
            Geo {
                asn: Some(64_512),
                ..Geo::default()
            },
        ),
        (&asn, "127.1.0.1", Geo::default()),
    ];
    for (db, addr, want) in cases {
        assert_eq!(db.lookup(ip(addr)), want, "{addr} in {db:?}");
    }
}

#[test]
fn garbage_is_refused() {
    for bytes in [
        Vec::new(),
        b"not a database".to_vec(),
        dbip()[..100].to_vec(),
        // Metadata intact, tree and data cut away.
        {
            let full = dbip();
            full[full.len() - 300..].to_vec()
        },
    ] {
        assert!(Database::from_bytes(bytes).is_err());
    }
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edge-geo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Replaces `path` the way a database update should: write beside it, rename over it.
fn replace(path: &std::path::Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn several_databases_merge_and_reload_when_replaced() {
    let dir = temp("reload");
    let country = dir.join("country.mmdb");
    let asn = dir.join("asn.mmdb");
    std::fs::write(&country, dbip()).unwrap();
    std::fs::write(
        &asn,
        Writer::new("ASN")
            .insert(ip("127.0.0.0"), 8, Value::asn(64_500, "A"))
            .to_bytes(),
    )
    .unwrap();
    let paths = [country.clone(), asn.clone()];
    let g = GeoIp::default();
    assert_eq!(g.lookup(ip("127.0.0.1")), Geo::default(), "nothing loaded");
    let r = g.refresh(&paths);
    assert_eq!(r.loaded.len(), 2);
    assert!(r.failed.is_empty());
    assert_eq!(g.lookup(ip("127.0.0.1")), geo("DE", "EU", Some(64_500)));
    // Cached: the second lookup of an address is a hit.
    let hits = g.cache_hits.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(g.lookup(ip("127.0.0.1")), geo("DE", "EU", Some(64_500)));
    assert_eq!(
        g.cache_hits.load(std::sync::atomic::Ordering::Relaxed),
        hits + 1
    );

    // A replacement is read once it looked the same on two refreshes.
    replace(
        &country,
        &Writer::new("DBIP-Country-Lite")
            .insert(ip("127.0.0.0"), 8, Value::country_code("BR"))
            .to_bytes(),
    );
    assert!(
        g.refresh(&paths).loaded.is_empty(),
        "not yet: it may still be settling"
    );
    assert_eq!(g.lookup(ip("127.0.0.1")).country, code("DE"));
    assert_eq!(g.refresh(&paths).loaded, std::slice::from_ref(&country));
    assert_eq!(
        g.lookup(ip("127.0.0.1")),
        geo("BR", "SA", Some(64_500)),
        "the cache is per generation"
    );

    // A corrupt replacement keeps the old answers, and is reported once, not every time.
    replace(&country, b"corrupt");
    g.refresh(&paths);
    let r = g.refresh(&paths);
    assert_eq!(r.failed.len(), 1, "{:?}", r.failed);
    assert!(
        r.failed[0].to_string().contains("country.mmdb"),
        "{}",
        r.failed[0]
    );
    assert!(g.refresh(&paths).failed.is_empty());
    assert_eq!(g.lookup(ip("127.0.0.1")).country, code("BR"));
    // Fixed again: picked up.
    replace(&country, &dbip());
    g.refresh(&paths);
    assert_eq!(g.refresh(&paths).loaded, std::slice::from_ref(&country));
    assert_eq!(g.lookup(ip("127.0.0.2")).country, code("US"));

    // A path dropped from config is unloaded; a missing file is an error.
    g.refresh(std::slice::from_ref(&asn));
    assert_eq!(
        g.lookup(ip("127.0.0.2")),
        Geo {
            asn: Some(64_500),
            ..Geo::default()
        }
    );
    let missing = g.refresh(&[dir.join("nope.mmdb")]);
    assert_eq!(missing.failed.len(), 1);
    assert!(!g.is_enabled());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The fetched DB-IP database, or a failure naming the command that fetches it.
pub(crate) fn real_database() -> PathBuf {
    let path = crate::fetched_dbip_database();
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-geoip.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

#[test]
fn the_real_dbip_database_knows_stable_addresses() {
    let path = real_database();
    let db = Database::from_bytes(std::fs::read(&path).unwrap()).unwrap();
    // Addresses whose country has not moved in years: Google's resolver, RIPE NCC
    // (Amsterdam, IPv4 and IPv6), APNIC's M root in Tokyo (WIDE), WIDE's IPv6 in Japan.
    let cases = [
        ("8.8.8.8", "US", "NA"),
        ("193.0.6.139", "NL", "EU"),
        ("2001:67c:2e8:22::c100:68b", "NL", "EU"),
        ("202.12.27.33", "JP", "AS"),
        ("2001:dc3::35", "JP", "AS"),
    ];
    for (addr, country, continent) in cases {
        let g = db.lookup(ip(addr));
        assert_eq!(g.country, code(country), "{addr}: {g:?}");
        assert_eq!(g.continent, code(continent), "{addr}: {g:?}");
    }
    // Private and loopback ranges are in no database.
    for addr in ["127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "fd00::1"] {
        assert_eq!(db.lookup(ip(addr)), Geo::default(), "{addr}");
    }
}
