//! Purge requests: our JSON shape, Cloudflare's field names and Fastly's headers all parse into
//! one [`PurgeRequest`] value, which can be recorded, replayed on another node and acknowledged.

mod normalise;
mod wire;

use std::fmt;

use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

/// Largest accepted body; the caller also stops reading the body here.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most items (URLs, prefixes, tags, hosts, sites) in one request.
pub const MAX_ITEMS: usize = 256;
/// Longest URL, prefix, host or site name.
pub const MAX_ITEM_BYTES: usize = 4096;
/// Longest tag (surrogate key).
pub const MAX_TAG_BYTES: usize = 1024;

/// One purge, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeRequest {
    pub targets: Targets,
    /// Mark stale instead of removing.
    #[serde(default)]
    pub soft: bool,
}

/// What a purge covers: one kind of target per request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Targets {
    Urls(Vec<UrlTarget>),
    Prefixes(Vec<PrefixTarget>),
    Tags(Vec<String>),
    Hosts(Vec<String>),
    Everything {
        /// `None`: every site the token may purge.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sites: Option<Vec<String>>,
    },
}

/// One URL. Hosts are lower case without a trailing dot, IPv6 in brackets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UrlTarget {
    /// `None` when the URL had no scheme (Cloudflare style `host/path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Starts with `/`; `/` when the URL had no path. Fragments are dropped, non-ASCII
    /// bytes percent-encoded (as clients send them).
    pub path_and_query: String,
}

/// Every URL of `host` whose path starts with `path_prefix` (which starts with `/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PrefixTarget {
    pub host: String,
    pub path_prefix: String,
}

/// The kind of a purge, as tokens are scoped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Url,
    Prefix,
    Tag,
    Host,
    Everything,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Url,
        Kind::Prefix,
        Kind::Tag,
        Kind::Host,
        Kind::Everything,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Url => "url",
            Kind::Prefix => "prefix",
            Kind::Tag => "tag",
            Kind::Host => "host",
            Kind::Everything => "everything",
        }
    }

    /// The inverse of [`Kind::as_str`], for config files.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Targets {
    pub fn kind(&self) -> Kind {
        match self {
            Targets::Urls(_) => Kind::Url,
            Targets::Prefixes(_) => Kind::Prefix,
            Targets::Tags(_) => Kind::Tag,
            Targets::Hosts(_) => Kind::Host,
            Targets::Everything { .. } => Kind::Everything,
        }
    }

    /// The hosts named, in order and with repeats, so the caller can map them to sites and
    /// check the token's scope; empty for tags and everything.
    pub fn hosts(&self) -> Vec<&str> {
        match self {
            Targets::Urls(urls) => urls.iter().map(|u| u.host.as_str()).collect(),
            Targets::Prefixes(prefixes) => prefixes.iter().map(|p| p.host.as_str()).collect(),
            Targets::Hosts(hosts) => hosts.iter().map(String::as_str).collect(),
            Targets::Tags(_) | Targets::Everything { .. } => Vec::new(),
        }
    }
}

/// Why a request body or its headers were refused: 413 for size, 400 otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("the body must be a JSON object")]
    NotObject,
    #[error("unknown field `{0}`")]
    UnknownField(String),
    #[error("field `{0}` appears more than once")]
    DuplicateField(String),
    #[error("{field}: expected {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    #[error("`{first}` and `{second}` cannot be combined: one kind of target per request")]
    TwoKinds { first: String, second: String },
    #[error(
        "no purge target: give one of urls, prefixes, tags, hosts or everything \
         (or a Surrogate-Key header)"
    )]
    NoTarget,
    #[error("{field}: must be true to purge everything")]
    NotTrue { field: String },
    #[error("{field}: only allowed with `everything`")]
    Misplaced { field: String },
    #[error("{field}: must not be empty")]
    Empty { field: String },
    #[error("{field}: at most {limit} items")]
    TooMany { field: String, limit: usize },
    #[error("{field}[{index}]: {reason}")]
    BadItem {
        field: String,
        index: usize,
        reason: String,
    },
    #[error("{header}: {reason}")]
    BadHeader {
        header: &'static str,
        reason: String,
    },
}

impl RequestError {
    /// The field (or header) at fault, with the index for list items (`urls[3]`).
    pub fn field(&self) -> Option<String> {
        match self {
            RequestError::TooLarge { .. }
            | RequestError::Json(_)
            | RequestError::NotObject
            | RequestError::NoTarget => None,
            RequestError::UnknownField(field) | RequestError::DuplicateField(field) => {
                Some(field.clone())
            }
            RequestError::WrongType { field, .. }
            | RequestError::NotTrue { field }
            | RequestError::Misplaced { field }
            | RequestError::Empty { field }
            | RequestError::TooMany { field, .. } => Some(field.clone()),
            // The message names both; the second is the one that broke the rule.
            RequestError::TwoKinds { second, .. } => Some(second.clone()),
            RequestError::BadItem { field, index, .. } => Some(format!("{field}[{index}]")),
            RequestError::BadHeader { header, .. } => Some((*header).to_owned()),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// `{"error": "...", "field": "..."}`; `field` only when there is one.
    pub fn to_json(&self) -> serde_json::Value {
        crate::error::error_json(&self.to_string(), self.field().as_deref())
    }
}

/// Parses a purge request from its body and headers (Fastly's `Surrogate-Key` and
/// `Fastly-Soft-Purge`). Bodies over [`MAX_BODY_BYTES`] are refused without being read.
pub fn parse(body: &[u8], headers: &HeaderMap) -> Result<PurgeRequest, RequestError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(RequestError::TooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let header_soft = wire::fastly_soft(headers)?;
    let surrogate_keys = wire::surrogate_keys(headers)?;
    let body = wire::Body::parse(body)?;

    let targets = match (body.target, surrogate_keys) {
        (Some((field, _)), Some(_)) => {
            return Err(RequestError::TwoKinds {
                first: field,
                second: wire::SURROGATE_KEY.to_owned(),
            });
        }
        (None, Some(tags)) => Targets::Tags(tags),
        (Some((field, value)), None) => wire::targets(&field, value)?,
        (None, None) => {
            return Err(match body.everything_false {
                Some(field) => RequestError::NotTrue { field },
                None => RequestError::NoTarget,
            });
        }
    };
    let targets = match (targets, body.sites) {
        (Targets::Everything { .. }, Some(sites)) => Targets::Everything {
            sites: Some(wire::list("sites", sites, MAX_ITEM_BYTES, normalise::name)?),
        },
        (_, Some(_)) => {
            return Err(RequestError::Misplaced {
                field: "sites".to_owned(),
            });
        }
        (targets, None) => targets,
    };
    Ok(PurgeRequest {
        targets,
        soft: body.soft || header_soft,
    })
}
