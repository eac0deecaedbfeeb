#![forbid(unsafe_code)]
//! `edge-load`: a load generator for HTTP/1.1, HTTP/2 and HTTP/3, and a tiny benchmark origin.
//!
//! Closed loop keeps a fixed number of requests in flight. Open loop sends at a fixed rate and
//! measures each latency from the request's *intended* send time, so a stalled server shows up
//! in the percentiles instead of silently slowing the generator (no coordinated omission).

pub mod attack;
pub mod attack_repeat;
pub mod codec;
pub mod conn;
pub mod geo_bench;
pub mod handshake;
pub mod origin;
pub mod run;
pub mod stats;
pub mod workload;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("bad argument: {0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("TLS setup: {0}")]
    Tls(String),
}
