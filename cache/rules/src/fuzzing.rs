//! Fuzz entry points: each takes arbitrary bytes as a peer could send them, runs one parser on
//! them and asserts what must hold for every input. The cargo-fuzz targets in `fuzz/` call
//! these, and the tests below replay the committed corpus through them on stable, so a crash
//! found once stays found.
//!
//! Inputs are text-shaped (lines, `name: value` fields) so that corpus files stay readable.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use crate::cache_control::{CacheControl, DELTA_MAX};
use crate::encoding::{AcceptEncoding, Coding, CompressPolicy, DEFAULT_COMPRESSIBLE};
use crate::key::{self, KeyRules};
use crate::plan::{self, StoredAnswer};
use crate::rules::{self, CDN_CACHE_CONTROL, Policy, RangeAnswer, StoredMeta};
use crate::{dates, framing, sfv};

/// `name: value` lines as a header map. Lines that are not a valid field are skipped: a peer's
/// parser refuses them before the rules ever see them.
pub fn header_lines(data: &[u8]) -> HeaderMap {
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

/// Each line as one field line of `name`; invalid values are skipped.
fn value_lines(data: &[u8], name: &HeaderName) -> HeaderMap {
    let mut h = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            h.append(name.clone(), v);
        }
    }
    h
}

/// Splits off the first line (without its `\n`).
fn first_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fn check_deltas(cc: &CacheControl) {
    for v in [
        cc.max_age,
        cc.s_maxage,
        cc.stale_while_revalidate,
        cc.stale_if_error,
        cc.min_fresh,
        cc.max_stale.flatten(),
    ] {
        assert!(v.is_none_or(|v| v <= DELTA_MAX), "{cc:?}");
    }
}

/// `Cache-Control` and `CDN-Cache-Control` values, one field line per input line.
pub fn cache_control(data: &[u8]) {
    check_deltas(&CacheControl::parse(data));
    let cc_lines = value_lines(data, &header::CACHE_CONTROL);
    if let Some(cc) = CacheControl::from_headers(&cc_lines, &header::CACHE_CONTROL) {
        check_deltas(&cc);
        // Several field lines mean the same as one joined with commas (RFC 9110 §5.3), as
        // long as no quoted string spans a line break.
        if !data.contains(&b'"') {
            let joined: Vec<u8> = cc_lines
                .get_all(header::CACHE_CONTROL)
                .iter()
                .map(HeaderValue::as_bytes)
                .collect::<Vec<_>>()
                .join(&b","[..]);
            assert_eq!(cc, CacheControl::parse(&joined));
        }
        check_deltas(&CacheControl::request(&cc_lines));
    }

    // The same bytes as a Structured Field dictionary (CDN-Cache-Control's syntax).
    if let Some(members) = sfv::parse_dictionary(data) {
        for (i, (key, _)) in members.iter().enumerate() {
            assert!(
                !members[..i].iter().any(|(k, _)| k == key),
                "{key:?} twice in one dictionary"
            );
            assert!(key.starts_with(|c: char| c.is_ascii_lowercase() || c == '*'));
        }
    }
    let cdn_lines = value_lines(data, &CDN_CACHE_CONTROL);
    let cdn = CacheControl::from_cdn_headers(&cdn_lines, &CDN_CACHE_CONTROL);
    if let Some(cdn) = &cdn {
        check_deltas(cdn);
        // RFC 9213 §2.1: an empty targeted field MUST be ignored, as if absent.
        assert!(
            cdn_lines
                .get_all(&CDN_CACHE_CONTROL)
                .iter()
                .any(|v| !v.as_bytes().trim_ascii().is_empty()),
            "an empty CDN-Cache-Control is obeyed: {cdn:?}"
        );
    }
    // Beside `Cache-Control: no-store`, CDN-Cache-Control decides exactly when it is obeyed.
    let mut both = cdn_lines.clone();
    both.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let got = rules::response_cc(&both, &Policy::default());
    match cdn {
        Some(cdn) => assert_eq!(got, cdn),
        None => assert!(got.no_store, "an ignored CDN-Cache-Control still overrides"),
    }
    let plain = Policy {
        cdn_cache_control: false,
        ..Policy::default()
    };
    assert!(rules::response_cc(&both, &plain).no_store);
}

/// An HTTP date (any of the three formats, RFC 9110 §5.6.7): what parses is a time that
/// formats as an IMF-fixdate and parses back to itself.
pub fn http_date(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(t) = dates::parse(text) else {
        return;
    };
    let fixdate = httpdate::fmt_http_date(t);
    assert_eq!(dates::parse(&fixdate), Some(t), "{text:?} -> {fixdate}");
    assert_eq!(httpdate::parse_http_date(&fixdate).ok(), Some(t));
}

/// An `Accept-Encoding` value: what negotiation picks must be something the parse accepts.
pub fn accept_encoding(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let ae = AcceptEncoding::parse(&text);
    let prefs: [&[Coding]; 4] = [
        &Coding::ALL,
        &[Coding::Gzip],
        &[Coding::Br, Coding::Gzip, Coding::Zstd],
        &[],
    ];
    for pref in prefs {
        if let Some(c) = ae.negotiate(pref) {
            assert!(pref.contains(&c), "{c} not offered in {pref:?}");
            assert!(ae.accepts(c), "{c} negotiated but not accepted: {ae:?}");
        }
    }
    // The request path reads the field with `from_headers`: same answer for a clean value.
    if let Ok(v) = HeaderValue::from_str(&text)
        && v.to_str().is_ok()
    {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, v);
        assert_eq!(AcceptEncoding::from_headers(&h), ae);
    }
}

/// The stored response the range and planner targets answer from.
fn meta(status: StatusCode, headers: HeaderMap, body_len: u64) -> StoredMeta {
    let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    StoredMeta {
        status,
        headers,
        request_time: t,
        response_time: t + Duration::from_secs(1),
        vary: Vec::new(),
        body_len,
        generation: 1,
        parsed: Default::default(),
    }
}

fn default_response_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::ETAG, HeaderValue::from_static("\"v1\""));
    h.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60"),
    );
    h
}

/// First line: a `Range` value; second line, if any: an `If-Range` value. Answered from stored
/// bodies of several lengths (the stored one has `ETag: "v1"` and a Last-Modified).
pub fn range(data: &[u8]) {
    let (spec, rest) = first_line(data);
    let (if_range, _) = first_line(rest);
    let mut req = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(spec) {
        req.insert(header::RANGE, v);
    }
    if !if_range.is_empty()
        && let Ok(v) = HeaderValue::from_bytes(if_range)
    {
        req.insert(header::IF_RANGE, v);
    }
    for len in [0, 1, 5, 1000, u64::MAX] {
        let m = meta(StatusCode::OK, default_response_headers(), len);
        match rules::range(&req, &m) {
            RangeAnswer::Partial { start, end } => {
                assert!(start <= end && end < len, "{start}-{end} of {len}");
            }
            RangeAnswer::Unsatisfiable => assert!(req.contains_key(header::RANGE)),
            RangeAnswer::Full => {}
        }
    }
}

/// Lines: path, query, then `name: value` request fields. The key must keep the path as it is,
/// leave ignored parameters out and not depend on parameter order when sorting.
pub fn cache_key(data: &[u8]) {
    let (path, rest) = first_line(data);
    let (query, fields) = first_line(rest);
    let path = String::from_utf8_lossy(path);
    let query = String::from_utf8_lossy(query);
    let h = header_lines(fields);
    let prefix = format!("https://h{path}");

    let plain = key::primary_key("https", "h", &path, Some(&query), &h, &KeyRules::default());
    let want = if query.is_empty() {
        prefix.clone()
    } else {
        format!("{prefix}?{query}")
    };
    assert_eq!(plain, want);

    let ignore_query = KeyRules {
        ignore_query: true,
        ..KeyRules::default()
    };
    assert_eq!(
        key::primary_key("https", "h", &path, Some(&query), &h, &ignore_query),
        prefix
    );

    let ignored = vec![
        "utm_source".to_string(),
        // The first parameter's name, so that dropping one is exercised on every input.
        query.split(['&', '=']).next().unwrap_or("").to_string(),
    ];
    let rules = KeyRules {
        ignore_params: ignored.clone(),
        sort_query: true,
        headers: vec![HeaderName::from_static("x-device"), header::ACCEPT_LANGUAGE],
        cookies: vec!["session".into(), "lang".into()],
        ..KeyRules::default()
    };
    let k = key::primary_key("https", "h", &path, Some(&query), &h, &rules);
    let tail = k
        .strip_prefix(prefix.as_str())
        .unwrap_or_else(|| panic!("{k:?}"));
    let kept_query = tail.split('\n').next().unwrap_or("");
    if let Some(q) = kept_query.strip_prefix('?') {
        for p in q.split('&') {
            let name = p.split('=').next().unwrap_or("");
            assert!(!ignored.iter().any(|i| i == name), "{name:?} kept in {k:?}");
        }
    }
    let reversed = query.split('&').rev().collect::<Vec<_>>().join("&");
    assert_eq!(
        key::primary_key("https", "h", &path, Some(&reversed), &h, &rules),
        k,
        "sorted keys depend on parameter order"
    );

    for name in ["session", "lang", &*path] {
        if let Some(v) = key::cookie_value(&h, name) {
            assert!(
                h.get_all(header::COOKIE)
                    .iter()
                    .filter_map(|c| c.to_str().ok())
                    .any(|c| c.contains(&format!("{name}={v}"))),
                "cookie {name}={v:?} not in the request"
            );
        }
    }
}

/// `Content-Length` field lines: a length only when every value is the same run of digits.
pub fn content_length(data: &[u8]) {
    let h = value_lines(data, &header::CONTENT_LENGTH);
    let got = framing::content_length(&h);
    match got {
        Ok(Some(n)) => {
            for v in h.get_all(header::CONTENT_LENGTH) {
                for t in v.as_bytes().split(|b| *b == b',') {
                    let t = t.trim_ascii();
                    assert!(
                        !t.is_empty() && t.iter().all(u8::is_ascii_digit),
                        "length {n} from {:?}",
                        String::from_utf8_lossy(v.as_bytes())
                    );
                    assert_eq!(
                        std::str::from_utf8(t).ok().and_then(|s| s.parse().ok()),
                        Some(n)
                    );
                }
            }
        }
        Ok(None) => assert!(!h.contains_key(header::CONTENT_LENGTH)),
        Err(_) => assert!(h.contains_key(header::CONTENT_LENGTH)),
    }
    assert_eq!(framing::declared_length(&h), got.ok().flatten());
}

/// First line: `METHOD STATUS BODY_LEN` (defaults GET 200 1000 for what does not parse); then
/// request fields up to an empty line; then the stored response's fields (default: an ETag, a
/// Last-Modified, HTML, max-age=60).
pub fn stored_head(data: &[u8]) {
    let (head, rest) = first_line(data);
    let mut words = head.split(|b| *b == b' ');
    let method = words
        .next()
        .and_then(|m| Method::from_bytes(m).ok())
        .unwrap_or(Method::GET);
    let status = words
        .next()
        .and_then(|s| std::str::from_utf8(s).ok()?.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        // A 206 is never stored (`rules::storable`), so no stored object has that status.
        .filter(|s| *s != StatusCode::PARTIAL_CONTENT)
        .unwrap_or(StatusCode::OK);
    let body_len = words
        .next()
        .and_then(|s| std::str::from_utf8(s).ok()?.parse::<u64>().ok())
        .unwrap_or(1000);
    let (req_part, resp_part) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    let req = header_lines(req_part);
    let mut resp = header_lines(resp_part);
    if resp.is_empty() {
        resp = default_response_headers();
    }
    let m = meta(status, resp, body_len);
    let accept = AcceptEncoding::from_headers(&req);
    let types = crate::encoding::MediaTypes::new(DEFAULT_COMPRESSIBLE.iter().copied());
    let now = m.response_time + Duration::from_secs(30);
    for min_bytes in [0, 1024] {
        let policy = CompressPolicy {
            enabled: true,
            types: &types,
            min_bytes,
            prefer: &Coding::ALL,
        };
        let sh = plan::stored_head(&method, &req, &accept, &m, &policy, now);
        check_head(&method, &m, &accept, &sh);
    }
    // The freshness rules read the same fields (Age, Date, Expires, Cache-Control, Vary).
    let policy = Policy::default();
    let verdict = rules::evaluate(&req, &m, &policy, now);
    assert!(verdict.age >= now.duration_since(m.response_time).unwrap_or_default());
    let _ = rules::storable(&method, &req, m.status, &m.headers, &policy);
}

fn check_head(method: &Method, m: &StoredMeta, accept: &AcceptEncoding, sh: &plan::StoredHead) {
    let length = |h: &HeaderMap| {
        h.get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    };
    match &sh.answer {
        StoredAnswer::Multipart { parts, closing } => {
            // Sorted, disjoint, non-adjacent parts within the body, and a Content-Length
            // that counts exactly the framing and the bytes.
            assert_eq!(sh.status, StatusCode::PARTIAL_CONTENT);
            assert!(parts.len() > 1 && parts.len() <= crate::rules::MAX_RANGES);
            let mut want = closing.len() as u64;
            for (i, p) in parts.iter().enumerate() {
                assert!(p.start <= p.end && p.end < m.body_len, "{parts:?}");
                if i > 0 {
                    assert!(parts[i - 1].end + 1 < p.start, "{parts:?}");
                }
                want += p.preamble.len() as u64 + p.end - p.start + 1;
            }
            assert_eq!(length(&sh.headers), Some(want));
        }
        StoredAnswer::NotModified => {
            assert_eq!(sh.status, StatusCode::NOT_MODIFIED);
            assert!(sh.coding.is_none());
        }
        StoredAnswer::Unsatisfiable { total } => {
            assert_eq!(sh.status, StatusCode::RANGE_NOT_SATISFIABLE);
            assert_eq!(*total, m.body_len);
            assert_eq!(length(&sh.headers), Some(0));
        }
        &StoredAnswer::Body {
            start,
            len,
            partial,
        } => {
            let end = start.checked_add(len);
            assert!(end.is_some_and(|e| e <= m.body_len), "{:?}", sh.answer);
            assert_eq!(partial, sh.status == StatusCode::PARTIAL_CONTENT);
            if partial {
                assert!(len > 0 && method == Method::GET && m.status == StatusCode::OK);
                let want = format!("bytes {start}-{}/{}", start + len - 1, m.body_len);
                assert_eq!(
                    sh.headers
                        .get(header::CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok()),
                    Some(want.as_str())
                );
            } else {
                assert_eq!((start, len, sh.status), (0, m.body_len, m.status));
            }
            match sh.coding {
                Some(c) => {
                    assert!(accept.accepts(c) && sh.negotiated);
                    assert!(!sh.headers.contains_key(header::CONTENT_LENGTH));
                }
                None => assert_eq!(length(&sh.headers), Some(len)),
            }
        }
    }
}

/// Runs `entry` on every file of a corpus directory and fails, naming the files, if any of
/// them panics. A missing or empty directory fails too: a regression test that checks nothing
/// must not pass.
pub fn replay_corpus(dir: &Path, entry: fn(&[u8])) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus directory {}: {e}", dir.display()));
    let mut files: Vec<_> = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("corpus directory {}: {e}", dir.display()));
    files.retain(|p| p.is_file());
    files.sort();
    assert!(
        !files.is_empty(),
        "corpus directory {} is empty",
        dir.display()
    );
    let mut failed = Vec::new();
    for file in &files {
        let data =
            std::fs::read(file).unwrap_or_else(|e| panic!("corpus file {}: {e}", file.display()));
        if catch_unwind(AssertUnwindSafe(|| entry(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} corpus files fail (panic messages above):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed corpus (`fuzz/corpus/NAME`, two levels up from this crate).
    fn corpus(target: &str) -> std::path::PathBuf {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus")).join(target)
    }

    #[test]
    fn corpus_cache_control() {
        replay_corpus(&corpus("cache_control"), cache_control);
    }

    #[test]
    fn corpus_http_date() {
        replay_corpus(&corpus("http_date"), http_date);
    }

    #[test]
    fn corpus_accept_encoding() {
        replay_corpus(&corpus("accept_encoding"), accept_encoding);
    }

    #[test]
    fn corpus_range() {
        replay_corpus(&corpus("range"), range);
    }

    #[test]
    fn corpus_cache_key() {
        replay_corpus(&corpus("cache_key"), cache_key);
    }

    #[test]
    fn corpus_content_length() {
        replay_corpus(&corpus("content_length"), content_length);
    }

    #[test]
    fn corpus_stored_head() {
        replay_corpus(&corpus("stored_head"), stored_head);
    }
}
