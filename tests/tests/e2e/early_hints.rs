//! Interim responses (issue 12, item 8): an origin's `103 Early Hints` reaches HTTP/1.1,
//! HTTP/2 and HTTP/3 clients while the origin still holds its final response, never reaches
//! an HTTP/1.0 client, is never stored, and its fields never join the final response. Clients:
//! a raw socket, the `h2` and `h3` crates (hyper's client hides 1xx), and curl.

use edge_e2e::client::Proto;
use edge_e2e::raw::{OriginMode, RawResponse, RecordingOrigin, get_with_interim, h1_version};
use edge_e2e::{Edge, Setup};

async fn start(tag: &str) -> (Setup, RecordingOrigin, Edge) {
    let setup = Setup::new(tag);
    let origin = RecordingOrigin::start(OriginMode::Normal).await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    (setup, origin, edge)
}

fn all<'a>(r: &'a RawResponse, name: &str) -> Vec<&'a str> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn assert_hints(hints: &RawResponse, what: &str) {
    assert_eq!(hints.status, 103, "{what}: {hints:?}");
    assert_eq!(
        all(hints, "link"),
        [
            "</style.css>; rel=preload; as=style",
            "<https://cdn.test>; rel=preconnect"
        ],
        "{what}: {hints:?}"
    );
    assert_eq!(hints.header("x-hint"), Some("only-in-103"), "{what}");
    // Hop-by-hop fields of the origin's connection stay there.
    assert_eq!(hints.header("x-hop"), None, "{what}: {hints:?}");
    assert_eq!(hints.header("connection"), None, "{what}: {hints:?}");
}

fn assert_final_clean(last: &RawResponse, path: &str, what: &str) {
    assert_eq!(last.status, 200, "{what}: {last:?}");
    assert!(
        String::from_utf8_lossy(&last.body).starts_with(&format!("GET {path}\n")),
        "{what}: {last:?}"
    );
    assert!(all(last, "link").is_empty(), "{what}: {last:?}");
    assert_eq!(last.header("x-hint"), None, "{what}: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_hints_arrive_while_the_origin_holds_its_final_response() {
    let (setup, origin, edge) = start("hints-held").await;
    for (proto, addr) in [
        (Proto::Plain, edge.http()),
        (Proto::H2, edge.https()),
        (Proto::H3, edge.https()),
    ] {
        let path = format!("/early-hints/held/{proto:?}");
        let target = setup.target(addr, "localhost");
        // `release` runs only once the 103 is in: an edge holding the hints back until the
        // origin's final response would never get there.
        let got = get_with_interim(proto, &target, &path, || origin.release_hints())
            .await
            .unwrap_or_else(|e| panic!("{proto:?}: {e}"));
        assert_eq!(got.interim.len(), 1, "{proto:?}: {got:?}");
        assert_hints(&got.interim[0], &format!("{proto:?}"));
        assert_final_clean(&got.last, &path, &format!("{proto:?}"));
        assert_eq!(
            got.last.header("cache-status").map(|s| s.contains("fwd=")),
            Some(true)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_hints_are_never_stored_nor_replayed_on_hits() {
    let (setup, origin, edge) = start("hints-hit").await;
    let path = "/early-hints/stored";
    // The cache key holds the listener's port: one miss on each port, then hits.
    for (miss, hits) in [
        (Proto::Plain, &[Proto::Plain][..]),
        (Proto::H2, &[Proto::H2, Proto::H3][..]),
    ] {
        let addr = |p| {
            if p == Proto::Plain {
                edge.http()
            } else {
                edge.https()
            }
        };
        let target = setup.target(addr(miss), "localhost");
        let first = get_with_interim(miss, &target, path, || {})
            .await
            .unwrap_or_else(|e| panic!("{miss:?}: {e}"));
        assert_hints(&first.interim[0], &format!("{miss:?} miss"));
        for &proto in hits {
            let target = setup.target(addr(proto), "localhost");
            let hit = get_with_interim(proto, &target, path, || {})
                .await
                .unwrap_or_else(|e| panic!("{proto:?}: {e}"));
            assert!(hit.interim.is_empty(), "{proto:?}: {hit:?}");
            assert_final_clean(&hit.last, path, &format!("{proto:?} hit"));
            let status = hit.last.header("cache-status").unwrap_or("");
            assert!(status.contains("hit"), "{proto:?}: {status}");
        }
    }
    assert_eq!(origin.requests().len(), 2, "one origin fetch per port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_clients_get_no_interim_responses() {
    let (_setup, _origin, edge) = start("hints-http10").await;
    let path = "/early-hints/old-client";
    let got = h1_version(edge.http(), "localhost", path, "HTTP/1.0", || {})
        .await
        .expect("HTTP/1.0 exchange");
    assert!(got.interim.is_empty(), "{got:?}");
    assert_final_clean(&got.last, path, "HTTP/1.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_shows_the_hints_before_the_response() {
    let (setup, _origin, edge) = start("hints-curl").await;
    let ca = setup.dir.join("ca.pem");
    for http in ["--http1.1", "--http2"] {
        let url = format!(
            "https://localhost:{}/early-hints/curl{http}",
            edge.https().port()
        );
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "--fail", http, "--cacert"])
            .arg(&ca)
            .args([
                "--resolve",
                &format!("localhost:{}:127.0.0.1", edge.https().port()),
            ])
            .args(["-D", "-", "-o", "/dev/null", &url])
            .output()
            .await
            .expect("curl (apt-get install curl)");
        assert!(
            out.status.success(),
            "curl {http}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let heads = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        let blocks: Vec<&str> = heads.split("\r\n\r\n").filter(|b| !b.is_empty()).collect();
        assert_eq!(blocks.len(), 2, "{http}: {heads}");
        assert!(
            blocks[0].starts_with("http/") && blocks[0].contains(" 103"),
            "{http}: {heads}"
        );
        assert!(
            blocks[0].contains("link: </style.css>; rel=preload; as=style"),
            "{heads}"
        );
        assert!(blocks[1].contains(" 200"), "{http}: {heads}");
        assert!(!blocks[1].contains("link:"), "{http}: {heads}");
    }
}

/// One kept-alive HTTP/1.1 connection carries its 1xx interim responses through one channel
/// for its whole life (vendored hyper's `Connection::informational`): each request gets its
/// own hints and no other's, a hit or a request without hints gets none, and an HTTP/1.0
/// request on the same connection gets none while the next HTTP/1.1 one does again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_on_a_kept_alive_connection_gets_its_own_hints_only() {
    use edge_e2e::raw::parse_responses;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_setup, _origin, edge) = start("hints-keep-alive").await;
    let mut tcp = tokio::net::TcpStream::connect(edge.http())
        .await
        .expect("connect");
    let mut received = Vec::new();
    let steps: [(&str, &str, usize); 6] = [
        ("/early-hints/ka-1", "HTTP/1.1", 1),
        ("/no-hints/ka", "HTTP/1.1", 0),
        ("/early-hints/ka-1", "HTTP/1.1", 0),
        ("/early-hints/ka-2", "HTTP/1.1", 1),
        ("/early-hints/ka-3", "HTTP/1.0", 0),
        ("/early-hints/ka-4", "HTTP/1.1", 1),
    ];
    // `seen`: the final responses received before this step's.
    for (seen, (path, version, hints)) in steps.into_iter().enumerate() {
        let req =
            format!("GET {path} {version}\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.expect("write");
        // Read until this request's final response is complete.
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                let all = parse_responses(&received);
                let finals = all.iter().filter(|r| r.status >= 200).count();
                let complete = all.last().is_some_and(|r| {
                    r.status >= 200
                        && r.header("content-length")
                            .and_then(|l| l.parse::<usize>().ok())
                            .is_some_and(|l| r.body.len() == l)
                });
                if finals == seen + 1 && complete {
                    return all;
                }
                let mut chunk = [0u8; 8192];
                let n = tcp.read(&mut chunk).await.expect("read");
                assert!(n > 0, "{path}: connection closed");
                received.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{path} {version}: no final response"));
        // This exchange's responses: everything after the previous final one.
        let finals: Vec<usize> = (0..got.len()).filter(|&i| got[i].status >= 200).collect();
        let start = if seen == 0 { 0 } else { finals[seen - 1] + 1 };
        let mine = &got[start..];
        let interim: Vec<_> = mine.iter().filter(|r| r.status < 200).collect();
        assert_eq!(interim.len(), hints, "{path} {version}: {mine:?}");
        for h in interim {
            assert_hints(h, path);
        }
        let last = mine.last().expect("final");
        assert_final_clean(last, path, version);
    }
}
