//! `Cache-Control` (RFC 9111 §5.2) and `CDN-Cache-Control` (RFC 9213) parsing.
//!
//! Parsing is tolerant of what real origins send (odd case, quoted numbers, stray commas and
//! spaces) and safe where values are broken: a delta-seconds that does not parse, or the same
//! directive repeated with different values, counts as 0 ("stale"), the choice RFC 9111 §4.2.1
//! allows and the safer one for a shared cache.

use http::HeaderMap;
use http::header::{CACHE_CONTROL, HeaderName, PRAGMA};

/// The largest delta-seconds we keep (RFC 9111 §1.2.2: 2^31).
pub const DELTA_MAX: u64 = 2_147_483_648;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    /// Response: `no-cache` (unqualified: always revalidate). Request: do not serve from cache
    /// without validation.
    pub no_cache: bool,
    pub no_store: bool,
    /// Unqualified `private` (a qualified `private="field"` only hides fields; we treat both as
    /// not storable, the safe reading for a shared cache).
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub must_understand: bool,
    pub no_transform: bool,
    pub immutable: bool,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    /// Request `max-stale`: `Some(None)` accepts any staleness.
    pub max_stale: Option<Option<u64>>,
    pub min_fresh: Option<u64>,
    pub only_if_cached: bool,
}

impl CacheControl {
    /// Parses every field line of `name` in `headers`.
    pub fn from_headers(headers: &HeaderMap, name: &HeaderName) -> Option<CacheControl> {
        let mut values = headers.get_all(name).iter().peekable();
        values.peek()?;
        let mut cc = CacheControl::default();
        let mut seen = Seen::default();
        for v in values {
            parse_into(&mut cc, &mut seen, v.as_bytes());
        }
        Some(cc)
    }

    /// `CDN-Cache-Control` (RFC 9213) is a Structured Field dictionary: parsed strictly, and a
    /// field with any member that does not parse, or a known directive with a value of the
    /// wrong type (`max-age="60"`, `no-store=1`), is ignored as a whole. This is stricter than
    /// RFC 9213's minimum (which only says not to use the bad member): a half-understood
    /// CDN-Cache-Control could override a `Cache-Control: no-store` it was never meant to.
    /// `None`: absent or ignored.
    pub fn from_cdn_headers(headers: &HeaderMap, name: &HeaderName) -> Option<CacheControl> {
        let mut joined: Vec<u8> = Vec::new();
        for v in headers.get_all(name) {
            if !joined.is_empty() {
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(v.as_bytes());
        }
        // Absent, or present but empty: RFC 9213 §2.1 says ignore an empty field (an empty
        // dictionary obeyed would override `Cache-Control: private, no-store`).
        if joined.trim_ascii().is_empty() {
            return None;
        }
        let members = crate::sfv::parse_dictionary(&joined)?;
        let mut cc = CacheControl::default();
        for (key, value) in members {
            use crate::sfv::Item;
            let delta = |v: &Item| match v {
                Item::Integer(n) if *n >= 0 => Some(u64::try_from(*n).unwrap_or(0).min(DELTA_MAX)),
                _ => None,
            };
            let flag = |v: &Item| matches!(v, Item::Boolean(true));
            match key.as_str() {
                "max-age" => cc.max_age = Some(delta(&value)?),
                "s-maxage" => cc.s_maxage = Some(delta(&value)?),
                "stale-while-revalidate" => cc.stale_while_revalidate = Some(delta(&value)?),
                "stale-if-error" => cc.stale_if_error = Some(delta(&value)?),
                "no-store" => cc.no_store = flag(&value).then_some(true)?,
                "no-cache" => cc.no_cache = flag(&value).then_some(true)?,
                "private" => cc.private = flag(&value).then_some(true)?,
                "public" => cc.public = flag(&value).then_some(true)?,
                "must-revalidate" => cc.must_revalidate = flag(&value).then_some(true)?,
                "proxy-revalidate" => cc.proxy_revalidate = flag(&value).then_some(true)?,
                "must-understand" => cc.must_understand = flag(&value).then_some(true)?,
                "no-transform" => cc.no_transform = flag(&value).then_some(true)?,
                "immutable" => cc.immutable = flag(&value).then_some(true)?,
                _ => {} // Unknown directives are ignored, whatever their type.
            }
        }
        Some(cc)
    }

    /// A request's directives; `Pragma: no-cache` counts when there is no Cache-Control
    /// (RFC 9111 §5.4).
    pub fn request(headers: &HeaderMap) -> CacheControl {
        match CacheControl::from_headers(headers, &CACHE_CONTROL) {
            Some(cc) => cc,
            None => CacheControl {
                no_cache: headers
                    .get_all(PRAGMA)
                    .iter()
                    .any(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache")),
                ..CacheControl::default()
            },
        }
    }

    /// Parses one header value (for tests and fuzzing).
    pub fn parse(value: &[u8]) -> CacheControl {
        let mut cc = CacheControl::default();
        parse_into(&mut cc, &mut Seen::default(), value);
        cc
    }
}

#[derive(Default)]
struct Seen {
    max_age: bool,
    s_maxage: bool,
    swr: bool,
    sie: bool,
    min_fresh: bool,
    max_stale: bool,
}

fn parse_into(cc: &mut CacheControl, seen: &mut Seen, value: &[u8]) {
    for item in split_directives(value) {
        let (name, arg) = match item.iter().position(|&b| b == b'=') {
            Some(i) => (trim(&item[..i]), Some(unquote(trim(&item[i + 1..])))),
            None => (trim(item), None),
        };
        if name.is_empty() {
            continue;
        }
        // Matched without a lowercased copy: stored responses' fields are parsed on every hit.
        match known_directive(name) {
            b"max-age" => set_delta(&mut cc.max_age, &mut seen.max_age, arg),
            b"s-maxage" => set_delta(&mut cc.s_maxage, &mut seen.s_maxage, arg),
            b"stale-while-revalidate" => {
                set_delta(&mut cc.stale_while_revalidate, &mut seen.swr, arg)
            }
            b"stale-if-error" => set_delta(&mut cc.stale_if_error, &mut seen.sie, arg),
            b"min-fresh" => set_delta(&mut cc.min_fresh, &mut seen.min_fresh, arg),
            b"max-stale" => {
                let v = arg.map(parse_delta);
                cc.max_stale = match (seen.max_stale, cc.max_stale, v) {
                    (false, _, None) => Some(None),
                    (false, _, Some(d)) => Some(Some(d.unwrap_or(0))),
                    // Repeated: keep the stricter reading.
                    (true, _, _) => Some(Some(0)),
                };
                seen.max_stale = true;
            }
            b"no-cache" => cc.no_cache = true,
            b"no-store" => cc.no_store = true,
            b"private" => cc.private = true,
            b"public" => cc.public = true,
            b"must-revalidate" => cc.must_revalidate = true,
            b"proxy-revalidate" => cc.proxy_revalidate = true,
            b"must-understand" => cc.must_understand = true,
            b"no-transform" => cc.no_transform = true,
            b"immutable" => cc.immutable = true,
            b"only-if-cached" => cc.only_if_cached = true,
            _ => {} // Unknown directives are ignored (RFC 9111 §5.2.3).
        }
    }
}

const DIRECTIVES: [&[u8]; 16] = [
    b"max-age",
    b"s-maxage",
    b"stale-while-revalidate",
    b"stale-if-error",
    b"min-fresh",
    b"max-stale",
    b"no-cache",
    b"no-store",
    b"private",
    b"public",
    b"must-revalidate",
    b"proxy-revalidate",
    b"must-understand",
    b"no-transform",
    b"immutable",
    b"only-if-cached",
];

/// The lowercase spelling of a known directive `name` (any case), or `b""` for an unknown one.
fn known_directive(name: &[u8]) -> &'static [u8] {
    DIRECTIVES
        .iter()
        .find(|d| d.eq_ignore_ascii_case(name))
        .copied()
        .unwrap_or(b"")
}

fn set_delta(slot: &mut Option<u64>, seen: &mut bool, arg: Option<&[u8]>) {
    let v = arg.and_then(parse_delta).unwrap_or(0);
    *slot = match (*seen, *slot) {
        (false, _) => Some(v),
        (true, Some(old)) if old == v => Some(v),
        // Conflicting duplicates: stale.
        (true, _) => Some(0),
    };
    *seen = true;
}

/// delta-seconds: digits only; too large saturates at 2^31.
pub fn parse_delta(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for d in s {
        v = v.saturating_mul(10).saturating_add(u64::from(d - b'0'));
        if v > DELTA_MAX {
            return Some(DELTA_MAX);
        }
    }
    Some(v)
}

/// Splits on commas that are not inside a quoted string.
fn split_directives(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    // An iterator, not a collected list: no allocation per parse.
    let mut start = Some(0);
    std::iter::from_fn(move || {
        let from = start?;
        let (mut in_quotes, mut escaped) = (false, false);
        for (i, &b) in v.iter().enumerate().skip(from) {
            if escaped {
                escaped = false;
                continue;
            }
            match b {
                b'\\' if in_quotes => escaped = true,
                b'"' => in_quotes = !in_quotes,
                b',' if !in_quotes => {
                    start = Some(i + 1);
                    return Some(&v[from..i]);
                }
                _ => {}
            }
        }
        start = None;
        Some(&v[from..])
    })
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

fn unquote(s: &[u8]) -> &[u8] {
    if s.len() >= 2 && s[0] == b'"' && s[s.len() - 1] == b'"' {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_world_values() {
        let table: &[(&str, CacheControl)] = &[
            ("", CacheControl::default()),
            (
                "public, max-age=3600",
                CacheControl {
                    public: true,
                    max_age: Some(3600),
                    ..Default::default()
                },
            ),
            (
                "MAX-AGE=60 , S-MAXAGE=\"120\"",
                CacheControl {
                    max_age: Some(60),
                    s_maxage: Some(120),
                    ..Default::default()
                },
            ),
            (
                "no-cache=\"set-cookie, x-a\", private",
                CacheControl {
                    no_cache: true,
                    private: true,
                    ..Default::default()
                },
            ),
            (
                "max-age=60, stale-while-revalidate=30, stale-if-error=86400",
                CacheControl {
                    max_age: Some(60),
                    stale_while_revalidate: Some(30),
                    stale_if_error: Some(86400),
                    ..Default::default()
                },
            ),
            (
                "max-age=abc",
                CacheControl {
                    max_age: Some(0),
                    ..Default::default()
                },
            ),
            (
                "max-age=-5",
                CacheControl {
                    max_age: Some(0),
                    ..Default::default()
                },
            ),
            (
                "max-age",
                CacheControl {
                    max_age: Some(0),
                    ..Default::default()
                },
            ),
            (
                "max-age=60, max-age=60",
                CacheControl {
                    max_age: Some(60),
                    ..Default::default()
                },
            ),
            (
                "max-age=60, max-age=120",
                CacheControl {
                    max_age: Some(0),
                    ..Default::default()
                },
            ),
            (
                "max-age=99999999999999999999",
                CacheControl {
                    max_age: Some(DELTA_MAX),
                    ..Default::default()
                },
            ),
            (
                ",,, no-store ,",
                CacheControl {
                    no_store: true,
                    ..Default::default()
                },
            ),
            (
                "max-stale",
                CacheControl {
                    max_stale: Some(None),
                    ..Default::default()
                },
            ),
            (
                "max-stale=10",
                CacheControl {
                    max_stale: Some(Some(10)),
                    ..Default::default()
                },
            ),
            (
                "must-understand, no-store, immutable, no-transform",
                CacheControl {
                    must_understand: true,
                    no_store: true,
                    immutable: true,
                    no_transform: true,
                    ..Default::default()
                },
            ),
            (
                "x-unknown=\"a,b\", public",
                CacheControl {
                    public: true,
                    ..Default::default()
                },
            ),
        ];
        for (input, want) in table {
            assert_eq!(&CacheControl::parse(input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn several_field_lines_combine_and_pragma_is_a_fallback() {
        let mut h = HeaderMap::new();
        h.append(CACHE_CONTROL, "public".parse().expect("value"));
        h.append(CACHE_CONTROL, "max-age=5".parse().expect("value"));
        let cc = CacheControl::from_headers(&h, &CACHE_CONTROL).expect("present");
        assert!(cc.public);
        assert_eq!(cc.max_age, Some(5));

        let mut req = HeaderMap::new();
        req.insert(PRAGMA, "no-cache".parse().expect("value"));
        assert!(CacheControl::request(&req).no_cache);
        req.insert(CACHE_CONTROL, "max-age=10".parse().expect("value"));
        assert!(
            !CacheControl::request(&req).no_cache,
            "Cache-Control wins over Pragma"
        );
    }

    #[test]
    fn never_panics_on_garbage() {
        for input in [
            &b"\"\"\"=,=,\\"[..],
            b"=",
            b"max-age=\"",
            b"\xff\xfe",
            b"a=\"b\\\"c\", d",
        ] {
            let _ = CacheControl::parse(input);
        }
    }
}
