//! Body types: everything in the data plane streams as `ProxyBody`. Here: origin bodies (with
//! their idle timeout), multipart concatenation; `h3` the HTTP/3 request body, `request` the
//! rules a client's request body is read by, `activity` a connection's requests and the
//! response body that keeps them counted.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

pub use edge_core::body::{BoxError, ProxyBody, empty, full};

mod activity;
mod h3;
mod rate;
mod request;

pub use activity::{ActiveGuard, Activity, Answering, EARLY_RESET_MIN_REQUESTS, Stalled, Tracked};
pub use h3::{H3LengthMismatch, H3RequestBody};
pub use rate::RateRule;
pub use request::{MinRate, SlowBody, Unsettled, settle, settle_first};

pub fn incoming(b: hyper::body::Incoming) -> ProxyBody {
    // Most requests have no body: an empty body boxes a zero-sized type, no allocation.
    if b.is_end_stream() {
        return empty();
    }
    b.map_err(|e| Box::new(e) as BoxError).boxed_unsync()
}

/// An origin body, aborted when the origin sends nothing for `idle` while we wait for it.
pub fn origin_incoming(b: hyper::body::Incoming, idle: std::time::Duration) -> ProxyBody {
    IdleTimeout {
        inner: b.map_err(|e| Box::new(e) as BoxError),
        idle,
        sleep: None,
        waiting: false,
    }
    .boxed_unsync()
}

/// Counts only time spent waiting on the inner body: a client that reads slowly (so that we do
/// not poll) does not make a healthy origin look idle. The timer is only created and armed
/// when the origin actually makes us wait: a body that is ready at once costs no timer.
struct IdleTimeout<B> {
    inner: B,
    idle: std::time::Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The timer is armed for the current wait.
    waiting: bool,
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let deadline = edge_core::clock::now() + this.idle;
                let sleep = match &mut this.sleep {
                    Some(s) => {
                        if !this.waiting {
                            s.as_mut().reset(deadline);
                        }
                        s
                    }
                    None => this
                        .sleep
                        .insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                this.waiting = true;
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        let msg = format!(
                            "origin sent nothing for {:?} (timeouts.origin_body_idle)",
                            this.idle
                        );
                        tracing::warn!("{msg}; aborting the response");
                        Poll::Ready(Some(Err(msg.into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error for a client body that failed before anything went to the origin.
pub fn client_body_error(e: BoxError, max_body: u64) -> crate::Error {
    if e.downcast_ref::<http_body_util::LengthLimitError>()
        .is_some()
    {
        crate::Error::BodyTooLarge { limit: max_body }
    } else if e.downcast_ref::<SlowBody>().is_some() {
        crate::Error::RequestTimeout
    } else {
        crate::Error::BadRequest("the request body could not be read")
    }
}

/// Bodies one after another (the parts of a multipart response).
pub fn concat(parts: Vec<ProxyBody>) -> ProxyBody {
    Concat {
        parts: parts.into(),
    }
    .boxed_unsync()
}

struct Concat {
    parts: std::collections::VecDeque<ProxyBody>,
}

impl Body for Concat {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        while let Some(first) = self.parts.front_mut() {
            match ready!(Pin::new(first).poll_frame(cx)) {
                Some(frame) => return Poll::Ready(Some(frame)),
                None => {
                    self.parts.pop_front();
                }
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.parts.iter().all(|p| p.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = SizeHint::new();
        let (mut lower, mut upper) = (0u64, Some(0u64));
        for p in &self.parts {
            let h = p.size_hint();
            lower += h.lower();
            upper = upper.zip(h.upper()).map(|(a, b)| a + b);
        }
        if let Some(u) = upper {
            hint.set_upper(u);
        }
        hint.set_lower(lower);
        hint
    }
}
