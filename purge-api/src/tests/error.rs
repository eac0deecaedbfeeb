//! The crate error: status, JSON body and headers for each cause.

use std::time::Duration;

use http::StatusCode;
use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use serde_json::json;

use crate::auth::{AuthError, Forbidden};
use crate::error::PurgeApiError;
use crate::ratelimit::RateLimited;
use crate::request::{Kind, RequestError};

#[test]
fn status_body_and_headers() {
    let bad = RequestError::Empty {
        field: "urls".into(),
    };
    let cases: Vec<(
        PurgeApiError,
        StatusCode,
        serde_json::Value,
        Option<(_, &str)>,
    )> = vec![
        (
            bad.clone().into(),
            StatusCode::BAD_REQUEST,
            json!({"error": "urls: must not be empty", "field": "urls"}),
            None,
        ),
        (
            RequestError::TooLarge { limit: 10 }.into(),
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"error": "request body is larger than 10 bytes"}),
            None,
        ),
        (
            AuthError::Missing.into(),
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing `Authorization: Bearer` token"}),
            Some((WWW_AUTHENTICATE, "Bearer realm=\"edge-admin\"")),
        ),
        (
            Forbidden::Kind {
                token: "t".into(),
                kind: Kind::Host,
            }
            .into(),
            StatusCode::FORBIDDEN,
            json!({"error": "token `t` may not purge by host"}),
            None,
        ),
        (
            RateLimited {
                retry_after: Duration::from_millis(1500),
            }
            .into(),
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": "rate limit exceeded: retry after 2 s"}),
            Some((RETRY_AFTER, "2")),
        ),
    ];
    for (err, status, body, header) in cases {
        assert_eq!(err.status(), status, "{err}");
        assert_eq!(err.to_json(), body, "{err}");
        let headers = err.headers();
        match header {
            Some((name, value)) => {
                assert_eq!(headers.len(), 1, "{err}");
                assert_eq!(headers[0].0, name, "{err}");
                assert_eq!(headers[0].1, value, "{err}");
            }
            None => assert!(headers.is_empty(), "{err}"),
        }
    }
}
