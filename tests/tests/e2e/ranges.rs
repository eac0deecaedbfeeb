//! Range requests on a miss: small objects are fetched whole once and the range answered from
//! them; large ones are cached in slices, so a 10 GiB object is never fetched whole and its
//! last MiB costs the origin about one slice. Multi-range requests get multipart/byteranges.

use std::time::Duration;

use bytes::Bytes;
use edge_e2e::client::{self, Conn, Proto, Reply};
use edge_e2e::origin::Origin;
use edge_e2e::{Edge, Setup, Target, pattern_byte};
use http::{Method, StatusCode};

const MIB: u64 = 1 << 20;

async fn get_range(conn: &mut Conn, path: &str, range: &str) -> Reply {
    tokio::time::timeout(
        Duration::from_secs(60),
        conn.send(Method::GET, path, &[("range", range)], Bytes::new()),
    )
    .await
    .expect("answer within a minute")
    .expect("request")
}

fn pattern(start: u64, len: u64) -> Vec<u8> {
    (start..start + len).map(pattern_byte).collect()
}

fn cache_status(r: &Reply) -> String {
    r.header("cache-status").unwrap_or("<none>").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_gib_object_is_cached_in_slices_and_never_fetched_whole() {
    let setup = Setup::new("slices");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let target = setup.target(edge.https(), "localhost");
    let len: u64 = 10 << 30;
    let path = format!("/big/{len}");
    for proto in [Proto::H2, Proto::H1, Proto::H3] {
        let mut conn = Conn::connect(proto, &target).await.expect("connect");
        // Start, middle, end (the last MiB), and a range across a slice boundary.
        for (range, start, n) in [
            ("bytes=0-99".to_string(), 0, 100),
            (
                format!("bytes={}-{}", 5u64 << 30, (5u64 << 30) + 999),
                5 << 30,
                1000,
            ),
            (format!("bytes=-{MIB}"), len - MIB, MIB),
            (
                format!("bytes={}-{}", 3 * MIB - 10, 3 * MIB + 9),
                3 * MIB - 10,
                20,
            ),
        ] {
            let before = origin.big_bytes();
            let r = get_range(&mut conn, &path, &range).await;
            assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{proto:?} {range}");
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes {start}-{}/{len}", start + n - 1).as_str()),
                "{proto:?} {range}"
            );
            assert!(r.error.is_none(), "{proto:?} {range}: {:?}", r.error);
            assert_eq!(r.len, n, "{proto:?} {range}");
            assert!(
                r.body == pattern(start, n),
                "{proto:?} {range}: bytes differ"
            );
            let cost = origin.big_bytes() - before;
            assert!(
                cost <= 2 * MIB,
                "{proto:?} {range}: the origin sent {cost} bytes for it (at most two 1 MiB slices)"
            );
        }
    }
    // Everything asked again: from the stored slices, the origin sends nothing.
    let before = origin.big_bytes();
    let mut conn = Conn::connect(Proto::H2, &target).await.expect("connect");
    let r = get_range(&mut conn, &path, &format!("bytes=-{MIB}")).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert!(r.body == pattern(len - MIB, MIB));
    assert!(cache_status(&r).contains("hit"), "{}", cache_status(&r));
    assert_eq!(
        origin.big_bytes(),
        before,
        "stored slices were fetched again"
    );
    // The object changes at the origin: a slice of the new version never joins the old ones.
    origin.bump_big_version();
    let seven = 7u64 << 30;
    let r = get_range(&mut conn, &path, &format!("bytes={seven}-{}", seven + 99)).await;
    assert!(
        r.error.is_some() || r.status != StatusCode::PARTIAL_CONTENT,
        "a slice with another ETag was served beside the old ones: {}",
        cache_status(&r)
    );
    let mut conn = Conn::connect(Proto::H2, &target).await.expect("connect");
    let r = get_range(&mut conn, &path, &format!("bytes={seven}-{}", seven + 99)).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert!(r.error.is_none() && r.body == pattern(seven, 100));
    assert_eq!(r.header("etag"), Some(format!("\"big-{len}-v1\"").as_str()));
    // Never fetched whole, and the edge's memory stayed small.
    assert!(origin.big_bytes() < 16 * MIB, "{}", origin.big_bytes());
    assert!(
        edge.peak_rss_kib() < 256 * 1024,
        "edge peak RSS {} KiB",
        edge.peak_rss_kib()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_object_requested_by_range_is_fetched_whole_once() {
    let setup = Setup::new("range-small");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let target = setup.target(edge.https(), "localhost");
    let len = 3 * MIB;
    let path = format!("/big/{len}");
    let mut conn = Conn::connect(Proto::H2, &target).await.expect("connect");
    let r = get_range(&mut conn, &path, "bytes=1000-1999").await;
    assert_eq!(
        r.status,
        StatusCode::PARTIAL_CONTENT,
        "{}",
        cache_status(&r)
    );
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 1000-1999/{len}").as_str())
    );
    assert!(r.body == pattern(1000, 1000));
    // The object is stored whole now: other ranges and the whole thing come from the cache.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cost = origin.big_bytes();
    assert!(
        cost <= len + MIB,
        "fetched whole once (plus the first slice): {cost}"
    );
    let r = get_range(&mut conn, &path, &format!("bytes={}-", len - 10)).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert!(r.body == pattern(len - 10, 10));
    assert!(cache_status(&r).contains("; hit"), "{}", cache_status(&r));
    let whole = client::get(Proto::H1, &target, &path).await.expect("GET");
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.len, len);
    assert_eq!(origin.big_bytes(), cost, "no second fetch");
}

/// Several ranges in one request: multipart/byteranges, from a stored object and from slices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiple_ranges_get_multipart_byteranges() {
    let setup = Setup::new("multirange");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let target: Target = setup.target(edge.https(), "localhost");
    for (len, what) in [(100_000u64, "stored whole"), (64 * MIB, "sliced")] {
        let path = format!("/big/{len}");
        let mut conn = Conn::connect(Proto::H2, &target).await.expect("connect");
        // Store it first (whole, or its index and first slice).
        get_range(&mut conn, &path, "bytes=0-0").await;
        let want = [(10u64, 19u64), (40_000, 40_009), (len - 5, len - 1)];
        let spec = want
            .iter()
            .map(|(a, b)| format!("{a}-{b}"))
            .collect::<Vec<_>>()
            .join(",");
        let r = get_range(&mut conn, &path, &format!("bytes={spec}")).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{what}");
        let ct = r.header("content-type").expect("content-type").to_string();
        let boundary = ct
            .strip_prefix("multipart/byteranges; boundary=")
            .unwrap_or_else(|| panic!("{what}: {ct}"));
        let body = r.body.as_ref();
        assert_eq!(
            r.header("content-length")
                .and_then(|v| v.parse::<usize>().ok()),
            Some(body.len()),
            "{what}: Content-Length matches the multipart body"
        );
        // Parse the parts.
        let delim = format!("--{boundary}");
        let mut found = Vec::new();
        let mut rest = body;
        while let Some(i) = find(rest, delim.as_bytes()) {
            rest = &rest[i + delim.len()..];
            if rest.starts_with(b"--") {
                break;
            }
            let head_end = find(rest, b"\r\n\r\n").expect("part head");
            let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
            let range = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Range: bytes "))
                .expect("part Content-Range");
            let (span, total) = range.split_once('/').expect("span/total");
            assert_eq!(total.parse::<u64>().ok(), Some(len), "{what}");
            let (a, b) = span.split_once('-').expect("a-b");
            let (a, b): (u64, u64) = (a.parse().expect("a"), b.parse().expect("b"));
            let data_start = head_end + 4;
            let n = usize::try_from(b - a + 1).expect("len");
            assert!(
                rest[data_start..data_start + n] == pattern(a, b - a + 1)[..],
                "{what}: part {a}-{b} bytes differ"
            );
            found.push((a, b));
            rest = &rest[data_start + n..];
        }
        assert_eq!(found, want, "{what}: the parts, in order");
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
