//! `[geo]` (node file: where the databases are), `[sites.geo]` (headers to the origin, the
//! country in the cache key, the denied page) and `[[sites.access]]` (allow and deny lists by
//! country, continent, ASN and address range, per path prefix).

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{duration, sites::yes};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Geo {
    /// MaxMind-format database files (relative to the config file), asked in order: the first
    /// that knows a field gives it.
    pub databases: Vec<Spanned<String>>,
    /// How often the files are checked for a replacement.
    #[serde(deserialize_with = "duration")]
    pub check_every: Duration,
    /// Countries with a series of their own in `edge_geo_requests_total` (the rest count as
    /// `other`): keeps the label set bounded.
    pub count_countries: Option<Vec<Spanned<String>>>,
}

impl Default for Geo {
    fn default() -> Self {
        Geo {
            databases: Vec::new(),
            check_every: Duration::from_secs(10),
            count_countries: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteGeo {
    /// Send the visitor's country, continent and ASN to the origin.
    pub headers: bool,
    pub country_header: Option<Spanned<String>>,
    pub continent_header: Option<Spanned<String>>,
    pub asn_header: Option<Spanned<String>>,
    /// Keep a copy per country (the country header becomes part of the variant key).
    pub cache_by_country: bool,
    /// The body of a 403 for a denied visitor.
    pub denied_body: Option<String>,
}

impl Default for SiteGeo {
    fn default() -> Self {
        SiteGeo {
            headers: yes(),
            country_header: None,
            continent_header: None,
            asn_header: None,
            cache_by_country: false,
            denied_body: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    #[serde(default = "super::sites::slash")]
    pub path_prefix: String,
    /// `country:DE`, `continent:EU`, `asn:64512`, or an address range `192.0.2.0/24`. With a
    /// non-empty list, only visitors matching one entry pass.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Same forms; a match is refused. Deny wins over allow.
    #[serde(default)]
    pub deny: Vec<Spanned<String>>,
    /// Log and count what the rule would refuse, refuse nothing.
    #[serde(default)]
    pub report_only: bool,
}
