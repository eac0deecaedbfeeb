//! A token bucket per API token. Time is passed in, so tests drive it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::StatusCode;

/// Most buckets kept. Token names come from config so there are few; the cap only bounds
/// memory if a caller ever keys on something else.
pub const DEFAULT_MAX_BUCKETS: usize = 10_000;

/// Longest `retry_after` given, for rates so low the exact wait would be absurd.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    max_buckets: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// `burst` requests at once, refilled at `per_second`. A `burst` of 0 counts as 1; a rate
    /// that is not a positive number never refills.
    pub fn new(per_second: f64, burst: u32) -> RateLimiter {
        RateLimiter {
            per_second: if per_second.is_finite() && per_second > 0.0 {
                per_second
            } else {
                0.0
            },
            burst: f64::from(burst.max(1)),
            max_buckets: DEFAULT_MAX_BUCKETS,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Caps the number of buckets (at least 1); the least recently used goes first.
    pub fn with_max_buckets(mut self, max_buckets: usize) -> RateLimiter {
        self.max_buckets = max_buckets.max(1);
        self
    }

    /// Takes one request from `token_name`'s bucket, or says how long until there is one.
    pub fn check(&self, token_name: &str, now: Instant) -> Result<(), RateLimited> {
        // A panic elsewhere cannot leave a bucket half-updated, so a poisoned lock is usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(token_name) && buckets.len() >= self.max_buckets {
            evict_oldest(&mut buckets);
        }
        let bucket = buckets.entry(token_name.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        // Instants from other threads may arrive slightly out of order: never refill backwards.
        let elapsed = now.saturating_duration_since(bucket.last);
        bucket.tokens = (bucket.tokens + elapsed.as_secs_f64() * self.per_second).min(self.burst);
        bucket.last = bucket.last.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = if self.per_second > 0.0 {
            Duration::try_from_secs_f64((1.0 - bucket.tokens) / self.per_second)
                .unwrap_or(MAX_RETRY_AFTER)
                .min(MAX_RETRY_AFTER)
        } else {
            MAX_RETRY_AFTER
        };
        Err(RateLimited { retry_after: wait })
    }

    /// Buckets held now.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// O(n), but only when the map is full and a new name arrives, which config makes rare.
fn evict_oldest(buckets: &mut HashMap<String, Bucket>) {
    let oldest = buckets
        .iter()
        .min_by_key(|(_, b)| b.last)
        .map(|(name, _)| name.clone());
    if let Some(name) = oldest {
        buckets.remove(&name);
    }
}

/// Too many requests: 429 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded: retry after {} s", self.retry_after_secs())]
pub struct RateLimited {
    pub retry_after: Duration,
}

impl RateLimited {
    /// Whole seconds for `Retry-After`: rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        let secs = if self.retry_after.subsec_nanos() > 0 {
            secs.saturating_add(1)
        } else {
            secs
        };
        secs.max(1)
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::TOO_MANY_REQUESTS
    }
}
