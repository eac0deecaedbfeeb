//! Refused items: bad URLs, prefixes, hosts and tags, each named by field and index.

use super::request_errors::{Case, case, check};

#[test]
fn bad_items_are_refused_with_400() {
    let cases: Vec<Case> = vec![
        // URLs.
        case(
            "url scheme",
            r#"{"urls": ["a.test/", "ok.test/", "x.test/", "ftp://a.test/x"]}"#,
            Some("urls[3]"),
            "urls[3]: scheme `ftp`",
        ),
        case(
            "url no host",
            r#"{"urls": ["https:///x"]}"#,
            Some("urls[0]"),
            "missing host",
        ),
        case(
            "url path only",
            r#"{"urls": ["/x"]}"#,
            Some("urls[0]"),
            "missing host",
        ),
        case(
            "url empty",
            r#"{"urls": [""]}"#,
            Some("urls[0]"),
            "missing host",
        ),
        case(
            "url userinfo",
            r#"{"urls": ["https://u@a.test/"]}"#,
            Some("urls[0]"),
            "user information",
        ),
        case(
            "url space",
            r#"{"urls": ["https://a.test/a b"]}"#,
            Some("urls[0]"),
            "whitespace",
        ),
        case(
            "url port",
            r#"{"urls": ["https://a.test:99999/"]}"#,
            Some("urls[0]"),
            "out of range",
        ),
        case(
            "url port 0",
            r#"{"urls": ["https://a.test:0/"]}"#,
            Some("urls[0]"),
            "out of range",
        ),
        case(
            "url port sign",
            r#"{"urls": ["https://a.test:+80/"]}"#,
            Some("urls[0]"),
            "bad port",
        ),
        case(
            "url empty port",
            r#"{"urls": ["https://a.test:/"]}"#,
            Some("urls[0]"),
            "bad port",
        ),
        case(
            "url bare v6",
            r#"{"urls": ["http://::1/"]}"#,
            Some("urls[0]"),
            "brackets",
        ),
        case(
            "url bad v6",
            r#"{"urls": ["http://[::g]/"]}"#,
            Some("urls[0]"),
            "not an IPv6",
        ),
        case(
            "url idn",
            r#"{"urls": ["https://bücher.test/"]}"#,
            Some("urls[0]"),
            "punycode",
        ),
        case(
            "url bad char",
            r#"{"urls": ["https://a!b.test/"]}"#,
            Some("urls[0]"),
            "invalid character",
        ),
        case(
            "url empty label",
            r#"{"urls": ["https://a..test/"]}"#,
            Some("urls[0]"),
            "label",
        ),
        case(
            "url javascript",
            r#"{"urls": ["javascript:alert(1)"]}"#,
            Some("urls[0]"),
            "bad port",
        ),
        // Prefixes.
        case(
            "prefix no path",
            r#"{"prefixes": ["a.test"]}"#,
            Some("prefixes[0]"),
            "needs a path",
        ),
        case(
            "prefix no path scheme",
            r#"{"prefixes": ["https://a.test"]}"#,
            Some("prefixes[0]"),
            "needs a path",
        ),
        case(
            "prefix query",
            r#"{"prefixes": ["a.test/x?y"]}"#,
            Some("prefixes[0]"),
            "no query",
        ),
        case(
            "prefix no host",
            r#"{"prefixes": ["/x"]}"#,
            Some("prefixes[0]"),
            "missing host",
        ),
        // Hosts.
        case(
            "host slash",
            r#"{"hosts": ["a.test/x"]}"#,
            Some("hosts[0]"),
            "`/`",
        ),
        case(
            "host scheme",
            r#"{"hosts": ["https://a.test"]}"#,
            Some("hosts[0]"),
            "without a scheme",
        ),
        case(
            "host space",
            r#"{"hosts": ["a .test"]}"#,
            Some("hosts[0]"),
            "whitespace",
        ),
        case(
            "host empty",
            r#"{"hosts": [""]}"#,
            Some("hosts[0]"),
            "missing host",
        ),
        case(
            "host dot",
            r#"{"hosts": ["."]}"#,
            Some("hosts[0]"),
            "missing host",
        ),
        case(
            "host query",
            r#"{"hosts": ["a.test?x"]}"#,
            Some("hosts[0]"),
            "invalid character",
        ),
        // Tags.
        case(
            "tag empty",
            r#"{"tags": ["ok", ""]}"#,
            Some("tags[1]"),
            "empty",
        ),
        case(
            "tag space",
            r#"{"tags": ["a b"]}"#,
            Some("tags[0]"),
            "whitespace",
        ),
        case(
            "tag control",
            r#"{"tags": ["a\u0001"]}"#,
            Some("tags[0]"),
            "control",
        ),
    ];
    check(cases);
}
