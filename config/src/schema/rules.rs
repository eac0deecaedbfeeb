//! `[sites.ab]` and `[[sites.rules]]`: site rules as written. Compiled into a
//! `site_rules::RuleSet` by `compile/rules`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::opt_duration;

/// `[sites.ab]`: how visitors are put in A/B buckets 0-99.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ab {
    /// `cookie` (the value of `cookie`) or `client` (the address).
    #[serde(default = "by_cookie")]
    pub by: Spanned<String>,
    /// The cookie bucketed on, and the pin cookie's name.
    #[serde(default = "ab_cookie")]
    pub cookie: Spanned<String>,
    /// Pin new visitors with a `Set-Cookie` of this lifetime; absent: no pinning.
    #[serde(default, deserialize_with = "opt_duration")]
    pub pin: Option<Duration>,
}

fn by_cookie() -> Spanned<String> {
    Spanned::new(0..0, "cookie".into())
}

fn ab_cookie() -> Spanned<String> {
    Spanned::new(0..0, "edge-ab".into())
}

/// One `[[sites.rules]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: Spanned<String>,
    /// `request` (default) or `response`.
    pub phase: Option<Spanned<String>>,
    /// Absent: the rule applies to every request.
    pub when: Option<Spanned<When>>,
    pub pool: Option<Spanned<String>>,
    pub redirect: Option<Spanned<Redirect>>,
    pub respond: Option<Spanned<Respond>>,
    pub rewrite: Option<Spanned<Rewrite>>,
    pub auth: Option<Spanned<Auth>>,
    pub request_headers: Option<Spanned<HeaderOps>>,
    pub response_headers: Option<Spanned<HeaderOps>>,
    #[serde(default)]
    pub cache_key: Vec<Spanned<String>>,
    pub private: Option<bool>,
}

/// A condition table: every key given must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    pub path_prefix: Option<Spanned<String>>,
    /// The exact path.
    pub path: Option<Spanned<String>>,
    pub path_glob: Option<Spanned<String>>,
    pub method: Option<Vec<Spanned<String>>>,
    pub header: Option<Spanned<NamedTest>>,
    pub cookie: Option<Spanned<NamedTest>>,
    pub query: Option<Spanned<NamedTest>>,
    pub client: Option<Vec<Spanned<String>>>,
    pub country: Option<Spanned<Vec<String>>>,
    pub continent: Option<Spanned<Vec<String>>>,
    pub asn: Option<Vec<u32>>,
    pub device: Option<Vec<Spanned<String>>>,
    pub time: Option<Spanned<Time>>,
    /// `[low, high]`, inclusive, within 0-99.
    pub bucket: Option<Spanned<Vec<u16>>>,
    /// Codes (`502`) and ranges (`"500-599"`); response rules only.
    pub status: Option<Vec<Spanned<StatusItem>>>,
    pub all: Option<Vec<Spanned<When>>>,
    pub any: Option<Vec<Spanned<When>>>,
    pub not: Option<Box<Spanned<When>>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StatusItem {
    Code(u32),
    Range(String),
}

/// A header, cookie or query parameter test: `name` and one of `present`, `equals`, `regex`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedTest {
    pub name: Spanned<String>,
    pub present: Option<bool>,
    pub equals: Option<String>,
    pub regex: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Time {
    pub from: String,
    pub to: String,
    /// `UTC` or an IANA name (`Europe/Berlin`).
    #[serde(default = "utc")]
    pub zone: String,
    #[serde(default)]
    pub days: Vec<String>,
}

fn utc() -> String {
    "UTC".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    #[serde(default = "found")]
    pub status: u16,
    pub location: String,
}

fn found() -> u16 {
    302
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Respond {
    /// Required in request rules; in response rules, absent keeps the origin's status.
    pub status: Option<u16>,
    #[serde(default)]
    pub body: String,
    #[serde(default = "text_plain")]
    pub content_type: String,
}

fn text_plain() -> String {
    "text/plain; charset=utf-8".into()
}

/// `{ from, to }` (regex with `$1` captures) or `{ path, query }` (templates).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    pub from: Option<String>,
    pub to: Option<String>,
    pub path: Option<String>,
    pub query: Option<String>,
}

/// Exactly one of `basic` and `jwt`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    pub basic: Option<Basic>,
    pub jwt: Option<Jwt>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Basic {
    #[serde(default = "restricted")]
    pub realm: String,
    /// User name → argon2 or bcrypt hash.
    pub users: BTreeMap<String, Spanned<String>>,
    /// How long a verified credential is trusted without hashing again (default 60s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub cache: Option<Duration>,
    /// Failed attempts per client address per minute before it is refused unchecked (default
    /// 10; 0: no limit).
    pub max_failures: Option<u32>,
}

fn restricted() -> String {
    "restricted".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwt {
    /// `header` (`Authorization: Bearer`) or `cookie:NAME`.
    #[serde(default = "header")]
    pub from: Spanned<String>,
    pub keys: Vec<Spanned<JwtKey>>,
    #[serde(default)]
    pub audience: OneOrMany,
    #[serde(default)]
    pub issuer: OneOrMany,
    /// Clock skew allowed on `exp` and `nbf` (default 30s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub leeway: Option<Duration>,
    #[serde(default = "restricted")]
    pub realm: String,
}

fn header() -> Spanned<String> {
    Spanned::new(0..0, "header".into())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKey {
    /// `HS256`, `RS256` or `ES256`.
    pub alg: String,
    /// HS256: the shared secret (at least 32 bytes).
    pub secret: Option<String>,
    /// RS256/ES256: the public key, PEM.
    pub pem: Option<String>,
    /// The key id tokens name in their `kid` header: keys with it are tried first (key
    /// rotation without trying every key).
    pub kid: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// `{ set = { NAME = "value" }, append = { NAME = "value" }, remove = [NAME] }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderOps {
    pub set: BTreeMap<String, Spanned<String>>,
    pub append: BTreeMap<String, Spanned<String>>,
    pub remove: Vec<Spanned<String>>,
}
