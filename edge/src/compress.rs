//! The compress phase: content negotiation on responses, streaming gzip/br/zstd encoding, and
//! decoding for clients that cannot read what the origin sent.
//!
//! The decisions (which coding, which media types) are pure functions in `cache::encoding`;
//! this module wraps bodies. Cached responses pick their stored encoded variant in
//! `cache_phase`; everything else is compressed here per request at the fast levels.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_compression::Level;
use async_compression::tokio::write::{
    BrotliDecoder, BrotliEncoder, GzipDecoder, GzipEncoder, ZstdDecoder, ZstdEncoder,
};
use bytes::Bytes;
use cache::encoding::{self, AcceptEncoding, Coding};
use http::header::{self, HeaderMap};
use http::{Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::AsyncWrite;

use crate::body::{BoxError, ProxyBody};
use crate::metrics::{METRICS, Made};

/// What the compress phase needs to know about the request, taken before its headers move on.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    pub accept: AcceptEncoding,
    pub head: bool,
    pub range: bool,
    /// Set by the cache phase once it has chosen the response's representation.
    pub settled: Settled,
}

impl RequestFacts {
    pub fn new(method: &Method, headers: &HeaderMap) -> RequestFacts {
        RequestFacts {
            accept: AcceptEncoding::from_headers(headers),
            head: method == Method::HEAD,
            range: headers.contains_key(header::RANGE),
            settled: Settled::default(),
        }
    }
}

/// The cache phase chose the response's representation (a stored encoded variant, one being
/// made for the store, or a stored identity 200 whose eligibility it weighed): the compress
/// phase leaves it alone. A flag in the request's context rather than a mark in the response's
/// extensions, which cost two allocations on every hit; atomic because the cache phase holds
/// the context by shared reference.
#[derive(Debug, Default)]
pub struct Settled(std::sync::atomic::AtomicBool);

impl Settled {
    pub fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn get(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Clone for Settled {
    fn clone(&self) -> Settled {
        Settled(std::sync::atomic::AtomicBool::new(self.get()))
    }
}

/// Whether a response's representation depends on `Accept-Encoding` under `cfg` (the rule is
/// `cache::encoding::CompressPolicy::eligible`).
pub fn eligible(cfg: &config::Compression, headers: &HeaderMap, len: Option<u64>) -> bool {
    encoding::CompressPolicy {
        enabled: cfg.enabled,
        types: &cfg.types,
        min_bytes: cfg.min_bytes,
        prefer: &cfg.prefer,
    }
    .eligible(headers, len)
}

/// Whether a response to this request may carry a body in a coding at all: never for HEAD,
/// 1xx/204/304, partial content or a Range request (ranges come from the identity bytes).
pub fn may_encode(req: &RequestFacts, status: StatusCode, headers: &HeaderMap) -> bool {
    !req.head
        && !req.range
        && !status.is_informational()
        && !matches!(
            status,
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED | StatusCode::PARTIAL_CONTENT
        )
        && !headers.contains_key(header::CONTENT_RANGE)
}

pub use cache::encoding::{add_vary, mark_transformed, weaken_etag_field as weaken_etag};

fn declared_len(headers: &HeaderMap, body: &ProxyBody) -> Option<u64> {
    cache::framing::declared_length(headers).or_else(|| body.size_hint().exact())
}

/// The compress phase for responses not negotiated by the cache: decode what the client cannot
/// read, then compress at the fast level when it helps.
pub fn respond(
    cfg: &config::Compression,
    req: &RequestFacts,
    resp: Response<ProxyBody>,
) -> Response<ProxyBody> {
    if req.settled.get() {
        return resp;
    }
    let (mut parts, mut body) = resp.into_parts();
    let status = parts.status;
    let bodyless = req.head
        || status.is_informational()
        || matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);

    if encoding::has_content_encoding(&parts.headers) {
        let Some(sent) = encoding::single_coding(&parts.headers) else {
            return Response::from_parts(parts, body);
        };
        if bodyless
            || req.accept.accepts(sent)
            || status == StatusCode::PARTIAL_CONTENT
            || no_transform(&parts.headers)
        {
            return Response::from_parts(parts, body);
        }
        // The client cannot read this coding: decode, then treat it as an identity response.
        mark_transformed(&mut parts.headers, None);
        add_vary(&mut parts.headers);
        METRICS.decoded(sent);
        body = Transcode::decoder(body, sent).boxed_unsync();
    }

    let len = declared_len(&parts.headers, &body);
    if !eligible(cfg, &parts.headers, len) {
        return Response::from_parts(parts, body);
    }
    add_vary(&mut parts.headers);
    if !may_encode(req, status, &parts.headers) || bodyless {
        return Response::from_parts(parts, body);
    }
    let Some(coding) = req.accept.negotiate(&cfg.prefer) else {
        return Response::from_parts(parts, body);
    };
    let flush_each = is_event_stream(&parts.headers);
    mark_transformed(&mut parts.headers, Some(coding));
    let body = Transcode::encoder(
        body,
        coding,
        cfg.fly_level.of(coding),
        Made::Fly,
        flush_each,
    )
    .boxed_unsync();
    Response::from_parts(parts, body)
}

use cache::encoding::no_transform;

pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| encoding::media_essence(ct) == "text/event-stream")
}

/// A streaming coder writing into a `Vec` we drain between input steps.
trait Sink: AsyncWrite + Unpin + Send {
    fn output(&mut self) -> &mut Vec<u8>;
}

macro_rules! sinks {
    ($($t:ident),*) => {
        $(impl Sink for $t<Vec<u8>> {
            fn output(&mut self) -> &mut Vec<u8> {
                self.get_mut()
            }
        })*
    };
}
sinks!(
    GzipEncoder,
    BrotliEncoder,
    ZstdEncoder,
    GzipDecoder,
    BrotliDecoder,
    ZstdDecoder
);

/// Input is fed to the coder in steps of this size, so that one poll does a bounded amount of
/// CPU work and output streams out of a large in-memory body instead of piling up.
const ENCODE_STEP: usize = 32 * 1024;
/// Decoding can expand input a thousandfold: smaller steps bound what one step produces.
const DECODE_STEP: usize = 4 * 1024;
/// Output is handed on once this much is ready (or at a flush, or at the end).
const OUTPUT_READY: usize = 16 * 1024;

/// A body passed through an encoder or decoder.
///
/// Nothing is held back waiting for more input: whenever the inner body has nothing ready
/// (`Pending`), what was written so far is flushed and sent. A body that arrives all at once
/// (a cache hit) compresses as one stream; a slow origin's chunks go out as they come. Event
/// streams are flushed after every chunk.
pub struct Transcode {
    inner: ProxyBody,
    sink: Box<dyn Sink>,
    input: Bytes,
    step: usize,
    /// Counted per coding: (coding, encoding?) for the metrics.
    coding: Coding,
    encoding: bool,
    flush_each: bool,
    /// Input written since the last flush.
    dirty: bool,
    inner_done: bool,
    finished: bool,
    trailers: Option<HeaderMap>,
    bytes_in: u64,
    bytes_out: u64,
    /// Stored-level steps take milliseconds of CPU: run them with `block_in_place`, so that
    /// the worker's other connections move to another thread meanwhile.
    offload: bool,
}

/// Runs `f` with `block_in_place` when asked and possible (a multi-thread runtime).
fn heavy<R>(offload: bool, f: impl FnOnce() -> R) -> R {
    let multi = offload
        && tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi {
        // The one place that may: a stored-level step is bounded CPU work (ENCODE_STEP).
        #[allow(clippy::disallowed_methods)]
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

impl Transcode {
    pub fn encoder(
        inner: ProxyBody,
        coding: Coding,
        level: i32,
        made: Made,
        flush_each: bool,
    ) -> Transcode {
        let out = Vec::new();
        let level = Level::Precise(level);
        let sink: Box<dyn Sink> = match coding {
            Coding::Gzip => Box::new(GzipEncoder::with_quality(out, level)),
            Coding::Br => Box::new(BrotliEncoder::with_quality(out, level)),
            Coding::Zstd => Box::new(ZstdEncoder::with_quality(out, level)),
        };
        METRICS.encode_started(coding, made);
        let mut t = Transcode::new(inner, sink, ENCODE_STEP, coding, true, flush_each);
        t.offload = made == Made::Stored;
        t
    }

    pub fn decoder(inner: ProxyBody, coding: Coding) -> Transcode {
        let out = Vec::new();
        let sink: Box<dyn Sink> = match coding {
            Coding::Gzip => Box::new(GzipDecoder::new(out)),
            Coding::Br => Box::new(BrotliDecoder::new(out)),
            Coding::Zstd => Box::new(ZstdDecoder::new(out)),
        };
        Transcode::new(inner, sink, DECODE_STEP, coding, false, false)
    }

    fn new(
        inner: ProxyBody,
        sink: Box<dyn Sink>,
        step: usize,
        coding: Coding,
        encoding: bool,
        flush_each: bool,
    ) -> Transcode {
        Transcode {
            inner,
            sink,
            input: Bytes::new(),
            step,
            coding,
            encoding,
            flush_each,
            dirty: false,
            inner_done: false,
            finished: false,
            trailers: None,
            bytes_in: 0,
            bytes_out: 0,
            offload: false,
        }
    }

    fn write(&mut self, mut buf: &[u8], cx: &mut Context<'_>) -> io::Result<()> {
        while !buf.is_empty() {
            match Pin::new(&mut *self.sink).poll_write(cx, buf) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => buf = &buf[n..],
                Poll::Ready(Err(e)) => return Err(e),
                // The sink is a Vec: it never waits.
                Poll::Pending => return Err(io::Error::other("coder output stalled")),
            }
        }
        Ok(())
    }

    fn flush(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.dirty = false;
        match Pin::new(&mut *self.sink).poll_flush(cx) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::Error::other("coder output stalled")),
        }
    }

    fn shutdown(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match Pin::new(&mut *self.sink).poll_shutdown(cx) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::Error::other("coder output stalled")),
        }
    }

    fn take_output(&mut self) -> Option<Bytes> {
        let out = self.sink.output();
        if out.is_empty() {
            return None;
        }
        let data = Bytes::from(std::mem::take(out));
        self.bytes_out += data.len() as u64;
        Some(data)
    }

    fn fail(&mut self, e: io::Error) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.finished = true;
        let what = if self.encoding {
            "encoding"
        } else {
            "decoding"
        };
        Poll::Ready(Some(Err(
            format!("{what} {} failed: {e}", self.coding).into()
        )))
    }
}

impl Drop for Transcode {
    fn drop(&mut self) {
        if self.encoding {
            METRICS.encoded_bytes(self.coding, self.bytes_in, self.bytes_out);
        }
    }
}

impl Body for Transcode {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if !this.input.is_empty() {
                let n = this.step.min(this.input.len());
                let chunk = this.input.split_to(n);
                this.bytes_in += n as u64;
                let offload = this.offload;
                if let Err(e) = heavy(offload, || this.write(&chunk, cx)) {
                    return this.fail(e);
                }
                this.dirty = true;
                if this.input.is_empty()
                    && this.flush_each
                    && let Err(e) = this.flush(cx)
                {
                    return this.fail(e);
                }
                let ready = this.sink.output().len() >= OUTPUT_READY
                    || (this.flush_each && this.input.is_empty());
                if ready && let Some(data) = this.take_output() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                continue;
            }
            if this.finished {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            if this.inner_done {
                let offload = this.offload;
                if let Err(e) = heavy(offload, || this.shutdown(cx)) {
                    return this.fail(e);
                }
                this.finished = true;
                if let Some(data) = this.take_output() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                continue;
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.input = data,
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            this.trailers = Some(t);
                        }
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => this.inner_done = true,
                Poll::Pending => {
                    if this.dirty {
                        if let Err(e) = this.flush(cx) {
                            return this.fail(e);
                        }
                        if let Some(data) = this.take_output() {
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests;
