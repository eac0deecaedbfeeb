use super::*;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod geodns;
mod seam;

fn write_cert(dir: &Path, name: &str, host: &str) {
    let ck = rcgen::generate_simple_self_signed(vec![host.to_string()]).expect("rcgen");
    std::fs::write(dir.join(format!("{name}.pem")), ck.cert.pem()).expect("write cert");
    std::fs::write(
        dir.join(format!("{name}.key")),
        ck.signing_key.serialize_pem(),
    )
    .expect("write key");
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edge-config-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

const GOOD: &str = r#"
[node]
name = "pop-1"

[listen]
https = ["127.0.0.1:8443", "[::1]:8443"]
http = ["127.0.0.1:8080"]

[tls]
cert = "default.pem"
key = "default.key"

[timeouts]
origin_response_header = "1500ms"

[pools.app]
endpoints = ["127.0.0.1:9000", "127.0.0.1:9001"]

[pools.api]
endpoints = ["127.0.0.1:9100"]

[[sites]]
name = "app"
hosts = ["app.example", "*.cdn.example"]
cert = "app.pem"
key = "app.key"
plain_http = "proxy"

[[sites.routes]]
path_prefix = "/"
pool = "app"

[[sites.routes]]
path_prefix = "/api/"
pool = "api"
"#;

/// `text` as the file source would deliver it from `dir/name` (blobs read from `dir`).
fn document_in(dir: &Path, name: &str, text: &str, revision: u64) -> Document {
    let (blobs, unavailable) = source::read_blobs(dir, text, &mut Vec::new());
    Document {
        name: dir.join(name),
        base: dir.to_path_buf(),
        text: text.to_string(),
        blobs,
        unavailable,
        revision,
        parts: Vec::new(),
    }
}

fn compile_in(dir: &Path, text: &str) -> Result<Snapshot, ConfigError> {
    compile(&document_in(dir, "edge.toml", text, 1))
}

#[test]
fn good_file_compiles_into_a_snapshot() {
    let dir = temp_dir("good");
    write_cert(&dir, "default", "localhost");
    write_cert(&dir, "app", "app.example");
    let snap = compile_in(&dir, GOOD).expect("valid config");
    assert_eq!(snap.node_name, "pop-1");
    assert_eq!(snap.listen.https.len(), 2);
    assert_eq!(
        snap.timeouts.origin_response_header,
        Duration::from_millis(1500)
    );
    assert_eq!(snap.pools["app"].endpoints.len(), 2);

    let site = snap
        .site_for_host("APP.example:8443")
        .expect("host match ignores case and port");
    assert_eq!(site.name, "app");
    assert_eq!(site.plain_http, PlainHttp::Proxy);
    assert_eq!(site.route("/api/v1").map(|r| r.pool.as_str()), Some("api"));
    assert_eq!(
        site.route("/index.html").map(|r| r.pool.as_str()),
        Some("app")
    );
    assert!(snap.site_for_host("img.cdn.example").is_some(), "wildcard");
    assert!(
        snap.site_for_host("cdn.example").is_none(),
        "wildcard needs a label"
    );
    assert!(snap.site_for_host("other.example").is_none());

    // SNI: the site's own certificate, or the default one for unknown names.
    let app_cert = snap.cert_for_sni(Some("app.example")).expect("cert");
    let default = snap
        .cert_for_sni(Some("unknown.example"))
        .expect("default cert");
    assert_ne!(app_cert.cert[0], default.cert[0]);
    assert_eq!(
        snap.source,
        dir.join("edge.toml"),
        "named after the document"
    );
}

/// Each broken file must be refused with a location that points at the culprit.
#[test]
fn errors_name_line_column_and_reason() {
    let dir = temp_dir("bad");
    write_cert(&dir, "default", "localhost");
    write_cert(&dir, "app", "app.example");
    let cases: &[(&str, &str, (usize, usize), &str)] = &[
        (
            "unknown key",
            "[listen]\nhttps = [\"127.0.0.1:1\"]\nhtps = 1\n",
            (3, 1),
            "unknown field `htps`",
        ),
        (
            "bad address",
            "[listen]\nhttp = [\"127.0.0.1\"]\n",
            (2, 9),
            "invalid http listen address",
        ),
        ("bad toml", "[listen\nhttp = []\n", (1, 8), ""),
        (
            "bad duration",
            "[listen]\nhttp = [\"127.0.0.1:1\"]\n[timeouts]\nshutdown_grace = \"5 parsecs\"\n",
            (4, 18),
            "invalid duration",
        ),
        (
            "unknown pool",
            "[listen]\nhttp = [\"127.0.0.1:1\"]\n[[sites]]\nname = \"a\"\nhosts = [\"a\"]\n[[sites.routes]]\npool = \"nope\"\n",
            (7, 8),
            "unknown pool \"nope\"",
        ),
        (
            "duplicate host",
            "[listen]\nhttp = [\"127.0.0.1:1\"]\n[pools.p]\nendpoints = [\"127.0.0.1:2\"]\n[[sites]]\nname = \"a\"\nhosts = [\"a.example\"]\nroutes = [{ pool = \"p\" }]\n[[sites]]\nname = \"b\"\nhosts = [\"A.example\"]\nroutes = [{ pool = \"p\" }]\n",
            (11, 10),
            "duplicate host",
        ),
        (
            "missing cert",
            "[listen]\nhttps = [\"127.0.0.1:1\"]\n[tls]\ncert = \"missing.pem\"\nkey = \"default.key\"\n",
            (4, 8),
            "cannot load certificate",
        ),
        (
            "key does not match",
            "[listen]\nhttps = [\"127.0.0.1:1\"]\n[tls]\ncert = \"default.pem\"\nkey = \"app.key\"\n",
            (5, 7),
            "does not match",
        ),
        (
            "unknown coding",
            "[listen]\nhttp = [\"127.0.0.1:1\"]\n[pools.p]\nendpoints = [\"127.0.0.1:2\"]\n[[sites]]\nname = \"a\"\nhosts = [\"a\"]\nroutes = [{ pool = \"p\" }]\ncompression = { prefer = [\"br\", \"lz4\"] }\n",
            (9, 33),
            "unknown content coding `lz4`",
        ),
        (
            "level out of range",
            "[listen]\nhttp = [\"127.0.0.1:1\"]\n[pools.p]\nendpoints = [\"127.0.0.1:2\"]\n[[sites]]\nname = \"a\"\nhosts = [\"a\"]\nroutes = [{ pool = \"p\" }]\n[sites.compression.stored_level]\nbr = 12\n",
            (10, 6),
            "br level 12 is out of range 0..=11",
        ),
        (
            "bad media type",
            "[listen]\nhttp = [\"127.0.0.1:1\"]\n[pools.p]\nendpoints = [\"127.0.0.1:2\"]\n[[sites]]\nname = \"a\"\nhosts = [\"a\"]\nroutes = [{ pool = \"p\" }]\n[sites.compression]\ntypes = [\"text/html\", \"json\"]\n",
            (10, 23),
            "invalid media type pattern",
        ),
        (
            "bad endpoint",
            "[listen]\nhttp = [\"127.0.0.1:1\"]\n[pools.p]\nendpoints = [\"bad host!:80\"]\n",
            (4, 14),
            "expected IP:PORT or NAME:PORT",
        ),
        (
            "zero weight",
            "[listen]\nhttp = [\"127.0.0.1:1\"]\n[pools.p]\nendpoints = [{ addr = \"127.0.0.1:2\", weight = 0 }]\n",
            (4, 14),
            "weight 0 is out of range",
        ),
        (
            "unknown algorithm",
            "[listen]\nhttp = [\"127.0.0.1:1\"]\n[pools.p]\nendpoints = [\"127.0.0.1:2\"]\nalgorithm = \"fastest\"\n",
            (5, 13),
            "unknown variant `fastest`",
        ),
        (
            "ca file without tls",
            "[listen]\nhttp = [\"127.0.0.1:1\"]\n[pools.p]\nendpoints = [\"127.0.0.1:2\"]\ntls_ca_file = \"ca.pem\"\n",
            (5, 15),
            "tls_ca_file needs tls = true",
        ),
        (
            "shield not consistent",
            "[listen]\nhttp = [\"127.0.0.1:1\"]\n[pools.p]\nendpoints = [\"127.0.0.1:2\"]\n[[sites]]\nname = \"a\"\nhosts = [\"a\"]\nshield = \"p\"\nroutes = [{ pool = \"p\" }]\n",
            (8, 10),
            "must use algorithm = \"consistent-hash\"",
        ),
    ];
    for (name, text, (line, col), reason) in cases {
        let err = compile_in(&dir, text).expect_err(name);
        let diags = err.diagnostics();
        let d = diags
            .first()
            .unwrap_or_else(|| panic!("{name}: no diagnostic"));
        assert_eq!(d.location, Some((*line, *col)), "{name}: {d}");
        assert!(d.reason.contains(reason), "{name}: {d}");
        assert!(
            d.to_string().starts_with(&format!(
                "{}:{line}:{col}: ",
                dir.join("edge.toml").display()
            )),
            "{name}: {d}"
        );
    }
}

#[test]
fn unreadable_file_is_an_error_not_a_panic() {
    let err = load(Path::new("/nonexistent/edge.toml")).expect_err("missing file");
    assert!(err.to_string().contains("/nonexistent/edge.toml"));
}

#[test]
fn durations() {
    let table = [
        ("250ms", Some(Duration::from_millis(250))),
        ("10s", Some(Duration::from_secs(10))),
        ("2m", Some(Duration::from_secs(120))),
        ("1h", Some(Duration::from_secs(3600))),
        ("2d", Some(Duration::from_secs(172_800))),
        ("7", Some(Duration::from_secs(7))),
        ("", None),
        ("s", None),
        ("10 weeks", None),
        ("-1s", None),
    ];
    for (text, want) in table {
        assert_eq!(parse_duration(text).ok(), want, "{text:?}");
    }
}

#[test]
fn host_normalisation() {
    let table = [
        ("Example.COM", "example.com"),
        ("example.com:443", "example.com"),
        ("example.com.", "example.com"),
        ("[::1]:8443", "[::1]"),
        ("127.0.0.1:80", "127.0.0.1"),
    ];
    for (input, want) in table {
        assert_eq!(normalize_host(input), want, "{input}");
    }
}

/// The shipped examples must stay valid: compile each with certificates made for it.
#[test]
fn shipped_examples_compile() {
    let dir = temp_dir("examples");
    std::fs::create_dir_all(dir.join("certs")).expect("mkdir certs");
    write_cert(&dir.join("certs"), "default", "localhost");
    write_cert(&dir.join("certs"), "www", "www.example.com");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for name in ["edge.toml", "minimal.toml"] {
        let text = std::fs::read_to_string(examples.join(name)).expect("read example");
        let snap =
            compile(&document_in(&dir, name, &text, 1)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!snap.sites.is_empty(), "{name}");
    }
}

#[test]
fn sizes() {
    let table = [
        ("1048576", Some(1_048_576)),
        ("512KiB", Some(512 * 1024)),
        ("256MiB", Some(256 << 20)),
        ("10GiB", Some(10u64 << 30)),
        ("3GB", Some(3_000_000_000)),
        ("12 MiB", Some(12 << 20)),
        ("12XB", None),
        ("MiB", None),
        ("99999999999999999999TiB", None),
    ];
    for (text, want) in table {
        assert_eq!(parse_size(text).ok(), want, "{text:?}");
    }
}

#[test]
fn cache_settings_compile_into_site_policy() {
    let dir = temp_dir("cache");
    let text = r#"
[listen]
http = ["127.0.0.1:1"]

[cache]
memory_bytes = "64MiB"
max_object_memory_bytes = "1MiB"
disk_dir = "cache-dir"
disk_bytes = "2GiB"
hit_for_pass = "5s"
heuristic_fraction = 0.2

[pools.p]
endpoints = ["127.0.0.1:2"]

[[sites]]
name = "a"
hosts = ["a"]
routes = [{ pool = "p" }]
[sites.cache]
max_ttl = "1h"
ignore_params = ["utm_source"]
key_headers = ["X-Device"]
bypass_cookies = ["session"]
force_ttl = [{ path_prefix = "/static/", ttl = "1d" }, { path_prefix = "/static/live/", ttl = "5s" }]
"#;
    let snap = compile_in(&dir, text).expect("valid");
    assert_eq!(snap.cache.memory_bytes, 64 << 20);
    assert_eq!(
        snap.cache.disk_dir.as_deref(),
        Some(dir.join("cache-dir").as_path())
    );
    assert_eq!(snap.cache.hit_for_pass, Duration::from_secs(5));
    let site = snap.site_for_host("a").expect("site");
    assert!(site.cache.enabled);
    assert_eq!(
        site.cache.key.headers,
        vec![http::HeaderName::from_static("x-device")]
    );
    assert_eq!(site.cache.policy.max_ttl, Some(Duration::from_secs(3600)));
    assert!((site.cache.policy.heuristic_fraction - 0.2).abs() < f64::EPSILON);
    assert_eq!(
        site.cache.policy_for("/static/app.css").forced_ttl,
        Some(Duration::from_secs(86_400))
    );
    assert_eq!(
        site.cache.policy_for("/static/live/x").forced_ttl,
        Some(Duration::from_secs(5)),
        "longest prefix"
    );
    assert_eq!(site.cache.policy_for("/index.html").forced_ttl, None);

    let bad = text.replace("heuristic_fraction = 0.2", "heuristic_fraction = 3.0");
    let err = compile_in(&dir, &bad).expect_err("fraction > 1");
    let line = bad
        .lines()
        .position(|l| l.starts_with("heuristic_fraction"))
        .expect("line")
        + 1;
    assert_eq!(err.diagnostics()[0].location, Some((line, 22)));
}

#[test]
fn compression_defaults_and_overrides() {
    let dir = temp_dir("compression");
    let text = "[listen]\nhttp = [\"127.0.0.1:1\"]\n[pools.p]\nendpoints = [\"127.0.0.1:2\"]\n\
        [[sites]]\nname = \"a\"\nhosts = [\"a\"]\nroutes = [{ pool = \"p\" }]\n\
        [[sites]]\nname = \"b\"\nhosts = [\"b\"]\nroutes = [{ pool = \"p\" }]\n\
        [sites.compression]\nprefer = [\"gzip\", \"br\"]\ntypes = [\"Text/*\"]\nmin_bytes = \"2KiB\"\n\
        stored_level = { br = 11 }\n";
    let snap = compile_in(&dir, text).expect("compiles");
    let a = &snap.sites[0].compression;
    assert!(a.enabled);
    assert_eq!(a.prefer, vec![Coding::Zstd, Coding::Br, Coding::Gzip]);
    assert!(a.types.matches("application/json"));
    assert_eq!(a.min_bytes, 512);
    assert_eq!(
        (a.stored_level.of(Coding::Br), a.fly_level.of(Coding::Gzip)),
        (9, 3)
    );
    let b = &snap.sites[1].compression;
    assert_eq!(b.prefer, vec![Coding::Gzip, Coding::Br]);
    assert_eq!(b.types.patterns(), ["text/*"]);
    assert_eq!(b.min_bytes, 2048);
    // Levels not given keep their defaults.
    assert_eq!(
        (b.stored_level.br, b.stored_level.zstd, b.stored_level.gzip),
        (11, 12, 6)
    );
}

#[test]
fn pools_compile_with_names_weights_and_policies() {
    let dir = temp_dir("pools");
    let text = "[listen]\nhttp = [\"127.0.0.1:1\"]\n[origin]\ndns_servers = [\"127.0.0.1:5353\"]\n\
        [pools.p]\nendpoints = [\"127.0.0.1:2\", { addr = \"Origin.Example.com:8443\", weight = 3 }]\n\
        algorithm = \"least-in-flight\"\nretries = 1\nhealth = { path = \"/hc\", expect = [204] }\n\
        tls = true\nprotocol = \"h2\"\nhost = \"origin.example.com\"\n";
    let snap = compile_in(&dir, text).expect("compiles");
    let p = &snap.pools["p"];
    assert_eq!(
        p.endpoints,
        vec!["127.0.0.1:2".parse::<SocketAddr>().expect("addr")]
    );
    assert_eq!(
        p.dns,
        vec![DnsEndpoint {
            host: "origin.example.com".into(),
            port: 8443,
            weight: 3
        }]
    );
    assert_eq!(p.algorithm, Algorithm::LeastInFlight);
    assert_eq!(p.retries, 1);
    let h = p.health.as_ref().expect("health");
    assert_eq!(
        (h.path.as_str(), h.expect.clone(), h.fall, h.rise),
        ("/hc", vec![204], 3, 2)
    );
    assert_eq!(p.transport.protocol, OriginProtocol::H2);
    assert!(p.transport.tls.as_ref().is_some_and(|t| t.ca.is_empty()));
    assert_eq!(p.host.as_deref(), Some("origin.example.com"));
    assert_eq!(snap.origin.dns.servers.len(), 1);
}
