#![forbid(unsafe_code)]
//! Config schema, validation and compilation into immutable, versioned snapshots.
//!
//! A [`ConfigSource`] delivers [`Document`]s: TOML text, the certificate, key and CA files it
//! names (blobs), and the source's revision of it. [`compile`] turns a document into a
//! [`Snapshot`] with no I/O of its own, so a file on disk and a remote store go through the same
//! validation. A snapshot never changes after it is built: the data plane reads one
//! `Arc<Snapshot>` per request and never blocks on the config source. Every error points at the
//! document, line and column it comes from, so that `edge check` and a refused reload say
//! exactly what is wrong.
//!
//! Modules: `schema` (the TOML as written), `document` (the input of `compile`), `compile` (by
//! section), `snapshot` (the compiled types and their lookups), `diagnostics` (errors with
//! locations), `source` (where documents come from), `net` (CIDRs).

mod compile;
mod diagnostics;
mod document;
pub mod fuzzing;
pub mod geo;
pub mod geodns;
mod layered;
mod net;
pub mod protect;
mod schema;
mod snapshot;
mod source;

pub use cache_rules::encoding::{self, Coding};
pub use cache_rules::key::KeyRules;
pub use cache_rules::rules::Policy;
pub use compile::compile;
pub use diagnostics::{ConfigError, Diagnostic};
pub use document::{Document, Part, referenced_blobs};
pub use layered::{Layer, NODE_TABLES, layered};
pub use net::{Cidr, CidrSet};
pub use schema::{
    Algorithm, LogFormat, OriginProtocol, PlainHttp, Tier, parse_duration, parse_size,
};
pub use snapshot::{
    AccessOutput, AdminSettings, CacheSettings, Compression, DEFAULT_STRIP_REQUEST_HEADERS,
    DnsEndpoint, DnsSettings, HealthCheck, Levels, Limits, Listen, LogSettings, OriginSettings,
    OriginTls, OriginTransport, Outlier, Pool, Reload, Route, Site, SiteCache, Snapshot, Timeouts,
    normalize_host,
};
pub use source::{ConfigSource, FileSource, load};

#[cfg(test)]
mod tests;
