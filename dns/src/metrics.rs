//! What the DNS server counts, in Prometheus form (`prometheus-client`): queries by type and
//! response code, answers by site, POP, country and reason, how long answering took, and each
//! POP's state. Label sets are bounded: query types and countries outside short lists count
//! as `other`.

use std::sync::Arc;
use tokio::time::Instant;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::select::{PopState, Reason};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    r#type: &'static str,
    rcode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnswerLabels {
    site: String,
    pop: String,
    country: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PopLabels {
    pop: String,
}

pub struct Metrics {
    queries: Family<QueryLabels, Counter>,
    answers: Family<AnswerLabels, Counter>,
    duration: Histogram,
    pop_up: Family<PopLabels, Gauge>,
    pop_overloaded: Family<PopLabels, Gauge>,
    pop_draining: Family<PopLabels, Gauge>,
    /// Countries with a series of their own (the rest are `other`).
    countries: Vec<[u8; 2]>,
    pub registry: Registry,
}

fn qtype(t: Option<RecordType>) -> &'static str {
    match t {
        Some(RecordType::A) => "A",
        Some(RecordType::AAAA) => "AAAA",
        Some(RecordType::NS) => "NS",
        Some(RecordType::SOA) => "SOA",
        Some(RecordType::ANY) => "ANY",
        Some(RecordType::CNAME) => "CNAME",
        Some(RecordType::TXT) => "TXT",
        Some(RecordType::MX) => "MX",
        Some(RecordType::HTTPS) => "HTTPS",
        Some(_) => "other",
        None => "none",
    }
}

fn rcode(r: ResponseCode) -> &'static str {
    match r {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::BADVERS => "BADVERS",
        _ => "other",
    }
}

fn reason(r: Reason) -> &'static str {
    match r {
        Reason::Pinned => "pinned",
        Reason::Nearest => "nearest",
        Reason::Spilled => "spilled",
        Reason::NoLocation => "no_location",
        Reason::FailOpen => "fail_open",
    }
}

impl Metrics {
    pub fn new(countries: Vec<[u8; 2]>) -> Arc<Metrics> {
        let mut registry = Registry::default();
        let queries = Family::<QueryLabels, Counter>::default();
        let answers = Family::<AnswerLabels, Counter>::default();
        // 10 µs to ~80 ms: an answer from memory is microseconds; a slow one is a problem.
        let duration = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            1e-5, 2.5, 10,
        ));
        let pop_up = Family::<PopLabels, Gauge>::default();
        let pop_overloaded = Family::<PopLabels, Gauge>::default();
        let pop_draining = Family::<PopLabels, Gauge>::default();
        registry.register(
            "edge_dns_queries",
            "DNS queries answered, by query type and response code",
            queries.clone(),
        );
        registry.register(
            "edge_dns_answers",
            "Site answers by site, first POP, client country and why that POP",
            answers.clone(),
        );
        registry.register(
            "edge_dns_query_duration_seconds",
            "Time from a decoded query to its response being built",
            duration.clone(),
        );
        registry.register(
            "edge_dns_pop_up",
            "1 while a POP is healthy (probes, node reports)",
            pop_up.clone(),
        );
        registry.register(
            "edge_dns_pop_overloaded",
            "1 while a POP is over its capacity (with hysteresis)",
            pop_overloaded.clone(),
        );
        registry.register(
            "edge_dns_pop_draining",
            "1 while a POP is drained by the operator",
            pop_draining.clone(),
        );
        Arc::new(Metrics {
            queries,
            answers,
            duration,
            pop_up,
            pop_overloaded,
            pop_draining,
            countries,
            registry,
        })
    }

    pub fn query(&self, t: Option<RecordType>, code: ResponseCode, started: Instant) {
        self.queries
            .get_or_create(&QueryLabels {
                r#type: qtype(t),
                rcode: rcode(code),
            })
            .inc();
        self.duration.observe(
            edge_core::clock::now()
                .saturating_duration_since(started)
                .as_secs_f64(),
        );
    }

    pub fn answered(&self, site: &str, pop: Option<&str>, country: Option<geo::Code>, why: Reason) {
        let country = match country {
            Some(c) if self.countries.contains(&c.0) => c.as_str().to_string(),
            Some(_) => "other".to_string(),
            None => "unknown".to_string(),
        };
        self.answers
            .get_or_create(&AnswerLabels {
                site: site.to_string(),
                pop: pop.unwrap_or("none").to_string(),
                country,
                reason: reason(why),
            })
            .inc();
    }

    pub fn pops(&self, names: &[Arc<str>], states: &[PopState]) {
        for (name, s) in names.iter().zip(states) {
            let l = PopLabels {
                pop: name.to_string(),
            };
            self.pop_up.get_or_create(&l).set(i64::from(s.up));
            self.pop_overloaded
                .get_or_create(&l)
                .set(i64::from(s.overloaded));
            self.pop_draining
                .get_or_create(&l)
                .set(i64::from(s.draining));
        }
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
