//! GeoDNS settings as compiled (`[dns]`, `[sites.dns]`): checked names, parsed addresses. What
//! the DNS server (`edge-dns`) reads; it never sees the TOML.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct GeoDns {
    /// The CDN's zone, lower case, without the trailing dot.
    pub zone: String,
    /// Zones delegated to us by site owners (lower case, no trailing dot).
    pub delegated: Vec<String>,
    pub listen: Vec<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    /// Of answers, in seconds.
    pub ttl: u32,
    /// POPs per answer, at least 1.
    pub answers: usize,
    pub nameservers: Vec<NameServer>,
    /// The SOA's mailbox name (lower case, no trailing dot).
    pub hostmaster: String,
    pub ecs_ipv4_prefix: u8,
    pub ecs_ipv6_prefix: u8,
    pub probe: ProbeSettings,
    pub overload_enter: f64,
    pub overload_leave: f64,
    pub pops: Vec<DnsPop>,
}

#[derive(Debug, Clone)]
pub struct NameServer {
    /// Lower case, no trailing dot.
    pub name: String,
    pub addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, Copy)]
pub struct ProbeSettings {
    pub interval: Duration,
    pub timeout: Duration,
    pub fall: u32,
    pub rise: u32,
}

#[derive(Debug, Clone)]
pub struct DnsPop {
    pub name: String,
    pub latitude: f64,
    pub longitude: f64,
    pub addresses: Vec<IpAddr>,
    /// Plain-HTTP health URLs; none: health comes from node reports alone (or it is up).
    pub probes: Vec<http::Uri>,
    pub capacity_rps: Option<f64>,
    pub capacity_cpu: Option<f64>,
    pub draining: bool,
}

/// A site's GeoDNS overrides.
#[derive(Debug, Clone, Default)]
pub struct SiteDns {
    /// The label under the zone: the site is `LABEL.<zone>` (lower case).
    pub label: String,
    /// Country (upper case) → POP name.
    pub pin: Vec<([u8; 2], String)>,
    pub exclude: Vec<String>,
}

/// Whether `name` (no trailing dot) is a host name DNS can carry: labels of 1 to 63 letters,
/// digits and hyphens (not at either end), 253 characters in all.
pub fn is_dns_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns_label)
}

pub fn is_dns_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}
