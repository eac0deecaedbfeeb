//! Cache tier series: objects, bytes, budget and evictions per tier (memory, disk). The memory
//! tier's counts are settled lazily (moka), so a background task runs its pending bookkeeping
//! and takes `Storage::tier_stats` once a second; a scrape reads the last one and waits on
//! nothing.

use std::sync::{Mutex, OnceLock};

use cache::TierStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

fn last() -> &'static Mutex<Option<TierStats>> {
    static LAST: OnceLock<Mutex<Option<TierStats>>> = OnceLock::new();
    LAST.get_or_init(|| Mutex::new(None))
}

/// Keeps the tier series of `store` fresh, once a second, for as long as the process runs.
pub fn start<S: cache::Storage + Clone + 'static>(store: S) {
    tokio::spawn(async move {
        loop {
            // Settles moka's pending bookkeeping (its counts lag otherwise).
            store.memory_bytes().await;
            let stats = store.tier_stats();
            *last().lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
}

#[derive(Debug)]
pub(crate) struct TierCollector;

impl Collector for TierCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = *last().lock().unwrap_or_else(|e| e.into_inner()) else {
            return Ok(());
        };
        let gauges: [(&str, &str, [u64; 2]); 3] = [
            (
                "edge_cache_objects",
                "Objects held, by tier.",
                [s.memory_objects, s.disk_objects],
            ),
            (
                "edge_cache_bytes",
                "Bytes held (memory: weighed with keys and headers), by tier.",
                [s.memory_bytes, s.disk_bytes],
            ),
            (
                "edge_cache_budget_bytes",
                "The bytes each tier may hold.",
                [s.memory_budget, s.disk_budget],
            ),
        ];
        for (name, help, values) in gauges {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (tier, v) in ["memory", "disk"].iter().zip(values) {
                let v = i64::try_from(v).unwrap_or(i64::MAX);
                ConstGauge::new(v).encode(m.encode_family(&[("tier", *tier)])?)?;
            }
        }
        let mut m = encoder.encode_descriptor(
            "edge_cache_evictions",
            "Objects evicted for room (not purged or replaced), by tier.",
            None,
            MetricType::Counter,
        )?;
        for (tier, v) in ["memory", "disk"]
            .iter()
            .zip([s.memory_evictions, s.disk_evictions])
        {
            ConstCounter::new(v).encode(m.encode_family(&[("tier", *tier)])?)?;
        }
        Ok(())
    }
}
