//! Refused requests: each error, its field and its status.

use std::sync::LazyLock;

use http::{HeaderMap, StatusCode};

use super::request::headers;
use crate::request::{MAX_BODY_BYTES, MAX_ITEMS, RequestError, parse};

fn many(field: &str, n: usize, item: impl Fn(usize) -> String) -> String {
    let items: Vec<String> = (0..n).map(item).collect();
    serde_json::json!({ field: items }).to_string()
}

/// (name, body, headers, field, a piece of the message)
pub(super) type Case = (
    &'static str,
    String,
    Vec<(&'static str, &'static str)>,
    Option<&'static str>,
    &'static str,
);

pub(super) fn case(
    name: &'static str,
    body: &str,
    field: Option<&'static str>,
    msg: &'static str,
) -> Case {
    (name, body.to_owned(), vec![], field, msg)
}

#[test]
fn refused_with_400() {
    let cases: Vec<Case> = vec![
        case("malformed", r#"{"urls": ["#, None, "malformed JSON"),
        case(
            "trailing garbage",
            r#"{"tags": ["t"]} x"#,
            None,
            "malformed JSON",
        ),
        case(
            "not an object",
            r#"["https://a.test/"]"#,
            None,
            "JSON object",
        ),
        case("empty object", "{}", None, "no purge target"),
        case("empty body", "", None, "no purge target"),
        case("soft only", r#"{"soft": true}"#, None, "no purge target"),
        case(
            "unknown field",
            r#"{"url": ["https://a.test/"]}"#,
            Some("url"),
            "unknown field `url`",
        ),
        case(
            "unknown field with target",
            r#"{"tags": ["t"], "purge": 1}"#,
            Some("purge"),
            "unknown field",
        ),
        case(
            "duplicate",
            r#"{"tags": ["t"], "tags": ["u"]}"#,
            Some("tags"),
            "more than once",
        ),
        case(
            "two kinds",
            r#"{"urls": ["a.test/x"], "tags": ["t"]}"#,
            Some("tags"),
            "`urls` and `tags`",
        ),
        case(
            "ours and cf",
            r#"{"urls": ["a.test/x"], "files": ["a.test/y"]}"#,
            Some("files"),
            "`urls` and `files`",
        ),
        case(
            "everything and tags",
            r#"{"everything": true, "tags": ["t"]}"#,
            Some("tags"),
            "`everything` and `tags`",
        ),
        case(
            "everything false",
            r#"{"everything": false}"#,
            Some("everything"),
            "must be true",
        ),
        case(
            "purge_everything false",
            r#"{"purge_everything": false}"#,
            Some("purge_everything"),
            "must be true",
        ),
        case(
            "everything string",
            r#"{"everything": "yes"}"#,
            Some("everything"),
            "true or false",
        ),
        case(
            "soft string",
            r#"{"tags": ["t"], "soft": "1"}"#,
            Some("soft"),
            "true or false",
        ),
        case(
            "urls string",
            r#"{"urls": "https://a.test/"}"#,
            Some("urls"),
            "an array",
        ),
        case(
            "urls number item",
            r#"{"urls": ["a.test/", 3]}"#,
            Some("urls[1]"),
            "a string",
        ),
        case(
            "files bad item",
            r#"{"files": [true]}"#,
            Some("files[0]"),
            "a URL string",
        ),
        case(
            "files object no url",
            r#"{"files": [{"headers": {}}]}"#,
            Some("files[0]"),
            "`url`",
        ),
        case(
            "files object extra",
            r#"{"files": [{"url": "a.test/", "x": 1}]}"#,
            Some("files[0].x"),
            "unknown field",
        ),
        case(
            "files bad url",
            r#"{"files": [{"url": "ftp://a.test/"}]}"#,
            Some("files[0]"),
            "not http or https",
        ),
        case(
            "empty urls",
            r#"{"urls": []}"#,
            Some("urls"),
            "must not be empty",
        ),
        case(
            "empty tags",
            r#"{"tags": []}"#,
            Some("tags"),
            "must not be empty",
        ),
        case(
            "empty sites",
            r#"{"everything": true, "sites": []}"#,
            Some("sites"),
            "must not be empty",
        ),
        case(
            "sites without everything",
            r#"{"tags": ["t"], "sites": ["s"]}"#,
            Some("sites"),
            "only allowed",
        ),
        case(
            "bad site",
            r#"{"everything": true, "sites": ["a b"]}"#,
            Some("sites[0]"),
            "whitespace",
        ),
        // Limits.
        (
            "too many urls",
            many("urls", MAX_ITEMS + 1, |i| format!("a.test/{i}")),
            vec![],
            Some("urls"),
            "at most 256",
        ),
        (
            "too many tags",
            many("tags", MAX_ITEMS + 1, |i| format!("t{i}")),
            vec![],
            Some("tags"),
            "at most 256",
        ),
        (
            "long tag",
            many("tags", 1, |_| "t".repeat(1025)),
            vec![],
            Some("tags[0]"),
            "longer than 1024",
        ),
        (
            "long url",
            many("urls", 1, |_| format!("a.test/{}", "x".repeat(4096))),
            vec![],
            Some("urls[0]"),
            "longer than 4096",
        ),
        (
            "long host",
            many("hosts", 1, |_| format!("{}.test", "a.".repeat(130))),
            vec![],
            Some("hosts[0]"),
            "253",
        ),
        // Headers.
        (
            "surrogate-key blank",
            String::new(),
            vec![("surrogate-key", "  ")],
            Some("Surrogate-Key"),
            "must not be empty",
        ),
        (
            "surrogate-key and body",
            r#"{"tags": ["t"]}"#.into(),
            vec![("surrogate-key", "k")],
            Some("Surrogate-Key"),
            "`tags` and `Surrogate-Key`",
        ),
        (
            "too many keys",
            String::new(),
            vec![("surrogate-key", LOTS_OF_KEYS.as_str())],
            Some("Surrogate-Key"),
            "at most 256",
        ),
        (
            "bad soft header",
            r#"{"tags": ["t"]}"#.into(),
            vec![("fastly-soft-purge", "yes")],
            Some("Fastly-Soft-Purge"),
            "1 or 0",
        ),
    ];
    check(cases);
}

static LOTS_OF_KEYS: LazyLock<String> = LazyLock::new(|| "k ".repeat(MAX_ITEMS + 1));

/// Each case is refused with 400, its field and a message containing its piece.
pub(super) fn check(cases: Vec<Case>) {
    for (name, body, hs, field, msg) in cases {
        let err = parse(body.as_bytes(), &headers(&hs)).expect_err(name);
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{name}: {err}");
        assert_eq!(err.field().as_deref(), field, "{name}: {err}");
        assert!(
            err.to_string().contains(msg),
            "{name}: {err:?} lacks {msg:?}"
        );
        let json = err.to_json();
        assert_eq!(json["error"], err.to_string(), "{name}");
        assert_eq!(json.get("field").and_then(|f| f.as_str()), field, "{name}");
    }
}

#[test]
fn exactly_the_limits_are_accepted() {
    let body = many("urls", MAX_ITEMS, |i| format!("a.test/{i}"));
    assert!(parse(body.as_bytes(), &HeaderMap::new()).is_ok());
    let body = many("tags", 1, |_| "t".repeat(1024));
    assert!(parse(body.as_bytes(), &HeaderMap::new()).is_ok());
    let body = many("urls", 1, |_| format!("a.test/{}", "x".repeat(4096 - 7)));
    assert!(parse(body.as_bytes(), &HeaderMap::new()).is_ok());
}

#[test]
fn oversize_body_is_413() {
    let body = format!(r#"{{"tags": ["t"]}}{}"#, " ".repeat(MAX_BODY_BYTES));
    let err = parse(body.as_bytes(), &HeaderMap::new()).expect_err("too large");
    assert_eq!(
        err,
        RequestError::TooLarge {
            limit: MAX_BODY_BYTES
        }
    );
    assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(err.field(), None);
    assert_eq!(err.to_json(), serde_json::json!({"error": err.to_string()}));
    let body = vec![b' '; MAX_BODY_BYTES];
    assert_eq!(parse(&body, &HeaderMap::new()), Err(RequestError::NoTarget));
}
