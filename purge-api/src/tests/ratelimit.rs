//! The token bucket, over simulated time.

use std::time::Duration;

use http::StatusCode;

use crate::ratelimit::{RateLimited, RateLimiter};

#[test]
fn burst_then_refusal_then_refill() {
    let base = super::base();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let limiter = RateLimiter::new(2.0, 3);
    for _ in 0..3 {
        assert_eq!(limiter.check("ops", at(0)), Ok(()));
    }
    let refused = limiter.check("ops", at(0)).unwrap_err();
    assert_eq!(refused.retry_after, Duration::from_millis(500));
    assert_eq!(refused.retry_after_secs(), 1);
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // Other tokens have their own bucket.
    assert_eq!(limiter.check("shop", at(0)), Ok(()));
    // Half a token after 250 ms: still refused, 250 ms to go.
    let refused = limiter.check("ops", at(250)).unwrap_err();
    assert_eq!(refused.retry_after, Duration::from_millis(250));
    assert_eq!(limiter.check("ops", at(500)), Ok(()));
    assert!(limiter.check("ops", at(500)).is_err());
    // A long pause refills to the burst, not beyond.
    for _ in 0..3 {
        assert_eq!(limiter.check("ops", at(60_000)), Ok(()));
    }
    assert!(limiter.check("ops", at(60_000)).is_err());
    // An earlier instant (another thread's) does not refill or panic.
    assert!(limiter.check("ops", at(10)).is_err());
}

#[test]
fn slow_rates_and_odd_settings() {
    let base = super::base();
    let limiter = RateLimiter::new(0.1, 1);
    assert_eq!(limiter.check("a", base), Ok(()));
    let refused = limiter.check("a", base).unwrap_err();
    assert_eq!(refused.retry_after_secs(), 10);
    for (per_second, burst) in [(0.0, 0), (f64::NAN, 1), (-1.0, 1), (f64::INFINITY, 1)] {
        let limiter = RateLimiter::new(per_second, burst);
        assert_eq!(limiter.check("a", base), Ok(()), "{per_second} {burst}");
        let refused = limiter
            .check("a", base + Duration::from_secs(100))
            .unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(3600));
    }
}

#[test]
fn retry_after_rounds_up() {
    let cases = [
        (0, 1),
        (1, 1),
        (999_999_999, 1),
        (1_000_000_000, 1),
        (1_000_000_001, 2),
        (4_500_000_000, 5),
    ];
    for (nanos, secs) in cases {
        let limited = RateLimited {
            retry_after: Duration::from_nanos(nanos),
        };
        assert_eq!(limited.retry_after_secs(), secs, "{nanos}");
    }
}

#[test]
fn buckets_are_bounded() {
    let base = super::base();
    let limiter = RateLimiter::new(1.0, 1).with_max_buckets(3);
    for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let now = base + Duration::from_secs(i as u64);
        assert_eq!(limiter.check(name, now), Ok(()));
    }
    assert_eq!(limiter.len(), 3);
    // "a" was the oldest and went: it starts again with a full bucket. "d" is still empty.
    let now = base + Duration::from_millis(3500);
    assert_eq!(limiter.check("a", now), Ok(()));
    assert!(limiter.check("d", now).is_err());
    assert_eq!(limiter.len(), 3);
}
