//! Actions: what accumulates, what the first match decides, response rules, build-time checks,
//! `describe()`.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, StatusCode};

use super::{Req, pool_rule};
use crate::auth::{Auth, BasicAuth, BasicOptions};
use crate::{
    Actions, Condition, Device, HeaderAction, HeaderOp, Phase, Redirect, Respond, Rewrite,
    RewriteTo, Rule, RuleSet, Terminal, Var, apply,
};

fn rule(name: &str, when: Condition, actions: Actions) -> Rule {
    Rule {
        name: name.into(),
        phase: Phase::Request,
        when,
        actions,
    }
}

fn always() -> Condition {
    Condition::All(vec![])
}

#[test]
fn headers_accumulate_in_order() {
    let rules = RuleSet::new(
        vec![
            rule(
                "one",
                always(),
                Actions {
                    request_headers: vec![
                        HeaderAction::remove("x-debug").unwrap(),
                        HeaderAction::set("x-client", "${client} ${country}").unwrap(),
                    ],
                    response_headers: vec![HeaderAction::append("x-served", "a").unwrap()],
                    ..Actions::default()
                },
            ),
            rule(
                "two",
                Condition::PathPrefix("/shop".into()),
                Actions {
                    request_headers: vec![
                        HeaderAction::append("x-client", "${request_id}").unwrap(),
                    ],
                    response_headers: vec![
                        HeaderAction::append("x-served", "b-${scheme}").unwrap(),
                    ],
                    ..Actions::default()
                },
            ),
            rule(
                "three",
                Condition::PathPrefix("/blog".into()),
                Actions {
                    response_headers: vec![HeaderAction::set("x-served", "c").unwrap()],
                    ..Actions::default()
                },
            ),
        ],
        None,
    )
    .unwrap();
    let mut req = Req::get("/shop/x").header("x-debug", "1");
    req.country = Some("DE".into());
    let d = rules.evaluate(&req.facts());
    let mut h = req.headers.clone();
    apply(&d.request_headers, &mut h);
    assert!(h.get("x-debug").is_none());
    let vals: Vec<&HeaderValue> = h.get_all("x-client").iter().collect();
    assert_eq!(vals, ["192.0.2.10 DE", "req-1"]);
    let mut resp = HeaderMap::new();
    apply(&d.response_headers, &mut resp);
    let vals: Vec<&HeaderValue> = resp.get_all("x-served").iter().collect();
    assert_eq!(vals, ["a", "b-https"]);
}

#[test]
fn rewrites_redirects_and_responses() {
    let rules = RuleSet::new(
        vec![
            rule(
                "old",
                Condition::PathPrefix("/old/".into()),
                Actions {
                    rewrite: Some(Rewrite::regex("^/old/(.*)$", "/new/$1").unwrap()),
                    ..Actions::default()
                },
            ),
            rule(
                "query",
                always(),
                Actions {
                    rewrite: Some(
                        Rewrite::set(Some("/v2${path}"), Some("from=${device}")).unwrap(),
                    ),
                    ..Actions::default()
                },
            ),
            rule(
                "blog",
                Condition::PathPrefix("/blog/".into()),
                Actions {
                    redirect: Some(Redirect::new(301, "https://${host}/articles${path}").unwrap()),
                    ..Actions::default()
                },
            ),
            rule(
                "down",
                Condition::PathPrefix("/".into()),
                Actions {
                    respond: Some(
                        Respond::new(Some(503), "down (${request_id})\n", "text/plain").unwrap(),
                    ),
                    ..Actions::default()
                },
            ),
        ],
        None,
    )
    .unwrap();
    let d = rules.evaluate(&Req::get("/old/a/b?x=1").facts());
    assert_eq!(
        d.rewrite,
        Some(RewriteTo {
            path: "/new/a/b".into(),
            query: Some("x=1".into())
        })
    );
    // The regex rewrite does not match: the next rule's rewrite applies.
    let d = rules.evaluate(&Req::get("/blog/post").facts());
    assert_eq!(
        d.rewrite,
        Some(RewriteTo {
            path: "/v2/blog/post".into(),
            query: Some("from=desktop".into())
        })
    );
    assert_eq!(d.device, Some(Device::Desktop));
    assert_eq!(
        d.terminal,
        Some(Terminal::Redirect {
            status: StatusCode::MOVED_PERMANENTLY,
            location: HeaderValue::from_static("https://shop.test/articles/blog/post"),
        })
    );
    let d = rules.evaluate(&Req::get("/home").facts());
    match d.terminal {
        Some(Terminal::Respond(r)) => {
            assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(r.body, "down (req-1)\n");
            assert_eq!(r.content_type, "text/plain");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cache_key_and_private() {
    let hash = crate::auth::tests::argon2_hash("pw");
    let auth = Arc::new(Auth::Basic(
        BasicAuth::new("staff", &[("alice".into(), hash)], BasicOptions::default()).unwrap(),
    ));
    let rules = RuleSet::new(
        vec![
            rule(
                "device",
                always(),
                Actions {
                    cache_key: vec![Var::Device, Var::Country],
                    ..Actions::default()
                },
            ),
            rule(
                "again",
                always(),
                Actions {
                    cache_key: vec![Var::Device],
                    ..Actions::default()
                },
            ),
            rule(
                "admin",
                Condition::PathPrefix("/admin".into()),
                Actions {
                    auth: Some(auth.clone()),
                    ..Actions::default()
                },
            ),
            rule(
                "shared",
                Condition::PathPrefix("/team".into()),
                Actions {
                    auth: Some(auth),
                    private: Some(false),
                    ..Actions::default()
                },
            ),
        ],
        None,
    )
    .unwrap();
    let d = rules.evaluate(&Req::get("/").facts());
    assert_eq!(
        d.cache_key,
        [
            ("device".to_string(), "desktop".to_string()),
            ("country".to_string(), String::new())
        ]
    );
    assert!(!d.private && d.auth.is_none());
    let d = rules.evaluate(&Req::get("/admin/x").facts());
    assert!(d.private);
    assert_eq!(d.auth.as_ref().map(|(n, _)| &**n), Some("admin"));
    let d = rules.evaluate(&Req::get("/team").facts());
    assert!(!d.private && d.auth.is_some());
}

#[test]
fn response_rules_see_the_status() {
    let rules = RuleSet::new(
        vec![
            Rule {
                name: "errors".into(),
                phase: Phase::Response,
                when: Condition::Status(vec![crate::status_range(500, 599).unwrap()]),
                actions: Actions {
                    respond: Some(Respond::new(None, "<h1>Sorry</h1>", "text/html").unwrap()),
                    ..Actions::default()
                },
            },
            Rule {
                name: "404".into(),
                phase: Phase::Response,
                when: Condition::Status(vec![crate::status_range(404, 404).unwrap()]),
                actions: Actions {
                    response_headers: vec![
                        HeaderAction::set("cache-control", "max-age=60").unwrap(),
                    ],
                    ..Actions::default()
                },
            },
            pool_rule("p", always()),
        ],
        None,
    )
    .unwrap();
    let req = Req::get("/");
    assert!(rules.evaluate(&req.facts()).response_headers.is_empty());
    let d = rules.evaluate_response(&req.facts(), 502);
    let r = d.respond.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.body.as_str()),
        (502, "<h1>Sorry</h1>")
    );
    let d = rules.evaluate_response(&req.facts(), 404);
    assert!(d.respond.is_none());
    assert_eq!(
        d.response_headers,
        [HeaderOp::Set(
            http::HeaderName::from_static("cache-control"),
            HeaderValue::from_static("max-age=60")
        )]
    );
    assert!(
        rules
            .evaluate_response(&req.facts(), 200)
            .matched
            .is_empty()
    );
}

#[test]
fn bad_rule_sets_are_refused() {
    let status = || Condition::Status(vec![crate::status_range(500, 599).unwrap()]);
    let cases: Vec<(Vec<Rule>, &str)> = vec![
        (
            vec![
                pool_rule("a", always()),
                pool_rule("b", Condition::PathPrefix("/x".into())),
            ],
            "unreachable",
        ),
        (
            vec![
                pool_rule("a", always()),
                pool_rule("a", Condition::PathPrefix("/x".into())),
            ],
            "two rules named",
        ),
        (vec![pool_rule("a", status())], "needs phase = \"response\""),
        (
            vec![rule("a", always(), Actions::default())],
            "has no action",
        ),
        (
            vec![rule(
                "a",
                Condition::Bucket(0..=9),
                Actions {
                    pool: Some("p".into()),
                    ..Actions::default()
                },
            )],
            "no [sites.ab]",
        ),
        (
            vec![Rule {
                name: "r".into(),
                phase: Phase::Response,
                when: status(),
                actions: Actions {
                    pool: Some("p".into()),
                    ..Actions::default()
                },
            }],
            "only have response_headers and respond",
        ),
    ];
    for (rules, want) in cases {
        let errs = RuleSet::new(rules, None).unwrap_err();
        assert!(
            errs.iter().any(|(_, e)| e.to_string().contains(want)),
            "{want}: {errs:?}"
        );
    }
    // Not unreachable: it also sets a header, or the earlier rule is conditional, or the
    // earlier one's rewrite is a regex that may not match.
    let ok = vec![
        pool_rule("a", always()),
        rule(
            "b",
            Condition::PathPrefix("/x".into()),
            Actions {
                pool: Some("b".into()),
                request_headers: vec![HeaderAction::set("x-b", "1").unwrap()],
                ..Actions::default()
            },
        ),
        rule(
            "c",
            always(),
            Actions {
                rewrite: Some(Rewrite::regex("^/a$", "/b").unwrap()),
                ..Actions::default()
            },
        ),
        rule(
            "d",
            always(),
            Actions {
                rewrite: Some(Rewrite::regex("^/c$", "/d").unwrap()),
                ..Actions::default()
            },
        ),
    ];
    RuleSet::new(ok, None).unwrap();
    // Constructors refuse bad input.
    assert!(Rewrite::regex("^/(a$", "/b").is_err());
    assert!(Rewrite::regex("^/(a)$", "/b/$2").is_err());
    assert!(Redirect::new(303, "/x").is_err());
    assert!(Redirect::new(301, "/x/${nope}").is_err());
    assert!(HeaderAction::set("bad name", "x").is_err());
    assert!(HeaderAction::set("x-ok", "bad\nvalue").is_err());
    assert!(Var::parse_cache_key("request_id").is_err());
    assert!(Condition::client(&["10.0.0.0/33"]).is_err());
    assert!(Condition::codes(&["Europe"], true).is_err());
}

#[test]
fn describe_reads_like_the_config() {
    let rules = RuleSet::new(
        vec![rule(
            "mobile",
            Condition::Device(vec![Device::Mobile, Device::Tablet]),
            Actions {
                pool: Some("mobile".into()),
                cache_key: vec![Var::Device],
                ..Actions::default()
            },
        )],
        None,
    )
    .unwrap();
    assert_eq!(
        rules.describe(),
        ["rule mobile: when device in [mobile, tablet] → pool mobile, cache key +device"]
    );
}
