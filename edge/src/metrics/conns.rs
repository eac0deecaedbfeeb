//! Connection and config series: connections accepted and open by transport, TLS and QUIC
//! handshakes by result, TLS resumptions, the config version and reload results. (0-RTT and
//! Retry come with the protection issue's 0-RTT policy.) Plain
//! atomics (a connection is rarer than a request); encoded by `prometheus-client`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// `tcp` (plain HTTP/1.1), `tls` (HTTP/1.1 or HTTP/2 over TLS), `quic` (HTTP/3).
pub const TRANSPORTS: [&str; 3] = ["tcp", "tls", "quic"];
/// Handshake results.
pub const RESULTS: [&str; 3] = ["ok", "failed", "timeout"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp = 0,
    Tls = 1,
    Quic = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    Ok = 0,
    Failed = 1,
    Timeout = 2,
}

#[derive(Debug, Default)]
pub struct ConnMetrics {
    accepted: [AtomicU64; 3],
    open: [AtomicI64; 3],
    /// [tls, quic][result]
    handshakes: [[AtomicU64; 3]; 2],
    tls_resumed: AtomicU64,
    config_version: AtomicU64,
    /// ok, refused
    reloads: [AtomicU64; 2],
    /// PROXY protocol refusals: missing, unexpected, timeout.
    proxy_refused: [AtomicU64; 3],
    /// Connections closed for resetting most of their requests early.
    early_reset_closes: AtomicU64,
    /// Connections closed because their client stopped reading a response.
    send_timeouts: AtomicU64,
    /// Connections (HTTP/3: streams) closed for reading below the minimum send rate.
    slow_readers: AtomicU64,
}

pub static CONNS: ConnMetrics = ConnMetrics {
    accepted: [const { AtomicU64::new(0) }; 3],
    open: [const { AtomicI64::new(0) }; 3],
    handshakes: [const { [const { AtomicU64::new(0) }; 3] }; 2],
    tls_resumed: AtomicU64::new(0),
    config_version: AtomicU64::new(0),
    reloads: [const { AtomicU64::new(0) }; 2],
    proxy_refused: [const { AtomicU64::new(0) }; 3],
    early_reset_closes: AtomicU64::new(0),
    send_timeouts: AtomicU64::new(0),
    slow_readers: AtomicU64::new(0),
};

/// Counts a connection as open until dropped.
pub struct OpenConn(Transport);

impl Drop for OpenConn {
    fn drop(&mut self) {
        CONNS.open[self.0 as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnMetrics {
    pub fn accepted(&self, t: Transport) -> OpenConn {
        self.accepted[t as usize].fetch_add(1, Ordering::Relaxed);
        self.open[t as usize].fetch_add(1, Ordering::Relaxed);
        OpenConn(t)
    }

    /// A TLS (over TCP) or QUIC handshake ended.
    pub fn handshake(&self, quic: bool, result: Handshake) {
        self.handshakes[usize::from(quic)][result as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn tls_resumed(&self) {
        self.tls_resumed.fetch_add(1, Ordering::Relaxed);
    }

    /// The node serves config version `v` now.
    pub fn config_applied(&self, v: u64) {
        self.config_version.store(v, Ordering::Relaxed);
        self.reloads[0].fetch_add(1, Ordering::Relaxed);
    }

    pub fn proxy_refused(&self, why: crate::proxy_header::Refused) {
        use crate::proxy_header::Refused;
        let i = match why {
            Refused::Missing => 0,
            Refused::Unexpected => 1,
            Refused::Timeout => 2,
        };
        self.proxy_refused[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn send_timeout(&self) {
        self.send_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn slow_reader(&self) {
        self.slow_readers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn early_reset_close(&self) {
        self.early_reset_closes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn config_refused(&self) {
        self.reloads[1].fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub(crate) struct ConnCollector;

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Collector for ConnCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = &CONNS;
        {
            let mut m = encoder.encode_descriptor(
                "edge_connections_accepted",
                "Client connections accepted, by transport.",
                None,
                MetricType::Counter,
            )?;
            for (i, t) in TRANSPORTS.iter().enumerate() {
                ConstCounter::new(get(&c.accepted[i]))
                    .encode(m.encode_family(&[("transport", *t)])?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "edge_connections_open",
                "Client connections open now, by transport.",
                None,
                MetricType::Gauge,
            )?;
            for (i, t) in TRANSPORTS.iter().enumerate() {
                let open = c.open[i].load(Ordering::Relaxed).max(0);
                ConstGauge::new(open).encode(m.encode_family(&[("transport", *t)])?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "edge_handshakes",
                "TLS (over TCP) and QUIC handshakes, by result.",
                None,
                MetricType::Counter,
            )?;
            for (q, kind) in ["tls", "quic"].iter().enumerate() {
                for (r, result) in RESULTS.iter().enumerate() {
                    let labels = [("kind", *kind), ("result", *result)];
                    ConstCounter::new(get(&c.handshakes[q][r]))
                        .encode(m.encode_family(&labels)?)?;
                }
            }
        }
        let single =
            |encoder: &mut DescriptorEncoder, name: &str, help: &str, v: u64, t: MetricType| {
                let m = encoder.encode_descriptor(name, help, None, t)?;
                match t {
                    MetricType::Gauge => {
                        ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(m)
                    }
                    _ => ConstCounter::new(v).encode(m),
                }
            };
        single(
            &mut encoder,
            "edge_tls_resumptions",
            "TLS handshakes that resumed a session (ticket or cache).",
            get(&c.tls_resumed),
            MetricType::Counter,
        )?;
        single(
            &mut encoder,
            "edge_early_reset_closes",
            "Connections told to close because their client reset more than half of at least 500 requests before the response (HTTP/2 rapid reset).",
            get(&c.early_reset_closes),
            MetricType::Counter,
        )?;
        single(
            &mut encoder,
            "edge_client_send_timeouts",
            "Connections (HTTP/3: streams) closed because a response waited timeouts.client_send on a client that did not read it.",
            get(&c.send_timeouts),
            MetricType::Counter,
        )?;
        single(
            &mut encoder,
            "edge_client_slow_reader_closes",
            "Connections (HTTP/3: streams) closed because their client took responses below limits.client_min_send_rate once past limits.client_send_grace of waiting.",
            get(&c.slow_readers),
            MetricType::Counter,
        )?;
        single(
            &mut encoder,
            "edge_config_version",
            "The config version this node serves.",
            get(&c.config_version),
            MetricType::Gauge,
        )?;
        {
            let mut m = encoder.encode_descriptor(
                "edge_config_reloads",
                "Config documents applied or refused (the first one included).",
                None,
                MetricType::Counter,
            )?;
            for (i, result) in ["applied", "refused"].iter().enumerate() {
                ConstCounter::new(get(&c.reloads[i]))
                    .encode(m.encode_family(&[("result", *result)])?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "edge_proxy_protocol_refused",
                "TCP connections refused for the PROXY protocol: a configured source sent no valid header (missing, timeout), or another source sent one (unexpected).",
                None,
                MetricType::Counter,
            )?;
            for (i, reason) in ["missing", "unexpected", "timeout"].iter().enumerate() {
                ConstCounter::new(get(&c.proxy_refused[i]))
                    .encode(m.encode_family(&[("reason", *reason)])?)?;
            }
        }
        Ok(())
    }
}
