//! Table-driven tests of the rules on a simulated clock.
#![allow(clippy::type_complexity)] // test tables are tuples by design

use super::*;
use http::header::HeaderValue;

/// The simulated clock's origin: every test time is T0 + seconds.
fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn date(secs: u64) -> String {
    httpdate::fmt_http_date(t(secs))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

/// A response stored at T0 (request sent at T0 too), Date = T0 unless given.
fn stored(status: u16, pairs: &[(&str, &str)]) -> StoredMeta {
    let mut h = headers(pairs);
    if !h.contains_key(header::DATE) {
        h.insert(header::DATE, HeaderValue::from_str(&date(0)).expect("date"));
    }
    StoredMeta {
        status: StatusCode::from_u16(status).expect("status"),
        headers: h,
        request_time: t(0),
        response_time: t(0),
        vary: Vec::new(),
        body_len: 1000,
        generation: 0,
        parsed: Default::default(),
    }
}

#[test]
fn storability() {
    let p = Policy::default();
    let get = Method::GET;
    let cases: &[(
        &str,
        &Method,
        &[(&str, &str)],
        u16,
        &[(&str, &str)],
        Result<(), NotStorable>,
    )] = &[
        (
            "max-age",
            &get,
            &[],
            200,
            &[("cache-control", "max-age=60")],
            Ok(()),
        ),
        (
            "expires only",
            &get,
            &[],
            200,
            &[("expires", "Thu, 01 Jan 2099 00:00:00 GMT")],
            Ok(()),
        ),
        (
            "heuristic via last-modified",
            &get,
            &[],
            200,
            &[("last-modified", "Thu, 01 Jan 2026 00:00:00 GMT")],
            Ok(()),
        ),
        (
            "public without lifetime",
            &get,
            &[],
            200,
            &[("cache-control", "public")],
            Ok(()),
        ),
        (
            "nothing to go on",
            &get,
            &[],
            200,
            &[],
            Err(NotStorable::NoFreshness),
        ),
        (
            "500 needs explicit freshness",
            &get,
            &[],
            500,
            &[("last-modified", "Thu, 01 Jan 2026 00:00:00 GMT")],
            Err(NotStorable::NoFreshness),
        ),
        (
            "500 with max-age",
            &get,
            &[],
            500,
            &[("cache-control", "max-age=5")],
            Ok(()),
        ),
        (
            "404 heuristic",
            &get,
            &[],
            404,
            &[("cache-control", "public")],
            Ok(()),
        ),
        (
            "POST",
            &Method::POST,
            &[],
            200,
            &[("cache-control", "max-age=60")],
            Err(NotStorable::Method),
        ),
        (
            "HEAD",
            &Method::HEAD,
            &[],
            200,
            &[("cache-control", "max-age=60")],
            Err(NotStorable::Method),
        ),
        (
            "no-store",
            &get,
            &[],
            200,
            &[("cache-control", "max-age=60, no-store")],
            Err(NotStorable::NoStore),
        ),
        (
            "request no-store",
            &get,
            &[("cache-control", "no-store")],
            200,
            &[("cache-control", "max-age=60")],
            Err(NotStorable::NoStore),
        ),
        (
            "private",
            &get,
            &[],
            200,
            &[("cache-control", "private, max-age=60")],
            Err(NotStorable::Private),
        ),
        (
            "qualified private",
            &get,
            &[],
            200,
            &[("cache-control", "private=\"x-user\", max-age=60")],
            Err(NotStorable::Private),
        ),
        (
            "authorization",
            &get,
            &[("authorization", "Bearer x")],
            200,
            &[("cache-control", "max-age=60")],
            Err(NotStorable::Authorization),
        ),
        (
            "authorization + public",
            &get,
            &[("authorization", "Bearer x")],
            200,
            &[("cache-control", "public, max-age=60")],
            Ok(()),
        ),
        (
            "authorization + s-maxage",
            &get,
            &[("authorization", "Bearer x")],
            200,
            &[("cache-control", "s-maxage=60")],
            Ok(()),
        ),
        (
            "authorization + must-revalidate",
            &get,
            &[("authorization", "Bearer x")],
            200,
            &[("cache-control", "max-age=60, must-revalidate")],
            Ok(()),
        ),
        (
            "vary star",
            &get,
            &[],
            200,
            &[("cache-control", "max-age=60"), ("vary", "accept, *")],
            Err(NotStorable::VaryStar),
        ),
        (
            "set-cookie",
            &get,
            &[],
            200,
            &[("cache-control", "max-age=60"), ("set-cookie", "s=1")],
            Err(NotStorable::SetCookie),
        ),
        (
            "206",
            &get,
            &[],
            206,
            &[("cache-control", "max-age=60")],
            Err(NotStorable::Partial),
        ),
        (
            "304",
            &get,
            &[],
            304,
            &[("cache-control", "max-age=60")],
            Err(NotStorable::Status),
        ),
        (
            "must-understand overrides no-store for 200",
            &get,
            &[],
            200,
            &[("cache-control", "must-understand, no-store, max-age=60")],
            Ok(()),
        ),
        (
            "must-understand, unknown status",
            &get,
            &[],
            299,
            &[("cache-control", "must-understand, no-store, max-age=60")],
            Err(NotStorable::Status),
        ),
        (
            "CDN-Cache-Control no-store wins",
            &get,
            &[],
            200,
            &[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "no-store"),
            ],
            Err(NotStorable::NoStore),
        ),
        (
            "CDN-Cache-Control allows what Cache-Control forbids",
            &get,
            &[],
            200,
            &[
                ("cache-control", "private"),
                ("cdn-cache-control", "max-age=60"),
            ],
            Ok(()),
        ),
        (
            "an empty CDN-Cache-Control is ignored, not obeyed (RFC 9213 §2.1)",
            &get,
            &[],
            200,
            &[
                ("cache-control", "private, no-store"),
                ("cdn-cache-control", ""),
                ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ],
            Err(NotStorable::NoStore),
        ),
    ];
    for (name, method, req, status, resp, want) in cases {
        let got = storable(
            method,
            &headers(req),
            StatusCode::from_u16(*status).expect("status"),
            &headers(resp),
            &p,
        );
        assert_eq!(got, *want, "{name}");
    }
}

#[test]
fn freshness_sources_in_precedence_order() {
    let p = Policy::default();
    let cases: &[(&str, u16, Vec<(&str, String)>, u64)] = &[
        (
            "s-maxage over max-age",
            200,
            vec![("cache-control", "max-age=10, s-maxage=20".into())],
            20,
        ),
        (
            "max-age over Expires",
            200,
            vec![
                ("cache-control", "max-age=10".into()),
                ("expires", date(100)),
            ],
            10,
        ),
        ("Expires minus Date", 200, vec![("expires", date(100))], 100),
        (
            "Expires in the past",
            200,
            vec![("expires", date(0)), ("date", date(50))],
            0,
        ),
        (
            "invalid Expires is expired",
            200,
            vec![("expires", "0".into()), ("cache-control", "public".into())],
            0,
        ),
        (
            "heuristic 10% of LM age",
            200,
            vec![(
                "last-modified",
                httpdate::fmt_http_date(t(0) - Duration::from_secs(1000)),
            )],
            100,
        ),
        (
            "heuristic capped at a day",
            200,
            vec![("last-modified", "Thu, 01 Jan 1970 00:00:00 GMT".into())],
            86_400,
        ),
        (
            "no heuristic for 500",
            500,
            vec![(
                "last-modified",
                httpdate::fmt_http_date(t(0) - Duration::from_secs(1000)),
            )],
            0,
        ),
        (
            "CDN-Cache-Control over Cache-Control",
            200,
            vec![
                ("cache-control", "max-age=10".into()),
                ("cdn-cache-control", "max-age=300".into()),
            ],
            300,
        ),
        (
            "CDN-Cache-Control s-maxage",
            200,
            vec![("cdn-cache-control", "s-maxage=7, max-age=9".into())],
            7,
        ),
        (
            "garbage max-age is stale",
            200,
            vec![("cache-control", "max-age=ten".into())],
            0,
        ),
    ];
    for (name, status, hs, want) in cases {
        let pairs: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let m = stored(*status, &pairs);
        assert_eq!(
            freshness_lifetime(&m, &p),
            Duration::from_secs(*want),
            "{name}"
        );
    }

    let m = stored(200, &[("cache-control", "max-age=1000")]);
    let capped = Policy {
        max_ttl: Some(Duration::from_secs(60)),
        ..Policy::default()
    };
    assert_eq!(
        freshness_lifetime(&m, &capped),
        Duration::from_secs(60),
        "cap"
    );
    let forced = Policy {
        forced_ttl: Some(Duration::from_secs(5)),
        ..Policy::default()
    };
    assert_eq!(
        freshness_lifetime(&m, &forced),
        Duration::from_secs(5),
        "forced"
    );
    let ignore_cdn = Policy {
        cdn_cache_control: false,
        ..Policy::default()
    };
    let m = stored(
        200,
        &[
            ("cache-control", "max-age=10"),
            ("cdn-cache-control", "max-age=300"),
        ],
    );
    assert_eq!(freshness_lifetime(&m, &ignore_cdn), Duration::from_secs(10));
}

#[test]
fn age_follows_rfc_9111_4_2_3() {
    // Request sent at 0, response at 2, origin Date 1, Age header 10, now 100.
    let mut m = stored(200, &[("age", "10"), ("date", &date(1))]);
    m.request_time = t(0);
    m.response_time = t(2);
    // corrected_age_value = 10 + (2-0) = 12; apparent = 2-1 = 1; initial = 12; resident = 98.
    assert_eq!(current_age(&m, t(100)), Duration::from_secs(110));

    // Origin clock ahead (Date in the future): apparent age is 0, never negative.
    let mut m = stored(200, &[("date", &date(500))]);
    m.response_time = t(0);
    assert_eq!(current_age(&m, t(30)), Duration::from_secs(30));

    // Bad Age and Date values are ignored rather than trusted.
    for bad in ["-5", "abc", "", "1e3"] {
        let m = stored(200, &[("age", bad), ("date", "yesterday")]);
        assert_eq!(current_age(&m, t(7)), Duration::from_secs(7), "Age {bad:?}");
    }
    let m = stored(200, &[("age", "99999999999999")]);
    assert_eq!(
        current_age(&m, t(0)),
        Duration::from_secs(crate::cache_control::DELTA_MAX)
    );
}

#[test]
fn evaluate_table() {
    use Action::*;
    let p = Policy::default();
    let cases: &[(&str, &[(&str, &str)], &[(&str, &str)], u64, Action)] = &[
        ("fresh", &[("cache-control", "max-age=60")], &[], 30, Fresh),
        (
            "just stale",
            &[("cache-control", "max-age=60")],
            &[],
            60,
            Revalidate {
                stale_if_error: false,
            },
        ),
        (
            "swr window",
            &[("cache-control", "max-age=60, stale-while-revalidate=30")],
            &[],
            80,
            StaleWhileRevalidate,
        ),
        (
            "past swr",
            &[("cache-control", "max-age=60, stale-while-revalidate=30")],
            &[],
            91,
            Revalidate {
                stale_if_error: false,
            },
        ),
        (
            "sie window",
            &[("cache-control", "max-age=60, stale-if-error=100")],
            &[],
            150,
            Revalidate {
                stale_if_error: true,
            },
        ),
        (
            "past sie",
            &[("cache-control", "max-age=60, stale-if-error=100")],
            &[],
            161,
            Revalidate {
                stale_if_error: false,
            },
        ),
        (
            "request sie",
            &[("cache-control", "max-age=60")],
            &[("cache-control", "stale-if-error=50")],
            100,
            Revalidate {
                stale_if_error: true,
            },
        ),
        (
            "must-revalidate blocks swr",
            &[(
                "cache-control",
                "max-age=60, must-revalidate, stale-while-revalidate=30",
            )],
            &[],
            70,
            Revalidate {
                stale_if_error: false,
            },
        ),
        (
            "s-maxage blocks sie",
            &[("cache-control", "s-maxage=60, stale-if-error=100")],
            &[],
            70,
            Revalidate {
                stale_if_error: false,
            },
        ),
        (
            "proxy-revalidate blocks max-stale",
            &[("cache-control", "max-age=60, proxy-revalidate")],
            &[("cache-control", "max-stale")],
            70,
            Revalidate {
                stale_if_error: false,
            },
        ),
        (
            "response no-cache",
            &[("cache-control", "no-cache, max-age=60")],
            &[],
            1,
            Revalidate {
                stale_if_error: false,
            },
        ),
        (
            "request no-cache",
            &[("cache-control", "max-age=60")],
            &[("cache-control", "no-cache")],
            1,
            Revalidate {
                stale_if_error: false,
            },
        ),
        (
            "pragma no-cache",
            &[("cache-control", "max-age=60")],
            &[("pragma", "no-cache")],
            1,
            Revalidate {
                stale_if_error: false,
            },
        ),
        (
            "request max-age=0 on a fresh object",
            &[("cache-control", "max-age=60")],
            &[("cache-control", "max-age=0")],
            5,
            Revalidate {
                stale_if_error: false,
            },
        ),
        (
            "request max-age satisfied",
            &[("cache-control", "max-age=60")],
            &[("cache-control", "max-age=10")],
            5,
            Fresh,
        ),
        (
            "min-fresh not met",
            &[("cache-control", "max-age=60")],
            &[("cache-control", "min-fresh=30")],
            40,
            Revalidate {
                stale_if_error: false,
            },
        ),
        (
            "min-fresh met",
            &[("cache-control", "max-age=60")],
            &[("cache-control", "min-fresh=30")],
            20,
            Fresh,
        ),
        (
            "max-stale any",
            &[("cache-control", "max-age=60")],
            &[("cache-control", "max-stale")],
            1000,
            StaleOk,
        ),
        (
            "max-stale bounded ok",
            &[("cache-control", "max-age=60")],
            &[("cache-control", "max-stale=30")],
            85,
            StaleOk,
        ),
        (
            "max-stale bounded exceeded",
            &[("cache-control", "max-age=60")],
            &[("cache-control", "max-stale=30")],
            95,
            Revalidate {
                stale_if_error: false,
            },
        ),
        (
            "no freshness at all",
            &[("cache-control", "public")],
            &[],
            0,
            Revalidate {
                stale_if_error: false,
            },
        ),
    ];
    for (name, resp, req, now, want) in cases {
        let m = stored(200, resp);
        let v = evaluate(&headers(req), &m, &p, t(*now));
        assert_eq!(v.action, *want, "{name}");
    }
    let v = evaluate(
        &HeaderMap::new(),
        &stored(200, &[("cache-control", "max-age=60")]),
        &p,
        t(45),
    );
    assert_eq!(
        (v.age.as_secs(), v.lifetime.as_secs(), v.ttl_secs()),
        (45, 60, 15)
    );
}

#[test]
fn vary_selection_and_normalisation() {
    let resp = headers(&[
        ("vary", "Accept-Encoding, accept-language"),
        ("vary", "Accept-Encoding"),
    ]);
    let names = vary_names(&resp).expect("not star");
    assert_eq!(
        names,
        vec![header::ACCEPT_ENCODING, header::ACCEPT_LANGUAGE]
    );
    assert_eq!(vary_names(&headers(&[("vary", "*")])), None);

    let req = headers(&[
        ("accept-encoding", "GZIP,  br"),
        ("accept-language", "en-GB,  fr"),
    ]);
    let mut m = stored(200, &[]);
    m.vary = vary_values(&req, &names);
    assert_eq!(m.vary[0].1.as_deref(), Some("br,gzip"));
    assert_eq!(m.vary[1].1.as_deref(), Some("en-GB,fr"));

    let table: &[(&[(&str, &str)], bool)] = &[
        (
            &[
                ("accept-encoding", "br, gzip"),
                ("accept-language", "en-GB, fr"),
            ],
            true,
        ),
        (
            &[
                ("accept-encoding", "gzip"),
                ("accept-encoding", "br"),
                ("accept-language", "en-GB,fr"),
            ],
            true,
        ),
        (
            &[
                ("accept-encoding", "gzip"),
                ("accept-language", "en-GB, fr"),
            ],
            false,
        ),
        (&[("accept-encoding", "br, gzip")], false),
        (
            &[
                ("accept-encoding", "br, gzip"),
                ("accept-language", "fr, en-GB"),
            ],
            false,
        ),
    ];
    for (req, want) in table {
        assert_eq!(vary_matches(&headers(req), &m), *want, "{req:?}");
    }
    // A variant stored without the header matches only requests without it.
    let mut none = stored(200, &[]);
    none.vary = vary_values(&HeaderMap::new(), &[header::ACCEPT_LANGUAGE]);
    assert!(vary_matches(&HeaderMap::new(), &none));
    assert!(!vary_matches(&headers(&[("accept-language", "de")]), &none));
}

#[test]
fn client_conditionals() {
    let m = stored(200, &[("etag", "\"v1\""), ("last-modified", &date(0))]);
    let cases: &[(&[(&str, &str)], bool)] = &[
        (&[("if-none-match", "\"v1\"")], true),
        (&[("if-none-match", "W/\"v1\"")], true),
        (&[("if-none-match", "\"v0\", \"v1\"")], true),
        (&[("if-none-match", "*")], true),
        (&[("if-none-match", "\"v2\"")], false),
        (
            &[
                ("if-none-match", "\"v2\""),
                ("if-modified-since", &date(10)),
            ],
            false,
        ),
        (&[("if-modified-since", &date(10))], true),
        (&[("if-modified-since", &date(0))], true),
        (&[("if-modified-since", "not a date")], false),
        (&[], false),
    ];
    for (req, want) in cases {
        assert_eq!(not_modified(&headers(req), &m), *want, "{req:?}");
    }
    let mut vals = validators(&m);
    vals.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    assert_eq!(vals[0].0, header::IF_MODIFIED_SINCE);
    assert_eq!(
        vals[1],
        (header::IF_NONE_MATCH, HeaderValue::from_static("\"v1\""))
    );
}

#[test]
fn a_304_updates_stored_headers_but_not_the_body_description() {
    let mut h = headers(&[
        ("cache-control", "max-age=10"),
        ("etag", "\"v1\""),
        ("content-length", "1000"),
        ("x-a", "old"),
        ("x-keep", "1"),
    ]);
    let fresh = headers(&[
        ("cache-control", "max-age=600"),
        ("content-length", "0"),
        ("x-a", "new1"),
        ("x-a", "new2"),
        ("date", &date(5)),
    ]);
    merge_304(&mut h, &fresh);
    assert_eq!(h[header::CACHE_CONTROL], "max-age=600");
    assert_eq!(h[header::CONTENT_LENGTH], "1000");
    assert_eq!(
        h.get_all("x-a").iter().collect::<Vec<_>>(),
        vec!["new1", "new2"]
    );
    assert_eq!(h["x-keep"], "1");
    assert_eq!(h[header::DATE], date(5).as_str());
}

#[test]
fn ranges() {
    use RangeAnswer::*;
    let m = stored(200, &[("etag", "\"v1\""), ("last-modified", &date(0))]); // body_len 1000
    let cases: &[(&[(&str, &str)], RangeAnswer)] = &[
        (&[], Full),
        (&[("range", "bytes=0-99")], Partial { start: 0, end: 99 }),
        (
            &[("range", "bytes=900-")],
            Partial {
                start: 900,
                end: 999,
            },
        ),
        (
            &[("range", "bytes=900-5000")],
            Partial {
                start: 900,
                end: 999,
            },
        ),
        (
            &[("range", "bytes=-100")],
            Partial {
                start: 900,
                end: 999,
            },
        ),
        (&[("range", "bytes=-5000")], Partial { start: 0, end: 999 }),
        (&[("range", "bytes=1000-")], Unsatisfiable),
        (&[("range", "bytes=-0")], Unsatisfiable),
        (&[("range", "bytes=5-1")], Full),
        (&[("range", "bytes=0-1,5-6")], Full),
        (&[("range", "items=0-1")], Full),
        (&[("range", "bytes=abc")], Full),
        (
            &[("range", "bytes=0-9"), ("if-range", "\"v1\"")],
            Partial { start: 0, end: 9 },
        ),
        (&[("range", "bytes=0-9"), ("if-range", "\"v0\"")], Full),
        (
            &[("range", "bytes=0-9"), ("if-range", &date(0))],
            Partial { start: 0, end: 9 },
        ),
        (&[("range", "bytes=0-9"), ("if-range", &date(1))], Full),
    ];
    for (req, want) in cases {
        assert_eq!(range(&headers(req), &m), *want, "{req:?}");
    }
    let weak = stored(200, &[("etag", "W/\"v1\"")]);
    assert_eq!(
        range(
            &headers(&[("range", "bytes=0-9"), ("if-range", "W/\"v1\"")]),
            &weak
        ),
        Full,
        "If-Range needs a strong validator"
    );
}

#[test]
fn invalidation_after_unsafe_methods() {
    let loc = headers(&[
        ("location", "/items/7"),
        ("content-location", "https://other.example/x"),
    ]);
    assert_eq!(
        invalidation_paths(
            &Method::POST,
            StatusCode::CREATED,
            "a.example",
            "/items",
            &loc
        ),
        vec!["/items".to_string(), "/items/7".to_string()]
    );
    let same = headers(&[("content-location", "https://A.example/y?z=1")]);
    assert_eq!(
        invalidation_paths(&Method::PUT, StatusCode::OK, "a.example", "/y", &same),
        vec!["/y".to_string(), "/y?z=1".to_string()]
    );
    assert!(
        invalidation_paths(
            &Method::DELETE,
            StatusCode::INTERNAL_SERVER_ERROR,
            "a.example",
            "/x",
            &loc
        )
        .is_empty()
    );
    assert!(invalidation_paths(&Method::GET, StatusCode::OK, "a.example", "/x", &loc).is_empty());
    assert_eq!(
        invalidation_paths(
            &Method::PATCH,
            StatusCode::FOUND,
            "a.example",
            "/x",
            &HeaderMap::new()
        ),
        vec!["/x".to_string()]
    );
}

/// Issue 12: what real origins and intermediaries send, read the way RFC 9110/9111 allow.
#[test]
fn tolerant_ages_and_dates_and_strict_cdn_cache_control() {
    let p = Policy::default();
    // A list-valued Age counts by its first member.
    for (age, want) in [("7200, 0", 7200), ("7200,0", 7200), (" 5 ", 5), ("x, 9", 0)] {
        let m = stored(200, &[("cache-control", "max-age=3600"), ("age", age)]);
        assert_eq!(current_age(&m, m.response_time).as_secs(), want, "{age:?}");
    }
    // Expires with a wrong weekday, a lower-case month or in asctime still gives freshness.
    for expires in [
        "Mon, 01 Jan 1970 01:00:00 GMT",
        "thu, 01 jan 1970 01:00:00 gmt",
        "Thu Jan  1 01:00:00 1970",
    ] {
        let m = stored(
            200,
            &[
                ("date", "Thu, 01 Jan 1970 00:00:00 GMT"),
                ("expires", expires),
            ],
        );
        assert_eq!(
            freshness_lifetime(&m, &p),
            Duration::from_secs(3600),
            "{expires}"
        );
    }
    let garbage = stored(200, &[("date", &date(0)), ("expires", "garbage")]);
    assert_eq!(freshness_lifetime(&garbage, &p), Duration::ZERO);
    // no-cache with a validator is stored (and revalidated on every use).
    let req = HeaderMap::new();
    let ok =
        |pairs: &[(&str, &str)]| storable(&Method::GET, &req, StatusCode::OK, &headers(pairs), &p);
    assert_eq!(
        ok(&[("cache-control", "no-cache"), ("etag", "\"v1\"")]),
        Ok(())
    );
    assert_eq!(
        ok(&[("cache-control", "no-cache"), ("last-modified", &date(0))]),
        Ok(())
    );
    assert_eq!(
        ok(&[("cache-control", "no-cache")]),
        Err(NotStorable::NoFreshness)
    );
    // A CDN-Cache-Control that is not a valid dictionary, or has a known directive of the
    // wrong type, is ignored whole: Cache-Control applies.
    for cdn in [
        "max-age=10000, &&&&&",
        "max-age=\"10000\"",
        "no-store=1",
        "MAX-AGE=1",
    ] {
        assert_eq!(
            ok(&[("cache-control", "no-store"), ("cdn-cache-control", cdn)]),
            Err(NotStorable::NoStore),
            "{cdn}"
        );
    }
    assert_eq!(
        ok(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60, x-unknown=\"y\"")
        ]),
        Ok(())
    );
}

/// The fields a hit reads are parsed once per stored response; a changed copy (how
/// revalidation and slices change one) is parsed again, and the policy still chooses between
/// Cache-Control and CDN-Cache-Control at each use.
#[test]
fn parsed_fields_follow_the_copy_that_changed_and_the_policy() {
    let p = Policy::default();
    let meta = stored(
        200,
        &[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "max-age=5"),
            ("age", "10"),
        ],
    );
    // Parsed by the first call; the same answers after.
    for _ in 0..2 {
        assert_eq!(current_age(&meta, t(20)), Duration::from_secs(30));
        assert_eq!(
            evaluate(&HeaderMap::new(), &meta, &p, t(0)).action,
            Action::Revalidate {
                stale_if_error: false,
            }
        );
    }
    let plain = Policy {
        cdn_cache_control: false,
        ..Policy::default()
    };
    assert_eq!(
        evaluate(&HeaderMap::new(), &meta, &plain, t(0)).action,
        Action::Fresh
    );
    assert_eq!(freshness_lifetime(&meta, &plain), Duration::from_secs(60));
    assert_eq!(freshness_lifetime(&meta, &p), Duration::from_secs(5));

    let mut changed = meta.clone();
    changed.headers.remove(CDN_CACHE_CONTROL.clone());
    changed.headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=600"),
    );
    changed.headers.remove(header::AGE);
    assert_eq!(current_age(&changed, t(20)), Duration::from_secs(20));
    assert_eq!(freshness_lifetime(&changed, &p), Duration::from_secs(600));
    assert_eq!(
        evaluate(&HeaderMap::new(), &changed, &p, t(500)).action,
        Action::Fresh
    );
    // The original keeps its own.
    assert_eq!(freshness_lifetime(&meta, &p), Duration::from_secs(5));
    assert_eq!(current_age(&meta, t(20)), Duration::from_secs(30));

    // Fields replaced whole (the store's owned copy) are parsed again.
    let mut replaced = meta.clone();
    assert_eq!(freshness_lifetime(&replaced, &p), Duration::from_secs(5));
    replaced.replace_headers(changed.headers.clone());
    assert_eq!(freshness_lifetime(&replaced, &p), Duration::from_secs(600));
    assert_eq!(current_age(&replaced, t(20)), Duration::from_secs(20));
}

/// A stored response remembers whether its type is compressible under the list asked last; a
/// new list (a config change) is asked afresh, and a copy with another type answers for itself.
#[test]
fn compressible_answer_follows_the_list_asked_and_the_copy() {
    use crate::encoding::MediaTypes;
    let meta = stored(200, &[("content-type", "Text/HTML; charset=utf-8")]);
    let text = MediaTypes::new(["text/*"]);
    let json = MediaTypes::new(["application/json"]);
    for _ in 0..2 {
        assert!(meta.compressible_under(&text));
        assert!(!meta.compressible_under(&json));
        assert!(!meta.compressible_under(&MediaTypes::default()));
    }
    // A list equal to one asked before but compiled anew (a reload) answers the same.
    assert!(meta.compressible_under(&MediaTypes::new(["text/*"])));

    let mut changed = meta.clone();
    changed.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    assert!(changed.compressible_under(&json));
    assert!(!changed.compressible_under(&text));
    assert!(meta.compressible_under(&text));

    assert!(!meta.content_encoded());
    let mut encoded = meta.clone();
    encoded
        .headers
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    assert!(encoded.content_encoded());
    assert!(!meta.content_encoded());
}
