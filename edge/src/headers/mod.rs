//! Header fields between client and origin (RFC 9110 §7.6): our names, hop-by-hop fields,
//! lists, framing. What the origin is told of the client is `upstream`; who the client is
//! behind trusted hops, `forwarded`.

mod forwarded;
mod upstream;

pub use forwarded::client_behind;
pub use upstream::{Upstream, X_REAL_IP, upstream_fields};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
/// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1), besides those that
/// `Connection` names.
pub(super) static HOP_BY_HOP: [HeaderName; 7] = [
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

/// A response whose length is ambiguous: `Content-Length` together with `Transfer-Encoding`,
/// or `Content-Length` values that disagree (RFC 9112 §6.3). Never stored: the body we read
/// may not be the body the origin meant.
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
    pub(super) fn hop_by_hop(connection: &'static str) -> HeaderMap {
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
}
