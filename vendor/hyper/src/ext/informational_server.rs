//! PATCH (edge): sending 1xx interim responses from a server.
//!
//! A `Service` returns one final response, so hyper had no way to send `103 Early Hints` (or
//! any 1xx) before it. For HTTP/1.1 and HTTP/2 requests the server connection now puts an
//! [`InformationalSender`] in the request's extensions; what is sent through it is written
//! before the final response. Not given to HTTP/1.0 requests (RFC 9110 §15.2: no 1xx to
//! 1.0 clients).
//!
//! One small allocation per request: a queue under a lock and a waker (a tokio channel
//! allocates a block of 32 slots up front, which cost HTTP/2 hits a fifth of their rate).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use http::Response;

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<VecDeque<Response<()>>>,
    waker: AtomicWaker,
    /// The receiver is gone: the final response has been sent (or the exchange ended).
    closed: AtomicBool,
}

/// Sends 1xx interim responses ahead of the final one; taken from a request's extensions.
#[derive(Clone, Debug)]
pub struct InformationalSender {
    shared: Arc<Shared>,
}

/// The connection's end of an [`InformationalSender`].
#[derive(Debug)]
pub struct InformationalReceiver {
    shared: Arc<Shared>,
}

/// A connected pair, for servers outside hyper (an HTTP/3 stream) that want the same type.
pub fn informational_channel() -> (InformationalSender, InformationalReceiver) {
    let shared = Arc::new(Shared::default());
    (
        InformationalSender {
            shared: shared.clone(),
        },
        InformationalReceiver { shared },
    )
}

impl InformationalSender {
    pub(crate) fn pair() -> (InformationalSender, InformationalReceiver) {
        informational_channel()
    }

    /// Queues an interim response. False, and nothing is sent, when the status is not 1xx
    /// (or is `101`, which only an upgrade may send) or when the exchange is over; interim
    /// responses queued after the final response has gone are dropped.
    pub fn send(&self, response: Response<()>) -> bool {
        let status = response.status();
        if !status.is_informational() || status == http::StatusCode::SWITCHING_PROTOCOLS {
            return false;
        }
        if self.shared.closed.load(Ordering::Acquire) {
            return false;
        }
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(response);
        self.shared.waker.wake();
        true
    }
}

impl InformationalReceiver {
    /// The next queued interim response; `Ready(None)` once every sender is gone and the
    /// queue is empty.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Response<()>>> {
        if let Some(r) = self.try_recv() {
            return Poll::Ready(Some(r));
        }
        self.shared.waker.register(cx.waker());
        if let Some(r) = self.try_recv() {
            return Poll::Ready(Some(r));
        }
        if Arc::strong_count(&self.shared) == 1 {
            return Poll::Ready(None);
        }
        Poll::Pending
    }

    /// The next queued interim response, if any.
    pub fn try_recv(&mut self) -> Option<Response<()>> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    /// Waits for the next interim response; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Response<()>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl Drop for InformationalReceiver {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}
