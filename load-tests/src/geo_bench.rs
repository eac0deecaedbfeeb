//! GeoIP lookups per second on this machine: the database alone (a tree walk and a record
//! decode per lookup), and through the edge's per-address cache with a realistic share of
//! repeat visitors. Single-threaded; one number per case, medians of `rounds`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Instant;

use crate::LoadError;

/// xorshift: reproducible addresses without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn per_second(n: usize, f: impl Fn(IpAddr) -> geo::Geo, addrs: &[IpAddr]) -> f64 {
    let start = Instant::now();
    let mut known = 0usize;
    for i in 0..n {
        if f(addrs[i % addrs.len()]).country.is_some() {
            known += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(known);
    n as f64 / secs
}

pub fn run(db: &Path, lookups: usize, rounds: usize) -> Result<(), LoadError> {
    let bytes = std::fs::read(db).map_err(|source| LoadError::Io {
        context: format!("reading {}", db.display()),
        source,
    })?;
    let database = geo::Database::from_bytes(bytes).map_err(|e| LoadError::Io {
        context: format!("{}", db.display()),
        source: std::io::Error::other(e.to_string()),
    })?;
    let service = geo::GeoIp::default();
    let refreshed = service.refresh(&[db.to_path_buf()]);
    if let Some(e) = refreshed.failed.first() {
        return Err(LoadError::Io {
            context: db.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        });
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    // Every lookup a new address (the worst case for the cache).
    let random: Vec<IpAddr> = (0..1 << 20)
        .map(|_| IpAddr::V4(Ipv4Addr::from(next(&mut state) as u32)))
        .collect();
    // 1,000 visitors making all the requests (a busy site's repeat traffic).
    let repeat: Vec<IpAddr> = (0..1_000)
        .map(|_| IpAddr::V4(Ipv4Addr::from(next(&mut state) as u32)))
        .collect();
    let cases: [(&str, &[IpAddr], bool); 3] = [
        ("database, random addresses", &random, false),
        ("edge cache, random addresses", &random, true),
        ("edge cache, 1,000 repeat visitors", &repeat, true),
    ];
    println!("| case | lookups/s (median of {rounds}) | ns/lookup |");
    println!("| --- | ---: | ---: |");
    for (name, addrs, cached) in cases {
        let mut runs: Vec<f64> = (0..rounds)
            .map(|_| {
                if cached {
                    per_second(lookups, |ip| service.lookup(ip), addrs)
                } else {
                    per_second(lookups, |ip| database.lookup(ip), addrs)
                }
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        let median = runs[runs.len() / 2];
        println!("| {name} | {median:.0} | {:.0} |", 1e9 / median);
    }
    Ok(())
}

/// Writes a country database (DB-IP layout, `country_code`) mapping `NET/LEN=CC` entries.
pub fn write_db(out: &Path, entries: &[String]) -> Result<(), LoadError> {
    let bad = |e: &str| LoadError::Usage(format!("geo-db: {e:?} is not NET/LEN=CC"));
    let mut w = geo::writer::Writer::new("Edge-Bench-Country");
    for e in entries {
        let (net, cc) = e.split_once('=').ok_or_else(|| bad(e))?;
        let (ip, len) = net.split_once('/').ok_or_else(|| bad(e))?;
        let ip: IpAddr = ip.parse().map_err(|_| bad(e))?;
        let len: u8 = len.parse().map_err(|_| bad(e))?;
        w.insert(ip, len, geo::writer::Value::country_code(cc));
    }
    std::fs::write(out, w.to_bytes()).map_err(|source| LoadError::Io {
        context: format!("writing {}", out.display()),
        source,
    })
}
