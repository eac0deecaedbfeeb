//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): a request's trace is the
//! client's `traceparent` when it sent a valid one, else a new one (`[log] start_traces`).
//! Every request is a span of its own here: a random span id, sent to the origin as the parent
//! id of its `traceparent`, with the trace id and flags kept and the client's `tracestate` as it
//! came. The trace and span ids go into the access log.
//!
//! Accepted from any client, trusted or not: unlike the forwarding headers, a `traceparent`
//! steers nothing another client sees. It only names the trace in this request's own log line
//! and in the `traceparent` of this request's own origin requests; it is never part of a cache
//! key, and a response stored from such a request is the same whatever trace it was in.
//!
//! Spans are not exported (no OTLP): that would need the `opentelemetry-otlp` crate and a
//! collector; the log line carries the ids a tracing system would join on.
//!
//! Cost per request: one header lookup, a parse of 55 bytes when present, two or three
//! calls of a thread-local generator; nothing allocated. An origin request allocates its
//! `traceparent` value.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

use http::header::{HeaderMap, HeaderName, HeaderValue};

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// A request's place in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trace {
    pub trace_id: [u8; 16],
    /// This hop's span: the parent id the origin sees.
    pub span_id: [u8; 8],
    /// The client's span (its `traceparent`'s parent id), when it sent one.
    pub parent_id: Option<[u8; 8]>,
    pub flags: u8,
}

/// The `sampled` flag, set on traces this node starts: their ids are in the access log (as
/// its sampling allows), so an origin sampling by its parent records its side too.
const SAMPLED: u8 = 0x01;

impl Trace {
    /// The trace of a request with `headers`: the client's, continued, when its `traceparent`
    /// is valid (exactly one field); else a new one when `start` says so; else none.
    pub fn for_request(headers: &HeaderMap, start: bool) -> Option<Trace> {
        let mut values = headers.get_all(&TRACEPARENT).iter();
        let client = match (values.next(), values.next()) {
            // Two fields cannot be told apart: the spec says treat that as no traceparent.
            (Some(v), None) => parse(v.as_bytes()),
            _ => None,
        };
        match client {
            Some((trace_id, parent, flags)) => Some(Trace {
                trace_id,
                span_id: span_id(),
                parent_id: Some(parent),
                flags,
            }),
            None if start => {
                let trace_id = loop {
                    let id = u128::from(random()) << 64 | u128::from(random());
                    if id != 0 {
                        break id.to_be_bytes();
                    }
                };
                Some(Trace {
                    trace_id,
                    span_id: span_id(),
                    parent_id: None,
                    flags: SAMPLED,
                })
            }
            None => None,
        }
    }

    /// The `traceparent` this hop sends: the trace id and flags, this span as the parent.
    pub fn traceparent(&self) -> HeaderValue {
        let mut buf = [0u8; 55];
        buf[..3].copy_from_slice(b"00-");
        hex_into(&self.trace_id, &mut buf[3..35]);
        buf[35] = b'-';
        hex_into(&self.span_id, &mut buf[36..52]);
        buf[52] = b'-';
        hex_into(&[self.flags], &mut buf[53..55]);
        // Only hex digits and dashes: always a valid field value.
        HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Whether the trace came from the client (so its `tracestate` belongs to it).
    pub fn continued(&self) -> bool {
        self.parent_id.is_some()
    }
}

/// Sets the trace fields of an origin request (`fields`: the client's, being rewritten). The
/// client's `tracestate` goes on only with the client's trace; with a new trace, or none, the
/// client's fields are removed (an invalid `traceparent` is not passed on).
pub fn propagate(trace: Option<&Trace>, fields: &mut HeaderMap) {
    match trace {
        Some(t) => {
            fields.insert(&TRACEPARENT, t.traceparent());
            if !t.continued() {
                fields.remove(&TRACESTATE);
            }
        }
        None => {
            fields.remove(&TRACEPARENT);
            fields.remove(&TRACESTATE);
        }
    }
}

/// A version-00 `traceparent`: `00-` 32 hex digits (not all zero) `-` 16 hex digits (not all
/// zero) `-` 2 hex digits, lower case, nothing more. Anything else is treated as absent.
pub fn parse(v: &[u8]) -> Option<([u8; 16], [u8; 8], u8)> {
    if v.len() != 55 || !v.starts_with(b"00-") || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let mut trace_id = [0u8; 16];
    let mut parent = [0u8; 8];
    let mut flags = [0u8; 1];
    unhex(&v[3..35], &mut trace_id)?;
    unhex(&v[36..52], &mut parent)?;
    unhex(&v[53..55], &mut flags)?;
    if trace_id == [0; 16] || parent == [0; 8] {
        return None;
    }
    Some((trace_id, parent, flags[0]))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` as lower-case hex into `out` (twice as long).
pub fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0x0f)];
    }
}

/// Appends `bytes` as lower-case hex to `out`.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

fn unhex(text: &[u8], out: &mut [u8]) -> Option<()> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        // Lower case only: the spec's grammar has no upper-case hex.
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (pair, o) in text.chunks_exact(2).zip(out.iter_mut()) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(())
}

fn span_id() -> [u8; 8] {
    loop {
        let id = random();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

/// A random 64-bit number: SplitMix64 over a thread-local state seeded from the standard
/// library's random hasher keys (from the OS) and the clock. Ids only need to be unique and
/// unpredictable enough not to collide, not secret; this costs no system call per request.
fn random() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(edge_core::clock::unix_nanos());
            h.write_u64(u64::from(std::process::id()));
            h.finish()
        });
    }
    STATE.with(|s| {
        let x = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(&TRACEPARENT, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let t = Trace::for_request(&headers(&[GOOD]), false).expect("continued");
        let mut id = String::new();
        push_hex(&mut id, &t.trace_id);
        assert_eq!(id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id, Some(*b"\x00\xf0\x67\xaa\x0b\xa9\x02\xb7"));
        assert_eq!(t.flags, 1);
        assert_ne!(t.span_id, [0; 8]);
        assert_ne!(Some(t.span_id), t.parent_id);
        let sent = t.traceparent();
        let sent = sent.to_str().expect("ascii");
        assert!(
            sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{sent}"
        );
        assert!(sent.ends_with("-01"), "{sent}");
        assert_eq!(parse(sent.as_bytes()).map(|p| p.1), Some(t.span_id));
        // Every request is a span of its own.
        let again = Trace::for_request(&headers(&[GOOD]), false).expect("continued");
        assert_ne!(again.span_id, t.span_id);
    }

    #[test]
    fn invalid_traceparents_are_absent() {
        for bad in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-g1",
            "",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad}");
            assert_eq!(Trace::for_request(&headers(&[bad]), false), None, "{bad}");
            let started = Trace::for_request(&headers(&[bad]), true).expect("started");
            assert!(!started.continued(), "{bad}");
        }
        // Two fields: which one? Neither.
        assert_eq!(Trace::for_request(&headers(&[GOOD, GOOD]), false), None);
    }

    #[test]
    fn a_new_trace_is_random_sampled_and_drops_the_clients_tracestate() {
        let a = Trace::for_request(&HeaderMap::new(), true).expect("started");
        let b = Trace::for_request(&HeaderMap::new(), true).expect("started");
        assert_ne!(a.trace_id, b.trace_id);
        assert_ne!(a.trace_id, [0; 16]);
        assert_eq!(a.flags, SAMPLED);
        let mut fields = HeaderMap::new();
        fields.insert(&TRACESTATE, HeaderValue::from_static("k=v"));
        propagate(Some(&a), &mut fields);
        assert!(fields.get(&TRACESTATE).is_none());
        assert!(parse(fields[&TRACEPARENT].as_bytes()).is_some());
        assert_eq!(Trace::for_request(&HeaderMap::new(), false), None);
    }

    #[test]
    fn a_continued_trace_keeps_tracestate_and_none_removes_both() {
        let t = Trace::for_request(&headers(&[GOOD]), true).expect("continued");
        let mut fields = headers(&[GOOD]);
        fields.append(&TRACESTATE, HeaderValue::from_static("a=1"));
        fields.append(&TRACESTATE, HeaderValue::from_static("b=2"));
        propagate(Some(&t), &mut fields);
        assert_eq!(fields.get_all(&TRACEPARENT).iter().count(), 1);
        assert_ne!(fields[&TRACEPARENT], GOOD);
        assert_eq!(fields.get_all(&TRACESTATE).iter().count(), 2);
        propagate(None, &mut fields);
        assert!(fields.get(&TRACEPARENT).is_none() && fields.get(&TRACESTATE).is_none());
    }
}
