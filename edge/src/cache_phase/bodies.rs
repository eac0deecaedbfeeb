//! The body types of the cache phase: a disk object streamed and verified, an origin (or
//! encoder) body teed into the store, and an in-flight object read by collapsed requests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use cache::CacheError;
use cache::collapse::{Leader, Outcome};
use cache::inflight::Inflight;
use cache::store::Fill;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, ReadBuf};

use crate::body::{BoxError, ProxyBody};

/// A response read from an in-flight object.
pub(super) fn streamed_response(
    inflight: Arc<Inflight>,
    rt: &crate::state::Runtime,
) -> Response<ProxyBody> {
    let mut headers = inflight.headers.clone();
    rt.append_via(&mut headers);
    let status = inflight.status;
    let stream = futures_util::stream::unfold(Some((inflight, 0usize)), |state| async move {
        let (inflight, i) = state?;
        match inflight.chunk(i).await {
            Ok(Some(chunk)) => Some((Ok(Frame::data(chunk)), Some((inflight, i + 1)))),
            Ok(None) => None,
            Err(e) => Some((Err(BoxError::from(e)), None)),
        }
    });
    let mut resp = Response::new(http_body_util::StreamBody::new(stream).boxed_unsync());
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// Streams a disk object; a full read is verified against its integrity hash before its last
/// chunk goes out, and a mismatch aborts the response instead of completing it (an HTTP/1.1
/// server stops polling once the declared length is written, so a check after the last byte
/// never ran for HTTP/1.1 clients).
pub(super) struct DiskBody {
    reader: Option<cache::DiskReader>,
    skip: u64,
    remaining: u64,
    verify: bool,
    buf: Vec<u8>,
    /// The last chunk, held until the check passes.
    held: Option<Bytes>,
}

impl DiskBody {
    /// `remaining` bytes from `skip`; `verify`: the read covers the whole object, so its hash
    /// is checked at the end.
    pub(super) fn new(reader: cache::DiskReader, skip: u64, remaining: u64, verify: bool) -> Self {
        // Small objects need a small buffer: this is allocated per disk hit.
        let cap = usize::try_from(skip + remaining)
            .unwrap_or(usize::MAX)
            .clamp(1, 64 * 1024);
        DiskBody {
            reader: Some(reader),
            skip,
            remaining,
            verify,
            buf: vec![0; cap],
            held: None,
        }
    }
}

impl Body for DiskBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.remaining == 0 {
                if let Some(reader) = this.reader.take()
                    && this.verify
                {
                    // Read to the end of the content so that the hash covers all of it.
                    let mut tail = [0u8; 1];
                    let mut rb = ReadBuf::new(&mut tail);
                    let mut reader = reader;
                    match Pin::new(&mut reader).poll_read(cx, &mut rb) {
                        Poll::Pending => {
                            this.reader = Some(reader);
                            return Poll::Pending;
                        }
                        Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                            if let Err(e) = reader.check() {
                                return Poll::Ready(Some(Err(Box::new(e))));
                            }
                        }
                        Poll::Ready(Ok(())) => {
                            return Poll::Ready(Some(Err(
                                "stored body is longer than recorded".into()
                            )));
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(Box::new(e)))),
                    }
                }
                return Poll::Ready(this.held.take().map(|d| Ok(Frame::data(d))));
            }
            let Some(reader) = this.reader.as_mut() else {
                return Poll::Ready(None);
            };
            let want = usize::try_from(this.skip + this.remaining)
                .unwrap_or(usize::MAX)
                .min(this.buf.len());
            let mut rb = ReadBuf::new(&mut this.buf[..want]);
            ready!(Pin::new(reader).poll_read(cx, &mut rb))?;
            let filled = rb.filled();
            if filled.is_empty() {
                return Poll::Ready(Some(Err("stored body is shorter than recorded".into())));
            }
            let skip = usize::try_from(this.skip)
                .unwrap_or(usize::MAX)
                .min(filled.len());
            this.skip -= skip as u64;
            let data = &filled[skip..];
            if data.is_empty() {
                continue;
            }
            let take = data
                .len()
                .min(usize::try_from(this.remaining).unwrap_or(usize::MAX));
            this.remaining -= take as u64;
            let chunk = Bytes::copy_from_slice(&data[..take]);
            if this.remaining == 0 && this.verify {
                this.held = Some(chunk);
                continue;
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining + self.held.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// A step of storing: a chunk pushed into the fill (which comes back), or the fill finished.
enum Stepped {
    Pushed(Box<Fill>, Result<(), CacheError>),
    Finished,
}

type Step = Pin<Box<dyn Future<Output = Stepped> + Send>>;

/// Passes an origin body to the client while filling the store. The store only sees the object
/// if the body ends cleanly; an error or a client that goes away abandons the fill. The last
/// bytes reach the client only once the object is published, so the client's next request
/// finds it.
pub(super) struct TeeBody {
    inner: ProxyBody,
    fill: Option<Box<Fill>>,
    leader: Option<Leader>,
    pending: Option<Step>,
    held: Option<Bytes>,
    /// The fill was finished (or given up): what remains is passing bytes on.
    done: bool,
}

impl TeeBody {
    pub(super) fn new(inner: ProxyBody, fill: Fill, leader: Option<Leader>) -> Self {
        TeeBody {
            inner,
            fill: Some(Box::new(fill)),
            leader,
            pending: None,
            held: None,
            done: false,
        }
    }

    /// Publishes the object, then releases the followers.
    async fn finishing(fill: Box<Fill>, leader: Option<Leader>) -> Stepped {
        let outcome = match fill.finish().await {
            Ok(()) => Outcome::Stored,
            Err(e) => {
                tracing::info!(error = %e, "response not stored");
                Outcome::Failed
            }
        };
        if let Some(l) = leader {
            l.complete(outcome);
        }
        Stepped::Finished
    }
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(fut) = this.pending.as_mut() {
                let stepped = ready!(fut.as_mut().poll(cx));
                this.pending = None;
                match stepped {
                    // Some servers stop polling once the declared length is written: a body
                    // that knows it is complete finishes the fill before its last bytes go.
                    // So does one whose declared length has arrived (an HTTP/2 origin may end
                    // the stream in a later frame).
                    Stepped::Pushed(fill, Ok(()))
                        if this.inner.is_end_stream() || fill.is_complete() =>
                    {
                        let leader = this.leader.take();
                        this.pending = Some(Box::pin(Self::finishing(fill, leader)));
                        continue;
                    }
                    Stepped::Pushed(fill, Ok(())) => this.fill = Some(fill),
                    Stepped::Pushed(_, Err(e)) => {
                        tracing::debug!(error = %e, "not storing this response");
                        this.leader = None;
                        this.done = true;
                    }
                    Stepped::Finished => this.done = true,
                }
                if let Some(data) = this.held.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                if this.done && this.fill.is_none() && this.inner.is_end_stream() {
                    return Poll::Ready(None);
                }
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let frame = match frame.into_data() {
                        Ok(data) => {
                            if let Some(mut fill) = this.fill.take() {
                                let chunk = data.clone();
                                this.pending = Some(Box::pin(async move {
                                    let r = fill.push(chunk).await;
                                    Stepped::Pushed(fill, r)
                                }));
                                this.held = Some(data);
                                continue;
                            }
                            Frame::data(data)
                        }
                        Err(frame) => frame,
                    };
                    return Poll::Ready(Some(Ok(frame)));
                }
                Some(Err(e)) => {
                    this.fill = None;
                    this.leader = None;
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    if let Some(fill) = this.fill.take() {
                        let leader = this.leader.take();
                        this.pending = Some(Box::pin(Self::finishing(fill, leader)));
                        continue;
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // While a fill is open, the final poll (which returns None) must still happen: that is
        // where the fill is finished. Servers stop polling a body that says it has ended.
        self.fill.is_none()
            && self.held.is_none()
            && self.pending.is_none()
            && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        if let Some(h) = &self.held {
            let n = h.len() as u64;
            hint.set_lower(hint.lower() + n);
            if let Some(u) = hint.upper() {
                hint.set_upper(u + n);
            }
        }
        hint
    }
}

/// The client's ranges cut out of a whole representation as it streams by: one range as it is,
/// several as a multipart/byteranges body (preambles and closing from the planner). Bytes
/// before, between and after the ranges are skipped; once the last range is out the rest of
/// the representation is not waited for.
pub(super) struct RangesOf {
    inner: ProxyBody,
    /// Offset of the next byte the inner body yields.
    pos: u64,
    /// (preamble, first byte, last byte), in order.
    parts: std::collections::VecDeque<(Option<Bytes>, u64, u64)>,
    closing: Option<Bytes>,
}

impl RangesOf {
    pub(super) fn single(inner: ProxyBody, start: u64, len: u64) -> Self {
        RangesOf {
            inner,
            pos: 0,
            parts: [(None, start, start + len.max(1) - 1)].into(),
            closing: None,
        }
    }

    pub(super) fn multipart(
        inner: ProxyBody,
        parts: Vec<cache::plan::MultipartPart>,
        closing: String,
    ) -> Self {
        RangesOf {
            inner,
            pos: 0,
            parts: parts
                .into_iter()
                .map(|p| (Some(Bytes::from(p.preamble)), p.start, p.end))
                .collect(),
            closing: Some(Bytes::from(closing)),
        }
    }
}

impl Body for RangesOf {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some((preamble, start, end)) = this.parts.front_mut() else {
                return Poll::Ready(this.closing.take().map(|c| Ok(Frame::data(c))));
            };
            if let Some(p) = preamble.take() {
                return Poll::Ready(Some(Ok(Frame::data(p))));
            }
            let (start, end) = (*start, *end);
            let data = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(d) => d,
                    Err(_) => continue,
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    return Poll::Ready(Some(Err(
                        "the representation ended before the requested range".into(),
                    )));
                }
            };
            let chunk_start = this.pos;
            this.pos += data.len() as u64;
            // The part of this chunk inside [start, end], if any.
            let from = start.max(chunk_start);
            let to = (end + 1).min(this.pos);
            if from >= to {
                if chunk_start > end {
                    this.parts.pop_front();
                }
                continue;
            }
            let piece = data.slice(
                usize::try_from(from - chunk_start).unwrap_or(0)
                    ..usize::try_from(to - chunk_start).unwrap_or(data.len()),
            );
            if to > end {
                this.parts.pop_front();
                // The chunk may hold the next part's bytes too: keep what follows.
                let rest = data.slice(usize::try_from(to - chunk_start).unwrap_or(data.len())..);
                if !rest.is_empty() {
                    this.pos = to;
                    this.inner = Prefixed::boxed(
                        rest,
                        std::mem::replace(&mut this.inner, crate::body::empty()),
                    );
                }
            }
            return Poll::Ready(Some(Ok(Frame::data(piece))));
        }
    }
}

/// A body with some bytes put back in front of it.
struct Prefixed {
    first: Option<Bytes>,
    rest: ProxyBody,
}

impl Prefixed {
    fn boxed(first: Bytes, rest: ProxyBody) -> ProxyBody {
        Prefixed {
            first: Some(first),
            rest,
        }
        .boxed_unsync()
    }
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(f) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(f))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }
}
