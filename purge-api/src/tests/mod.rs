// Tests may panic on what they set up themselves.
#![allow(clippy::unwrap_used)]

mod auth;
mod error;
mod openapi;
mod ratelimit;
mod record;
mod request;
mod request_errors;
mod request_items;

/// Any instant will do: tests only add durations to it.
#[allow(clippy::disallowed_methods)]
fn base() -> std::time::Instant {
    std::time::Instant::now()
}
