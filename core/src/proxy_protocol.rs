//! The PROXY protocol (HAProxy), versions 1 (one text line) and 2 (binary): the header a load
//! balancer in front of the edge sends first on a connection, naming the client it accepted.
//! Spec: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.
//!
//! Sans-IO: [`parse`] looks at the bytes read so far and says whether they hold a whole header
//! (and how long it is), need more, or cannot be one. Answers are final: once [`parse`] returns
//! something other than `Ok(None)` for some bytes, it returns the same for any longer input that
//! starts with them, so a caller can parse after every read. The spec's receiver rules apply:
//! only peers configured as senders may send a header (use [`looks_like_proxy`] to refuse one
//! from anyone else), and a connection whose header is refused is closed, not served.
//!
//! Choices where the spec leaves room:
//! - The v1 signature is `PROXY ` with its space: `PROXY` followed by anything else is not this
//!   protocol ([`ProxyError::NotProxy`]).
//! - v1 follows §2.1 to the letter: single spaces, IPv4 as four decimal octets without heading
//!   zeroes, ports without heading zeroes or signs, and no CR or LF inside the line, not even
//!   after `UNKNOWN` (else an LF-terminated line would swallow the request line after it).
//!   Addresses are returned as written: an IPv4-mapped IPv6 address stays IPv6.
//! - v2 LOCAL skips the whole address block, family byte included (§2.2: "discard the protocol
//!   block including the family which is ignored"); PROXY with AF_UNSPEC skips it too. With
//!   AF_INET, AF_INET6 or AF_UNIX, the bytes after the addresses must be well-framed TLVs
//!   (type, 16-bit length, value); their contents are not checked (nor is a CRC32C TLV).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What the header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxied {
    /// The original client and the address it connected to.
    Addrs {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v1 `PROXY UNKNOWN`, v2 LOCAL command, or v2 AF_UNSPEC/AF_UNIX: keep the real peer address.
    Local,
}

/// Why bytes are refused as a PROXY header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The bytes do not start with either signature (`PROXY ` or the v2 one): something else,
    /// such as an HTTP request or a TLS ClientHello, from a peer that sends no header.
    #[error("not a PROXY protocol header")]
    NotProxy,
    /// A signature, then something the spec does not allow.
    #[error("invalid PROXY protocol header: {0}")]
    Invalid(&'static str),
    /// A v1 line with no CRLF within its first [`V1_MAX`] bytes.
    #[error("PROXY protocol v1 line longer than {V1_MAX} bytes")]
    TooLong,
}

/// The largest header: v1 is at most 107 bytes; cap v2 at 16 + 65535 but callers may cap lower.
pub const V1_MAX: usize = 107;

/// The largest v2 header: the fixed 16 bytes and a length field of at most 65535. A caller that
/// wants a lower cap refuses the connection when it has that many bytes and [`parse`] still
/// returns `Ok(None)`.
pub const V2_MAX: usize = V2_FIXED + u16::MAX as usize;

const V1_SIG: &[u8] = b"PROXY ";
const V1_PROTOCOLS: [&[u8]; 3] = [b"TCP4", b"TCP6", b"UNKNOWN"];
const V2_SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version and command, family and protocol, length.
const V2_FIXED: usize = 16;

/// Longest IPv6 text (six 4-digit groups and an embedded IPv4 address).
const IPV6_TEXT_MAX: usize = 45;

/// Parses a PROXY header at the start of `buf`. Ok(Some((proxied, consumed))) when a whole
/// header is there (consumed = its length in bytes, TLVs included and skipped); Ok(None) when
/// more bytes are needed and what is there so far is a valid prefix; Err when it cannot be a
/// valid header.
///
/// Bytes after the header (the proxied stream) are not looked at. A prefix is checked as far as
/// it goes, so most bad headers are refused before they end; the one approximation is an IPv6
/// address in a v1 line, which is only checked for its characters and length until the space
/// after it arrives.
pub fn parse(buf: &[u8]) -> Result<Option<(Proxied, usize)>, ProxyError> {
    if buf.starts_with(V1_SIG) {
        parse_v1(buf)
    } else if buf.starts_with(V2_SIG) {
        parse_v2(buf)
    } else if looks_like_proxy(buf) {
        Ok(None)
    } else {
        Err(ProxyError::NotProxy)
    }
}

/// Whether `buf` (possibly short) could still be the start of a PROXY header: lets a listener
/// refuse a PROXY header from an untrusted source early.
///
/// True when `buf` and one of the signatures agree on their common length, so also for an
/// empty `buf`; it is false exactly when [`parse`] returns [`ProxyError::NotProxy`]. Six bytes
/// decide for v1 (`PROXY `), twelve for v2 (and fewer for anything that does not start with
/// CR LF).
pub fn looks_like_proxy(buf: &[u8]) -> bool {
    [V1_SIG, V2_SIG].iter().any(|sig| {
        let n = buf.len().min(sig.len());
        buf[..n] == sig[..n]
    })
}

// ---- version 1 ------------------------------------------------------------------------------

/// `buf` starts with `PROXY `.
fn parse_v1(buf: &[u8]) -> Result<Option<(Proxied, usize)>, ProxyError> {
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

// ---- version 2 ------------------------------------------------------------------------------

/// What the family byte asks for, and how many address bytes come before the TLVs.
#[derive(Clone, Copy)]
enum Block {
    /// LOCAL command, or PROXY with AF_UNSPEC: the whole block is skipped.
    Skip,
    Inet,
    Inet6,
    Unix,
}

impl Block {
    fn addr_len(self) -> usize {
        match self {
            Block::Skip => 0,
            Block::Inet => 12,
            Block::Inet6 => 36,
            Block::Unix => 216,
        }
    }
}

/// `buf` starts with the v2 signature.
fn parse_v2(buf: &[u8]) -> Result<Option<(Proxied, usize)>, ProxyError> {
    let Some(&ver_cmd) = buf.get(12) else {
        return Ok(None);
    };
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::Invalid("v2: version is not 2"));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => {
            return Err(ProxyError::Invalid(
                "v2: command is neither LOCAL nor PROXY",
            ));
        }
    };
    let Some(&family) = buf.get(13) else {
        return Ok(None);
    };
    let block = if local {
        Block::Skip
    } else {
        match family {
            0x00 => Block::Skip,
            0x11 => Block::Inet,
            0x21 => Block::Inet6,
            0x31 | 0x32 => Block::Unix,
            0x12 | 0x22 => return Err(ProxyError::Invalid("v2: UDP on a TCP listener")),
            _ => {
                return Err(ProxyError::Invalid(
                    "v2: unknown address family or protocol",
                ));
            }
        }
    };
    let Some(&[hi, lo]) = buf.get(14..V2_FIXED) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    let addr_len = block.addr_len();
    if len < addr_len {
        return Err(ProxyError::Invalid(
            "v2: length shorter than the address block",
        ));
    }
    let total = V2_FIXED + len;
    let body = &buf[V2_FIXED..buf.len().min(total)];
    if !matches!(block, Block::Skip)
        && let Some(tlvs) = body.get(addr_len..)
    {
        check_tlvs(tlvs, len - addr_len)?;
    }
    if buf.len() < total {
        return Ok(None);
    }
    let proxied = match block {
        Block::Inet => addrs::<4, Ipv4Addr>(body),
        Block::Inet6 => addrs::<16, Ipv6Addr>(body),
        Block::Skip | Block::Unix => Some(Proxied::Local),
    };
    let proxied = proxied.ok_or(ProxyError::Invalid("v2: short address block"))?;
    Ok(Some((proxied, total)))
}

/// Source address, destination address, source port, destination port, in network order.
fn addrs<const N: usize, A>(block: &[u8]) -> Option<Proxied>
where
    A: From<[u8; N]> + Into<IpAddr>,
{
    let (src, rest) = block.split_first_chunk::<N>()?;
    let (dst, rest) = rest.split_first_chunk::<N>()?;
    let (sport, rest) = rest.split_first_chunk::<2>()?;
    let (dport, _) = rest.split_first_chunk::<2>()?;
    Some(Proxied::Addrs {
        source: SocketAddr::new(A::from(*src).into(), u16::from_be_bytes(*sport)),
        destination: SocketAddr::new(A::from(*dst).into(), u16::from_be_bytes(*dport)),
    })
}

/// Walks the TLVs that have arrived (`tlvs`) of the `declared` bytes the header gives them:
/// each is a type byte, a big-endian 16-bit length and that many bytes, and together they fill
/// the header exactly.
fn check_tlvs(tlvs: &[u8], declared: usize) -> Result<(), ProxyError> {
    let mut at = 0;
    while at < declared {
        if declared - at < 3 {
            return Err(ProxyError::Invalid("v2: truncated TLV"));
        }
        let Some(&[_, hi, lo]) = tlvs.get(at..at + 3) else {
            return Ok(()); // the rest has not arrived yet
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if declared - at - 3 < len {
            return Err(ProxyError::Invalid("v2: TLV longer than the header"));
        }
        at += 3 + len;
    }
    Ok(())
}

/// Fuzz entry point (`fuzz/fuzz_targets/proxy_protocol.rs`), also run by the tests below: parses
/// arbitrary bytes and their prefixes and asserts what must hold for every input.
pub mod fuzzing {
    use std::mem::discriminant;

    use super::{Proxied, ProxyError, V1_MAX, V1_SIG, V2_MAX, looks_like_proxy, parse};

    /// Every prefix up to this length is parsed; longer inputs are sampled.
    const DENSE: usize = 160;

    type Outcome = Result<Option<(Proxied, usize)>, ProxyError>;

    fn same(a: &Outcome, b: &Outcome) -> bool {
        match (a, b) {
            (Ok(a), Ok(b)) => a == b,
            (Err(a), Err(b)) => discriminant(a) == discriminant(b),
            _ => false,
        }
    }

    /// `data` as bytes arriving on a connection: the answer is `Ok(None)` until enough have
    /// arrived, then one final answer that more bytes do not change.
    pub fn check(data: &[u8]) {
        let whole = parse(data);
        match whole {
            Ok(Some((_, consumed))) => {
                assert!(
                    consumed <= data.len() && consumed <= V2_MAX,
                    "{consumed} for {data:?}"
                );
                assert!(!data.starts_with(V1_SIG) || consumed <= V1_MAX, "{data:?}");
                assert_eq!(parse(&data[..consumed]), whole, "{data:?}");
                assert_eq!(parse(&data[..consumed - 1]), Ok(None), "{data:?}");
            }
            Ok(None) => {
                assert!(data.len() < V2_MAX, "{data:?}");
                assert!(!data.starts_with(V1_SIG) || data.len() < V1_MAX, "{data:?}");
            }
            Err(_) => {}
        }

        let mut lens: Vec<usize> = (0..=data.len().min(DENSE)).collect();
        lens.extend((1..=32).map(|i| data.len() * i / 32));
        lens.sort_unstable();
        lens.dedup();
        let mut settled: Option<(usize, Outcome)> = None;
        for k in lens {
            let prefix = &data[..k];
            let r = parse(prefix);
            assert_eq!(
                looks_like_proxy(prefix),
                r != Err(ProxyError::NotProxy),
                "looks_like_proxy disagrees with {r:?} for {prefix:?}"
            );
            match &settled {
                None if r == Ok(None) => {}
                None => settled = Some((k, r)),
                Some((at, first)) => assert!(
                    same(first, &r),
                    "{first:?} after {at} bytes, then {r:?} after {k} of {data:?}"
                ),
            }
        }

        if whole != Ok(None) {
            for tail in [&b"\r\n"[..], b" ", b"\0", V1_SIG] {
                let longer = [data, tail].concat();
                let r = parse(&longer);
                assert!(same(&whole, &r), "{whole:?}, then {r:?} for {longer:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const TRAILER: &[u8] = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";

    fn v2(ver_cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIG.to_vec();
        h.extend_from_slice(&[ver_cmd, family]);
        h.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    fn inet_body() -> Vec<u8> {
        // 192.0.2.1:12345 -> 198.51.100.7:443
        vec![192, 0, 2, 1, 198, 51, 100, 7, 0x30, 0x39, 0x01, 0xbb]
    }

    fn inet6_body() -> Vec<u8> {
        let mut b = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        b.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(&[0x30, 0x39, 0x01, 0xbb]);
        b
    }

    fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
        let mut t = vec![kind];
        t.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
        t.extend_from_slice(value);
        t
    }

    fn with(mut a: Vec<u8>, parts: &[&[u8]]) -> Vec<u8> {
        for p in parts {
            a.extend_from_slice(p);
        }
        a
    }

    fn addrs(source: &str, destination: &str) -> Proxied {
        Proxied::Addrs {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        }
    }

    fn valid_cases() -> Vec<(&'static str, Vec<u8>, Proxied)> {
        let v4 = addrs("192.0.2.1:12345", "198.51.100.7:443");
        let v6 = addrs("[2001:db8::1]:12345", "[2001:db8::2]:443");
        let ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let tlvs = [
            tlv(0x01, b"h2"),
            tlv(0x02, b"example.com"),
            tlv(0x04, b""),
            tlv(0x03, &[1, 2, 3, 4]),
            tlv(
                0x20,
                &with(vec![0x07, 0, 0, 0, 0], &[&tlv(0x21, b"TLSv1.3")]),
            ),
        ]
        .concat();
        vec![
            (
                "v1 tcp4",
                b"PROXY TCP4 192.0.2.1 198.51.100.7 12345 443\r\n".to_vec(),
                v4,
            ),
            (
                "v1 tcp4 extremes",
                b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n".to_vec(),
                addrs("0.0.0.0:0", "255.255.255.255:65535"),
            ),
            (
                "v1 tcp6",
                b"PROXY TCP6 2001:db8::1 2001:db8::2 12345 443\r\n".to_vec(),
                v6,
            ),
            (
                "v1 tcp6 longest (104 bytes)",
                format!("PROXY TCP6 {ffff} {ffff} 65535 65535\r\n").into_bytes(),
                addrs(&format!("[{ffff}]:65535"), &format!("[{ffff}]:65535")),
            ),
            (
                "v1 tcp6 upper case, IPv4-mapped kept as IPv6",
                b"PROXY TCP6 ::FFFF:192.0.2.1 ::1 1 2\r\n".to_vec(),
                addrs("[::ffff:192.0.2.1]:1", "[::1]:2"),
            ),
            (
                "v1 unknown short",
                b"PROXY UNKNOWN\r\n".to_vec(),
                Proxied::Local,
            ),
            (
                "v1 unknown with addresses",
                b"PROXY UNKNOWN 2001:db8::1 2001:db8::2 1 2\r\n".to_vec(),
                Proxied::Local,
            ),
            (
                "v1 unknown with anything but CR/LF",
                b"PROXY UNKNOWN  whatever\t \x00\xff  \r\n".to_vec(),
                Proxied::Local,
            ),
            (
                "v1 unknown worst case (107 bytes)",
                [&b"PROXY UNKNOWN "[..], &[b'x'; 91], b"\r\n"].concat(),
                Proxied::Local,
            ),
            ("v2 ipv4", v2(0x21, 0x11, &inet_body()), v4),
            ("v2 ipv6", v2(0x21, 0x21, &inet6_body()), v6),
            ("v2 local", v2(0x20, 0x00, b""), Proxied::Local),
            (
                "v2 local with addresses",
                v2(0x20, 0x11, &inet_body()),
                Proxied::Local,
            ),
            (
                "v2 local ignores the family byte",
                v2(0x20, 0xff, b"abc"),
                Proxied::Local,
            ),
            ("v2 unspec", v2(0x21, 0x00, b""), Proxied::Local),
            (
                "v2 unspec with a block",
                v2(0x21, 0x00, b"junk"),
                Proxied::Local,
            ),
            ("v2 unix stream", v2(0x21, 0x31, &[0; 216]), Proxied::Local),
            ("v2 unix dgram", v2(0x21, 0x32, &[0; 216]), Proxied::Local),
            (
                "v2 ipv4 with TLVs",
                v2(0x21, 0x11, &[inet_body(), tlvs.clone()].concat()),
                v4,
            ),
            (
                "v2 ipv6 with TLVs",
                v2(0x21, 0x21, &[inet6_body(), tlvs].concat()),
                v6,
            ),
            (
                "v2 ipv4 with a 2000-byte NOOP TLV",
                v2(
                    0x21,
                    0x11,
                    &[inet_body(), tlv(0x04, &[0xaa; 2000])].concat(),
                ),
                v4,
            ),
        ]
    }

    #[test]
    fn valid_headers() {
        for (name, header, want) in valid_cases() {
            let len = header.len();
            assert_eq!(parse(&header), Ok(Some((want, len))), "{name}");
            assert!(looks_like_proxy(&header), "{name}");
            // What follows the header is the proxied stream: not consumed.
            let stream = [&header[..], TRAILER].concat();
            assert_eq!(
                parse(&stream),
                Ok(Some((want, len))),
                "{name}: with a request after it"
            );
            for k in 0..len {
                assert_eq!(parse(&header[..k]), Ok(None), "{name}: first {k} bytes");
                assert!(looks_like_proxy(&header[..k]), "{name}: first {k} bytes");
            }
            fuzzing::check(&header);
            fuzzing::check(&stream);
        }
    }

    #[test]
    fn not_proxy_as_soon_as_both_signatures_differ() {
        let mut v2_last = V2_SIG.to_vec();
        v2_last[11] = 0x0b;
        // (name, input, length of the shortest prefix that is refused)
        let cases: Vec<(&str, Vec<u8>, usize)> = vec![
            (
                "http/1.1 request",
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
                1,
            ),
            (
                "http/2 preface",
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
                3,
            ),
            ("PROPFIND", b"PROPFIND / HTTP/1.1\r\n".to_vec(), 4),
            ("PUT", b"PUT / HTTP/1.1\r\n".to_vec(), 2),
            (
                "tls client hello",
                vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01],
                1,
            ),
            (
                "lower case",
                b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
                1,
            ),
            ("PROXY without its space", b"PROXY\r\n".to_vec(), 6),
            (
                "PROXY and a tab",
                b"PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
                6,
            ),
            (
                "empty line then request",
                b"\r\nGET / HTTP/1.1\r\n".to_vec(),
                3,
            ),
            (
                "two empty lines then request",
                b"\r\n\r\nGET / HTTP/1.1\r\n".to_vec(),
                5,
            ),
            (
                "v2 signature, lower case quit",
                b"\r\n\r\n\0\r\nquit\n\x21\x11".to_vec(),
                8,
            ),
            (
                "v2 signature, last byte off",
                [v2_last, vec![0x21, 0x11, 0, 0]].concat(),
                12,
            ),
            ("zeros", vec![0; 20], 1),
            ("0xff", vec![0xff; 20], 1),
        ];
        assert_eq!(parse(b""), Ok(None));
        assert!(looks_like_proxy(b""));
        for (name, input, refused_at) in cases {
            for k in 0..=input.len() {
                let prefix = &input[..k];
                if k < refused_at {
                    assert_eq!(parse(prefix), Ok(None), "{name}: first {k} bytes");
                    assert!(looks_like_proxy(prefix), "{name}: first {k} bytes");
                } else {
                    assert_eq!(
                        parse(prefix),
                        Err(ProxyError::NotProxy),
                        "{name}: first {k} bytes"
                    );
                    assert!(!looks_like_proxy(prefix), "{name}: first {k} bytes");
                }
            }
            fuzzing::check(&input);
        }
    }

    /// (name, input, what the refusal mentions, or "too long" for [`ProxyError::TooLong`]).
    fn invalid_cases() -> Vec<(&'static str, Vec<u8>, &'static str)> {
        let v = |s: &str| s.as_bytes().to_vec();
        let ffff4 = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
        vec![
            (
                "v1 unknown protocol",
                v("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"),
                "protocol",
            ),
            (
                "v1 lower case protocol",
                v("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"),
                "protocol",
            ),
            (
                "v1 UDP4",
                v("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"),
                "protocol",
            ),
            ("v1 UNKNOWNX", v("PROXY UNKNOWNX\r\n"), "protocol"),
            ("v1 no protocol", v("PROXY \r\n"), "protocol"),
            (
                "v1 two spaces after PROXY",
                v("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
                "protocol",
            ),
            ("v1 TCP4 without addresses", v("PROXY TCP4\r\n"), "missing"),
            ("v1 TCP4 with IPv6", v("PROXY TCP4 ::1 ::1 1 2\r\n"), "IPv4"),
            (
                "v1 TCP6 with IPv4",
                v("PROXY TCP6 192.0.2.1 192.0.2.2 1 2\r\n"),
                "IPv6",
            ),
            (
                "v1 TCP6 mixed",
                v("PROXY TCP6 ::1 192.0.2.2 1 2\r\n"),
                "IPv6",
            ),
            (
                "v1 octet 256",
                v("PROXY TCP4 256.0.0.1 10.0.0.1 1 2\r\n"),
                "IPv4",
            ),
            (
                "v1 three octets",
                v("PROXY TCP4 1.2.3 10.0.0.1 1 2\r\n"),
                "IPv4",
            ),
            (
                "v1 five octets",
                v("PROXY TCP4 1.2.3.4.5 10.0.0.1 1 2\r\n"),
                "IPv4",
            ),
            (
                "v1 heading zero octet",
                v("PROXY TCP4 10.0.0.1 10.00.0.1 1 2\r\n"),
                "IPv4",
            ),
            (
                "v1 empty octet",
                v("PROXY TCP4 10..0.1 10.0.0.1 1 2\r\n"),
                "IPv4",
            ),
            (
                "v1 junk after address",
                v("PROXY TCP4 1.2.3.4x 10.0.0.1 1 2\r\n"),
                "IPv4",
            ),
            (
                "v1 IPv6 zone",
                v("PROXY TCP6 fe80::1%eth0 fe80::2 1 2\r\n"),
                "IPv6",
            ),
            (
                "v1 IPv6 brackets",
                v("PROXY TCP6 [::1] ::1 1 2\r\n"),
                "IPv6",
            ),
            (
                "v1 IPv6 nine groups",
                v("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n"),
                "IPv6",
            ),
            (
                "v1 IPv6 two ::",
                v("PROXY TCP6 1::2::3 ::1 1 2\r\n"),
                "IPv6",
            ),
            (
                "v1 port 65536",
                v("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"),
                "port",
            ),
            (
                "v1 port 99999",
                v("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"),
                "port",
            ),
            (
                "v1 port 6 digits",
                v("PROXY TCP4 1.2.3.4 5.6.7.8 000001 2\r\n"),
                "port",
            ),
            (
                "v1 port +80",
                v("PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n"),
                "port",
            ),
            (
                "v1 port -1",
                v("PROXY TCP4 1.2.3.4 5.6.7.8 -1 443\r\n"),
                "port",
            ),
            (
                "v1 port heading zero",
                v("PROXY TCP4 1.2.3.4 5.6.7.8 80 0443\r\n"),
                "port",
            ),
            (
                "v1 port hex",
                v("PROXY TCP4 1.2.3.4 5.6.7.8 0x50 443\r\n"),
                "port",
            ),
            (
                "v1 two spaces",
                v("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"),
                "extra space",
            ),
            (
                "v1 trailing space",
                v("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"),
                "too many",
            ),
            (
                "v1 missing port",
                v("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"),
                "missing",
            ),
            (
                "v1 extra field",
                v("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"),
                "too many",
            ),
            (
                "v1 tab separator",
                v("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"),
                "IPv4",
            ),
            (
                "v1 LF only (must not swallow the request line)",
                v("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nGET / HTTP/1.1\r\n"),
                "CR or LF",
            ),
            (
                "v1 UNKNOWN LF only",
                v("PROXY UNKNOWN\nGET / HTTP/1.1\r\n"),
                "CR or LF",
            ),
            (
                "v1 CR only",
                v("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\r\n"),
                "CR or LF",
            ),
            ("v1 CR CR LF", v("PROXY UNKNOWN\r\r\n"), "CR or LF"),
            (
                "v1 109 bytes",
                [&b"PROXY UNKNOWN "[..], &[b'x'; 93], b"\r\n"].concat(),
                "too long",
            ),
            (
                "v1 107 bytes, no CRLF",
                [&b"PROXY UNKNOWN "[..], &[b'x'; 93]].concat(),
                "too long",
            ),
            (
                "v1 CRLF split across byte 107",
                [&b"PROXY UNKNOWN "[..], &[b'x'; 92], b"\r\n"].concat(),
                "too long",
            ),
            (
                "v1 no CRLF in a long stream",
                [&b"PROXY UNKNOWN "[..], &[b'x'; 500], b"\r\n"].concat(),
                "too long",
            ),
            (
                "v1 TCP6 with two 45-character addresses (116 bytes)",
                format!("PROXY TCP6 {ffff4} {ffff4} 65535 65535\r\n").into_bytes(),
                "too long",
            ),
            ("v2 version 1", v2(0x11, 0x11, &inet_body()), "version"),
            ("v2 version 0", v2(0x01, 0x11, &inet_body()), "version"),
            ("v2 version 3", v2(0x31, 0x11, &inet_body()), "version"),
            ("v2 version f", v2(0xf0, 0x00, b""), "version"),
            ("v2 command 2", v2(0x22, 0x11, &inet_body()), "command"),
            ("v2 command f", v2(0x2f, 0x11, &inet_body()), "command"),
            ("v2 udp4", v2(0x21, 0x12, &inet_body()), "UDP"),
            ("v2 udp6", v2(0x21, 0x22, &inet6_body()), "UDP"),
            (
                "v2 inet unspec protocol",
                v2(0x21, 0x10, &inet_body()),
                "family",
            ),
            ("v2 unspec family stream", v2(0x21, 0x01, b""), "family"),
            ("v2 inet protocol 3", v2(0x21, 0x13, &inet_body()), "family"),
            ("v2 family 4", v2(0x21, 0x41, &inet_body()), "family"),
            ("v2 family ff", v2(0x21, 0xff, &inet_body()), "family"),
            ("v2 ipv4 length 0", v2(0x21, 0x11, b""), "length"),
            (
                "v2 ipv4 length 11",
                v2(0x21, 0x11, &inet_body()[..11]),
                "length",
            ),
            (
                "v2 ipv6 length 35",
                v2(0x21, 0x21, &inet6_body()[..35]),
                "length",
            ),
            (
                "v2 ipv6 with IPv4 addresses",
                v2(0x21, 0x21, &inet_body()),
                "length",
            ),
            ("v2 unix length 215", v2(0x21, 0x31, &[0; 215]), "length"),
            (
                "v2 TLV header cut",
                v2(0x21, 0x11, &with(inet_body(), &[&[0x01, 0x00]])),
                "TLV",
            ),
            (
                "v2 TLV value past the header",
                v2(
                    0x21,
                    0x11,
                    &with(inet_body(), &[&[0x01, 0x00, 0x05, b'h', b'2']]),
                ),
                "TLV",
            ),
            (
                "v2 one byte after the TLVs",
                v2(
                    0x21,
                    0x11,
                    &with(inet_body(), &[&tlv(0x01, b"h2"), &[0x04]]),
                ),
                "TLV",
            ),
            (
                "v2 unix with a bad TLV",
                v2(0x21, 0x31, &with(vec![0; 216], &[&[0x04, 0xff, 0xff]])),
                "TLV",
            ),
        ]
    }

    #[test]
    fn invalid_headers() {
        for (name, input, want) in invalid_cases() {
            let got = parse(&input);
            match (want, &got) {
                ("too long", Err(ProxyError::TooLong)) => {}
                (_, Err(ProxyError::Invalid(why))) if why.contains(want) => {}
                _ => panic!("{name}: {got:?}, want an error about {want:?}"),
            }
            assert!(looks_like_proxy(&input), "{name}");
            // Final: more bytes do not change the answer.
            assert_eq!(
                parse(&[&input[..], TRAILER].concat()),
                got,
                "{name}: with more bytes"
            );
            fuzzing::check(&input);
        }
    }

    /// A prefix that cannot grow into a header is refused before the header would end.
    #[test]
    fn invalid_prefixes_are_refused_early() {
        let sig = |rest: &[u8]| [V2_SIG, rest].concat();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("v1 protocol", b"PROXY TCP5".to_vec(), "protocol"),
            ("v1 protocol, one byte", b"PROXY X".to_vec(), "protocol"),
            ("v1 IPv6 in TCP4", b"PROXY TCP4 ::".to_vec(), "IPv4"),
            ("v1 octet 256", b"PROXY TCP4 256".to_vec(), "IPv4"),
            ("v1 heading zero", b"PROXY TCP4 01".to_vec(), "IPv4"),
            ("v1 five octets", b"PROXY TCP4 1.2.3.4.".to_vec(), "IPv4"),
            ("v1 IPv4 in TCP6", b"PROXY TCP6 1.2.3.4 ".to_vec(), "IPv6"),
            (
                "v1 IPv6 character",
                b"PROXY TCP6 2001:db8::g".to_vec(),
                "IPv6",
            ),
            (
                "v1 IPv6 over 45 characters",
                [&b"PROXY TCP6 "[..], &[b'0'; 46]].concat(),
                "IPv6",
            ),
            (
                "v1 port 65536",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 65536".to_vec(),
                "port",
            ),
            (
                "v1 port heading zero",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 01".to_vec(),
                "port",
            ),
            (
                "v1 port sign",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 +".to_vec(),
                "port",
            ),
            ("v1 two spaces", b"PROXY TCP4  ".to_vec(), "extra space"),
            (
                "v1 fifth field",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ".to_vec(),
                "too many",
            ),
            (
                "v1 CR not ending a line",
                b"PROXY TCP4 1.2.3.4\r".to_vec(),
                "missing",
            ),
            ("v1 bare LF", b"PROXY UNKNOWN\n".to_vec(), "CR or LF"),
            (
                "v1 CR then not LF",
                b"PROXY UNKNOWN\rx".to_vec(),
                "CR or LF",
            ),
            ("v2 version", sig(&[0x11]), "version"),
            ("v2 command", sig(&[0x23]), "command"),
            ("v2 udp", sig(&[0x21, 0x12]), "UDP"),
            ("v2 family", sig(&[0x21, 0x51]), "family"),
            ("v2 length", sig(&[0x21, 0x21, 0x00, 0x0c]), "length"),
            (
                "v2 TLV past the header",
                sig(&with(
                    vec![0x21, 0x11, 0x00, 0x10],
                    &[&inet_body(), &[0x01, 0x00, 0x02]],
                )),
                "TLV",
            ),
        ];
        for (name, input, want) in cases {
            match parse(&input) {
                Err(ProxyError::Invalid(why)) if why.contains(want) => {}
                got => panic!("{name}: {got:?}, want an error about {want:?}"),
            }
            fuzzing::check(&input);
        }
    }

    #[test]
    fn truncated_v2_waits_for_the_rest() {
        let long_tlv = v2(0x21, 0x11, &[inet_body(), tlv(0x02, &[b'a'; 300])].concat());
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("signature only", V2_SIG.to_vec()),
            ("no length", sig_plus(&[0x21, 0x11])),
            ("half the length", sig_plus(&[0x21, 0x11, 0x00])),
            ("addresses cut", v2(0x21, 0x11, &inet_body())[..20].to_vec()),
            (
                "ipv6 addresses cut",
                v2(0x21, 0x21, &inet6_body())[..51].to_vec(),
            ),
            ("TLV header cut", long_tlv[..30].to_vec()),
            ("TLV value cut", long_tlv[..200].to_vec()),
            (
                "declares 65535 bytes",
                [sig_plus(&[0x20, 0x00, 0xff, 0xff]), vec![0; 1000]].concat(),
            ),
        ];
        for (name, input) in cases {
            assert_eq!(parse(&input), Ok(None), "{name}");
            fuzzing::check(&input);
        }
        // The longest header the length field allows.
        let max = [sig_plus(&[0x20, 0x00, 0xff, 0xff]), vec![0; 65535]].concat();
        assert_eq!(max.len(), V2_MAX);
        assert_eq!(parse(&max), Ok(Some((Proxied::Local, V2_MAX))));
        assert_eq!(parse(&max[..V2_MAX - 1]), Ok(None));
    }

    fn sig_plus(rest: &[u8]) -> Vec<u8> {
        [V2_SIG, rest].concat()
    }

    /// A small deterministic stand-in for the fuzzer on stable: every one-byte change and cut
    /// of each table input keeps the invariants of [`fuzzing::check`].
    #[test]
    fn mutations_keep_the_invariants() {
        let mut inputs: Vec<Vec<u8>> = valid_cases().into_iter().map(|(_, h, _)| h).collect();
        inputs.extend(invalid_cases().into_iter().map(|(_, i, _)| i));
        for input in inputs.iter().filter(|i| i.len() <= 256) {
            for at in 0..input.len() {
                for b in [
                    0x00, 0x20, b'\r', b'\n', b'0', b'9', b':', b'.', 0x11, 0x21, 0xff,
                ] {
                    let mut m = input.clone();
                    m[at] = b;
                    fuzzing::check(&m);
                }
                let mut cut = input.clone();
                cut.remove(at);
                fuzzing::check(&cut);
            }
        }
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            ProxyError::NotProxy.to_string(),
            "not a PROXY protocol header"
        );
        assert_eq!(
            ProxyError::Invalid("v1: bad port").to_string(),
            "invalid PROXY protocol header: v1: bad port"
        );
        assert_eq!(
            ProxyError::TooLong.to_string(),
            "PROXY protocol v1 line longer than 107 bytes"
        );
    }
}
