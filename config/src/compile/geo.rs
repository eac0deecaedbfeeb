//! `[geo]`, `[sites.geo]`, `[[sites.access]]` and routes' geo steering, compiled.

use std::collections::BTreeMap;

use http::HeaderName;
use toml::Spanned;

use crate::geo::{AccessRule, GeoHeaders, GeoNode, Matcher, SiteGeo};
use crate::net::{Cidr, CidrSet};
use crate::schema;

use super::Compiler;

const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// Countries counted under their own label by default: the largest by internet users.
const COUNT_COUNTRIES: [&str; 30] = [
    "AR", "AU", "BD", "BR", "CA", "CN", "DE", "EG", "ES", "FR", "GB", "ID", "IN", "IR", "IT", "JP",
    "KR", "MX", "MY", "NG", "NL", "PH", "PK", "PL", "RU", "TH", "TR", "UA", "US", "VN",
];

fn country(s: &str) -> Option<[u8; 2]> {
    let b = s.as_bytes();
    (b.len() == 2 && b.iter().all(u8::is_ascii_alphabetic))
        .then(|| [b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()])
}

fn continent(s: &str) -> Option<[u8; 2]> {
    country(s).filter(|c| CONTINENTS.iter().any(|k| k.as_bytes() == c))
}

impl Compiler<'_> {
    pub(super) fn geo_node(&mut self, g: &schema::geo::Geo) -> GeoNode {
        let databases = g
            .databases
            .iter()
            .filter_map(|p| {
                let path = p.get_ref().trim();
                if path.is_empty() {
                    self.error(p.span(), "geo.databases: an empty path");
                    None
                } else {
                    Some(self.doc.base.join(path))
                }
            })
            .collect();
        let count_countries = match &g.count_countries {
            None => COUNT_COUNTRIES.iter().filter_map(|c| country(c)).collect(),
            Some(list) => list
                .iter()
                .filter_map(|c| {
                    let code = country(c.get_ref());
                    if code.is_none() {
                        self.error(
                            c.span(),
                            format!(
                                "geo.count_countries: {:?} is not a country code",
                                c.get_ref()
                            ),
                        );
                    }
                    code
                })
                .collect(),
        };
        GeoNode {
            databases,
            check_every: g.check_every.max(std::time::Duration::from_millis(100)),
            count_countries,
        }
    }

    fn header(&mut self, h: Option<&Spanned<String>>, default: HeaderName) -> HeaderName {
        let Some(h) = h else { return default };
        match HeaderName::from_bytes(h.get_ref().trim().as_bytes()) {
            Ok(name) => name,
            Err(_) => {
                self.error(h.span(), format!("{:?} is not a header name", h.get_ref()));
                default
            }
        }
    }

    pub(super) fn site_geo(
        &mut self,
        g: &schema::geo::SiteGeo,
        access: &[Spanned<schema::geo::AccessRule>],
    ) -> SiteGeo {
        let defaults = GeoHeaders::default();
        let headers = GeoHeaders {
            country: self.header(g.country_header.as_ref(), defaults.country),
            continent: self.header(g.continent_header.as_ref(), defaults.continent),
            asn: self.header(g.asn_header.as_ref(), defaults.asn),
        };
        let mut rules: Vec<AccessRule> = Vec::new();
        for r in access {
            let rule = r.get_ref();
            if !rule.path_prefix.starts_with('/') {
                self.error(
                    r.span(),
                    format!(
                        "access: path_prefix {:?} must start with '/'",
                        rule.path_prefix
                    ),
                );
            }
            if rules.iter().any(|o| o.path_prefix == rule.path_prefix) {
                self.error(
                    r.span(),
                    format!("access: two rules for path_prefix {:?}", rule.path_prefix),
                );
            }
            if rule.allow.is_empty() && rule.deny.is_empty() {
                self.error(r.span(), "access: a rule needs `allow` or `deny`");
            }
            let allow = self.matcher(&rule.allow, "allow");
            let deny = self.matcher(&rule.deny, "deny");
            rules.push(AccessRule {
                path_prefix: rule.path_prefix.clone(),
                allow: (!allow.is_empty()).then_some(allow),
                deny,
                report_only: rule.report_only,
            });
        }
        rules.sort_by_key(|r| std::cmp::Reverse(r.path_prefix.len()));
        SiteGeo {
            headers,
            send: g.headers,
            cache_by_country: g.cache_by_country,
            denied_body: g
                .denied_body
                .clone()
                .unwrap_or_else(|| SiteGeo::default().denied_body),
            access: rules,
        }
    }

    /// `country:DE`, `continent:EU`, `asn:64512`, or a CIDR range.
    fn matcher(&mut self, items: &[Spanned<String>], list: &str) -> Matcher {
        let mut m = Matcher::default();
        let mut ranges: Vec<Cidr> = Vec::new();
        for item in items {
            let text = item.get_ref().trim();
            let bad = |why: &str| format!("access {list}: {text:?} {why}");
            match text.split_once(':') {
                Some(("country", c)) => match country(c) {
                    Some(code) => m.countries.push(code),
                    None => self.error(item.span(), bad("is not a country (ISO 3166 code)")),
                },
                Some(("continent", c)) => match continent(c) {
                    Some(code) => m.continents.push(code),
                    None => self.error(
                        item.span(),
                        bad("is not a continent (AF, AN, AS, EU, NA, OC, SA)"),
                    ),
                },
                Some(("asn", n)) => match n.trim_start_matches("AS").parse::<u32>() {
                    Ok(n) if n > 0 => m.asns.push(n),
                    _ => self.error(item.span(), bad("is not an AS number")),
                },
                _ => match text.parse::<Cidr>() {
                    Ok(c) => ranges.push(c),
                    Err(e) => self.error(
                        item.span(),
                        format!(
                            "access {list}: {e} (entries are country:CC, continent:CC, asn:N or an address range)"
                        ),
                    ),
                },
            }
        }
        m.ranges = CidrSet::new(&ranges);
        m
    }

    /// A route's `pools_by_country` / `pools_by_continent`, checked against the pools.
    pub(super) fn steering(
        &mut self,
        map: &BTreeMap<String, Spanned<String>>,
        by: &str,
        pools: &[&String],
    ) -> Vec<([u8; 2], String)> {
        let mut out = Vec::new();
        for (code, pool) in map {
            let parsed = if by == "continent" {
                continent(code)
            } else {
                country(code)
            };
            let Some(parsed) = parsed else {
                self.error(
                    pool.span(),
                    format!("pools_by_{by}: {code:?} is not a {by} code"),
                );
                continue;
            };
            if !pools.iter().any(|p| *p == pool.get_ref()) {
                self.error(
                    pool.span(),
                    format!(
                        "unknown pool {:?}; defined pools: {pools:?}",
                        pool.get_ref()
                    ),
                );
                continue;
            }
            out.push((parsed, pool.get_ref().clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::test_doc::compile_text;

    use std::net::IpAddr;
    use std::path::PathBuf;

    const BASE: &str = r#"
[listen]
http = ["127.0.0.1:8080"]
proxy_protocol = ["10.0.0.0/8", "192.0.2.1"]

[geo]
databases = ["geo/country.mmdb", "/var/lib/asn.mmdb"]
check_every = "2s"

[pools.o]
endpoints = ["127.0.0.1:9000"]

[pools.eu]
endpoints = ["127.0.0.1:9001"]

[[sites]]
name = "s"
hosts = ["s.test"]
plain_http = "proxy"
routes = [{ path_prefix = "/", pool = "o", pools_by_country = { de = "eu" }, pools_by_continent = { EU = "eu" } }]
"#;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn geo_tables_compile() {
        let text = format!(
            "{BASE}\n[sites.geo]\ncountry_header = \"CF-IPCountry\"\ncache_by_country = true\ndenied_body = \"no\"\n\n\
             [[sites.access]]\ndeny = [\"country:ru\", \"203.0.113.0/24\"]\n\n\
             [[sites.access]]\npath_prefix = \"/eu/\"\nallow = [\"continent:EU\", \"asn:AS64512\"]\nreport_only = true\n"
        );
        let snap = compile_text(&text).unwrap();
        assert_eq!(
            snap.geo.databases,
            [
                PathBuf::from("/etc/edge/geo/country.mmdb"),
                PathBuf::from("/var/lib/asn.mmdb")
            ]
        );
        assert_eq!(snap.geo.check_every.as_secs(), 2);
        assert!(snap.geo.count_countries.contains(b"US"));
        assert!(snap.proxy_protocol.contains(ip("10.2.3.4")));
        assert!(snap.proxy_protocol.contains(ip("192.0.2.1")));
        assert!(!snap.proxy_protocol.contains(ip("192.0.2.2")));
        let site = &snap.sites[0];
        assert_eq!(site.geo.headers.country, "cf-ipcountry");
        assert!(site.cache.key.headers.contains(&site.geo.headers.country));
        assert_eq!(site.geo.headers.continent, "x-edge-continent");
        assert!(site.geo.send && site.geo.cache_by_country);
        assert_eq!(site.geo.denied_body, "no");
        let rules = &site.geo.access;
        assert_eq!(rules[0].path_prefix, "/eu/", "longest prefix first");
        assert!(rules[0].report_only);
        let allow = rules[0].allow.as_ref().unwrap();
        assert_eq!(allow.continents, [*b"EU"]);
        assert_eq!(allow.asns, [64_512]);
        assert!(rules[1].allow.is_none());
        assert_eq!(rules[1].deny.countries, [*b"RU"]);
        assert!(rules[1].deny.ranges.contains(ip("203.0.113.9")));
        let route = &site.routes[0];
        assert_eq!(route.pools_by_country, [(*b"DE", "eu".to_string())]);
        assert_eq!(route.pools_by_continent, [(*b"EU", "eu".to_string())]);
    }

    #[test]
    fn bad_geo_settings_are_refused_where_written() {
        let cases = [
            (
                "\n[[sites.access]]\ndeny = [\"country:Germany\"]\n",
                "is not a country",
            ),
            (
                "\n[[sites.access]]\ndeny = [\"continent:XX\"]\n",
                "is not a continent",
            ),
            (
                "\n[[sites.access]]\ndeny = [\"asn:abc\"]\n",
                "is not an AS number",
            ),
            (
                "\n[[sites.access]]\nallow = [\"10.0.0.0/33\"]\n",
                "prefix length",
            ),
            (
                "\n[[sites.access]]\nreport_only = true\n",
                "needs `allow` or `deny`",
            ),
            (
                "\n[[sites.access]]\npath_prefix = \"x\"\ndeny = [\"asn:1\"]\n",
                "must start with '/'",
            ),
            (
                "\n[sites.geo]\ncountry_header = \"bad header\"\n",
                "is not a header name",
            ),
        ];
        for (extra, want) in cases {
            let e = compile_text(&format!("{BASE}{extra}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{extra}: {e}");
            assert!(e.contains("edge.toml:"), "{e}");
        }
        let steer = BASE.replace("{ de = \"eu\" }", "{ de = \"nowhere\" }");
        let e = compile_text(&steer).unwrap_err().to_string();
        assert!(e.contains("unknown pool \"nowhere\""), "{e}");
        let steer = BASE.replace("{ EU = \"eu\" }", "{ XX = \"eu\" }");
        let e = compile_text(&steer).unwrap_err().to_string();
        assert!(e.contains("\"XX\" is not a continent code"), "{e}");
        let pp = BASE.replace("\"192.0.2.1\"]", "\"nope\"]");
        let e = compile_text(&pp).unwrap_err().to_string();
        assert!(e.contains("listen.proxy_protocol"), "{e}");
    }
}
