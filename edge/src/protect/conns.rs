//! Connection limits: open client connections per client address (TCP and QUIC together) and
//! on the node. Checked at accept, before a TLS or QUIC handshake costs anything; a refused
//! connection is closed (TCP) or refused (QUIC) and counted.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use config::Limits;

#[derive(Default)]
pub struct ConnSlots {
    total: AtomicU32,
    by_client: super::per_address::PerAddress,
    /// Refusals: node cap, per-client cap, per-client rate.
    pub refused: [AtomicU64; 3],
    /// New connections per client address (`new_connections_per_client`): made on first use,
    /// made again when the limit changes.
    rate: Mutex<Option<(u32, u32, std::sync::Arc<super::limiter::Limiter>)>>,
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverLimit {
    Node,
    Client,
    Rate,
}

/// A connection's place under the limits, given back when dropped.
pub struct Slot {
    slots: Arc<ConnSlots>,
    node: bool,
    client: Option<IpAddr>,
}

impl ConnSlots {
    /// A node-wide slot, and with `client` one of that address's. `Err`: over a limit.
    pub fn acquire(
        self: &Arc<Self>,
        client: Option<IpAddr>,
        limits: &Limits,
    ) -> Result<Slot, OverLimit> {
        let mut slot = Slot {
            slots: self.clone(),
            node: false,
            client: None,
        };
        if limits.max_connections > 0 {
            let before = self.total.fetch_add(1, Ordering::Relaxed);
            slot.node = true;
            if before >= limits.max_connections {
                self.refused[0].fetch_add(1, Ordering::Relaxed);
                return Err(OverLimit::Node);
            }
        }
        if let Some(ip) = client {
            self.acquire_client(&mut slot, ip, limits)?;
        }
        Ok(slot)
    }

    /// Adds `client`'s slot to `slot` (behind the PROXY protocol the visitor is known only
    /// after the header). `Err`: the client is at its limit.
    pub fn acquire_client(
        &self,
        slot: &mut Slot,
        ip: IpAddr,
        limits: &Limits,
    ) -> Result<(), OverLimit> {
        if slot.client.is_some() {
            return Ok(());
        }
        if limits.new_connections_per_client > 0 && !self.rate_allows(ip, limits) {
            self.refused[2].fetch_add(1, Ordering::Relaxed);
            return Err(OverLimit::Rate);
        }
        let cap = limits.max_connections_per_client;
        if cap == 0 {
            return Ok(());
        }
        let ip = ip.to_canonical();
        if !self.by_client.try_add(ip, cap) {
            self.refused[1].fetch_add(1, Ordering::Relaxed);
            return Err(OverLimit::Client);
        }
        slot.client = Some(ip);
        Ok(())
    }

    /// A new connection from `ip` within `new_connections_per_client` (GCRA, bounded state).
    fn rate_allows(&self, ip: IpAddr, limits: &Limits) -> bool {
        let (rate, burst) = (
            limits.new_connections_per_client,
            limits.new_connections_burst,
        );
        let limiter = {
            let mut cur = self.rate.lock().unwrap_or_else(PoisonError::into_inner);
            match &*cur {
                Some((r, b, l)) if *r == rate && *b == burst => l.clone(),
                _ => {
                    let l = std::sync::Arc::new(super::limiter::Limiter::new(
                        u64::from(rate),
                        std::time::Duration::from_secs(1),
                        u64::from(burst),
                        100_000,
                    ));
                    *cur = Some((rate, burst, l.clone()));
                    l
                }
            }
        };
        let now = edge_core::clock::monotonic_ns();
        matches!(
            limiter.check(ip.to_canonical(), now),
            super::limiter::Verdict::Allowed { .. }
        )
    }

    /// Open connections counted against the node cap.
    pub fn open(&self) -> u32 {
        self.total.load(Ordering::Relaxed)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.node {
            self.slots.total.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(ip) = self.client {
            self.slots.by_client.remove(ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(node: u32, client: u32) -> Limits {
        Limits {
            max_request_header_bytes: 0,
            max_uri_bytes: 0,
            max_request_headers: 0,
            max_requests_per_connection: 0,
            max_connections_per_client: client,
            max_connections: node,
            h2_max_concurrent_streams: 0,
            h2_max_pending_accept_reset_streams: 0,
            h2_max_local_error_reset_streams: 0,
            quic_retry_above: 0,
            quic_max_handshakes_per_client: 0,
            new_connections_per_client: 0,
            new_connections_burst: 0,
            client_min_send_rate: 0,
            client_send_grace: std::time::Duration::ZERO,
            max_buffered_response_bytes: 0,
            quic_max_concurrent_streams: 0,
            early_reset_min_streams: 0,
        }
    }

    #[test]
    fn per_client_and_node_caps_are_given_back_on_drop() {
        let slots = Arc::new(ConnSlots::default());
        let l = limits(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let b: IpAddr = "::ffff:192.0.2.2"
            .parse()
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let a1 = slots.acquire(Some(a), &l).ok();
        let a2 = slots.acquire(Some(a), &l).ok();
        assert!(a1.is_some() && a2.is_some());
        assert!(slots.acquire(Some(a), &l).is_err(), "a's third");
        let b1 = slots.acquire(Some(b), &l).ok();
        assert!(b1.is_some());
        assert!(slots.acquire(Some(b), &l).is_err(), "the node's fourth");
        assert_eq!(slots.refused[1].load(Ordering::Relaxed), 1);
        assert_eq!(slots.refused[0].load(Ordering::Relaxed), 1);
        drop(a1);
        assert!(slots.acquire(Some(a), &l).is_ok(), "given back");
        drop((a2, b1));
        assert_eq!(slots.open(), 0);
        assert!(slots.by_client.is_empty());
        // No caps: nothing counted.
        let free = limits(0, 0);
        let held: Vec<_> = (0..1000)
            .filter_map(|_| slots.acquire(Some(a), &free).ok())
            .collect();
        assert_eq!(held.len(), 1000);
        assert_eq!(slots.open(), 0);
    }
}
