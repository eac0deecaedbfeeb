//! The crate's one error type: why an origin request failed, who caused it, and whether it
//! may be sent again.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::time::Duration;

use crate::BoxError;

/// Why an origin request failed. Each variant knows whether the request may be sent again.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error("pool {pool:?} has no endpoints")]
    NoEndpoint { pool: String },
    #[error("pool {pool:?} has no endpoint in rotation (all unhealthy or ejected)")]
    NoHealthy { pool: String },
    /// The circuit breaker: too many requests in flight to this pool.
    #[error("pool {pool:?} is at its limit of {limit} requests in flight")]
    Overloaded { pool: String, limit: u64 },
    #[error("cannot connect to origin {endpoint}: {source}")]
    Connect {
        endpoint: SocketAddr,
        #[source]
        source: BoxError,
    },
    /// TLS to the origin failed: a certificate that does not verify, or a failed handshake.
    #[error("TLS to origin {endpoint} failed: {source}")]
    Tls {
        endpoint: SocketAddr,
        #[source]
        source: BoxError,
    },
    #[error("origin {endpoint} sent no response headers within {after:?}")]
    Timeout {
        endpoint: SocketAddr,
        after: Duration,
    },
    /// The client's request body failed (too large, or the client went away): not the origin's
    /// fault, so it must not be blamed on it.
    #[error("request body from the client failed: {source}")]
    ClientBody {
        #[source]
        source: BoxError,
    },
    #[error("origin {endpoint} failed: {source}")]
    Protocol {
        endpoint: SocketAddr,
        #[source]
        source: BoxError,
    },
}

/// Who caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Origin,
    Internal,
}

impl OriginError {
    pub fn side(&self) -> Side {
        match self {
            OriginError::NoEndpoint { .. } => Side::Internal,
            OriginError::NoHealthy { .. } | OriginError::Overloaded { .. } => Side::Origin,
            OriginError::ClientBody { .. } => Side::Client,
            _ => Side::Origin,
        }
    }

    /// True when the origin cannot have seen the request, so any method may be retried.
    pub fn retry_safe(&self) -> bool {
        matches!(
            self,
            OriginError::Connect { .. }
                | OriginError::Tls { .. }
                | OriginError::NoEndpoint { .. }
                | OriginError::NoHealthy { .. }
                | OriginError::Overloaded { .. }
        )
    }

    /// The origin could not be reached (connect or TLS failure, timeout, none in rotation):
    /// no answer at all, which is what "serve stale while the origin is down" covers. A 5xx
    /// answer is not this (stale-if-error covers that).
    pub fn unreachable(&self) -> bool {
        matches!(
            self,
            OriginError::Connect { .. }
                | OriginError::Tls { .. }
                | OriginError::Timeout { .. }
                | OriginError::NoHealthy { .. }
                | OriginError::NoEndpoint { .. }
        )
    }

    /// The first error of type `E` in the source chain (e.g. a body-limit error).
    pub fn find_source<E: StdError + 'static>(&self) -> Option<&E> {
        let mut cur: Option<&(dyn StdError + 'static)> = self.source();
        while let Some(e) = cur {
            if let Some(found) = e.downcast_ref::<E>() {
                return Some(found);
            }
            cur = e.source();
        }
        None
    }
}
