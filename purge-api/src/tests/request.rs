//! Accepted shapes and normalisation.

use http::{HeaderMap, HeaderValue};

use crate::request::{Kind, PrefixTarget, PurgeRequest, Targets, UrlTarget, parse};

/// Header (name, value) pairs for a table row.
pub(super) type Headers = Vec<(&'static str, &'static str)>;

pub(super) fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn url(scheme: Option<&str>, host: &str, port: Option<u16>, pq: &str) -> UrlTarget {
    UrlTarget {
        scheme: scheme.map(str::to_owned),
        host: host.to_owned(),
        port,
        path_and_query: pq.to_owned(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn req(targets: Targets, soft: bool) -> PurgeRequest {
    PurgeRequest { targets, soft }
}

#[test]
fn accepted_shapes() {
    let https_a = || url(Some("https"), "a.test", None, "/x");
    let cases: Vec<(&str, &str, Headers, PurgeRequest)> = vec![
        // Ours.
        (
            "urls",
            r#"{"urls": ["https://a.test/x"]}"#,
            vec![],
            req(Targets::Urls(vec![https_a()]), false),
        ),
        (
            "urls soft",
            r#"{"urls": ["https://a.test/x"], "soft": true}"#,
            vec![],
            req(Targets::Urls(vec![https_a()]), true),
        ),
        (
            "soft false",
            r#"{"soft": false, "urls": ["https://a.test/x"]}"#,
            vec![],
            req(Targets::Urls(vec![https_a()]), false),
        ),
        (
            "prefixes",
            r#"{"prefixes": ["a.test/img/", "https://B.test/css"]}"#,
            vec![],
            req(
                Targets::Prefixes(vec![
                    PrefixTarget {
                        host: "a.test".into(),
                        path_prefix: "/img/".into(),
                    },
                    PrefixTarget {
                        host: "b.test".into(),
                        path_prefix: "/css".into(),
                    },
                ]),
                false,
            ),
        ),
        (
            "tags",
            r#"{"tags": ["product-1", "cat:shoes"]}"#,
            vec![],
            req(Targets::Tags(strings(&["product-1", "cat:shoes"])), false),
        ),
        (
            "hosts",
            r#"{"hosts": ["A.test.", "1.2.3.4", "[::1]", "b.test:8443"]}"#,
            vec![],
            req(
                Targets::Hosts(strings(&["a.test", "1.2.3.4", "[::1]", "b.test"])),
                false,
            ),
        ),
        (
            "everything",
            r#"{"everything": true}"#,
            vec![],
            req(Targets::Everything { sites: None }, false),
        ),
        (
            "everything sites",
            r#"{"everything": true, "sites": ["shop", "blog"], "soft": true}"#,
            vec![],
            req(
                Targets::Everything {
                    sites: Some(strings(&["shop", "blog"])),
                },
                true,
            ),
        ),
        // Cloudflare.
        (
            "cf files",
            r#"{"files": ["https://a.test/x", {"url": "http://a.test/y", "headers": {"Origin": "https://o.test"}}]}"#,
            vec![],
            req(
                Targets::Urls(vec![https_a(), url(Some("http"), "a.test", None, "/y")]),
                false,
            ),
        ),
        (
            "cf files scheme-less",
            r#"{"files": ["a.test/x?y=1"]}"#,
            vec![],
            req(
                Targets::Urls(vec![url(None, "a.test", None, "/x?y=1")]),
                false,
            ),
        ),
        (
            "cf tags",
            r#"{"tags": ["t"]}"#,
            vec![],
            req(Targets::Tags(strings(&["t"])), false),
        ),
        (
            "cf hosts",
            r#"{"hosts": ["www.a.test"]}"#,
            vec![],
            req(Targets::Hosts(strings(&["www.a.test"])), false),
        ),
        (
            "cf prefixes",
            r#"{"prefixes": ["www.a.test/foo"]}"#,
            vec![],
            req(
                Targets::Prefixes(vec![PrefixTarget {
                    host: "www.a.test".into(),
                    path_prefix: "/foo".into(),
                }]),
                false,
            ),
        ),
        (
            "cf everything",
            r#"{"purge_everything": true}"#,
            vec![],
            req(Targets::Everything { sites: None }, false),
        ),
        // Fastly.
        (
            "fastly empty body",
            "",
            vec![("surrogate-key", "k1")],
            req(Targets::Tags(strings(&["k1"])), false),
        ),
        (
            "fastly {}",
            " {} ",
            vec![("surrogate-key", "k1  k2")],
            req(Targets::Tags(strings(&["k1", "k2"])), false),
        ),
        (
            "fastly several values",
            "",
            vec![("surrogate-key", "k1 k2"), ("surrogate-key", "k3")],
            req(Targets::Tags(strings(&["k1", "k2", "k3"])), false),
        ),
        (
            "fastly soft",
            "",
            vec![("surrogate-key", "k1"), ("fastly-soft-purge", "1")],
            req(Targets::Tags(strings(&["k1"])), true),
        ),
        (
            "fastly soft 0",
            "",
            vec![("surrogate-key", "k1"), ("fastly-soft-purge", "0")],
            req(Targets::Tags(strings(&["k1"])), false),
        ),
        (
            "fastly {soft}",
            r#"{"soft": true}"#,
            vec![("surrogate-key", "k1")],
            req(Targets::Tags(strings(&["k1"])), true),
        ),
        (
            "soft header on urls",
            r#"{"urls": ["https://a.test/x"]}"#,
            vec![("fastly-soft-purge", "1")],
            req(Targets::Urls(vec![https_a()]), true),
        ),
        (
            "everything false with urls",
            r#"{"everything": false, "urls": ["https://a.test/x"]}"#,
            vec![],
            req(Targets::Urls(vec![https_a()]), false),
        ),
    ];
    for (name, body, hs, want) in cases {
        let got = parse(body.as_bytes(), &headers(&hs));
        assert_eq!(got, Ok(want), "{name}");
    }
}

#[test]
fn url_normalisation() {
    let cases = [
        (
            "HTTPS://A.Test./x",
            url(Some("https"), "a.test", None, "/x"),
        ),
        ("https://a.test", url(Some("https"), "a.test", None, "/")),
        (
            "https://a.test?q=1",
            url(Some("https"), "a.test", None, "/?q=1"),
        ),
        (
            "https://a.test:8443/x",
            url(Some("https"), "a.test", Some(8443), "/x"),
        ),
        (
            "http://[::1]:8080/p?q",
            url(Some("http"), "[::1]", Some(8080), "/p?q"),
        ),
        (
            "http://[FE80::1]/",
            url(Some("http"), "[fe80::1]", None, "/"),
        ),
        (
            "https://a.test/x#frag",
            url(Some("https"), "a.test", None, "/x"),
        ),
        (
            "a.test/x?next=http://b.test/",
            url(None, "a.test", None, "/x?next=http://b.test/"),
        ),
        ("a.test", url(None, "a.test", None, "/")),
        ("a.test:81/x", url(None, "a.test", Some(81), "/x")),
        (
            "https://a.test/caf\u{e9}",
            url(Some("https"), "a.test", None, "/caf%C3%A9"),
        ),
        (
            "https://a.test/A%2fB",
            url(Some("https"), "a.test", None, "/A%2fB"),
        ),
        (
            "https://my_host.a.test/",
            url(Some("https"), "my_host.a.test", None, "/"),
        ),
    ];
    for (input, want) in cases {
        let body = serde_json::json!({ "urls": [input] }).to_string();
        let got = parse(body.as_bytes(), &HeaderMap::new());
        assert_eq!(got, Ok(req(Targets::Urls(vec![want]), false)), "{input}");
    }
}

#[test]
fn kinds_and_hosts() {
    let cases = [
        (
            r#"{"urls": ["https://a.test/x"]}"#,
            Kind::Url,
            vec!["a.test"],
        ),
        (
            r#"{"prefixes": ["b.test/x"]}"#,
            Kind::Prefix,
            vec!["b.test"],
        ),
        (r#"{"tags": ["t"]}"#, Kind::Tag, vec![]),
        (
            r#"{"hosts": ["c.test", "d.test"]}"#,
            Kind::Host,
            vec!["c.test", "d.test"],
        ),
        (r#"{"everything": true}"#, Kind::Everything, vec![]),
    ];
    for (body, kind, hosts) in cases {
        let got = parse(body.as_bytes(), &HeaderMap::new()).unwrap();
        assert_eq!(got.targets.kind(), kind, "{body}");
        assert_eq!(got.targets.hosts(), hosts, "{body}");
        assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
    }
}

#[test]
fn request_round_trips_through_json() {
    let bodies = [
        r#"{"urls": ["https://a.test:8443/x?y", "a.test/z"], "soft": true}"#,
        r#"{"prefixes": ["a.test/p"]}"#,
        r#"{"tags": ["t1", "t2"]}"#,
        r#"{"hosts": ["a.test"]}"#,
        r#"{"everything": true}"#,
        r#"{"everything": true, "sites": ["s"]}"#,
    ];
    for body in bodies {
        let request = parse(body.as_bytes(), &HeaderMap::new()).unwrap();
        let json = serde_json::to_string(&request).unwrap();
        let back: PurgeRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, request, "{json}");
    }
    let request = parse(br#"{"urls": ["a.test/x"]}"#, &HeaderMap::new()).unwrap();
    assert_eq!(
        serde_json::to_value(&request).unwrap(),
        serde_json::json!({"targets": {"urls": [{"host": "a.test", "path_and_query": "/x"}]}, "soft": false})
    );
}
