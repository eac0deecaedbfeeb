#![forbid(unsafe_code)]
//! GeoDNS: an authoritative DNS server (hickory-server) for the CDN's zone that answers each
//! site name with the nearest healthy POP. The choice ([`select`]) is a pure function of the
//! client's location, the POPs' state and the site's overrides; [`zone`] knows the names;
//! [`handler`] is the query path; [`health`] keeps the POPs' state from probes and node
//! reports; [`serve`] puts them on sockets.

pub mod centroids;
pub mod fuzzing;
pub mod handler;
pub mod health;
pub mod metrics;
pub mod select;
pub mod zone;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use config::Snapshot;
use config::geodns::GeoDns;

use crate::handler::{Handler, Shared};
use crate::metrics::Metrics;
use crate::select::PopState;
use crate::zone::Zone;

/// How long a TCP connection may sit between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("the config has no [dns] section")]
    NotConfigured,
    #[error("dns: binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("dns: serving: {0}")]
    Serve(String),
}

impl DnsError {
    /// Whether trying again could help (an address in use may be freed; a config will not
    /// grow a `[dns]` by itself).
    pub fn retryable(&self) -> bool {
        matches!(self, DnsError::Bind { .. } | DnsError::Serve(_))
    }
}

/// A DNS server's state, shared by its sockets and its health task; [`Server::reload`] swaps
/// in a new snapshot's zone.
pub struct Server {
    pub shared: Arc<Shared>,
    config: Arc<ArcSwap<GeoDns>>,
}

fn zone_of(snapshot: &Snapshot, dns: &GeoDns) -> Zone {
    // The SOA serial: the config's version (32 bits wrap; serial arithmetic allows it).
    Zone::new(dns, &snapshot.sites, snapshot.version as u32)
}

impl Server {
    pub fn new(snapshot: &Snapshot, geo: Arc<geo::GeoIp>) -> Result<Server, DnsError> {
        let dns = snapshot.dns.clone().ok_or(DnsError::NotConfigured)?;
        let countries = snapshot.geo.count_countries.clone();
        let shared = Arc::new(Shared {
            zone: ArcSwap::from_pointee(zone_of(snapshot, &dns)),
            states: ArcSwap::from_pointee(vec![
                PopState {
                    up: true,
                    ..PopState::default()
                };
                dns.pops.len()
            ]),
            geo,
            metrics: Metrics::new(countries),
        });
        Ok(Server {
            shared,
            config: Arc::new(ArcSwap::new(dns)),
        })
    }

    /// A new snapshot: its zone answers from the next query on. A POP list that changed
    /// starts from "up" for new POPs until the health task says otherwise.
    pub fn reload(&self, snapshot: &Snapshot) -> Result<(), DnsError> {
        let dns = snapshot.dns.clone().ok_or(DnsError::NotConfigured)?;
        let old = self.config.load_full();
        let states = self.shared.states.load_full();
        let carried: Vec<PopState> = dns
            .pops
            .iter()
            .map(|p| {
                old.pops
                    .iter()
                    .position(|o| o.name == p.name)
                    .and_then(|i| states.get(i).copied())
                    .unwrap_or(PopState {
                        up: true,
                        ..PopState::default()
                    })
            })
            .collect();
        self.shared.zone.store(Arc::new(zone_of(snapshot, &dns)));
        self.shared.states.store(Arc::new(carried));
        self.config.store(dns);
        Ok(())
    }

    /// Binds UDP and TCP on every `[dns] listen` address (port 0: one free port, the same
    /// for both) and serves until `shutdown` is cancelled. Returns the bound addresses through
    /// `bound` before serving.
    pub async fn serve(
        &self,
        listen: &[SocketAddr],
        store: Option<control::Store>,
        bound: impl FnOnce(&[SocketAddr]),
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), DnsError> {
        let mut server = hickory_server::Server::new(Handler(self.shared.clone()));
        let mut addrs = Vec::new();
        for &addr in listen {
            let (udp, tcp, local) = bind_pair(addr).await?;
            server.register_socket(udp);
            server.register_listener(tcp, TCP_IDLE, 32);
            addrs.push(local);
        }
        bound(&addrs);
        let health = tokio::spawn(health::run(self.shared.clone(), self.config.clone(), store));
        let token = server.shutdown_token().clone();
        let stop = tokio::spawn(async move {
            shutdown.cancelled().await;
            token.cancel();
        });
        let done = server.block_until_done().await;
        health.abort();
        stop.abort();
        done.map_err(|e| DnsError::Serve(e.to_string()))
    }
}

/// UDP and TCP on one address. With port 0 the UDP socket picks the port and TCP takes the
/// same one; another process may hold that TCP port, so a few ports are tried.
async fn bind_pair(
    addr: SocketAddr,
) -> Result<(tokio::net::UdpSocket, tokio::net::TcpListener, SocketAddr), DnsError> {
    let mut attempts = if addr.port() == 0 { 32 } else { 1 };
    loop {
        attempts -= 1;
        let udp = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|source| DnsError::Bind { addr, source })?;
        let local = udp
            .local_addr()
            .map_err(|source| DnsError::Bind { addr, source })?;
        match tokio::net::TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, tcp, local)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempts > 0 => continue,
            Err(source) => {
                return Err(DnsError::Bind {
                    addr: local,
                    source,
                });
            }
        }
    }
}
