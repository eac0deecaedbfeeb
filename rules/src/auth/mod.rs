//! Edge authentication: HTTP Basic against password hashes from the config, or a JWT from a
//! header or a cookie. The edge calls [`Auth::verify`] when [`crate::Decision::auth`] is set,
//! and answers an [`AuthError`] with `401` and [`AuthError::www_authenticate`] (nothing reaches
//! the origin).

mod basic;
mod der;
mod jwt;
#[cfg(test)]
mod jwt_tests;
#[cfg(test)]
pub(crate) mod tests;

use std::fmt;

use http::{HeaderValue, StatusCode};

pub use basic::{BasicAuth, BasicOptions};
pub use jwt::{JwtAlg, JwtAuth, JwtKey, TokenSource};

use crate::RequestFacts;

/// An auth action as configured.
#[derive(Debug)]
pub enum Auth {
    Basic(BasicAuth),
    Jwt(JwtAuth),
}

/// Who passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The Basic user name, or the JWT's `sub` (empty when it has none).
    pub user: String,
}

/// Why a request did not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials or token.
    Missing,
    /// Wrong credentials, bad signature, wrong audience or issuer, malformed token.
    Invalid,
    /// A JWT past its `exp` (plus leeway), or without one.
    Expired,
    /// Too many failed attempts from this client lately: refused without checking (password
    /// hashing is costly by design).
    TooManyFailures,
}

/// A refusal, with the `WWW-Authenticate` value to send with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    pub kind: AuthFailure,
    challenge: HeaderValue,
}

impl AuthError {
    /// Always `401 Unauthorized` (a client over the failure limit gets it too, without the
    /// password being checked).
    pub fn status(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    /// The `WWW-Authenticate` header value: `Basic realm="…", charset="UTF-8"` or
    /// `Bearer realm="…"` / `Bearer realm="…", error="invalid_token"`.
    pub fn www_authenticate(&self) -> &HeaderValue {
        &self.challenge
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthFailure::Missing => "missing credentials",
            AuthFailure::Invalid => "invalid credentials",
            AuthFailure::Expired => "expired token",
            AuthFailure::TooManyFailures => "too many failures",
        })
    }
}

impl Auth {
    /// Checks the request's credentials. Basic may take one password-hash verification (tens of
    /// milliseconds by design: call it off the async runtime's hot path, e.g. in
    /// `spawn_blocking`, unless [`Auth::is_cheap`] says the answer is cached).
    pub fn verify(&self, facts: &RequestFacts<'_>) -> Result<Identity, AuthError> {
        match self {
            Auth::Basic(b) => b.verify(facts),
            Auth::Jwt(j) => j.verify(facts),
        }
    }

    /// Whether [`Auth::verify`] will answer without hashing a password (JWT, a cached Basic
    /// success, a missing header, a client over its failure limit).
    pub fn is_cheap(&self, facts: &RequestFacts<'_>) -> bool {
        match self {
            Auth::Basic(b) => b.is_cheap(facts),
            Auth::Jwt(_) => true,
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Auth::Basic(b) => b.describe(),
            Auth::Jwt(j) => j.describe(),
        }
    }
}

/// A quoted-string for a challenge parameter: `"` and `\` escaped, anything that cannot be in
/// a header value dropped.
pub(crate) fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| *c == ' ' || c.is_ascii_graphic()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

pub(crate) fn challenge(text: String) -> HeaderValue {
    // `quoted` keeps only visible ASCII and spaces: always valid.
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("Basic"))
}
