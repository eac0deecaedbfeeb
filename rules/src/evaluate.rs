//! Evaluation: every rule of a phase is tested in order against one request; first-match-wins
//! actions are taken from the first matching rule that has them, accumulating ones from every
//! matching rule. Conditions and templates see the request as it arrived (a rewrite by an
//! earlier rule does not change what later rules match on).

use std::sync::Arc;

use http::{HeaderValue, StatusCode};

use crate::RequestFacts;
use crate::action::{HeaderAction, HeaderOp, Response, Rewrite, RewriteTo, Terminal};
use crate::auth::Auth;
use crate::device::Device;
use crate::ruleset::{Phase, RuleSet};
use crate::template::Context;

/// What the request rules decided for one request. The edge applies it in this order: `auth`
/// (a failure is a 401 and nothing else happens), `terminal` (answer without cache or origin),
/// `rewrite`, `request_headers`, `cache_key`, `pool`; then, on the response, `response_headers`
/// and `set_cookie`.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// Names of the rules that matched, in order (for `edge rules test` and debug logs).
    pub matched: Vec<Arc<str>>,
    /// The pool to route to instead of the route's (first matching rule with a pool).
    pub pool: Option<Arc<str>>,
    /// The path and query the cache key and the origin see.
    pub rewrite: Option<RewriteTo>,
    /// Redirect or direct response: the request goes no further.
    pub terminal: Option<Terminal>,
    /// Authentication the request must pass first ([`Auth::verify`]); the rule's name.
    pub auth: Option<(Arc<str>, Arc<Auth>)>,
    /// Operations on the request headers sent to the origin, in order.
    pub request_headers: Vec<HeaderOp>,
    /// Operations on the response headers sent to the client, in order.
    pub response_headers: Vec<HeaderOp>,
    /// Added to the cache key, as (variable, value), each variable once.
    pub cache_key: Vec<(String, String)>,
    /// A `Set-Cookie` value pinning a new visitor's A/B value (add it to the response).
    pub set_cookie: Option<HeaderValue>,
    /// The device class, when a rule asked for it.
    pub device: Option<Device>,
    /// The A/B bucket, when the site has `[sites.ab]`.
    pub bucket: Option<u8>,
    /// The response must not be stored in the shared cache (an authenticated one, or a rule
    /// said `private = true`).
    pub private: bool,
}

/// What the response rules decided.
#[derive(Debug, Clone, Default)]
pub struct ResponseDecision {
    pub matched: Vec<Arc<str>>,
    /// Operations on the response headers, in order.
    pub response_headers: Vec<HeaderOp>,
    /// Replace the response with this one (first matching rule with `respond`).
    pub respond: Option<Response>,
}

fn resolve(ops: &[HeaderAction], cx: &Context<'_>, out: &mut Vec<HeaderOp>) {
    for op in ops {
        // Literal parts were checked when the config compiled; a value made from the request
        // that cannot be a header value is left out rather than sent broken.
        match op {
            HeaderAction::Set(n, t) => {
                if let Some(v) = t.header_value(cx) {
                    out.push(HeaderOp::Set(n.clone(), v));
                }
            }
            HeaderAction::Append(n, t) => {
                if let Some(v) = t.header_value(cx) {
                    out.push(HeaderOp::Append(n.clone(), v));
                }
            }
            HeaderAction::Remove(n) => out.push(HeaderOp::Remove(n.clone())),
        }
    }
}

fn rewrite(r: &Rewrite, cx: &Context<'_>) -> Option<RewriteTo> {
    let f = cx.facts;
    let (path, query) = match r {
        Rewrite::Regex { from, to } => {
            let caps = from.captures(f.path)?;
            let mut path = String::with_capacity(f.path.len());
            // Only the matched part is replaced, as `sed` does; anchor with ^…$ for the whole.
            let m = caps.get(0)?;
            path.push_str(&f.path[..m.start()]);
            path.push_str(&to.render(cx, Some(&caps)));
            path.push_str(&f.path[m.end()..]);
            match path.split_once('?') {
                Some((p, q)) => (p.to_string(), Some(q.to_string())),
                None => (path, f.query.map(str::to_string)),
            }
        }
        Rewrite::Set { path, query } => (
            path.as_ref()
                .map_or_else(|| f.path.to_string(), |t| t.render(cx, None)),
            match query {
                None => f.query.map(str::to_string),
                Some(t) => Some(t.render(cx, None)).filter(|q| !q.is_empty()),
            },
        ),
    };
    // Only a path the origin can be asked for: absolute, visible ASCII.
    let valid = |s: &str| s.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
    (path.starts_with('/') && valid(&path) && query.as_deref().is_none_or(valid))
        .then_some(RewriteTo { path, query })
}

impl RuleSet {
    fn bucket(&self, facts: &RequestFacts<'_>) -> (Option<u8>, Option<HeaderValue>) {
        match &self.ab {
            None => (None, None),
            Some(ab) => {
                let a = ab.assign(facts);
                (Some(a.bucket), a.set_cookie)
            }
        }
    }

    /// Evaluates the request rules for one request.
    pub fn evaluate(&self, facts: &RequestFacts<'_>) -> Decision {
        let (bucket, set_cookie) = self.bucket(facts);
        let cx = Context::new(facts, bucket);
        let mut d = Decision {
            bucket,
            set_cookie,
            ..Decision::default()
        };
        let mut reserved = false;
        let probe = self.gates.probe(facts);
        for (rule, gate) in self.rules.iter().zip(&self.gates.rules) {
            if rule.phase != Phase::Request || !gate.open(&probe) || !rule.when.holds(&cx, None) {
                continue;
            }
            if !reserved {
                // One allocation each for the usual handful, not a growth series.
                reserved = true;
                d.matched.reserve(8);
                d.request_headers.reserve(4);
                d.response_headers.reserve(8);
            }
            d.matched.push(rule.name.clone());
            let a = &rule.actions;
            if d.pool.is_none() {
                d.pool.clone_from(&a.pool);
            }
            if d.rewrite.is_none()
                && let Some(r) = &a.rewrite
            {
                d.rewrite = rewrite(r, &cx);
            }
            if d.terminal.is_none() {
                if let Some(r) = &a.redirect {
                    // The literal parts are valid; a target made unusable by the request's
                    // values is not followed (the request goes on as if the rule had none).
                    d.terminal = HeaderValue::from_str(&r.location.render(&cx, None))
                        .ok()
                        .map(|location| Terminal::Redirect {
                            status: r.status,
                            location,
                        });
                } else if let Some(r) = &a.respond {
                    d.terminal = Some(Terminal::Respond(Response {
                        status: r.status.unwrap_or(StatusCode::OK),
                        body: r.body.render(&cx, None),
                        content_type: r.content_type.clone(),
                    }));
                }
            }
            if d.auth.is_none()
                && let Some(auth) = &a.auth
            {
                d.auth = Some((rule.name.clone(), auth.clone()));
                d.private |= a.private != Some(false);
            }
            d.private |= a.private == Some(true);
            resolve(&a.request_headers, &cx, &mut d.request_headers);
            resolve(&a.response_headers, &cx, &mut d.response_headers);
            for v in &a.cache_key {
                if !d.cache_key.iter().any(|(n, _)| n == v.name()) {
                    d.cache_key.push((v.name().to_string(), cx.value(*v)));
                }
            }
        }
        // Known when a condition or a cache-key addition needed it; never classified just
        // to be shown (a User-Agent scan per request on sites that key on the device).
        d.device = cx.device_if_known();
        d
    }

    /// Evaluates the response rules once the origin's (or the cache's) `status` is known.
    /// `facts` must be those [`RuleSet::evaluate`] saw (same `random`), so that the bucket is
    /// the same.
    pub fn evaluate_response(&self, facts: &RequestFacts<'_>, status: u16) -> ResponseDecision {
        let mut d = ResponseDecision::default();
        if !self.has_response_rules() {
            return d;
        }
        let (bucket, _) = self.bucket(facts);
        let cx = Context::new(facts, bucket);
        let probe = self.gates.probe(facts);
        for (rule, gate) in self.rules.iter().zip(&self.gates.rules) {
            if rule.phase != Phase::Response
                || !gate.open(&probe)
                || !rule.when.holds(&cx, Some(status))
            {
                continue;
            }
            d.matched.push(rule.name.clone());
            let a = &rule.actions;
            if d.respond.is_none()
                && let Some(r) = &a.respond
            {
                d.respond = Some(Response {
                    status: r
                        .status
                        .or_else(|| StatusCode::from_u16(status).ok())
                        .unwrap_or(StatusCode::BAD_GATEWAY),
                    body: r.body.render(&cx, None),
                    content_type: r.content_type.clone(),
                });
            }
            resolve(&a.response_headers, &cx, &mut d.response_headers);
        }
        d
    }
}
