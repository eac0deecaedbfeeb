//! The cache phase's decisions, out of the I/O shell: which requests skip the cache, what a
//! miss does, when to remember a URL as uncacheable, how a stored or freshly fetched response
//! is represented (content coding, `Vary`), and the head of a response served from a stored
//! object (304, 206, 416, HEAD). Pure functions of (request, stored response, policy, now).

use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use crate::cache_control::CacheControl;
use crate::encoding::{self, AcceptEncoding, Coding, CompressPolicy};
use crate::rules::{self, NotStorable, RangeSet, StoredMeta};
use crate::status::Fwd;

/// What the request itself decides before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestPlan {
    /// Look it up.
    Lookup,
    /// Forward it as it is, storing nothing (`detail` goes into `Cache-Status`); `invalidate`:
    /// an unsafe method, whose success invalidates its target (RFC 9111 §4.4).
    Pass {
        detail: &'static str,
        invalidate: bool,
    },
}

/// A site's reasons to skip the cache.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bypass<'a> {
    pub cookies: &'a [String],
    pub authorization: bool,
}

pub fn request(
    method: &Method,
    headers: &HeaderMap,
    has_body: bool,
    looped: bool,
    bypass: Bypass<'_>,
) -> RequestPlan {
    let pass = |detail| RequestPlan::Pass {
        detail,
        invalidate: false,
    };
    if !method.is_safe() {
        return RequestPlan::Pass {
            detail: "method",
            invalidate: true,
        };
    }
    if method != Method::GET && method != Method::HEAD {
        return pass("method");
    }
    if looped {
        // Our own miss sent to ourselves as the shield chosen for this key: the outer request
        // leads the fill and stores; collapsing behind it would wait for itself.
        return pass("loop");
    }
    if has_body {
        // A GET body has no meaning in RFC 9110, but an origin may act on it.
        return pass("body");
    }
    if bypass
        .cookies
        .iter()
        .any(|c| crate::key::cookie_value(headers, c).is_some())
    {
        return pass("cookie");
    }
    if bypass.authorization && headers.contains_key(header::AUTHORIZATION) {
        return pass("authorization");
    }
    RequestPlan::Lookup
}

/// What a miss does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissPlan {
    /// `only-if-cached`: 504, the origin is not asked.
    OnlyIfCached,
    /// Forwarded unchanged, not stored.
    Pass(&'static str),
    /// A range of something not stored: fetched in slices, or whole when it is small.
    Range,
    /// Fetched once for everyone (collapsed) and stored if the rules allow.
    Fetch,
}

pub fn miss(method: &Method, headers: &HeaderMap, hit_for_pass: bool) -> MissPlan {
    if CacheControl::request(headers).only_if_cached {
        return MissPlan::OnlyIfCached;
    }
    // A HEAD has no body to store, and a 206 is only part of one.
    if method == Method::HEAD {
        return MissPlan::Pass("head");
    }
    if hit_for_pass {
        return MissPlan::Pass("hit-for-pass");
    }
    if headers.contains_key(header::RANGE) {
        return MissPlan::Range;
    }
    MissPlan::Fetch
}

/// How a revalidation is reported: forced by the client (`no-cache`) or by staleness.
pub fn revalidation_fwd(headers: &HeaderMap) -> Fwd {
    if CacheControl::request(headers).no_cache {
        Fwd::Request
    } else {
        Fwd::Stale
    }
}

/// Whether an unstorable response marks its URL hit-for-pass. Only what the response decided
/// counts: a request's own `no-store` or `Authorization` says nothing about other requests.
pub fn marks_hit_for_pass(reason: NotStorable, req_headers: &HeaderMap) -> bool {
    !(matches!(reason, NotStorable::Authorization | NotStorable::Method)
        || CacheControl::request(req_headers).no_store)
}

/// How a response is sent to this client, as far as content coding goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// Not a plain 200 of a compressible type: left to the response filters.
    Undecided,
    /// As it is; `varies`: other clients may get it encoded (`Vary: Accept-Encoding`).
    Identity { varies: bool },
    /// In this coding.
    Encode(Coding),
}

/// The representation of a 200 being stored, or served from the store.
pub fn representation(
    method: &Method,
    req_headers: &HeaderMap,
    accept: &AcceptEncoding,
    status: StatusCode,
    resp_headers: &HeaderMap,
    len: Option<u64>,
    policy: &CompressPolicy<'_>,
) -> Representation {
    if status != StatusCode::OK || encoding::has_content_encoding(resp_headers) {
        return Representation::Undecided;
    }
    let varies = policy.eligible(resp_headers, len);
    let coding = (varies && method == Method::GET && !req_headers.contains_key(header::RANGE))
        .then(|| accept.negotiate(policy.prefer))
        .flatten();
    match coding {
        Some(c) => Representation::Encode(c),
        None => Representation::Identity { varies },
    }
}

/// What a response served from a stored object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredAnswer {
    /// 304: the client's validator matches.
    NotModified,
    /// 416 with `Content-Range: bytes */total`.
    Unsatisfiable { total: u64 },
    /// The stored status with `len` bytes from `start` (206 when `partial`).
    Body { start: u64, len: u64, partial: bool },
    /// 206 `multipart/byteranges` (RFC 9110 §14.6): each part is its preamble, the bytes
    /// `start..=end`, and CRLF; then the closing delimiter.
    Multipart {
        parts: Vec<MultipartPart>,
        closing: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartPart {
    pub preamble: String,
    pub start: u64,
    pub end: u64,
}

/// The delimiter of a multipart response: fixed per stored body (identical requests get
/// identical responses) and unlikely in any body (a scrambled 64-bit number).
fn boundary(meta: &StoredMeta) -> String {
    format!(
        "edge-{:016x}",
        meta.generation.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ meta.body_len
    )
}

/// The framing of a multipart/byteranges body for `parts` of a `total`-byte representation.
pub fn multipart(
    parts: &[(u64, u64)],
    total: u64,
    content_type: Option<&str>,
    boundary: &str,
) -> (Vec<MultipartPart>, String, u64) {
    let mut out = Vec::with_capacity(parts.len());
    let mut length = 0u64;
    for (i, &(start, end)) in parts.iter().enumerate() {
        let mut preamble = String::new();
        if i > 0 {
            preamble.push_str("\r\n");
        }
        preamble.push_str("--");
        preamble.push_str(boundary);
        preamble.push_str("\r\n");
        if let Some(ct) = content_type {
            preamble.push_str("Content-Type: ");
            preamble.push_str(ct);
            preamble.push_str("\r\n");
        }
        preamble.push_str(&format!(
            "Content-Range: bytes {start}-{end}/{total}\r\n\r\n"
        ));
        length += preamble.len() as u64 + (end - start + 1);
        out.push(MultipartPart {
            preamble,
            start,
            end,
        });
    }
    let closing = format!("\r\n--{boundary}--\r\n");
    length += closing.len() as u64;
    (out, closing, length)
}

/// The head of a response served from a stored object: its answer, the coding chosen (then
/// the body comes from an encoded variant), and the header fields.
#[derive(Debug, Clone)]
pub struct StoredHead {
    pub answer: StoredAnswer,
    pub status: StatusCode,
    pub coding: Option<Coding>,
    /// The representation is settled here and the compress phase leaves it alone: a stored 200
    /// without a content coding, whose eligibility and coding this plan already weighed (the
    /// compress phase would only weigh them again). Stored codings the client cannot read and
    /// other statuses are still the compress phase's.
    pub negotiated: bool,
    pub headers: HeaderMap,
}

/// Header fields a 304 keeps (RFC 9110 §15.4.5).
const NOT_MODIFIED_KEEPS: [header::HeaderName; 8] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
    header::LAST_MODIFIED,
    header::AGE,
];

/// A decimal field value (`Age`, `Content-Length`) in one allocation, none for 0–9: `http`'s
/// `From<u64>` takes two (a `BytesMut`, then its freeze), and a hit sets two of these.
pub fn decimal(n: u64) -> HeaderValue {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    if let Some(d) = usize::try_from(n).ok().and_then(|i| DIGITS.get(i)) {
        return HeaderValue::from_static(d);
    }
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut rest = n;
    while rest > 0 {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    HeaderValue::from_bytes(&buf[at..]).unwrap_or_else(|_| HeaderValue::from(n))
}

/// Header fields a response from the cache gains after its stored ones, at most, commonly.
const RESPONSE_FIELDS: usize = 10;

pub fn stored_head(
    method: &Method,
    req_headers: &HeaderMap,
    accept: &AcceptEncoding,
    meta: &StoredMeta,
    policy: &CompressPolicy<'_>,
    now: SystemTime,
) -> StoredHead {
    stored_head_in(
        HeaderMap::new(),
        method,
        req_headers,
        accept,
        meta,
        policy,
        now,
    )
}

/// [`stored_head`], building the response's fields in `headers` (emptied first): a map
/// reused from an earlier message spares allocating one per hit.
pub fn stored_head_in(
    mut headers: HeaderMap,
    method: &Method,
    req_headers: &HeaderMap,
    accept: &AcceptEncoding,
    meta: &StoredMeta,
    policy: &CompressPolicy<'_>,
    now: SystemTime,
) -> StoredHead {
    // Sized once for what this and the response phases add (Age, Accept-Ranges, Vary, Via,
    // Cache-Status, X-Request-Id, Alt-Svc, ...): a clone is sized for the stored fields only,
    // and growing it cost a second table and a reallocation per hit (1.0k instructions).
    headers.clear();
    headers.reserve(meta.headers.len() + RESPONSE_FIELDS);
    for (name, value) in &meta.headers {
        headers.append(name.clone(), value.clone());
    }
    headers.insert(
        header::AGE,
        decimal(rules::current_age(meta, now).as_secs()),
    );
    let settled = meta.status == StatusCode::OK && !meta.content_encoded();
    // `eligible_stored` checks Content-Encoding too; `settled` is also needed on its own below.
    let varies = settled && policy.eligible_stored(meta);
    let coding = if varies && method == Method::GET && !req_headers.contains_key(header::RANGE) {
        accept.negotiate(policy.prefer)
    } else {
        None
    };
    if varies {
        encoding::add_vary(&mut headers);
    }
    if rules::not_modified(req_headers, meta) {
        if coding.is_some() {
            // The validator of the representation this client would have received.
            encoding::weaken_etag_field(&mut headers);
        }
        let mut kept = HeaderMap::new();
        for name in &NOT_MODIFIED_KEEPS {
            for v in headers.get_all(name) {
                kept.append(name.clone(), v.clone());
            }
        }
        return StoredHead {
            answer: StoredAnswer::NotModified,
            status: StatusCode::NOT_MODIFIED,
            coding: None,
            negotiated: false,
            headers: kept,
        };
    }
    if let Some(c) = coding {
        encoding::mark_transformed(&mut headers, Some(c));
        return StoredHead {
            answer: StoredAnswer::Body {
                start: 0,
                len: meta.body_len,
                partial: false,
            },
            status: meta.status,
            coding: Some(c),
            negotiated: true,
            headers,
        };
    }
    let total = meta.body_len;
    let mut status = meta.status;
    let mut answer = StoredAnswer::Body {
        start: 0,
        len: total,
        partial: false,
    };
    if method == Method::GET && meta.status == StatusCode::OK {
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        match rules::ranges(req_headers, meta) {
            RangeSet::Full => {}
            RangeSet::Parts(parts) if parts.len() == 1 => {
                let (start, end) = parts[0];
                status = StatusCode::PARTIAL_CONTENT;
                if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{total}")) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
                answer = StoredAnswer::Body {
                    start,
                    len: end - start + 1,
                    partial: true,
                };
            }
            RangeSet::Parts(parts) => {
                let b = boundary(meta);
                let ct = meta
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok());
                let (parts, closing, length) = multipart(&parts, total, ct, &b);
                if let Ok(v) = HeaderValue::from_str(&format!("multipart/byteranges; boundary={b}"))
                {
                    headers.insert(header::CONTENT_TYPE, v);
                }
                headers.insert(header::CONTENT_LENGTH, decimal(length));
                return StoredHead {
                    answer: StoredAnswer::Multipart { parts, closing },
                    status: StatusCode::PARTIAL_CONTENT,
                    coding: None,
                    negotiated: settled,
                    headers,
                };
            }
            RangeSet::Unsatisfiable => {
                let mut h = HeaderMap::new();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                    h.insert(header::CONTENT_RANGE, v);
                }
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
                return StoredHead {
                    answer: StoredAnswer::Unsatisfiable { total },
                    status: StatusCode::RANGE_NOT_SATISFIABLE,
                    coding: None,
                    negotiated: false,
                    headers: h,
                };
            }
        }
    }
    if let StoredAnswer::Body { len, .. } = answer {
        headers.insert(header::CONTENT_LENGTH, decimal(len));
    }
    StoredHead {
        answer,
        status,
        coding: None,
        negotiated: settled,
        headers,
    }
}

#[cfg(test)]
mod tests;
