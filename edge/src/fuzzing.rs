//! Fuzz entry points for the request hygiene and header rewriting that every client request
//! goes through: each takes arbitrary bytes, runs the code on them and asserts what must hold
//! for every input. The cargo-fuzz targets in `fuzz/` call these; the tests below replay the
//! committed corpus on stable.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Uri, Version};

use crate::headers::{broken_framing, strip_hop_by_hop};
use crate::hygiene::{
    content_length, normalize_path, origin_form, parse_host, request_authority, strip_params,
};

/// `name: value` lines as a header map; lines that are not a valid field are skipped, as the
/// HTTP parsers in front of us refuse them.
fn header_lines(data: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(line[..colon].trim_ascii()),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        h.append(name, value);
    }
    h
}

/// A normalised host is canonical: lower case, no trailing dot, and it parses to itself (with
/// and without its port).
fn check_host(raw: &str) {
    let Ok((host, port)) = parse_host(raw) else {
        return;
    };
    assert!(!host.is_empty(), "{raw:?}");
    assert!(!host.ends_with('.'), "{raw:?} gives {host:?}");
    assert!(!host.bytes().any(|b| b.is_ascii_uppercase()), "{raw:?}");
    let again = parse_host(&host).map(|(h, p)| (h.into_owned(), p));
    assert_eq!(
        again,
        Ok((host.to_string(), None)),
        "{raw:?} gives {host:?}"
    );
    if let Some(p) = port {
        let with_port = format!("{host}:{p}");
        let again = parse_host(&with_port).map(|(h, p)| (h.into_owned(), p));
        assert_eq!(again, Ok((host.to_string(), Some(p))), "{raw:?}");
    }
}

/// The whole input as a Host value; then the first line as a request target and the other
/// lines as `Host` field values, for `request_authority` in each HTTP version.
pub fn host(data: &[u8]) {
    check_host(&String::from_utf8_lossy(data));
    let (target, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for line in rest.split(|b| *b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(header::HOST, v);
        }
    }
    let hosts: Vec<&HeaderValue> = headers.get_all(header::HOST).iter().collect();
    for version in [Version::HTTP_11, Version::HTTP_2, Version::HTTP_3] {
        let Ok(authority) = request_authority(version, &uri, &headers) else {
            continue;
        };
        assert!(hosts.len() <= 1, "several Host lines accepted");
        match uri.authority() {
            Some(a) => assert_eq!(authority, a.as_str()),
            None => assert_eq!(
                Some(authority.as_bytes()),
                hosts.first().map(|h| h.as_bytes())
            ),
        }
        if version >= Version::HTTP_2
            && let (Some(a), Some(h)) = (uri.authority(), hosts.first())
        {
            assert!(a.as_str().as_bytes().eq_ignore_ascii_case(h.as_bytes()));
        }
        check_host(authority);
    }
}

/// A request target as the URI parser lets it through: its normalised path is canonical
/// (normalising again changes nothing, no dot-segments, escapes only where needed and in upper
/// case) and rebuilds into a target; stripping parameters is idempotent and leaves none of the
/// ignored ones.
pub fn path(data: &[u8]) {
    // The pipeline only ever sees paths that `http` parsed; other bytes are not a path.
    let Ok(pq) = PathAndQuery::try_from(data) else {
        return;
    };
    let raw = pq.path();
    if let Ok(norm) = normalize_path(raw) {
        let again = normalize_path(&norm);
        assert_eq!(
            again.as_deref(),
            Ok(&*norm),
            "{raw:?} normalises to {norm:?}"
        );
        // Only ASCII escapes are decoded: any other character passes through as it is.
        let non_ascii = |s: &str| s.chars().filter(|c| !c.is_ascii()).collect::<String>();
        assert_eq!(
            non_ascii(&norm),
            non_ascii(raw),
            "{raw:?} normalises to {norm:?}"
        );
        if raw.starts_with('/') {
            assert!(norm.starts_with('/'), "{raw:?} gives {norm:?}");
            assert!(
                !norm.split('/').any(|s| s == "." || s == ".."),
                "{raw:?} gives {norm:?}"
            );
            check_escapes(&norm);
            // The pipeline rebuilds the origin's target from it.
            if let Err(e) = origin_form(&norm, pq.query()) {
                panic!("{raw:?} normalises to {norm:?}, which is no target: {e}");
            }
        }
    }
    let Some(query) = pq.query() else {
        return;
    };
    let first = query.split(['&', '=']).next().unwrap_or("").to_string();
    for ignored in [vec![], vec!["utm_source".to_string(), first]] {
        let Some(kept) = strip_params(query, &ignored) else {
            continue;
        };
        assert!(!kept.is_empty());
        for p in kept.split('&') {
            let name = p.split('=').next().unwrap_or("");
            assert!(!ignored.iter().any(|i| i == name), "{name:?} kept");
        }
        assert_eq!(strip_params(&kept, &ignored).as_deref(), Some(&*kept));
    }
}

/// Every `%` starts an upper-case escape of a character that must stay escaped.
fn check_escapes(norm: &str) {
    let b = norm.as_bytes();
    for (i, _) in norm.match_indices('%') {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        let v = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
        assert!(
            hex.is_some_and(|h| !h.bytes().any(|c| c.is_ascii_lowercase())),
            "{norm:?}: escape at {i} not upper-case hex"
        );
        assert!(
            v.is_some_and(|v| !(v.is_ascii_alphanumeric() || b"-._~".contains(&v))),
            "{norm:?}: unreserved character left escaped at {i}"
        );
    }
}

/// `name: value` lines as a message head: after stripping, no hop-by-hop field and no field
/// that `Connection` named is left; framing checks agree with the one length parser.
pub fn hop_by_hop(data: &[u8]) {
    let mut h = header_lines(data);
    // What Connection names (RFC 9110 §7.6.1), read byte-wise: a field value with obs-text is
    // still a list of the names it carries.
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|t| HeaderName::from_bytes(t.trim_ascii()).ok())
        .collect();
    if content_length(&h) == Err("conflicting content-length values") {
        assert!(
            broken_framing(&h),
            "conflicting lengths not seen as broken framing"
        );
    }
    if matches!(content_length(&h), Ok(Some(_))) && h.contains_key(header::TRANSFER_ENCODING) {
        assert!(broken_framing(&h), "Content-Length with Transfer-Encoding");
    }
    let upgrade = strip_hop_by_hop(&mut h);
    if upgrade {
        assert!(named.contains(&header::UPGRADE));
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::TRAILER,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        assert!(!h.contains_key(&name), "{name} left after stripping");
    }
    for name in &named {
        assert!(!h.contains_key(name), "{name} named in Connection but left");
    }
    let stripped = h.clone();
    strip_hop_by_hop(&mut h);
    assert_eq!(h, stripped, "stripping twice changes more");
    // Without Transfer-Encoding, only disagreeing lengths are broken framing.
    let lengths: Vec<&[u8]> = h
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    assert_eq!(broken_framing(&h), lengths.iter().any(|l| *l != lengths[0]));
}

/// The corpus replay shared by every crate's fuzzing module.
pub use cache::fuzzing::replay_corpus;

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(target: &str) -> std::path::PathBuf {
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus")).join(target)
    }

    #[test]
    fn corpus_host() {
        replay_corpus(&corpus("host"), host);
    }

    #[test]
    fn corpus_path() {
        replay_corpus(&corpus("path"), path);
    }

    #[test]
    fn corpus_hop_by_hop() {
        replay_corpus(&corpus("hop_by_hop"), hop_by_hop);
    }
}
