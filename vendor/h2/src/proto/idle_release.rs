//! PATCH (edge): this module is not upstream h2's. It decides when an HTTP/2 connection
//! gives back the memory it holds while idle (read, write and HPACK scratch buffers, empty
//! stream slabs: `Codec::release_idle_buffers`, `Streams::release_if_idle`); the connection's
//! poll loop (`connection.rs`, marked `PATCH (edge)`) asks it each time it waits.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

/// PATCH (edge): how long a connection has no streams before it frees its idle buffers.
/// Freeing them at every idle moment cost a busy connection 6 to 7.5 allocations and 4-5 %
/// more instructions per request (they came back with the next frame); a connection quiet
/// this long is one whose memory is worth having back. Short against keep-alive timeouts
/// (minutes) and against a browser's pause between page loads.
const RELEASE_AFTER: Duration = Duration::from_millis(250);

/// PATCH (edge): a timer started when the connection goes from busy to idle (no streams,
/// everything flushed). Moving a deadline that has not fired later takes no lock in tokio's
/// timer wheel (`TimerEntry::reset` extends in place), so a busy connection pays a clock read
/// per request, not an allocation; after an idle gap that released, the next reset
/// re-registers the timer once (the wheel's lock).
#[derive(Debug, Default)]
pub(super) struct IdleRelease {
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    idle: bool,
}

impl IdleRelease {
    /// Called each time the connection waits with no streams: whether it has waited so since
    /// at least `RELEASE_AFTER` ago. Registers the task's waker for that moment.
    pub(super) fn poll_quiet(&mut self, cx: &mut Context) -> bool {
        if !self.idle {
            self.idle = true;
            let deadline = tokio::time::Instant::now() + RELEASE_AFTER;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        self.timer
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready())
    }

    pub(super) fn busy(&mut self) {
        self.idle = false;
    }
}
