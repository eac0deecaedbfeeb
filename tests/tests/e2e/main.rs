//! End-to-end tests, one binary: every test here runs the real `edge` binary on loopback.
//! One binary instead of one per file: each test binary links the whole client stack, and 29
//! of them filled a CI disk; nextest still runs every test in its own process.
mod access_log;
mod browser;
mod cache;
mod collapsing;
mod compress;
mod config_source;
mod control_auth;
mod control_config;
mod control_purge;
mod control_rollout;
mod correctness;
mod correctness_stale;
mod dns;
mod early_hints;
mod errors;
mod geo;
mod hygiene;
mod lifecycle;
mod listeners;
mod metrics;
mod origins;
mod otlp;
mod protect;
mod proxy;
mod purge;
mod purge_api;
mod purge_cli;
mod ranges;
mod rules;
mod slow_readers;
mod smuggling;
mod status_page;
mod trace;
mod trust;
mod zero_rtt;
