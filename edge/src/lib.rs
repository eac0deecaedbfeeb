#![forbid(unsafe_code)]
//! The edge binary's library: listeners, the request pipeline and the CLI.
//!
//! Phases of a request, in order: accept (`tcp`, `quic`) → TLS (`tls`) → route, policy, origin,
//! response and log (`pipeline`). Process lifecycle (bind, reload, drain) is in `server`.

pub mod admin;
pub mod body;
pub mod cache_phase;
pub mod cli;
pub mod compress;
pub mod demo;
pub mod error;
pub mod headers;
pub mod hygiene;
pub mod lifecycle;
pub mod metrics;
pub mod pipeline;
pub mod quic;
pub mod server;
pub mod tcp;
pub mod tls;

pub use error::Error;
