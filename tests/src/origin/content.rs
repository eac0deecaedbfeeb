//! The `/c/` route: content whose cache headers the test chooses.

use super::*;

/// `/c/NAME?cc=..&etag=..&lm=SECS_AGO&expires=SECS&cdn=..&vary=..&len=N&delay_ms=..&status=..&sk=..&ctag=..`
/// (`len` with `drip_ms=..`, and `first_ms=..` before the first chunk: a body in 64 KiB steps):
/// content whose cache headers the test chooses. The body names the version (the n-th request
/// for the path) unless `len` asks for N pattern bytes. A matching If-None-Match gets a 304
/// carrying `x-revalidated: n`.
///
/// Also: `cdn` is percent-decoded (`%20` space, `%2C` comma, `%26` `&`, `%22` quote), so any
/// field value can be sent; `expires_raw=V` sends `Expires: V` verbatim (percent-decoded);
/// `age=V` sends `Age: V` with each `_` written as `, ` (`age=7200_0` → `Age: 7200, 0`);
/// `echo=headers` makes the body list the request headers as the origin received them.
pub(super) async fn cacheable(
    req: Request<Incoming>,
    stats: Arc<Stats>,
    path: String,
    n: u64,
) -> Response<OriginBody> {
    let _inflight = InFlight::enter(&stats, &path);
    // Only reads are slow: a write to the same URL (to invalidate it) answers at once.
    if let Some(ms) = query_str(&req, "delay_ms")
        .and_then(|v| v.parse().ok())
        .filter(|_| req.method().is_safe())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let failing = *stats.failing.lock().expect("lock");
    if let Some(code) = failing {
        let mut r = text(
            StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "origin failing\n",
        );
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return r;
    }
    let etag = query_str(&req, "etag").map(|e| format!("\"{e}\""));
    let mut headers = http::HeaderMap::new();
    let now = std::time::SystemTime::now();
    headers.insert(
        header::DATE,
        HeaderValue::from_str(&httpdate::fmt_http_date(now)).expect("date"),
    );
    if let Some(cc) = query_str(&req, "cc") {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_str(&cc.replace("%20", " ")).expect("cc"),
        );
    }
    if let Some(cdn) = query_str(&req, "cdn") {
        headers.insert(
            "cdn-cache-control",
            HeaderValue::from_str(&percent_decode(cdn)).expect("cdn"),
        );
    }
    if let Some(raw) = query_str(&req, "expires_raw") {
        headers.insert(
            header::EXPIRES,
            HeaderValue::from_str(&percent_decode(raw)).expect("expires_raw"),
        );
    }
    if let Some(age) = query_str(&req, "age") {
        headers.insert(
            header::AGE,
            HeaderValue::from_str(&age.replace('_', ", ")).expect("age"),
        );
    }
    if let Some(e) = &etag {
        headers.insert(header::ETAG, HeaderValue::from_str(e).expect("etag"));
    }
    if let Some(ago) = query_str(&req, "lm").and_then(|v| v.parse::<u64>().ok()) {
        let lm = now - Duration::from_secs(ago);
        headers.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(&httpdate::fmt_http_date(lm)).expect("lm"),
        );
    }
    if let Some(secs) = query_str(&req, "expires").and_then(|v| v.parse::<u64>().ok()) {
        let e = now + Duration::from_secs(secs);
        headers.insert(
            header::EXPIRES,
            HeaderValue::from_str(&httpdate::fmt_http_date(e)).expect("expires"),
        );
    }
    if let Some(v) = query_str(&req, "vary") {
        headers.insert(header::VARY, HeaderValue::from_str(v).expect("vary"));
    }
    // Surrogate keys: `sk=a%20b` (Fastly's Surrogate-Key), `ctag=a,b` (Cloudflare's Cache-Tag).
    if let Some(v) = query_str(&req, "sk") {
        headers.insert(
            "surrogate-key",
            HeaderValue::from_str(&percent_decode(v)).expect("sk"),
        );
    }
    if let Some(v) = query_str(&req, "ctag") {
        headers.insert(
            "cache-tag",
            HeaderValue::from_str(&percent_decode(v)).expect("ctag"),
        );
    }
    if let (Some(e), Some(inm)) = (&etag, req.headers().get(header::IF_NONE_MATCH)) {
        *stats
            .conditional
            .lock()
            .expect("lock")
            .entry(path.clone())
            .or_default() += 1;
        if inm.to_str().is_ok_and(|v| v.contains(e.as_str())) {
            let mut r = Response::new(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            *r.headers_mut() = headers;
            r.headers_mut()
                .insert("x-revalidated", HeaderValue::from(n));
            return r;
        }
    }
    let status = query_str(&req, "status")
        .and_then(|v| v.parse().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::OK);
    let drip = query_str(&req, "drip_ms").and_then(|v| v.parse::<u64>().ok());
    let encoded = query_str(&req, "ce").map(str::to_string);
    let mut r = match query_str(&req, "len").and_then(|v| v.parse::<u64>().ok()) {
        Some(len) if query_str(&req, "text").is_some() || encoded.is_some() => {
            let mut body = text_body(&path, n, len as usize);
            if let Some(coding) = &encoded {
                body = encode(coding, &body).await;
                headers.insert(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_str(coding).expect("coding"),
                );
            }
            let mut r = Response::new(
                http_body_util::Full::new(Bytes::from(body))
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        Some(len) if drip.is_some() => {
            // `len` pattern bytes in 64 KiB chunks, one every `drip_ms`, the first after
            // `first_ms` (the head goes at once).
            let ms = drip.unwrap_or(0);
            let first = query_str(&req, "first_ms").and_then(|v| v.parse::<u64>().ok());
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(async move {
                if let Some(first) = first {
                    tokio::time::sleep(Duration::from_millis(first)).await;
                }
                let mut pos = 0u64;
                while pos < len {
                    let end = (pos + 65536).min(len);
                    let chunk: Vec<u8> = (pos..end).map(pattern_byte).collect();
                    if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                        return;
                    }
                    pos = end;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            });
            let mut r = Response::new(ChannelBody { rx }.boxed_unsync());
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            r
        }
        Some(len) => {
            let mut r = Response::new(PatternBody { pos: 0, len }.boxed_unsync());
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            r
        }
        None => {
            let lang = req
                .headers()
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string();
            // `echo=ae`: the body also names the Accept-Encoding it was made for.
            let ae = match query_str(&req, "echo") {
                Some("ae") => format!(
                    " ae={}",
                    req.headers()
                        .get(header::ACCEPT_ENCODING)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                ),
                // `echo=headers`: the body also lists the request's headers, one a line.
                Some("headers") => {
                    let mut out = String::from("\n");
                    for (name, value) in req.headers() {
                        out.push_str(&format!(
                            "{}: {}\n",
                            name,
                            value.to_str().unwrap_or("<binary>")
                        ));
                    }
                    out
                }
                _ => String::new(),
            };
            text(status, format!("{path} v{n} lang={lang}{ae}\n"))
        }
    };
    *r.status_mut() = status;
    for (k, v) in &headers {
        r.headers_mut().insert(k, v.clone());
    }
    if let Some(ct) = query_str(&req, "ct") {
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&ct.replace("%2B", "+")).expect("ct"),
        );
    }
    r
}
