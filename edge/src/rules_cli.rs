//! `edge rules test`: what a site's rules would do with one request, without sending anything
//! (the tool for debugging rules), and the rule listing `edge check` prints.

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use site_rules::{HeaderOp, RequestFacts, Terminal};

/// The arguments of `edge rules test`.
pub struct TestArgs<'a> {
    pub config: &'a Path,
    /// `METHOD URL`, e.g. `GET https://www.example.com/path?q=1`.
    pub request: &'a str,
    /// `Name: value`, repeatable.
    pub headers: &'a [String],
    pub client: IpAddr,
    pub country: Option<&'a str>,
    pub continent: Option<&'a str>,
    pub asn: Option<u32>,
    /// RFC 3339; default now.
    pub time: Option<&'a str>,
}

/// Each site's rules as the config compiled them, for `edge check`.
pub fn describe(snapshot: &config::Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for site in &snapshot.sites {
        if site.rules.is_empty() {
            continue;
        }
        out.push(format!("site {}:", site.name));
        out.extend(site.rules.describe().into_iter().map(|l| format!("  {l}")));
    }
    out
}

fn ops(ops: &[HeaderOp]) -> String {
    ops.iter()
        .map(|op| match op {
            HeaderOp::Set(n, v) => format!("set {n}: {}", v.to_str().unwrap_or("<binary>")),
            HeaderOp::Append(n, v) => format!("append {n}: {}", v.to_str().unwrap_or("<binary>")),
            HeaderOp::Remove(n) => format!("remove {n}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn parse_request(text: &str) -> Result<(Method, http::Uri), String> {
    let (method, url) = text
        .trim()
        .split_once(' ')
        .ok_or_else(|| format!("--request {text:?}: expected 'METHOD URL'"))?;
    let method = Method::from_bytes(method.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("{method:?} is not a method"))?;
    let uri: http::Uri = url
        .trim()
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if uri.host().is_none() {
        return Err(format!("{url:?}: the URL needs a host (https://HOST/PATH)"));
    }
    Ok((method, uri))
}

fn parse_headers(lines: &[String]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("-H {line:?}: expected 'Name: value'"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{name:?} is not a header name"))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("{value:?} is not a header value"))?;
        map.append(name, value);
    }
    Ok(map)
}

pub fn test(args: &TestArgs<'_>) -> ExitCode {
    match run(args) {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edge rules test: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &TestArgs<'_>) -> Result<Vec<String>, String> {
    let snapshot = config::load(args.config).map_err(|e| {
        e.diagnostics()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let (method, uri) = parse_request(args.request)?;
    let mut headers = parse_headers(args.headers)?;
    let host = uri.host().unwrap_or_default().to_ascii_lowercase();
    let site = snapshot
        .site_for_host(&host)
        .ok_or_else(|| format!("no site serves {host}"))?;
    let https = uri.scheme_str() != Some("http");
    let now = match args.time {
        Some(t) => t
            .parse::<site_rules::Timestamp>()
            .map_err(|e| format!("--time {t:?}: {e}"))?,
        None => site_rules::timestamp(edge_core::clock::wall()),
    };
    let path = uri.path().to_string();
    let query = uri.query().map(str::to_string);
    let mut out = vec![format!("site: {} (host {host})", site.name)];
    let route_pool = site.route(&path).map(|r| r.pool.clone());
    let d = {
        let facts = RequestFacts {
            method: &method,
            host: &host,
            path: &path,
            query: query.as_deref(),
            headers: &headers,
            client: args.client,
            https,
            country: args.country,
            continent: args.continent,
            asn: args.asn,
            now,
            request_id: "rules-test",
            random: 0x5eed,
        };
        site.rules.evaluate(&facts)
    };
    out.push(format!(
        "matched: {}",
        if d.matched.is_empty() {
            "(none)".to_string()
        } else {
            d.matched
                .iter()
                .map(|m| m.as_ref())
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    if let Some(device) = d.device {
        out.push(format!("device: {device:?}").to_lowercase());
    }
    if let Some(bucket) = d.bucket {
        out.push(format!("bucket: {bucket}"));
    }
    if let Some((rule, auth)) = &d.auth {
        let kind = match auth.as_ref() {
            site_rules::Auth::Basic(_) => "basic",
            site_rules::Auth::Jwt(_) => "jwt",
        };
        out.push(format!(
            "auth: {kind} (rule {rule}); without valid credentials: 401"
        ));
    }
    match &d.terminal {
        Some(Terminal::Redirect { status, location }) => {
            out.push(format!(
                "answer: redirect {} → {}",
                status.as_u16(),
                location.to_str().unwrap_or("<binary>")
            ));
            return Ok(out);
        }
        Some(Terminal::Respond(r)) => {
            out.push(format!(
                "answer: respond {} ({} bytes, {})",
                r.status.as_u16(),
                r.body.len(),
                r.content_type.to_str().unwrap_or("")
            ));
            return Ok(out);
        }
        None => {}
    }
    let (path, query) = match &d.rewrite {
        Some(to) => {
            out.push(format!(
                "rewrite: {}{}",
                to.path,
                to.query
                    .as_deref()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default()
            ));
            (to.path.clone(), to.query.clone())
        }
        None => (path, query),
    };
    let pool = d
        .pool
        .as_deref()
        .map(str::to_string)
        .or_else(|| site.route(&path).map(|r| r.pool.clone()))
        .or(route_pool)
        .unwrap_or_else(|| "(no route)".into());
    out.push(format!("pool: {pool}"));
    if !d.request_headers.is_empty() {
        out.push(format!("request headers: {}", ops(&d.request_headers)));
    }
    if !d.response_headers.is_empty() {
        out.push(format!("response headers: {}", ops(&d.response_headers)));
    }
    if let Some(c) = &d.set_cookie {
        out.push(format!("set-cookie: {}", c.to_str().unwrap_or("<binary>")));
    }
    site_rules::apply(&d.request_headers, &mut headers);
    if !site.cache.enabled || d.private {
        out.push(format!(
            "cache: not stored ({})",
            if d.private {
                "private"
            } else {
                "site cache off"
            }
        ));
    } else {
        let mut key = cache::key::primary_key(
            if https { "https" } else { "http" },
            &host,
            &path,
            query.as_deref(),
            &headers,
            &site.cache.key,
        );
        for (name, value) in &d.cache_key {
            key.push_str(&format!("\nr:{name}={value}"));
        }
        out.push(format!("cache key: {}", key.replace('\n', " ")));
    }
    Ok(out)
}
