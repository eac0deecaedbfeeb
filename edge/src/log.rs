//! The access log: one record per request, written when its response body has ended (so it
//! knows the bytes sent, the total duration and whether the body was cut off), by a writer
//! thread of its own: a runtime thread only formats the line and hands it over, it never
//! waits for stderr, stdout or a disk. One JSON object per line by default, the combined log
//! format on request (`[log] format`); `[log] access` says where (`stderr`, `stdout`, a file,
//! `off`). `EDGE_ACCESS_LOG=off|json|combined` overrides the config. A file is reopened on
//! SIGUSR1, so logrotate can rename it and have new lines go to a new file at the path.
//!
//! Per request, with the log on: the record's strings (id, client, method, host, path, query,
//! site, pool, cache status, user agent, referer) and the line; a site's `log_sample` skips
//! both for the requests it leaves out (by a hash of the request id, so an edge and its shield
//! keep the same requests; 5xx are always kept). With the log off: nothing is built.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use config::{AccessOutput, LogFormat, Snapshot};
use edge_core::clock::{self, Instant};
use http_body::{Body, Frame, SizeHint};

use crate::body::{BoxError, ProxyBody};
use crate::trace::{Trace, push_hex};

/// `EDGE_ACCESS_LOG`, read once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EnvOverride {
    Off,
    Format(LogFormat),
}

fn env_override() -> Option<EnvOverride> {
    match std::env::var("EDGE_ACCESS_LOG").as_deref() {
        Ok("off") => Some(EnvOverride::Off),
        Ok("combined") => Some(EnvOverride::Format(LogFormat::Combined)),
        Ok("json") => Some(EnvOverride::Format(LogFormat::Json)),
        _ => None,
    }
}

/// Lines waiting for the writer; beyond this, records are dropped (and counted) rather than
/// letting a slow log stall requests or grow memory.
const QUEUE: usize = 64 * 1024;

enum Msg {
    Line(String),
    /// Look at `Control` (a new output, a reopen).
    Wake,
}

/// What the writer is told besides lines. Not queued behind them: a full queue must not lose
/// a reload's new output or a SIGUSR1.
#[derive(Default)]
struct Control {
    output: Mutex<Option<AccessOutput>>,
    reopen: AtomicBool,
}

pub struct AccessLog {
    tx: Option<mpsc::SyncSender<Msg>>,
    control: Arc<Control>,
    env: Option<EnvOverride>,
    /// One more than the newest snapshot version whose output the writer was given (0: none);
    /// written under `control.output`'s lock.
    applied: AtomicU64,
    pub dropped: AtomicU64,
}

impl AccessLog {
    /// Starts the writer thread (writing to stderr until the first request brings the
    /// config's `[log] access`) and, inside a tokio runtime, the SIGUSR1 handler that makes it
    /// reopen its file.
    pub fn start() -> AccessLog {
        let control = Arc::new(Control::default());
        let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE);
        let c = control.clone();
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer(&rx, &c));
        let tx = match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the access log writer; no access log");
                None
            }
        };
        if let (Some(tx), Ok(rt)) = (&tx, tokio::runtime::Handle::try_current()) {
            // Installed now, not in the task: a SIGUSR1 right after start-up must not find the
            // default action (terminate) still in place.
            let _entered = rt.enter();
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()) {
                Ok(mut usr1) => {
                    let (tx, control) = (tx.clone(), control.clone());
                    rt.spawn(async move {
                        while usr1.recv().await.is_some() {
                            control.reopen.store(true, Ordering::Release);
                            // A full queue means the writer is busy and sees the flag anyway.
                            let _ = tx.try_send(Msg::Wake);
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no SIGUSR1 handler: the access log cannot be reopened")
                }
            }
        }
        AccessLog {
            tx,
            control,
            env: env_override(),
            applied: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// The format the records of requests on `snapshot` are written in, or `None` when they
    /// are not written (then the pipeline builds nothing). The first request on a newer
    /// snapshot hands its output to the writer: a reload can move the log.
    pub fn prepare(&self, snapshot: &Snapshot) -> Option<LogFormat> {
        let tx = self.tx.as_ref()?;
        let format = match self.env {
            // Not even the output is opened.
            Some(EnvOverride::Off) => return None,
            Some(EnvOverride::Format(f)) => f,
            None => snapshot.log.format,
        };
        let version = snapshot.version.saturating_add(1);
        // Requests still finishing on an older snapshot must not move the log back. The output
        // is handed over before `applied` says so: a request that sees the new version queues
        // its line after the writer can see the new output.
        if version > self.applied.load(Ordering::Acquire) {
            let mut pending = self
                .control
                .output
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if version > self.applied.load(Ordering::Acquire) {
                *pending = Some(snapshot.log.access.clone());
                self.applied.store(version, Ordering::Release);
                drop(pending);
                let _ = tx.try_send(Msg::Wake);
            }
        }
        (snapshot.log.access != AccessOutput::Off).then_some(format)
    }

    pub fn write(&self, rec: &Record) {
        let Some(tx) = &self.tx else { return };
        let line = match rec.format {
            LogFormat::Json => rec.json(),
            LogFormat::Combined => rec.combined(),
        };
        if tx.try_send(Msg::Line(line)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Where the writer puts lines.
enum Sink {
    Off,
    Stderr,
    Stdout,
    File {
        path: PathBuf,
        /// `None` after a failed open: retried with the next batch.
        file: Option<std::fs::File>,
        /// The last open or write failed (and said so): the next failures are not logged
        /// again, or an unwritable path would put a line in the log per batch.
        failing: bool,
    },
}

impl Sink {
    fn new(output: AccessOutput) -> Sink {
        match output {
            AccessOutput::Off => Sink::Off,
            AccessOutput::Stderr => Sink::Stderr,
            AccessOutput::Stdout => Sink::Stdout,
            AccessOutput::File(path) => {
                let mut sink = Sink::File {
                    path,
                    file: None,
                    failing: false,
                };
                sink.reopen();
                sink
            }
        }
    }

    fn is(&self, output: &AccessOutput) -> bool {
        match (self, output) {
            (Sink::Off, AccessOutput::Off)
            | (Sink::Stderr, AccessOutput::Stderr)
            | (Sink::Stdout, AccessOutput::Stdout) => true,
            (Sink::File { path, .. }, AccessOutput::File(p)) => path == p,
            _ => false,
        }
    }

    /// Closes the file and opens the path again: after logrotate renamed it, a new file.
    fn reopen(&mut self) {
        if let Sink::File {
            path,
            file,
            failing,
        } = self
        {
            *file = None;
            let opened = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&*path);
            *file = note(
                opened,
                path,
                failing,
                "cannot open the access log; its lines are lost until it opens",
            );
        }
    }

    fn write(&mut self, batch: &[u8]) {
        if batch.is_empty() {
            return;
        }
        // The std locks are taken per batch only: other threads (tracing, `ready`) write there
        // too. Errors on stderr and stdout have nowhere to be told.
        match self {
            Sink::Off => {}
            Sink::Stderr => {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(batch).and_then(|()| err.flush());
            }
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(batch).and_then(|()| out.flush());
            }
            Sink::File { file: None, .. } => {
                self.reopen();
                if let Sink::File { file: Some(_), .. } = self {
                    self.write(batch);
                }
            }
            Sink::File {
                path,
                file: Some(f),
                failing,
            } => {
                let written = f.write_all(batch);
                note(
                    written,
                    path,
                    failing,
                    "access log write failed; lines are lost",
                );
            }
        }
    }
}

/// `result`'s value; its error logged unless the previous outcome was an error too.
fn note<T>(
    result: std::io::Result<T>,
    path: &std::path::Path,
    failing: &mut bool,
    what: &str,
) -> Option<T> {
    match result {
        Ok(v) => {
            if std::mem::take(failing) {
                tracing::info!(path = %path.display(), "access log writable again");
            }
            Some(v)
        }
        Err(e) => {
            if !std::mem::replace(failing, true) {
                tracing::error!(path = %path.display(), error = %e, "{what}");
            }
            None
        }
    }
}

/// The writer thread: gathers what is queued and writes it in one call.
fn writer(rx: &mpsc::Receiver<Msg>, control: &Control) {
    let mut sink = Sink::Stderr;
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Ok(msg) = rx.recv() {
        let mut next = Some(msg);
        while let Some(msg) = next.take() {
            if let Msg::Line(line) = msg {
                batch.extend_from_slice(line.as_bytes());
            }
            if batch.len() < 256 * 1024 {
                next = rx.try_recv().ok();
            }
        }
        // A change applies to the lines gathered with it: the line of the first request on a
        // new snapshot is queued after its output was set, and may be in this batch.
        let output = control
            .output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(output) = output
            && !sink.is(&output)
        {
            sink = Sink::new(output);
        }
        if control.reopen.swap(false, Ordering::AcqRel) {
            sink.reopen();
        }
        sink.write(&batch);
        batch.clear();
    }
}

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

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

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

/// What is known about a request once its response head is ready; completed by the body.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub format: LogFormat,
    pub request_id: String,
    pub client: String,
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
        let mut o = String::with_capacity(512);
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
            let _ = write!(o, ",\"{k}\":");
            json_str(&mut o, v);
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
            let _ = write!(o, ",\"{k}\":");
            json_str(&mut o, v);
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

    #[test]
    fn calendar_fields() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0, 0));
        // 2026-11-30T21:35:44.123Z
        assert_eq!(civil(1_796_074_544_123), (2026, 11, 30, 21, 35, 44, 123));
        // 2000-02-29T23:59:59.999Z (a leap day)
        assert_eq!(civil(951_868_799_999), (2000, 2, 29, 23, 59, 59, 999));
    }
}
