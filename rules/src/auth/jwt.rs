//! JWT (RFC 7519) from `Authorization: Bearer` or a cookie, signed HS256, RS256 or ES256 with a
//! configured key. The compact JWS (RFC 7515 §7.1) is taken apart here and its signature checked
//! with `ring` (already in the tree for TLS); the time claims are checked against the time handed
//! in: `exp` is required, `nbf` honoured, both with `leeway`. `aud` must name one of the
//! configured audiences and `iss` be one of the configured issuers, when configured.
//!
//! The header's `alg` must be one of the three and match the key: `none`, and anything else, is
//! refused. A `kid` in the header is tried first against keys with that id
//! ([`JwtKey::with_kid`]); every key of the token's algorithm is tried after.

use std::time::Duration;

use base64::Engine as _;
use http::HeaderValue;
use ring::{hmac, signature};
use serde::Deserialize;

use super::der;
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

    /// The name in a JWS header (case-sensitive there, RFC 7515 §4.1.1).
    fn from_header(name: &str) -> Option<JwtAlg> {
        match name {
            "HS256" => Some(JwtAlg::Hs256),
            "RS256" => Some(JwtAlg::Rs256),
            "ES256" => Some(JwtAlg::Es256),
            _ => None,
        }
    }
}

/// Key material as `ring` takes it.
#[derive(Clone)]
enum Material {
    Hmac(hmac::Key),
    /// PKCS#1 `RSAPublicKey`, DER.
    Rsa(Vec<u8>),
    /// Uncompressed P-256 point.
    P256(Vec<u8>),
}

/// A verification key.
#[derive(Clone)]
pub struct JwtKey {
    alg: JwtAlg,
    kid: Option<String>,
    key: Material,
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
        Ok(JwtKey {
            alg: JwtAlg::Hs256,
            kid: None,
            key: Material::Hmac(hmac::Key::new(hmac::HMAC_SHA256, secret)),
        })
    }

    /// An RS256 or ES256 public key in PEM: `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo),
    /// or for RS256 also `-----BEGIN RSA PUBLIC KEY-----` (PKCS#1). RS256 keys are 2048 to 8192
    /// bits; ES256 keys are on P-256.
    pub fn public_pem(alg: JwtAlg, pem: &str) -> Result<JwtKey> {
        let bad = |reason: String| Error::JwtKey(format!("{alg:?} PEM: {reason}"));
        if alg == JwtAlg::Hs256 {
            return Err(Error::JwtKey("HS256 takes a secret, not a PEM key".into()));
        }
        let (label, bytes) = der::pem(pem).map_err(bad)?;
        let key = match (alg, label.as_str()) {
            (JwtAlg::Rs256, "PUBLIC KEY") => {
                Material::Rsa(der::rsa_spki(&bytes).map_err(bad)?.to_vec())
            }
            (JwtAlg::Rs256, "RSA PUBLIC KEY") => {
                der::rsa_pkcs1(&bytes).map_err(bad)?;
                Material::Rsa(bytes)
            }
            (JwtAlg::Es256, "PUBLIC KEY") => {
                Material::P256(der::p256_spki(&bytes).map_err(bad)?.to_vec())
            }
            (_, other) => {
                let want = if alg == JwtAlg::Rs256 {
                    "\"PUBLIC KEY\" or \"RSA PUBLIC KEY\""
                } else {
                    "\"PUBLIC KEY\""
                };
                return Err(bad(format!("a {other:?} section, expected {want}")));
            }
        };
        Ok(JwtKey {
            alg,
            kid: None,
            key,
        })
    }

    /// The same key with a key id: tokens whose header names this `kid` try it first.
    pub fn with_kid(mut self, kid: impl Into<String>) -> JwtKey {
        self.kid = Some(kid.into());
        self
    }

    #[cfg(test)]
    pub(super) fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether `signature` over `input` verifies with this key.
    fn verifies(&self, input: &[u8], sig: &[u8]) -> bool {
        match &self.key {
            Material::Hmac(k) => hmac::verify(k, input, sig).is_ok(),
            Material::Rsa(k) => {
                signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, k)
                    .verify(input, sig)
                    .is_ok()
            }
            // JWS ES256 signatures are r || s, 32 bytes each (RFC 7518 §3.4), not DER.
            Material::P256(k) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, k)
                    .verify(input, sig)
                    .is_ok()
            }
        }
    }
}

/// Why a token could not be taken apart (all answered as [`AuthFailure::Invalid`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Malformed {
    /// Not three dot-separated parts.
    Segments,
    /// A part that is not unpadded base64url.
    Base64,
    /// A header that is not a JSON object with a string `alg`.
    Header,
    /// `alg` is `none` or not one of HS256, RS256, ES256.
    Alg,
    /// The header lists critical extensions, none of which we implement.
    Crit,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// Not checked, but must be a string when present.
    #[serde(default, rename = "typ")]
    _typ: Option<String>,
    /// Extensions the verifier must understand (RFC 7515 §4.1.11): we understand none.
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// A compact JWS, taken apart but not verified.
#[derive(Debug)]
pub(super) struct Jws<'a> {
    pub(super) alg: JwtAlg,
    pub(super) kid: Option<String>,
    /// `b64(header) + "." + b64(payload)`, as signed.
    pub(super) signing_input: &'a [u8],
    pub(super) payload: Vec<u8>,
    pub(super) signature: Vec<u8>,
}

fn b64url(part: &str) -> Result<Vec<u8>, Malformed> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Malformed::Base64)
}

/// A JSON object as `T`. serde would also take a struct from an array of its fields; a JOSE
/// header and a claims set are objects (RFC 7515 §4, RFC 7519 §7.2).
fn json_object<T: serde::de::DeserializeOwned>(json: &[u8]) -> Option<T> {
    if json.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// Splits and decodes a compact JWS: `header.payload.signature`, each unpadded base64url.
pub(super) fn parse(token: &str) -> Result<Jws<'_>, Malformed> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Malformed::Segments);
    };
    let header: Header = json_object(&b64url(h)?).ok_or(Malformed::Header)?;
    if header.crit.is_some() {
        return Err(Malformed::Crit);
    }
    let alg = JwtAlg::from_header(&header.alg).ok_or(Malformed::Alg)?;
    let payload = b64url(p)?;
    let signature = b64url(s)?;
    // `h` and `p` are the start of `token`, with the dot between them.
    let signing_input = token
        .as_bytes()
        .get(..h.len() + 1 + p.len())
        .ok_or(Malformed::Segments)?;
    Ok(Jws {
        alg,
        kid: header.kid,
        signing_input,
        payload,
        signature,
    })
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
        self.check(token, facts.now.as_second())
            .map_err(|kind| self.fail(kind))
    }

    /// The keys to try for `jws`, in order: those of its algorithm, the ones with its `kid`
    /// (if it names one) first, the others in configured order.
    pub(super) fn candidates(&self, jws: &Jws<'_>) -> Vec<&JwtKey> {
        let mut keys: Vec<&JwtKey> = self.keys.iter().filter(|k| k.alg == jws.alg).collect();
        if let Some(kid) = &jws.kid {
            // A stable sort: the order among matching keys, and among the rest, is kept.
            keys.sort_by_key(|k| k.kid.as_ref() != Some(kid));
        }
        keys
    }

    /// Verifies `token` at `now` (Unix seconds).
    pub(super) fn check(&self, token: &str, now: i64) -> Result<Identity, AuthFailure> {
        let invalid = AuthFailure::Invalid;
        let jws = parse(token).map_err(|_| invalid)?;
        if !self
            .candidates(&jws)
            .iter()
            .any(|k| k.verifies(jws.signing_input, &jws.signature))
        {
            return Err(invalid);
        }
        let c: Claims = json_object(&jws.payload).ok_or(invalid)?;
        let now = now as f64;
        let leeway = self.leeway.as_secs_f64();
        match c.exp {
            Some(exp) if now <= exp + leeway => {}
            _ => return Err(AuthFailure::Expired),
        }
        if c.nbf.is_some_and(|nbf| now + leeway < nbf) {
            return Err(invalid);
        }
        if !self.audience.is_empty() {
            let ok = match &c.aud {
                Some(Audience::One(a)) => self.audience.contains(a),
                Some(Audience::Many(list)) => list.iter().any(|a| self.audience.contains(a)),
                None => false,
            };
            if !ok {
                return Err(invalid);
            }
        }
        if !self.issuer.is_empty() && !c.iss.as_ref().is_some_and(|i| self.issuer.contains(i)) {
            return Err(invalid);
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
