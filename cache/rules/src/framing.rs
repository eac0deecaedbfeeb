//! Message framing, read the one way everything here reads it.

use http::header::{self, HeaderMap};

/// The one `Content-Length` parser (RFC 9110 §8.6): digits only, and several values (field
/// lines or a list) only when they are all the same. `Ok(None)`: no field.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, &'static str> {
    let mut found: Option<u64> = None;
    for field in headers.get_all(header::CONTENT_LENGTH) {
        for v in field.as_bytes().split(|b| *b == b',') {
            let v = v.trim_ascii();
            if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
                return Err("invalid content-length");
            }
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or("invalid content-length")?;
            match found {
                Some(f) if f != n => return Err("conflicting content-length values"),
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// A declared length that parses, or `None` (absent or invalid).
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    content_length(headers).ok().flatten()
}
