//! A client that moves bytes too slowly, either way: a request body that trickles in
//! (`MinRate`) or responses it takes too slowly (slow readers hold the edge's buffers and,
//! through them, an origin connection). Only time spent waiting on the client counts (a wait
//! on the origin is not the client's fault): once that waiting passes the grace period, the
//! client must have moved `min_rate` bytes per second of it. Pure, so that request bodies,
//! TCP connections (`Activity`) and HTTP/3 streams share one rule.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct RateRule {
    /// Bytes per second; 0: no minimum.
    pub min_rate: u64,
    pub grace: Duration,
    /// No single wait may last longer (`timeouts.client_send`).
    pub max_wait: Duration,
}

impl RateRule {
    /// For responses: `limits.client_min_send_rate` and `client_send_grace`, and no single
    /// wait longer than `timeouts.client_send`.
    pub fn for_responses(snap: &config::Snapshot) -> RateRule {
        RateRule {
            min_rate: snap.limits.client_min_send_rate,
            grace: snap.limits.client_send_grace,
            max_wait: snap.timeouts.client_send,
        }
    }

    /// For a request body: the site's minimum rate and grace; no cap on one wait.
    pub fn for_request_body(min_rate: u64, grace: Duration) -> RateRule {
        RateRule {
            min_rate,
            grace,
            max_wait: Duration::MAX,
        }
    }

    /// The waiting `bytes` taken so far buy: the grace, or more at the minimum rate.
    fn allowed(&self, bytes: u64) -> Duration {
        if self.min_rate == 0 {
            return Duration::MAX;
        }
        let earned = Duration::from_millis(bytes.saturating_mul(1000) / self.min_rate);
        self.grace.max(earned)
    }

    /// After `waited` in all on a client that took `bytes`: is it too slow?
    pub fn too_slow(&self, waited: Duration, bytes: u64) -> bool {
        waited > self.allowed(bytes)
    }

    /// How long the next wait may last, after `waited` in all for `bytes`.
    pub fn next_wait(&self, waited: Duration, bytes: u64) -> Duration {
        self.allowed(bytes)
            .saturating_sub(waited)
            .min(self.max_wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_rule_as_a_table() {
        let rule = RateRule {
            min_rate: 1000,
            grace: S(10),
            max_wait: S(60),
        };
        // (waited, bytes taken, too slow?)
        let cases = [
            (S(5), 0, false),           // within the grace, nothing taken yet
            (S(10), 0, false),          // the grace itself
            (S(11), 0, true),           // past it, nothing taken
            (S(11), 10_000, true),      // 10 kB bought 10 s: not 11
            (S(11), 11_000, false),     // 11 kB bought 11 s
            (S(100), 99_000, true),     // 990 B/s
            (S(100), 100_000, false),   // exactly the rate
            (S(100), 5_000_000, false), // a fast reader
        ];
        for (waited, bytes, slow) in cases {
            assert_eq!(rule.too_slow(waited, bytes), slow, "{waited:?} {bytes}");
        }
        let off = RateRule {
            min_rate: 0,
            ..rule
        };
        assert!(!off.too_slow(S(100_000), 0));
    }

    #[test]
    fn the_next_wait_is_what_is_left_capped_by_the_timeout() {
        let rule = RateRule {
            min_rate: 1000,
            grace: S(10),
            max_wait: S(60),
        };
        assert_eq!(rule.next_wait(S(0), 0), S(10));
        assert_eq!(rule.next_wait(S(4), 0), S(6));
        assert_eq!(rule.next_wait(S(4), 30_000), S(26));
        assert_eq!(rule.next_wait(S(0), 1_000_000), S(60));
        assert_eq!(rule.next_wait(S(20), 0), S(0));
        let off = RateRule {
            min_rate: 0,
            ..rule
        };
        assert_eq!(off.next_wait(S(1000), 0), S(60));
    }
}
