//! Geo rules over compiled config: the access decision for a request, and the pool a route
//! steers a visitor to. Pure functions of (rules, path, visitor): table-tested below.

use std::net::IpAddr;

use config::Route;
use config::geo::AccessRule;

use crate::Geo;

/// What a site's access rules say about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No rule covers the path, or the visitor passes the one that does.
    Allowed,
    /// Refused (403) by the rule for this prefix.
    Denied { rule: usize },
    /// A report-only rule would have refused: log and count, serve anyway.
    Reported { rule: usize },
}

/// The decision of `rules` (longest prefix first) for a visitor at `ip` asking for `path`:
/// the first rule whose prefix matches decides; deny wins over allow; a non-empty allow list
/// refuses whoever it does not name.
pub fn decide(rules: &[AccessRule], path: &str, ip: IpAddr, geo: Geo) -> Decision {
    let Some((i, rule)) = rules
        .iter()
        .enumerate()
        .find(|(_, r)| path.starts_with(&r.path_prefix))
    else {
        return Decision::Allowed;
    };
    let (country, continent) = (geo.country.map(|c| c.0), geo.continent.map(|c| c.0));
    let denied = rule.deny.matches(ip, country, continent, geo.asn)
        || rule
            .allow
            .as_ref()
            .is_some_and(|a| !a.matches(ip, country, continent, geo.asn));
    match (denied, rule.report_only) {
        (false, _) => Decision::Allowed,
        (true, false) => Decision::Denied { rule: i },
        (true, true) => Decision::Reported { rule: i },
    }
}

/// The pool `route` sends this visitor to: by country, else continent, else its default.
pub fn steer<'a>(route: &'a Route, geo: Geo) -> &'a str {
    let pick = |table: &'a [([u8; 2], String)], code: Option<crate::Code>| {
        let code = code?;
        table
            .iter()
            .find(|(c, _)| *c == code.0)
            .map(|(_, p)| p.as_str())
    };
    pick(&route.pools_by_country, geo.country)
        .or_else(|| pick(&route.pools_by_continent, geo.continent))
        .unwrap_or(&route.pool)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use config::CidrSet;
    use config::geo::Matcher;

    use super::*;
    use crate::Code;

    fn geo(country: &str, continent: &str, asn: Option<u32>) -> Geo {
        let code = |s: &str| (s.len() == 2).then(|| Code(s.as_bytes().try_into().unwrap()));
        Geo {
            country: code(country),
            continent: code(continent),
            asn,
        }
    }

    fn matcher(
        countries: &[&[u8; 2]],
        continents: &[&[u8; 2]],
        asns: &[u32],
        cidrs: &[&str],
    ) -> Matcher {
        Matcher {
            countries: countries.iter().map(|c| **c).collect(),
            continents: continents.iter().map(|c| **c).collect(),
            asns: asns.to_vec(),
            ranges: CidrSet::new(&cidrs.iter().map(|c| c.parse().unwrap()).collect::<Vec<_>>()),
        }
    }

    #[test]
    fn access_decisions() {
        // Longest prefix first, as compiled.
        let rules = vec![
            AccessRule {
                path_prefix: "/eu-only/".into(),
                allow: Some(matcher(&[], &[b"EU"], &[], &["10.0.0.0/8"])),
                deny: matcher(&[b"BY"], &[], &[], &[]),
                report_only: false,
            },
            AccessRule {
                path_prefix: "/beta/".into(),
                allow: None,
                deny: matcher(&[b"US"], &[], &[], &[]),
                report_only: true,
            },
            AccessRule {
                path_prefix: "/".into(),
                allow: None,
                deny: matcher(&[b"KP"], &[], &[64_666], &["203.0.113.0/24"]),
                report_only: false,
            },
        ];
        let de = geo("DE", "EU", None);
        let by = geo("BY", "EU", None);
        let us = geo("US", "NA", Some(7018));
        let kp = geo("KP", "AS", None);
        let unknown = Geo::default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let visitor = ip("198.51.100.1");
        let cases = [
            ("/", visitor, de, Decision::Allowed),
            ("/", visitor, kp, Decision::Denied { rule: 2 }),
            ("/x", visitor, unknown, Decision::Allowed),
            (
                "/x",
                visitor,
                geo("FR", "EU", Some(64_666)),
                Decision::Denied { rule: 2 },
            ),
            ("/x", ip("203.0.113.50"), de, Decision::Denied { rule: 2 }),
            (
                "/x",
                ip("::ffff:203.0.113.50"),
                de,
                Decision::Denied { rule: 2 },
            ),
            // The allow list names EU and 10/8: others are refused, and deny wins inside EU.
            ("/eu-only/a", visitor, de, Decision::Allowed),
            ("/eu-only/a", visitor, us, Decision::Denied { rule: 0 }),
            ("/eu-only/a", visitor, unknown, Decision::Denied { rule: 0 }),
            ("/eu-only/a", ip("10.9.9.9"), unknown, Decision::Allowed),
            ("/eu-only/a", visitor, by, Decision::Denied { rule: 0 }),
            // The prefix rule decides alone: KP is not named by its deny, but not by its allow.
            ("/eu-only/a", visitor, kp, Decision::Denied { rule: 0 }),
            // Report-only: what it would refuse is reported, never refused.
            ("/beta/x", visitor, us, Decision::Reported { rule: 1 }),
            ("/beta/x", visitor, de, Decision::Allowed),
            // The /beta/ rule decides for its paths: KP is not named there.
            ("/beta/x", visitor, kp, Decision::Allowed),
        ];
        for (path, ip, g, want) in cases {
            assert_eq!(decide(&rules, path, ip, g), want, "{path} {ip} {g:?}");
        }
        assert_eq!(decide(&[], "/", visitor, kp), Decision::Allowed);
    }

    #[test]
    fn steering_by_country_then_continent() {
        let route = Route {
            path_prefix: "/".into(),
            pool: "default".into(),
            pools_by_country: vec![(*b"GB", "uk".into()), (*b"US", "us".into())],
            pools_by_continent: vec![(*b"EU", "eu".into())],
        };
        let cases = [
            (geo("GB", "EU", None), "uk"),
            (geo("DE", "EU", None), "eu"),
            (geo("US", "NA", None), "us"),
            (geo("BR", "SA", None), "default"),
            (Geo::default(), "default"),
        ];
        for (g, want) in cases {
            assert_eq!(steer(&route, g), want, "{g:?}");
        }
    }
}
