//! A rule's `auth`: Basic users and their hashes, or JWT keys; checked here (a hash or key that
//! cannot be used is a config error, not a request that can never pass).

use std::time::Duration;

use site_rules::auth::{Auth, BasicAuth, BasicOptions, JwtAlg, JwtAuth, JwtKey, TokenSource};
use toml::Spanned;

use super::super::Compiler;
use crate::schema::rules as schema;

impl Compiler<'_> {
    pub(super) fn rule_auth(&mut self, a: &Spanned<schema::Auth>, rule: &str) -> Option<Auth> {
        match (&a.get_ref().basic, &a.get_ref().jwt) {
            (Some(b), None) => self.rule_basic(b, a.span(), rule),
            (None, Some(j)) => self.rule_jwt(j, a.span(), rule),
            _ => {
                self.error(
                    a.span(),
                    format!("rule {rule:?}: auth takes exactly one of basic or jwt"),
                );
                None
            }
        }
    }

    fn rule_basic(
        &mut self,
        b: &schema::Basic,
        span: std::ops::Range<usize>,
        rule: &str,
    ) -> Option<Auth> {
        let mut users = Vec::new();
        let mut ok = true;
        for (user, hash) in &b.users {
            // Each user on its own, so the error points at the bad hash.
            let one = vec![(user.clone(), hash.get_ref().clone())];
            ok &= self
                .rule_check(
                    hash.span(),
                    rule,
                    BasicAuth::new(&b.realm, &one, BasicOptions::default()),
                )
                .is_some();
            users.push(one.into_iter().next()?);
        }
        if !ok {
            return None;
        }
        let options = BasicOptions {
            cache_for: b.cache.unwrap_or(Duration::from_secs(60)),
            max_failures: b.max_failures.unwrap_or(10),
        };
        self.rule_check(span, rule, BasicAuth::new(&b.realm, &users, options))
            .map(Auth::Basic)
    }

    fn rule_jwt(
        &mut self,
        j: &schema::Jwt,
        span: std::ops::Range<usize>,
        rule: &str,
    ) -> Option<Auth> {
        let from = match j.from.get_ref().trim() {
            "header" => TokenSource::Header,
            other => match other.strip_prefix("cookie:").map(str::trim) {
                Some(c) if site_rules::valid_cookie_name(c) => TokenSource::Cookie(c.into()),
                _ => {
                    self.error(
                        j.from.span(),
                        format!(
                            "rule {rule:?}: jwt from {other:?}: expected \"header\" or \"cookie:NAME\""
                        ),
                    );
                    return None;
                }
            },
        };
        let mut keys = Vec::new();
        for k in &j.keys {
            let v = k.get_ref();
            let key = JwtAlg::parse(&v.alg).and_then(|alg| match (alg, &v.secret, &v.pem) {
                (JwtAlg::Hs256, Some(secret), None) => JwtKey::hs256(secret.as_bytes()),
                (JwtAlg::Rs256 | JwtAlg::Es256, None, Some(pem)) => JwtKey::public_pem(alg, pem),
                _ => Err(site_rules::Error::JwtKey(
                    "HS256 takes `secret`; RS256 and ES256 take `pem`".into(),
                )),
            });
            let key = key.map(|key| match &v.kid {
                Some(kid) => key.with_kid(kid.clone()),
                None => key,
            });
            keys.extend(self.rule_check(k.span(), rule, key));
        }
        if keys.len() != j.keys.len() {
            return None;
        }
        self.rule_check(
            span,
            rule,
            JwtAuth::new(
                from,
                keys,
                j.audience.to_vec(),
                j.issuer.to_vec(),
                j.leeway.unwrap_or(Duration::from_secs(30)),
                &j.realm,
            ),
        )
        .map(Auth::Jwt)
    }
}
