//! Latency histograms (HDR), byte and error counts, and the report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// What went wrong with a request, for the error table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Connect,
    Tls,
    Quic,
    Timeout,
    Status4xx,
    Status5xx,
    Io,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Quic => "quic",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Status4xx => "status_4xx",
            ErrorKind::Status5xx => "status_5xx",
            ErrorKind::Io => "io",
        }
    }
}

/// One worker's counts; merged at the end, so the hot loop shares nothing.
pub struct Stats {
    pub latency_us: Histogram<u64>,
    pub ok: u64,
    pub bytes: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            // 1 µs .. 100 s at 3 significant digits.
            latency_us: Histogram::new_with_bounds(1, 100_000_000, 3)
                .expect("constant histogram bounds are valid"),
            ok: 0,
            bytes: 0,
            errors: BTreeMap::new(),
        }
    }
}

impl Stats {
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let _ = self.latency_us.record(us.min(100_000_000));
    }

    pub fn error(&mut self, kind: ErrorKind) {
        *self.errors.entry(kind).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Stats) {
        let _ = self.latency_us.add(&other.latency_us);
        self.ok += other.ok;
        self.bytes += other.bytes;
        for (k, v) in &other.errors {
            *self.errors.entry(*k).or_default() += v;
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub proto: String,
    pub mode: String,
    pub connections: usize,
    pub streams: usize,
    pub seconds: f64,
    pub requests: u64,
    pub rps: f64,
    pub bytes_per_sec: f64,
    pub latency_us: Percentiles,
    pub errors: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Report {
    pub fn new(
        stats: &Stats,
        elapsed: Duration,
        proto: &str,
        mode: &str,
        connections: usize,
        streams: usize,
    ) -> Report {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let h = &stats.latency_us;
        Report {
            proto: proto.to_string(),
            mode: mode.to_string(),
            connections,
            streams,
            seconds: secs,
            requests: stats.ok,
            rps: stats.ok as f64 / secs,
            bytes_per_sec: stats.bytes as f64 / secs,
            latency_us: Percentiles {
                p50: h.value_at_quantile(0.50),
                p90: h.value_at_quantile(0.90),
                p99: h.value_at_quantile(0.99),
                p999: h.value_at_quantile(0.999),
                max: h.max(),
            },
            errors: stats
                .errors
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
        }
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let l = &self.latency_us;
        let _ = writeln!(
            out,
            "protocol     {} ({} loop, {} conns x {} streams)",
            self.proto, self.mode, self.connections, self.streams
        );
        let _ = writeln!(out, "duration     {:.2} s", self.seconds);
        let _ = writeln!(
            out,
            "requests     {} ok ({:.0} req/s)",
            self.requests, self.rps
        );
        let _ = writeln!(
            out,
            "throughput   {:.2} MiB/s",
            self.bytes_per_sec / (1024.0 * 1024.0)
        );
        let _ = writeln!(
            out,
            "latency µs   p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            l.p50, l.p90, l.p99, l.p999, l.max
        );
        if self.errors.is_empty() {
            let _ = writeln!(out, "errors       none");
        } else {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(out, "errors       {}", list.join(" "));
        }
        out
    }
}
