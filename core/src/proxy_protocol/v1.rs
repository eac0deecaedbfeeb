//! Version 1: one text line, `PROXY TCP4|TCP6|UNKNOWN …\r\n` (spec §2.1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

/// `buf` starts with `PROXY `.
pub(super) fn parse_v1(buf: &[u8]) -> Result<Option<(Proxied, usize)>, ProxyError> {
    // The CRLF must be within the first 107 bytes; nothing past them matters.
    let window = &buf[..buf.len().min(V1_MAX)];
    let text = &window[V1_SIG.len()..];
    if let Some(end) = text.windows(2).position(|w| w == b"\r\n") {
        let proxied = v1_line(&text[..end], true)?.ok_or(ProxyError::Invalid("v1: no line"))?;
        return Ok(Some((proxied, V1_SIG.len() + end + 2)));
    }
    match text.strip_suffix(b"\r") {
        // The CR may start the CRLF: what precedes it must be a whole line.
        Some(line) => v1_line(line, true)?,
        None => v1_line(text, false)?,
    };
    if window.len() == V1_MAX {
        Err(ProxyError::TooLong)
    } else {
        Ok(None)
    }
}

/// Checks `text`, the line after `PROXY `. When `whole`, it is the line up to (not including)
/// its CRLF, and what it says is returned. Otherwise it is what has arrived so far (no CRLF
/// yet), its last field possibly cut short, and `Ok(None)` means it can still become a line.
fn v1_line(text: &[u8], whole: bool) -> Result<Option<Proxied>, ProxyError> {
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        return Err(ProxyError::Invalid("v1: CR or LF inside the line"));
    }
    let mut fields = text.split(|&b| b == b' ').peekable();
    let protocol = fields.next().unwrap_or_default();
    let complete = whole || fields.peek().is_some();
    let v6 = match protocol {
        // "the receiver must ignore anything presented before the CRLF is found"
        b"UNKNOWN" if complete => return Ok(whole.then_some(Proxied::Local)),
        b"TCP4" if complete => false,
        b"TCP6" if complete => true,
        p if !complete && V1_PROTOCOLS.iter().any(|k| k.starts_with(p)) => return Ok(None),
        _ => return Err(ProxyError::Invalid("v1: unknown protocol")),
    };
    // Source address, destination address, source port, destination port.
    let mut got: [&[u8]; 4] = [b""; 4];
    let mut n = 0;
    while let Some(field) = fields.next() {
        let complete = whole || fields.peek().is_some();
        let Some(slot) = got.get_mut(n) else {
            return Err(ProxyError::Invalid("v1: too many fields"));
        };
        if complete && field.is_empty() {
            return Err(ProxyError::Invalid("v1: empty field (an extra space)"));
        }
        let ok = match (n < 2, complete) {
            (true, true) => ip(field, v6).is_some(),
            (true, false) => ip_prefix(field, v6),
            (false, true) => port(field).is_some(),
            (false, false) => field.is_empty() || port(field).is_some(),
        };
        if !ok {
            return Err(ProxyError::Invalid(match (n < 2, v6) {
                (true, false) => "v1: bad IPv4 address",
                (true, true) => "v1: bad IPv6 address",
                (false, _) => "v1: bad port",
            }));
        }
        *slot = field;
        n += 1;
    }
    if !whole {
        return Ok(None);
    }
    let [src, dst, sport, dport] = got;
    match (ip(src, v6), ip(dst, v6), port(sport), port(dport)) {
        (Some(s), Some(d), Some(sp), Some(dp)) => Ok(Some(Proxied::Addrs {
            source: SocketAddr::new(s, sp),
            destination: SocketAddr::new(d, dp),
        })),
        _ => Err(ProxyError::Invalid("v1: missing fields")),
    }
}

/// A decimal number of 1 to `max_digits` digits without a heading zero (a lone `0` is fine).
fn decimal(s: &[u8], max_digits: usize) -> Option<u32> {
    if s.is_empty() || s.len() > max_digits || (s.len() > 1 && s[0] == b'0') {
        return None;
    }
    s.iter().try_fold(0u32, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
    })
}

fn port(s: &[u8]) -> Option<u16> {
    decimal(s, 5).and_then(|n| u16::try_from(n).ok())
}

fn octet(s: &[u8]) -> Option<u8> {
    decimal(s, 3).and_then(|n| u8::try_from(n).ok())
}

/// Exactly four octets and three dots (std's parser is not relied on for the spec's rules).
fn ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    let mut parts = s.split(|&b| b == b'.');
    let mut octets = [0u8; 4];
    for o in &mut octets {
        *o = octet(parts.next()?)?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

fn ip(s: &[u8], v6: bool) -> Option<IpAddr> {
    if v6 {
        // std takes the textual forms of RFC 4291 §2.2 (`::`, an embedded IPv4 address) and
        // refuses zone indices and brackets.
        let s = std::str::from_utf8(s).ok()?;
        s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        ipv4(s).map(IpAddr::V4)
    }
}

/// Whether `s` can still grow into an address of the family. Exact for IPv4; for IPv6 only
/// the characters and the length (the whole address is checked when it ends).
fn ip_prefix(s: &[u8], v6: bool) -> bool {
    if v6 {
        s.len() <= IPV6_TEXT_MAX
            && s.iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        let parts: Vec<&[u8]> = s.split(|&b| b == b'.').collect();
        match parts.split_last() {
            Some((last, done)) => {
                parts.len() <= 4
                    && done.iter().all(|p| octet(p).is_some())
                    && (last.is_empty() || octet(last).is_some())
            }
            None => true,
        }
    }
}
