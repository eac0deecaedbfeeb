//! Body types: everything in the data plane streams as `ProxyBody`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

pub use edge_core::body::{BoxError, ProxyBody, empty, full};

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
    min_rate: u64,
    grace: std::time::Duration,
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
            min_rate,
            grace,
            received: 0,
            waited: std::time::Duration::ZERO,
            waiting_since: None,
            sleep: None,
        }
    }

    /// How long the client may keep us waiting in all before it is too slow.
    fn allowance(&self) -> std::time::Duration {
        let earned =
            std::time::Duration::from_secs_f64(self.received as f64 / self.min_rate as f64);
        self.grace.max(earned)
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
                let deadline = since + this.allowance().saturating_sub(this.waited);
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(SlowBody {
                        min_rate: this.min_rate,
                        grace: this.grace,
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

/// Counts a connection's requests in flight, so that a connection with none for a while can
/// be closed (HTTP/2 and HTTP/3 keep connections open with pings, which say nothing about
/// whether a client still wants them).
pub struct Activity {
    active: std::sync::atomic::AtomicUsize,
    /// Requests the connection has carried.
    requests: std::sync::atomic::AtomicU64,
    /// Told when the connection reached its request cap, or its client resets too many
    /// requests: finish gracefully.
    retire: tokio::sync::Notify,
    /// Requests the client abandoned (stream reset) before their response head.
    premature: std::sync::atomic::AtomicU64,
    /// Already told to close for them (counted once).
    reset_retired: std::sync::atomic::AtomicBool,
    /// Milliseconds after `base` (plus one) since a response body handed its last chunk to
    /// the connection and was not asked for more: the connection is blocked on a client that
    /// does not read. 0: not blocked.
    blocked_since_ms: std::sync::atomic::AtomicU64,
    /// Milliseconds after `base` at which the last request finished.
    last_done_ms: std::sync::atomic::AtomicU64,
    base: tokio::time::Instant,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            active: Default::default(),
            requests: Default::default(),
            retire: tokio::sync::Notify::new(),
            premature: Default::default(),
            reset_retired: Default::default(),
            blocked_since_ms: Default::default(),
            last_done_ms: Default::default(),
            base: edge_core::clock::now(),
        }
    }
}

impl Activity {
    pub fn begin(self: &std::sync::Arc<Self>) -> ActiveGuard {
        self.active
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ActiveGuard(self.clone())
    }

    /// Counts a request; true when it is the connection's last (`cap` reached, 0: no cap).
    /// The connection is then told to finish gracefully ([`Activity::retired`]).
    pub fn count_request(&self, cap: u64) -> bool {
        let n = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let last = cap > 0 && n >= cap;
        if last {
            self.retire.notify_one();
        }
        last
    }

    /// A request that ends before its response head unless [`Answering::answered`] is called:
    /// counted as a premature reset when dropped unanswered. Past `min_requests` requests, a
    /// connection whose client reset more than half of them early is told to finish (what
    /// Envoy does against HTTP/2 rapid reset, CVE-2023-44487; h2's own budget only counts
    /// streams reset before they were accepted).
    pub fn answering(self: &std::sync::Arc<Self>) -> Answering {
        Answering(Some(self.clone()))
    }

    fn premature_reset(&self, min_requests: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let early = self.premature.fetch_add(1, Relaxed) + 1;
        let all = self.requests.load(Relaxed);
        if all >= min_requests && early * 2 > all && !self.reset_retired.swap(true, Relaxed) {
            crate::metrics::conns::CONNS.early_reset_close();
            self.retire.notify_one();
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Resolves once a response has waited `after` on a client that does not read it (a slow
    /// reader holds the edge's buffers and, through them, an origin connection). Checked a few
    /// times per period; one timer per connection.
    pub async fn send_stalled(&self, after: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        loop {
            tokio::time::sleep(after / 4).await;
            let since = self.blocked_since_ms.load(Relaxed);
            if since != 0 && self.now_ms().saturating_sub(since - 1) >= after_ms {
                return;
            }
        }
    }

    /// Resolves once the connection carried its last request.
    pub async fn retired(&self) {
        self.retire.notified().await;
    }

    /// Resolves once no request has been in flight for `after`.
    pub async fn idle(&self, after: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        loop {
            let last =
                self.base + std::time::Duration::from_millis(self.last_done_ms.load(Relaxed));
            let wake = last + after;
            if self.active.load(Relaxed) == 0 && edge_core::clock::now() >= wake {
                return;
            }
            // Busy: look again one idle period from now (one timer per connection, not per
            // request).
            let wake = wake.max(edge_core::clock::now() + after / 4);
            tokio::time::sleep_until(wake).await;
        }
    }
}

/// The streams a connection must carry before its early-reset share is judged (Envoy's
/// default).
pub const EARLY_RESET_MIN_REQUESTS: u64 = 500;

/// See [`Activity::answering`].
pub struct Answering(Option<std::sync::Arc<Activity>>);

impl Answering {
    /// The response head is ready: not a premature reset.
    pub fn answered(mut self) {
        self.0 = None;
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        if let Some(a) = self.0.take() {
            a.premature_reset(EARLY_RESET_MIN_REQUESTS);
        }
    }
}

/// A request in flight on a connection; dropped when its response body is done.
pub struct ActiveGuard(std::sync::Arc<Activity>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let ms = self.0.base.elapsed().as_millis();
        self.0
            .last_done_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Relaxed);
        self.0.active.fetch_sub(1, Relaxed);
    }
}

/// A response body that keeps its request counted as in flight until it is done.
pub struct Tracked {
    /// The body, and the request series told when it ends (one wrapper, no extra box).
    pub inner: crate::metrics::requests::Timed,
    pub _guard: ActiveGuard,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        use std::sync::atomic::Ordering::Relaxed;
        let activity = &self._guard.0;
        // Asked again: whatever was handed over went out.
        activity.blocked_since_ms.store(0, Relaxed);
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && frame.is_data()
            && !self.inner.is_end_stream()
        {
            let activity = &self._guard.0;
            activity
                .blocked_since_ms
                .store(activity.now_ms().saturating_add(1), Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self._guard
            .0
            .blocked_since_ms
            .store(0, std::sync::atomic::Ordering::Relaxed);
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
