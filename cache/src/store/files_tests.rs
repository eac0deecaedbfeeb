//! Disk reads through kept-open content files: verified on the cold read, one read when warm,
//! closed by every removal.

use http::header::HeaderMap;

use super::disk::content_path;
use super::tests::{cfg, lookup_hit, put, temp_dir};
use super::*;
use crate::purge::Purge;
use crate::storage::Storage;

#[tokio::test]
async fn disk_reads_verify_cold_then_keep_the_file_open_and_refuse_damage() {
    let dir = temp_dir("pagecache");
    let store = Store::open(cfg(Some(&dir), 1 << 20, 16, 1 << 30))
        .await
        .expect("open");
    let body: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8).collect();
    put(&store, "https://a/p", &body, vec![], vec![]).await;
    let found = lookup_hit(&store, "https://a/p").await;
    let Found::Disk(entry) = &found else {
        panic!("expected a disk object")
    };
    let integrity = entry.integrity();
    // The layout we compute is where cacache put the content.
    let path = content_path(&dir, integrity);
    assert!(
        path.exists(),
        "cacache content layout changed: {} missing",
        path.display()
    );
    assert_eq!(
        store.read_disk(&found).await.expect("cold").as_ref(),
        &body[..]
    );
    assert_eq!(store.inner.files.len(), 1, "the verified file is kept open");
    assert_eq!(
        store.read_disk(&found).await.expect("warm").as_ref(),
        &body[..]
    );

    // Cut short under an open descriptor: never served short, and the entry goes.
    std::fs::write(&path, &body[..4000]).expect("truncate");
    assert!(
        store.read_disk(&found).await.is_err(),
        "a short file is refused"
    );
    assert_eq!(store.inner.files.len(), 0, "its descriptor is closed");
    assert!(matches!(
        store.lookup("https://a/p", &HeaderMap::new()).await,
        Lookup::Miss
    ));

    // Damaged content is refused on a cold read (the hash is checked when a file is opened).
    let other: Vec<u8> = body.iter().map(|b| b + 1).collect();
    put(&store, "https://a/q", &other, vec![], vec![]).await;
    let found = lookup_hit(&store, "https://a/q").await;
    let Found::Disk(entry) = &found else {
        panic!("expected a disk object")
    };
    let integrity = entry.integrity();
    let mut damaged = other.clone();
    damaged[10] ^= 0xff;
    std::fs::write(content_path(&dir, integrity), &damaged).expect("damage");
    assert!(
        store.read_disk(&found).await.is_err(),
        "cold reads verify the hash"
    );
    assert!(matches!(
        store.lookup("https://a/q", &HeaderMap::new()).await,
        Lookup::Miss
    ));
}

#[tokio::test]
async fn removals_close_open_files_and_a_new_body_is_not_read_through_the_old_one() {
    let dir = temp_dir("openfiles");
    let store = Store::open(cfg(Some(&dir), 1 << 20, 16, 1 << 30))
        .await
        .expect("open");
    let (old, new) = (vec![1u8; 3000], vec![2u8; 3000]);
    put(&store, "https://a/r", &old, vec![], vec![]).await;
    let found = lookup_hit(&store, "https://a/r").await;
    assert_eq!(
        store.read_disk(&found).await.expect("read").as_ref(),
        &old[..]
    );
    put(&store, "https://a/r", &new, vec![], vec![]).await;
    let found = lookup_hit(&store, "https://a/r").await;
    assert_eq!(
        store.read_disk(&found).await.expect("read").as_ref(),
        &new[..],
        "a refill is read from its own file"
    );
    assert_eq!(store.inner.files.len(), 1);
    store.purge(&Purge::hard_key("https://a/r")).await;
    assert_eq!(
        store.inner.files.len(),
        0,
        "a purged object's file is closed (its disk space is freed)"
    );
}

/// A disk hit on an object whose decoded entry is resident marks its use without the index
/// lock (through the mark it shares with the index): the eviction order must see it.
#[tokio::test(start_paused = true)]
async fn resident_disk_hits_count_for_least_recently_used() {
    use std::time::Duration;
    let dir = temp_dir("resident-touch");
    let store = Store::open(cfg(Some(&dir), 1 << 20, 1024, 500_000))
        .await
        .expect("open");
    let step = || tokio::time::advance(Duration::from_millis(5));
    // Distinct bodies: content files are shared by hash.
    let fill = |i: u8| {
        let store = &store;
        async move {
            put(
                store,
                &format!("https://a/{i}"),
                &[i; 100_000],
                vec![],
                vec![],
            )
            .await;
            step().await;
        }
    };
    for i in 0..5 {
        fill(i).await;
    }
    // Cold reads (index decoded): 0, then 1. Then a resident hit on 0 makes it newer than 1.
    for i in [0, 1, 0] {
        let _ = lookup_hit(&store, &format!("https://a/{i}")).await;
        step().await;
    }
    // Over budget twice: 2 and 3 go first, then 4 and the least recently used of 0 and 1.
    for i in 5..8 {
        fill(i).await;
    }
    store.flush().await;
    let hit = |i: usize| {
        let store = &store;
        async move {
            matches!(
                store
                    .lookup(&format!("https://a/{i}"), &http::HeaderMap::new())
                    .await,
                Lookup::Hit(_)
            )
        }
    };
    assert!(!hit(1).await, "1 was used least recently of the two");
    assert!(hit(0).await, "0's resident hit kept it");
}
