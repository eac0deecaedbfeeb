//! The origin request's header fields in one pass: the client's, less hop-by-hop and
//! forwarding fields, plus what the origin is told of the client and of us.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::{
    FORWARDED, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID, append_list,
};

pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Who sent a request and what the origin is told about it.
pub struct Upstream<'a> {
    pub client_ip: IpAddr,
    /// The peer is one of ours (`node.trusted_peers`): its forwarding headers are kept.
    pub trusted: bool,
    pub scheme: &'static str,
    /// The `Host` the origin receives (normalised name, listener port when not the default).
    pub host: &'a HeaderValue,
    /// This hop's `Via` entry (`2 node`).
    pub via: &'a str,
    pub request_id: &'a str,
    /// The site's steering headers to remove.
    pub strip: &'a [HeaderName],
    /// The client's fields this request leaves out besides (a fill's conditionals and range).
    pub skip: &'a [HeaderName],
}

/// A client's request head as the origin gets it, built in one pass over the client's fields
/// (a miss used to copy them and then remove some twenty names one hash lookup at a time).
/// Framing is ours: the client's `Content-Length` goes (the origin client frames the body we
/// actually send), and so do hop-by-hop fields and those `Connection` names. Steering headers
/// the cache does not key on go. From peers we do not trust, the forwarding headers
/// (`Forwarded`, `X-Forwarded-Proto`/`-Host`, `X-Real-IP`, `X-Request-Id`, `Via`) are dropped
/// and replaced by ours, and `X-Forwarded-For` is appended to: its leftmost entries are only
/// the client's claim. `Host` is ours and goes first, as clients send it.
pub fn upstream_fields(src: &HeaderMap, u: &Upstream<'_>) -> HeaderMap {
    let named = connection_tokens(src);
    let mut out = HeaderMap::with_capacity(src.len() + 8);
    out.insert(header::HOST, u.host.clone());
    for (name, value) in src {
        if forwarded_as_is(name, u, &named) {
            out.append(name.clone(), value.clone());
        }
    }
    let client = u.client_ip.to_canonical();
    let mut ip = String::with_capacity(48);
    push_ip(&mut ip, client);
    append_list(&mut out, &X_FORWARDED_FOR, &ip);
    out.append(&X_FORWARDED_PROTO, HeaderValue::from_static(u.scheme));
    out.append(&X_FORWARDED_HOST, u.host.clone());
    let host = u.host.to_str().unwrap_or("");
    let mut fwd = String::with_capacity(ip.len() + host.len() + 32);
    fwd.push_str("for=");
    if client.is_ipv6() {
        fwd.push_str("\"[");
        fwd.push_str(&ip);
        fwd.push_str("]\"");
    } else {
        fwd.push_str(&ip);
    }
    fwd.push_str(";host=\"");
    fwd.push_str(host);
    fwd.push_str("\";proto=");
    fwd.push_str(u.scheme);
    append_list(&mut out, &FORWARDED, &fwd);
    if !(u.trusted && out.contains_key(&X_REAL_IP))
        && let Ok(v) = HeaderValue::from_str(&ip)
    {
        out.append(&X_REAL_IP, v);
    }
    append_list(&mut out, &header::VIA, u.via);
    if !(u.trusted && out.contains_key(&X_REQUEST_ID))
        && let Ok(v) = HeaderValue::from_str(u.request_id)
    {
        out.append(&X_REQUEST_ID, v);
    }
    out
}

/// Whether a client's field goes to the origin as it came (see `upstream_fields`).
fn forwarded_as_is(name: &HeaderName, u: &Upstream<'_>, named: &[&[u8]]) -> bool {
    match name.as_str() {
        // `HOP_BY_HOP` spelled as a match (a comparison per name otherwise costs ~500
        // instructions a miss); `every_hop_by_hop_field_stays_behind` keeps the two together.
        "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade"
        | "proxy-connection" => false,
        "host" | "content-length" | "x-forwarded-proto" | "x-forwarded-host" => false,
        "forwarded" | "x-real-ip" | "x-request-id" | "via" => u.trusted,
        n => {
            !u.strip.contains(name)
                && !u.skip.contains(name)
                && !named.iter().any(|t| t.eq_ignore_ascii_case(n.as_bytes()))
        }
    }
}

/// The field names a message's `Connection` header lists (bytes, not `to_str`: one obs-text
/// member must not hide the names beside it). No allocation without a `Connection` field.
fn connection_tokens(headers: &HeaderMap) -> Vec<&[u8]> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
        .collect()
}

/// An address as text, IPv4 without `fmt` (three fields of every miss carry it).
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::HOP_BY_HOP;
    use super::super::strip_hop_by_hop;
    use super::super::tests::hop_by_hop;
    use super::*;

    fn rewritten(trusted: bool, h: &mut HeaderMap) {
        rewritten_from(trusted, h, "127.0.0.1");
    }

    fn rewritten_from(trusted: bool, h: &mut HeaderMap, client: &str) {
        let host = HeaderValue::from_static("a.example:8443");
        *h = upstream_fields(
            h,
            &Upstream {
                client_ip: client.parse().expect("ip"),
                trusted,
                scheme: "https",
                host: &host,
                via: "2 pop-1",
                request_id: "ours",
                strip: &[HeaderName::from_static("x-original-url")],
                skip: &[header::RANGE],
            },
        );
    }

    fn spoofed() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(&X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.7"));
        h.append(&X_FORWARDED_FOR, HeaderValue::from_static("198.51.100.1"));
        h.insert(header::VIA, HeaderValue::from_static("1.1 other"));
        h.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("spoofed"));
        h.insert(&X_FORWARDED_HOST, HeaderValue::from_static("evil"));
        h.insert(&X_REAL_IP, HeaderValue::from_static("1.2.3.4"));
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("theirs"));
        h.insert(&FORWARDED, HeaderValue::from_static("for=1.2.3.4"));
        h.insert("x-original-url", HeaderValue::from_static("/admin"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        h.insert(header::HOST, HeaderValue::from_static("EVIL:6666"));
        h
    }

    #[test]
    fn untrusted_forwarding_headers_are_replaced() {
        let mut h = spoofed();
        rewritten(false, &mut h);
        assert_eq!(h[&X_FORWARDED_FOR], "203.0.113.7, 198.51.100.1, 127.0.0.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        assert_eq!(h[&X_FORWARDED_HOST], "a.example:8443");
        assert_eq!(h[&X_REAL_IP], "127.0.0.1");
        assert_eq!(h[&X_REQUEST_ID], "ours");
        assert_eq!(
            h[&FORWARDED],
            "for=127.0.0.1;host=\"a.example:8443\";proto=https"
        );
        assert_eq!(h[header::VIA], "2 pop-1");
        assert_eq!(h[header::HOST], "a.example:8443");
        assert!(!h.contains_key("x-original-url"));
        assert!(!h.contains_key(header::CONTENT_LENGTH));
    }

    #[test]
    fn trusted_forwarding_headers_are_kept() {
        let mut h = spoofed();
        rewritten(true, &mut h);
        assert_eq!(h[&X_REAL_IP], "1.2.3.4");
        assert_eq!(h[&X_REQUEST_ID], "theirs");
        assert_eq!(
            h[&FORWARDED],
            "for=1.2.3.4, for=127.0.0.1;host=\"a.example:8443\";proto=https"
        );
        assert_eq!(h[header::VIA], "1.1 other, 2 pop-1");
        assert!(
            !h.contains_key("x-original-url"),
            "steering headers go from anyone"
        );
    }

    #[test]
    fn every_hop_by_hop_field_stays_behind() {
        for name in &HOP_BY_HOP {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static("x"));
            strip_hop_by_hop(&mut h);
            assert!(h.is_empty(), "a response keeps {name}");
            h.insert(name, HeaderValue::from_static("x"));
            rewritten(false, &mut h);
            assert!(!h.contains_key(name), "a request keeps {name}");
        }
    }

    #[test]
    fn a_request_loses_hop_by_hop_fields_and_those_connection_names() {
        let mut h = hop_by_hop("keep-alive, X-Secret,, Upgrade");
        h.insert(header::RANGE, HeaderValue::from_static("bytes=0-1"));
        h.append(header::ACCEPT, HeaderValue::from_static("*/*"));
        h.append(header::ACCEPT, HeaderValue::from_static("text/html"));
        rewritten(false, &mut h);
        let names: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "host",
                "accept",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-forwarded-host",
                "forwarded",
                "x-real-ip",
                "via",
                "x-request-id"
            ],
            "{h:?}"
        );
        let accept: Vec<_> = h.get_all(header::ACCEPT).iter().collect();
        assert_eq!(accept, ["*/*", "text/html"], "both values, in order");
    }

    #[test]
    fn client_addresses_as_the_origin_reads_them() {
        for (ip, xff, fwd) in [
            ("0.0.0.0", "0.0.0.0", "for=0.0.0.0"),
            ("10.9.200.255", "10.9.200.255", "for=10.9.200.255"),
            ("100.64.1.99", "100.64.1.99", "for=100.64.1.99"),
            ("::ffff:192.0.2.1", "192.0.2.1", "for=192.0.2.1"),
            ("2001:db8::1", "2001:db8::1", "for=\"[2001:db8::1]\""),
        ] {
            let mut h = HeaderMap::new();
            rewritten_from(false, &mut h, ip);
            assert_eq!(h[&X_FORWARDED_FOR], xff, "{ip}");
            assert_eq!(h[&X_REAL_IP], xff, "{ip}");
            assert_eq!(
                h[&FORWARDED],
                format!("{fwd};host=\"a.example:8443\";proto=https"),
                "{ip}"
            );
        }
    }
}
