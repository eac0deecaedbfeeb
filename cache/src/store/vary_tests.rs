//! Lookups of unvaried objects without their Vary record, and what keeps them honest when
//! the origin starts to vary.

use http::header::{self, HeaderMap, HeaderValue};

use super::tests::{body_of, cfg, lookup_hit, put, temp_dir};
use super::*;
use crate::purge::PurgeScope;
use crate::rules;
use crate::storage::Storage;

fn lang(v: &'static str) -> HeaderMap {
    [(header::ACCEPT_LANGUAGE, HeaderValue::from_static(v))]
        .into_iter()
        .collect()
}

/// Stores `english`, varied on Accept-Language, as the `en` variant of `url`.
async fn put_english(store: &Store, url: &str) {
    let names = vec![header::ACCEPT_LANGUAGE];
    let vary = rules::vary_values(&lang("en"), &names);
    put(store, url, b"english", names, vary).await;
}

/// Memory-only and disk-backed stores alike.
async fn stores(tag: &str) -> Vec<Store> {
    let dir = temp_dir(tag);
    vec![
        Store::open(cfg(None, 1 << 20, 1 << 16, 0))
            .await
            .expect("open"),
        Store::open(cfg(Some(&dir), 1 << 20, 1 << 16, 1 << 30))
            .await
            .expect("open"),
    ]
}

#[tokio::test]
async fn an_unvaried_object_in_memory_is_a_hit_after_its_record_is_evicted() {
    for store in stores("record-evicted").await {
        put(&store, "https://a/plain", b"body", vec![], vec![]).await;
        // The records have their own bounded cache: a busy node evicts some of them while
        // the objects they list stay.
        store.inner.records.invalidate("https://a/plain").await;
        let found = lookup_hit(&store, "https://a/plain").await;
        assert_eq!(body_of(&store, &found).await, b"body");
    }
}

#[tokio::test]
async fn an_origin_that_starts_to_vary_replaces_the_unvaried_object_without_its_record() {
    for store in stores("starts-to-vary").await {
        let url = "https://a/starts";
        put(&store, url, b"plain", vec![], vec![]).await;
        store.inner.records.invalidate(url).await;
        if let Some(disk) = &store.inner.cfg.disk {
            // And not on disk either, as after its eviction there.
            cacache::remove(&disk.dir, keys::record_key(url))
                .await
                .expect("remove record");
        }
        let en = lang("en");
        put_english(&store, url).await;
        let Lookup::Hit(found) = store.lookup(url, &en).await else {
            panic!("the varied object is a hit")
        };
        assert_eq!(body_of(&store, &found).await, b"english");
        // Another language has no variant yet: the unvaried body must not answer for it.
        match store.lookup(url, &lang("fr")).await {
            Lookup::VaryMiss { .. } => {}
            other => panic!("expected a vary miss, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_origin_that_stops_varying_is_served_unvaried() {
    for store in stores("stops-varying").await {
        let url = "https://a/stops";
        let en = lang("en");
        put_english(&store, url).await;
        put(&store, url, b"plain", vec![], vec![]).await;
        for req in [en.clone(), lang("fr"), HeaderMap::new()] {
            let Lookup::Hit(found) = store.lookup(url, &req).await else {
                panic!("the unvaried object answers every request")
            };
            assert_eq!(body_of(&store, &found).await, b"plain");
        }
    }
}

#[tokio::test]
async fn a_purged_unvaried_object_is_not_served_from_memory() {
    for store in stores("purged-plain").await {
        let url = "https://a/purged";
        put(&store, url, b"body", vec![], vec![]).await;
        // A record-less purge (prefix): only the fence stands between the object and a hit.
        store
            .purge(&crate::purge::Purge::new(
                PurgeScope::Prefix {
                    host: "a".into(),
                    path_prefix: "/".into(),
                },
                crate::purge::PurgeMode::Hard,
            ))
            .await;
        assert!(matches!(
            store.lookup(url, &HeaderMap::new()).await,
            Lookup::Miss
        ));
    }
}
