#![forbid(unsafe_code)]
//! The cache's decisions as a sans-IO core: pure functions of (request, stored response,
//! policy, now), tested table-driven on a simulated clock. No storage, no sockets, no clock of
//! their own; `config` depends on this crate alone, not on the store.

pub mod cache_control;
pub mod dates;
pub mod encoding;
pub mod framing;
pub mod fuzzing;
pub mod key;
pub mod plan;
pub mod rules;
pub mod sfv;
pub mod status;
