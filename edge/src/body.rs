//! Body types: everything in the data plane streams as `ProxyBody`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};

pub use origin_shield::{BoxError, ProxyBody};

pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub fn incoming(b: hyper::body::Incoming) -> ProxyBody {
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
                let deadline = tokio::time::Instant::now() + this.idle;
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

/// The request body of an HTTP/3 stream, read straight from the QUIC receive stream: QUIC flow
/// control is the backpressure, nothing is queued in between.
pub struct H3RequestBody {
    recv: h3::server::RequestStream<h3_quinn::RecvStream, Bytes>,
    remaining: Option<u64>,
    done: bool,
}

impl H3RequestBody {
    pub fn new(
        recv: h3::server::RequestStream<h3_quinn::RecvStream, Bytes>,
        content_length: Option<u64>,
    ) -> Self {
        H3RequestBody {
            recv,
            remaining: content_length,
            done: content_length == Some(0),
        }
    }
}

impl Body for H3RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let polled = ready!(self.recv.poll_recv_data(cx));
        match polled {
            Ok(Some(mut buf)) => {
                let bytes = buf.copy_to_bytes(buf.remaining());
                if let Some(r) = self.remaining.as_mut() {
                    *r = r.saturating_sub(bytes.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Ok(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Err(e) => {
                self.done = true;
                Poll::Ready(Some(Err(Box::new(e))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
