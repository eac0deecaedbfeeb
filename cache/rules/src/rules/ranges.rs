//! `Range` requests answered from a stored full response: one range, several
//! (`multipart/byteranges`), or the whole body.

use http::header::{self, HeaderMap};

use super::{StoredMeta, http_date};
use crate::cache_control::parse_delta;

/// What a `Range` request gets from a stored full response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable single range (none, several, other unit, or If-Range mismatch): 200, full body.
    Full,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

/// At most this many ranges in one request are answered as such; more (a classic way to make
/// a server do much work for little) get the whole representation, which RFC 9110 §14.2 allows.
pub const MAX_RANGES: usize = 16;

/// What a `Range` header selects (RFC 9110 §14), after `If-Range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeSet {
    /// No usable range (none, another unit, a syntax error, an `If-Range` mismatch, too
    /// many): 200, the full body.
    Full,
    /// 206 with these `start..=end` ranges, sorted, overlapping and adjacent ones merged.
    Parts(Vec<(u64, u64)>),
    /// 416: none of the ranges overlaps the representation.
    Unsatisfiable,
}

/// RFC 9110 §14: the byte ranges a request asks for over a representation of `len` bytes.
pub fn ranges(req_headers: &HeaderMap, meta: &StoredMeta) -> RangeSet {
    let len = meta.body_len;
    let Some(spec) = req_headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeSet::Full;
    };
    if let Some(if_range) = req_headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
    {
        let strong_etag = meta
            .headers
            .get(header::ETAG)
            .and_then(|e| e.to_str().ok())
            .filter(|e| !e.starts_with("W/"));
        let matches = if if_range.trim_start().starts_with('"') {
            strong_etag == Some(if_range.trim())
        } else {
            crate::dates::parse(if_range)
                .is_some_and(|d| http_date(&meta.headers, &header::LAST_MODIFIED) == Some(d))
        };
        if !matches {
            return RangeSet::Full;
        }
    }
    let Some(set) = spec.trim().strip_prefix("bytes=") else {
        return RangeSet::Full;
    };
    let specs: Vec<&str> = set.split(',').map(str::trim).collect();
    if specs.len() > MAX_RANGES {
        return RangeSet::Full;
    }
    let mut parts = Vec::new();
    for one in specs {
        let Some((a, b)) = one.split_once('-') else {
            return RangeSet::Full;
        };
        let (a, b) = (a.trim(), b.trim());
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return RangeSet::Full,
            (true, false) => match parse_delta(b.as_bytes()) {
                // Suffix: the last b bytes.
                Some(n) if n > 0 && len > 0 => parts.push((len.saturating_sub(n), len - 1)),
                Some(_) => {}
                None => return RangeSet::Full,
            },
            (false, _) => {
                let Some(start) = a
                    .parse::<u64>()
                    .ok()
                    .filter(|_| a.bytes().all(|c| c.is_ascii_digit()))
                else {
                    return RangeSet::Full;
                };
                let end = if b.is_empty() {
                    u64::MAX
                } else {
                    match b.parse::<u64>() {
                        Ok(e) if e >= start => e,
                        _ => return RangeSet::Full,
                    }
                };
                if start < len {
                    parts.push((start, end.min(len - 1)));
                }
            }
        }
    }
    if parts.is_empty() {
        return RangeSet::Unsatisfiable;
    }
    parts.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(parts.len());
    for (s, e) in parts {
        match merged.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    RangeSet::Parts(merged)
}

/// One byte range (the answer for a single-range request; several ranges are `Full` here).
pub fn range(req_headers: &HeaderMap, meta: &StoredMeta) -> RangeAnswer {
    match ranges(req_headers, meta) {
        RangeSet::Full => RangeAnswer::Full,
        RangeSet::Unsatisfiable => RangeAnswer::Unsatisfiable,
        RangeSet::Parts(p) => match p.as_slice() {
            [(start, end)] => RangeAnswer::Partial {
                start: *start,
                end: *end,
            },
            _ => RangeAnswer::Full,
        },
    }
}
