//! Process state, apart from the request pipeline: what every connection shares (`Shared`),
//! what one config snapshot brings (`Runtime`, swapped as a whole on reload), and what a
//! request knows about its connection (`ConnInfo`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use config::Snapshot;
use http::Version;
use http::header::HeaderValue;
use origin_shield::Pools;

use crate::filters::Chain;

/// Everything a request needs from one config snapshot, swapped as a whole on reload.
pub struct Runtime {
    pub snapshot: Arc<Snapshot>,
    /// `Via` value this node adds to responses (`1.1 NODE`), built once per snapshot.
    pub via: String,
    /// The same as a header value over a `'static` copy: cloned onto every response without
    /// an allocation or a reference count (`None`: the node name is not a valid field value).
    via_value: Option<HeaderValue>,
    /// This hop's `Via` entry on origin requests, per client protocol (`1.1`, `2`, `3`).
    via_upstream: [String; 3],
    pub pools: Pools,
    /// The request filters, in order (limits first).
    pub filters: Chain,
    /// Per-token purge rate limits (kept across reloads that do not change the rate).
    pub purge_limiter: Arc<purge_api::RateLimiter>,
    /// The sites' rate limiters (a rule unchanged by a reload keeps its state).
    pub limiters: Arc<crate::protect::Limiters>,
}

impl Runtime {
    /// Builds the runtime for `snapshot`. Pools keep the previous snapshot's endpoint state
    /// and, when their connection settings did not change, its warm connections.
    pub fn new(snapshot: Arc<Snapshot>, previous: Option<&Runtime>) -> Runtime {
        let node = &snapshot.node_name;
        let limiters = Arc::new(crate::protect::limiters(
            &snapshot,
            previous.map(|p| &*p.limiters),
        ));
        Runtime {
            pools: {
                let pools = Pools::from_snapshot(&snapshot, previous.map(|p| &p.pools));
                pools.start_background();
                pools
            },
            via: format!("1.1 {node}"),
            via_value: static_value(&format!("1.1 {node}")),
            via_upstream: [
                format!("1.1 {node}"),
                format!("2 {node}"),
                format!("3 {node}"),
            ],
            limiters: limiters.clone(),
            filters: Chain::for_snapshot(&snapshot, limiters),
            purge_limiter: match previous {
                Some(p)
                    if p.snapshot.admin.purge_rate == snapshot.admin.purge_rate
                        && p.snapshot.admin.purge_burst == snapshot.admin.purge_burst =>
                {
                    p.purge_limiter.clone()
                }
                _ => Arc::new(purge_api::RateLimiter::new(
                    snapshot.admin.purge_rate,
                    snapshot.admin.purge_burst,
                )),
            },
            snapshot,
        }
    }

    /// Adds this node's `Via` entry to a response, after any earlier hops' entries.
    pub fn append_via(&self, headers: &mut http::HeaderMap) {
        match &self.via_value {
            Some(v) if !headers.contains_key(http::header::VIA) => {
                headers.insert(http::header::VIA, v.clone());
            }
            _ => crate::headers::append_list(headers, &http::header::VIA, &self.via),
        }
    }

    /// This hop's `Via` entry for a request that came in over `version`.
    pub fn via_for(&self, version: Version) -> &str {
        match version {
            Version::HTTP_2 => &self.via_upstream[1],
            Version::HTTP_3 => &self.via_upstream[2],
            _ => &self.via_upstream[0],
        }
    }
}

/// `s` as a header value over a `'static` copy of it. Each distinct value is leaked once (a
/// node name, at each config load that names a new one: one in practice), never per request.
fn static_value(s: &str) -> Option<HeaderValue> {
    static SEEN: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<&'static str>>> =
        std::sync::OnceLock::new();
    HeaderValue::from_str(s).ok()?;
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let kept: &'static str = match seen.get(s) {
        Some(kept) => kept,
        None => {
            let kept: &'static str = Box::leak(s.to_owned().into_boxed_str());
            seen.insert(kept);
            kept
        }
    };
    // Checked as a field value above, so this does not panic.
    Some(HeaderValue::from_static(kept))
}

/// State shared by every connection of the process.
pub struct Shared {
    runtime: ArcSwap<Runtime>,
    pub cache: crate::cache_phase::CacheRuntime,
    pub config_path: PathBuf,
    /// The port of the first HTTPS listener as bound (config may say 0), for redirects.
    pub https_port: AtomicU16,
    pub access_log: crate::log::AccessLog,
    /// Sampled requests' spans, on their way to the `[log] otlp` collector.
    pub spans: crate::otlp::Spans,
    /// The node's GeoIP databases (`[geo]`), refreshed off the request path.
    pub geo: Arc<geo::GeoIp>,
    /// Open connections under `[limits]` (per client address and node-wide).
    pub conn_slots: Arc<crate::protect::conns::ConnSlots>,
    /// QUIC handshakes in progress (Retry past a threshold, a cap per client address).
    pub handshakes: Arc<crate::protect::handshakes::Handshakes>,
    /// The ports of the HTTPS and HTTP listeners as bound (cache keys carry non-default ones).
    pub listen_ports: std::sync::OnceLock<Vec<u16>>,
    /// The purges this node made recently (`GET /purge/{id}`).
    pub purges: purge_api::Journal,
    /// The control plane's purge bus, when the node takes its config from etcd.
    pub bus: std::sync::OnceLock<Arc<control::PurgeBus>>,
    /// Set by `POST /drain` or SIGTERM: `/readyz` answers 503 so load balancers take the node
    /// out, while it keeps serving whatever still reaches it.
    pub draining: AtomicBool,
    id_base: u64,
    next_id: AtomicU64,
}

impl Shared {
    pub fn new(
        snapshot: Snapshot,
        config_path: PathBuf,
        cache: crate::cache_phase::CacheRuntime,
    ) -> Shared {
        let seed = crate::clock::unix_nanos() ^ (u64::from(std::process::id()) << 40);
        let node = crate::otlp::Node {
            name: snapshot.node_name.clone(),
            pop: snapshot.pop.clone(),
            region: snapshot.region.clone(),
        };
        Shared {
            spans: crate::otlp::Spans::start(node),
            geo: Arc::default(),
            conn_slots: Arc::default(),
            handshakes: Arc::default(),
            runtime: ArcSwap::from_pointee(Runtime::new(Arc::new(snapshot), None)),
            cache,
            config_path,
            https_port: AtomicU16::new(443),
            access_log: crate::log::AccessLog::start(),
            listen_ports: std::sync::OnceLock::new(),
            purges: purge_api::Journal::default(),
            bus: std::sync::OnceLock::new(),
            draining: AtomicBool::new(false),
            id_base: seed,
            next_id: AtomicU64::new(0),
        }
    }

    /// The listener ports other than 80 and 443.
    pub fn listen_ports(&self) -> Vec<u16> {
        self.listen_ports
            .get()
            .map(|p| {
                p.iter()
                    .copied()
                    .filter(|p| *p != 80 && *p != 443)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    pub fn swap(&self, snapshot: Snapshot) -> Arc<Runtime> {
        let next = Arc::new(Runtime::new(Arc::new(snapshot), Some(&self.runtime.load())));
        self.runtime.store(next.clone());
        next
    }

    pub fn next_request_id(&self) -> crate::request_id::RequestId {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = self
            .id_base
            .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        crate::request_id::RequestId::hex16(id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Quic,
}

/// What a request knows about the connection it came on.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
    pub transport: Transport,
    /// The `Alt-Svc` value this listener advertises on TCP responses (None: no HTTP/3 here).
    pub alt_svc: Option<HeaderValue>,
    /// QUIC connections that may carry early data: their handshake, until it completes.
    pub handshake: Option<crate::early::Handshake>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_via_value_is_made_once_per_distinct_node_name() {
        let a = super::static_value("1.1 pop-7").expect("valid");
        let b = super::static_value("1.1 pop-7").expect("valid");
        assert_eq!(a, "1.1 pop-7");
        assert_eq!(
            a.as_bytes().as_ptr(),
            b.as_bytes().as_ptr(),
            "the second config load reuses the first copy"
        );
        assert!(
            super::static_value("1.1 pop\n7").is_none(),
            "not a field value"
        );
    }
}
