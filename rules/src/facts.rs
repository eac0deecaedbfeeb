//! What the rules look at: one request, as the edge saw it, plus the time and a random number,
//! both handed in so that evaluation stays a pure function (no clock, no RNG inside).

use std::borrow::Cow;
use std::net::IpAddr;

use http::{HeaderMap, Method};

/// One request as the rules see it. Every field is borrowed from the edge's request context.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub method: &'a Method,
    /// The host the site was chosen by, lower case, without port.
    pub host: &'a str,
    /// The path after the edge's normalisation (rewrites apply to this form).
    pub path: &'a str,
    /// The query without `?`; `None` when the URI has none.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The visitor's address (behind a trusted proxy: the forwarded one).
    pub client: IpAddr,
    /// Whether the client connection is HTTPS (TLS or QUIC); `${scheme}` and `Secure` cookies.
    pub https: bool,
    /// ISO 3166-1 alpha-2 country code from geo, when known.
    pub country: Option<&'a str>,
    /// Two-letter continent code (AF, AN, AS, EU, NA, OC, SA), when known.
    pub continent: Option<&'a str>,
    /// Autonomous system number, when known.
    pub asn: Option<u32>,
    /// The time rules' time windows and JWT expiry are judged at.
    pub now: jiff::Timestamp,
    /// `${request_id}`.
    pub request_id: &'a str,
    /// A fresh random number for this request. Used only to pick the A/B value of a visitor who
    /// has no pin cookie yet; tests pass fixed values.
    pub random: u64,
}

impl<'a> RequestFacts<'a> {
    /// The value of cookie `name` from the `Cookie` header(s): the first one wins (RFC 6265
    /// §5.4 orders more specific paths first); surrounding double quotes are removed.
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        self.headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| {
                let v = v.trim();
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v)
            })
    }

    /// The first value of query parameter `name`, percent-decoded (`+` is a space, as forms
    /// send it); `Some("")` for `?name` without `=`.
    pub fn query_param(&self, name: &str) -> Option<Cow<'a, str>> {
        let query = self.query?;
        // Nothing escaped and the name nowhere: absent, without taking the query apart.
        if !query.contains(['%', '+']) && !query.contains(name) {
            return None;
        }
        query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .find(|(n, _)| decode(n) == name)
            .map(|(_, v)| decode(v))
    }

    /// The first value of header `name` as text (`None` if absent or not visible ASCII).
    pub fn header(&self, name: &http::HeaderName) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// `now` for [`RequestFacts`] from the edge's wall clock (`edge_core::clock::wall()`); a time
/// outside jiff's range (years -9999 to 9999) becomes the Unix epoch.
pub fn timestamp(t: std::time::SystemTime) -> jiff::Timestamp {
    jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

use edge_core::query::percent_decode as decode;
