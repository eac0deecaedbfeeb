//! JWT (RFC 7519) from `Authorization: Bearer` or a cookie, signed HS256, RS256 or ES256 with a
//! configured key. The signature is checked by `jsonwebtoken` (its RustCrypto backend); the time
//! claims are checked here against the time handed in (jsonwebtoken would read the clock):
//! `exp` is required, `nbf` honoured, both with `leeway`. `aud` must name one of the configured
//! audiences and `iss` be one of the configured issuers, when configured.

use std::collections::HashSet;
use std::time::Duration;

use http::HeaderValue;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{AuthError, AuthFailure, Identity, challenge, quoted};
use crate::{Error, RequestFacts, Result};

/// Where the token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer TOKEN`.
    Header,
    /// The value of this cookie.
    Cookie(String),
}

/// Signature algorithms accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlg {
    Hs256,
    Rs256,
    Es256,
}

impl JwtAlg {
    pub fn parse(s: &str) -> Result<JwtAlg> {
        match s.trim().to_ascii_uppercase().as_str() {
            "HS256" => Ok(JwtAlg::Hs256),
            "RS256" => Ok(JwtAlg::Rs256),
            "ES256" => Ok(JwtAlg::Es256),
            _ => Err(Error::JwtKey(format!(
                "algorithm {s:?}: expected HS256, RS256 or ES256"
            ))),
        }
    }

    fn algorithm(self) -> Algorithm {
        match self {
            JwtAlg::Hs256 => Algorithm::HS256,
            JwtAlg::Rs256 => Algorithm::RS256,
            JwtAlg::Es256 => Algorithm::ES256,
        }
    }
}

/// A verification key.
#[derive(Clone)]
pub struct JwtKey {
    alg: JwtAlg,
    key: DecodingKey,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "JwtKey({:?})", self.alg)
    }
}

impl JwtKey {
    /// An HS256 shared secret (at least 32 bytes, as RFC 7518 §3.2 asks).
    pub fn hs256(secret: &[u8]) -> Result<JwtKey> {
        if secret.len() < 32 {
            return Err(Error::JwtKey(
                "an HS256 secret must be at least 32 bytes".into(),
            ));
        }
        let key = DecodingKey::from_secret(secret).map_err(|e| Error::JwtKey(e.to_string()))?;
        Ok(JwtKey {
            alg: JwtAlg::Hs256,
            key,
        })
    }

    /// An RS256 or ES256 public key in PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_pem(alg: JwtAlg, pem: &str) -> Result<JwtKey> {
        let key = match alg {
            JwtAlg::Rs256 => DecodingKey::from_rsa_pem(pem.as_bytes()),
            JwtAlg::Es256 => DecodingKey::from_ec_pem(pem.as_bytes()),
            JwtAlg::Hs256 => {
                return Err(Error::JwtKey("HS256 takes a secret, not a PEM key".into()));
            }
        }
        .map_err(|e| Error::JwtKey(format!("{alg:?} PEM: {e}")))?;
        Ok(JwtKey { alg, key })
    }
}

/// A JWT rule.
#[derive(Debug)]
pub struct JwtAuth {
    from: TokenSource,
    keys: Vec<JwtKey>,
    audience: Vec<String>,
    issuer: Vec<String>,
    leeway: Duration,
    missing: HeaderValue,
    invalid: HeaderValue,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    exp: Option<f64>,
    nbf: Option<f64>,
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
}

impl JwtAuth {
    /// `audience`/`issuer`: accepted values (empty: not checked). `realm` goes into the
    /// `WWW-Authenticate` challenge.
    pub fn new(
        from: TokenSource,
        keys: Vec<JwtKey>,
        audience: Vec<String>,
        issuer: Vec<String>,
        leeway: Duration,
        realm: &str,
    ) -> Result<JwtAuth> {
        if keys.is_empty() {
            return Err(Error::JwtKey("auth.jwt needs at least one key".into()));
        }
        let realm = quoted(realm);
        Ok(JwtAuth {
            from,
            keys,
            audience,
            issuer,
            leeway,
            missing: challenge(format!("Bearer realm={realm}")),
            invalid: challenge(format!("Bearer realm={realm}, error=\"invalid_token\"")),
        })
    }

    fn fail(&self, kind: AuthFailure) -> AuthError {
        AuthError {
            kind,
            challenge: if kind == AuthFailure::Missing {
                self.missing.clone()
            } else {
                self.invalid.clone()
            },
        }
    }

    fn token<'a>(&self, facts: &RequestFacts<'a>) -> Option<&'a str> {
        let t = match &self.from {
            TokenSource::Header => {
                let v = facts.header(&http::header::AUTHORIZATION)?.trim();
                let (scheme, token) = v.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then_some(token.trim())?
            }
            TokenSource::Cookie(name) => facts.cookie(name)?,
        };
        Some(t).filter(|t| !t.is_empty())
    }

    pub(crate) fn verify(&self, facts: &RequestFacts<'_>) -> Result<Identity, AuthError> {
        let token = self
            .token(facts)
            .ok_or_else(|| self.fail(AuthFailure::Missing))?;
        let invalid = || self.fail(AuthFailure::Invalid);
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        let mut claims = None;
        for k in self.keys.iter().filter(|k| k.alg.algorithm() == header.alg) {
            let mut v = Validation::new(header.alg);
            // Time claims are checked below against `facts.now`; audience and issuer too, so
            // that every failure is classified the same way.
            v.validate_exp = false;
            v.validate_nbf = false;
            v.validate_aud = false;
            v.required_spec_claims = HashSet::new();
            if let Ok(data) = jsonwebtoken::decode::<Claims>(token, &k.key, &v) {
                claims = Some(data.claims);
                break;
            }
        }
        let c = claims.ok_or_else(invalid)?;
        let now = facts.now.as_second() as f64;
        let leeway = self.leeway.as_secs_f64();
        match c.exp {
            Some(exp) if now <= exp + leeway => {}
            _ => return Err(self.fail(AuthFailure::Expired)),
        }
        if c.nbf.is_some_and(|nbf| now + leeway < nbf) {
            return Err(invalid());
        }
        if !self.audience.is_empty() {
            let ok = match &c.aud {
                Some(Audience::One(a)) => self.audience.contains(a),
                Some(Audience::Many(list)) => list.iter().any(|a| self.audience.contains(a)),
                None => false,
            };
            if !ok {
                return Err(invalid());
            }
        }
        if !self.issuer.is_empty() && !c.iss.as_ref().is_some_and(|i| self.issuer.contains(i)) {
            return Err(invalid());
        }
        Ok(Identity {
            user: c.sub.unwrap_or_default(),
        })
    }

    pub(crate) fn describe(&self) -> String {
        let from = match &self.from {
            TokenSource::Header => "header".to_string(),
            TokenSource::Cookie(c) => format!("cookie {c}"),
        };
        let algs: Vec<String> = self.keys.iter().map(|k| format!("{:?}", k.alg)).collect();
        let mut s = format!("jwt from {from}, keys [{}]", algs.join(", "));
        if !self.audience.is_empty() {
            s.push_str(&format!(", audience {:?}", self.audience));
        }
        if !self.issuer.is_empty() {
            s.push_str(&format!(", issuer {:?}", self.issuer));
        }
        s
    }
}
