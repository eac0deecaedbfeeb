//! How a client's request body is read: a minimum rate, and settling whether there is one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::{BoxError, ProxyBody, RateRule, empty};

/// A request body that arrives slower than a site's minimum rate: answered with 408.
#[derive(Debug, thiserror::Error)]
#[error("request body slower than {min_rate} bytes/s after {grace:?} ({received} bytes received)")]
pub struct SlowBody {
    pub min_rate: u64,
    pub grace: std::time::Duration,
    pub received: u64,
}

/// Cuts a request body off when its average rate falls below `min_rate` bytes per second once
/// `grace` has passed. Only time spent waiting on the client counts: while the origin is slow
/// to take the body we do not poll, and that time is not the client's fault. A trickling
/// upload is cut early; a large honest one, however long, is not.
pub struct MinRate<B> {
    inner: B,
    rule: RateRule,
    received: u64,
    /// Time spent waiting on the client so far (excluding the wait in progress).
    waited: std::time::Duration,
    /// When the wait in progress began.
    waiting_since: Option<tokio::time::Instant>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> MinRate<B> {
    pub fn new(inner: B, min_rate: u64, grace: std::time::Duration) -> Self {
        MinRate {
            inner,
            rule: RateRule::for_request_body(min_rate, grace),
            received: 0,
            waited: std::time::Duration::ZERO,
            waiting_since: None,
            sleep: None,
        }
    }
}

impl<B> Body for MinRate<B>
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
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                if let Some(Ok(f)) = &frame
                    && let Some(d) = f.data_ref()
                {
                    this.received += d.len() as u64;
                }
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let now = edge_core::clock::now();
                let since = *this.waiting_since.get_or_insert(now);
                let wait = this.rule.next_wait(this.waited, this.received);
                // No minimum (never built so, but) means no deadline that could overflow.
                let deadline = since
                    .checked_add(wait)
                    .unwrap_or(since + std::time::Duration::from_secs(365 * 86_400));
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(SlowBody {
                        min_rate: this.rule.min_rate,
                        grace: this.rule.grace,
                        received: this.received,
                    })))),
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

/// A body whose first frame was already read (to learn whether there is a body at all).
struct Prepend {
    first: Option<Frame<Bytes>>,
    inner: ProxyBody,
    first_len: u64,
}

impl Body for Prepend {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(f) = self.first.take() {
            self.first_len = 0;
            return Poll::Ready(Some(Ok(f)));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        // Upper before lower: SizeHint refuses a lower bound above its upper one.
        if let Some(u) = inner.upper() {
            hint.set_upper(u + self.first_len);
        }
        hint.set_lower(inner.lower() + self.first_len);
        hint
    }
}

/// Why a request body could not be settled.
pub enum Unsettled {
    /// Nothing arrived in time.
    Timeout,
    Failed(BoxError),
}

/// Learns whether a request really has a body, reading at most its first frame within `wait`.
/// HTTP/2 and HTTP/3 only say "no body" by ending the stream, which may come after the head.
/// Returns the body to forward (empty when there was none, so the origin request gets no
/// chunked framing) and whether it carries data.
pub async fn settle(
    body: ProxyBody,
    wait: std::time::Duration,
) -> Result<(ProxyBody, bool), Unsettled> {
    if body.is_end_stream() {
        return Ok((body, false));
    }
    match body.size_hint().exact() {
        Some(0) => return Ok((empty(), false)),
        Some(_) => return Ok((body, true)),
        None => {}
    }
    read_first(body, wait).await
}

/// Reads the first frame that carries something within `wait` and puts it back in front.
pub async fn settle_first(
    body: ProxyBody,
    wait: std::time::Duration,
) -> Result<ProxyBody, Unsettled> {
    read_first(body, wait).await.map(|(b, _)| b)
}

async fn read_first(
    mut body: ProxyBody,
    wait: std::time::Duration,
) -> Result<(ProxyBody, bool), Unsettled> {
    let first = loop {
        match tokio::time::timeout(wait, body.frame()).await {
            Err(_) => return Err(Unsettled::Timeout),
            Ok(None) => return Ok((empty(), false)),
            Ok(Some(Err(e))) => return Err(Unsettled::Failed(e)),
            Ok(Some(Ok(f))) => {
                if f.data_ref().is_some_and(|d| d.is_empty()) {
                    continue;
                }
                break f;
            }
        }
    };
    let first_len = first.data_ref().map_or(0, |d| d.len() as u64);
    Ok((
        Prepend {
            first: Some(first),
            inner: body,
            first_len,
        }
        .boxed_unsync(),
        first_len > 0,
    ))
}
