//! Content files are shared by hash (identical bodies under different URLs are one file):
//! a file goes when the last object using it goes (purge or eviction), not before, and a
//! removal leaves no index entry behind even when its file was already gone.

use std::path::Path;
use std::time::Duration;

use http::header::HeaderMap;

use super::disk::content_path;
use super::tests::{body_of, cfg, lookup_hit, put, temp_dir};
use super::*;
use crate::purge::Purge;
use crate::storage::Storage;

/// Disk-only objects (the memory tier takes nothing over 16 bytes).
async fn disk_store(dir: &Path, disk_bytes: u64) -> Store {
    Store::open(cfg(Some(dir), 1 << 20, 16, disk_bytes))
        .await
        .expect("open")
}

async fn content_of(store: &Store, primary: &str) -> PathBuf {
    let found = lookup_hit(store, primary).await;
    let Found::Disk(entry) = &found else {
        panic!("expected a disk object for {primary}")
    };
    content_path(&store.disk_cfg().expect("disk").dir, entry.integrity())
}

fn hit(found: Lookup) -> bool {
    matches!(found, Lookup::Hit(_))
}

#[tokio::test]
async fn a_purge_frees_the_content_file_of_the_last_url_using_it() {
    let dir = temp_dir("content-purge");
    let store = disk_store(&dir, 1 << 30).await;
    let shared = vec![3u8; 10_000];
    put(&store, "https://a/x", &shared, vec![], vec![]).await;
    put(&store, "https://a/y", &shared, vec![], vec![]).await;
    let file = content_of(&store, "https://a/x").await;
    assert_eq!(file, content_of(&store, "https://a/y").await, "one file");
    // The index layout eviction computes is where cacache put the entry.
    let index = super::disk::bucket_path(&dir, &keys::variant_key("https://a/x", &[]));
    assert!(
        index.exists(),
        "cacache index layout changed: {} missing",
        index.display()
    );
    assert_eq!(
        store.disk_bytes(),
        10_000,
        "the budget counts the file once"
    );

    store.purge(&Purge::hard_key("https://a/x")).await;
    store.flush().await;
    assert!(file.exists(), "y still uses the file");
    let y = lookup_hit(&store, "https://a/y").await;
    assert_eq!(body_of(&store, &y).await, shared, "y reads in full");

    store.purge(&Purge::hard_key("https://a/y")).await;
    store.flush().await;
    assert!(
        !file.exists(),
        "a purged body must leave the disk: {} kept",
        file.display()
    );
    assert_eq!(store.disk_bytes(), 0);
}

#[tokio::test(start_paused = true)]
async fn evicting_one_url_keeps_the_file_another_url_uses() {
    let dir = temp_dir("content-evict");
    // Room for two 10 kB files: a third starts eviction (down to 90 %).
    let store = disk_store(&dir, 25_000).await;
    let step = || tokio::time::advance(Duration::from_millis(5));
    let shared = vec![4u8; 10_000];
    put(&store, "https://a/x", &shared, vec![], vec![]).await;
    step().await;
    put(&store, "https://a/y", &shared, vec![], vec![]).await;
    step().await;
    put(&store, "https://a/z1", &[5u8; 10_000], vec![], vec![]).await;
    step().await;
    // y newer than z1: x (whose file y shares) and z1 are the least recently used.
    let _ = lookup_hit(&store, "https://a/y").await;
    step().await;
    put(&store, "https://a/z2", &[6u8; 10_000], vec![], vec![]).await;
    store.flush().await;

    assert!(!hit(store.lookup("https://a/x", &HeaderMap::new()).await));
    assert!(!hit(store.lookup("https://a/z1", &HeaderMap::new()).await));
    let y = lookup_hit(&store, "https://a/y").await;
    assert_eq!(
        body_of(&store, &y).await,
        shared,
        "y's body went with x's eviction"
    );
    assert_eq!(store.disk_bytes(), 20_000);
    assert!(
        super::tests::walk_size(&dir.join("content-v2")) <= 20_000,
        "evicted content stays on disk"
    );
}

#[tokio::test]
async fn shared_files_are_counted_again_after_a_restart() {
    let dir = temp_dir("content-restart");
    let shared = vec![8u8; 10_000];
    {
        let store = disk_store(&dir, 1 << 30).await;
        put(&store, "https://a/x", &shared, vec![], vec![]).await;
        put(&store, "https://a/y", &shared, vec![], vec![]).await;
        store.flush().await;
    }
    let store = disk_store(&dir, 1 << 30).await;
    assert_eq!(store.disk_bytes(), 10_000);
    let file = content_of(&store, "https://a/y").await;
    store.purge(&Purge::hard_key("https://a/x")).await;
    store.flush().await;
    let y = lookup_hit(&store, "https://a/y").await;
    assert_eq!(body_of(&store, &y).await, shared);
    store.purge(&Purge::hard_key("https://a/y")).await;
    store.flush().await;
    assert!(!file.exists(), "the last user's purge frees the file");
}

#[tokio::test(start_paused = true)]
async fn an_evicted_object_whose_file_was_gone_leaves_no_index_entry() {
    let dir = temp_dir("content-gone");
    let store = disk_store(&dir, 25_000).await;
    let step = || tokio::time::advance(Duration::from_millis(5));
    put(&store, "https://a/gone", &[1u8; 10_000], vec![], vec![]).await;
    let file = content_of(&store, "https://a/gone").await;
    step().await;
    std::fs::remove_file(&file).expect("remove by hand");
    put(&store, "https://a/b", &[2u8; 10_000], vec![], vec![]).await;
    step().await;
    put(&store, "https://a/c", &[3u8; 10_000], vec![], vec![]).await;
    store.flush().await;
    let key = keys::variant_key("https://a/gone", &[]);
    assert!(
        cacache::metadata(&dir, &key)
            .await
            .expect("index readable")
            .is_none(),
        "the evicted object's index entry stayed"
    );
}
