//! Every condition kind, combinators, time windows.

use super::{Req, pool_rule, set};
use crate::{Condition, Device, Glob, TimeWindow, ValueTest};

fn holds(c: Condition, req: &Req) -> bool {
    let rules = set(vec![pool_rule("r", c)]);
    rules.evaluate(&req.facts()).pool.is_some()
}

#[test]
fn condition_table() {
    let ua_iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1";
    let base = Req::get("/shop/cart?ref=mail&q=a+b%21");
    let mut geo = base.clone();
    geo.country = Some("DE".into());
    geo.continent = Some("EU".into());
    geo.asn = Some(3320);
    let mut post = base.clone();
    post.method = http::Method::POST;
    let cookies = base
        .clone()
        .header("cookie", "a=1; beta=\"1\"")
        .header("cookie", "session=xyz");
    let cases: Vec<(&str, Condition, Req, bool)> = vec![
        (
            "prefix",
            Condition::PathPrefix("/shop/".into()),
            base.clone(),
            true,
        ),
        (
            "prefix no",
            Condition::PathPrefix("/blog/".into()),
            base.clone(),
            false,
        ),
        (
            "exact",
            Condition::PathExact("/shop/cart".into()),
            base.clone(),
            true,
        ),
        (
            "exact no",
            Condition::PathExact("/shop".into()),
            base.clone(),
            false,
        ),
        (
            "glob",
            Condition::PathGlob(Glob::new("/*/cart").unwrap()),
            base.clone(),
            true,
        ),
        (
            "glob no",
            Condition::PathGlob(Glob::new("/*").unwrap()),
            base.clone(),
            false,
        ),
        (
            "method",
            Condition::Method(vec![http::Method::GET, http::Method::HEAD]),
            base.clone(),
            true,
        ),
        (
            "method no",
            Condition::Method(vec![http::Method::GET]),
            post.clone(),
            false,
        ),
        (
            "header present",
            Condition::header("user-agent", ValueTest::Present).unwrap(),
            base.clone().header("user-agent", "x"),
            true,
        ),
        (
            "header absent",
            Condition::header("user-agent", ValueTest::Absent).unwrap(),
            base.clone(),
            true,
        ),
        (
            "header missing",
            Condition::header("user-agent", ValueTest::Present).unwrap(),
            base.clone(),
            false,
        ),
        (
            "header equals",
            Condition::header("X-Beta", ValueTest::Equals("on".into())).unwrap(),
            base.clone().header("x-beta", "on"),
            true,
        ),
        (
            "header equals no",
            Condition::header("X-Beta", ValueTest::Equals("on".into())).unwrap(),
            base.clone().header("x-beta", "ON"),
            false,
        ),
        (
            "header regex",
            Condition::header(
                "user-agent",
                ValueTest::from_keys(None, None, Some("iPhone|iPad")).unwrap(),
            )
            .unwrap(),
            base.clone().header("user-agent", ua_iphone),
            true,
        ),
        (
            "cookie present",
            Condition::Cookie("session".into(), ValueTest::Present),
            cookies.clone(),
            true,
        ),
        (
            "cookie quoted equals",
            Condition::Cookie("beta".into(), ValueTest::Equals("1".into())),
            cookies.clone(),
            true,
        ),
        (
            "cookie no",
            Condition::Cookie("other".into(), ValueTest::Present),
            cookies.clone(),
            false,
        ),
        (
            "cookie absent",
            Condition::Cookie("other".into(), ValueTest::Absent),
            cookies.clone(),
            true,
        ),
        (
            "query equals",
            Condition::Query("ref".into(), ValueTest::Equals("mail".into())),
            base.clone(),
            true,
        ),
        (
            "query decoded",
            Condition::Query("q".into(), ValueTest::Equals("a b!".into())),
            base.clone(),
            true,
        ),
        (
            "query missing",
            Condition::Query("x".into(), ValueTest::Present),
            base.clone(),
            false,
        ),
        (
            "client",
            Condition::client(&["192.0.2.0/24"]).unwrap(),
            base.clone(),
            true,
        ),
        (
            "client no",
            Condition::client(&["10.0.0.0/8", "2001:db8::/32"]).unwrap(),
            base.clone(),
            false,
        ),
        (
            "country",
            Condition::codes(&["de", "AT"], false).unwrap(),
            geo.clone(),
            true,
        ),
        (
            "country unknown",
            Condition::codes(&["DE"], false).unwrap(),
            base.clone(),
            false,
        ),
        (
            "continent",
            Condition::codes(&["EU"], true).unwrap(),
            geo.clone(),
            true,
        ),
        ("asn", Condition::Asn(vec![3320]), geo.clone(), true),
        ("asn no", Condition::Asn(vec![1]), geo.clone(), false),
        (
            "device",
            Condition::Device(vec![Device::Mobile]),
            base.clone().header("user-agent", ua_iphone),
            true,
        ),
        (
            "device no",
            Condition::Device(vec![Device::Mobile, Device::Tablet]),
            base.clone(),
            false,
        ),
        // Combinators.
        ("all empty", Condition::All(vec![]), base.clone(), true),
        ("any empty", Condition::Any(vec![]), base.clone(), false),
        (
            "all",
            Condition::All(vec![
                Condition::PathPrefix("/shop".into()),
                Condition::Method(vec![http::Method::GET]),
            ]),
            post.clone(),
            false,
        ),
        (
            "any",
            Condition::Any(vec![
                Condition::PathPrefix("/blog".into()),
                Condition::Method(vec![http::Method::POST]),
            ]),
            post.clone(),
            true,
        ),
        (
            "not",
            Condition::Not(Box::new(Condition::PathPrefix("/shop".into()))),
            base.clone(),
            false,
        ),
    ];
    for (what, cond, req, want) in cases {
        assert_eq!(holds(cond, &req), want, "{what}");
    }
}

#[test]
fn time_windows() {
    let w = |from, to, zone, days: &[&str]| {
        Condition::Time(TimeWindow::new(from, to, zone, days).unwrap())
    };
    let cases: Vec<(&str, Condition, &str, bool)> = vec![
        // 2025-07-16 is a Wednesday.
        (
            "utc inside",
            w("09:00", "17:00", "UTC", &[]),
            "2025-07-16T12:00:00Z",
            true,
        ),
        (
            "utc from is inclusive",
            w("12:00", "17:00", "UTC", &[]),
            "2025-07-16T12:00:00Z",
            true,
        ),
        (
            "utc to is exclusive",
            w("09:00", "12:00", "UTC", &[]),
            "2025-07-16T12:00:00Z",
            false,
        ),
        // Berlin is UTC+2 in July: 12:00Z is 14:00 there.
        (
            "zone",
            w("13:30", "14:30", "Europe/Berlin", &[]),
            "2025-07-16T12:00:00Z",
            true,
        ),
        (
            "zone no",
            w("11:30", "12:30", "Europe/Berlin", &[]),
            "2025-07-16T12:00:00Z",
            false,
        ),
        // And UTC+1 in January.
        (
            "zone winter",
            w("13:00", "13:30", "Europe/Berlin", &[]),
            "2025-01-15T12:10:00Z",
            true,
        ),
        (
            "new york",
            w("08:00", "08:30", "America/New_York", &[]),
            "2025-07-16T12:10:00Z",
            true,
        ),
        // Across midnight.
        (
            "night late",
            w("22:00", "06:00", "UTC", &[]),
            "2025-07-16T23:30:00Z",
            true,
        ),
        (
            "night early",
            w("22:00", "06:00", "UTC", &[]),
            "2025-07-17T05:59:00Z",
            true,
        ),
        (
            "night day",
            w("22:00", "06:00", "UTC", &[]),
            "2025-07-16T12:00:00Z",
            false,
        ),
        // Days: the window's opening day counts.
        (
            "weekday",
            w("09:00", "17:00", "UTC", &["mon", "wed"]),
            "2025-07-16T12:00:00Z",
            true,
        ),
        (
            "weekday no",
            w("09:00", "17:00", "UTC", &["sat", "Sunday"]),
            "2025-07-16T12:00:00Z",
            false,
        ),
        (
            "friday night, saturday morning",
            w("22:00", "06:00", "UTC", &["fri"]),
            "2025-07-19T03:00:00Z",
            true,
        ),
        (
            "saturday night",
            w("22:00", "06:00", "UTC", &["fri"]),
            "2025-07-19T23:00:00Z",
            false,
        ),
        (
            "friday early morning",
            w("22:00", "06:00", "UTC", &["fri"]),
            "2025-07-18T03:00:00Z",
            false,
        ),
        (
            "whole day",
            w("00:00", "00:00", "UTC", &["wed"]),
            "2025-07-16T23:59:00Z",
            true,
        ),
        (
            "until 24:00",
            w("20:00", "24:00", "Asia/Tokyo", &[]),
            "2025-07-16T14:59:00Z",
            true,
        ),
    ];
    for (what, cond, at, want) in cases {
        assert_eq!(holds(cond, &Req::get("/").at(at)), want, "{what}");
    }
    for (from, to, zone, days) in [
        ("9:00", "25:00", "UTC", vec![]),
        ("09:60", "10:00", "UTC", vec![]),
        ("0900", "10:00", "UTC", vec![]),
        ("09:00", "10:00", "Mars/Olympus", vec![]),
        ("09:00", "10:00", "UTC", vec!["someday"]),
    ] {
        assert!(
            TimeWindow::new(from, to, zone, &days).is_err(),
            "{from} {to} {zone} {days:?}"
        );
    }
}

#[test]
fn first_match_wins_and_order_is_kept() {
    let rules = set(vec![
        pool_rule("a", Condition::PathPrefix("/a".into())),
        pool_rule("ab", Condition::PathPrefix("/ab".into())),
        pool_rule("any", Condition::All(vec![])),
    ]);
    let d = rules.evaluate(&Req::get("/abc").facts());
    assert_eq!(d.pool.as_deref(), Some("a"));
    let names: Vec<&str> = d.matched.iter().map(|n| &**n).collect();
    assert_eq!(names, ["a", "ab", "any"]);
    let d = rules.evaluate(&Req::get("/x").facts());
    assert_eq!(d.pool.as_deref(), Some("any"));
}
