#![forbid(unsafe_code)]
//! The edge's purge API, sans IO: parsing purge requests (ours, Cloudflare's and Fastly's
//! shapes), bearer-token authentication and scopes, per-token rate limits, purge records and
//! the OpenAPI document. The admin listener does the IO and calls in; time is passed in.

pub mod auth;
pub mod error;
pub mod openapi;
pub mod ratelimit;
pub mod record;
pub mod request;

#[cfg(test)]
mod tests;

pub use auth::{AuthError, Forbidden, Token, Tokens};
pub use error::PurgeApiError;
pub use ratelimit::{RateLimited, RateLimiter};
pub use record::{Journal, NodeAck, PurgeRecord, Status};
pub use request::{Kind, PrefixTarget, PurgeRequest, RequestError, Targets, UrlTarget};
