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

use std::net::SocketAddr;

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

pub mod fuzzing;
mod v1;
mod v2;

use v1::parse_v1;
use v2::parse_v2;

#[cfg(test)]
mod tests;
