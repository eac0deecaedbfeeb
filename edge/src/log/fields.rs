//! What a record holds beyond the request head: the origin that answered, the query as it is
//! logged (redacted), the response coding, and whether a site samples the request in.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The origin (or shield) endpoint whose response a request got, and the time from sending
/// the request to its response head (retries included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginAnswer {
    pub endpoint: SocketAddr,
    pub head: Duration,
}

/// A request's `OriginAnswer`, set where origin requests are sent (they see the context by
/// shared reference). A plain mutex, never contended: one request's phases run one at a time.
#[derive(Debug, Default)]
pub struct OriginSlot(Mutex<Option<OriginAnswer>>);

impl OriginSlot {
    pub fn set(&self, answer: OriginAnswer) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(answer);
    }

    pub fn get(&self) -> Option<OriginAnswer> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clone for OriginSlot {
    /// A copy of the value, not a shared slot: a context cloned for a background refresh does
    /// not change what the request's own log line says.
    fn clone(&self) -> Self {
        OriginSlot(Mutex::new(self.get()))
    }
}

/// Whether a request with `request_id` is among the `share` (0 to 1) of its site's requests
/// the log keeps: a hash of the id, so the choice is the same wherever the id goes.
pub fn sampled(request_id: &str, share: f64) -> bool {
    if share >= 1.0 {
        return true;
    }
    if share <= 0.0 {
        return false;
    }
    // FNV-1a, then SplitMix64's finaliser: ids differ in few bits, the hash must not.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in request_id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    ((h >> 11) as f64) / ((1u64 << 53) as f64) < share
}

/// The query as the log shows it: the values of parameters named in `redact` (lower case;
/// names are compared percent-decoded and without regard to case, so `%74oken` and `Token`
/// are `token`) replaced by `REDACTED`.
pub fn redact_query<'a>(query: &'a str, redact: &[String]) -> Cow<'a, str> {
    if redact.is_empty() {
        return Cow::Borrowed(query);
    }
    let hit = |name: &str| {
        let decoded = percent_decode(name);
        redact.iter().any(|r| r.eq_ignore_ascii_case(&decoded))
    };
    if !query
        .split('&')
        .any(|p| p.split_once('=').is_some_and(|(n, _)| hit(n)))
    {
        return Cow::Borrowed(query);
    }
    let mut out = String::with_capacity(query.len());
    for (i, param) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match param.split_once('=') {
            Some((name, _)) if hit(name) => {
                out.push_str(name);
                out.push_str("=REDACTED");
            }
            _ => out.push_str(param),
        }
    }
    Cow::Owned(out)
}

use edge_core::query::percent_decode;

/// The response's `Content-Encoding` as the log names it (no allocation for the usual ones).
pub fn coding_name(value: &[u8]) -> Cow<'static, str> {
    match value {
        b"zstd" => Cow::Borrowed("zstd"),
        b"br" => Cow::Borrowed("br"),
        b"gzip" => Cow::Borrowed("gzip"),
        b"deflate" => Cow::Borrowed("deflate"),
        other => Cow::Owned(String::from_utf8_lossy(other).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_replaces_values_of_named_parameters_only() {
        let names = ["token".to_string(), "sig".to_string()];
        assert_eq!(
            redact_query("a=1&token=s3cret&b=2&sig=xyz", &names),
            "a=1&token=REDACTED&b=2&sig=REDACTED"
        );
        // Names are compared decoded and without regard to case; values never matter.
        assert_eq!(
            redact_query("Token=x&%74oken=y&tokens=z&a=token", &names),
            "Token=REDACTED&%74oken=REDACTED&tokens=z&a=token"
        );
        assert_eq!(redact_query("token&x=1", &names), "token&x=1");
        assert!(matches!(redact_query("a=1", &names), Cow::Borrowed(_)));
        assert!(matches!(redact_query("token=1", &[]), Cow::Borrowed(_)));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn sampling_keeps_about_the_share_and_is_deterministic() {
        let ids: Vec<String> = (0..10_000u64)
            .map(|n| {
                format!(
                    "{:016x}",
                    12345u64.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                )
            })
            .collect();
        let kept = ids.iter().filter(|id| sampled(id, 0.1)).count();
        assert!((800..1200).contains(&kept), "{kept} of 10000 at 0.1");
        assert!(ids.iter().all(|id| sampled(id, 1.0)));
        assert!(!ids.iter().any(|id| sampled(id, 0.0)));
        assert_eq!(sampled(&ids[7], 0.5), sampled(&ids[7], 0.5));
    }
}
