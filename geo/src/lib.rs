#![forbid(unsafe_code)]
//! Geo: what MaxMind-format databases say about a client address (country, continent, ASN),
//! held in memory and replaced when their files are replaced, behind a small bounded
//! per-address cache; and the geo rules sites configure (access lists, steering).
//!
//! No I/O happens on the request path: [`GeoIp::lookup`] reads the in-memory databases;
//! [`GeoIp::refresh`] reads files and is called off the request threads.

pub mod continents;
mod db;
mod lookup;
pub mod rules;
pub mod writer;

pub use db::Database;
pub use lookup::{GeoIp, Refreshed};

/// A two-letter code (ISO 3166-1 country, or continent), upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(pub [u8; 2]);

impl Code {
    fn two_letters(s: &str) -> Option<Code> {
        let b = s.as_bytes();
        (b.len() == 2 && b.iter().all(u8::is_ascii_alphabetic))
            .then(|| Code([b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()]))
    }

    /// A country code; `ZZ`/`XX` (unknown in some databases) are none.
    pub fn country(s: &str) -> Option<Code> {
        Code::two_letters(s).filter(|c| !matches!(&c.0, b"ZZ" | b"XX"))
    }

    /// A continent code: AF, AN, AS, EU, NA, OC, SA.
    pub fn continent(s: &str) -> Option<Code> {
        Code::two_letters(s)
            .filter(|c| matches!(&c.0, b"AF" | b"AN" | b"AS" | b"EU" | b"NA" | b"OC" | b"SA"))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("XX")
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is known of an address. Empty when no database covers it (private and loopback
/// ranges, unless a database maps them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Geo {
    pub country: Option<Code>,
    pub continent: Option<Code>,
    pub asn: Option<u32>,
}

impl Geo {
    /// Fills what `self` lacks from `other` (the first database that knows a field wins).
    pub fn or(self, other: Geo) -> Geo {
        Geo {
            country: self.country.or(other.country),
            continent: self.continent.or(other.continent),
            asn: self.asn.or(other.asn),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("not a MaxMind DB file: {0}")]
    Format(maxminddb::MaxMindDbError),
    #[error("{path}: {source}")]
    In {
        path: std::path::PathBuf,
        source: Box<GeoError>,
    },
}

impl GeoError {
    /// Reading again later may succeed (the file may be mid-copy or briefly absent).
    pub fn retry_safe(&self) -> bool {
        true
    }
}

/// Where `scripts/fetch-geoip.sh` puts DB-IP's Country Lite database (its pinned version read
/// from the script, so there is one place to change it): `$EDGE_GEOIP_DIR/VERSION/` or
/// `.cache/geoip/VERSION/` in the workspace. For tests and benchmarks; it may not exist.
pub fn fetched_dbip_database() -> std::path::PathBuf {
    let script = include_str!("../../scripts/fetch-geoip.sh");
    let version = script
        .lines()
        .find_map(|l| l.strip_prefix("VERSION="))
        .unwrap_or("unknown");
    let base = std::env::var_os("EDGE_GEOIP_DIR").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/geoip"),
        std::path::PathBuf::from,
    );
    base.join(version).join("dbip-country.mmdb")
}

#[cfg(test)]
mod tests;
