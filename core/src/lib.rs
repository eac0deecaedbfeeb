#![forbid(unsafe_code)]
//! Primitives every room shares, so that no room has to depend on another for them: the body
//! type that streams through the data plane, and the clock.

pub mod body;
pub mod clock;
pub mod proxy_protocol;
