//! `[dns]` and `[sites.dns]`, compiled: every name, address, URL and number checked, each
//! error at its place in the file.

use std::collections::HashMap;
use std::net::IpAddr;

use toml::Spanned;

use super::Compiler;
use crate::geodns::{
    DnsPop, GeoDns, NameServer, ProbeSettings, SiteDns, is_dns_label, is_dns_name,
};
use crate::schema::dns as schema;

/// A name as written (trailing dot allowed), lower case without the dot.
fn dns_name(s: &str) -> Option<String> {
    let n = s.trim().trim_end_matches('.').to_ascii_lowercase();
    is_dns_name(&n).then_some(n)
}

impl Compiler<'_> {
    fn name_at(&mut self, s: &Spanned<String>, what: &str) -> Option<String> {
        let n = dns_name(s.get_ref());
        if n.is_none() {
            self.error(
                s.span(),
                format!(
                    "{what}: {:?} is not a DNS name (letters, digits, hyphens; labels of 1-63)",
                    s.get_ref()
                ),
            );
        }
        n
    }

    fn ips(&mut self, list: &[Spanned<String>], what: &str) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for a in list {
            match a.get_ref().trim().parse::<IpAddr>() {
                Ok(ip) if out.contains(&ip) => {
                    self.error(a.span(), format!("{what}: duplicate address {ip}"))
                }
                Ok(ip) => out.push(ip),
                Err(_) => self.error(
                    a.span(),
                    format!("{what}: {:?} is not an IP address", a.get_ref()),
                ),
            }
        }
        out
    }

    pub(super) fn geodns(&mut self, d: &Spanned<schema::Dns>) -> Option<GeoDns> {
        let span = d.span();
        let d = d.get_ref();
        let zone = self.name_at(&d.zone, "dns.zone");
        let delegated = d
            .delegated
            .iter()
            .filter_map(|z| self.name_at(z, "dns.delegated"))
            .collect();
        let listen = self.addrs(&d.listen, "dns.listen");
        let metrics = d.metrics.as_ref().and_then(|m| {
            let a = self.addrs(std::slice::from_ref(m), "dns.metrics");
            a.first().copied()
        });
        let ttl = d.ttl.as_secs();
        if !(1..=86_400).contains(&ttl) {
            self.error(span.clone(), "dns.ttl must be between 1s and 1d");
        }
        if d.answers == 0 {
            self.error(span.clone(), "dns.answers must be at least 1");
        }
        if d.ecs_ipv4_prefix > 32 || d.ecs_ipv6_prefix > 128 {
            self.error(
                span.clone(),
                "dns.ecs_ipv4_prefix is at most 32 and dns.ecs_ipv6_prefix at most 128",
            );
        }
        let (enter, leave) = (*d.overload.enter.get_ref(), *d.overload.leave.get_ref());
        if !(enter > 0.0 && leave > 0.0 && leave <= enter) {
            // `leave` left at its default has no place in the file: point at `enter`.
            let at = if d.overload.leave.span().is_empty() {
                d.overload.enter.span()
            } else {
                d.overload.leave.span()
            };
            self.error(
                at,
                format!(
                    "dns.overload: leave ({leave}) must be above 0 and at most enter ({enter})"
                ),
            );
        }
        if d.probe.interval < std::time::Duration::from_millis(100) || d.probe.timeout.is_zero() {
            self.error(
                span.clone(),
                "dns.probe: interval is at least 100ms and timeout above 0",
            );
        }
        let mut nameservers = Vec::new();
        if d.nameservers.is_empty() {
            self.error(
                span.clone(),
                "dns.nameservers: the zone needs at least one name server",
            );
        }
        for ns in &d.nameservers {
            let n = ns.get_ref();
            let Some(name) = self.name_at(&n.name, "dns.nameservers") else {
                continue;
            };
            let addresses = self.ips(&n.addresses, "dns.nameservers");
            if let Some(z) = &zone
                && in_zone(&name, z)
                && addresses.is_empty()
            {
                self.error(
                    ns.span(),
                    format!(
                        "dns.nameservers: {name} is inside the zone and needs addresses (glue)"
                    ),
                );
            }
            nameservers.push(NameServer { name, addresses });
        }
        let hostmaster = match &d.hostmaster {
            Some(h) => self.name_at(h, "dns.hostmaster"),
            None => zone.as_ref().map(|z| format!("hostmaster.{z}")),
        };
        let mut pops: Vec<DnsPop> = Vec::new();
        if d.pops.is_empty() {
            self.error(span.clone(), "dns.pops: at least one POP is needed");
        }
        // Names seen, refused POPs included, so a duplicate is reported either way.
        let mut seen: Vec<&str> = Vec::new();
        for p in &d.pops {
            let name = p.get_ref().name.get_ref().trim();
            let pop = self.dns_pop(p);
            if !name.is_empty() && seen.contains(&name) {
                self.error(
                    p.get_ref().name.span(),
                    format!("dns.pops: duplicate POP {name:?}"),
                );
                continue;
            }
            seen.push(name);
            pops.extend(pop);
        }
        Some(GeoDns {
            zone: zone?,
            delegated,
            listen,
            metrics,
            ttl: ttl.clamp(1, 86_400) as u32,
            answers: d.answers.max(1),
            nameservers,
            hostmaster: hostmaster?,
            ecs_ipv4_prefix: d.ecs_ipv4_prefix.min(32),
            ecs_ipv6_prefix: d.ecs_ipv6_prefix.min(128),
            probe: ProbeSettings {
                interval: d.probe.interval,
                timeout: d.probe.timeout,
                fall: d.probe.fall.max(1),
                rise: d.probe.rise.max(1),
            },
            overload_enter: enter,
            overload_leave: leave,
            pops,
        })
    }

    fn dns_pop(&mut self, p: &Spanned<schema::Pop>) -> Option<DnsPop> {
        let p = p.get_ref();
        let name = p.name.get_ref().trim().to_string();
        if name.is_empty() {
            self.error(p.name.span(), "dns.pops: a POP needs a name");
        }
        let loc = p.location.get_ref();
        let ok = loc.len() == 2
            && (-90.0..=90.0).contains(&loc[0])
            && (-180.0..=180.0).contains(&loc[1]);
        if !ok {
            self.error(
                p.location.span(),
                "dns.pops.location: expected [latitude, longitude] in degrees, e.g. [50.11, 8.68]",
            );
        }
        let addresses = self.ips(&p.addresses, "dns.pops.addresses");
        if p.addresses.is_empty() {
            self.error(
                p.name.span(),
                format!("dns.pops: POP {name:?} has no addresses"),
            );
        }
        let mut probes = Vec::new();
        for u in &p.probes {
            match u.get_ref().parse::<http::Uri>() {
                Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => {
                    probes.push(uri)
                }
                _ => self.error(
                    u.span(),
                    format!(
                        "dns.pops.probes: {:?} is not a plain-HTTP URL (http://HOST:PORT/path)",
                        u.get_ref()
                    ),
                ),
            }
        }
        let capacity = |c: &Option<Spanned<f64>>, this: &mut Self| -> Option<f64> {
            let c = c.as_ref()?;
            let v = *c.get_ref();
            if !(v > 0.0 && v.is_finite()) {
                this.error(c.span(), "dns.pops: a capacity must be above 0");
                return None;
            }
            Some(v)
        };
        let capacity_rps = capacity(&p.capacity_rps, self);
        let capacity_cpu = capacity(&p.capacity_cpu, self);
        (!name.is_empty() && ok).then(|| DnsPop {
            name,
            latitude: loc[0],
            longitude: loc[1],
            addresses,
            probes,
            capacity_rps,
            capacity_cpu,
            draining: p.draining,
        })
    }

    /// A site's overrides; `scope`: what `[dns]` declares (`None`: no `[dns]`).
    pub(super) fn site_dns(
        &mut self,
        site: &Spanned<String>,
        d: &schema::SiteDns,
        scope: Option<&DnsScope>,
        labels: &mut HashMap<String, String>,
    ) -> SiteDns {
        let pops = scope.map(|s| s.pops.as_slice());
        let label = match &d.label {
            Some(l) => {
                let v = l.get_ref().trim().to_ascii_lowercase();
                if scope.is_none() {
                    self.error(
                        l.span(),
                        "sites.dns.label: a name under the zone needs [dns], which this file does not have",
                    );
                } else if !is_dns_label(&v) {
                    self.error(
                        l.span(),
                        format!("sites.dns.label: {:?} is not a DNS label", l.get_ref()),
                    );
                }
                v
            }
            None => {
                let v = site.get_ref().to_ascii_lowercase();
                if pops.is_some() && !is_dns_label(&v) {
                    self.error(
                        site.span(),
                        format!("site name {:?} is not a DNS label: set sites.dns.label for its name under the zone", site.get_ref()),
                    );
                }
                v
            }
        };
        if let Some(scope) = scope {
            let at = d.label.as_ref().map_or(site.span(), |l| l.span());
            if scope.reserved.contains(&label) {
                self.error(
                    at,
                    format!("sites.dns: {label:?} under the zone is a name server's name"),
                );
            } else if let Some(other) = labels.get(&label) {
                self.error(
                    at,
                    format!(
                        "sites.dns: site {other:?} already answers as {label:?} under the zone"
                    ),
                );
            } else {
                labels.insert(label.clone(), site.get_ref().clone());
            }
        }
        let known = |this: &mut Self, name: &Spanned<String>| -> Option<String> {
            let n = name.get_ref().trim();
            match pops {
                None => {
                    this.error(
                        name.span(),
                        "sites.dns: POPs are named in [dns], which this file does not have",
                    );
                    None
                }
                Some(list) if !list.iter().any(|p| p == n) => {
                    this.error(
                        name.span(),
                        format!("sites.dns: unknown POP {n:?} (known: {})", list.join(", ")),
                    );
                    None
                }
                Some(_) => Some(n.to_string()),
            }
        };
        let mut pin = Vec::new();
        for (country, pop) in &d.pin {
            let b = country.as_bytes();
            if b.len() != 2 || !b.iter().all(u8::is_ascii_alphabetic) {
                self.error(
                    pop.span(),
                    format!("sites.dns.pin: {country:?} is not a country code"),
                );
                continue;
            }
            if let Some(pop) = known(self, pop) {
                pin.push(([b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()], pop));
            }
        }
        let exclude = d.exclude.iter().filter_map(|p| known(self, p)).collect();
        SiteDns {
            label,
            pin,
            exclude,
        }
    }
}

/// What the sites may refer to in `[dns]`, taken from the file as written so that a `[dns]`
/// refused for its zone still lets the sites be checked against its POPs.
pub(super) struct DnsScope {
    pub pops: Vec<String>,
    /// Labels right under the zone that name servers use: no site may take them.
    pub reserved: Vec<String>,
}

impl DnsScope {
    pub(super) fn of(d: &schema::Dns) -> DnsScope {
        let zone = dns_name(d.zone.get_ref());
        let reserved = d
            .nameservers
            .iter()
            .filter_map(|ns| dns_name(ns.get_ref().name.get_ref()))
            .filter_map(|n| {
                let z = zone.as_deref()?;
                let label = n.strip_suffix(z)?.strip_suffix('.')?;
                (!label.contains('.')).then(|| label.to_string())
            })
            .collect();
        let mut pops: Vec<String> = Vec::new();
        for p in &d.pops {
            let n = p.get_ref().name.get_ref().trim();
            if !n.is_empty() && !pops.iter().any(|o| o == n) {
                pops.push(n.to_string());
            }
        }
        DnsScope { pops, reserved }
    }
}

/// Whether `name` is `zone` or below it (both lower case, no trailing dot).
pub(crate) fn in_zone(name: &str, zone: &str) -> bool {
    name == zone
        || name
            .strip_suffix(zone)
            .is_some_and(|rest| rest.ends_with('.'))
}
