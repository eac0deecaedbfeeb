//! The request body of an HTTP/3 stream.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};

use super::BoxError;

/// The request body of an HTTP/3 stream, read straight from the QUIC receive stream: QUIC flow
/// control is the backpressure, nothing is queued in between. A `content-length` that the DATA
/// frames do not match makes the request malformed (RFC 9114 §4.1.2): the body fails instead
/// of being silently cut to the declared length, and `malformed` tells the listener to reset
/// the stream with H3_MESSAGE_ERROR.
pub struct H3RequestBody {
    recv: h3::server::RequestStream<h3_quinn::RecvStream, Bytes>,
    remaining: Option<u64>,
    done: bool,
    malformed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// DATA frames that disagree with the request's `content-length`.
#[derive(Debug, thiserror::Error)]
#[error("HTTP/3 request body does not match its content-length")]
pub struct H3LengthMismatch;

impl H3RequestBody {
    pub fn new(
        recv: h3::server::RequestStream<h3_quinn::RecvStream, Bytes>,
        content_length: Option<u64>,
        malformed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        H3RequestBody {
            recv,
            remaining: content_length,
            done: content_length == Some(0),
            malformed,
        }
    }

    fn mismatch(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.done = true;
        self.malformed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Poll::Ready(Some(Err(Box::new(H3LengthMismatch))))
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
                    match r.checked_sub(bytes.len() as u64) {
                        Some(left) => *r = left,
                        None => return self.mismatch(),
                    }
                }
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Ok(None) => {
                if self.remaining.is_some_and(|r| r > 0) {
                    return self.mismatch();
                }
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
