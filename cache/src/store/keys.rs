//! How stored things are named and weighed: variant keys, encoded-variant keys, Vary records,
//! body generations, and what an entry really costs in memory.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::encoding::Coding;
use crate::rules::{self, StoredMeta};

/// A copy of `headers` whose values own their bytes. Values parsed by hyper are slices of the
/// connection's read buffer; keeping them in the cache kept a whole buffer (8 KiB and more)
/// alive per stored object, which made RSS reach 2.6x the memory budget.
pub(crate) fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let Ok(mut v) = HeaderValue::from_bytes(value.as_bytes()) {
            v.set_sensitive(value.is_sensitive());
            out.append(name.clone(), v);
        }
    }
    out
}

/// What a cache entry costs beyond its key, headers and body: moka's entry and deque nodes,
/// the `Arc`, `StoredMeta` (and its parsed fields) and the `HeaderMap` tables. Weighing
/// entries by body and header bytes alone let RSS reach twice the budget; this estimate errs
/// on the high side on purpose.
pub(crate) const ENTRY_OVERHEAD: usize = 768 + rules::PARSED_BYTES;

/// Bytes an entry really occupies, as far as we can tell without asking the allocator.
pub(crate) fn weight(key_len: usize, meta: &StoredMeta, body_len: usize) -> u32 {
    // Per header: the bucket in the map (~88 B), the value's own allocation and its bytes.
    let headers: usize = meta
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 128)
        .sum();
    let vary: usize = meta
        .vary
        .iter()
        .map(|(n, v)| n.as_str().len() + v.as_ref().map_or(0, String::len) + 64)
        .sum();
    // The key is held twice: by moka and in the URL's Vary record.
    let n = ENTRY_OVERHEAD + 2 * key_len + headers + vary + body_len;
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The key of one stored response of a URL: the primary key plus the request's values of the
/// headers its `Vary` names.
pub fn variant_key(primary: &str, vary: &[(HeaderName, Option<String>)]) -> String {
    let mut k = String::with_capacity(primary.len() + 2);
    k.push_str("o:");
    k.push_str(primary);
    for (name, value) in vary {
        k.push('\n');
        k.push_str(name.as_str());
        k.push('=');
        if let Some(v) = value {
            k.push_str(v);
        } else {
            k.push('\u{0}');
        }
    }
    k
}

/// Where the `coding` variant of an identity variant is stored. It starts with the identity's
/// key, so disk eviction treats it as an object like any other.
pub fn encoded_key(identity_variant: &str, coding: Coding) -> String {
    format!("{identity_variant}\ncontent-coding={coding}")
}

/// Where the slice index of a large object cached in slices is stored.
pub fn slice_index_key(primary: &str) -> String {
    format!("{primary}\nslices")
}

/// Where slice `n` of a large object is stored.
pub fn slice_key(primary: &str, n: u64) -> String {
    format!("{primary}\nslice={n}")
}

/// Internal header fields of a slice index: the object's total size and the slice size.
pub const SLICE_TOTAL: &str = "x-edge-slice-total";
pub const SLICE_SIZE: &str = "x-edge-slice-size";

pub(crate) fn record_key(primary: &str) -> String {
    format!("v:{primary}")
}

/// Tells bodies apart: every identity fill gets a new number, kept through revalidation
/// (which does not change the body) and copied into its encoded variants.
pub(crate) fn next_generation(seed: u64) -> u64 {
    static NEXT: std::sync::OnceLock<std::sync::atomic::AtomicU64> = std::sync::OnceLock::new();
    // Seeded from the clock so that numbers from an earlier process (on disk) do not repeat.
    let next = NEXT.get_or_init(|| std::sync::atomic::AtomicU64::new(seed));
    next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
