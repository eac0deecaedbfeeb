//! IP address ranges: one CIDR ([`Cidr`]) and a set of them looked up by binary search
//! ([`CidrSet`]). The one ACL engine: trust decisions (`node.trusted_peers`, the PROXY protocol
//! sources), geo access lists and site rules' client conditions all use it.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`); a bare address is a /32 or
/// /128. IPv4-mapped IPv6 peers (`::ffff:10.1.2.3`, as a dual-stack socket reports them) match
/// IPv4 ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("127.0.0.0/8", "127.9.9.9", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "::1", false),
            ("10.1.0.0/16", "::ffff:10.1.2.3", true),
            ("2001:db8::/32", "2001:db8:1::5", true),
            ("2001:db8::/32", "2001:db9::5", false),
            ("::1", "::1", true),
            ("::/0", "2001:db8::1", true),
        ];
        for (net, ip, want) in cases {
            let c: Cidr = net.parse().expect("cidr");
            assert_eq!(c.contains(ip.parse().expect("ip")), *want, "{net} ∋ {ip}");
        }
        for bad in ["10.0.0.0/33", "::/129", "nope", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}

/// A set of address ranges, looked up by binary search over merged intervals (a prefix table,
/// not a scan of every range). IPv4 ranges live in the IPv4-mapped part of the IPv6 space.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrSet {
    /// Sorted, disjoint, non-adjacent `[start, end]` intervals.
    intervals: Vec<(u128, u128)>,
}

fn mapped(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => 0xffff_0000_0000 | u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl CidrSet {
    /// The union of `cidrs` (overlapping and adjacent ranges are merged).
    pub fn new(cidrs: &[Cidr]) -> CidrSet {
        let mut iv: Vec<(u128, u128)> = cidrs
            .iter()
            .map(|c| {
                let (base, bits) = match c.addr {
                    IpAddr::V4(_) => (mapped(c.addr), 32 - u32::from(c.prefix)),
                    IpAddr::V6(_) => (mapped(c.addr), 128 - u32::from(c.prefix)),
                };
                let host = if bits >= 128 {
                    u128::MAX
                } else {
                    (1u128 << bits) - 1
                };
                (base & !host, base | host)
            })
            .collect();
        iv.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(iv.len());
        for (start, end) in iv {
            match merged.last_mut() {
                Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        CidrSet { intervals: merged }
    }

    /// Whether the set names no address at all.
    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// Whether `ip` is in any range of the set.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let x = mapped(ip);
        let i = self.intervals.partition_point(|(start, _)| *start <= x);
        i > 0 && self.intervals[i - 1].1 >= x
    }
}

#[cfg(test)]
mod set_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_set_answers_like_its_ranges() {
        let ranges: Vec<Cidr> = [
            "10.0.0.0/8",
            "192.0.2.0/24",
            "192.0.3.0/24",
            "2001:db8::/32",
            "203.0.113.7",
            "0.0.0.0/32",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let set = CidrSet::new(&ranges);
        for ip in [
            "10.0.0.0",
            "10.255.255.255",
            "192.0.2.1",
            "192.0.3.255",
            "2001:db8::1",
            "::ffff:10.1.1.1",
            "203.0.113.7",
            "0.0.0.0",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(set.contains(ip), "{ip}");
            assert!(ranges.iter().any(|c| c.contains(ip)), "{ip}");
        }
        for ip in [
            "11.0.0.0",
            "9.255.255.255",
            "192.0.4.0",
            "2001:db9::",
            "203.0.113.8",
            "::",
            "::1",
            "0.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!set.contains(ip), "{ip}");
        }
        let all = CidrSet::new(&["::/0".parse().unwrap()]);
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        assert!(CidrSet::new(&[]).is_empty());
    }
}
