//! `Vary`: which request fields select a stored variant, normalised so equivalent requests
//! share one.

use http::header::{self, HeaderMap, HeaderName};

use super::StoredMeta;

/// The header names `Vary` nominates, lower-cased and sorted; `None` for `Vary: *`.
pub fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for v in headers.get_all(header::VARY) {
        let s = v.to_str().ok()?;
        for part in s.split(',') {
            let p = part.trim();
            if p == "*" {
                return None;
            }
            if let Ok(n) = HeaderName::from_bytes(p.as_bytes())
                && !names.contains(&n)
            {
                names.push(n);
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Some(names)
}

/// A request's value for one Vary header, normalised where that cannot change its meaning:
/// field lines joined, white space around commas removed; for Accept-Encoding also lower-cased
/// and sorted (the codings are case-insensitive tokens).
pub fn normalize_vary_value(req_headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for v in req_headers.get_all(name) {
        let s = String::from_utf8_lossy(v.as_bytes());
        parts.extend(
            s.split(',')
                .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|p| !p.is_empty()),
        );
    }
    if parts.is_empty() {
        return None;
    }
    if name == header::ACCEPT_ENCODING {
        for p in &mut parts {
            *p = p.to_ascii_lowercase().replace(' ', "");
        }
        parts.sort();
    }
    Some(parts.join(","))
}

/// The request's Vary values for `names`, as stored beside a response.
pub fn vary_values(
    req_headers: &HeaderMap,
    names: &[HeaderName],
) -> Vec<(HeaderName, Option<String>)> {
    names
        .iter()
        .map(|n| (n.clone(), normalize_vary_value(req_headers, n)))
        .collect()
}

/// Does this request select the stored variant (RFC 9111 §4.1)?
pub fn vary_matches(req_headers: &HeaderMap, meta: &StoredMeta) -> bool {
    meta.vary
        .iter()
        .all(|(name, stored)| normalize_vary_value(req_headers, name) == *stored)
}
