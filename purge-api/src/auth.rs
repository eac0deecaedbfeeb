//! Bearer tokens. Config holds the SHA-256 of each secret (lower-case hex), never the secret;
//! a presented secret is hashed and compared with every configured hash in constant time.

use std::fmt;

use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::request::Kind;

/// The `WWW-Authenticate` value of every 401.
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"edge-admin\"";

/// One configured token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    /// SHA-256 of the secret.
    pub sha256: [u8; 32],
    /// Sites it may purge; `None`: every site.
    pub sites: Option<Vec<String>>,
    /// Kinds of purge it may make; `None`: every kind.
    pub kinds: Option<Vec<Kind>>,
    /// May read (metrics, status, purge records) but not purge.
    pub read_only: bool,
}

// The hash stays out of logs: for a weak secret it is as good as the secret offline.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("sha256", &"<redacted>")
            .field("sites", &self.sites)
            .field("kinds", &self.kinds)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl Token {
    /// Whether this token may purge `kind` on `site`. For a purge of everything without
    /// `sites`, the caller asks for each site in scope (the token's own, or all).
    pub fn may_purge(&self, kind: Kind, site: &str) -> Result<(), Forbidden> {
        if self.read_only {
            return Err(Forbidden::ReadOnly {
                token: self.name.clone(),
            });
        }
        if let Some(kinds) = &self.kinds
            && !kinds.contains(&kind)
        {
            return Err(Forbidden::Kind {
                token: self.name.clone(),
                kind,
            });
        }
        if let Some(sites) = &self.sites
            && !sites.iter().any(|s| s == site)
        {
            return Err(Forbidden::Site {
                token: self.name.clone(),
                site: site.to_owned(),
            });
        }
        Ok(())
    }

    /// Every valid token may read metrics, status and purge records.
    pub fn may_read(&self) -> bool {
        true
    }
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    tokens: Vec<Token>,
}

impl Tokens {
    /// If two tokens share a secret the first wins; config should refuse that.
    pub fn new(tokens: Vec<Token>) -> Tokens {
        Tokens { tokens }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The token whose secret `Authorization: Bearer <secret>` presents.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<&Token, AuthError> {
        let secret = bearer(headers)?;
        let presented = hash_secret(secret);
        // Every hash is compared in full and the match picked without a branch, so timing
        // tells neither which token matched nor how much of a hash did.
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, token) in self.tokens.iter().enumerate() {
            let equal = presented.ct_eq(&token.sha256);
            index.conditional_assign(&(i as u64), equal & !found);
            found |= equal;
        }
        if !bool::from(found) {
            return Err(AuthError::Invalid);
        }
        usize::try_from(index)
            .ok()
            .and_then(|i| self.tokens.get(i))
            .ok_or(AuthError::Invalid)
    }
}

/// The secret of the one `Authorization` header, if it is a well-formed bearer credential.
fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::Invalid);
    }
    let value = value.to_str().map_err(|_| AuthError::Invalid)?.trim();
    let (scheme, secret) = value.split_once([' ', '\t']).ok_or(AuthError::Invalid)?;
    let secret = secret.trim_start();
    if !scheme.eq_ignore_ascii_case("bearer")
        || secret.is_empty()
        || secret.contains(|c: char| c.is_ascii_whitespace())
    {
        return Err(AuthError::Invalid);
    }
    Ok(secret)
}

/// SHA-256 of a secret, as config stores it (through [`hex`]).
pub fn hash_secret(secret: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Lower-case hex.
pub fn hex(bytes: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// 64 hex digits (either case) into 32 bytes.
pub fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let digit = |c: u8| char::from(c).to_digit(16);
        *byte = u8::try_from(digit(pair[0])? << 4 | digit(pair[1])?).ok()?;
    }
    Some(out)
}

/// No valid token: 401 with [`WWW_AUTHENTICATE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing `Authorization: Bearer` token")]
    Missing,
    #[error("invalid bearer token")]
    Invalid,
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    pub fn www_authenticate(&self) -> &'static str {
        WWW_AUTHENTICATE
    }
}

/// A valid token asked for something out of its scope: 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Forbidden {
    #[error("token `{token}` is read-only: it may not purge")]
    ReadOnly { token: String },
    #[error("token `{token}` may not purge by {kind}")]
    Kind { token: String, kind: Kind },
    #[error("token `{token}` may not purge site `{site}`")]
    Site { token: String, site: String },
}

impl Forbidden {
    pub fn status(&self) -> StatusCode {
        StatusCode::FORBIDDEN
    }
}
