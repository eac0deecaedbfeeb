#![forbid(unsafe_code)]
//! Site rules: an ordered list of rules per site, each a condition on the request and actions
//! (route to a pool, rewrite the URL, set request and response headers, redirect, answer
//! directly, authenticate, add to the cache key), plus stable A/B buckets.
//!
//! Pure and sans-IO: no clock is read and no random number drawn during evaluation (both come
//! in [`RequestFacts`]), nothing blocks, and everything that can be wrong in a rule is found when
//! the config compiles (regexes, templates, time zones, keys, password hashes, unreachable
//! rules).
//!
//! How the edge uses it:
//! 1. `let d = site.rules.evaluate(&facts)` before the cache ([`RuleSet::evaluate`]).
//! 2. `d.auth`: [`Auth::verify`]; an error is a 401 with [`AuthError::www_authenticate`].
//! 3. `d.terminal`: answer with the redirect or the response, nothing else happens.
//! 4. `d.rewrite`: the path and query the cache key and the origin see.
//! 5. [`apply`] `d.request_headers` to the request to the origin; `d.cache_key` joins the cache
//!    key; `d.pool` replaces the route's pool; `d.private` keeps the response out of the shared
//!    cache.
//! 6. On the response: `site.rules.evaluate_response(&facts, status)`
//!    ([`RuleSet::evaluate_response`]) may replace it; apply `d.response_headers`, then the
//!    response decision's, and add `d.set_cookie` as a `Set-Cookie`.
//!
//! First matching rule wins for: pool, redirect/respond, auth, rewrite. Header operations,
//! cache key additions and `private = true` accumulate over every matching rule in order.

mod ab;
mod action;
pub mod auth;
mod condition;
mod construct;
pub mod device;
mod error;
mod evaluate;
mod facts;
pub mod fuzzing;
mod gate;
mod glob;
mod ruleset;
mod template;
mod time;

#[cfg(test)]
mod tests;

pub use ab::{AbBy, AbSettings, Pin, bucket_of, valid_cookie_name};
pub use action::{
    Actions, HeaderAction, HeaderOp, Redirect, Respond, Response, Rewrite, RewriteTo, Terminal,
    apply, apply_owned,
};
pub use auth::{Auth, AuthError, AuthFailure, Identity};
pub use condition::{Condition, ValueTest, bucket_range, regex, status_range};
pub use construct::MAX_BODY_BYTES;
pub use device::Device;
pub use error::{Error, Result};
pub use evaluate::{Decision, ResponseDecision};
pub use facts::{RequestFacts, timestamp};
pub use glob::Glob;
/// The time type of [`RequestFacts::now`].
pub use jiff::Timestamp;
pub use ruleset::{Phase, Rule, RuleSet};
pub use template::{Template, Var};
pub use time::TimeWindow;
