use super::*;
use http::HeaderValue;

const PREF: [Coding; 3] = [Coding::Zstd, Coding::Br, Coding::Gzip];

#[test]
fn negotiation_table() {
    use Coding::*;
    // (Accept-Encoding, server preference, expected choice)
    let table: &[(Option<&str>, &[Coding], Option<Coding>)] = &[
        // No field: identity (see `accepts`); empty field: identity only.
        (None, &PREF, None),
        (Some(""), &PREF, None),
        // Plain lists: the server's order breaks ties.
        (Some("gzip, deflate, br, zstd"), &PREF, Some(Zstd)),
        (Some("gzip, deflate, br"), &PREF, Some(Br)),
        (Some("gzip"), &PREF, Some(Gzip)),
        (Some("gzip, br"), &[Gzip, Br], Some(Gzip)),
        (Some("GZIP"), &PREF, Some(Gzip)),
        (Some("x-gzip"), &PREF, Some(Gzip)),
        // q-values outrank the server's order.
        (Some("br;q=0.5, gzip;q=0.9"), &PREF, Some(Gzip)),
        (Some("zstd;q=0.1, br;q=1.0"), &PREF, Some(Br)),
        (Some("gzip; q=0.8 , br ;q=0.800"), &PREF, Some(Br)),
        // q=0 refuses a coding.
        (Some("br;q=0, gzip"), &PREF, Some(Gzip)),
        (Some("gzip;q=0"), &PREF, None),
        // `*` covers codings not named.
        (Some("*"), &PREF, Some(Zstd)),
        (Some("*;q=0.5, br"), &PREF, Some(Br)),
        (Some("zstd;q=0, *"), &PREF, Some(Br)),
        (Some("*;q=0"), &PREF, None),
        // identity weighing more than every coding wins.
        (Some("identity;q=1, gzip;q=0.5"), &PREF, None),
        (Some("identity;q=0.5, gzip;q=0.5"), &PREF, Some(Gzip)),
        // identity forbidden: any acceptable coding, however low.
        (Some("identity;q=0, gzip;q=0.001"), &PREF, Some(Gzip)),
        (Some("identity;q=0"), &PREF, None),
        // Unknown codings are ignored, malformed weights drop the element.
        (Some("compress, deflate, exi"), &PREF, None),
        (Some("snappy, gzip"), &PREF, Some(Gzip)),
        (Some("br;q=2, gzip"), &PREF, Some(Gzip)),
        (Some("br;q=0.5555, gzip;q=0.1"), &PREF, Some(Gzip)),
        (Some("br;q=, gzip;q=0.1"), &PREF, Some(Gzip)),
        (Some("br;q, gzip;q=0.1"), &PREF, Some(Gzip)),
        (Some(",,, ,br"), &PREF, Some(Br)),
        // Only codings the server is configured for.
        (Some("zstd, br"), &[Gzip], None),
        (Some("zstd, br, gzip"), &[], None),
    ];
    for (value, pref, want) in table {
        let mut h = HeaderMap::new();
        if let Some(v) = value {
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(v).expect("header value"),
            );
        }
        let got = AcceptEncoding::from_headers(&h).negotiate(pref);
        assert_eq!(got, *want, "Accept-Encoding: {value:?} with {pref:?}");
    }
}

#[test]
fn several_fields_combine() {
    let mut h = HeaderMap::new();
    h.append(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("gzip;q=0.2"),
    );
    h.append(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("br;q=0.4"),
    );
    assert_eq!(
        AcceptEncoding::from_headers(&h).negotiate(&PREF),
        Some(Coding::Br)
    );
}

#[test]
fn acceptance_for_decoding() {
    let none = AcceptEncoding::from_headers(&HeaderMap::new());
    assert!(
        !none.accepts(Coding::Gzip),
        "no field: decode for the client"
    );
    assert!(none.accepts_identity());
    let ae = AcceptEncoding::parse("br, *;q=0.1, gzip;q=0");
    assert!(ae.accepts(Coding::Br));
    assert!(ae.accepts(Coding::Zstd));
    assert!(!ae.accepts(Coding::Gzip));
    assert!(ae.accepts_identity());
    assert!(!AcceptEncoding::parse("*;q=0").accepts_identity());
    assert!(AcceptEncoding::parse("*;q=0, identity").accepts_identity());
    assert!(!AcceptEncoding::parse("identity;q=0.000").accepts_identity());
}

#[test]
fn qvalues() {
    for (s, want) in [
        ("1", Some(1000)),
        ("1.000", Some(1000)),
        ("0", Some(0)),
        ("0.5", Some(500)),
        ("0.05", Some(50)),
        ("0.001", Some(1)),
        ("1.001", None),
        ("0.0001", None),
        ("2", None),
        ("-1", None),
        ("", None),
        ("0.a", None),
        (".5", None),
    ] {
        assert_eq!(parse_qvalue(s), want, "q={s:?}");
    }
}

#[test]
fn compressible_types() {
    let list = MediaTypes::new(DEFAULT_COMPRESSIBLE.iter().copied());
    for ct in [
        "text/html; charset=utf-8",
        "TEXT/CSS",
        "text/event-stream",
        "application/json",
        "application/ld+json",
        "application/javascript",
        "application/rss+xml",
        "image/svg+xml",
        "application/wasm",
    ] {
        assert!(
            compressible_type(Some(ct), &list),
            "{ct} should be compressible"
        );
    }
    for ct in [
        "image/png",
        "image/jpeg",
        "image/webp",
        "video/mp4",
        "audio/mpeg",
        "font/woff2",
        "application/zip",
        "application/gzip",
        "application/octet-stream",
        "",
    ] {
        assert!(
            !compressible_type(Some(ct), &list),
            "{ct} should not be compressible"
        );
    }
    assert!(!compressible_type(None, &list));
    // The never-list wins over a careless configured pattern.
    let broad = MediaTypes::new(["image/*", "video/*"]);
    assert!(!compressible_type(Some("image/png"), &broad));
    assert!(compressible_type(Some("image/svg+xml"), &broad));
    assert!(!compressible_type(Some("video/mp4"), &broad));
}

#[test]
fn type_patterns() {
    for ok in ["text/*", "application/*+json", "image/svg+xml", "font/ttf"] {
        assert!(valid_type_pattern(ok), "{ok}");
    }
    for bad in ["text", "*/*x", "Text/html", "text/ht*ml", "/json", "text/"] {
        assert!(!valid_type_pattern(bad), "{bad}");
    }
}

#[test]
fn content_encoding_checks() {
    let mut h = HeaderMap::new();
    assert!(!has_content_encoding(&h));
    h.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    assert!(!has_content_encoding(&h));
    h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    assert!(has_content_encoding(&h));
    assert_eq!(single_coding(&h), Some(Coding::Gzip));
    h.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static("gzip, br"),
    );
    assert_eq!(
        single_coding(&h),
        None,
        "stacked codings are passed through"
    );
    h.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static("compress"),
    );
    assert!(has_content_encoding(&h));
    assert_eq!(single_coding(&h), None);
}

#[test]
fn etags() {
    assert_eq!(weaken_etag("\"abc\""), "W/\"abc\"");
    assert_eq!(weaken_etag("W/\"abc\""), "W/\"abc\"");
}

/// Random `Accept-Encoding` values built from the grammar's pieces and from junk: parsing never
/// panics, the choice is always one of the server's codings or identity, a coding the client
/// gave q=0 is never chosen, and the choice never weighs less than another offered coding.
#[test]
fn random_fields_never_break_negotiation() {
    let pieces = [
        "gzip", "br", "zstd", "identity", "*", "x-gzip", "deflate", "GZIP", ";q=0", ";q=1",
        ";q=0.5", ";q=0.001", ";q=1.000", ";q=", ";q=2", ";Q=0.3", ";level=1", ",", ", ", " ", ";",
        "=", "\t", "q", "0.", "é",
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let n = (next() % 12) as usize;
        let value: String = (0..n)
            .map(|_| pieces[(next() % pieces.len() as u64) as usize])
            .collect();
        let ae = AcceptEncoding::parse(&value);
        for pref in [&PREF[..], &[Coding::Gzip][..], &[][..]] {
            if let Some(c) = ae.negotiate(pref) {
                assert!(pref.contains(&c), "{value:?} chose {c} outside {pref:?}");
                assert!(ae.accepts(c), "{value:?} chose {c} which has q=0");
                for other in pref {
                    assert!(
                        ae.weight(*other) <= ae.weight(c),
                        "{value:?}: chose {c} over heavier {other}"
                    );
                }
            }
        }
    }
}
