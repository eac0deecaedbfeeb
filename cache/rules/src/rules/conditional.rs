//! Conditional requests against a stored response, the validators a revalidation sends, and
//! merging a 304 into the stored headers.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::{StoredMeta, http_date};

fn etag_opaque(tag: &str) -> &str {
    tag.trim().strip_prefix("W/").unwrap_or(tag.trim())
}

/// Client conditional request against a stored response (RFC 9110 §13.1.1, §13.1.3): true when
/// the answer is 304.
pub fn not_modified(req_headers: &HeaderMap, meta: &StoredMeta) -> bool {
    if let Some(inm) = req_headers.get(header::IF_NONE_MATCH) {
        let Ok(inm) = inm.to_str() else { return false };
        let Some(etag) = meta.headers.get(header::ETAG).and_then(|e| e.to_str().ok()) else {
            return inm.trim() == "*";
        };
        return inm
            .split(',')
            .any(|t| t.trim() == "*" || etag_opaque(t) == etag_opaque(etag));
    }
    if let Some(ims) = http_date(req_headers, &header::IF_MODIFIED_SINCE) {
        let lm = http_date(&meta.headers, &header::LAST_MODIFIED);
        return lm.is_some_and(|lm| lm <= ims);
    }
    false
}

/// Conditional headers for revalidating a stored response with the origin.
pub fn validators(meta: &StoredMeta) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    if let Some(etag) = meta.headers.get(header::ETAG) {
        out.push((header::IF_NONE_MATCH, etag.clone()));
    }
    if let Some(lm) = meta.headers.get(header::LAST_MODIFIED) {
        out.push((header::IF_MODIFIED_SINCE, lm.clone()));
    }
    out
}

/// RFC 9111 §3.2 / §4.3.4: a 304 replaces the stored header fields it carries, except those
/// that describe the stored body.
pub fn merge_304(stored: &mut HeaderMap, not_modified: &HeaderMap) {
    let keep = [
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::CONTENT_RANGE,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
    ];
    let mut replaced: Vec<HeaderName> = Vec::new();
    for (name, value) in not_modified {
        if keep.contains(name) {
            continue;
        }
        if !replaced.contains(name) {
            stored.remove(name);
            replaced.push(name.clone());
        }
        stored.append(name.clone(), value.clone());
    }
}
