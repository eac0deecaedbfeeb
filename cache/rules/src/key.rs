//! Cache keys: scheme, host, path and query by default; per-site rules may drop or sort query
//! parameters and add request headers or cookies.

use http::HeaderMap;
use http::header::{COOKIE, HeaderName};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRules {
    pub ignore_query: bool,
    /// Query parameters left out of the key (e.g. `utm_source`).
    pub ignore_params: Vec<String>,
    pub sort_query: bool,
    pub headers: Vec<HeaderName>,
    pub cookies: Vec<String>,
}

/// The primary key of a request. `host` must already be normalised (lower case, no port).
pub fn primary_key(
    scheme: &str,
    host: &str,
    path: &str,
    query: Option<&str>,
    req_headers: &HeaderMap,
    rules: &KeyRules,
) -> String {
    let mut key = String::with_capacity(scheme.len() + host.len() + path.len() + 16);
    key.push_str(scheme);
    key.push_str("://");
    key.push_str(host);
    key.push_str(path);
    if let Some(q) = query.filter(|q| !q.is_empty() && !rules.ignore_query) {
        if rules.ignore_params.is_empty() && !rules.sort_query {
            key.push('?');
            key.push_str(q);
        } else {
            let mut params: Vec<&str> = q
                .split('&')
                .filter(|p| !p.is_empty())
                .filter(|p| {
                    let name = p.split('=').next().unwrap_or("");
                    !rules.ignore_params.iter().any(|i| i == name)
                })
                .collect();
            if rules.sort_query {
                params.sort_unstable();
            }
            if !params.is_empty() {
                key.push('?');
                key.push_str(&params.join("&"));
            }
        }
    }
    for name in &rules.headers {
        key.push_str("\nh:");
        key.push_str(name.as_str());
        key.push('=');
        for (i, v) in req_headers.get_all(name).iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            key.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
    }
    for cookie in &rules.cookies {
        key.push_str("\nc:");
        key.push_str(cookie);
        key.push('=');
        if let Some(v) = cookie_value(req_headers, cookie) {
            key.push_str(v);
        }
    }
    key
}

/// The value of cookie `name` in the request, if present.
pub fn cookie_value<'a>(req_headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    req_headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn key_table() {
        let mut h = HeaderMap::new();
        h.insert("x-device", HeaderValue::from_static("mobile"));
        h.insert(COOKIE, HeaderValue::from_static("session=abc; lang=fr"));
        let plain = KeyRules::default();
        let cases: &[(&str, Option<&str>, KeyRules, &str)] = &[
            ("/a", None, plain.clone(), "https://h/a"),
            ("/a", Some(""), plain.clone(), "https://h/a"),
            ("/a", Some("b=2&a=1"), plain.clone(), "https://h/a?b=2&a=1"),
            (
                "/a",
                Some("b=2&a=1"),
                KeyRules {
                    sort_query: true,
                    ..Default::default()
                },
                "https://h/a?a=1&b=2",
            ),
            (
                "/a",
                Some("b=2&a=1"),
                KeyRules {
                    ignore_query: true,
                    ..Default::default()
                },
                "https://h/a",
            ),
            (
                "/a",
                Some("utm_source=x&id=3&utm_medium=y"),
                KeyRules {
                    ignore_params: vec!["utm_source".into(), "utm_medium".into()],
                    ..Default::default()
                },
                "https://h/a?id=3",
            ),
            (
                "/a",
                Some("utm_source=x"),
                KeyRules {
                    ignore_params: vec!["utm_source".into()],
                    ..Default::default()
                },
                "https://h/a",
            ),
            (
                "/a",
                None,
                KeyRules {
                    headers: vec![HeaderName::from_static("x-device")],
                    ..Default::default()
                },
                "https://h/a\nh:x-device=mobile",
            ),
            (
                "/a",
                None,
                KeyRules {
                    cookies: vec!["lang".into(), "absent".into()],
                    ..Default::default()
                },
                "https://h/a\nc:lang=fr\nc:absent=",
            ),
        ];
        for (path, query, rules, want) in cases {
            assert_eq!(
                primary_key("https", "h", path, *query, &h, rules),
                *want,
                "{path} {query:?} {rules:?}"
            );
        }
        assert_eq!(cookie_value(&h, "session"), Some("abc"));
        assert_eq!(cookie_value(&h, "sess"), None);
    }
}
