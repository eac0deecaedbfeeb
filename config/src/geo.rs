//! Compiled geo settings: the node's databases, each site's headers, cache-by-country and
//! access rules. Evaluated by the `geo` room (`edge_geo::rules`); here they are only data.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;

use crate::net::CidrSet;

/// `[geo]`: where the databases are.
#[derive(Debug, Clone, Default)]
pub struct GeoNode {
    pub databases: Vec<PathBuf>,
    pub check_every: Duration,
    /// Countries counted under their own label; the rest are `other`.
    pub count_countries: Vec<[u8; 2]>,
}

/// `[sites.geo]`.
#[derive(Debug, Clone)]
pub struct SiteGeo {
    /// Header names for country, continent, ASN: always removed from the client's request,
    /// set to the visitor's values when `send` (and the node has databases).
    pub headers: GeoHeaders,
    pub send: bool,
    pub cache_by_country: bool,
    pub denied_body: String,
    /// Longest `path_prefix` first: the first rule whose prefix matches decides.
    pub access: Vec<AccessRule>,
}

#[derive(Debug, Clone)]
pub struct GeoHeaders {
    pub country: HeaderName,
    pub continent: HeaderName,
    pub asn: HeaderName,
}

impl Default for GeoHeaders {
    fn default() -> Self {
        GeoHeaders {
            country: HeaderName::from_static("x-edge-country"),
            continent: HeaderName::from_static("x-edge-continent"),
            asn: HeaderName::from_static("x-edge-asn"),
        }
    }
}

impl Default for SiteGeo {
    fn default() -> Self {
        SiteGeo {
            headers: GeoHeaders::default(),
            send: true,
            cache_by_country: false,
            denied_body: "Access denied\n".to_string(),
            access: Vec::new(),
        }
    }
}

/// One `[[sites.access]]` rule.
#[derive(Debug, Clone)]
pub struct AccessRule {
    pub path_prefix: String,
    /// `None`: everyone not denied passes.
    pub allow: Option<Matcher>,
    pub deny: Matcher,
    pub report_only: bool,
}

/// Who a list names: countries, continents, ASNs and address ranges.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    pub countries: Vec<[u8; 2]>,
    pub continents: Vec<[u8; 2]>,
    pub asns: Vec<u32>,
    pub ranges: CidrSet,
}

impl Matcher {
    pub fn is_empty(&self) -> bool {
        self.countries.is_empty()
            && self.continents.is_empty()
            && self.asns.is_empty()
            && self.ranges.is_empty()
    }

    /// Whether a visitor with these attributes is named by the list.
    pub fn matches(
        &self,
        ip: IpAddr,
        country: Option<[u8; 2]>,
        continent: Option<[u8; 2]>,
        asn: Option<u32>,
    ) -> bool {
        country.is_some_and(|c| self.countries.contains(&c))
            || continent.is_some_and(|c| self.continents.contains(&c))
            || asn.is_some_and(|a| self.asns.contains(&a))
            || self.ranges.contains(ip)
    }
}
