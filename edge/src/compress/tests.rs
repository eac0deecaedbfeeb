use http::header::HeaderValue;

use super::*;
use crate::body;
use http_body_util::{BodyExt, StreamBody};

fn cfg() -> config::Compression {
    config::Compression {
        enabled: true,
        prefer: vec![Coding::Zstd, Coding::Br, Coding::Gzip],
        types: encoding::MediaTypes::new(encoding::DEFAULT_COMPRESSIBLE.iter().copied()),
        min_bytes: 512,
        stored_level: config::Levels {
            zstd: 15,
            br: 9,
            gzip: 9,
        },
        fly_level: config::Levels {
            zstd: 3,
            br: 4,
            gzip: 4,
        },
    }
}

fn text(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| b"the quick brown fox jumps over the lazy dog\n"[i % 44])
        .collect()
}

async fn collect(b: ProxyBody) -> Result<Vec<u8>, BoxError> {
    Ok(b.collect().await?.to_bytes().to_vec())
}

fn chunked(data: &[u8], size: usize) -> ProxyBody {
    let chunks: Vec<Result<Frame<Bytes>, BoxError>> = data
        .chunks(size)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    StreamBody::new(futures_util::stream::iter(chunks)).boxed_unsync()
}

#[tokio::test]
async fn round_trip_every_coding() {
    for coding in Coding::ALL {
        for size in [0, 1, 1000, 100_000, 1_000_000] {
            let original = text(size);
            let encoded = collect(
                Transcode::encoder(chunked(&original, 7000), coding, 5, Made::Fly, false)
                    .boxed_unsync(),
            )
            .await
            .expect("encode");
            if size >= 100_000 {
                assert!(
                    encoded.len() < size / 10,
                    "{coding} {size}: {}",
                    encoded.len()
                );
            }
            let decoded =
                collect(Transcode::decoder(chunked(&encoded, 3000), coding).boxed_unsync())
                    .await
                    .expect("decode");
            assert!(decoded == original, "{coding} {size}: round trip differs");
        }
    }
}

#[tokio::test]
async fn corrupt_input_is_an_error_not_a_short_body() {
    for coding in Coding::ALL {
        let encoded = collect(
            Transcode::encoder(body::full(text(50_000)), coding, 5, Made::Fly, false)
                .boxed_unsync(),
        )
        .await
        .expect("encode");
        let truncated = Bytes::copy_from_slice(&encoded[..encoded.len() / 2]);
        let result =
            collect(Transcode::decoder(body::full(truncated), coding).boxed_unsync()).await;
        assert!(result.is_err(), "{coding}: a truncated stream must fail");
    }
}

/// A body that yields one chunk, then waits until told to go on: what a slow origin or an
/// event stream looks like.
#[tokio::test]
async fn nothing_is_held_back_while_the_source_waits() {
    for coding in Coding::ALL {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut enc = Transcode::encoder(
            StreamBody::new(stream).boxed_unsync(),
            coding,
            9,
            Made::Fly,
            false,
        );
        tx.send(Ok(Frame::data(Bytes::from_static(
            b"data: first event\n\n",
        ))))
        .await
        .expect("send");
        // The first event must come out (flushed) while the source is still open.
        let first = tokio::time::timeout(std::time::Duration::from_secs(5), enc.frame())
            .await
            .expect("first event held back")
            .expect("a frame")
            .expect("no error")
            .into_data()
            .expect("data");
        // Decoding that prefix while its source also stays open gives the event back.
        let (dtx, drx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let dstream = futures_util::stream::unfold(drx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut dec = Transcode::decoder(StreamBody::new(dstream).boxed_unsync(), coding);
        dtx.send(Ok(Frame::data(first))).await.expect("send");
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), dec.frame())
            .await
            .expect("decoded event held back")
            .expect("a frame")
            .expect("no error")
            .into_data()
            .expect("data");
        assert_eq!(&got[..], b"data: first event\n\n", "{coding}");
        drop(tx);
        assert!(enc.frame().await.is_some(), "{coding}: the end is sent");
    }
}

fn response(ct: Option<&str>, len: usize, extra: &[(&str, &str)]) -> Response<ProxyBody> {
    let mut resp = Response::new(body::full(text(len)));
    if let Some(ct) = ct {
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).expect("ct"));
    }
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    for (n, v) in extra {
        resp.headers_mut().append(
            http::HeaderName::from_bytes(n.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    resp
}

fn facts(ae: &str, method: Method, range: bool) -> RequestFacts {
    let mut h = HeaderMap::new();
    h.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_str(ae).expect("ae"),
    );
    if range {
        h.insert(header::RANGE, HeaderValue::from_static("bytes=0-9"));
    }
    RequestFacts::new(&method, &h)
}

#[test]
fn when_to_compress() {
    let all = "gzip, br, zstd";
    let get = |ae: &str| facts(ae, Method::GET, false);
    // (name, response, request, expected Content-Encoding, expected Vary: Accept-Encoding)
    type Case = (
        &'static str,
        Response<ProxyBody>,
        RequestFacts,
        Option<&'static str>,
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            "html",
            response(Some("text/html"), 4096, &[]),
            get(all),
            Some("zstd"),
            true,
        ),
        (
            "json gzip only",
            response(Some("application/json"), 4096, &[]),
            get("gzip"),
            Some("gzip"),
            true,
        ),
        (
            "identity chosen still varies",
            response(Some("text/css"), 4096, &[]),
            get("identity"),
            None,
            true,
        ),
        (
            "png",
            response(Some("image/png"), 100_000, &[]),
            get(all),
            None,
            false,
        ),
        (
            "woff2",
            response(Some("font/woff2"), 100_000, &[]),
            get(all),
            None,
            false,
        ),
        (
            "no type",
            response(None, 100_000, &[]),
            get(all),
            None,
            false,
        ),
        (
            "tiny",
            response(Some("text/html"), 100, &[]),
            get(all),
            None,
            false,
        ),
        (
            "already encoded",
            response(Some("text/html"), 4096, &[("content-encoding", "gzip")]),
            get(all),
            Some("gzip"),
            false,
        ),
        (
            "no-transform",
            response(
                Some("text/html"),
                4096,
                &[("cache-control", "public, no-transform")],
            ),
            get(all),
            None,
            false,
        ),
        (
            "HEAD",
            response(Some("text/html"), 4096, &[]),
            facts(all, Method::HEAD, false),
            None,
            true,
        ),
        (
            "Range",
            response(Some("text/html"), 4096, &[]),
            facts(all, Method::GET, true),
            None,
            true,
        ),
        (
            "disabled",
            response(Some("text/html"), 4096, &[]),
            get(all),
            None,
            false,
        ),
    ];
    for (name, resp, req, want_ce, want_vary) in cases {
        let mut c = cfg();
        c.enabled = name != "disabled";
        let out = respond(&c, &req, resp);
        let h = out.headers();
        let ce = h
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok());
        assert_eq!(ce, want_ce, "{name}: Content-Encoding");
        let vary = h
            .get_all(header::VARY)
            .iter()
            .any(|v| v.to_str().is_ok_and(|s| s.contains("Accept-Encoding")));
        assert_eq!(vary, want_vary, "{name}: Vary");
        if want_ce.is_some() && name != "already encoded" {
            assert!(
                !h.contains_key(header::CONTENT_LENGTH),
                "{name}: stale Content-Length"
            );
        }
    }
}

#[test]
fn status_codes_without_bodies_are_left_alone() {
    for status in [
        StatusCode::NO_CONTENT,
        StatusCode::NOT_MODIFIED,
        StatusCode::PARTIAL_CONTENT,
    ] {
        let mut resp = response(Some("text/html"), 4096, &[]);
        *resp.status_mut() = status;
        let out = respond(&cfg(), &facts("gzip", Method::GET, false), resp);
        assert!(
            !out.headers().contains_key(header::CONTENT_ENCODING),
            "{status}"
        );
    }
}

#[tokio::test]
async fn etag_is_weakened_and_vary_kept() {
    let resp = response(
        Some("text/html"),
        4096,
        &[("etag", "\"v1\""), ("vary", "Accept-Language")],
    );
    let out = respond(&cfg(), &facts("br", Method::GET, false), resp);
    assert_eq!(out.headers()[header::ETAG], "W/\"v1\"");
    let vary: Vec<_> = out.headers().get_all(header::VARY).iter().collect();
    assert_eq!(vary.len(), 1, "one Vary field");
    assert_eq!(vary[0], "Accept-Language, Accept-Encoding");
    let encoded = collect(out.into_body()).await.expect("body");
    let decoded = collect(Transcode::decoder(body::full(encoded), Coding::Br).boxed_unsync())
        .await
        .expect("decode");
    assert_eq!(decoded, text(4096));
}

#[tokio::test]
async fn origin_encoding_is_decoded_for_clients_without_it() {
    let original = text(20_000);
    let gz = collect(
        Transcode::encoder(
            body::full(original.clone()),
            Coding::Gzip,
            6,
            Made::Fly,
            false,
        )
        .boxed_unsync(),
    )
    .await
    .expect("gzip");
    let origin = |ae: &str| {
        let mut resp = Response::new(body::full(gz.clone()));
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(gz.len()));
        h.insert(header::ETAG, HeaderValue::from_static("\"gz1\""));
        respond(&cfg(), &facts(ae, Method::GET, false), resp)
    };
    // A client that takes gzip gets the origin's bytes untouched.
    let same = origin("gzip, br");
    assert_eq!(same.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(collect(same.into_body()).await.expect("body"), gz);
    // One without gzip gets the identity, or its own preferred coding.
    let plain = origin("identity");
    assert!(!plain.headers().contains_key(header::CONTENT_ENCODING));
    assert!(!plain.headers().contains_key(header::CONTENT_LENGTH));
    assert_eq!(plain.headers()[header::ETAG], "W/\"gz1\"");
    assert_eq!(collect(plain.into_body()).await.expect("body"), original);
    let br = origin("br");
    assert_eq!(br.headers()[header::CONTENT_ENCODING], "br");
    let body = collect(br.into_body()).await.expect("body");
    let decoded = collect(Transcode::decoder(body::full(body), Coding::Br).boxed_unsync())
        .await
        .expect("decode");
    assert_eq!(decoded, original);
}
