//! `[dns]` (GeoDNS: the zone, its name servers, the POPs and how their health is judged) and
//! `[sites.dns]` (a site's overrides: pin a country to a POP, keep a POP out).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// The CDN's zone: site `NAME` is answered as `NAME.<zone>` (site owners CNAME to it).
    pub zone: Spanned<String>,
    /// Zones site owners delegated to us with NS records (apex names, which cannot be
    /// CNAMEs): the site hosts inside them are answered directly.
    #[serde(default)]
    pub delegated: Vec<Spanned<String>>,
    /// UDP and TCP addresses `edge dns` serves on.
    #[serde(default)]
    pub listen: Vec<Spanned<String>>,
    /// Where `edge dns` serves `/metrics` (Prometheus); none: not served.
    pub metrics: Option<Spanned<String>>,
    /// TTL of answers: how long a resolver may keep sending visitors to a POP that left.
    #[serde(default = "default_ttl", deserialize_with = "duration")]
    pub ttl: Duration,
    /// POPs in one answer (more: a client can fail over without asking again).
    #[serde(default = "one")]
    pub answers: usize,
    /// The zone's name servers (NS records, with their addresses as glue).
    pub nameservers: Vec<Spanned<NameServer>>,
    /// The SOA's responsible mailbox, as a name (`hostmaster.example.net`).
    pub hostmaster: Option<Spanned<String>>,
    /// Client Subnet (RFC 7871) prefixes used at most, per family: longer ones are cut.
    #[serde(default = "v4_prefix")]
    pub ecs_ipv4_prefix: u8,
    #[serde(default = "v6_prefix")]
    pub ecs_ipv6_prefix: u8,
    #[serde(default)]
    pub probe: Probe,
    #[serde(default)]
    pub overload: Overload,
    pub pops: Vec<Spanned<Pop>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameServer {
    pub name: Spanned<String>,
    #[serde(default)]
    pub addresses: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pop {
    /// The POP's name: the same as its nodes' `[node] pop`, so their reports count for it.
    pub name: Spanned<String>,
    /// Where it is: `[latitude, longitude]` in degrees.
    pub location: Spanned<Vec<f64>>,
    /// The addresses visitors are sent to (A and AAAA records).
    pub addresses: Vec<Spanned<String>>,
    /// URL of a health endpoint (plain HTTP, e.g. a node's `/readyz`); a 2xx is healthy.
    #[serde(default)]
    pub probes: Vec<Spanned<String>>,
    /// Requests per second the POP is sized for (from its nodes' reports); over it, visitors
    /// spill to the next nearest POP.
    pub capacity_rps: Option<Spanned<f64>>,
    /// CPU cores its nodes may use together before it counts as overloaded.
    pub capacity_cpu: Option<Spanned<f64>>,
    /// Taken out of answers by the operator (maintenance): no new visitors, nothing else.
    #[serde(default)]
    pub draining: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Probe {
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Consecutive failures before a POP leaves the answers, successes before it returns.
    pub fall: u32,
    pub rise: u32,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            fall: 2,
            rise: 2,
        }
    }
}

/// Load, as a share of capacity, at which a POP starts (`enter`) and stops (`leave`) spilling.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Overload {
    pub enter: Spanned<f64>,
    pub leave: Spanned<f64>,
}

impl Default for Overload {
    fn default() -> Self {
        Overload {
            enter: Spanned::new(0..0, 1.0),
            leave: Spanned::new(0..0, 0.8),
        }
    }
}

/// `[sites.dns]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteDns {
    /// The label under the zone (default: the site's name).
    pub label: Option<Spanned<String>>,
    /// Country code → POP name: visitors from there get that POP while it is usable.
    pub pin: BTreeMap<String, Spanned<String>>,
    /// POPs never answered for this site.
    pub exclude: Vec<Spanned<String>>,
}

fn default_ttl() -> Duration {
    Duration::from_secs(30)
}
fn one() -> usize {
    1
}
fn v4_prefix() -> u8 {
    24
}
fn v6_prefix() -> u8 {
    56
}
