//! Generated and streamed bodies: pattern bytes of any length, bodies fed by the test, and
//! the `/bytes/N` and big-object routes.

use super::*;

pub(super) struct PatternBody {
    pub(super) pos: u64,
    pub(super) len: u64,
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.pos >= self.len {
            return Poll::Ready(None);
        }
        let end = (self.pos + 64 * 1024).min(self.len);
        let chunk: Vec<u8> = (self.pos..end).map(pattern_byte).collect();
        self.pos = end;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.pos)
    }
}

pub(super) struct ChannelBody {
    pub(super) rx: mpsc::Receiver<Result<Bytes, BoxError>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

/// `/big/N`: N pattern bytes (generated, never stored; N may be 10 GiB), cacheable for a
/// minute, with an ETag and single byte ranges (`Range: bytes=A-B`, `A-`, `-N`), counting
/// the body bytes it sends.
pub(super) fn big(req: &Request<Incoming>, stats: &Arc<Stats>, len: u64) -> Response<OriginBody> {
    let version = stats.big_version.load(Ordering::Relaxed);
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .filter(|v| !v.contains(','))
        .and_then(|v| {
            let (a, b) = v.split_once('-')?;
            match (a.trim(), b.trim()) {
                ("", n) => {
                    let n: u64 = n.parse().ok()?;
                    Some((len.saturating_sub(n), len.checked_sub(1)?))
                }
                (a, "") => Some((a.parse().ok()?, len.checked_sub(1)?)),
                (a, b) => Some((
                    a.parse().ok()?,
                    b.parse::<u64>().ok()?.min(len.checked_sub(1)?),
                )),
            }
        })
        .filter(|(a, b)| a <= b && *a < len);
    let (start, end, status) = match range {
        Some((a, b)) => (a, b + 1, StatusCode::PARTIAL_CONTENT),
        None => (0, len, StatusCode::OK),
    };
    let counted = CountedPattern {
        inner: PatternBody {
            pos: start,
            len: end,
        },
        stats: stats.clone(),
    };
    let mut r = Response::new(counted.boxed_unsync());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"big-{len}-v{version}\"")).expect("etag"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)).expect("range"),
        );
    }
    r
}

/// A pattern body that counts what it sends.
pub(super) struct CountedPattern {
    pub(super) inner: PatternBody,
    pub(super) stats: Arc<Stats>,
}

impl Body for CountedPattern {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &polled
            && let Some(d) = f.data_ref()
        {
            self.stats
                .big_bytes
                .fetch_add(d.len() as u64, Ordering::Relaxed);
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
