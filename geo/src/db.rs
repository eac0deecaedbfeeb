//! One MaxMind-format database, read into memory (not memory-mapped: `open_mmap` is `unsafe`
//! and we forbid unsafe code), and what it says about an address in any of the layouts we
//! read: GeoIP2/GeoLite2 Country and City (`country.iso_code`, `continent.code`), the DB-IP /
//! ip-location-db country layout (`country_code`, no continent: taken from our table), and
//! the ASN layouts (`autonomous_system_number`).

use std::net::IpAddr;

use serde::Deserialize;

use crate::{Code, Geo, GeoError};

/// A database and its metadata.
pub struct Database {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("type", &self.reader.metadata().database_type)
            .finish()
    }
}

#[derive(Deserialize, Default)]
struct Named<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct Continent<'a> {
    #[serde(borrow)]
    code: Option<&'a str>,
}

/// Every field any supported layout has; unknown fields are skipped.
#[derive(Deserialize, Default)]
struct Record<'a> {
    #[serde(borrow)]
    country: Option<Named<'a>>,
    #[serde(borrow)]
    registered_country: Option<Named<'a>>,
    #[serde(borrow)]
    continent: Option<Continent<'a>>,
    #[serde(borrow)]
    country_code: Option<&'a str>,
    autonomous_system_number: Option<u32>,
}

impl Database {
    /// Parses a whole database file held in memory. A database whose search tree or metadata
    /// is broken is refused here, not at the first lookup.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Database, GeoError> {
        let reader = maxminddb::Reader::from_source(bytes).map_err(GeoError::Format)?;
        let db = Database { reader };
        // A lookup walks the tree and decodes a record: a truncated data section fails here.
        for probe in ["1.1.1.1", "8.8.8.8", "2001:4860::8888"] {
            if let Ok(ip) = probe.parse::<IpAddr>() {
                db.try_lookup(ip)?;
            }
        }
        Ok(db)
    }

    /// `database_type` from the metadata, e.g. `GeoLite2-Country` or `DBIP-Country-Lite`.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// What the database says about `ip` (nothing for addresses it does not cover, including
    /// an IPv6 address in an IPv4-only database).
    pub fn lookup(&self, ip: IpAddr) -> Geo {
        self.try_lookup(ip).unwrap_or_default()
    }

    fn try_lookup(&self, ip: IpAddr) -> Result<Geo, GeoError> {
        let ip = ip.to_canonical();
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return Ok(Geo::default());
        }
        let found = self.reader.lookup(ip).map_err(GeoError::Format)?;
        let Some(rec) = found.decode::<Record<'_>>().map_err(GeoError::Format)? else {
            return Ok(Geo::default());
        };
        let country = rec
            .country
            .and_then(|c| c.iso_code)
            .or(rec.country_code)
            .or(rec.registered_country.and_then(|c| c.iso_code))
            .and_then(Code::country);
        let continent = rec
            .continent
            .and_then(|c| c.code)
            .and_then(Code::continent)
            .or_else(|| country.and_then(|c| crate::continents::continent_of(c.0).map(Code)));
        Ok(Geo {
            country,
            continent,
            asn: rec.autonomous_system_number.filter(|n| *n != 0),
        })
    }
}
