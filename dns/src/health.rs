//! Whether each POP should be in answers: active HTTP probes (rise/fall counts), node reports
//! from the control plane (a POP with no live node is down; its nodes' request and CPU rates
//! against its capacity, with hysteresis, say whether it is overloaded), and the operator's
//! `draining`. [`PopHealth`] is the pure part; [`run`] feeds it from the network.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use config::geodns::{DnsPop, GeoDns};
use control::NodeReport;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

use crate::handler::Shared;
use crate::select::{Hysteresis, PopState};

/// One node's counters at one report.
#[derive(Debug, Clone, Copy)]
struct Sample {
    requests: u64,
    cpu: f64,
    at: u64,
}

/// One POP's health, as the probes and reports so far left it.
#[derive(Debug, Clone)]
pub struct PopHealth {
    probe_up: bool,
    /// Consecutive probe results against the current `probe_up`.
    streak: u32,
    /// From the control plane: `None` until reports were read once (or without a store).
    live: Option<bool>,
    overloaded: bool,
    last: HashMap<String, Sample>,
    /// The latest load as a share of capacity (for logs and tests).
    pub load: Option<f64>,
}

impl Default for PopHealth {
    fn default() -> Self {
        // Up until shown otherwise: a DNS server that starts answers at once.
        PopHealth {
            probe_up: true,
            streak: 0,
            live: None,
            overloaded: false,
            last: HashMap::new(),
            load: None,
        }
    }
}

impl PopHealth {
    /// One round of probes: `ok` if any of the POP's probe URLs answered 2xx (a POP is up
    /// while one of its nodes is). `fall` failures in a row take it down, `rise` successes
    /// bring it back.
    pub fn probed(&mut self, ok: bool, fall: u32, rise: u32) {
        if ok == self.probe_up {
            self.streak = 0;
            return;
        }
        self.streak += 1;
        if self.streak >= if ok { rise } else { fall } {
            self.probe_up = ok;
            self.streak = 0;
        }
    }

    /// The POP's nodes' reports (those the store still holds: a dead node's lease expired,
    /// so its report is gone). Rates come from each node's previous report.
    pub fn reported(&mut self, pop: &DnsPop, reports: &[&NodeReport], hysteresis: &Hysteresis) {
        self.live = Some(!reports.is_empty());
        let (mut rps, mut cpu, mut measured) = (0.0, 0.0, false);
        let mut next = HashMap::new();
        for r in reports {
            let now = Sample {
                requests: r.requests,
                cpu: r.cpu,
                at: r.reported_at,
            };
            if let Some(before) = self.last.get(&r.node)
                && now.at > before.at
                && now.requests >= before.requests
            {
                let dt = (now.at - before.at) as f64;
                rps += (now.requests - before.requests) as f64 / dt;
                cpu += (now.cpu - before.cpu).max(0.0) / dt;
                measured = true;
            }
            // A report not newer than the last one seen keeps the older sample, so the next
            // rate spans a real interval.
            let keep = match self.last.get(&r.node) {
                Some(b) if b.at >= now.at => *b,
                _ => now,
            };
            next.insert(r.node.clone(), keep);
        }
        self.last = next;
        let shares = [
            pop.capacity_rps.map(|c| rps / c),
            pop.capacity_cpu.map(|c| cpu / c),
        ];
        self.load = measured
            .then(|| shares.into_iter().flatten().reduce(f64::max))
            .flatten();
        self.overloaded = hysteresis.next(self.overloaded, self.load);
    }

    pub fn state(&self, pop: &DnsPop) -> PopState {
        PopState {
            up: self.probe_up && self.live != Some(false),
            draining: pop.draining,
            overloaded: self.overloaded,
        }
    }
}

/// One probe: a plain HTTP/1.1 GET; `true` for a 2xx within `timeout`.
pub async fn probe(uri: &http::Uri, timeout: Duration) -> bool {
    let attempt = async {
        let host = uri.host()?;
        let port = uri.port_u16().unwrap_or(80);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let stream = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = http::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(http::header::HOST, uri.authority()?.as_str())
            .header(http::header::USER_AGENT, "edge-dns-probe")
            .body(Empty::<Bytes>::new())
            .ok()?;
        let resp = send.send_request(req).await.ok()?;
        Some(resp.status().is_success())
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
}

/// Keeps `shared.states` current: probes every `probe.interval`, reads node reports every
/// [`control::report::REPORT_EVERY`] when a store is given. Runs until the task is dropped; `config`
/// is re-read each round, so a reload that adds a POP is probed from then on.
pub async fn run(
    shared: Arc<Shared>,
    config: Arc<arc_swap::ArcSwap<GeoDns>>,
    store: Option<control::Store>,
) {
    let mut health: HashMap<String, PopHealth> = HashMap::new();
    let mut last_reports = edge_core::clock::now();
    let mut last_probes = last_reports;
    let mut first = true;
    loop {
        let dns = config.load_full();
        let hysteresis = Hysteresis {
            enter: dns.overload_enter,
            leave: dns.overload_leave,
        };
        health.retain(|name, _| dns.pops.iter().any(|p| &p.name == name));
        // Probes of every POP at once: a dead POP's timeouts do not delay the others.
        let probing = first || edge_core::clock::since(last_probes) >= dns.probe.interval;
        if probing {
            last_probes = edge_core::clock::now();
        }
        let timeout = dns.probe.timeout;
        let rounds = dns.pops.iter().map(|p| async move {
            if !probing || p.probes.is_empty() {
                return None;
            }
            let all = p.probes.iter().map(|u| probe(u, timeout));
            Some(
                futures_util::future::join_all(all)
                    .await
                    .into_iter()
                    .any(|ok| ok),
            )
        });
        let results = futures_util::future::join_all(rounds).await;
        for (p, ok) in dns.pops.iter().zip(results) {
            let h = health.entry(p.name.clone()).or_default();
            if let Some(ok) = ok {
                h.probed(ok, dns.probe.fall, dns.probe.rise);
            }
        }
        if let Some(store) = &store
            && (first || edge_core::clock::since(last_reports) >= control::report::REPORT_EVERY)
        {
            last_reports = edge_core::clock::now();
            match store.reports().await {
                Ok(reports) => {
                    for p in &dns.pops {
                        let mine: Vec<&NodeReport> =
                            reports.iter().filter(|r| r.pop == p.name).collect();
                        health
                            .entry(p.name.clone())
                            .or_default()
                            .reported(p, &mine, &hysteresis);
                    }
                }
                // The store being away says nothing about the POPs: keep what was known.
                Err(e) => tracing::warn!(error = %e, "dns: reading node reports failed"),
            }
        }
        first = false;
        let states: Vec<PopState> = dns
            .pops
            .iter()
            .map(|p| {
                health
                    .get(&p.name)
                    .map_or_else(|| PopHealth::default().state(p), |h| h.state(p))
            })
            .collect();
        let before = shared.states.load();
        if before.as_slice() != states.as_slice() {
            for (p, (old, new)) in dns.pops.iter().zip(
                before
                    .iter()
                    .chain(std::iter::repeat(&PopState::default()))
                    .zip(&states),
            ) {
                if old != new {
                    tracing::info!(pop = %p.name, up = new.up, overloaded = new.overloaded, draining = new.draining, "dns: POP state changed");
                }
            }
            shared.states.store(Arc::new(states.clone()));
        }
        let names: Vec<Arc<str>> = dns
            .pops
            .iter()
            .map(|p| Arc::from(p.name.as_str()))
            .collect();
        shared.metrics.pops(&names, &states);
        let tick = if store.is_some() {
            dns.probe.interval.min(control::report::REPORT_EVERY)
        } else {
            dns.probe.interval
        };
        tokio::time::sleep(tick).await;
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
