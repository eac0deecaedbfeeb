//! Items of a purge: URLs, prefixes, hosts and tags, checked and put in the form the cache keys
//! hold (host lower case without trailing dot or port, IPv6 in brackets, non-ASCII path bytes
//! percent-encoded). Errors are reasons for a human; the caller adds field and index.

use std::fmt::Write as _;
use std::net::Ipv6Addr;

use super::{MAX_TAG_BYTES, PrefixTarget, UrlTarget};

type Reason = String;

/// `http(s)://host[:port][/path][?query]` or Cloudflare's scheme-less `host[:port]/path`.
pub(super) fn url(s: &str) -> Result<UrlTarget, Reason> {
    let (scheme, rest) = split_scheme(s)?;
    let (authority, rest) = split_authority(rest);
    let (host, port) = authority_parts(authority)?;
    // Fragments never reach a server, so they are never part of a cache key.
    let rest = rest.split('#').next().unwrap_or_default();
    let path_and_query = match rest.strip_prefix('?') {
        Some(_) => format!("/{rest}"),
        None if rest.is_empty() => "/".to_owned(),
        None => rest.to_owned(),
    };
    Ok(UrlTarget {
        scheme: scheme.map(str::to_owned),
        host,
        port,
        path_and_query: path(&path_and_query)?,
    })
}

/// `host/path` or `http(s)://host/path`; the port, if any, is dropped like the scheme (a prefix
/// covers every listener).
pub(super) fn prefix(s: &str) -> Result<PrefixTarget, Reason> {
    let (_, rest) = split_scheme(s)?;
    let (authority, rest) = split_authority(rest);
    let (host, _) = authority_parts(authority)?;
    if rest.is_empty() {
        return Err("a prefix needs a path after the host, e.g. `example.com/images/`".to_owned());
    }
    if !rest.starts_with('/') {
        return Err("a prefix is a path: no query or fragment".to_owned());
    }
    if rest.contains(['?', '#']) {
        return Err("a prefix is a path: no query or fragment".to_owned());
    }
    Ok(PrefixTarget {
        host,
        path_prefix: path(rest)?,
    })
}

/// A bare host name or IP literal (`[::1]` for IPv6); a `:port` is accepted and dropped.
pub(super) fn host(s: &str) -> Result<String, Reason> {
    if s.contains("://") {
        return Err("give a bare host name, without a scheme".to_owned());
    }
    if s.contains('/') {
        return Err("a host must not contain `/`".to_owned());
    }
    authority_parts(s).map(|(host, _)| host)
}

/// A surrogate key: non-empty, no whitespace or control characters.
pub(super) fn tag(s: &str) -> Result<String, Reason> {
    if s.len() > MAX_TAG_BYTES {
        return Err(format!("longer than {MAX_TAG_BYTES} bytes"));
    }
    name(s)
}

/// A tag or a site name.
pub(super) fn name(s: &str) -> Result<String, Reason> {
    if s.is_empty() {
        return Err("empty".to_owned());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("whitespace or control character".to_owned());
    }
    Ok(s.to_owned())
}

/// Takes an `http://` or `https://` scheme off; other schemes are refused. `://` later on
/// (in a query, say) is not a scheme.
fn split_scheme(s: &str) -> Result<(Option<&'static str>, &str), Reason> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return Ok((None, s));
    };
    let mut chars = scheme.chars();
    let is_scheme = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !is_scheme {
        return Ok((None, s));
    }
    if scheme.eq_ignore_ascii_case("https") {
        Ok((Some("https"), rest))
    } else if scheme.eq_ignore_ascii_case("http") {
        Ok((Some("http"), rest))
    } else {
        Err(format!("scheme `{scheme}` is not http or https"))
    }
}

/// Splits `authority` from what follows it (`/...`, `?...`, `#...` or nothing).
fn split_authority(s: &str) -> (&str, &str) {
    let end = s.find(['/', '?', '#']).unwrap_or(s.len());
    s.split_at(end)
}

/// `host[:port]` or `[v6][:port]`, normalised.
fn authority_parts(authority: &str) -> Result<(String, Option<u16>), Reason> {
    if authority.is_empty() {
        return Err("missing host".to_owned());
    }
    if authority.contains('@') {
        return Err("user information (`user@`) is not allowed".to_owned());
    }
    if authority
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("whitespace or control character in host".to_owned());
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or_else(|| "unclosed `[` in IPv6 address".to_owned())?;
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!("`{ip}` is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            after => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("unexpected `{after}` after the IPv6 address"))?,
            ),
        };
        (format!("[{}]", ip.to_ascii_lowercase()), port)
    } else {
        let (name, port) = match authority.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err("write IPv6 addresses in brackets, e.g. `[::1]`".to_owned());
            }
            Some((name, port)) => (name, Some(port)),
            None => (authority, None),
        };
        (host_name(name)?, port)
    };
    Ok((host, port.map(parse_port).transpose()?))
}

fn parse_port(port: &str) -> Result<u16, Reason> {
    // `u16::from_str` takes a leading `+`; a port is digits only.
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad port `{port}`"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("port `{port}` is out of range")),
        Ok(port) => Ok(port),
    }
}

/// A DNS name (or IPv4 literal): lower case, trailing dot dropped. Underscores are allowed
/// since real hosts have them.
fn host_name(name: &str) -> Result<String, Reason> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("missing host".to_owned());
    }
    if name.len() > 253 {
        return Err("host name longer than 253 bytes".to_owned());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(if c.is_ascii() {
            format!("invalid character `{c}` in host")
        } else {
            "non-ASCII host: use its punycode (`xn--`) form".to_owned()
        });
    }
    if name
        .split('.')
        .any(|label| label.is_empty() || label.len() > 63)
    {
        return Err("empty or over-long label in host".to_owned());
    }
    Ok(name.to_ascii_lowercase())
}

/// Checks a path (and query): no whitespace or control characters; non-ASCII percent-encoded,
/// as clients send it and so as cache keys hold it.
fn path(s: &str) -> Result<String, Reason> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("whitespace or control character in path (percent-encode it)".to_owned());
    }
    if s.is_ascii() {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii() {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    Ok(out)
}
