//! Who the client is behind our own trusted hops (`X-Forwarded-For`, `Forwarded`).

use std::net::IpAddr;

use http::header::HeaderMap;

use super::{FORWARDED, X_FORWARDED_FOR};

/// One address of a forwarding list: `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:443`,
/// `203.0.113.7:80`, or (in `Forwarded`) a quoted form of those.
fn forwarded_addr(item: &str) -> Option<IpAddr> {
    let item = item.trim().trim_matches('"');
    if let Ok(ip) = item.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = item.strip_prefix('[') {
        return rest
            .split(']')
            .next()?
            .parse::<IpAddr>()
            .ok()
            .map(|i| i.to_canonical());
    }
    let (host, port) = item.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The visitor's address behind a trusted peer: walking `X-Forwarded-For` (else the `for=` of
/// `Forwarded`) from the right, the first address that is not one of our trusted hops. A
/// malformed entry stops the walk (nothing to its left is believed): `None`, keep the peer.
/// All trusted: the leftmost.
pub fn client_behind(headers: &HeaderMap, trusted: impl Fn(IpAddr) -> bool) -> Option<IpAddr> {
    let mut items: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|s| !s.trim().is_empty())
        .collect();
    if items.is_empty() {
        items = headers
            .get_all(&FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("for").then_some(v)
                })
            })
            .collect();
    }
    let mut last = None;
    for item in items.iter().rev() {
        let ip = forwarded_addr(item)?;
        if !trusted(ip) {
            return Some(ip);
        }
        last = Some(ip);
    }
    last
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn the_client_behind_trusted_hops() {
        let trusted = |ip: IpAddr| {
            ["10.0.0.1", "10.0.0.2", "2001:db8::1"]
                .iter()
                .any(|t| t.parse::<IpAddr>().ok() == Some(ip))
        };
        let cases: [(&[&str], &[&str], Option<&str>); 12] = [
            (&["203.0.113.7"], &[], Some("203.0.113.7")),
            (&["198.51.100.9, 203.0.113.7"], &[], Some("203.0.113.7")),
            // Our own hops on the right are skipped; a client's claim further left is not read.
            (
                &["198.51.100.9, 203.0.113.7, 10.0.0.2"],
                &[],
                Some("203.0.113.7"),
            ),
            (
                &["198.51.100.9", "203.0.113.7, 10.0.0.1"],
                &[],
                Some("203.0.113.7"),
            ),
            (&["10.0.0.2, 10.0.0.1"], &[], Some("10.0.0.2")),
            (
                &["[2001:db8::7]:443, 2001:db8::1"],
                &[],
                Some("2001:db8::7"),
            ),
            (&["203.0.113.7:8080"], &[], Some("203.0.113.7")),
            (&["::ffff:203.0.113.7"], &[], Some("203.0.113.7")),
            // Garbage stops the walk: nothing left of it is believed.
            (&["203.0.113.7, garbage, 10.0.0.1"], &[], None),
            (&[], &[], None),
            (
                &[],
                &["for=198.51.100.9;proto=https, for=\"[2001:db8::7]:80\""],
                Some("2001:db8::7"),
            ),
            (&[], &["for=unknown"], None),
        ];
        for (xff, fwd, want) in cases {
            let mut h = HeaderMap::new();
            for v in xff {
                h.append(&X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
            }
            for v in fwd {
                h.append(&FORWARDED, HeaderValue::from_str(v).unwrap());
            }
            let want = want.map(|w| w.parse::<IpAddr>().unwrap());
            assert_eq!(client_behind(&h, trusted), want, "{xff:?} {fwd:?}");
        }
    }
}
