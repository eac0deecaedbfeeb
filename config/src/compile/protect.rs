//! `[sites.security_headers]` and `[[sites.rate_limits]]`, compiled.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use toml::Spanned;

use crate::protect::{LimitKey, RateLimitRule, SecurityHeaders};
use crate::schema;

use super::Compiler;

impl Compiler<'_> {
    pub(super) fn security_headers(
        &mut self,
        h: &schema::protect::SecurityHeaders,
    ) -> SecurityHeaders {
        let hsts = h.hsts.as_ref().map(|hsts| {
            let mut v = format!("max-age={}", hsts.max_age.as_secs());
            if hsts.include_subdomains {
                v.push_str("; includeSubDomains");
            }
            if hsts.preload {
                v.push_str("; preload");
            }
            HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("max-age=0"))
        });
        let mut set = Vec::new();
        if h.content_type_options {
            set.push((
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ));
        }
        for (name, value) in [
            ("referrer-policy", &h.referrer_policy),
            ("content-security-policy", &h.content_security_policy),
            ("permissions-policy", &h.permissions_policy),
        ] {
            let Some(value) = value else { continue };
            match HeaderValue::from_str(value.get_ref().trim()) {
                Ok(v) if !value.get_ref().trim().is_empty() => {
                    set.push((HeaderName::from_static(name), v));
                }
                _ => self.error(
                    value.span(),
                    format!(
                        "security_headers: {:?} is not a valid {name} value",
                        value.get_ref()
                    ),
                ),
            }
        }
        SecurityHeaders {
            hsts,
            set,
            override_origin: h.override_origin,
        }
    }

    pub(super) fn rate_limits(
        &mut self,
        rules: &[Spanned<schema::protect::RateLimit>],
    ) -> Vec<RateLimitRule> {
        let mut out: Vec<RateLimitRule> = Vec::new();
        for r in rules {
            let rule = r.get_ref();
            let name = rule.name.get_ref().trim().to_string();
            // The name is a structured-field string in `RateLimit`: keep it plain.
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                self.error(
                    rule.name.span(),
                    format!("rate_limits: name {name:?} must be letters, digits, '-', '_' or '.'"),
                );
            }
            if out.iter().any(|o| o.name == name) {
                self.error(
                    rule.name.span(),
                    format!("rate_limits: two rules named {name:?}"),
                );
            }
            if !rule.path_prefix.starts_with('/') {
                self.error(
                    r.span(),
                    format!(
                        "rate_limits: path_prefix {:?} must start with '/'",
                        rule.path_prefix
                    ),
                );
            }
            let mut methods = Vec::new();
            for m in &rule.methods {
                match Method::from_bytes(m.get_ref().trim().to_ascii_uppercase().as_bytes()) {
                    Ok(method) => methods.push(method),
                    Err(_) => self.error(m.span(), format!("{:?} is not a method", m.get_ref())),
                }
            }
            let key = match rule.key.get_ref().trim() {
                "client" => LimitKey::Client,
                "prefix" => LimitKey::Prefix,
                "site" => LimitKey::Site,
                k => {
                    match k
                        .strip_prefix("header:")
                        .map(|h| HeaderName::from_bytes(h.trim().as_bytes()))
                    {
                        Some(Ok(h)) => LimitKey::Header(h),
                        _ => {
                            self.error(
                            rule.key.span(),
                            format!("rate_limits: key {k:?} must be client, prefix, site or header:NAME"),
                        );
                            LimitKey::Client
                        }
                    }
                }
            };
            let rate = *rule.rate.get_ref();
            if rate == 0 {
                self.error(rule.rate.span(), "rate_limits: rate must be at least 1");
            }
            let per = rule.per.unwrap_or(Duration::from_secs(1));
            if per.is_zero() {
                self.error(r.span(), "rate_limits: per must be more than 0");
            }
            out.push(RateLimitRule {
                name,
                path_prefix: rule.path_prefix.clone(),
                methods,
                key,
                rate: rate.max(1),
                per: per.max(Duration::from_millis(1)),
                burst: rule.burst,
                max_keys: rule.max_keys.unwrap_or(100_000).max(1),
                report_only: rule.report_only,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::test_doc::compile_text;

    use crate::protect::LimitKey;

    const BASE: &str = r#"
[listen]
http = ["127.0.0.1:8080"]

[pools.o]
endpoints = ["127.0.0.1:9000"]

[[sites]]
name = "s"
hosts = ["s.test"]
plain_http = "proxy"
routes = [{ path_prefix = "/", pool = "o" }]
"#;

    #[test]
    fn rules_and_headers_compile() {
        let text = format!(
            "{BASE}\n[sites.security_headers]\nhsts = {{ max_age = \"730d\", include_subdomains = true, preload = true }}\ncontent_type_options = true\n\n\
             [[sites.rate_limits]]\nname = \"api\"\npath_prefix = \"/api/\"\nmethods = [\"post\", \"PUT\"]\nkey = \"header:X-Api-Key\"\nrate = 100\nper = \"1m\"\nburst = 20\n\n\
             [[sites.rate_limits]]\nname = \"all\"\nkey = \"prefix\"\nrate = 5\n"
        );
        let snap = compile_text(&text).unwrap();
        let site = &snap.sites[0];
        assert_eq!(
            site.security_headers.hsts.as_ref().unwrap(),
            "max-age=63072000; includeSubDomains; preload"
        );
        assert_eq!(site.security_headers.set.len(), 1);
        let api = &site.rate_limits[0];
        assert_eq!(
            api.key,
            LimitKey::Header(http::HeaderName::from_static("x-api-key"))
        );
        assert_eq!(api.methods, [http::Method::POST, http::Method::PUT]);
        assert_eq!((api.rate, api.per.as_secs(), api.burst), (100, 60, 20));
        assert!(api.applies(&http::Method::POST, "/api/x"));
        assert!(!api.applies(&http::Method::GET, "/api/x"));
        assert!(!api.applies(&http::Method::POST, "/other"));
        let all = &site.rate_limits[1];
        assert_eq!((all.key.clone(), all.per.as_secs()), (LimitKey::Prefix, 1));
    }

    #[test]
    fn bad_rules_are_refused_where_written() {
        let rule = |body: &str| format!("{BASE}\n[[sites.rate_limits]]\n{body}\n");
        let cases = [
            (rule("name = \"a b\"\nrate = 1"), "must be letters"),
            (rule("name = \"a\"\nrate = 0"), "rate must be at least 1"),
            (
                rule("name = \"a\"\nrate = 1\nkey = \"cookie:x\""),
                "must be client, prefix, site or header:NAME",
            ),
            (
                rule("name = \"a\"\nrate = 1\nmethods = [\"G ET\"]"),
                "is not a method",
            ),
            (
                rule("name = \"a\"\nrate = 1\nper = \"0s\""),
                "per must be more than 0",
            ),
            (
                format!("{BASE}\n[sites.security_headers]\nreferrer_policy = \"bad\\nvalue\"\n"),
                "not a valid referrer-policy value",
            ),
        ];
        for (text, want) in cases {
            let e = compile_text(&text).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("edge.toml:"), "{want}: {e}");
        }
    }
}
