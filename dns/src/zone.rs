//! The names we are authoritative for, built once per config snapshot: the CDN's zone (site
//! `NAME` as `NAME.<zone>`, the name servers' own names), the zones site owners delegated to us
//! (their site hosts, apex included), and the records every answer shares (SOA, NS, glue).
//! [`Zone::answer`] is pure: the client's location and the POPs' state are handed in.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use config::geodns::GeoDns;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_server::proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use crate::select::{self, Choice, Client, Coord, Overrides, Pop, PopState, Reason};

/// SOA timers: refresh, retry, expire (seconds); nothing transfers our zones, they are only
/// what RFC 1035 asks an SOA to carry.
const SOA_TIMERS: (i32, i32, i32) = (3600, 600, 604_800);
/// The TTL of SOA, NS and glue records: they change only with the config.
const STATIC_TTL: u32 = 3600;

/// What a name in one of our zones is.
#[derive(Debug, Clone)]
enum Target {
    /// A site: answered with the chosen POPs' addresses.
    Site(usize),
    /// A name server's own name: its addresses.
    Host(Vec<IpAddr>),
}

/// One zone we are authoritative for.
#[derive(Debug)]
struct Served {
    apex: LowerName,
    soa: Record,
    ns: Vec<Record>,
}

#[derive(Debug)]
pub struct SiteEntry {
    pub name: String,
    pub overrides: Overrides,
}

/// Every name we answer, and how.
#[derive(Debug)]
pub struct Zone {
    served: Vec<Served>,
    names: HashMap<LowerName, Target>,
    /// `*.example.com` site hosts in a delegated zone: (base, site).
    wildcards: Vec<(LowerName, usize)>,
    /// Names that exist only because something below them does (RFC 8020: NODATA, not
    /// NXDOMAIN).
    empty_non_terminals: HashSet<LowerName>,
    /// Glue: the name servers' addresses, for the additional section of NS answers.
    glue: Vec<Record>,
    pub pops: Vec<Pop>,
    pop_addresses: Vec<Vec<IpAddr>>,
    pub sites: Vec<SiteEntry>,
    pub ttl: u32,
    pub answers: usize,
    pub ecs_ipv4_prefix: u8,
    pub ecs_ipv6_prefix: u8,
}

/// One question, as asked.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// With the asker's letter case, which the answer's owner names keep (0x20 randomisation).
    pub name: &'a Name,
    pub lower: &'a LowerName,
    pub qtype: RecordType,
    pub qclass: DNSClass,
}

/// What to send back.
#[derive(Debug, Default)]
pub struct Reply {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
    /// The site asked for and the POPs chosen (for metrics and the ECS scope).
    pub site: Option<usize>,
    pub choice: Option<Choice>,
    /// Whether the answer depends on where the client is (RFC 7871 scope: the prefix used,
    /// else 0).
    pub located: bool,
}

fn fqdn(name: &str) -> Option<Name> {
    Name::from_ascii(format!("{name}.")).ok()
}

impl Zone {
    /// Builds the zone from the compiled config. `serial`: the SOA serial (the config
    /// version, so secondaries and tools see a change). Names that cannot be DNS names were
    /// refused by the config already; any left are skipped.
    pub fn new(dns: &GeoDns, sites: &[Arc<config::Site>], serial: u32) -> Zone {
        let mut served = Vec::new();
        let mut glue = Vec::new();
        let mut names = HashMap::new();
        let ns_names: Vec<Name> = dns
            .nameservers
            .iter()
            .filter_map(|n| fqdn(&n.name))
            .collect();
        let hostmaster = fqdn(&dns.hostmaster).unwrap_or_else(Name::root);
        for ns in &dns.nameservers {
            let Some(name) = fqdn(&ns.name) else { continue };
            for ip in &ns.addresses {
                glue.push(Record::from_rdata(name.clone(), STATIC_TTL, rdata(*ip)));
            }
            names.insert(LowerName::from(&name), Target::Host(ns.addresses.clone()));
        }
        for zone in std::iter::once(&dns.zone).chain(&dns.delegated) {
            let Some(apex) = fqdn(zone) else { continue };
            let mname = ns_names.first().cloned().unwrap_or_else(|| apex.clone());
            let (refresh, retry, expire) = SOA_TIMERS;
            // The SOA minimum is the negative-caching TTL (RFC 2308): a name that appears
            // with a new site is seen within one answer TTL.
            let soa = SOA::new(
                mname,
                hostmaster.clone(),
                serial,
                refresh,
                retry,
                expire,
                dns.ttl,
            );
            served.push(Served {
                apex: LowerName::from(&apex),
                soa: Record::from_rdata(apex.clone(), dns.ttl, RData::SOA(soa)),
                ns: ns_names
                    .iter()
                    .map(|n| Record::from_rdata(apex.clone(), STATIC_TTL, RData::NS(NS(n.clone()))))
                    .collect(),
            });
        }
        let mut wildcards = Vec::new();
        let mut entries = Vec::new();
        for (i, site) in sites.iter().enumerate() {
            entries.push(SiteEntry {
                name: site.name.clone(),
                overrides: Overrides {
                    pin: site
                        .dns
                        .pin
                        .iter()
                        .map(|(c, p)| (*c, Arc::from(p.as_str())))
                        .collect(),
                    exclude: site
                        .dns
                        .exclude
                        .iter()
                        .map(|p| Arc::from(p.as_str()))
                        .collect(),
                },
            });
            if let Some(n) = fqdn(&format!("{}.{}", site.dns.label, dns.zone)) {
                names.insert(LowerName::from(&n), Target::Site(i));
            }
            for host in &site.hosts {
                let host = host.trim_end_matches('.').to_ascii_lowercase();
                let (wild, base) = match host.strip_prefix("*.") {
                    Some(b) => (true, b.to_string()),
                    None => (false, host),
                };
                let Some(n) = fqdn(&base) else { continue };
                let n = LowerName::from(&n);
                if !served.iter().any(|z| z.apex.zone_of(&n)) {
                    continue; // a host we are not authoritative for: its owner CNAMEs to us
                }
                if wild {
                    wildcards.push((n, i));
                } else {
                    names.entry(n).or_insert(Target::Site(i));
                }
            }
        }
        let mut empty_non_terminals = HashSet::new();
        for n in names.keys().chain(wildcards.iter().map(|(n, _)| n)) {
            let mut up = n.base_name();
            while !up.is_root() && served.iter().any(|z| z.apex.zone_of(&up)) {
                empty_non_terminals.insert(up.clone());
                up = up.base_name();
            }
        }
        Zone {
            served,
            names,
            wildcards,
            empty_non_terminals,
            glue,
            pops: dns
                .pops
                .iter()
                .map(|p| Pop {
                    name: Arc::from(p.name.as_str()),
                    location: Coord {
                        lat: p.latitude,
                        lon: p.longitude,
                    },
                })
                .collect(),
            pop_addresses: dns.pops.iter().map(|p| p.addresses.clone()).collect(),
            sites: entries,
            ttl: dns.ttl,
            answers: dns.answers,
            ecs_ipv4_prefix: dns.ecs_ipv4_prefix,
            ecs_ipv6_prefix: dns.ecs_ipv6_prefix,
        }
    }

    /// The most specific of our zones holding `name`.
    fn zone_of(&self, name: &LowerName) -> Option<&Served> {
        self.served
            .iter()
            .filter(|z| z.apex.zone_of(name))
            .max_by_key(|z| z.apex.num_labels())
    }

    fn target(&self, name: &LowerName) -> Option<Target> {
        if let Some(t) = self.names.get(name) {
            return Some(t.clone());
        }
        // A wildcard covers names below its base, not the base itself (RFC 4592).
        self.wildcards
            .iter()
            .filter(|(base, _)| base.zone_of(name) && base != name)
            .max_by_key(|(base, _)| base.num_labels())
            .map(|(_, site)| Target::Site(*site))
    }

    /// Answers one question. `client` is asked only when the answer depends on where the
    /// client is (a site's A or AAAA); `states` is the POPs' state, in config order.
    pub fn answer(
        &self,
        q: &Asked<'_>,
        states: &[PopState],
        client: impl FnOnce() -> Client,
    ) -> Reply {
        let mut r = Reply::default();
        let Some(zone) = self.zone_of(q.lower).filter(|_| q.qclass == DNSClass::IN) else {
            r.rcode = ResponseCode::Refused;
            return r;
        };
        r.authoritative = true;
        let apex = *q.lower == zone.apex;
        let owner = q.name.clone();
        match (self.target(q.lower), q.qtype) {
            (_, RecordType::SOA) if apex => r.answers.push(with_owner(&zone.soa, &owner)),
            (_, RecordType::NS) if apex => {
                r.answers
                    .extend(zone.ns.iter().map(|n| with_owner(n, &owner)));
                r.additional.extend(self.glue.iter().cloned());
            }
            (
                Some(Target::Site(site)),
                qtype @ (RecordType::A | RecordType::AAAA | RecordType::ANY),
            ) => {
                let client = client();
                let choice = select::choose(
                    &self.pops,
                    states,
                    &client,
                    &self.sites[site].overrides,
                    self.answers,
                );
                let want_v6 = qtype == RecordType::AAAA;
                for &p in &choice.pops {
                    for ip in &self.pop_addresses[p] {
                        if ip.is_ipv6() == want_v6 {
                            r.answers
                                .push(Record::from_rdata(owner.clone(), self.ttl, rdata(*ip)));
                        }
                    }
                }
                r.located = !matches!(choice.reason, Reason::NoLocation) && self.pops.len() > 1;
                r.site = Some(site);
                r.choice = Some(choice);
            }
            (
                Some(Target::Host(addrs)),
                qtype @ (RecordType::A | RecordType::AAAA | RecordType::ANY),
            ) => {
                let want_v6 = qtype == RecordType::AAAA;
                for ip in addrs.iter().filter(|ip| ip.is_ipv6() == want_v6) {
                    r.answers
                        .push(Record::from_rdata(owner.clone(), STATIC_TTL, rdata(*ip)));
                }
            }
            (None, _) if !apex && !self.empty_non_terminals.contains(q.lower) => {
                r.rcode = ResponseCode::NXDomain;
            }
            _ => {}
        }
        if r.answers.is_empty() {
            // NXDOMAIN or NODATA: the SOA tells resolvers how long to remember it.
            r.authority.push(zone.soa.clone());
        }
        r
    }
}

fn rdata(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    }
}

fn with_owner(rec: &Record, owner: &Name) -> Record {
    let mut r = rec.clone();
    r.name = owner.clone();
    r
}
