//! What the rules read from a stored response's header fields on every hit, parsed once per
//! stored response instead: its Cache-Control (and CDN-Cache-Control) and the age it had when
//! it arrived (RFC 9111 §4.2.3). Parsing them again took ~3,200 of an HTTP/1.1 hit's ~44,000
//! instructions (CHANGELOG, issue 18). Still pure: the values follow from `headers`,
//! `request_time` and `response_time` alone, and the planners take the same inputs.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::header::{self, HeaderMap};

use super::{CDN_CACHE_CONTROL, StoredMeta, http_date, since};
use crate::cache_control::{CacheControl, parse_delta};
use crate::encoding::{self, MediaTypes};

/// Filled by the first rule that needs it. A clone starts empty: a clone is how a stored
/// response is changed (revalidation, slices), so it is parsed again after the change. A
/// `StoredMeta`'s header fields are not changed in place once a rule has read them: change a
/// clone, or replace them whole (`StoredMeta::replace_headers`).
#[derive(Default)]
pub struct Parsed(OnceLock<Box<Facts>>);

pub(super) struct Facts {
    pub(super) cc: CacheControl,
    /// Only when the response has the field (rare); the policy chooses at each use.
    pub(super) cdn: Option<Box<CacheControl>>,
    /// The corrected initial age: the age when the response arrived.
    pub(super) initial_age: Duration,
    /// Whether it carries a content coding (`encoding::has_content_encoding`).
    content_encoded: bool,
    /// Whether its Content-Type is on a compressible list: `id << 1 | answer` for the list
    /// asked last (`MediaTypes::id`), 0 before. Scanning took ~1,200 instructions a hit.
    compressible: AtomicU64,
}

/// Heap bytes a parsed stored response holds beyond its `StoredMeta` (for cache weighing); a
/// response with CDN-Cache-Control holds one more boxed `CacheControl`, rare enough to leave out.
pub const PARSED_BYTES: usize = std::mem::size_of::<Facts>() + 16;

impl Parsed {
    pub(super) fn of<'a>(&'a self, meta: &StoredMeta) -> &'a Facts {
        self.0.get_or_init(|| Box::new(Facts::of(meta)))
    }
}

impl Facts {
    fn of(meta: &StoredMeta) -> Facts {
        let headers = &meta.headers;
        Facts {
            cc: CacheControl::from_headers(headers, &header::CACHE_CONTROL).unwrap_or_default(),
            cdn: CacheControl::from_cdn_headers(headers, &CDN_CACHE_CONTROL).map(Box::new),
            initial_age: initial_age(meta),
            content_encoded: encoding::has_content_encoding(headers),
            compressible: AtomicU64::new(0),
        }
    }
}

impl StoredMeta {
    /// Replaces the header fields; what was parsed from the old ones goes with them.
    pub fn replace_headers(&mut self, headers: HeaderMap) {
        self.headers = headers;
        self.parsed = Parsed::default();
    }

    /// Whether the stored response carries a content coding other than identity.
    pub fn content_encoded(&self) -> bool {
        self.parsed.of(self).content_encoded
    }

    /// Whether its Content-Type is on `types` (`encoding::compressible_type`), remembered for
    /// the last list asked: every hit under one config snapshot asks the same list.
    pub fn compressible_under(&self, types: &MediaTypes) -> bool {
        let memo = &self.parsed.of(self).compressible;
        let id = types.id();
        let known = memo.load(Ordering::Relaxed);
        if known != 0 && known >> 1 == id {
            return known & 1 == 1;
        }
        let content_type = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let answer = encoding::compressible_type(content_type, types);
        if id != 0 {
            memo.store(id << 1 | u64::from(answer), Ordering::Relaxed);
        }
        answer
    }
}

fn initial_age(meta: &StoredMeta) -> Duration {
    // A list-valued Age (`7200, 0`, as some intermediaries send) counts by its first member;
    // only when that is invalid is the field ignored (RFC 9111 §5.1).
    let age_value = meta
        .headers
        .get(header::AGE)
        .and_then(|v| v.as_bytes().split(|b| *b == b',').next())
        .and_then(|first| parse_delta(first.trim_ascii()))
        .map_or(Duration::ZERO, Duration::from_secs);
    let date = http_date(&meta.headers, &header::DATE).unwrap_or(meta.response_time);
    let apparent_age = since(meta.response_time, date);
    let response_delay = since(meta.response_time, meta.request_time);
    let corrected_age_value = age_value + response_delay;
    apparent_age.max(corrected_age_value)
}

impl Clone for Parsed {
    fn clone(&self) -> Parsed {
        Parsed::default()
    }
}

/// Derived data: two metas with equal fields are equal whether parsed or not.
impl PartialEq for Parsed {
    fn eq(&self, _: &Parsed) -> bool {
        true
    }
}

impl fmt::Debug for Parsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Parsed"
        } else {
            "Unparsed"
        })
    }
}
