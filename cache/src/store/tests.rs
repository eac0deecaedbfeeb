use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use http::StatusCode;
use http::header::{HeaderMap, HeaderValue};

use super::*;
use crate::purge::Purge;
use crate::rules;
use crate::storage::Storage;

pub(super) fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edge-cache-store-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

pub(super) fn cfg(dir: Option<&Path>, mem: u64, max_obj: u64, disk: u64) -> StoreConfig {
    StoreConfig {
        memory_bytes: mem,
        max_object_memory_bytes: max_obj,
        disk: dir.map(|d| DiskConfig {
            dir: d.to_path_buf(),
            max_bytes: disk,
            open_files: 64,
        }),
    }
}

fn meta(len: Option<u64>, vary: Vec<(HeaderName, Option<String>)>) -> StoredMeta {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60"),
    );
    if let Some(n) = len {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    StoredMeta {
        status: StatusCode::OK,
        headers,
        request_time: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        response_time: UNIX_EPOCH + Duration::from_secs(1_800_000_001),
        vary,
        body_len: 0,
        generation: 0,
        parsed: Default::default(),
    }
}

pub(super) async fn put(
    store: &Store,
    primary: &str,
    body: &[u8],
    names: Vec<HeaderName>,
    vary: Vec<(HeaderName, Option<String>)>,
) {
    let mut fill = store.fill(
        primary,
        meta(Some(body.len() as u64), vary),
        names,
        store.ticket(),
    );
    for chunk in body.chunks(7000) {
        fill.push(Bytes::copy_from_slice(chunk))
            .await
            .expect("push");
    }
    fill.finish().await.expect("finish");
    // The disk copy and the budget follow in the background: tests look at them settled.
    store.flush().await;
}

pub(super) async fn body_of(store: &Store, found: &Found) -> Vec<u8> {
    match found {
        Found::Memory(o) => o.body.to_vec(),
        Found::Disk(_) => {
            use tokio::io::AsyncReadExt;
            let mut r = store.open_disk(found).await.expect("open disk");
            let mut out = Vec::new();
            r.read_to_end(&mut out).await.expect("read");
            r.check().expect("integrity");
            out
        }
    }
}

#[tokio::test]
async fn memory_round_trip_and_miss() {
    let store = Store::open(cfg(None, 1 << 20, 1 << 16, 0))
        .await
        .expect("open");
    assert!(matches!(
        store.lookup("https://a/x", &HeaderMap::new()).await,
        Lookup::Miss
    ));
    put(&store, "https://a/x", b"hello", vec![], vec![]).await;
    let Lookup::Hit(found) = store.lookup("https://a/x", &HeaderMap::new()).await else {
        panic!("miss")
    };
    assert_eq!(body_of(&store, &found).await, b"hello");
    assert_eq!(found.meta().body_len, 5);
}

#[tokio::test]
async fn variants_by_vary_and_vary_miss() {
    let store = Store::open(cfg(None, 1 << 20, 1 << 16, 0))
        .await
        .expect("open");
    let names = vec![http::header::ACCEPT_LANGUAGE];
    let en: HeaderMap = [(
        http::header::ACCEPT_LANGUAGE,
        HeaderValue::from_static("en"),
    )]
    .into_iter()
    .collect();
    let fr: HeaderMap = [(
        http::header::ACCEPT_LANGUAGE,
        HeaderValue::from_static("fr"),
    )]
    .into_iter()
    .collect();
    put(
        &store,
        "https://a/v",
        b"english",
        names.clone(),
        rules::vary_values(&en, &names),
    )
    .await;
    let Lookup::VaryMiss { variant } = store.lookup("https://a/v", &fr).await else {
        panic!("a stored URL without this variant is a vary miss")
    };
    assert_eq!(
        variant,
        variant_key("https://a/v", &rules::vary_values(&fr, &names))
    );
    put(
        &store,
        "https://a/v",
        b"francais",
        names.clone(),
        rules::vary_values(&fr, &names),
    )
    .await;
    for (req, want) in [(&en, &b"english"[..]), (&fr, &b"francais"[..])] {
        let Lookup::Hit(f) = store.lookup("https://a/v", req).await else {
            panic!("miss")
        };
        assert_eq!(body_of(&store, &f).await, want);
    }
    assert_eq!(
        store.purge(&Purge::hard_key("https://a/v")).await.objects,
        2
    );
    assert!(matches!(
        store.lookup("https://a/v", &en).await,
        Lookup::Miss
    ));
}

#[tokio::test]
async fn truncated_or_abandoned_fills_are_never_visible() {
    let dir = temp_dir("trunc");
    let store = Store::open(cfg(Some(&dir), 1 << 20, 1 << 10, 1 << 30))
        .await
        .expect("open");
    // Declared 100 bytes, got 50.
    let mut fill = store.fill(
        "https://a/t",
        meta(Some(100), vec![]),
        vec![],
        store.ticket(),
    );
    fill.push(Bytes::from(vec![1u8; 50])).await.expect("push");
    assert!(matches!(
        fill.finish().await,
        Err(CacheError::Truncated {
            got: 50,
            expected: 100
        })
    ));
    // Spilled to disk (over the 1 KiB memory limit), then dropped mid-way.
    let mut fill = store.fill(
        "https://a/d",
        meta(Some(10_000), vec![]),
        vec![],
        store.ticket(),
    );
    fill.push(Bytes::from(vec![2u8; 5000])).await.expect("push");
    drop(fill);
    tokio::time::sleep(Duration::from_millis(100)).await;
    for key in ["https://a/t", "https://a/d"] {
        assert!(
            matches!(store.lookup(key, &HeaderMap::new()).await, Lookup::Miss),
            "{key}"
        );
    }
    assert_eq!(store.disk_bytes(), 0);
}

#[tokio::test]
async fn large_objects_live_on_disk_and_everything_survives_a_restart() {
    let dir = temp_dir("restart");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    {
        let store = Store::open(cfg(Some(&dir), 1 << 20, 64 * 1024, 1 << 30))
            .await
            .expect("open");
        put(&store, "https://a/big", &big, vec![], vec![]).await;
        put(&store, "https://a/small", b"tiny", vec![], vec![]).await;
        let Lookup::Hit(f) = store.lookup("https://a/big", &HeaderMap::new()).await else {
            panic!("miss")
        };
        assert!(
            matches!(f, Found::Disk(_)),
            "a 300 KB object must not be held in memory"
        );
        assert_eq!(body_of(&store, &f).await, big);
        store.flush().await;
    }
    let store = Store::open(cfg(Some(&dir), 1 << 20, 64 * 1024, 1 << 30))
        .await
        .expect("reopen");
    assert!(
        store.disk_bytes() >= big.len() as u64,
        "size index rebuilt from disk"
    );
    let Lookup::Hit(f) = store.lookup("https://a/big", &HeaderMap::new()).await else {
        panic!("big lost on restart")
    };
    assert_eq!(body_of(&store, &f).await, big);
    assert_eq!(
        f.meta().response_time,
        UNIX_EPOCH + Duration::from_secs(1_800_000_001),
        "times survive"
    );
    assert_eq!(f.meta().headers[http::header::CACHE_CONTROL], "max-age=60");
    let Lookup::Hit(f) = store.lookup("https://a/small", &HeaderMap::new()).await else {
        panic!("small lost")
    };
    assert!(
        matches!(f, Found::Memory(_)),
        "small disk hits are promoted to memory"
    );
    assert_eq!(body_of(&store, &f).await, b"tiny");

    // Updated headers (after a 304) persist too.
    let mut m = f.meta().clone();
    m.headers
        .insert("x-updated", HeaderValue::from_static("yes"));
    store
        .update_meta("https://a/small", &f, m, store.ticket())
        .await;
    store.flush().await;
    drop(store);
    let store = Store::open(cfg(Some(&dir), 1 << 20, 64 * 1024, 1 << 30))
        .await
        .expect("reopen");
    let Lookup::Hit(f) = store.lookup("https://a/small", &HeaderMap::new()).await else {
        panic!("lost")
    };
    assert_eq!(f.meta().headers["x-updated"], "yes");
}

/// On tokio's paused clock: the store stamps uses with `edge_core::clock`, so advancing it
/// orders them without waiting.
#[tokio::test(start_paused = true)]
async fn disk_budget_evicts_least_recently_used() {
    let dir = temp_dir("evict");
    let store = Store::open(cfg(Some(&dir), 1 << 20, 1024, 500_000))
        .await
        .expect("open");
    // Distinct bodies: identical ones would share one content file.
    let body = |i: u8| vec![i; 100_000];
    for i in 0..4 {
        put(&store, &format!("https://a/{i}"), &body(i), vec![], vec![]).await;
        tokio::time::advance(Duration::from_millis(5)).await;
    }
    store.flush().await;
    // Use object 0 so that object 1 is the least recently used.
    assert!(matches!(
        store.lookup("https://a/0", &HeaderMap::new()).await,
        Lookup::Hit(_)
    ));
    tokio::time::advance(Duration::from_millis(5)).await;
    // One eviction run (at 5: 1 and 2 go); a second, at 7, would take 3 and then 0.
    for i in 4..7 {
        put(&store, &format!("https://a/{i}"), &body(i), vec![], vec![]).await;
        tokio::time::advance(Duration::from_millis(5)).await;
    }
    store.flush().await;
    assert!(
        store.disk_bytes() <= 500_000,
        "disk total {} over budget",
        store.disk_bytes()
    );
    assert!(
        matches!(
            store.lookup("https://a/1", &HeaderMap::new()).await,
            Lookup::Miss
        ),
        "LRU evicted"
    );
    assert!(
        matches!(
            store.lookup("https://a/0", &HeaderMap::new()).await,
            Lookup::Hit(_)
        ),
        "recently used kept"
    );
    assert!(
        matches!(
            store.lookup("https://a/6", &HeaderMap::new()).await,
            Lookup::Hit(_)
        ),
        "newest kept"
    );
    let on_disk: u64 = walk_size(&dir.join("content-v2"));
    assert!(
        on_disk <= 500_000,
        "content files were not removed: {on_disk} bytes"
    );
}

pub(super) fn walk_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| {
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                walk_size(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

#[tokio::test]
async fn memory_tier_stays_within_budget_under_churn() {
    let budget = 2 * 1024 * 1024;
    let store = Store::open(cfg(None, budget, 64 * 1024, 0))
        .await
        .expect("open");
    for i in 0..20_000 {
        put(
            &store,
            &format!("https://a/churn/{i}"),
            &[1u8; 1024],
            vec![],
            vec![],
        )
        .await;
    }
    let used = store.memory_bytes().await;
    assert!(
        used <= budget,
        "memory tier holds {used} bytes, budget {budget}"
    );
    assert!(
        used > budget / 4,
        "the tier should actually be used: {used}"
    );
}

pub(super) async fn lookup_hit(store: &Store, primary: &str) -> Found {
    match store.lookup(primary, &HeaderMap::new()).await {
        Lookup::Hit(found) => found,
        other => panic!("expected a hit for {primary}, got {other:?}"),
    }
}

async fn put_encoded(store: &Store, primary: &str, identity: &Found, coding: Coding, body: &[u8]) {
    let mut fill = store.fill_encoded(
        primary,
        &identity.variant(primary),
        identity.meta().generation,
        coding,
    );
    fill.push(Bytes::copy_from_slice(body)).await.expect("push");
    fill.finish().await.expect("finish");
}

#[tokio::test]
async fn encoded_variants_follow_their_identity() {
    let dir = temp_dir("encoded");
    // A small memory limit sends the 100 KB identity and its variants to disk.
    let store = Store::open(cfg(Some(&dir), 1 << 20, 1 << 16, 1 << 30))
        .await
        .expect("open");
    for (url, size) in [("https://a/small", 100usize), ("https://a/large", 100_000)] {
        let body = vec![b'x'; size];
        put(&store, url, &body, vec![], vec![]).await;
        let identity = lookup_hit(&store, url).await;
        assert!(identity.meta().generation != 0);
        assert!(
            store
                .lookup_encoded(url, &identity, Coding::Br)
                .await
                .is_none()
        );
        let encoded = vec![b'b'; size / 2];
        put_encoded(&store, url, &identity, Coding::Br, &encoded).await;
        let found = store
            .lookup_encoded(url, &identity, Coding::Br)
            .await
            .expect("encoded variant stored");
        assert_eq!(body_of(&store, &found).await, encoded, "{url}");
        assert!(
            store
                .lookup_encoded(url, &identity, Coding::Gzip)
                .await
                .is_none()
        );

        // A new body for the URL: the old variant no longer applies.
        put(&store, url, &body, vec![], vec![]).await;
        let fresh = lookup_hit(&store, url).await;
        assert_ne!(fresh.meta().generation, identity.meta().generation);
        assert!(
            store
                .lookup_encoded(url, &fresh, Coding::Br)
                .await
                .is_none(),
            "{url}: a variant of an older body must not be served"
        );

        // Invalidation removes the identity and every variant.
        put_encoded(&store, url, &fresh, Coding::Gzip, b"gz").await;
        assert!(
            store
                .lookup_encoded(url, &fresh, Coding::Gzip)
                .await
                .is_some()
        );
        store.purge(&Purge::hard_key(url)).await;
        assert!(matches!(
            store.lookup(url, &HeaderMap::new()).await,
            Lookup::Miss
        ));
        assert!(
            store
                .lookup_encoded(url, &fresh, Coding::Gzip)
                .await
                .is_none()
        );
    }
    // Variants survive a restart with their identity.
    put(&store, "https://a/keep", b"identity body", vec![], vec![]).await;
    let identity = lookup_hit(&store, "https://a/keep").await;
    put_encoded(
        &store,
        "https://a/keep",
        &identity,
        Coding::Zstd,
        b"zstd body",
    )
    .await;
    store.flush().await;
    drop(store);
    let store = Store::open(cfg(Some(&dir), 1 << 20, 1 << 16, 1 << 30))
        .await
        .expect("reopen");
    let identity = lookup_hit(&store, "https://a/keep").await;
    let found = store
        .lookup_encoded("https://a/keep", &identity, Coding::Zstd)
        .await
        .expect("variant back after restart");
    assert_eq!(body_of(&store, &found).await, b"zstd body");
}

#[tokio::test]
async fn a_purge_fences_off_fills_that_started_before_it() {
    for dir in [None, Some(temp_dir("fence"))] {
        let store = Store::open(cfg(dir.as_deref(), 1 << 20, 1 << 16, 1 << 30))
            .await
            .expect("open");
        let url = "https://a/fenced";
        // A fill in flight when the purge comes: it must publish nothing.
        let early = store.ticket();
        let mut fill = store.fill(url, meta(Some(3), vec![]), vec![], early);
        fill.push(Bytes::from_static(b"old")).await.expect("push");
        store.purge(&Purge::hard_key(url)).await;
        assert!(matches!(fill.finish().await, Err(CacheError::Fenced)));
        assert!(matches!(
            store.lookup(url, &HeaderMap::new()).await,
            Lookup::Miss
        ));
        // A revalidation that started before the purge does not bring the object back.
        put(&store, url, b"new", vec![], vec![]).await;
        let Lookup::Hit(found) = store.lookup(url, &HeaderMap::new()).await else {
            panic!("a fill after the purge is stored")
        };
        store.purge(&Purge::hard_key(url)).await;
        store
            .update_meta(url, &found, found.meta().clone(), early)
            .await;
        assert!(matches!(
            store.lookup(url, &HeaderMap::new()).await,
            Lookup::Miss
        ));
        // Other keys are untouched by the fence.
        let mut other = store.fill("https://a/other", meta(Some(1), vec![]), vec![], early);
        other.push(Bytes::from_static(b"x")).await.expect("push");
        other
            .finish()
            .await
            .expect("another key's fill is not fenced");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_wins_over_the_object_it_replaces_in_every_tier() {
    let dir = temp_dir("replace");
    let small = 1024u64;
    let store = Store::open(cfg(Some(&dir), 1 << 20, small, 1 << 30))
        .await
        .expect("open");
    let url = "https://a/replaced";
    // A small object (memory, disk copy in the background), then a large one (disk only).
    put(&store, url, &[1u8; 100], vec![], vec![]).await;
    put(&store, url, &[2u8; 5000], vec![], vec![]).await;
    let found = lookup_hit(&store, url).await;
    assert_eq!(
        body_of(&store, &found).await,
        vec![2u8; 5000],
        "large replaced small"
    );
    // Many quick replacements, their disk copies written in the background in any order:
    // the last one is what memory and, after a restart, the disk hold.
    for round in 0..30u8 {
        let mut fills = Vec::new();
        for i in 0..4u8 {
            let body = vec![round * 4 + i; 64];
            let mut fill = store.fill(url, meta(Some(64), vec![]), vec![], store.ticket());
            fill.push(Bytes::from(body)).await.expect("push");
            fills.push(fill);
        }
        for fill in fills {
            fill.finish().await.expect("finish");
        }
    }
    store.flush().await;
    let last = vec![29 * 4 + 3; 64];
    assert_eq!(body_of(&store, &lookup_hit(&store, url).await).await, last);
    drop(store);
    let store = Store::open(cfg(Some(&dir), 1 << 20, small, 1 << 30))
        .await
        .expect("reopen");
    assert_eq!(
        body_of(&store, &lookup_hit(&store, url).await).await,
        last,
        "the disk holds the last replacement"
    );
}
