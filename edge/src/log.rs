//! The access log: one record per request, written when its response body has ended (so it
//! knows the bytes sent, the total duration and whether the body was cut off), by a writer
//! thread of its own: a runtime thread only formats the line and hands it over, it never
//! waits for stderr or a disk. One JSON object per line by default; the combined log format
//! on request (`EDGE_ACCESS_LOG=combined`, or `off`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll};

use bytes::Bytes;
use edge_core::clock::{self, Instant};
use http_body::{Body, Frame, SizeHint};

use crate::body::{BoxError, ProxyBody};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Combined,
    Off,
}

impl Format {
    pub fn from_env() -> Format {
        match std::env::var("EDGE_ACCESS_LOG").as_deref() {
            Ok("combined") => Format::Combined,
            Ok("off") => Format::Off,
            _ => Format::Json,
        }
    }
}

/// Lines waiting for the writer; beyond this, records are dropped (and counted) rather than
/// letting a slow log stall requests or grow memory.
const QUEUE: usize = 64 * 1024;

pub struct AccessLog {
    tx: Option<mpsc::SyncSender<String>>,
    format: Format,
    pub dropped: AtomicU64,
}

impl AccessLog {
    /// A writer thread appending lines to stderr.
    pub fn stderr(format: Format) -> AccessLog {
        if format == Format::Off {
            return AccessLog {
                tx: None,
                format,
                dropped: AtomicU64::new(0),
            };
        }
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(64 * 1024);
                while let Ok(line) = rx.recv() {
                    // Gather what is queued, then write it in one call. The stderr lock is
                    // taken per batch only: other threads (the tracing logs) write there too.
                    batch.extend_from_slice(line.as_bytes());
                    while batch.len() < 256 * 1024
                        && let Ok(line) = rx.try_recv()
                    {
                        batch.extend_from_slice(line.as_bytes());
                    }
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(&batch);
                    let _ = err.flush();
                    drop(err);
                    batch.clear();
                }
            });
        AccessLog {
            tx: spawned.ok().map(|_| tx),
            format,
            dropped: AtomicU64::new(0),
        }
    }

    /// Whether records are written at all (when not, the pipeline does not build them).
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn write(&self, rec: &Record) {
        let Some(tx) = &self.tx else { return };
        let line = match self.format {
            Format::Json => rec.json(),
            Format::Combined => rec.combined(),
            Format::Off => return,
        };
        if tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What is known about a request once its response head is ready; completed by the body.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub request_id: String,
    pub client: String,
    pub proto: &'static str,
    pub method: String,
    pub host: String,
    pub path: String,
    pub site: String,
    pub pool: String,
    pub status: u16,
    pub cache: String,
    pub config_version: u64,
    pub user_agent: String,
    pub referer: String,
    /// Time to the response head, in milliseconds.
    pub head_ms: f64,
    // Filled in when the body ends:
    pub bytes_sent: u64,
    pub duration_ms: f64,
    pub aborted: bool,
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Record {
    pub fn json(&self) -> String {
        let mut o = String::with_capacity(384);
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
            ("site", &self.site),
            ("pool", &self.pool),
            ("cache", &self.cache),
            ("user_agent", &self.user_agent),
            ("referer", &self.referer),
        ] {
            let _ = write!(o, ",\"{k}\":");
            json_str(&mut o, v);
        }
        let _ = writeln!(
            o,
            ",\"proto\":\"{}\",\"status\":{},\"bytes_sent\":{},\"head_ms\":{:.3},\"duration_ms\":{:.3},\"aborted\":{},\"config_version\":{}}}",
            self.proto,
            self.status,
            self.bytes_sent,
            self.head_ms,
            self.duration_ms,
            self.aborted,
            self.config_version
        );
        o
    }

    /// NCSA combined log format, plus the request id and cache status at the end.
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
        format!(
            "{client} - - [{d:02}/{month}/{y:04}:{h:02}:{mi:02}:{sec:02} +0000] \"{} {} HTTP/{}\" {} {} \"{}\" \"{}\" {} \"{}\"{}\n",
            q(&self.method),
            q(&self.path),
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

/// A response body that writes the access record when it ends: cleanly, with an error, or
/// dropped before its end (the client went away).
pub struct Logged {
    inner: ProxyBody,
    record: Option<Box<Record>>,
    shared: std::sync::Arc<crate::state::Shared>,
    start: Instant,
    bytes: u64,
}

impl Logged {
    pub fn new(
        inner: ProxyBody,
        record: Record,
        shared: std::sync::Arc<crate::state::Shared>,
        start: Instant,
    ) -> Logged {
        Logged {
            inner,
            record: Some(Box::new(record)),
            shared,
            start,
            bytes: 0,
        }
    }

    fn finish(&mut self, aborted: bool) {
        if let Some(mut rec) = self.record.take() {
            rec.bytes_sent = self.bytes;
            rec.duration_ms = clock::since(self.start).as_secs_f64() * 1000.0;
            rec.aborted = aborted;
            self.shared.access_log.write(&rec);
        }
    }
}

impl Body for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.bytes += d.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish(false);
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(true),
            Poll::Ready(None) => self.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // A body that was complete without being polled (HEAD, 304, empty) is not an abort.
        let done = self.inner.is_end_stream();
        self.finish(!done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn calendar_fields() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0, 0));
        // 2026-11-30T21:35:44.123Z
        assert_eq!(civil(1_796_074_544_123), (2026, 11, 30, 21, 35, 44, 123));
        // 2000-02-29T23:59:59.999Z (a leap day)
        assert_eq!(civil(951_868_799_999), (2000, 2, 29, 23, 59, 59, 999));
    }
}
