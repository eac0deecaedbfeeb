//! Geo series: requests per visitor country (the countries `[geo] count_countries` names, the
//! rest as `other`, unknown as `XX`: a bounded label set), database reloads, lookups and cache
//! hits, databases loaded. Access decisions are per site, with the request series.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// An access rule's outcome (the `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allowed = 0,
    Denied = 1,
    Reported = 2,
}

pub const ACCESS: [&str; 3] = ["allowed", "denied", "reported"];

/// 26 × 26 letter pairs, then unknown.
const CODES: usize = 26 * 26 + 1;
const SHARDS: usize = 4;

pub struct GeoMetrics {
    countries: [[AtomicU64; CODES]; SHARDS],
}

pub static GEO: GeoMetrics = GeoMetrics {
    countries: [const { [const { AtomicU64::new(0) }; CODES] }; SHARDS],
};

fn index(c: Option<geo::Code>) -> usize {
    match c {
        Some(geo::Code([a, b])) if a.is_ascii_uppercase() && b.is_ascii_uppercase() => {
            usize::from(a - b'A') * 26 + usize::from(b - b'A')
        }
        _ => CODES - 1,
    }
}

impl GeoMetrics {
    pub fn request(&self, country: Option<geo::Code>) {
        let shard = super::requests::shard_index() % SHARDS;
        self.countries[shard][index(country)].fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self, i: usize) -> u64 {
        self.countries
            .iter()
            .map(|s| s[i].load(Ordering::Relaxed))
            .sum()
    }
}

#[derive(Debug)]
pub(crate) struct GeoCollector;

impl Collector for GeoCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(shared) = super::origins::shared() else {
            return Ok(());
        };
        let g = &shared.geo;
        if !g.is_enabled() && g.reloads_failed.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        {
            let mut m = encoder.encode_descriptor(
                "edge_geo_requests",
                "Requests by visitor country: the countries [geo] count_countries names, the rest as other, unknown as XX.",
                None,
                MetricType::Counter,
            )?;
            let named = &shared.runtime().snapshot.geo.count_countries;
            let mut other = 0;
            for i in 0..CODES - 1 {
                let n = GEO.count(i);
                let code = [b'A' + (i / 26) as u8, b'A' + (i % 26) as u8];
                if named.contains(&code) {
                    let label = std::str::from_utf8(&code).unwrap_or("XX");
                    ConstCounter::new(n).encode(m.encode_family(&[("country", label)])?)?;
                } else {
                    other += n;
                }
            }
            ConstCounter::new(other).encode(m.encode_family(&[("country", "other")])?)?;
            ConstCounter::new(GEO.count(CODES - 1))
                .encode(m.encode_family(&[("country", "XX")])?)?;
        }
        {
            let mut m = encoder.encode_descriptor(
                "edge_geo_database_reloads",
                "GeoIP database files read: loaded, or failed (the previous copy kept answering).",
                None,
                MetricType::Counter,
            )?;
            for (result, n) in [("loaded", &g.reloads_ok), ("failed", &g.reloads_failed)] {
                ConstCounter::new(n.load(Ordering::Relaxed))
                    .encode(m.encode_family(&[("result", result)])?)?;
            }
        }
        for (name, help, n) in [
            (
                "edge_geo_lookups",
                "GeoIP lookups (one per request).",
                &g.lookups,
            ),
            (
                "edge_geo_lookup_cache_hits",
                "GeoIP lookups answered by the per-address cache.",
                &g.cache_hits,
            ),
        ] {
            ConstCounter::new(n.load(Ordering::Relaxed)).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }
        let loaded = i64::try_from(g.databases().len()).unwrap_or(i64::MAX);
        ConstGauge::new(loaded).encode(encoder.encode_descriptor(
            "edge_geo_databases",
            "GeoIP databases loaded.",
            None,
            MetricType::Gauge,
        )?)?;
        Ok(())
    }
}
