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

use std::io::Write as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::task::{Context, Poll};

use bytes::Bytes;
use config::{AccessOutput, LogFormat, Snapshot};
use edge_core::clock::{self, Instant};
use http_body::{Body, Frame, SizeHint};

use crate::body::{BoxError, ProxyBody};

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

/// The writer wakes this often to write what is queued, or sooner when `WAKE_AT` lines wait.
/// Requests never wake it one line at a time: waking a parked thread per line (a futex call
/// and a context switch each) took the JSON log from free to +10 µs of CPU per request.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(50);
const WAKE_AT: usize = 4096;

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
    /// Lines queued and not yet taken by the writer.
    pending: AtomicUsize,
    writer: std::sync::OnceLock<std::thread::Thread>,
}

impl Control {
    fn wake(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }
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
            Ok(handle) => {
                let _ = control.writer.set(handle.thread().clone());
                Some(tx)
            }
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
                            control.wake();
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
                self.control.wake();
            }
        }
        (snapshot.log.access != AccessOutput::Off).then_some(format)
    }

    pub fn write(&self, rec: &Record) {
        let Some(tx) = &self.tx else { return };
        let line = match rec.format {
            Some(LogFormat::Json) => rec.json(),
            Some(LogFormat::Combined) => rec.combined(),
            None => return,
        };
        // Counted before it is queued, so the writer never takes away more than was added.
        let pending = self.control.pending.fetch_add(1, Ordering::Relaxed) + 1;
        if tx.try_send(Msg::Line(line)).is_err() {
            self.control.pending.fetch_sub(1, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else if pending == WAKE_AT {
            self.control.wake();
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

/// The writer thread: every `FLUSH_EVERY` (or when woken), takes what is queued and writes
/// it in as few calls as it can.
fn writer(rx: &mpsc::Receiver<Msg>, control: &Control) {
    let mut sink = Sink::Stderr;
    let mut batch = Vec::with_capacity(256 * 1024);
    loop {
        std::thread::park_timeout(FLUSH_EVERY);
        let mut lines = 0;
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok(Msg::Line(line)) => {
                    batch.extend_from_slice(line.as_bytes());
                    lines += 1;
                    if batch.len() >= 256 * 1024 {
                        apply(control, &mut sink);
                        sink.write(&batch);
                        batch.clear();
                    }
                }
                Ok(Msg::Wake) => {}
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        control.pending.fetch_sub(lines, Ordering::Relaxed);
        // A change applies to the lines gathered with it: the line of the first request on a
        // new snapshot is queued after its output was set, and may be in this batch.
        apply(control, &mut sink);
        if !batch.is_empty() {
            sink.write(&batch);
            batch.clear();
        }
        if closed {
            return;
        }
    }
}

/// Takes a new output or a reopen request, if there is one.
fn apply(control: &Control, sink: &mut Sink) {
    let output = control
        .output
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(output) = output
        && !sink.is(&output)
    {
        *sink = Sink::new(output);
    }
    if control.reopen.swap(false, Ordering::AcqRel) {
        sink.reopen();
    }
}

mod fields;
mod record;

pub use fields::{OriginAnswer, OriginSlot, coding_name, redact_query, sampled};
pub use record::Record;

/// A response body that writes the access record when it ends: cleanly, with an error, or
/// dropped before its end (the client went away).
pub struct Logged {
    inner: ProxyBody,
    record: Option<Box<Record>>,
    shared: std::sync::Arc<crate::state::Shared>,
    start: Instant,
    bytes: u64,
    /// The length the response head declared: a body dropped once that much was sent is
    /// complete (HTTP/1.1 servers stop polling there, before the body reports its end).
    declared: Option<u64>,
}

impl Logged {
    pub fn new(
        inner: ProxyBody,
        record: Record,
        shared: std::sync::Arc<crate::state::Shared>,
        start: Instant,
        declared: Option<u64>,
    ) -> Logged {
        Logged {
            inner,
            record: Some(Box::new(record)),
            shared,
            start,
            bytes: 0,
            declared,
        }
    }

    fn finish(&mut self, aborted: bool) {
        if let Some(mut rec) = self.record.take() {
            rec.bytes_sent = self.bytes;
            rec.duration_ms = clock::since(self.start).as_secs_f64() * 1000.0;
            rec.aborted = aborted;
            self.shared.access_log.write(&rec);
            if let Some(collector) = &rec.otlp {
                self.shared.spans.send(collector, &rec);
            }
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
        let done = self.inner.is_end_stream() || self.declared == Some(self.bytes);
        self.finish(!done);
    }
}
