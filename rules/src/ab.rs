//! A/B buckets: every visitor falls in one of 100 buckets (0-99) by a stable hash of a value
//! that stays with them; `bucket = [0, 89]` and `bucket = [90, 99]` then split traffic 90/10.
//!
//! The value is, in order: the pin cookie, if the visitor has one; else the `by` cookie (when
//! `by` is a cookie of the site's own, such as a session id); else, with pinning on, a new
//! value that a `Set-Cookie` pins (a random one, or the client address when `by = client`);
//! else the client address.
//!
//! The hash is FNV-1a (64 bit) followed by the SplitMix64 finaliser, mod 100: fixed, so a
//! visitor keeps their bucket across restarts, nodes and versions (never std's `RandomState`).

use std::net::IpAddr;
use std::time::Duration;

use http::HeaderValue;

use crate::RequestFacts;

/// What a visitor's bucket is a hash of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AbBy {
    /// The value of this cookie.
    Cookie(String),
    /// The client address.
    Client,
}

/// Pinning: a visitor without the cookie is given one, so their bucket survives a change of
/// address (`by = client`) or a first visit (`by = cookie`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub cookie: String,
    pub lifetime: Duration,
}

/// A site's A/B settings (`[sites.ab]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbSettings {
    pub by: AbBy,
    pub pin: Option<Pin>,
}

/// The bucket (0-99) of a value.
pub fn bucket_of(value: &str) -> u8 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in value.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // SplitMix64's finaliser: FNV's low bits alone are poorly mixed for short inputs.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h % 100) as u8
}

/// The outcome of bucketing one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assigned {
    pub bucket: u8,
    /// A `Set-Cookie` value pinning a new visitor.
    pub set_cookie: Option<HeaderValue>,
}

fn client_text(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

impl AbSettings {
    pub(crate) fn assign(&self, facts: &RequestFacts<'_>) -> Assigned {
        let existing = self
            .pin
            .as_ref()
            .and_then(|p| facts.cookie(&p.cookie))
            .or_else(|| match &self.by {
                AbBy::Cookie(name) => facts.cookie(name),
                AbBy::Client => None,
            })
            .filter(|v| !v.is_empty());
        if let Some(v) = existing {
            return Assigned {
                bucket: bucket_of(v),
                set_cookie: None,
            };
        }
        let Some(pin) = &self.pin else {
            return Assigned {
                bucket: bucket_of(&client_text(facts.client)),
                set_cookie: None,
            };
        };
        let value = match self.by {
            AbBy::Client => client_text(facts.client),
            AbBy::Cookie(_) => format!("{:016x}", facts.random),
        };
        let mut cookie = format!(
            "{}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax",
            pin.cookie,
            pin.lifetime.as_secs()
        );
        if facts.https {
            cookie.push_str("; Secure");
        }
        Assigned {
            bucket: bucket_of(&value),
            // The name is checked when the config compiles and the value is hex or an address:
            // always a valid header value; `ok()` rather than a panic all the same.
            set_cookie: HeaderValue::from_str(&cookie).ok(),
        }
    }
}

/// Whether `name` can be a cookie name (an RFC 6265 token).
pub fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'(' | b')'
                        | b'<'
                        | b'>'
                        | b'@'
                        | b','
                        | b';'
                        | b':'
                        | b'\\'
                        | b'"'
                        | b'/'
                        | b'['
                        | b']'
                        | b'?'
                        | b'='
                        | b'{'
                        | b'}'
                )
        })
}
