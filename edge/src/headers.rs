//! Header rewriting between client and origin (RFC 9110 §7.6).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
/// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1), besides those that
/// `Connection` names.
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("proxy-connection"),
];

/// Removes hop-by-hop headers: the fixed list plus every header that `Connection` names.
/// Returns true when the message asked for a protocol upgrade (`Connection: upgrade`).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) -> bool {
    let mut upgrade = false;
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        // Bytes, not `to_str`: one obs-text member must not hide the names beside it.
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|t| {
            let t = t.trim_ascii();
            if t.eq_ignore_ascii_case(b"upgrade") {
                upgrade = true;
            }
            HeaderName::from_bytes(t).ok()
        })
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    upgrade
}

/// `Via` received-protocol for an HTTP version ("1.1", "2", "3"; the "HTTP/" is implied).
pub fn via_protocol(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// Appends `value` to a list header, keeping what earlier hops wrote.
pub fn append_list(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    // Usually the first entry (a hit appends this hop's Via to a stored response that has
    // none): no joining buffer then.
    if !headers.contains_key(name) {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name.clone(), v);
        }
        return;
    }
    let len: usize = headers.get_all(name).iter().map(|v| v.len() + 2).sum();
    let mut joined = String::with_capacity(len + value.len());
    for v in headers.get_all(name) {
        if let Ok(s) = v.to_str() {
            if !joined.is_empty() {
                joined.push_str(", ");
            }
            joined.push_str(s);
        }
    }
    if !joined.is_empty() {
        joined.push_str(", ");
    }
    joined.push_str(value);
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(name.clone(), v);
    }
}

pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

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

/// A response whose length is ambiguous: `Content-Length` together with `Transfer-Encoding`,
/// or `Content-Length` values that disagree (RFC 9112 §6.3). Never stored: the body we read
/// may not be the body the origin meant.
/// Removes the fields named in `names` (a handful, mostly absent): one pass over the map's
/// names finds whether any is there, where a `remove` per name hashes and probes each.
pub fn remove_named<'a>(
    fields: &mut HeaderMap,
    names: impl IntoIterator<Item = &'a HeaderName> + Clone,
) {
    let present = |k: &HeaderName| names.clone().into_iter().any(|n| n == k);
    if !fields.keys().any(present) {
        return;
    }
    for n in names {
        fields.remove(n);
    }
}

pub fn broken_framing(headers: &HeaderMap) -> bool {
    let mut lengths = headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|v| v.trim_ascii());
    let Some(first) = lengths.next() else {
        return false;
    };
    headers.contains_key(header::TRANSFER_ENCODING) || lengths.any(|v| v != first)
}

/// Before hop-by-hop headers go: a `Content-Length` sent along with `Transfer-Encoding` is
/// not the length of the body we pass on, so it goes too.
pub fn drop_length_beside_transfer_encoding(headers: &mut HeaderMap) {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
}

/// Whether a `Via` entry names `node` as a received-by (`1.1 node`, `2 node, 1.1 other`): the
/// request already went through this node, so forwarding it to a shield could loop.
pub fn via_names(headers: &HeaderMap, node: &str) -> bool {
    headers
        .get_all(header::VIA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|entry| entry.split_whitespace().nth(1) == Some(node))
}

/// HTTP/2 and HTTP/3 clients may split `Cookie` into several fields; an HTTP/1.1 origin expects
/// one (RFC 9113 §8.2.3).
pub fn join_cookies(headers: &mut HeaderMap) {
    if headers.get_all(header::COOKIE).iter().nth(1).is_none() {
        return;
    }
    let joined = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ");
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

/// Size of a header block as HTTP/2 and HTTP/3 count it (name + value + 32 per field).
pub fn header_block_size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 32)
        .sum()
}

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
    use super::*;

    #[test]
    fn remove_named_takes_every_value_of_each_name_and_nothing_else() {
        let tag = HeaderName::from_static("surrogate-key");
        let geo = HeaderName::from_static("x-edge-country");
        let mut h = HeaderMap::new();
        h.append(&tag, HeaderValue::from_static("a"));
        h.append(&tag, HeaderValue::from_static("b"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        remove_named(&mut h, [&geo]);
        assert_eq!(h.len(), 3, "absent names change nothing");
        remove_named(&mut h, [&geo, &tag]);
        assert!(!h.contains_key(&tag));
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn append_list_keeps_earlier_hops() {
        let mut h = HeaderMap::new();
        append_list(&mut h, &header::VIA, "1.1 a");
        assert_eq!(h[header::VIA], "1.1 a");
        append_list(&mut h, &header::VIA, "1.1 b");
        assert_eq!(h[header::VIA], "1.1 a, 1.1 b");
        h.append(header::VIA, HeaderValue::from_static("2 c"));
        append_list(&mut h, &header::VIA, "1.1 d");
        assert_eq!(h.get_all(header::VIA).iter().count(), 1);
        assert_eq!(h[header::VIA], "1.1 a, 1.1 b, 2 c, 1.1 d");
    }

    /// Every hop-by-hop field, plus `x-secret` that `Connection` names.
    fn hop_by_hop(connection: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static(connection));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::TRAILER, HeaderValue::from_static("x"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h
    }

    #[test]
    fn hop_by_hop_headers_and_connection_tokens_are_removed() {
        let mut h = hop_by_hop("keep-alive, X-Secret, Upgrade");
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(strip_hop_by_hop(&mut h));
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key(header::ACCEPT));
    }

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

    #[test]
    fn framing_table() {
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[], false),
            (&[("content-length", "5")], false),
            (&[("content-length", "5"), ("content-length", "5")], false),
            (&[("content-length", "5, 5")], false),
            (&[("content-length", "5"), ("content-length", "6")], true),
            (&[("content-length", "5, 6")], true),
            (
                &[("content-length", "5"), ("transfer-encoding", "chunked")],
                true,
            ),
            (&[("transfer-encoding", "chunked")], false),
        ];
        for (fields, want) in cases {
            let mut h = HeaderMap::new();
            for (n, v) in *fields {
                h.append(*n, HeaderValue::from_static(v));
            }
            assert_eq!(broken_framing(&h), *want, "{fields:?}");
        }
    }

    #[test]
    fn split_cookies_are_joined() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        join_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; b=2");
    }

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
