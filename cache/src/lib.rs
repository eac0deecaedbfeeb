#![forbid(unsafe_code)]
//! Cache storage and the RFC 9111 rules. The rules (`rules`, `cache_control`) are a sans-IO core:
//! pure functions of (request, stored response, now), tested on a simulated clock.

pub mod cache_control;
pub mod collapse;
pub mod encoding;
pub mod inflight;
pub mod key;
pub mod rules;
pub mod status;
pub mod store;

pub use store::{CacheError, DiskReader, Found, Lookup, Store, StoreConfig};
