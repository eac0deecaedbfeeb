#![allow(clippy::unwrap_used)]

use super::super::test_doc::compile_text;

const BASE: &str = r#"
[listen]
http = ["127.0.0.1:8080"]

[pools.o]
endpoints = ["127.0.0.1:9000"]

[pools.mobile]
endpoints = ["127.0.0.1:9001"]

[pools.canary]
endpoints = ["127.0.0.1:9002"]

[[sites]]
name = "s"
hosts = ["s.test"]
plain_http = "proxy"
routes = [{ path_prefix = "/", pool = "o" }]
"#;

const ARGON: &str = "$argon2id$v=19$m=1024,t=1,p=1$Zml4ZWQtc2FsdC0xNmJ5dA$AdOsbx0G8PZSLgp8Oy3usfrXcuYO4A4zFBIzfzgBhTA";
const BCRYPT: &str = "$2b$04$AOiHAOiHAOiHAOiHAOiHAOiKY9YCk.CxRjT1bUjI.z1l8XXYHRk2O";
const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEIIo7WDUDEgTxr/NSXgvzd698VERr
aTLra2NZYca7Uc7dFHOb74jSEdMYW0vbX+eBt8Rs5PbrxAKM1qfAb9fOeg==
-----END PUBLIC KEY-----";

fn full() -> String {
    format!(
        r#"{BASE}
[sites.ab]
by = "cookie"
cookie = "edge-ab"
pin = "30d"

[[sites.rules]]
name = "mobile"
when = {{ device = ["mobile", "tablet"] }}
pool = "mobile"
cache_key = ["device"]

[[sites.rules]]
name = "beta"
when = {{ any = [ {{ cookie = {{ name = "beta", equals = "1" }} }}, {{ header = {{ name = "X-Beta", present = true }} }} ] }}
pool = "canary"
request_headers = {{ set = {{ "X-Variant" = "beta-${{bucket}}" }}, remove = ["X-Debug"] }}

[[sites.rules]]
name = "split"
when = {{ bucket = [90, 99], not = {{ path_prefix = "/api/" }} }}
pool = "canary"
cache_key = ["bucket"]

[[sites.rules]]
name = "old-blog"
when = {{ path_prefix = "/blog/" }}
redirect = {{ status = 301, location = "https://${{host}}/articles${{path}}" }}

[[sites.rules]]
name = "old"
rewrite = {{ from = "^/old/(.*)$", to = "/new/$1" }}

[[sites.rules]]
name = "night"
when = {{ time = {{ from = "22:00", to = "06:00", zone = "Europe/Berlin", days = ["fri", "sat"] }}, path_glob = "/shop/**" }}
respond = {{ status = 503, body = "Closed at night\n" }}

[[sites.rules]]
name = "staff"
when = {{ path_prefix = "/admin/", client = ["10.0.0.0/8", "2001:db8::/32"] }}
auth = {{ basic = {{ realm = "staff", users = {{ alice = "{ARGON}", bob = "{BCRYPT}" }} }} }}

[[sites.rules]]
name = "api"
when = {{ path_prefix = "/api/", method = ["GET", "post"] }}
auth = {{ jwt = {{ from = "cookie:session", keys = [{{ alg = "HS256", secret = "0123456789abcdef0123456789abcdef" }}, {{ alg = "ES256", pem = """{EC_PUBLIC}""", kid = "2026-12" }}], audience = "shop", issuer = ["https://id.test"], leeway = "30s" }} }}
private = false

[[sites.rules]]
name = "geo"
when = {{ country = ["DE", "at"], continent = ["EU"], asn = [3320], query = {{ name = "lang", regex = "^(de|en)$" }} }}
response_headers = {{ append = {{ "X-Geo" = "${{country}}" }} }}

[[sites.rules]]
name = "errors"
phase = "response"
when = {{ status = [500, "502-504"] }}
respond = {{ body = "<h1>Sorry</h1>", content_type = "text/html" }}
response_headers = {{ set = {{ "Cache-Control" = "no-store" }} }}
"#
    )
}

#[test]
fn the_documented_rules_compile() {
    let snap = compile_text(&full()).unwrap();
    let rules = &snap.sites[0].rules;
    assert_eq!(rules.rules().len(), 10);
    let lines = rules.describe();
    assert_eq!(
        lines[0],
        "a/b buckets by cookie edge-ab, pinned by cookie edge-ab for 2592000s"
    );
    assert_eq!(
        lines[1],
        "rule mobile: when device in [mobile, tablet] → pool mobile, cache key +device"
    );
    let text = lines.join("\n");
    for want in [
        "rule beta: when (cookie beta = \"1\" or header x-beta present) → pool canary, request header remove x-debug, request header set x-variant: \"beta-${bucket}\"",
        "rule split: when (bucket 90-99 and not path prefix /api/) → pool canary, cache key +bucket",
        "redirect 301 \"https://${host}/articles${path}\"",
        "rule old: when always → rewrite /^/old/(.*)$/ to \"/new/$1\"",
        "time 22:00-06:00 Europe/Berlin on fri,sat",
        "client in [10.0.0.0/8, 2001:db8::/32]",
        "auth basic realm \"staff\" users [alice, bob]",
        "auth jwt from cookie session, keys [Hs256, Es256], audience [\"shop\"], issuer [\"https://id.test\"], shared in cache",
        "country in [DE, AT]",
        "rule errors (response): when status in [500, 502-504] → replace body, response header set cache-control: \"no-store\"",
    ] {
        assert!(text.contains(want), "{want}\n{text}");
    }
    // A site without rules has an empty set.
    let plain = compile_text(BASE).unwrap();
    assert!(plain.sites[0].rules.is_empty());
}

#[test]
fn bad_rules_are_refused_where_written() {
    let rule = |body: &str| format!("{BASE}\n[[sites.rules]]\nname = \"r\"\n{body}\n");
    // The line of the first line of `body` in `rule(body)`.
    let line = BASE.lines().count() + 4;
    let cases: Vec<(String, &str, usize)> = vec![
        (
            rule("when = { header = { name = \"x\", regex = \"(\" } }\npool = \"o\""),
            "invalid regex",
            line,
        ),
        (
            rule("redirect = { location = \"/x/${nope}\" }"),
            "unknown variable ${nope}",
            line,
        ),
        (
            rule("when = { device = [\"phone\"] }\npool = \"o\""),
            "unknown device class \"phone\"",
            line,
        ),
        (
            rule("when = { client = [\"10.0.0.0/33\"] }\npool = \"o\""),
            "prefix length",
            line,
        ),
        (
            rule(
                "when = { time = { from = \"09:00\", to = \"10:00\", zone = \"Europe/Atlantis\" } }\npool = \"o\"",
            ),
            "unknown time zone",
            line,
        ),
        (rule("pool = \"nope\""), "unknown pool \"nope\"", line),
        (
            rule("when = { status = [500] }\nrespond = { status = 503 }"),
            "needs phase = \"response\"",
            line - 1,
        ),
        (
            rule("auth = { basic = { users = { alice = \"plaintext\" } } }"),
            "invalid password hash for user \"alice\"",
            line,
        ),
        (
            rule("auth = { jwt = { keys = [{ alg = \"ES256\", pem = \"nope\" }] } }"),
            "invalid JWT key",
            line,
        ),
        (
            rule("auth = { jwt = { keys = [{ alg = \"HS256\", secret = \"short\" }] } }"),
            "at least 32 bytes",
            line,
        ),
        (
            rule("when = { bucket = [0, 9] }\npool = \"o\""),
            "no [sites.ab]",
            line - 1,
        ),
        (
            rule("when = { bucket = [5, 100] }\npool = \"o\""),
            "bucket range",
            line,
        ),
        (
            rule("when = { path_glob = \"/a/***\" }\npool = \"o\""),
            "invalid glob",
            line,
        ),
        (
            rule("redirect = { status = 303, location = \"/\" }"),
            "redirect status",
            line,
        ),
        (
            rule("cache_key = [\"request_id\"]"),
            "request_id in a cache key",
            line,
        ),
        (
            rule("rewrite = { from = \"^/(a)$\", to = \"/$2\" }"),
            "capture group",
            line,
        ),
        (
            rule("respond = { body = \"x\" }"),
            "respond needs a status",
            line,
        ),
        (
            rule("phase = \"response\"\npool = \"o\""),
            "only have response_headers and respond",
            line - 1,
        ),
        (
            rule("when = { path_prefix = \"/\" }"),
            "has no action",
            line - 1,
        ),
        (
            format!(
                "{BASE}\n[[sites.rules]]\nname = \"all\"\npool = \"o\"\n\n[[sites.rules]]\nname = \"later\"\nwhen = {{ path_prefix = \"/x\" }}\npool = \"canary\"\n"
            ),
            "\"later\" is unreachable",
            line + 3,
        ),
        (
            format!("{BASE}\n[sites.ab]\nby = \"visitor\"\n"),
            "expected \"cookie\" or \"client\"",
            line - 1,
        ),
    ];
    for (text, want, at) in cases {
        let e = compile_text(&text).unwrap_err().to_string();
        assert!(e.contains(want), "{want}: {e}");
        assert!(
            e.contains(&format!("edge.toml:{at}:")),
            "{want} at line {at}: {e}"
        );
    }
}

/// The README's cookbook compiles as written (with a real hash and key in place of its `…`).
#[test]
fn the_readme_cookbook_compiles() {
    let readme = include_str!("../../../../README.md");
    let start = readme
        .find("# 1. Phones and tablets")
        .expect("the cookbook in README.md");
    let end = start
        + readme[start..]
            .find("```")
            .expect("end of the cookbook block");
    let cookbook = readme[start..end]
        .replace("\"$2y$05$…\"", &format!("\"{BCRYPT}\""))
        .replace(
            "-----BEGIN PUBLIC KEY-----\n…\n-----END PUBLIC KEY-----",
            EC_PUBLIC,
        );
    let text = format!(
        "{BASE}\n{cookbook}\n[pools.frankfurt]\nendpoints = [\"127.0.0.1:9003\"]\n\n[pools.variant-b]\nendpoints = [\"127.0.0.1:9004\"]\n"
    );
    let snap = compile_text(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let lines = snap.sites[0].rules.describe();
    assert!(lines.len() >= 12, "{lines:#?}");
}

/// The rule sets the benchmark measures (load-tests/rules-50*.toml) are valid configs.
#[test]
fn the_benchmark_rule_sets_compile() {
    for (name, rules) in [
        (
            "rules-50",
            include_str!("../../../../load-tests/rules-50.toml"),
        ),
        (
            "rules-50-nomatch",
            include_str!("../../../../load-tests/rules-50-nomatch.toml"),
        ),
    ] {
        let text = format!("{BASE}\n{rules}\n[pools.origin]\nendpoints = [\"127.0.0.1:9003\"]\n");
        let snap = compile_text(&text).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(snap.sites[0].rules.rules().len(), 50, "{name}");
    }
}
