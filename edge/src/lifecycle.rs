//! Shutdown signalling and connection tracking shared by every listener.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

/// Resolves once shutdown has begun (or the sender is gone).
pub async fn shutting_down(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Counts open client connections so that shutdown can wait for them to drain.
#[derive(Clone, Default)]
pub struct Tracker(Arc<Inner>);

#[derive(Default)]
struct Inner {
    active: AtomicUsize,
    idle: Notify,
}

pub struct Guard(Tracker);

impl Tracker {
    pub fn enter(&self) -> Guard {
        self.0.active.fetch_add(1, Ordering::AcqRel);
        Guard(self.clone())
    }

    pub fn active(&self) -> usize {
        self.0.active.load(Ordering::Acquire)
    }

    pub async fn wait_idle(&self) {
        loop {
            let notified = self.0.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.0.idle.notify_waiters();
        }
    }
}
