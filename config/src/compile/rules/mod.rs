//! `[sites.ab]` and `[[sites.rules]]`, compiled into a `site_rules::RuleSet`: regexes,
//! templates, time zones, keys and password hashes are all checked here, each error at the
//! place in the file it comes from.

mod auth;
#[cfg(test)]
mod tests;
mod when;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use site_rules::{
    AbBy, AbSettings, Actions, Condition, HeaderAction, Phase, Pin, Redirect, Respond, Rewrite,
    Rule, RuleSet, Var,
};
use toml::Spanned;

use super::Compiler;
use crate::Pool;
use crate::schema::rules as schema;

impl Compiler<'_> {
    /// A site's rules. On errors, they are reported and an empty set is returned (the snapshot
    /// is refused anyway).
    pub(in crate::compile) fn site_rules(
        &mut self,
        rules: &[Spanned<schema::Rule>],
        ab: Option<&Spanned<schema::Ab>>,
        pools: &BTreeMap<String, Pool>,
    ) -> Arc<RuleSet> {
        let ab = ab.and_then(|ab| self.rule_ab(ab));
        let mut compiled = Vec::new();
        let mut spans = Vec::new();
        for r in rules {
            if let Some(rule) = self.compile_rule(r, pools) {
                compiled.push(rule);
                spans.push(r.get_ref().name.span());
            }
        }
        match RuleSet::new(compiled, ab) {
            Ok(set) => Arc::new(set),
            Err(errors) => {
                for (i, e) in errors {
                    let span = spans.get(i).cloned().unwrap_or(0..0);
                    self.error(span, format!("rules: {e}"));
                }
                Arc::new(RuleSet::default())
            }
        }
    }

    fn rule_ab(&mut self, ab: &Spanned<schema::Ab>) -> Option<AbSettings> {
        let a = ab.get_ref();
        let cookie = a.cookie.get_ref().trim().to_string();
        if !site_rules::valid_cookie_name(&cookie) {
            self.error(
                a.cookie.span(),
                format!("ab: {cookie:?} is not a valid cookie name"),
            );
            return None;
        }
        let by = match a.by.get_ref().trim() {
            "cookie" => AbBy::Cookie(cookie.clone()),
            "client" => AbBy::Client,
            other => {
                self.error(
                    a.by.span(),
                    format!("ab: by = {other:?}: expected \"cookie\" or \"client\""),
                );
                return None;
            }
        };
        let pin = match a.pin {
            Some(d) if d < Duration::from_secs(1) => {
                self.error(ab.span(), "ab: pin must be at least 1s");
                None
            }
            Some(lifetime) => Some(Pin { cookie, lifetime }),
            None => None,
        };
        Some(AbSettings { by, pin })
    }

    /// Reports `r` at `span` with the rule's name; `None` on error.
    fn rule_check<T>(
        &mut self,
        span: Range<usize>,
        rule: &str,
        r: site_rules::Result<T>,
    ) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(span, format!("rule {rule:?}: {e}"));
                None
            }
        }
    }

    fn compile_rule(
        &mut self,
        spanned: &Spanned<schema::Rule>,
        pools: &BTreeMap<String, Pool>,
    ) -> Option<Rule> {
        let r = spanned.get_ref();
        let name = r.name.get_ref().trim().to_string();
        let errors_before = self.errors.len();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            self.error(
                r.name.span(),
                format!("rules: name {name:?} must be letters, digits, '-', '_' or '.'"),
            );
        }
        let phase = match r.phase.as_ref().map(|p| p.get_ref().trim()) {
            None | Some("request") => Phase::Request,
            Some("response") => Phase::Response,
            Some(other) => {
                let span = r.phase.as_ref().map_or(0..0, |p| p.span());
                self.error(
                    span,
                    format!("rule {name:?}: phase {other:?}: expected \"request\" or \"response\""),
                );
                Phase::Request
            }
        };
        let when = match &r.when {
            None => Condition::All(Vec::new()),
            Some(w) => self.rule_when(w, &name),
        };
        let mut actions = Actions::default();
        if let Some(pool) = &r.pool {
            if !pools.contains_key(pool.get_ref()) {
                self.error(
                    pool.span(),
                    format!(
                        "rule {name:?}: unknown pool {:?}; defined pools: {:?}",
                        pool.get_ref(),
                        pools.keys().collect::<Vec<_>>()
                    ),
                );
            }
            actions.pool = Some(Arc::from(pool.get_ref().as_str()));
        }
        if let Some(red) = &r.redirect {
            let v = red.get_ref();
            actions.redirect =
                self.rule_check(red.span(), &name, Redirect::new(v.status, &v.location));
        }
        if let Some(resp) = &r.respond {
            let v = resp.get_ref();
            if v.status.is_none() && phase == Phase::Request {
                self.error(
                    resp.span(),
                    format!("rule {name:?}: respond needs a status"),
                );
            }
            actions.respond = self.rule_check(
                resp.span(),
                &name,
                Respond::new(v.status, &v.body, &v.content_type),
            );
        }
        if let Some(rw) = &r.rewrite {
            actions.rewrite = self.rule_rewrite(rw, &name);
        }
        if let Some(a) = &r.auth {
            actions.auth = self.rule_auth(a, &name).map(Arc::new);
        }
        if let Some(ops) = &r.request_headers {
            actions.request_headers = self.rule_header_ops(ops, &name);
        }
        if let Some(ops) = &r.response_headers {
            actions.response_headers = self.rule_header_ops(ops, &name);
        }
        for k in &r.cache_key {
            if let Some(v) = self.rule_check(k.span(), &name, Var::parse_cache_key(k.get_ref()))
                && !actions.cache_key.contains(&v)
            {
                actions.cache_key.push(v);
            }
        }
        actions.private = r.private;
        if r.private == Some(false) && actions.auth.is_none() {
            self.error(
                r.name.span(),
                format!("rule {name:?}: private = false only means something with auth"),
            );
        }
        (self.errors.len() == errors_before).then(|| Rule {
            name: Arc::from(name.as_str()),
            phase,
            when,
            actions,
        })
    }

    fn rule_rewrite(&mut self, rw: &Spanned<schema::Rewrite>, name: &str) -> Option<Rewrite> {
        let v = rw.get_ref();
        let r = match (&v.from, &v.to, &v.path, &v.query) {
            (Some(from), Some(to), None, None) => Rewrite::regex(from, to),
            (None, None, path, query) if path.is_some() || query.is_some() => {
                Rewrite::set(path.as_deref(), query.as_deref())
            }
            _ => Err(site_rules::Error::Rule(
                "rewrite takes from and to, or path and/or query".into(),
            )),
        };
        self.rule_check(rw.span(), name, r)
    }

    fn rule_header_ops(
        &mut self,
        ops: &Spanned<schema::HeaderOps>,
        name: &str,
    ) -> Vec<HeaderAction> {
        let o = ops.get_ref();
        let mut out = Vec::new();
        for h in &o.remove {
            out.extend(self.rule_check(h.span(), name, HeaderAction::remove(h.get_ref())));
        }
        for (header, value) in &o.set {
            out.extend(self.rule_check(
                value.span(),
                name,
                HeaderAction::set(header, value.get_ref()),
            ));
        }
        for (header, value) in &o.append {
            out.extend(self.rule_check(
                value.span(),
                name,
                HeaderAction::append(header, value.get_ref()),
            ));
        }
        out
    }
}
