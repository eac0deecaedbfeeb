#![allow(clippy::type_complexity)] // table rows are tuples on purpose: one line per case
use std::time::{Duration, UNIX_EPOCH};

use http::header::HeaderName;

use super::*;
use crate::encoding::MediaTypes;

fn h(fields: &[(&str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (n, v) in fields {
        m.append(
            HeaderName::from_bytes(n.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    m
}

#[test]
fn request_plan_table() {
    let cookies = vec!["session".to_string()];
    let bypass = Bypass {
        cookies: &cookies,
        authorization: true,
    };
    let pass = |detail| RequestPlan::Pass {
        detail,
        invalidate: false,
    };
    let cases: &[(Method, &[(&str, &str)], bool, bool, RequestPlan)] = &[
        (Method::GET, &[], false, false, RequestPlan::Lookup),
        (Method::HEAD, &[], false, false, RequestPlan::Lookup),
        (
            Method::POST,
            &[],
            false,
            false,
            RequestPlan::Pass {
                detail: "method",
                invalidate: true,
            },
        ),
        (
            Method::DELETE,
            &[],
            false,
            false,
            RequestPlan::Pass {
                detail: "method",
                invalidate: true,
            },
        ),
        (Method::OPTIONS, &[], false, false, pass("method")),
        (Method::GET, &[], true, false, pass("body")),
        (Method::GET, &[], false, true, pass("loop")),
        (
            Method::GET,
            &[("cookie", "a=1; session=x")],
            false,
            false,
            pass("cookie"),
        ),
        (
            Method::GET,
            &[("cookie", "sessionx=1")],
            false,
            false,
            RequestPlan::Lookup,
        ),
        (
            Method::GET,
            &[("authorization", "Bearer t")],
            false,
            false,
            pass("authorization"),
        ),
    ];
    for (method, fields, body, looped, want) in cases {
        assert_eq!(
            request(method, &h(fields), *body, *looped, bypass),
            *want,
            "{method} {fields:?} body={body} looped={looped}"
        );
    }
    // Without the site's bypasses, Authorization alone does not skip the lookup.
    assert_eq!(
        request(
            &Method::GET,
            &h(&[("authorization", "Bearer t")]),
            false,
            false,
            Bypass::default()
        ),
        RequestPlan::Lookup
    );
}

#[test]
fn miss_plan_table() {
    let cases: &[(Method, &[(&str, &str)], bool, MissPlan)] = &[
        (Method::GET, &[], false, MissPlan::Fetch),
        (Method::HEAD, &[], false, MissPlan::Pass("head")),
        (
            Method::GET,
            &[("range", "bytes=0-1")],
            false,
            MissPlan::Range,
        ),
        (
            Method::GET,
            &[("range", "bytes=0-1")],
            true,
            MissPlan::Pass("hit-for-pass"),
        ),
        (Method::GET, &[], true, MissPlan::Pass("hit-for-pass")),
        (
            Method::GET,
            &[("cache-control", "only-if-cached")],
            true,
            MissPlan::OnlyIfCached,
        ),
    ];
    for (method, fields, hfp, want) in cases {
        assert_eq!(miss(method, &h(fields), *hfp), *want, "{method} {fields:?}");
    }
    assert_eq!(
        revalidation_fwd(&h(&[("cache-control", "no-cache")])),
        Fwd::Request
    );
    assert_eq!(
        revalidation_fwd(&h(&[("pragma", "no-cache")])),
        Fwd::Request
    );
    assert_eq!(revalidation_fwd(&h(&[])), Fwd::Stale);
}

#[test]
fn hit_for_pass_only_for_what_the_response_decided() {
    let plain = h(&[]);
    let no_store = h(&[("cache-control", "no-store")]);
    assert!(marks_hit_for_pass(NotStorable::Private, &plain));
    assert!(marks_hit_for_pass(NotStorable::SetCookie, &plain));
    assert!(marks_hit_for_pass(NotStorable::Framing, &plain));
    assert!(!marks_hit_for_pass(NotStorable::Authorization, &plain));
    assert!(!marks_hit_for_pass(NotStorable::Method, &plain));
    assert!(!marks_hit_for_pass(NotStorable::Private, &no_store));
}

fn policy<'a>(types: &'a MediaTypes, prefer: &'a [Coding]) -> CompressPolicy<'a> {
    CompressPolicy {
        enabled: true,
        types,
        min_bytes: 512,
        prefer,
    }
}

#[test]
fn representation_table() {
    let types = MediaTypes::new(["text/*"]);
    let prefer = [Coding::Zstd, Coding::Br, Coding::Gzip];
    let p = policy(&types, &prefer);
    let html = h(&[("content-type", "text/html")]);
    let png = h(&[("content-type", "image/png")]);
    let gz = h(&[("content-type", "text/html"), ("content-encoding", "gzip")]);
    let br = AcceptEncoding::parse("br, gzip");
    let none = AcceptEncoding::parse("");
    let get = Method::GET;
    let cases: &[(
        &Method,
        &HeaderMap,
        &AcceptEncoding,
        StatusCode,
        &HeaderMap,
        Option<u64>,
        Representation,
    )] = &[
        (
            &get,
            &h(&[]),
            &br,
            StatusCode::OK,
            &html,
            Some(4096),
            Representation::Encode(Coding::Br),
        ),
        (
            &get,
            &h(&[]),
            &none,
            StatusCode::OK,
            &html,
            Some(4096),
            Representation::Identity { varies: true },
        ),
        (
            &get,
            &h(&[("range", "bytes=0-9")]),
            &br,
            StatusCode::OK,
            &html,
            Some(4096),
            Representation::Identity { varies: true },
        ),
        (
            &Method::HEAD,
            &h(&[]),
            &br,
            StatusCode::OK,
            &html,
            Some(4096),
            Representation::Identity { varies: true },
        ),
        (
            &get,
            &h(&[]),
            &br,
            StatusCode::OK,
            &html,
            Some(100),
            Representation::Identity { varies: false },
        ),
        (
            &get,
            &h(&[]),
            &br,
            StatusCode::OK,
            &png,
            Some(4096),
            Representation::Identity { varies: false },
        ),
        (
            &get,
            &h(&[]),
            &br,
            StatusCode::OK,
            &gz,
            Some(4096),
            Representation::Undecided,
        ),
        (
            &get,
            &h(&[]),
            &br,
            StatusCode::NOT_FOUND,
            &html,
            Some(4096),
            Representation::Undecided,
        ),
    ];
    for (i, (method, req, accept, status, resp, len, want)) in cases.iter().enumerate() {
        assert_eq!(
            representation(method, req, accept, *status, resp, *len, &p),
            *want,
            "case {i}"
        );
    }
}

fn stored(fields: &[(&str, &str)], len: u64) -> StoredMeta {
    StoredMeta {
        status: StatusCode::OK,
        headers: h(fields),
        request_time: UNIX_EPOCH + Duration::from_secs(1_000_000),
        response_time: UNIX_EPOCH + Duration::from_secs(1_000_000),
        vary: Vec::new(),
        body_len: len,
        generation: 1,
        parsed: Default::default(),
    }
}

#[test]
fn stored_head_table() {
    let types = MediaTypes::new(["text/*"]);
    let prefer = [Coding::Zstd, Coding::Br, Coding::Gzip];
    let p = policy(&types, &prefer);
    let meta = stored(
        &[
            ("content-type", "text/html"),
            ("etag", "\"v1\""),
            ("cache-control", "max-age=60"),
            ("date", "Mon, 12 Jan 1970 13:46:40 GMT"),
            ("x-extra", "1"),
        ],
        1000,
    );
    let now = UNIX_EPOCH + Duration::from_secs(1_000_030);
    let none = AcceptEncoding::parse("");
    let gzip = AcceptEncoding::parse("gzip");
    let get = Method::GET;
    let head = |req: &[(&str, &str)], accept: &AcceptEncoding, method: &Method| {
        stored_head(method, &h(req), accept, &meta, &p, now)
    };

    let full = head(&[], &none, &get);
    assert_eq!(
        full.answer,
        StoredAnswer::Body {
            start: 0,
            len: 1000,
            partial: false
        }
    );
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(full.headers["age"], "30");
    assert_eq!(full.headers["accept-ranges"], "bytes");
    assert_eq!(full.headers["content-length"], "1000");
    assert_eq!(full.headers["vary"], "Accept-Encoding");
    assert!(full.negotiated);

    let range = head(&[("range", "bytes=10-19")], &gzip, &get);
    assert_eq!(
        range.answer,
        StoredAnswer::Body {
            start: 10,
            len: 10,
            partial: true
        }
    );
    assert_eq!(range.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(range.headers["content-range"], "bytes 10-19/1000");
    assert_eq!(range.headers["content-length"], "10");
    assert_eq!(range.coding, None, "ranges come from identity bytes");

    let bad = head(&[("range", "bytes=5000-")], &none, &get);
    assert_eq!(bad.answer, StoredAnswer::Unsatisfiable { total: 1000 });
    assert_eq!(bad.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(bad.headers["content-range"], "bytes */1000");

    let encoded = head(&[], &gzip, &get);
    assert_eq!(encoded.coding, Some(Coding::Gzip));
    assert_eq!(encoded.headers["content-encoding"], "gzip");
    assert_eq!(encoded.headers["etag"], "W/\"v1\"");
    assert!(!encoded.headers.contains_key("content-length"));

    let not_modified = head(&[("if-none-match", "W/\"v1\"")], &gzip, &get);
    assert_eq!(not_modified.answer, StoredAnswer::NotModified);
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.headers["etag"], "W/\"v1\"");
    assert!(!not_modified.headers.contains_key("x-extra"));
    assert!(!not_modified.headers.contains_key("content-type"));
    assert_eq!(not_modified.headers["age"], "30");

    let plain_304 = head(&[("if-none-match", "\"v1\"")], &none, &get);
    assert_eq!(
        plain_304.headers["etag"], "\"v1\"",
        "no coding, strong tag kept"
    );

    let head_req = head(&[("range", "bytes=0-1")], &gzip, &Method::HEAD);
    assert_eq!(
        head_req.answer,
        StoredAnswer::Body {
            start: 0,
            len: 1000,
            partial: false
        },
        "HEAD: no range, no coding"
    );
    assert_eq!(head_req.coding, None);
}

/// Which stored responses leave the compress phase nothing to decide: a 200 without a content
/// coding, compressible or not (this plan weighed it); not a stored coding the client may be
/// unable to read, nor another status (the compress phase compresses those on the fly).
#[test]
fn stored_heads_settle_the_representation_of_identity_200s_only() {
    let types = MediaTypes::new(["text/*"]);
    let prefer = [Coding::Gzip];
    let p = policy(&types, &prefer);
    let now = UNIX_EPOCH + Duration::from_secs(1_000_030);
    let none = AcceptEncoding::parse("");
    let cases: [(&[(&str, &str)], StatusCode, bool, bool); 5] = [
        (&[("content-type", "text/html")], StatusCode::OK, true, true),
        (
            &[("content-type", "application/octet-stream")],
            StatusCode::OK,
            true,
            false,
        ),
        (&[], StatusCode::OK, true, false),
        (
            &[("content-type", "text/html"), ("content-encoding", "gzip")],
            StatusCode::OK,
            false,
            false,
        ),
        (
            &[("content-type", "text/html")],
            StatusCode::NOT_FOUND,
            false,
            false,
        ),
    ];
    for (i, (fields, status, settled, varies)) in cases.into_iter().enumerate() {
        let mut meta = stored(fields, 1000);
        meta.status = status;
        let sh = stored_head(&Method::GET, &h(&[]), &none, &meta, &p, now);
        assert_eq!(sh.negotiated, settled, "case {i}");
        assert_eq!(sh.headers.contains_key("vary"), varies, "case {i}");
        assert_eq!(sh.coding, None, "case {i}");
    }
}

#[test]
fn multipart_byteranges_from_a_stored_object() {
    let types = MediaTypes::new(["text/*"]);
    let prefer = [Coding::Gzip];
    let p = policy(&types, &prefer);
    let meta = stored(&[("content-type", "application/octet-stream")], 100);
    let now = UNIX_EPOCH + Duration::from_secs(1_000_001);
    let none = AcceptEncoding::parse("");
    let sh = stored_head(
        &Method::GET,
        &h(&[("range", "bytes=50-59, 0-9, 5-12, 90-")]),
        &none,
        &meta,
        &p,
        now,
    );
    assert_eq!(sh.status, StatusCode::PARTIAL_CONTENT);
    let StoredAnswer::Multipart { parts, closing } = &sh.answer else {
        panic!("{:?}", sh.answer)
    };
    let spans: Vec<(u64, u64)> = parts.iter().map(|p| (p.start, p.end)).collect();
    assert_eq!(
        spans,
        [(0, 12), (50, 59), (90, 99)],
        "sorted, overlaps merged"
    );
    let ct = sh.headers["content-type"].to_str().expect("ct");
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .expect("multipart type");
    assert!(parts[0].preamble.starts_with(&format!("--{boundary}\r\n")));
    assert!(
        parts[1]
            .preamble
            .starts_with(&format!("\r\n--{boundary}\r\n"))
    );
    assert!(parts[0].preamble.contains(
        "Content-Type: application/octet-stream\r\nContent-Range: bytes 0-12/100\r\n\r\n"
    ));
    assert_eq!(closing, &format!("\r\n--{boundary}--\r\n"));
    let length: u64 = parts
        .iter()
        .map(|p| p.preamble.len() as u64 + p.end - p.start + 1)
        .sum::<u64>()
        + closing.len() as u64;
    assert_eq!(sh.headers["content-length"], length.to_string().as_str());
    // More ranges than the limit: the whole body, as RFC 9110 allows.
    let many: Vec<String> = (0..20).map(|i| format!("{}-{}", i * 4, i * 4)).collect();
    let whole = stored_head(
        &Method::GET,
        &h(&[("range", &format!("bytes={}", many.join(",")))]),
        &none,
        &meta,
        &p,
        now,
    );
    assert_eq!(whole.status, StatusCode::OK);
}

#[test]
fn decimal_values_match_http_s_own() {
    for n in [0u64, 7, 9, 10, 99, 1024, 65_535, 4_294_967_296, u64::MAX] {
        assert_eq!(decimal(n), HeaderValue::from(n), "{n}");
    }
}
