//! A connection's activity: requests in flight (idle close), its request cap, early resets
//! (rapid reset), responses blocked on a client that does not read; and [`Tracked`], the
//! response body that keeps its request counted.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::BoxError;

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
    /// Milliseconds spent blocked so far (ended blocks), and the bytes the client took.
    waited_ms: std::sync::atomic::AtomicU64,
    taken_bytes: std::sync::atomic::AtomicU64,
    /// Milliseconds after `base` at which the last request finished.
    last_done_ms: std::sync::atomic::AtomicU64,
    base: tokio::time::Instant,
    /// Requests a connection must carry before its early-reset share is judged.
    early_reset_min: u64,
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
            waited_ms: Default::default(),
            taken_bytes: Default::default(),
            last_done_ms: Default::default(),
            base: edge_core::clock::now(),
            early_reset_min: EARLY_RESET_MIN_REQUESTS,
        }
    }
}

impl Activity {
    /// An activity whose early-reset rule judges after `min` requests (`limits.early_reset_min_streams`).
    pub fn with_early_reset_min(min: u64) -> Activity {
        Activity {
            early_reset_min: min.max(1),
            ..Activity::default()
        }
    }

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

    /// Resolves once a response has waited `rule.max_wait` on a client that does not read
    /// it, or the client takes its responses below the rule's minimum rate (a slow reader
    /// holds the edge's buffers and, through them, an origin connection). Checked a few times
    /// per period; one timer per connection.
    pub async fn send_stalled(&self, rule: super::RateRule) -> Stalled {
        use std::sync::atomic::Ordering::Relaxed;
        use std::time::Duration;
        let mut period = rule.max_wait;
        if rule.min_rate > 0 {
            period = period.min(rule.grace);
        }
        let tick = (period / 4).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(tick).await;
            let since = self.blocked_since_ms.load(Relaxed);
            let now = self.now_ms();
            let current = if since == 0 {
                0
            } else {
                now.saturating_sub(since - 1)
            };
            if Duration::from_millis(current) >= rule.max_wait {
                return Stalled::Timeout;
            }
            let waited = Duration::from_millis(self.waited_ms.load(Relaxed) + current);
            if rule.too_slow(waited, self.taken_bytes.load(Relaxed)) {
                return Stalled::TooSlow;
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

/// Why a connection was found stuck on its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stalled {
    /// One response waited `timeouts.client_send`.
    Timeout,
    /// Below `limits.client_min_send_rate`.
    TooSlow,
}

/// The streams a connection must carry before its early-reset share is judged, when no config
/// says (Envoy's default, and `limits.early_reset_min_streams`'s).
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
            let min = a.early_reset_min;
            a.premature_reset(min);
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
        let since = activity.blocked_since_ms.swap(0, Relaxed);
        if since != 0 {
            let waited = activity.now_ms().saturating_sub(since - 1);
            activity.waited_ms.fetch_add(waited, Relaxed);
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let activity = &self._guard.0;
            activity.taken_bytes.fetch_add(data.len() as u64, Relaxed);
            if !self.inner.is_end_stream() {
                activity
                    .blocked_since_ms
                    .store(activity.now_ms().saturating_add(1), Relaxed);
            }
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
