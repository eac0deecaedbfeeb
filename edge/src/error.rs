//! The edge crate's one error type: request rejections (each maps to a status code in
//! `pipeline`) and start-up failures (reported by `main` with their context).

use std::net::SocketAddr;

use origin_shield::OriginError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // Caused by the client.
    #[error("malformed request: {0}")]
    BadRequest(&'static str),
    #[error("request URI is {len} bytes, limit is {limit}")]
    UriTooLong { len: usize, limit: u32 },
    #[error("request header block is {len} bytes, limit is {limit}")]
    HeadersTooLarge { len: usize, limit: u32 },
    #[error("request has {count} header fields, limit is {limit}")]
    TooManyHeaders { count: usize, limit: u32 },
    #[error("no site is configured for host {0:?}")]
    UnknownHost(String),
    #[error("no route matches the path")]
    NoRoute,
    #[error("request body exceeds the site's limit of {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("only-if-cached request for an object not in cache")]
    OnlyIfCached,
    #[error("request body too slow or missing")]
    RequestTimeout,
    /// A request from early data waited for a handshake that failed or timed out.
    #[error("the TLS handshake did not complete")]
    HandshakeFailed,

    // Caused by the origin (or by the client's body while it was being sent there).
    #[error(transparent)]
    Origin(#[from] OriginError),

    // Internal or start-up.
    #[error("route names pool {0:?}, which is not configured")]
    NoPool(String),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Control(control::ControlError),
    #[error("cache: {0}")]
    Cache(#[from] cache::CacheError),
    #[error("cannot bind {what} listener on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("GeoIP: {0}")]
    Geo(String),
    #[error("{0}")]
    Dns(String),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// A task the request waited on (e.g. a password check) failed.
    #[error("{0}")]
    Task(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// Who caused an error, for logs and metrics.
pub use origin_shield::Side;

impl Error {
    pub fn side(&self) -> Side {
        match self {
            Error::BadRequest(_)
            | Error::UriTooLong { .. }
            | Error::HeadersTooLarge { .. }
            | Error::TooManyHeaders { .. }
            | Error::UnknownHost(_)
            | Error::NoRoute
            | Error::BodyTooLarge { .. }
            | Error::OnlyIfCached
            | Error::RequestTimeout
            | Error::HandshakeFailed => Side::Client,
            Error::Origin(o) => o.side(),
            _ => Side::Internal,
        }
    }

    /// Whether the same request may be sent again without risk of doing its effect twice.
    pub fn retry_safe(&self) -> bool {
        match self {
            Error::Origin(o) => o.retry_safe(),
            _ => false,
        }
    }
}
