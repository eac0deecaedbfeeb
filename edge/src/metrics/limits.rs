//! Connection refusals, and rate limit series per site and rule: decisions (allowed, limited, reported), keys held and
//! the bytes their tables take. Read from the running config's limiters at scrape time.

use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

#[derive(Debug)]
pub(crate) struct LimitsCollector;

impl Collector for LimitsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(shared) = super::origins::shared() else {
            return Ok(());
        };
        {
            let mut m = encoder.encode_descriptor(
                "edge_connections_refused",
                "Client connections refused at accept for [limits] max_connections (node), max_connections_per_client (client) or new_connections_per_client (rate).",
                None,
                MetricType::Counter,
            )?;
            for (i, limit) in ["node", "client", "rate"].iter().enumerate() {
                ConstCounter::new(shared.conn_slots.refused[i].load(Ordering::Relaxed))
                    .encode(m.encode_family(&[("limit", *limit)])?)?;
            }
        }
        let hs = &shared.handshakes;
        for (name, help, n) in [
            (
                "edge_quic_retries",
                "QUIC connection attempts asked to prove their address with a Retry (more than quic_retry_above handshakes in progress).",
                &hs.retries,
            ),
            (
                "edge_quic_handshakes_refused",
                "QUIC connection attempts refused: the client address had quic_max_handshakes_per_client in progress.",
                &hs.refused,
            ),
        ] {
            ConstCounter::new(n.load(Ordering::Relaxed)).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }
        {
            let mut m = encoder.encode_descriptor(
                "edge_early_data_requests",
                "HTTP/3 requests that came before their connection's handshake completed: answered from early data, waited for the handshake, or retried after an origin's 425.",
                None,
                MetricType::Counter,
            )?;
            for (n, result) in crate::early::COUNTS.iter().zip(crate::early::RESULTS) {
                ConstCounter::new(n.load(Ordering::Relaxed))
                    .encode(m.encode_family(&[("result", result)])?)?;
            }
        }
        ConstGauge::new(i64::from(hs.in_progress())).encode(encoder.encode_descriptor(
            "edge_quic_handshakes_in_progress",
            "QUIC handshakes the node is in the middle of.",
            None,
            MetricType::Gauge,
        )?)?;
        let rt = shared.runtime();
        if rt.limiters.is_empty() {
            return Ok(());
        }
        // (site, rule, limiter) in config order, sites by name.
        let mut rows = Vec::new();
        for site in &rt.snapshot.sites {
            if let Some(list) = rt.limiters.get(&site.name) {
                for (rule, l) in site.rate_limits.iter().zip(list) {
                    rows.push((site.name.as_str(), rule.name.as_str(), l.clone()));
                }
            }
        }
        rows.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        {
            let mut m = encoder.encode_descriptor(
                "edge_rate_limit_decisions",
                "Requests a rate limit counted: allowed, limited (429) or reported (report-only rules).",
                None,
                MetricType::Counter,
            )?;
            for (site, rule, l) in &rows {
                for (i, result) in ["allowed", "limited", "reported"].iter().enumerate() {
                    let labels = [("site", *site), ("rule", *rule), ("result", *result)];
                    ConstCounter::new(l.decisions[i].load(Ordering::Relaxed))
                        .encode(m.encode_family(&labels)?)?;
                }
            }
        }
        let sizes: Vec<(usize, usize)> = rows.iter().map(|(_, _, l)| l.size()).collect();
        type Pick = fn(&(usize, usize)) -> usize;
        let gauges: [(&str, &str, Pick); 2] = [
            (
                "edge_rate_limit_keys",
                "Keys a rate limit holds state for (bounded by max_keys).",
                |s| s.0,
            ),
            (
                "edge_rate_limit_table_bytes",
                "Bytes the keyed state's tables take, roughly.",
                |s| s.1,
            ),
        ];
        for (name, help, pick) in gauges {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for ((site, rule, _), size) in rows.iter().zip(&sizes) {
                let v = i64::try_from(pick(size)).unwrap_or(i64::MAX);
                ConstGauge::new(v).encode(m.encode_family(&[("site", *site), ("rule", *rule)])?)?;
            }
        }
        Ok(())
    }
}

/// Drops keys whose buckets are full again, every 10 s, so the key count reflects who is
/// being limited rather than who was ever seen.
pub fn start_sweeper(shared: &std::sync::Arc<crate::state::Shared>) {
    let weak = std::sync::Arc::downgrade(shared);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            let Some(shared) = weak.upgrade() else { return };
            let limiters = shared.runtime().limiters.clone();
            drop(shared);
            let now = edge_core::clock::monotonic_ns();
            for l in limiters.values().flatten() {
                l.sweep(now);
            }
        }
    });
}
