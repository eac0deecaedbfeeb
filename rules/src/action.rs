//! What a rule does when it matches (as compiled), and the resolved forms a [`crate::Decision`]
//! carries to the edge.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::auth::Auth;
use crate::template::{Template, Var};

/// `redirect`: answer with a 301/302/307/308 to a templated `Location`.
#[derive(Debug, Clone)]
pub struct Redirect {
    pub status: StatusCode,
    pub location: Template,
}

/// `respond`: answer directly (request rules), or replace the origin's response (response
/// rules; `status: None` keeps the origin's status).
#[derive(Debug, Clone)]
pub struct Respond {
    pub status: Option<StatusCode>,
    pub body: Template,
    pub content_type: HeaderValue,
}

/// `rewrite`: change the path and/or query the cache key and the origin see (internal; the
/// client's URL stays as it was).
#[derive(Debug, Clone)]
pub enum Rewrite {
    /// When `from` finds a match in the path, the path becomes `to` with its captures (`$1`);
    /// a `?` in the result starts a new query (otherwise the query is kept). When it does not
    /// match, the rule's rewrite does nothing and a later rule's may apply.
    Regex { from: regex::Regex, to: Template },
    /// Replace the path and/or the query (an empty query template removes the query).
    Set {
        path: Option<Template>,
        query: Option<Template>,
    },
}

/// One header operation as configured.
#[derive(Debug, Clone)]
pub enum HeaderAction {
    /// Replace every value.
    Set(HeaderName, Template),
    /// Add a value after those present.
    Append(HeaderName, Template),
    Remove(HeaderName),
}

/// A rule's actions. Routing (`pool`), answering (`redirect`/`respond`), `auth` and `rewrite`:
/// the first matching rule that has one wins, each kind on its own. Header operations,
/// `cache_key` and `private = true` accumulate over every matching rule in order.
#[derive(Debug, Clone, Default)]
pub struct Actions {
    pub pool: Option<Arc<str>>,
    pub redirect: Option<Redirect>,
    pub respond: Option<Respond>,
    pub auth: Option<Arc<Auth>>,
    pub rewrite: Option<Rewrite>,
    /// In order: removes, then sets, then appends (as the config lists them).
    pub request_headers: Vec<HeaderAction>,
    pub response_headers: Vec<HeaderAction>,
    /// Values added to the cache key, so one class never gets another's page.
    pub cache_key: Vec<Var>,
    /// `Some(false)` on an auth rule: its responses may be shared in the cache. `Some(true)`:
    /// this request's response is private (not stored). `None`: auth rules are private.
    pub private: Option<bool>,
}

impl Actions {
    /// Whether the rule does anything besides first-match-wins actions.
    pub(crate) fn accumulates(&self) -> bool {
        !self.request_headers.is_empty()
            || !self.response_headers.is_empty()
            || !self.cache_key.is_empty()
            || self.private == Some(true)
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.accumulates()
            && self.pool.is_none()
            && self.redirect.is_none()
            && self.respond.is_none()
            && self.auth.is_none()
            && self.rewrite.is_none()
    }
}

/// A header operation with its value resolved, ready to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp {
    Set(HeaderName, HeaderValue),
    Append(HeaderName, HeaderValue),
    Remove(HeaderName),
}

/// Applies `ops` to `headers` in order.
/// [`apply`], taking the operations (no copies of names and values).
pub fn apply_owned(ops: Vec<HeaderOp>, headers: &mut HeaderMap) {
    // One growth for all of them.
    headers.reserve(ops.len());
    for op in ops {
        match op {
            HeaderOp::Set(n, v) => {
                headers.insert(n, v);
            }
            HeaderOp::Append(n, v) => {
                headers.append(n, v);
            }
            HeaderOp::Remove(n) => {
                headers.remove(n);
            }
        }
    }
}

pub fn apply(ops: &[HeaderOp], headers: &mut HeaderMap) {
    for op in ops {
        match op {
            HeaderOp::Set(n, v) => {
                headers.insert(n.clone(), v.clone());
            }
            HeaderOp::Append(n, v) => {
                headers.append(n.clone(), v.clone());
            }
            HeaderOp::Remove(n) => {
                headers.remove(n);
            }
        }
    }
}

/// A direct answer resolved for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: StatusCode,
    pub body: String,
    pub content_type: HeaderValue,
}

/// The answer a request rule gives instead of going to the cache and the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Terminal {
    Redirect {
        status: StatusCode,
        location: HeaderValue,
    },
    Respond(Response),
}

/// The path and query a rewrite produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteTo {
    pub path: String,
    /// `None`: no query.
    pub query: Option<String>,
}
