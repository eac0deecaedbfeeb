#![forbid(unsafe_code)]
//! Cache storage (memory and disk tiers), request collapsing and in-flight objects. The rules
//! live in `edge-cache-rules` (re-exported here) and are pure; this crate does the I/O.

pub use cache_rules::{cache_control, encoding, framing, key, plan, rules, status};

pub mod collapse;
pub mod fuzzing;
pub mod inflight;
pub mod purge;
pub mod storage;
pub mod store;

pub use purge::{Purge, PurgeMode, PurgeReport, PurgeScope};
pub use storage::{Storage, TierStats};
pub use store::{CacheError, DiskReader, Found, Lookup, Store, StoreConfig, Ticket};
