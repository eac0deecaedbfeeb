//! The crate's error: everything the admin listener answers with a status, a JSON body and
//! perhaps a header.

use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::auth::{AuthError, Forbidden};
use crate::ratelimit::RateLimited;
use crate::request::RequestError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurgeApiError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
}

impl PurgeApiError {
    /// 400/413, 401, 403 or 429.
    pub fn status(&self) -> StatusCode {
        match self {
            PurgeApiError::Request(e) => e.status(),
            PurgeApiError::Auth(e) => e.status(),
            PurgeApiError::Forbidden(e) => e.status(),
            PurgeApiError::RateLimited(e) => e.status(),
        }
    }

    /// `{"error": "...", "field": "..."}` (`field` for request errors that have one).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            PurgeApiError::Request(e) => e.to_json(),
            _ => error_json(&self.to_string(), None),
        }
    }

    /// Headers the response must carry: `WWW-Authenticate` on 401, `Retry-After` on 429.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        match self {
            PurgeApiError::Auth(e) => vec![(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(e.www_authenticate()),
            )],
            PurgeApiError::RateLimited(e) => {
                vec![(RETRY_AFTER, HeaderValue::from(e.retry_after_secs()))]
            }
            PurgeApiError::Request(_) | PurgeApiError::Forbidden(_) => Vec::new(),
        }
    }
}

pub(crate) fn error_json(message: &str, field: Option<&str>) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    body.insert("error".to_owned(), message.into());
    if let Some(field) = field {
        body.insert("field".to_owned(), field.into());
    }
    serde_json::Value::Object(body)
}
