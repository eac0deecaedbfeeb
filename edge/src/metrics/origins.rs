//! Origin series per pool and endpoint: tries, errors by kind, time to the response head,
//! passive ejections, connections opened per pool, and each endpoint's rotation state,
//! requests in flight and latency average. Read from the pools of the running config at scrape time
//! (`origin_shield::stats`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};

use origin_shield::EndpointState;
use origin_shield::stats::ERROR_KINDS;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::state::Shared;

static SHARED: OnceLock<Weak<Shared>> = OnceLock::new();

/// Where scrapes find the pools and the store (the node's state, set once at start).
pub fn register(s: &Arc<Shared>) {
    let _ = SHARED.set(Arc::downgrade(s));
}

/// The node's state, once registered and while it lives.
pub(crate) fn shared() -> Option<Arc<Shared>> {
    SHARED.get().and_then(Weak::upgrade)
}

#[derive(Debug)]
pub(crate) struct OriginCollector;

impl Collector for OriginCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(shared) = shared() else {
            return Ok(());
        };
        let rt = shared.runtime();
        let mut pools: Vec<_> = rt.pools.iter().collect();
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        {
            let mut m = encoder.encode_descriptor(
                "edge_origin_connections_opened",
                "Connections opened to the pool's endpoints (the rest of its requests reused one).",
                None,
                MetricType::Counter,
            )?;
            for p in &pools {
                ConstCounter::new(p.client.connections_opened())
                    .encode(m.encode_family(&[("pool", p.name.as_str())])?)?;
            }
        }
        // (pool, endpoint, state, in rotation) for every endpoint of every pool, in a stable
        // order.
        let mut eps = Vec::new();
        for pool in &pools {
            let up = pool.in_rotation();
            for ep in &pool.members().endpoints {
                let rotating = up.contains(&ep.addr);
                eps.push((
                    pool.name.clone(),
                    ep.addr.to_string(),
                    ep.state.clone(),
                    rotating,
                ));
            }
        }
        eps.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let labels = |p: &str, e: &str| [("pool", p.to_string()), ("endpoint", e.to_string())];
        {
            let mut m = encoder.encode_descriptor(
                "edge_origin_tries",
                "Requests sent to an origin endpoint (each retry counts).",
                None,
                MetricType::Counter,
            )?;
            for (p, e, s, _) in &eps {
                ConstCounter::new(s.stats.tries()).encode(m.encode_family(&labels(p, e))?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "edge_origin_errors",
                "Failed tries by kind (connect, tls, timeout, protocol) and 5xx answers.",
                None,
                MetricType::Counter,
            )?;
            for (p, e, s, _) in &eps {
                for (k, n) in ERROR_KINDS.iter().zip(s.stats.errors()) {
                    let l = [
                        ("pool", p.clone()),
                        ("endpoint", e.clone()),
                        ("kind", (*k).to_string()),
                    ];
                    ConstCounter::new(n).encode(m.encode_family(&l)?)?;
                }
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "edge_origin_response_seconds",
                "Time from sending a request to the origin's response head.",
                None,
                MetricType::Histogram,
            )?;
            for (p, e, s, _) in &eps {
                let (sum, buckets) = s.stats.latency();
                let count = buckets.iter().map(|(_, n)| n).sum();
                m.encode_family(&labels(p, e))?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        // Integer gauges stay integers in the text (`1`, not `1.0`): scripts compare them.
        type Gauge = fn(&EndpointState, bool) -> i64;
        let gauges: [(&str, &str, Gauge); 2] = [
            (
                "edge_origin_endpoint_up",
                "1 when the endpoint is in rotation (healthy and not ejected).",
                |_, up| i64::from(up),
            ),
            (
                "edge_origin_endpoint_in_flight",
                "Requests in flight to the endpoint.",
                |s, _| i64::try_from(s.in_flight.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
            ),
        ];
        for (name, help, value) in gauges {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (p, e, s, up) in &eps {
                ConstGauge::new(value(s, *up)).encode(m.encode_family(&labels(p, e))?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "edge_origin_endpoint_latency_ewma_seconds",
                "Moving average of response-head latency.",
                None,
                MetricType::Gauge,
            )?;
            for (p, e, s, _) in &eps {
                ConstGauge::new(s.ewma().as_secs_f64()).encode(m.encode_family(&labels(p, e))?)?;
            }
        }
        let mut m = encoder.encode_descriptor(
            "edge_origin_ejections",
            "Passive (outlier) ejections of the endpoint.",
            None,
            MetricType::Counter,
        )?;
        for (p, e, s, _) in &eps {
            ConstCounter::new(u64::from(s.ejections())).encode(m.encode_family(&labels(p, e))?)?;
        }
        Ok(())
    }
}
