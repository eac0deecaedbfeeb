//! A/B buckets: weights hold over many visitors, a visitor is sticky, pin cookies.

use std::time::Duration;

use super::Req;
use crate::{AbBy, AbSettings, Actions, Condition, Phase, Pin, Rule, RuleSet, bucket_of};

fn split(ab: AbSettings) -> RuleSet {
    let to = |name: &str, range| Rule {
        name: name.into(),
        phase: Phase::Request,
        when: Condition::Bucket(range),
        actions: Actions {
            pool: Some(name.into()),
            ..Actions::default()
        },
    };
    RuleSet::new(vec![to("a", 0..=89), to("b", 90..=99)], Some(ab)).unwrap()
}

/// SplitMix64: deterministic "random" numbers for the test's visitors.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[test]
fn ninety_ten_over_2000_visitors_and_sticky() {
    let rules = split(AbSettings {
        by: AbBy::Cookie("edge-ab".into()),
        pin: Some(Pin {
            cookie: "edge-ab".into(),
            lifetime: Duration::from_secs(30 * 86_400),
        }),
    });
    let mut b = 0;
    for visitor in 0..2000u64 {
        // First visit: no cookie, the engine picks a value and pins it.
        let mut req = Req::get("/");
        req.random = mix(visitor);
        let first = rules.evaluate(&req.facts());
        let cookie = first.set_cookie.clone().expect("pinned");
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"));
        let pair = cookie.split(';').next().unwrap().to_string();
        // Every later visit sends the cookie back: same pool, no new cookie, whatever random.
        for later in 0..3 {
            let mut again = Req::get("/").header("cookie", &pair);
            again.random = mix(visitor + 1_000_000 + later);
            let d = rules.evaluate(&again.facts());
            assert_eq!(d.pool, first.pool, "visitor {visitor} is sticky");
            assert_eq!(d.bucket, first.bucket);
            assert!(d.set_cookie.is_none());
        }
        if first.pool.as_deref() == Some("b") {
            b += 1;
        }
    }
    let share = f64::from(b) / 2000.0 * 100.0;
    assert!((8.0..=12.0).contains(&share), "variant b got {share}%");
}

#[test]
fn by_client_and_cookie_attributes() {
    let by_client = split(AbSettings {
        by: AbBy::Client,
        pin: None,
    });
    let mut b = 0;
    for i in 0..2000u32 {
        let mut req = Req::get("/");
        req.client = std::net::IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        let d = by_client.evaluate(&req.facts());
        assert!(d.set_cookie.is_none());
        assert_eq!(by_client.evaluate(&req.facts()).bucket, d.bucket);
        b += u32::from(d.pool.as_deref() == Some("b"));
    }
    let share = f64::from(b) / 20.0;
    assert!((8.0..=12.0).contains(&share), "variant b got {share}%");

    // Pinning by client: the cookie carries the address, so the bucket follows the visitor.
    let pinned = split(AbSettings {
        by: AbBy::Client,
        pin: Some(Pin {
            cookie: "ab".into(),
            lifetime: Duration::from_secs(3600),
        }),
    });
    let mut req = Req::get("/");
    req.https = false;
    let d = pinned.evaluate(&req.facts());
    assert_eq!(
        d.set_cookie.unwrap(),
        "ab=192.0.2.10; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"
    );
    assert_eq!(d.bucket, Some(bucket_of("192.0.2.10")));
    let mut moved = Req::get("/").header("cookie", "ab=192.0.2.10");
    moved.client = "203.0.113.5".parse().unwrap();
    assert_eq!(pinned.evaluate(&moved.facts()).bucket, d.bucket);
}

#[test]
fn the_hash_is_fixed() {
    // Stable across builds and machines: these values must never change.
    assert_eq!(
        ["", "a", "visitor-1", "192.0.2.10"].map(bucket_of),
        [3, 36, 66, 44]
    );
}
