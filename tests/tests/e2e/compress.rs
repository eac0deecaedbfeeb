//! On-the-fly compression through a real edge: every coding on every protocol, negotiation,
//! what is left alone, validators, decoding for clients, and stored encoded variants.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use edge_e2e::client::{self, Proto, Reply};
use edge_e2e::origin::{Origin, decode, encode, text_body};
use edge_e2e::{Edge, Setup, Target};
use http::{Method, StatusCode};
use tokio::io::{AsyncBufReadExt, BufReader};

async fn start(tag: &str, extra: &str) -> (Setup, Origin, Edge, Target) {
    let setup = Setup::new(tag);
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, extra));
    let target = setup.target(edge.https(), "localhost");
    (setup, origin, edge, target)
}

async fn fetch(
    proto: Proto,
    target: &Target,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let r = client::request(proto, target, method, path, headers, Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("{proto:?} {path}: {e}"));
    assert!(
        r.error.is_none(),
        "{proto:?} {path}: body error {:?}",
        r.error
    );
    r
}

async fn get(proto: Proto, target: &Target, path: &str, ae: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = ae.map(|v| ("accept-encoding", v)).into_iter().collect();
    fetch(proto, target, Method::GET, path, &headers).await
}

/// The body as the client would see it after undoing `Content-Encoding`.
async fn decoded(r: &Reply) -> Vec<u8> {
    assert_eq!(r.len, r.body.len() as u64, "whole body kept for checking");
    match r.header("content-encoding") {
        Some(coding) => decode(coding, &r.body)
            .await
            .unwrap_or_else(|e| panic!("undecodable {coding} body: {e}")),
        None => r.body.to_vec(),
    }
}

fn varies_on_ae(r: &Reply) -> bool {
    r.headers.get_all("vary").iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.to_ascii_lowercase().contains("accept-encoding"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_coding_round_trips_on_every_protocol() {
    let (_s, origin, _edge, target) = start("compress-rt", "").await;
    for size in [1024usize, 100 * 1024, 10 * 1024 * 1024] {
        // Stored objects (made at the stored level, then served as variants) and uncacheable
        // ones (made per request at the fast level).
        for cc in ["max-age=600", "no-store"] {
            for coding in ["gzip", "br", "zstd"] {
                for proto in [Proto::H1, Proto::H2, Proto::H3] {
                    let name = format!("{cc}-{coding}-{size}");
                    let path = format!("/c/{name}?cc={cc}&text=1&len={size}");
                    let r = get(proto, &target, &path, Some(coding)).await;
                    assert_eq!(r.status, StatusCode::OK, "{proto:?} {name}");
                    assert_eq!(
                        r.header("content-encoding"),
                        Some(coding),
                        "{proto:?} {name}"
                    );
                    assert!(varies_on_ae(&r), "{proto:?} {name}: Vary");
                    assert!(
                        (r.len as usize) < size,
                        "{proto:?} {name}: {} bytes is not smaller",
                        r.len
                    );
                    let n = origin.hits(&format!("/c/{name}"));
                    let want = text_body(&format!("/c/{name}"), n, size);
                    let got = decoded(&r).await;
                    assert!(
                        got == want,
                        "{proto:?} {name}: decoded body differs ({} vs {} bytes)",
                        got.len(),
                        want.len()
                    );
                }
            }
        }
    }
    // The cacheable objects were fetched once each, as identity.
    assert_eq!(origin.hits("/c/max-age=600-br-1024"), 1);
    assert_eq!(
        origin.accept_encoding("/c/max-age=600-br-1024").as_deref(),
        Some("identity")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_decodes_what_the_edge_sends() {
    let (setup, _origin, edge, _target) = start("compress-curl", "").await;
    let ca = setup.dir.join("ca.pem");
    for coding in ["gzip", "br", "zstd"] {
        for (http, cc) in [("--http1.1", "max-age=60"), ("--http2", "no-store")] {
            let url = format!(
                "https://localhost:{}/c/curl-{coding}-{cc}?cc={cc}&text=1&len=200000",
                edge.https().port()
            );
            let out = tokio::process::Command::new("curl")
                .args(["-sS", "--fail", http, "--cacert"])
                .arg(&ca)
                .args(["-H", &format!("accept-encoding: {coding}"), "--compressed"])
                .args(["-D", "-", "-o", "/dev/stdout", &url])
                .output()
                .await
                .expect("curl (apt-get install curl)");
            assert!(
                out.status.success(),
                "curl {coding}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = out.stdout;
            let split = text
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("header end");
            let head = String::from_utf8_lossy(&text[..split]).to_ascii_lowercase();
            assert!(
                head.contains(&format!("content-encoding: {coding}")),
                "{head}"
            );
            let body = &text[split + 4..];
            let want = text_body(&format!("/c/curl-{coding}-{cc}"), 1, 200_000);
            assert!(
                body == want.as_slice(),
                "curl {coding} {http}: body differs"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiation_over_the_wire() {
    let (_s, _origin, _edge, target) = start("compress-neg", "").await;
    let path = "/c/neg?cc=no-store&text=1&len=5000";
    for (ae, want) in [
        (Some("gzip;q=0.5, br;q=0.9"), Some("br")),
        (Some("gzip, br, zstd"), Some("zstd")),
        (Some("br;q=0, gzip;q=0.1"), Some("gzip")),
        (Some("identity;q=0, *"), Some("zstd")),
        (Some("*;q=0.2, zstd;q=0"), Some("br")),
        (Some("deflate, compress"), None),
        (Some(""), None),
        (None, None),
        (Some("identity"), None),
    ] {
        let r = get(Proto::H2, &target, path, ae).await;
        assert_eq!(
            r.header("content-encoding"),
            want,
            "Accept-Encoding: {ae:?}"
        );
        assert!(varies_on_ae(&r), "{ae:?}: identity chosen still says Vary");
        assert_eq!(decoded(&r).await.len(), 5000, "{ae:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_compressed() {
    let (_s, origin, _edge, target) = start("compress-not", "").await;
    let all = Some("gzip, br, zstd");
    for (name, path, vary) in [
        ("png", "/c/png?cc=max-age=60&len=50000&ct=image/png", false),
        ("tiny", "/c/tiny?cc=max-age=60&text=1&len=100", false),
        (
            "no-transform",
            "/c/nt?cc=max-age=60,no-transform&text=1&len=50000",
            false,
        ),
    ] {
        for round in ["miss", "hit"] {
            let r = get(Proto::H2, &target, path, all).await;
            assert_eq!(r.status, StatusCode::OK, "{name} {round}");
            assert_eq!(r.header("content-encoding"), None, "{name} {round}");
            assert_eq!(varies_on_ae(&r), vary, "{name} {round}");
            assert_eq!(r.header("content-length").map(|_| ()), Some(()), "{name}");
        }
    }
    // Already encoded by the origin, and accepted: passed through as sent.
    let r = get(
        Proto::H2,
        &target,
        "/c/pre?cc=no-store&len=30000&ce=gzip",
        Some("gzip"),
    )
    .await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let sent = encode("gzip", &text_body("/c/pre", origin.hits("/c/pre"), 30000)).await;
    assert_eq!(r.body.to_vec(), sent, "the origin's gzip bytes, untouched");

    // HEAD and Range: identity, from a compressible stored object.
    let path = "/c/head-range?cc=max-age=60&text=1&len=50000";
    let full = get(Proto::H2, &target, path, Some("identity")).await;
    for proto in [Proto::H1, Proto::H2, Proto::H3] {
        let head = fetch(
            proto,
            &target,
            Method::HEAD,
            path,
            &[("accept-encoding", "br")],
        )
        .await;
        assert_eq!(head.header("content-encoding"), None, "{proto:?} HEAD");
        assert_eq!(
            head.header("content-length"),
            Some("50000"),
            "{proto:?} HEAD"
        );
        assert!(varies_on_ae(&head), "{proto:?} HEAD");
        let range = fetch(
            proto,
            &target,
            Method::GET,
            path,
            &[("accept-encoding", "br, gzip"), ("range", "bytes=100-199")],
        )
        .await;
        assert_eq!(range.status, StatusCode::PARTIAL_CONTENT, "{proto:?}");
        assert_eq!(range.header("content-encoding"), None, "{proto:?} Range");
        assert_eq!(
            range.body,
            full.body.slice(100..200),
            "{proto:?} Range bytes"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_are_weakened_and_revalidate() {
    let (_s, _origin, _edge, target) = start("compress-etag", "").await;
    let path = "/c/etag?cc=max-age=600&etag=v1&text=1&len=20000";
    let identity = get(Proto::H2, &target, path, None).await;
    assert_eq!(identity.header("etag"), Some("\"v1\""));
    let br = get(Proto::H2, &target, path, Some("br")).await;
    assert_eq!(
        br.header("etag"),
        Some("W/\"v1\""),
        "transformed: weak validator"
    );
    assert_eq!(br.header("content-encoding"), Some("br"));
    // A browser revalidating its compressed copy gets a 304 carrying that weak tag.
    let again = fetch(
        Proto::H2,
        &target,
        Method::GET,
        path,
        &[("accept-encoding", "br"), ("if-none-match", "W/\"v1\"")],
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert_eq!(again.header("etag"), Some("W/\"v1\""));
    assert!(varies_on_ae(&again));
    // Uncacheable responses too.
    let fly = get(
        Proto::H1,
        &target,
        "/c/etag-fly?cc=no-store&etag=f1&text=1&len=20000",
        Some("gzip"),
    )
    .await;
    assert_eq!(fly.header("etag"), Some("W/\"f1\""));
    assert_eq!(
        fly.header("content-length"),
        None,
        "no stale Content-Length"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_gzip_is_decoded_for_clients_without_it() {
    let (_s, origin, edge, target) = start("compress-decode", "").await;
    for (cc, name) in [("no-store", "dec-pass"), ("max-age=600", "dec-cached")] {
        let path = format!("/c/{name}?cc={cc}&len=40000&ce=gzip");
        // Uncacheable responses are a new version per request: the expected body is that of
        // the origin's latest answer.
        let want = || {
            text_body(
                &format!("/c/{name}"),
                origin.hits(&format!("/c/{name}")),
                40000,
            )
        };
        for proto in [Proto::H1, Proto::H2, Proto::H3] {
            let before = edge
                .metric("edge_compress_decodes_total{coding=\"gzip\"}")
                .await;
            let plain = get(proto, &target, &path, None).await;
            assert_eq!(plain.header("content-encoding"), None, "{proto:?} {name}");
            assert!(
                plain.body.to_vec() == want(),
                "{proto:?} {name}: decoded body differs"
            );
            assert!(varies_on_ae(&plain));
            let after = edge
                .metric("edge_compress_decodes_total{coding=\"gzip\"}")
                .await;
            assert_eq!(after, before + 1, "{proto:?} {name}: decoded by the edge");
            // A client that takes br but not gzip gets br.
            let br = get(proto, &target, &path, Some("br")).await;
            assert_eq!(
                br.header("content-encoding"),
                Some("br"),
                "{proto:?} {name}"
            );
            assert!(
                decoded(&br).await == want(),
                "{proto:?} {name}: br body differs"
            );
            // A client that takes gzip gets the origin's bytes.
            let gz = get(proto, &target, &path, Some("gzip")).await;
            assert_eq!(gz.header("content-encoding"), Some("gzip"));
            assert!(decoded(&gz).await == want());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_variants_are_served_without_encoding_again() {
    let (_s, origin, edge, target) = start("compress-variants", "").await;
    let encodes = |coding: &str| {
        format!("edge_compress_encodes_total{{coding=\"{coding}\",made=\"stored\"}}")
    };
    let fly =
        |coding: &str| format!("edge_compress_encodes_total{{coding=\"{coding}\",made=\"fly\"}}");
    let hits = |coding: &str| format!("edge_compress_variant_hits_total{{coding=\"{coding}\"}}");
    let path = "/c/variants?cc=max-age=600&text=1&len=300000";
    let want = text_body("/c/variants", 1, 300_000);

    // Miss: the identity and the br variant are stored together, one br encoding.
    let r = get(Proto::H2, &target, path, Some("br")).await;
    assert!(decoded(&r).await == want);
    assert_eq!(edge.metric(&encodes("br")).await, 1);
    // Hits on every protocol: served from the variant, nothing encoded again.
    for proto in [Proto::H1, Proto::H2, Proto::H3] {
        let r = get(proto, &target, path, Some("br")).await;
        assert_eq!(r.header("content-encoding"), Some("br"));
        assert!(decoded(&r).await == want, "{proto:?}");
        assert_eq!(
            r.header("content-length"),
            Some(r.len.to_string().as_str()),
            "{proto:?}: stored variants know their length"
        );
    }
    assert_eq!(edge.metric(&encodes("br")).await, 1, "br encoded once");
    assert_eq!(edge.metric(&hits("br")).await, 3);
    assert_eq!(edge.metric(&fly("br")).await, 0);
    // Another coding: made once from the stored identity (on a hit), then served.
    for _ in 0..3 {
        let r = get(Proto::H1, &target, path, Some("gzip")).await;
        assert!(decoded(&r).await == want);
    }
    assert_eq!(edge.metric(&encodes("gzip")).await, 1, "gzip encoded once");
    assert_eq!(edge.metric(&hits("gzip")).await, 2);
    assert_eq!(origin.hits("/c/variants"), 1);

    // An invalidation (a POST to the URL) removes the identity and every variant.
    let post = fetch(Proto::H2, &target, Method::POST, path, &[]).await;
    assert!(post.status.is_success(), "{}", post.status);
    let r = get(Proto::H2, &target, path, Some("gzip")).await;
    assert_eq!(
        origin.hits("/c/variants"),
        3,
        "POST and a new fetch reached the origin"
    );
    let fresh = text_body("/c/variants", 3, 300_000);
    assert!(
        decoded(&r).await == fresh,
        "the new body, not a variant of the old one"
    );
    assert_eq!(edge.metric(&encodes("gzip")).await, 2);
    let r = get(Proto::H2, &target, path, Some("br")).await;
    assert!(decoded(&r).await == fresh, "no stale br variant");
    assert_eq!(edge.metric(&encodes("br")).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_objects_do_not_serve_old_variants() {
    let (_s, origin, edge, target) = start("compress-expiry", "").await;
    // max-age=2, not 1: Date has one-second granularity, so a 1 s object can be stale a few
    // milliseconds after it arrives, and the check below would race with that.
    let path = "/c/exp?cc=max-age=2&text=1&len=20000";
    let first = get(Proto::H2, &target, path, Some("zstd")).await;
    assert!(decoded(&first).await == text_body("/c/exp", 1, 20000));
    let hit = get(Proto::H2, &target, path, Some("zstd")).await;
    assert!(decoded(&hit).await == text_body("/c/exp", 1, 20000));
    assert_eq!(
        edge.metric("edge_compress_variant_hits_total{coding=\"zstd\"}")
            .await,
        1
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    // Expired, no validators: a full refetch replaces the body; the variant must follow it.
    let after = get(Proto::H2, &target, path, Some("zstd")).await;
    assert_eq!(origin.hits("/c/exp"), 2);
    assert!(decoded(&after).await == text_body("/c/exp", 2, 20000));
    let again = get(Proto::H2, &target, path, Some("zstd")).await;
    let body = decoded(&again).await;
    assert!(
        body == text_body("/c/exp", 2, 20000),
        "got {:?}… ({:?}, origin hits {})",
        String::from_utf8_lossy(&body[..body.len().min(20)]),
        again.header("cache-status"),
        origin.hits("/c/exp")
    );
}

/// Event streams reach the client event by event, compressed, while the origin still holds
/// the stream open. Checked with curl, which decodes as it reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_flushed_event_by_event() {
    let (setup, origin, edge, _target) = start("compress-sse", "").await;
    let ca = setup.dir.join("ca.pem");
    for (coding, http) in [
        ("br", "--http2"),
        ("gzip", "--http1.1"),
        ("zstd", "--http2"),
    ] {
        let url = format!("https://localhost:{}/sse?n=3", edge.https().port());
        let mut child = tokio::process::Command::new("curl")
            .args(["-sS", "-N", http, "--cacert"])
            .arg(&ca)
            .args(["-H", &format!("accept-encoding: {coding}"), "--compressed"])
            .args(["-D", "/dev/stderr", &url])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("curl (apt-get install curl)");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        for i in 0..3 {
            // The origin sends event i+1 only after we saw event i: a held-back event would
            // stall here (the timeout only turns that deadlock into a failure).
            let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("{coding}: event {i} held back"))
                .expect("read")
                .expect("a line");
            assert_eq!(line, format!("id: {i}"), "{coding}");
            let data = lines.next_line().await.expect("read").expect("line");
            assert_eq!(data, format!("data: event number {i}"));
            let _blank = lines.next_line().await.expect("read");
            origin.release_events(1);
        }
        let out = child.wait_with_output().await.expect("curl");
        let head = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
        assert!(
            head.contains(&format!("content-encoding: {coding}")),
            "{coding}: the stream was compressed: {head}"
        );
    }
}
