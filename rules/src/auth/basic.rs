//! HTTP Basic (RFC 7617) against argon2 (`$argon2id$…`, `$argon2i$…`) and bcrypt (`$2b$…`,
//! `$2a$…`, `$2y$…`) hashes.
//!
//! Hashing is costly by design, so two bounded tables sit in front of it:
//! - successes, per credential, for `cache_for`: keyed by HMAC-SHA256 of `user:password` under a
//!   key drawn when the rule set is built, so no password is kept in memory;
//! - failures, per client address, per minute: past `max_failures`, requests from that address
//!   are refused without hashing until the minute is over.
//!
//! An unknown user costs one verification against another user's hash, like a wrong password,
//! so that timing does not tell which users exist.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderValue;
use sha2::Sha256;

use super::{AuthError, AuthFailure, Identity, challenge, quoted};
use crate::{Error, RequestFacts, Result};

/// Entries each table holds at most; when full, expired entries go, then all of them.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone)]
enum Stored {
    Argon2(String),
    Bcrypt(String),
}

/// Tunables of a Basic rule.
#[derive(Debug, Clone, Copy)]
pub struct BasicOptions {
    /// How long a verified credential is trusted without hashing again.
    pub cache_for: Duration,
    /// Failed attempts allowed per client address per minute (0: no limit).
    pub max_failures: u32,
}

impl Default for BasicOptions {
    fn default() -> Self {
        BasicOptions {
            cache_for: Duration::from_secs(60),
            max_failures: 10,
        }
    }
}

#[derive(Debug, Default)]
struct Tables {
    /// Credential MAC → expiry (Unix seconds).
    ok: HashMap<[u8; 32], i64>,
    /// Client → (minute, failures in it).
    failures: HashMap<IpAddr, (i64, u32)>,
}

/// A Basic rule: realm, users and their hashes, and the caches.
#[derive(Debug)]
pub struct BasicAuth {
    realm: String,
    users: Vec<(String, Stored)>,
    options: BasicOptions,
    key: [u8; 32],
    tables: Mutex<Tables>,
    verifications: AtomicU64,
    challenge: HeaderValue,
}

/// A key for the credential MAC: 256 bits from std's randomly seeded SipHash keys (the OS's
/// randomness, without a dependency for it).
fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    for (i, chunk) in key.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    key
}

impl BasicAuth {
    /// `users`: (name, hash) pairs; each hash is checked to be a supported, well-formed one.
    pub fn new(
        realm: &str,
        users: &[(String, String)],
        options: BasicOptions,
    ) -> Result<BasicAuth> {
        if users.is_empty() {
            return Err(Error::Rule("auth.basic needs at least one user".into()));
        }
        let mut list = Vec::new();
        for (user, hash) in users {
            if user.is_empty() || user.contains(':') {
                return Err(Error::PasswordHash {
                    user: user.clone(),
                    reason: "a user name must be non-empty and without ':'".into(),
                });
            }
            let bad = |reason: String| Error::PasswordHash {
                user: user.clone(),
                reason,
            };
            let stored = if hash.starts_with("$argon2") {
                PasswordHash::new(hash).map_err(|e| bad(e.to_string()))?;
                Stored::Argon2(hash.clone())
            } else if hash.starts_with("$2") {
                hash.parse::<bcrypt::HashParts>()
                    .map_err(|e| bad(e.to_string()))?;
                Stored::Bcrypt(hash.clone())
            } else {
                return Err(bad(
                    "expected an argon2 ($argon2id$…) or bcrypt ($2b$…) hash".into(),
                ));
            };
            list.push((user.clone(), stored));
        }
        Ok(BasicAuth {
            realm: realm.into(),
            users: list,
            options,
            key: random_key(),
            tables: Mutex::new(Tables::default()),
            verifications: AtomicU64::new(0),
            challenge: challenge(format!("Basic realm={}, charset=\"UTF-8\"", quoted(realm))),
        })
    }

    /// Password hashes verified so far (cache misses): for tests and metrics.
    pub fn hash_verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    fn fail(&self, kind: AuthFailure) -> AuthError {
        AuthError {
            kind,
            challenge: self.challenge.clone(),
        }
    }

    fn credentials<'a>(facts: &RequestFacts<'a>) -> Option<(String, String)> {
        let v = facts.header(&http::header::AUTHORIZATION)?;
        let (scheme, b64) = v.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (user, pass) = text.split_once(':')?;
        Some((user.to_string(), pass.to_string()))
    }

    fn mac(&self, user: &str, pass: &str) -> [u8; 32] {
        // HMAC takes a key of any length: `new_from_slice` cannot fail for 32 bytes.
        let Ok(mut m) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key) else {
            return [0; 32];
        };
        m.update(user.as_bytes());
        m.update(b":");
        m.update(pass.as_bytes());
        m.finalize().into_bytes().into()
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic while holding the lock leaves plain maps behind: still usable.
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn over_limit(&self, t: &Tables, client: IpAddr, minute: i64) -> bool {
        self.options.max_failures > 0
            && t.failures
                .get(&client.to_canonical())
                .is_some_and(|(m, n)| *m == minute && *n >= self.options.max_failures)
    }

    pub(crate) fn is_cheap(&self, facts: &RequestFacts<'_>) -> bool {
        let Some((user, pass)) = Self::credentials(facts) else {
            return true;
        };
        let now = facts.now.as_second();
        let mac = self.mac(&user, &pass);
        let t = self.tables();
        t.ok.get(&mac).is_some_and(|exp| *exp > now) || self.over_limit(&t, facts.client, now / 60)
    }

    pub(crate) fn verify(&self, facts: &RequestFacts<'_>) -> Result<Identity, AuthError> {
        let Some((user, pass)) = Self::credentials(facts) else {
            return Err(self.fail(AuthFailure::Missing));
        };
        let now = facts.now.as_second();
        let minute = now / 60;
        let mac = self.mac(&user, &pass);
        {
            let t = self.tables();
            if t.ok.get(&mac).is_some_and(|exp| *exp > now) {
                return Ok(Identity { user });
            }
            if self.over_limit(&t, facts.client, minute) {
                return Err(self.fail(AuthFailure::TooManyFailures));
            }
        }
        // Hash outside the lock: it takes milliseconds.
        let found = self.users.iter().find(|(u, _)| *u == user);
        let matches = match found.or(self.users.first()) {
            Some((_, stored)) => check(stored, &pass) && found.is_some(),
            None => false,
        };
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let mut t = self.tables();
        if matches {
            if t.ok.len() >= MAX_ENTRIES {
                t.ok.retain(|_, exp| *exp > now);
                if t.ok.len() >= MAX_ENTRIES {
                    t.ok.clear();
                }
            }
            let ttl = i64::try_from(self.options.cache_for.as_secs()).unwrap_or(i64::MAX);
            t.ok.insert(mac, now.saturating_add(ttl));
            Ok(Identity { user })
        } else {
            if self.options.max_failures > 0 {
                if t.failures.len() >= MAX_ENTRIES {
                    t.failures.retain(|_, (m, _)| *m == minute);
                    if t.failures.len() >= MAX_ENTRIES {
                        t.failures.clear();
                    }
                }
                let e = t
                    .failures
                    .entry(facts.client.to_canonical())
                    .or_insert((minute, 0));
                if e.0 != minute {
                    *e = (minute, 0);
                }
                e.1 += 1;
            }
            Err(self.fail(AuthFailure::Invalid))
        }
    }

    pub(crate) fn describe(&self) -> String {
        let users: Vec<&str> = self.users.iter().map(|(u, _)| u.as_str()).collect();
        format!("basic realm {:?} users [{}]", self.realm, users.join(", "))
    }
}

fn check(stored: &Stored, pass: &str) -> bool {
    match stored {
        Stored::Argon2(h) => PasswordHash::new(h).is_ok_and(|h| {
            Argon2::default()
                .verify_password(pass.as_bytes(), &h)
                .is_ok()
        }),
        Stored::Bcrypt(h) => bcrypt::verify(pass, h).unwrap_or(false),
    }
}
