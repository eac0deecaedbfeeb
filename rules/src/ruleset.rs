//! A site's ordered rules, checked as a whole when built (unreachable rules, misplaced
//! conditions), and described line by line for `edge check`.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::ab::AbSettings;
use crate::action::{Actions, HeaderAction, Rewrite};
use crate::condition::Condition;
use crate::template::{Template, Var};
use crate::{Error, Result};

/// When a rule is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Before the cache and the origin ([`RuleSet::evaluate`]).
    #[default]
    Request,
    /// On the response, with the origin's status ([`RuleSet::evaluate_response`]).
    Response,
}

/// One rule: a name, a condition and what to do.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: Arc<str>,
    pub phase: Phase,
    /// `Condition::All(vec![])` holds always.
    pub when: Condition,
    pub actions: Actions,
}

/// A site's rules in order, and its A/B settings. Immutable once built, shared by every request
/// of a config snapshot (the authentication caches inside are the only state).
#[derive(Debug, Default)]
pub struct RuleSet {
    pub(crate) rules: Vec<Rule>,
    pub(crate) ab: Option<AbSettings>,
    response_rules: bool,
    /// One per rule, in order.
    pub(crate) gates: crate::gate::Gates,
}

/// The kinds of action where the first matching rule wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pool,
    Answer,
    Auth,
    Rewrite,
}

fn kinds(a: &Actions) -> Vec<Kind> {
    let mut k = Vec::new();
    if a.pool.is_some() {
        k.push(Kind::Pool);
    }
    if a.redirect.is_some() || a.respond.is_some() {
        k.push(Kind::Answer);
    }
    if a.auth.is_some() {
        k.push(Kind::Auth);
    }
    if a.rewrite.is_some() {
        k.push(Kind::Rewrite);
    }
    k
}

fn templates(a: &Actions) -> Vec<&Template> {
    let mut t = Vec::new();
    if let Some(r) = &a.redirect {
        t.push(&r.location);
    }
    if let Some(r) = &a.respond {
        t.push(&r.body);
    }
    match &a.rewrite {
        Some(Rewrite::Regex { to, .. }) => t.push(to),
        Some(Rewrite::Set { path, query }) => t.extend(path.iter().chain(query.iter())),
        None => {}
    }
    for h in a.request_headers.iter().chain(&a.response_headers) {
        if let HeaderAction::Set(_, v) | HeaderAction::Append(_, v) = h {
            t.push(v);
        }
    }
    t
}

impl RuleSet {
    /// Checks and builds a rule set. Errors come with the index of the rule they are about.
    pub fn new(rules: Vec<Rule>, ab: Option<AbSettings>) -> Result<RuleSet, Vec<(usize, Error)>> {
        let mut errors = Vec::new();
        // Per phase: first-match-wins kinds an earlier unconditional rule already takes.
        let mut taken: [Vec<Kind>; 2] = [Vec::new(), Vec::new()];
        for (i, rule) in rules.iter().enumerate() {
            let mut err = |e: String| errors.push((i, Error::Rule(e)));
            let a = &rule.actions;
            if rules[..i].iter().any(|r| r.name == rule.name) {
                err(format!("two rules named {:?}", rule.name));
            }
            if a.is_empty() {
                err(format!("rule {:?} has no action", rule.name));
            }
            let needs_ab = rule.when.uses_bucket()
                || a.cache_key.contains(&Var::Bucket)
                || templates(a).iter().any(|t| t.uses(Var::Bucket));
            if needs_ab && ab.is_none() {
                err(format!(
                    "rule {:?} uses the A/B bucket but the site has no [sites.ab]",
                    rule.name
                ));
            }
            if let Some(Rewrite::Regex { from, to }) = &a.rewrite
                && let Some(n) = to.max_capture()
                && n >= from.captures_len()
            {
                err(format!(
                    "rewrite: ${n} but the regex has {} capture group(s)",
                    from.captures_len() - 1
                ));
            }
            match rule.phase {
                Phase::Request => {
                    if rule.when.uses_status() {
                        err(format!(
                            "rule {:?}: a status condition needs phase = \"response\" (the request phase has no response yet)",
                            rule.name
                        ));
                    }
                    if a.respond.as_ref().is_some_and(|r| r.status.is_none()) {
                        err(format!("rule {:?}: respond needs a status", rule.name));
                    }
                }
                Phase::Response => {
                    if a.pool.is_some()
                        || a.redirect.is_some()
                        || a.auth.is_some()
                        || a.rewrite.is_some()
                        || !a.request_headers.is_empty()
                        || !a.cache_key.is_empty()
                        || a.private.is_some()
                    {
                        err(format!(
                            "rule {:?}: a response rule can only have response_headers and respond",
                            rule.name
                        ));
                    }
                }
            }
            let phase = rule.phase as usize;
            let mine = kinds(a);
            if !a.accumulates() && !mine.is_empty() && mine.iter().all(|k| taken[phase].contains(k))
            {
                err(format!(
                    "rule {:?} is unreachable: an earlier rule without conditions already decides {}",
                    rule.name,
                    mine.iter()
                        .map(|k| format!("{k:?}").to_lowercase())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if rule.when.is_always() {
                for k in mine {
                    // A regex rewrite applies only when it matches: it takes nothing.
                    let conditional =
                        k == Kind::Rewrite && matches!(a.rewrite, Some(Rewrite::Regex { .. }));
                    if !conditional && !taken[phase].contains(&k) {
                        taken[phase].push(k);
                    }
                }
            }
        }
        if errors.is_empty() {
            let rules: Vec<Rule> = rules
                .into_iter()
                .map(|mut r| {
                    r.when = r.when.cheapest_first();
                    r
                })
                .collect();
            let response_rules = rules.iter().any(|r| r.phase == Phase::Response);
            let gates = crate::gate::Gates::new(rules.iter().map(|r| &r.when));
            Ok(RuleSet {
                rules,
                ab,
                response_rules,
                gates,
            })
        } else {
            Err(errors)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn ab(&self) -> Option<&AbSettings> {
        self.ab.as_ref()
    }

    /// Whether any rule runs in the response phase (when none does, the edge skips
    /// [`RuleSet::evaluate_response`]).
    pub fn has_response_rules(&self) -> bool {
        self.response_rules
    }

    /// The rules as understood, one line each, for `edge check`: `rule mobile: when device in
    /// [mobile, tablet] → pool mobile, cache key +device`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(ab) = &self.ab {
            let by = match &ab.by {
                crate::AbBy::Cookie(c) => format!("cookie {c}"),
                crate::AbBy::Client => "client address".into(),
            };
            let mut line = format!("a/b buckets by {by}");
            if let Some(p) = &ab.pin {
                let _ = write!(
                    line,
                    ", pinned by cookie {} for {}s",
                    p.cookie,
                    p.lifetime.as_secs()
                );
            }
            out.push(line);
        }
        for r in &self.rules {
            let phase = match r.phase {
                Phase::Request => "",
                Phase::Response => " (response)",
            };
            out.push(format!(
                "rule {}{phase}: when {} → {}",
                r.name,
                r.when,
                describe_actions(&r.actions)
            ));
        }
        out
    }
}

fn describe_actions(a: &Actions) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(p) = &a.pool {
        parts.push(format!("pool {p}"));
    }
    if let Some(r) = &a.rewrite {
        parts.push(match r {
            Rewrite::Regex { from, to } => format!("rewrite /{}/ to {to}", from.as_str()),
            Rewrite::Set { path, query } => {
                let mut s = "rewrite".to_string();
                if let Some(p) = path {
                    let _ = write!(s, " path {p}");
                }
                if let Some(q) = query {
                    let _ = write!(s, " query {q}");
                }
                s
            }
        });
    }
    if let Some(r) = &a.redirect {
        parts.push(format!("redirect {} {}", r.status.as_u16(), r.location));
    }
    if let Some(r) = &a.respond {
        match r.status {
            Some(s) => parts.push(format!("respond {}", s.as_u16())),
            None => parts.push("replace body".into()),
        }
    }
    if let Some(auth) = &a.auth {
        parts.push(format!("auth {}", auth.describe()));
    }
    for (what, ops) in [
        ("request", &a.request_headers),
        ("response", &a.response_headers),
    ] {
        for op in ops {
            parts.push(match op {
                HeaderAction::Set(n, v) => format!("{what} header set {n}: {v}"),
                HeaderAction::Append(n, v) => format!("{what} header append {n}: {v}"),
                HeaderAction::Remove(n) => format!("{what} header remove {n}"),
            });
        }
    }
    if !a.cache_key.is_empty() {
        let vars: Vec<String> = a.cache_key.iter().map(|v| format!("+{v}")).collect();
        parts.push(format!("cache key {}", vars.join(" ")));
    }
    match a.private {
        Some(true) => parts.push("private".into()),
        Some(false) => parts.push("shared in cache".into()),
        None => {}
    }
    parts.join(", ")
}
