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
//!
//! An HTTP/1.1 connection serves one request at a time, so it can do with one channel for its
//! whole life instead ([`InformationalSender::for_connection`], `Connection::informational`):
//! nothing is put in the request's extensions (whose map cost three allocations a request),
//! the server hands the sender to its service itself ([`InformationalSender::for_request`]),
//! and each request starts a new generation of the channel, so that a sender kept from an
//! earlier request reaches nobody.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// The request the channel serves now (a connection-wide channel; 0 for one request).
    generation: AtomicU64,
}

/// Sends 1xx interim responses ahead of the final one; taken from a request's extensions.
#[derive(Clone, Debug)]
pub struct InformationalSender {
    shared: Arc<Shared>,
    generation: u64,
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
            generation: 0,
        },
        InformationalReceiver { shared },
    )
}

impl InformationalSender {
    pub(crate) fn pair() -> (InformationalSender, InformationalReceiver) {
        informational_channel()
    }

    /// A channel for an HTTP/1.1 connection's whole life: give the connection a receiver
    /// (`Connection::informational`) and each request a [`for_request`](Self::for_request)
    /// sender.
    pub fn for_connection() -> InformationalSender {
        let shared = Arc::new(Shared::default());
        shared.closed.store(true, Ordering::Release);
        InformationalSender {
            shared,
            generation: 0,
        }
    }

    /// The sender for the request being served now (called by the service when the
    /// connection hands it the request): it reaches the client until that request's final
    /// response, and never once another request has begun.
    pub fn for_request(&self) -> InformationalSender {
        InformationalSender {
            shared: self.shared.clone(),
            generation: self.shared.generation.load(Ordering::Acquire),
        }
    }

    /// A receiver for a connection serving this channel's requests.
    pub fn receiver(&self) -> InformationalReceiver {
        InformationalReceiver {
            shared: self.shared.clone(),
        }
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
        {
            let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            // Checked under the lock a new request's `reopen` takes.
            if self.shared.generation.load(Ordering::Acquire) != self.generation
                || self.shared.closed.load(Ordering::Acquire)
            {
                return false;
            }
            queue.push_back(response);
        }
        self.shared.waker.wake();
        true
    }
}

impl InformationalReceiver {
    /// A connection-wide channel's next request begins: what is queued is dropped, and
    /// senders of earlier requests are cut off. `open` is false for a request that may not
    /// receive interim responses (HTTP/1.0).
    fn reopen(&self, open: bool) {
        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.clear();
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        self.shared.closed.store(!open, Ordering::Release);
    }

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

/// An HTTP/1.1 server connection's end of the 1xx channels: one per request, put in the
/// request's extensions (the default), or one for the connection's whole life, of which each
/// request opens a new generation (`Connection::informational`; the service hands each
/// request its sender itself).
#[cfg(feature = "http1")]
#[derive(Debug)]
pub(crate) enum ServerInformational {
    PerRequest(Option<InformationalReceiver>),
    Connection(InformationalReceiver),
}

#[cfg(feature = "http1")]
impl Default for ServerInformational {
    fn default() -> ServerInformational {
        ServerInformational::PerRequest(None)
    }
}

#[cfg(feature = "http1")]
impl ServerInformational {
    /// A request arrives: HTTP/1.1 ones may receive interim responses, HTTP/1.0 ones not
    /// (RFC 9110 §15.2).
    pub(crate) fn begin<B>(&mut self, req: &mut http::Request<B>) {
        let http11 = req.version() == http::Version::HTTP_11;
        match self {
            ServerInformational::Connection(rx) => rx.reopen(http11),
            ServerInformational::PerRequest(slot) => {
                *slot = None;
                if http11 {
                    let (tx, rx) = InformationalSender::pair();
                    req.extensions_mut().insert(tx);
                    *slot = Some(rx);
                }
            }
        }
    }

    /// The next interim response of the request in flight.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Response<()>>> {
        match self {
            ServerInformational::Connection(rx) | ServerInformational::PerRequest(Some(rx)) => {
                rx.poll_recv(cx)
            }
            ServerInformational::PerRequest(None) => Poll::Ready(None),
        }
    }
}
