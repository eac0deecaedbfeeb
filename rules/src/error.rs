//! The crate's one error type: everything that can be wrong in a rule as written. Request-time
//! failures of authentication are [`crate::auth::AuthError`], which is an answer to give the
//! client, not a fault.

/// A rule, condition, template or key that cannot be compiled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid regex {pattern:?}: {reason}")]
    Regex { pattern: String, reason: String },
    #[error("invalid glob {0:?}: {1}")]
    Glob(String, String),
    #[error("unknown variable ${{{0}}}; known: {1}")]
    UnknownVariable(String, &'static str),
    #[error("template {0:?}: {1}")]
    Template(String, String),
    #[error("unknown device class {0:?}: expected mobile, tablet, desktop or bot")]
    UnknownDevice(String),
    #[error("invalid client range: {0}")]
    Cidr(String),
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    #[error("invalid time {0:?}: expected HH:MM (00:00 to 24:00)")]
    Time(String),
    #[error("unknown day {0:?}: expected mon, tue, wed, thu, fri, sat or sun")]
    Day(String),
    #[error("bucket range {0}..={1} must lie within 0..=99, low to high")]
    Bucket(u16, u16),
    #[error("status {0} is not an HTTP status code (100-999)")]
    Status(u32),
    #[error("{0:?} is not an HTTP method")]
    Method(String),
    #[error("invalid header name {0:?}")]
    HeaderName(String),
    #[error("invalid header value {0:?}")]
    HeaderValue(String),
    #[error("redirect status must be 301, 302, 307 or 308, not {0}")]
    RedirectStatus(u16),
    #[error("{0}")]
    Rule(String),
    #[error("invalid password hash for user {user:?}: {reason}")]
    PasswordHash { user: String, reason: String },
    #[error("invalid JWT key: {0}")]
    JwtKey(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
