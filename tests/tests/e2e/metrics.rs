//! Labelled request metrics (issue 15): after a known sequence of requests over HTTP/1.1,
//! HTTP/2 and HTTP/3, `/metrics` counts them by site, protocol, method class, status class and
//! cache outcome, the duration and time-to-first-byte histograms fill, and Debian's
//! `promtool check metrics` accepts the whole exposition.

use std::io::Write as _;
use std::process::{Command, Stdio};

use edge_e2e::client::{self, Proto};
use edge_e2e::origin::Origin;
use edge_e2e::{Edge, Setup};
use http::Method;

/// The body of `/metrics` (the HTTP head cut off).
async fn scrape(edge: &Edge) -> String {
    let raw = edge.metrics_text().await;
    raw.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(raw)
}

/// The value of the sample whose name and labels are all in `parts`; 0 when absent.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_by_label_and_promtool_accepts_the_exposition() {
    let setup = Setup::new("metrics-labels");
    let origin = Origin::start().await;
    let edge = Edge::start(&setup.dir, &setup.config(origin.addr, ""));
    let plain = setup.target(edge.http(), "localhost");
    let tls = setup.target(edge.https(), "localhost");
    let path = "/c/m1?cc=max-age=60";
    // HTTP/1.1: a miss, two hits, a HEAD hit, a 404 for an unknown host, a POST passed through.
    for _ in 0..3 {
        client::get(Proto::Plain, &plain, path).await.expect("GET");
    }
    client::request(
        Proto::Plain,
        &plain,
        Method::HEAD,
        path,
        &[],
        Default::default(),
    )
    .await
    .expect("HEAD");
    let unknown = setup.target(edge.http(), "nowhere.test");
    let r = client::get(Proto::Plain, &unknown, "/")
        .await
        .expect("GET unknown");
    assert_eq!(r.status.as_u16(), 404);
    client::request(
        Proto::Plain,
        &plain,
        Method::POST,
        "/c/post",
        &[],
        bytes::Bytes::from_static(b"x"),
    )
    .await
    .expect("POST");
    // HTTP/2 and HTTP/3: the same URL on the TLS port (its own key: the port differs).
    client::get(Proto::H2, &tls, path).await.expect("h2 GET");
    client::get(Proto::H2, &tls, path).await.expect("h2 GET");
    client::get(Proto::H3, &tls, path).await.expect("h3 GET");

    // The duration is observed when the body ends: poll until the last one is in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let text = scrape(&edge).await;
        let done = sample(
            &text,
            "edge_http_request_duration_seconds_count",
            &["protocol=\"h3\""],
        );
        if done >= 1.0 || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let local = "site=\"local\"";
    let expected: [(&[&str], f64); 8] = [
        (
            &[
                local,
                "protocol=\"h1\"",
                "method=\"get\"",
                "status=\"2xx\"",
                "cache=\"miss\"",
            ],
            1.0,
        ),
        (
            &[
                local,
                "protocol=\"h1\"",
                "method=\"get\"",
                "status=\"2xx\"",
                "cache=\"hit\"",
            ],
            2.0,
        ),
        (
            &[local, "protocol=\"h1\"", "method=\"head\"", "cache=\"hit\""],
            1.0,
        ),
        (
            &[
                local,
                "protocol=\"h1\"",
                "method=\"write\"",
                "cache=\"pass\"",
            ],
            1.0,
        ),
        (&["site=\"-\"", "protocol=\"h1\"", "status=\"4xx\""], 1.0),
        (&[local, "protocol=\"h2\"", "cache=\"miss\""], 1.0),
        (&[local, "protocol=\"h2\"", "cache=\"hit\""], 1.0),
        (&[local, "protocol=\"h3\"", "cache=\"hit\""], 1.0),
    ];
    for (labels, want) in expected {
        let got = sample(&text, "edge_http_requests_total", labels);
        assert_eq!(got, want, "{labels:?}\n{text}");
    }

    // Histograms: every hit is counted, in buckets that add up to the count.
    let hits = [local, "protocol=\"h1\"", "cache=\"hit\""];
    let count = sample(&text, "edge_http_time_to_first_byte_seconds_count", &hits);
    assert_eq!(count, 3.0, "two GET hits and a HEAD: {text}");
    let inf = sample(
        &text,
        "edge_http_time_to_first_byte_seconds_bucket",
        &[local, "protocol=\"h1\"", "cache=\"hit\"", "le=\"+Inf\""],
    );
    assert_eq!(inf, count, "{text}");
    assert!(
        sample(&text, "edge_http_request_duration_seconds_sum", &hits) > 0.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "edge_http_response_body_bytes_total",
            &[local, "protocol=\"h1\""]
        ) > 0.0,
        "{text}"
    );

    // Connections and handshakes: the clients above opened one connection per request.
    let conns = |t: &str| {
        sample(
            &text,
            "edge_connections_accepted_total",
            &[&format!("transport=\"{t}\"")],
        )
    };
    assert!(
        conns("tcp") >= 6.0 && conns("tls") >= 2.0 && conns("quic") >= 1.0,
        "{text}"
    );
    let ok = |k: &str| {
        sample(
            &text,
            "edge_handshakes_total",
            &[&format!("kind=\"{k}\""), "result=\"ok\""],
        )
    };
    assert!(ok("tls") >= 2.0 && ok("quic") >= 1.0, "{text}");
    assert!(text.contains("\nedge_config_version 1\n"), "{text}");
    assert_eq!(
        sample(&text, "edge_config_reloads_total", &["result=\"applied\""]),
        1.0,
        "{text}"
    );

    // Cache tiers: the two stored objects (one per port), the budget, no evictions yet. The
    // tier counts are refreshed once a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let now = scrape(&edge).await;
        if sample(&now, "edge_cache_objects", &["tier=\"memory\""]) == 2.0
            || std::time::Instant::now() > deadline
        {
            break now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        sample(&text, "edge_cache_objects", &["tier=\"memory\""]),
        2.0,
        "{text}"
    );
    assert!(
        sample(&text, "edge_cache_budget_bytes", &["tier=\"memory\""]) > 0.0,
        "{text}"
    );
    assert!(
        text.contains("edge_cache_evictions_total{tier=\"memory\"} 0"),
        "{text}"
    );

    // The origin: the two misses and the POST went to it, answered, timed, in rotation.
    let ep = format!("endpoint=\"{}\"", origin.addr);
    let pool = ["pool=\"origin\"", ep.as_str()];
    let tries = sample(&text, "edge_origin_tries_total", &pool);
    assert!(tries >= 3.0, "{text}");
    assert_eq!(
        sample(&text, "edge_origin_response_seconds_count", &pool),
        tries,
        "{text}"
    );
    assert_eq!(
        sample(&text, "edge_origin_endpoint_up", &pool),
        1.0,
        "{text}"
    );
    let connect = [pool[0], pool[1], "kind=\"connect\""];
    assert_eq!(
        sample(&text, "edge_origin_errors_total", &connect),
        0.0,
        "{text}"
    );

    // Bytes in: the one-byte POST body, on HTTP/1.1 only.
    assert_eq!(
        sample(
            &text,
            "edge_http_request_body_bytes_total",
            &["site=\"local\"", "protocol=\"h1\""]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "edge_http_request_body_bytes_total",
            &["protocol=\"h2\""]
        ),
        0.0,
        "{text}"
    );

    // Debian's promtool lints the whole exposition.
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install -y prometheus)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // What Prometheus itself sends gets OpenMetrics, with the same numbers.
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let raw = edge.metrics_text_accepting(prometheus_accept).await;
    let (head, om) = raw.split_once("\r\n\r\n").expect("head");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    check_openmetrics(om);
    let hits = ["site=\"local\"", "protocol=\"h2\"", "cache=\"hit\""];
    assert_eq!(
        sample(om, "edge_http_requests_total", &hits),
        sample(&text, "edge_http_requests_total", &hits),
        "{om}"
    );
    assert!(sample(om, "edge_http_requests_total", &hits) > 0.0, "{om}");
    for family in [
        "# TYPE edge_http_requests counter",
        "# TYPE edge_http_request_duration_seconds histogram",
        "# TYPE edge_responses counter",
        "# TYPE edge_purge_duration_seconds histogram",
        "# TYPE edge_cache_memory_bytes gauge",
        "# TYPE edge_origin_endpoint_up gauge",
    ] {
        assert!(om.contains(family), "{family} missing:\n{om}");
    }
}

/// The OpenMetrics 1.0 rules a scraper relies on: every sample belongs to a family declared
/// before it by `# TYPE`, counter samples end in `_total` (or `_created`), histogram samples
/// are `_bucket`/`_sum`/`_count`, each family is declared once, and `# EOF` ends the text.
fn check_openmetrics(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "no # EOF at the end");
    let mut types = std::collections::HashMap::new();
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "{name} declared twice"
            );
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment: {line}");
        let name = line.split(['{', ' ']).next().expect("sample name");
        let (family, kind) = types
            .iter()
            .filter(|(f, _)| name.starts_with(f.as_str()))
            .max_by_key(|(f, _)| f.len())
            .unwrap_or_else(|| panic!("sample {name} has no # TYPE before it"));
        let suffix = &name[family.len()..];
        let allowed: &[&str] = match kind.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "gauge" | "unknown" | "info" => &["", "_info"],
            other => panic!("unexpected type {other}"),
        };
        assert!(
            allowed.contains(&suffix),
            "{name} in {kind} family {family}"
        );
        let value = line.rsplit(' ').next().expect("value");
        assert!(value.parse::<f64>().is_ok(), "bad value in {line}");
    }
}
