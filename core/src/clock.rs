//! The one place that reads clocks (clippy's `disallowed-methods` keeps it that way). Time is
//! tokio's: under `tokio::time::pause` a test drives it, wall-clock time included, so decisions
//! that depend on time are tested on a simulated clock.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use tokio::time::Instant;

/// Wall-clock time and the monotonic instant it was read at, once per process: later
/// wall-clock readings are this plus monotonic time elapsed, so they never go backwards and
/// follow a paused test clock.
struct Anchor {
    wall: SystemTime,
    mono: Instant,
}

fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(|| Anchor {
        #[allow(clippy::disallowed_methods)]
        wall: SystemTime::now(),
        #[allow(clippy::disallowed_methods)]
        mono: Instant::now(),
    })
}

/// Monotonic time, for timeouts, durations and ejection windows.
pub fn now() -> Instant {
    // Anchor first: a wall-clock reading taken later must not predate it.
    anchor();
    #[allow(clippy::disallowed_methods)]
    Instant::now()
}

/// Wall-clock time, for `Date`, `Age` and the freshness rules.
pub fn wall() -> SystemTime {
    let a = anchor();
    a.wall + now().saturating_duration_since(a.mono)
}

/// Milliseconds since the Unix epoch (stamps on disk).
pub fn unix_ms() -> u64 {
    wall()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Nanoseconds since the Unix epoch (seeds).
pub fn unix_nanos() -> u64 {
    wall()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Monotonic milliseconds since this process first read the clock (compact stamps that can
/// live in an atomic, such as ejection deadlines).
pub fn monotonic_ms() -> u64 {
    let a = anchor();
    u64::try_from(now().saturating_duration_since(a.mono).as_millis()).unwrap_or(u64::MAX)
}

/// Nanoseconds on the monotonic clock since the process's anchor (rate limiters' time).
pub fn monotonic_ns() -> u64 {
    let a = anchor();
    u64::try_from(now().saturating_duration_since(a.mono).as_nanos()).unwrap_or(u64::MAX)
}

/// How long since `earlier`, never negative.
pub fn since(earlier: Instant) -> Duration {
    now().saturating_duration_since(earlier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wall_time_follows_the_paused_test_clock() {
        let w0 = wall();
        let m0 = now();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(since(m0), Duration::from_secs(3600));
        let elapsed = wall().duration_since(w0).expect("forward");
        assert_eq!(elapsed.as_secs(), 3600);
    }
}
