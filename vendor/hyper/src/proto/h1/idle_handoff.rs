//! PATCH (edge): when an idle HTTP/1.1 server connection is handed back to its caller
//! (`server::conn::http1::Builder::idle_handoff`): once it has stayed idle for `after`
//! (`Builder::idle_handoff_after`; at once without it). A busy connection keeps its buffers
//! and dispatcher from one request to the next; a quiet one still releases them. Whether the
//! connection *can* be handed off is `Conn::idle_handoff_ready`; this is only the quiet period.

use std::fmt;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use crate::common::time::Time;
use crate::rt::Sleep;

#[derive(Default)]
pub(crate) struct IdleHandoff {
    enabled: bool,
    after: Option<Duration>,
    /// One timer for the connection's life, reset once per idle stretch.
    sleep: Option<Pin<Box<dyn Sleep>>>,
    /// The timer runs for the current idle stretch.
    armed: bool,
}

impl IdleHandoff {
    pub(crate) fn enable(&mut self) {
        self.enabled = true;
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    pub(crate) fn set_after(&mut self, after: Duration) {
        self.after = Some(after);
    }

    /// The connection is (or just was) busy: the next idle stretch gets a full quiet period.
    pub(crate) fn busy(&mut self) {
        self.armed = false;
    }

    /// The connection is ready to hand off: whether it has now been for `after`. Arms the
    /// timer at the start of an idle stretch; it stays armed once fired, so a handoff whose
    /// flush is pending keeps its deadline.
    pub(crate) fn poll_quiet(&mut self, timer: &Time, cx: &mut Context<'_>) -> bool {
        let Some(after) = self.after else {
            return true;
        };
        if !self.armed {
            let deadline = timer.now() + after;
            self.armed = true;
            match &mut self.sleep {
                Some(sleep) => timer.reset(sleep, deadline),
                None => self.sleep = Some(timer.sleep_until(deadline)),
            }
        }
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().poll(cx).is_ready(),
            None => true,
        }
    }
}

impl fmt::Debug for IdleHandoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdleHandoff")
            .field("enabled", &self.enabled)
            .field("after", &self.after)
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}
