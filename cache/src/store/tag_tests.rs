//! The tag index against a model: random fills, tag and key purges, evictions (a small memory
//! tier) and a restart, and after each step the index says exactly what the store holds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use http::StatusCode;
use http::header::{HeaderMap, HeaderValue};

use super::*;
use crate::purge::{Purge, PurgeMode, PurgeScope, site_tag};
use crate::storage::Storage;

const KEYS: usize = 120;
const TAGS: usize = 6;

/// xorshift: reproducible without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn meta(len: usize) -> StoredMeta {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=600"),
    );
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    StoredMeta {
        status: StatusCode::OK,
        headers,
        request_time: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        response_time: UNIX_EPOCH + Duration::from_secs(1_800_000_001),
        vary: Vec::new(),
        body_len: 0,
        generation: 0,
        parsed: Default::default(),
    }
}

fn url(i: usize) -> String {
    format!("https://a.test/o/{i}")
}

fn tag(t: usize) -> String {
    format!("t{t}")
}

/// What the store holds right now: variant → tags (memory tier, then the disk index).
async fn held(store: &Store, dir: Option<&Path>) -> BTreeMap<String, BTreeSet<String>> {
    store.inner.mem.run_pending_tasks().await;
    let mut out = BTreeMap::new();
    for (k, v) in store.inner.mem.iter() {
        out.insert(
            k.to_string(),
            v.tags.iter().map(|t| t.to_string()).collect(),
        );
    }
    if let Some(dir) = dir {
        for m in cacache::index::ls(dir).filter_map(Result::ok) {
            if let Ok((_, extra)) = codec::decode(&m.key, m.metadata.clone())
                && m.key.starts_with("o:")
            {
                out.insert(m.key, extra.tags.iter().map(|t| t.to_string()).collect());
            }
        }
    }
    out
}

async fn assert_index_matches(store: &Store, dir: Option<&Path>, step: &str) {
    store.flush().await;
    let held = held(store, dir).await;
    for t in 0..TAGS {
        let name = site_tag("s", &tag(t));
        let indexed: BTreeSet<String> = store
            .inner
            .tags
            .variants(&name)
            .iter()
            .map(|v| v.to_string())
            .collect();
        let expected: BTreeSet<String> = held
            .iter()
            .filter(|(_, tags)| tags.contains(&name))
            .map(|(v, _)| v.clone())
            .collect();
        if indexed != expected {
            for v in expected.symmetric_difference(&indexed) {
                let mem = store
                    .inner
                    .mem
                    .get(v)
                    .await
                    .map(|o| (o.meta.generation, o.tags.clone()));
                let disk = match dir {
                    Some(d) => cacache::metadata(d, v)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|m| codec::decode(v, m.metadata).ok())
                        .map(|(m, e)| (m.generation, e.tags)),
                    None => None,
                };
                eprintln!("{v}: memory {mem:?} disk {disk:?}");
            }
        }
        assert_eq!(indexed, expected, "tag {name} after {step}");
    }
    let (_, objects, _) = store.tag_index_size();
    let tagged = held.values().filter(|t| !t.is_empty()).count();
    assert_eq!(objects, tagged, "tagged objects after {step}");
}

async fn run(dir: Option<&Path>, seed: u64) {
    let cfg = |dir: Option<&Path>| StoreConfig {
        // Small enough that fills evict one another from memory.
        memory_bytes: 64 * 1024,
        max_object_memory_bytes: 4096,
        disk: dir.map(|d| DiskConfig {
            dir: d.to_path_buf(),
            max_bytes: 1 << 30,
            open_files: 64,
        }),
    };
    let mut store = Store::open(cfg(dir)).await.expect("open");
    let mut rng = Rng(seed);
    // Model: key → the tags of its latest fill, and whether a purge since then covers it.
    let mut filled: BTreeMap<usize, (BTreeSet<usize>, bool)> = BTreeMap::new();
    for step in 0..600 {
        match rng.next(10) {
            0 => {
                let t = rng.next(TAGS);
                let mode = if rng.next(2) == 0 {
                    PurgeMode::Hard
                } else {
                    PurgeMode::Soft
                };
                let scope = PurgeScope::Tag {
                    site: Some("s".into()),
                    tag: tag(t),
                };
                store.purge(&Purge::new(scope, mode)).await;
                if mode == PurgeMode::Hard {
                    for (tags, purged) in filled.values_mut() {
                        *purged |= tags.contains(&t);
                    }
                }
            }
            1 => {
                let k = rng.next(KEYS);
                store.purge(&Purge::hard_key(url(k))).await;
                if let Some((_, purged)) = filled.get_mut(&k) {
                    *purged = true;
                }
            }
            2 if dir.is_some() && step % 50 == 2 => {
                store.flush().await;
                drop(store);
                store = Store::open(cfg(dir)).await.expect("reopen");
            }
            _ => {
                let k = rng.next(KEYS);
                let tags: BTreeSet<usize> = (0..TAGS).filter(|_| rng.next(3) == 0).collect();
                let size = 200 + rng.next(if dir.is_some() { 6000 } else { 3000 });
                let mut fill = store.fill(&url(k), meta(size), Vec::new(), store.ticket());
                fill.set_tags(
                    tags.iter()
                        .map(|t| Arc::from(site_tag("s", &tag(*t))))
                        .collect(),
                );
                fill.push(Bytes::from(vec![7u8; size])).await.expect("push");
                fill.finish().await.expect("finish");
                filled.insert(k, (tags, false));
            }
        }
        if step % 20 == 19 {
            assert_index_matches(&store, dir, &format!("step {step}")).await;
            // A hard purge is never undone: purged keys (not filled again since) are misses.
            for (k, (_, purged)) in &filled {
                if *purged {
                    assert!(
                        matches!(
                            store.lookup(&url(*k), &HeaderMap::new()).await,
                            Lookup::Miss
                        ),
                        "{} purged, found at step {step}",
                        url(*k)
                    );
                }
            }
        }
    }
    assert_index_matches(&store, dir, "the end").await;
}

#[tokio::test]
async fn tag_index_matches_a_model_in_memory() {
    for seed in [1, 7, 42] {
        run(None, seed).await;
    }
}

#[tokio::test]
async fn tag_index_matches_a_model_with_disk_and_restarts() {
    let d = std::env::temp_dir().join(format!("edge-cache-tags-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    for seed in [3, 11, 29] {
        run(Some(&d), seed).await;
    }
    let _ = std::fs::remove_dir_all(&d);
}
