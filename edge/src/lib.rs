#![forbid(unsafe_code)]
//! The edge binary's library: listeners, the request pipeline and the CLI.
//!
//! A request: accept (`tcp`, `quic`) → TLS (`tls`) → `pipeline` (hygiene, route, `filters`,
//! `cache_phase` or `upstream`, `compress`, `respond`, `log`), over one `ctx::RequestCtx`.
//! Process state is in `state`; lifecycle (bind, reload, drain) in `server`.

pub mod admin;
pub mod body;
pub mod cache_phase;
pub mod cli;
pub mod compress;
pub mod config_cli;
pub mod ctx;
pub mod demo;
pub mod dns_cli;
pub mod early;
pub mod error;
pub mod filters;
pub mod fuzzing;
pub mod geo_phase;
pub mod headers;
pub mod hygiene;
pub mod interim;
pub mod lifecycle;
pub mod log;
pub mod metrics;
pub mod otlp;
pub mod pipeline;
pub mod protect;
pub mod proxy_header;
pub mod purge_cli;
pub mod quic;
pub mod request_id;
pub mod respond;
pub mod rules_cli;
pub mod rules_phase;
pub mod server;
pub mod state;
pub mod tcp;
pub mod tls;
pub mod trace;
pub mod upstream;

pub use edge_core::clock;
pub use error::Error;
