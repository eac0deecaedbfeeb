//! The origin's router: which path gets which answer (see `Origin` for the list).

use super::*;

pub(super) async fn respond(mut req: Request<Incoming>, stats: Arc<Stats>) -> Response<OriginBody> {
    let path = req.uri().path().to_string();
    let n = {
        let mut hits = stats.hits.lock().expect("stats lock");
        let e = hits.entry(path.clone()).or_default();
        *e += 1;
        *e
    };
    let ae = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    stats
        .accept_encoding
        .lock()
        .expect("lock")
        .insert(path.clone(), ae);
    let early = req
        .headers()
        .get("early-data")
        .is_some_and(|v| v.as_bytes() == b"1");
    if early {
        *stats
            .early
            .lock()
            .expect("lock")
            .entry(path.clone())
            .or_default() += 1;
    }
    if path.starts_with("/missing/") {
        return text(StatusCode::NOT_FOUND, "not here\n");
    }
    if path.starts_with("/too-early/") {
        // An origin that will not act on early data (RFC 8470 §5.2).
        if early {
            return text(StatusCode::TOO_EARLY, "too early\n");
        }
        let mut r = text(StatusCode::OK, "after the handshake\n");
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return r;
    }
    if path.starts_with("/echo/") {
        // The request as the origin got it, never stored.
        let mut out = format!("{} {}\n", req.method(), req.uri());
        for (name, value) in req.headers() {
            out.push_str(&format!(
                "{name}: {}\n",
                value.to_str().unwrap_or("<binary>")
            ));
        }
        // Read first: answering before the body is read makes the kernel reset the connection.
        let _ = req.into_body().collect().await;
        let mut r = text(StatusCode::OK, out);
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return r;
    }
    if path == "/sse" {
        // `n` events of an event stream, each sent only once the test releases it.
        let n = query_num(&req, "n", 3);
        let (tx, rx) = mpsc::channel(1);
        let stats = stats.clone();
        tokio::spawn(async move {
            for i in 0..n {
                let event = format!("id: {i}\ndata: event number {i}\n\n");
                if tx.send(Ok(Bytes::from(event))).await.is_err() {
                    return;
                }
                if i + 1 < n {
                    match stats.events.0.acquire().await {
                        Ok(permit) => permit.forget(),
                        Err(_) => return,
                    }
                }
            }
        });
        let mut r = Response::new(ChannelBody { rx }.boxed_unsync());
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return r;
    }
    if path.starts_with("/c/") {
        return cacheable(req, stats, path, n).await;
    }
    if path == "/health" {
        return text(StatusCode::OK, "ok\n");
    }
    if path == "/close" {
        // Answers, then closes the connection (as an origin shedding keep-alive would).
        let mut r = text(StatusCode::OK, "closing\n");
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }

    if let Some(n) = path.strip_prefix("/big/") {
        return big(&req, &stats, n.parse().unwrap_or(0));
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let len: u64 = n.parse().unwrap_or(0);
        let mut r = Response::new(PatternBody { pos: 0, len }.boxed_unsync());
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        return r;
    }
    match path.as_str() {
        "/upload" => {
            let mut body = req.into_body();
            let mut hash = Fnv::default();
            let mut len = 0u64;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => {
                        if let Some(d) = f.data_ref() {
                            hash.update(d);
                            len += d.len() as u64;
                        }
                    }
                    Err(e) => return text(StatusCode::BAD_REQUEST, format!("body error: {e}")),
                }
            }
            text(StatusCode::OK, format!("len={len} fnv={:016x}", hash.0))
        }
        "/odd-header" => {
            // Header values made of bytes whose HPACK/QPACK Huffman codes are longer than
            // 8 bits (a QPACK encoder sends these as they are), next to ordinary ones.
            let mut r = text(StatusCode::OK, "odd\n".to_string());
            r.headers_mut()
                .insert("x-odd", HeaderValue::from_static("{|}~^`\\{|}~^`\\<>[]"));
            r.headers_mut().insert(
                "x-plain",
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=60"),
            );
            r
        }
        "/sec-headers" => {
            // An origin that sets two security headers itself.
            let mut r = text(StatusCode::OK, "own headers\n".to_string());
            r.headers_mut().insert(
                "content-security-policy",
                HeaderValue::from_static("default-src 'none'"),
            );
            r.headers_mut()
                .insert("referrer-policy", HeaderValue::from_static("no-referrer"));
            r
        }
        "/headers" => {
            let mut out = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
            for (name, value) in req.headers() {
                out.push_str(&format!(
                    "{}: {}\n",
                    name,
                    value.to_str().unwrap_or("<binary>")
                ));
            }
            let mut r = text(StatusCode::OK, out);
            // Hop-by-hop headers the edge must strip on the way back.
            r.headers_mut().insert(
                header::CONNECTION,
                HeaderValue::from_static("x-origin-private"),
            );
            r.headers_mut()
                .insert("x-origin-private", HeaderValue::from_static("secret"));
            r.headers_mut()
                .insert("keep-alive", HeaderValue::from_static("timeout=5"));
            r
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(query_num(&req, "ms", 5000))).await;
            text(StatusCode::OK, "slow")
        }
        "/die" => {
            // Promise 1 MiB, send 64 KiB, then fail: the edge must abort, not end cleanly.
            let (tx, rx) = mpsc::channel(2);
            tokio::spawn(async move {
                let _ = tx.send(Ok(Bytes::from(vec![b'x'; 64 * 1024]))).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = tx.send(Err("origin died".into())).await;
            });
            let mut r = Response::new(ChannelBody { rx }.boxed_unsync());
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(1024 * 1024u64));
            r
        }
        "/drip" => {
            // `chunks` × 64 KiB, one every `ms`: a long download for reload and drain tests.
            let chunks = query_num(&req, "chunks", 20);
            let ms = query_num(&req, "ms", 100);
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(async move {
                for i in 0..chunks {
                    let chunk: Vec<u8> = (i * 65536..(i + 1) * 65536).map(pattern_byte).collect();
                    if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            });
            let mut r = Response::new(ChannelBody { rx }.boxed_unsync());
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(chunks * 65536));
            r
        }
        "/ws" => {
            let is_ws = req
                .headers()
                .get(header::UPGRADE)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
            if !is_ws {
                return text(StatusCode::BAD_REQUEST, "expected a websocket upgrade");
            }
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = upgrade.await else { return };
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 4096];
                // Echo, prefixed so the test knows the origin (not the edge) answered.
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let mut out = b"echo:".to_vec();
                    out.extend_from_slice(&buf[..n]);
                    if io.write_all(&out).await.is_err() {
                        break;
                    }
                }
            });
            let mut r = Response::new(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut()
                .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            r
        }
        _ => text(StatusCode::OK, format!("ok {path}")),
    }
}
