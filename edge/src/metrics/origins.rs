//! Origin series per pool and endpoint: tries, errors by kind, time to the response head,
//! passive ejections (in rotation, in flight and the latency average are rendered beside
//! them, in `admin`). Read from the pools of the running config at scrape time
//! (`origin_shield::stats`).

use std::sync::{Arc, OnceLock, Weak};

use origin_shield::stats::ERROR_KINDS;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

use crate::state::Shared;

fn shared() -> &'static OnceLock<Weak<Shared>> {
    static SHARED: OnceLock<Weak<Shared>> = OnceLock::new();
    &SHARED
}

/// Where scrapes find the pools (the node's state, set once at start).
pub fn register(s: &Arc<Shared>) {
    let _ = shared().set(Arc::downgrade(s));
}

#[derive(Debug)]
pub(crate) struct OriginCollector;

impl Collector for OriginCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(shared) = shared().get().and_then(Weak::upgrade) else {
            return Ok(());
        };
        let rt = shared.runtime();
        // (pool, endpoint, state) for every endpoint of every pool, in a stable order.
        let mut eps = Vec::new();
        for pool in rt.pools.iter() {
            for ep in &pool.members().endpoints {
                eps.push((pool.name.clone(), ep.addr.to_string(), ep.state.clone()));
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
            for (p, e, s) in &eps {
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
            for (p, e, s) in &eps {
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
            for (p, e, s) in &eps {
                let (sum, buckets) = s.stats.latency();
                let count = buckets.iter().map(|(_, n)| n).sum();
                m.encode_family(&labels(p, e))?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        let mut m = encoder.encode_descriptor(
            "edge_origin_ejections",
            "Passive (outlier) ejections of the endpoint.",
            None,
            MetricType::Counter,
        )?;
        for (p, e, s) in &eps {
            ConstCounter::new(u64::from(s.ejections())).encode(m.encode_family(&labels(p, e))?)?;
        }
        Ok(())
    }
}
