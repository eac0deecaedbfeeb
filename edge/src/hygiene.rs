//! Request hygiene: one normalised form of the host, the path and the query, computed once and
//! used for routing, policies, the cache key and the origin request alike. Whatever identifies
//! a response in the cache must be exactly what the origin was asked for; anything else lets
//! one client's request poison another client's answer.
//!
//! Pure functions of the request head; the pipeline maps their errors to 400.

use std::borrow::Cow;

use http::header::{self, HeaderMap};
use http::{Uri, Version};

/// The authority a request names. HTTP/1.1: the absolute-form target wins over `Host`
/// (RFC 9112 §3.2.2), and a request with more than one `Host` line is invalid (§3.2).
/// HTTP/2 and HTTP/3: `:authority`, and a `host` field that names something else makes the
/// request malformed (RFC 9113 §8.3.1, RFC 9114 §4.3.1).
pub fn request_authority<'a>(
    version: Version,
    uri: &'a Uri,
    headers: &'a HeaderMap,
) -> Result<&'a str, &'static str> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err("more than one Host header");
    }
    let host = match host {
        Some(v) => Some(v.to_str().map_err(|_| "Host is not visible ASCII")?),
        None => None,
    };
    match (uri.authority(), host) {
        (Some(a), Some(h)) if version >= Version::HTTP_2 && !a.as_str().eq_ignore_ascii_case(h) => {
            Err("host differs from :authority")
        }
        (Some(a), _) => Ok(a.as_str()),
        (None, Some(h)) => Ok(h),
        (None, None) => Err("missing Host header"),
    }
}

/// A host as the edge uses it: lower case, no trailing dot, no port; IPv6 literals keep their
/// brackets. Only DNS-name characters (letters, digits, `-`, `.`, `_`) and IP literals pass:
/// anything else in a Host is an attack or a bug, never a site.
pub fn parse_host(raw: &str) -> Result<(Cow<'_, str>, Option<u16>), &'static str> {
    let (host, port) = if raw.starts_with('[') {
        let end = raw.find(']').ok_or("invalid IPv6 literal in Host")?;
        let literal = &raw[1..end];
        if literal.is_empty()
            || !literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err("invalid IPv6 literal in Host");
        }
        (&raw[..=end], &raw[end + 1..])
    } else {
        match raw.find(':') {
            Some(i) => (&raw[..i], &raw[i..]),
            None => (raw, ""),
        }
    };
    let port = match port {
        "" | ":" => None,
        p => match p.strip_prefix(':') {
            Some(digits)
                if !digits.is_empty()
                    && digits.len() <= 5
                    && digits.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(digits.parse::<u16>().map_err(|_| "invalid port in Host")?)
            }
            _ => return Err("invalid port in Host"),
        },
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    // One trailing dot is the root label; a second (`a..`) is an empty label, not a name.
    if host.is_empty() || host.len() > 253 || host.ends_with('.') {
        return Err("invalid Host");
    }
    if !host.starts_with('[')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err("invalid character in Host");
    }
    let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    };
    Ok((host, port))
}

/// The `Host` an origin receives (and the cache key holds): the normalised name plus the port
/// of the listener the request came in on, left out when it is the scheme's default. Never a
/// port the client claimed: the origin builds absolute URLs (redirects, canonical links) from
/// it, and those get cached for everyone.
/// The origin's `Host` for `host` reached on `listener_port`: `None` when it is `host` alone
/// (the scheme's default port), so that most requests make no second copy of the name.
pub fn origin_host(host: &str, listener_port: u16, scheme: &str) -> Option<String> {
    let default = if scheme == "https" { 443 } else { 80 };
    if listener_port == default {
        return None;
    }
    let mut out = String::with_capacity(host.len() + 6);
    out.push_str(host);
    // Written directly: `format!` cost ~850 instructions on every request.
    out.push(':');
    let digits = listener_port.checked_ilog10().unwrap_or(0) + 1;
    for i in (0..digits).rev() {
        out.push(char::from(b'0' + (listener_port / 10u16.pow(i) % 10) as u8));
    }
    Some(out)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The one form of a request path: percent-encoded unreserved characters decoded (so `%2e`
/// is a dot and `%7E` a tilde), other escapes in upper case (`%2f` → `%2F`, kept encoded: an
/// encoded slash is data, not a separator), then dot-segments removed (RFC 3986 §5.2.4,
/// §6.2.2). A path that climbs above `/` is refused rather than clamped: no honest client
/// sends one, and origins resolve them differently. Borrows when nothing changes.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, &'static str> {
    if !path.starts_with('/') {
        // `*` (OPTIONS) and the like: nothing to normalise.
        return Ok(Cow::Borrowed(path));
    }
    if !path.contains('%') && !path.contains("/.") {
        return Ok(Cow::Borrowed(path));
    }
    let bytes = path.as_bytes();
    // Bytes, not chars: the URI parser lets UTF-8 through, and a multi-byte character must
    // come out as the same bytes.
    let mut decoded: Vec<u8> = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err("invalid percent-encoding in path");
            };
            let v = h << 4 | l;
            if is_unreserved(v) {
                decoded.push(v);
            } else {
                decoded.push(b'%');
                decoded.push(b"0123456789ABCDEF"[usize::from(h)]);
                decoded.push(b"0123456789ABCDEF"[usize::from(l)]);
            }
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    // Only ASCII was decoded, so the bytes are as valid UTF-8 as the input.
    let decoded = String::from_utf8(decoded).map_err(|_| "invalid path")?;
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded[1..].split('/').collect();
    let last = segments.len() - 1;
    for (n, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if n == last {
                    out.push("");
                }
            }
            ".." => {
                if out.pop().is_none() {
                    return Err("path climbs above the root");
                }
                if n == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut result = String::with_capacity(decoded.len());
    for seg in &out {
        result.push('/');
        result.push_str(seg);
    }
    if result.is_empty() {
        result.push('/');
    }
    Ok(Cow::Owned(result))
}

/// The query without the parameters left out of the cache key: an origin must not see what
/// the key does not hold (parameter cloaking: `?utm_source=x;callback=evil` would otherwise
/// be cached for `?`). `None` when nothing is left.
pub fn strip_params<'a>(query: &'a str, ignored: &[String]) -> Option<Cow<'a, str>> {
    if ignored.is_empty() {
        return Some(Cow::Borrowed(query)).filter(|q| !q.is_empty());
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = p.split('=').next().unwrap_or("");
            !ignored.iter().any(|i| i == name)
        })
        .collect();
    (!kept.is_empty()).then(|| Cow::Owned(kept.join("&")))
}

/// Rebuilds an origin-form target from a normalised path and query.
pub fn origin_form(path: &str, query: Option<&str>) -> Result<Uri, &'static str> {
    let pq = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    pq.parse().map_err(|_| "invalid request target")
}

pub use cache::framing::content_length;

/// A connection-specific field in an HTTP/2 or HTTP/3 request makes it malformed (RFC 9113
/// §8.2.2, RFC 9114 §4.2); only `te: trailers` is allowed.
pub fn connection_specific(headers: &HeaderMap) -> Option<&'static str> {
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ] {
        if headers.contains_key(name) {
            return Some(name);
        }
    }
    let te_ok = headers
        .get_all(header::TE)
        .iter()
        .all(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"trailers"));
    (!te_ok).then_some("te")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn path_table() {
        let ok: &[(&str, &str)] = &[
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/a/../b", "/b"),
            ("/static/%2e%2e/account/X", "/account/X"),
            ("/static/%2E%2E/account/X", "/account/X"),
            ("/static/.%2e/account", "/account"),
            ("/a/%7Euser", "/a/~user"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%2Fb/..", "/"),
            ("/%41%42c", "/ABc"),
            ("/a//../b", "/a/b"),
            ("/.hidden/x", "/.hidden/x"),
            ("/a/...", "/a/..."),
            ("/a%20b", "/a%20b"),
            ("/.", "/"),
            ("*", "*"),
        ];
        for (input, want) in ok {
            assert_eq!(normalize_path(input).as_deref(), Ok(*want), "{input}");
        }
        for bad in [
            "/..",
            "/a/../..",
            "/%2e%2e/etc/passwd",
            "/a/%zz",
            "/a/%2",
            "/x/%",
        ] {
            assert!(normalize_path(bad).is_err(), "{bad} should be refused");
        }
        assert!(matches!(
            normalize_path("/plain/path"),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn host_table() {
        let ok: &[(&str, &str, Option<u16>)] = &[
            ("localhost", "localhost", None),
            ("LOCALHOST", "localhost", None),
            ("localhost.", "localhost", None),
            ("localhost:", "localhost", None),
            ("LOCALHOST.:1234", "localhost", Some(1234)),
            ("a.test:443", "a.test", Some(443)),
            ("[::1]:8443", "[::1]", Some(8443)),
            ("[::1]", "[::1]", None),
            ("127.0.0.1:80", "127.0.0.1", Some(80)),
            ("_srv.example", "_srv.example", None),
        ];
        for (raw, host, port) in ok {
            let (h, p) = parse_host(raw).expect(raw);
            assert_eq!((h.as_ref(), p), (*host, *port), "{raw}");
        }
        for bad in [
            "",
            ":80",
            "a b",
            "evil.com/x",
            "a@b",
            "host:99999",
            "host:8x",
            "[::1",
            "[zz]",
            "host:80:80",
            "x\"y",
        ] {
            assert!(parse_host(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn origin_host_keeps_only_non_default_listener_ports() {
        assert_eq!(origin_host("a.test", 443, "https"), None);
        assert_eq!(
            origin_host("a.test", 8443, "https").as_deref(),
            Some("a.test:8443")
        );
        assert_eq!(origin_host("a.test", 80, "http"), None);
        assert_eq!(
            origin_host("a.test", 443, "http").as_deref(),
            Some("a.test:443")
        );
        for port in [1, 9, 10, 99, 100, 8080, 65535] {
            assert_eq!(origin_host("a", port, "https"), Some(format!("a:{port}")));
        }
    }

    #[test]
    fn authority_rules() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("a.test"));
        let origin_form: Uri = "/x".parse().expect("uri");
        let absolute: Uri = "http://b.test:81/x".parse().expect("uri");
        assert_eq!(
            request_authority(Version::HTTP_11, &origin_form, &h),
            Ok("a.test")
        );
        assert_eq!(
            request_authority(Version::HTTP_11, &absolute, &h),
            Ok("b.test:81")
        );
        assert!(request_authority(Version::HTTP_2, &absolute, &h).is_err());
        let same: Uri = "https://A.test/x".parse().expect("uri");
        assert_eq!(request_authority(Version::HTTP_3, &same, &h), Ok("A.test"));
        h.append(header::HOST, HeaderValue::from_static("b.test"));
        assert!(request_authority(Version::HTTP_11, &origin_form, &h).is_err());
        assert!(request_authority(Version::HTTP_11, &origin_form, &HeaderMap::new()).is_err());
    }

    #[test]
    fn content_length_table() {
        type Case<'a> = (&'a [&'a str], Result<Option<u64>, ()>);
        let cases: &[Case] = &[
            (&[], Ok(None)),
            (&["0"], Ok(Some(0))),
            (&["54"], Ok(Some(54))),
            (&["5, 5"], Ok(Some(5))),
            (&["5", "5"], Ok(Some(5))),
            (&["5, 6"], Err(())),
            (&["5", "6"], Err(())),
            (&["abc"], Err(())),
            (&["-1"], Err(())),
            (&["+5"], Err(())),
            (&[""], Err(())),
            (&["5,"], Err(())),
            (&["99999999999999999999"], Err(())),
        ];
        for (values, want) in cases {
            let mut h = HeaderMap::new();
            for v in *values {
                h.append(header::CONTENT_LENGTH, HeaderValue::from_static(v));
            }
            assert_eq!(content_length(&h).map_err(|_| ()), *want, "{values:?}");
        }
    }

    #[test]
    fn connection_specific_fields() {
        let mut h = HeaderMap::new();
        assert_eq!(connection_specific(&h), None);
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        assert_eq!(connection_specific(&h), None);
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        assert_eq!(connection_specific(&h), Some("te"));
        for name in ["connection", "transfer-encoding", "upgrade", "keep-alive"] {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static("x"));
            assert_eq!(connection_specific(&h), Some(name));
        }
    }

    #[test]
    fn ignored_params_are_not_sent() {
        let ignored = vec!["utm_source".to_string(), "fbclid".to_string()];
        // The key splits on `&` only, so this whole pair is the ignored `utm_source`: the
        // origin must not see the `callback` hidden behind a `;` either.
        assert_eq!(
            strip_params("utm_source=x;callback=evil&id=3", &ignored).as_deref(),
            Some("id=3")
        );
        assert_eq!(
            strip_params("utm_source=x&id=3", &ignored).as_deref(),
            Some("id=3")
        );
        assert_eq!(strip_params("utm_source=x&fbclid=y", &ignored), None);
        assert_eq!(strip_params("", &[]), None);
        assert_eq!(strip_params("a=1", &[]).as_deref(), Some("a=1"));
    }
}
