#![forbid(unsafe_code)]
//! Primitives every room shares, so that no room has to depend on another for them: the body
//! type that streams through the data plane, the clock, and IP address ranges (`cidr`).

pub mod body;
pub mod cidr;
pub mod clock;
pub mod proxy_protocol;
pub mod query;
