//! One access record and its two line formats (JSON, combined).

use std::borrow::Cow;
use std::fmt::Write as _;

use config::LogFormat;
use edge_core::clock;

use crate::trace::{Trace, push_hex};

use super::OriginAnswer;

/// What is known about a request once its response head is ready; completed by the body.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// How the access line is written; `None`: no line (the record is only exported).
    pub format: Option<LogFormat>,
    /// The collector the request's span goes to (`[log] otlp`, sampled traces only).
    pub otlp: Option<std::sync::Arc<str>>,
    pub request_id: String,
    pub client: String,
    /// The visitor's country, when the node has GeoIP databases that know it.
    pub country: Option<geo::Code>,
    pub proto: &'static str,
    pub method: String,
    pub host: String,
    pub path: String,
    /// The query the origin gets (without parameters the site's cache key ignores), redacted
    /// as `[log]` says; `None`: no query, or `redact_query`.
    pub query: Option<String>,
    pub site: String,
    pub pool: String,
    pub status: u16,
    pub cache: String,
    pub config_version: u64,
    pub user_agent: String,
    pub referer: String,
    /// Time to first byte: from the request's head to its response head, in milliseconds.
    pub head_ms: f64,
    /// The endpoint that answered and its time to response head (none: a hit, a collapsed
    /// request served from another's fetch, an error before any origin answered).
    pub origin: Option<OriginAnswer>,
    /// The response's `Content-Encoding` (ours when the edge compressed, else the origin's).
    pub compression: Option<Cow<'static, str>>,
    pub trace: Option<Trace>,
    // Filled in when the body ends:
    pub bytes_sent: u64,
    pub duration_ms: f64,
    pub aborted: bool,
}

/// `s` as a JSON string. Runs of bytes that need no escape are copied whole (most fields
/// have none): char-at-a-time pushing showed in the profile of a logged hit.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        // `i` is at an ASCII byte, so both slices end on char boundaries.
        out.push_str(&s[run..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// `,"key":` then `value` as a JSON string.
fn json_field(out: &mut String, key: &str, value: &str) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    json_str(out, value);
}

/// `,"key":"hex"` or `,"key":null`.
fn json_hex(out: &mut String, key: &str, bytes: Option<&[u8]>) {
    let _ = write!(out, ",\"{key}\":");
    match bytes {
        Some(b) => {
            out.push('"');
            push_hex(out, b);
            out.push('"');
        }
        None => out.push_str("null"),
    }
}

impl Record {
    pub fn json(&self) -> String {
        let mut o = String::with_capacity(
            400 + self.path.len() + self.user_agent.len() + self.referer.len() + self.host.len(),
        );
        let (y, mo, d, h, mi, sec, ms) = civil(clock::unix_ms());
        let _ = write!(
            o,
            "{{\"ts\":\"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}.{ms:03}Z\""
        );
        for (k, v) in [
            ("request_id", &self.request_id),
            ("client", &self.client),
            ("method", &self.method),
            ("host", &self.host),
            ("path", &self.path),
        ] {
            json_field(&mut o, k, v);
        }
        o.push_str(",\"query\":");
        match &self.query {
            Some(q) => json_str(&mut o, q),
            None => o.push_str("null"),
        }
        for (k, v) in [
            ("site", &self.site),
            ("pool", &self.pool),
            ("cache", &self.cache),
            ("user_agent", &self.user_agent),
            ("referer", &self.referer),
        ] {
            json_field(&mut o, k, v);
        }
        let _ = write!(
            o,
            ",\"proto\":\"{}\",\"status\":{},\"bytes_sent\":{},\"head_ms\":{:.3},\"duration_ms\":{:.3}",
            self.proto, self.status, self.bytes_sent, self.head_ms, self.duration_ms,
        );
        match &self.origin {
            Some(a) => {
                let _ = write!(
                    o,
                    ",\"origin\":\"{}\",\"origin_ms\":{:.3}",
                    a.endpoint,
                    a.head.as_secs_f64() * 1000.0
                );
            }
            None => o.push_str(",\"origin\":null,\"origin_ms\":null"),
        }
        o.push_str(",\"country\":");
        match &self.country {
            Some(c) => json_str(&mut o, c.as_str()),
            None => o.push_str("null"),
        }
        o.push_str(",\"compression\":");
        match &self.compression {
            Some(c) => json_str(&mut o, c),
            None => o.push_str("null"),
        }
        json_hex(
            &mut o,
            "trace_id",
            self.trace.as_ref().map(|t| &t.trace_id[..]),
        );
        json_hex(
            &mut o,
            "span_id",
            self.trace.as_ref().map(|t| &t.span_id[..]),
        );
        json_hex(
            &mut o,
            "parent_id",
            self.trace
                .as_ref()
                .and_then(|t| t.parent_id.as_ref())
                .map(|p| &p[..]),
        );
        let _ = writeln!(
            o,
            ",\"aborted\":{},\"config_version\":{}}}",
            self.aborted, self.config_version
        );
        o
    }

    /// NCSA combined log format, plus the request id, cache status and trace id at the end.
    pub fn combined(&self) -> String {
        let q = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
                .replace('\r', "\\r")
        };
        let client = self
            .client
            .rsplit_once(':')
            .map_or(self.client.as_str(), |(ip, _)| ip)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let (y, mo, d, h, mi, sec, _) = civil(clock::unix_ms());
        let month = MONTHS[usize::from(mo.clamp(1, 12)) - 1];
        let target = match &self.query {
            Some(query) => q(&format!("{}?{query}", self.path)),
            None => q(&self.path),
        };
        let mut trace = String::new();
        match &self.trace {
            Some(t) => push_hex(&mut trace, &t.trace_id),
            None => trace.push('-'),
        }
        format!(
            "{client} - - [{d:02}/{month}/{y:04}:{h:02}:{mi:02}:{sec:02} +0000] \"{} {target} HTTP/{}\" {} {} \"{}\" \"{}\" {} \"{}\" {trace}{}\n",
            q(&self.method),
            self.proto,
            self.status,
            self.bytes_sent,
            q(&self.referer),
            q(&self.user_agent),
            self.request_id,
            q(&self.cache),
            if self.aborted { " aborted" } else { "" }
        )
    }
}

/// UTC calendar fields of a Unix time in milliseconds (Howard Hinnant's days-to-civil).
fn civil(unix_ms: u64) -> (i64, u8, u8, u8, u8, u8, u16) {
    let secs = (unix_ms / 1000) as i64;
    let ms = (unix_ms % 1000) as u16;
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (tod / 3600) as u8,
        (tod % 3600 / 60) as u8,
        (tod % 60) as u8,
        ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn json_lines_escape_what_clients_send() {
        let rec = Record {
            request_id: "abc".into(),
            method: "GET".into(),
            path: "/a\"b\\c\n".into(),
            user_agent: "x\u{1}y".into(),
            proto: "2",
            status: 200,
            bytes_sent: 10,
            ..Default::default()
        };
        let line = rec.json();
        assert!(line.ends_with("}\n") && line.lines().count() == 1, "{line}");
        assert!(line.contains(r#""path":"/a\"b\\c\n""#), "{line}");
        assert!(line.contains(r#""user_agent":"x\u0001y""#), "{line}");
        assert!(line.contains(r#""status":200,"bytes_sent":10"#), "{line}");
        let combined = rec.combined();
        assert!(
            combined.contains(r#""GET /a\"b\\c\n HTTP/2" 200 10"#),
            "{combined}"
        );
        assert_eq!(combined.lines().count(), 1);
    }

    #[test]
    fn json_lines_carry_query_origin_compression_and_trace() {
        let trace = Trace {
            trace_id: [0xab; 16],
            span_id: [0x01; 8],
            parent_id: Some([0x02; 8]),
            flags: 1,
        };
        let rec = Record {
            request_id: "abc".into(),
            query: Some("a=1&b=\"".into()),
            status: 200,
            head_ms: 1.5,
            origin: Some(OriginAnswer {
                endpoint: "127.0.0.1:9000".parse().expect("addr"),
                head: Duration::from_micros(1250),
            }),
            compression: Some(Cow::Borrowed("br")),
            trace: Some(trace),
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_str(&rec.json()).expect("valid JSON");
        assert_eq!(v["query"], "a=1&b=\"");
        assert_eq!(v["origin"], "127.0.0.1:9000");
        assert_eq!(v["origin_ms"], 1.25);
        assert_eq!(v["head_ms"], 1.5);
        assert_eq!(v["compression"], "br");
        assert_eq!(v["trace_id"], "ab".repeat(16));
        assert_eq!(v["span_id"], "01".repeat(8));
        assert_eq!(v["parent_id"], "02".repeat(8));
        assert_eq!(v["aborted"], false);
        let bare: serde_json::Value =
            serde_json::from_str(&Record::default().json()).expect("valid JSON");
        for k in [
            "query",
            "origin",
            "origin_ms",
            "compression",
            "trace_id",
            "span_id",
        ] {
            assert!(bare[k].is_null(), "{k}: {bare}");
        }
        let combined = Record {
            method: "GET".into(),
            path: "/p".into(),
            proto: "1.1",
            ..rec
        }
        .combined();
        assert!(
            combined.contains("\"GET /p?a=1&b=\\\" HTTP/1.1\""),
            "{combined}"
        );
        assert!(
            combined.trim_end().ends_with(&"ab".repeat(16)),
            "{combined}"
        );
    }

    #[test]
    fn calendar_fields() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0, 0));
        // 2026-11-30T21:35:44.123Z
        assert_eq!(civil(1_796_074_544_123), (2026, 11, 30, 21, 35, 44, 123));
        // 2000-02-29T23:59:59.999Z (a leap day)
        assert_eq!(civil(951_868_799_999), (2000, 2, 29, 23, 59, 59, 999));
    }

    #[test]
    fn json_strings_round_trip() {
        for text in [
            "",
            "plain",
            "quote \" and backslash \\ inside",
            "\n\r\t\u{1}\u{1f} controls",
            "ünïcödé ✓ and \u{7f}",
            "\"",
            "end\\",
        ] {
            let mut out = String::new();
            json_str(&mut out, text);
            let back: String = serde_json::from_str(&out).expect(&out);
            assert_eq!(back, text, "{out}");
        }
    }
}
