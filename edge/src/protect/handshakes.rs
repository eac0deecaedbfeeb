//! QUIC handshake floods: past `quic_retry_above` handshakes in progress on the node, a new
//! one must first prove it owns its address (a Retry round trip, quinn's `Incoming::retry`:
//! spoofed sources never come back); and one client address may have at most
//! `quic_max_handshakes_per_client` in progress (refused beyond).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use config::Limits;

#[derive(Default)]
pub struct Handshakes {
    total: AtomicU32,
    by_client: super::per_address::PerAddress,
    pub retries: AtomicU64,
    pub refused: AtomicU64,
}

/// A handshake counted as in progress until dropped.
pub struct InProgress {
    gate: Arc<Handshakes>,
    ip: IpAddr,
    per_client: bool,
}

/// What to do with a new QUIC connection attempt.
pub enum Admit {
    Go(InProgress),
    /// Ask for a Retry first.
    Retry,
    Refuse,
}

impl Handshakes {
    /// `validated`: the attempt already came back from a Retry; `may_retry`: quinn can still
    /// send one.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        validated: bool,
        may_retry: bool,
        limits: &Limits,
    ) -> Admit {
        let ip = ip.to_canonical();
        let cap = limits.quic_max_handshakes_per_client;
        let mut per_client = false;
        if cap > 0 {
            if !self.by_client.try_add(ip, cap) {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Admit::Refuse;
            }
            per_client = true;
        }
        let slot = InProgress {
            gate: self.clone(),
            ip,
            per_client,
        };
        let before = self.total.fetch_add(1, Ordering::Relaxed);
        if !validated && may_retry && before >= limits.quic_retry_above {
            self.retries.fetch_add(1, Ordering::Relaxed);
            // `slot` gives both counts back: a Retry costs no handshake state.
            return Admit::Retry;
        }
        Admit::Go(slot)
    }

    pub fn in_progress(&self) -> u32 {
        self.total.load(Ordering::Relaxed)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.gate.total.fetch_sub(1, Ordering::Relaxed);
        if self.per_client {
            self.gate.by_client.remove(self.ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(retry_above: u32, per_client: u32) -> Limits {
        Limits {
            max_request_header_bytes: 0,
            max_uri_bytes: 0,
            max_request_headers: 0,
            max_requests_per_connection: 0,
            max_connections_per_client: 0,
            max_connections: 0,
            h2_max_concurrent_streams: 0,
            h2_max_pending_accept_reset_streams: 0,
            h2_max_local_error_reset_streams: 0,
            quic_retry_above: retry_above,
            quic_max_handshakes_per_client: per_client,
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
    fn retry_past_the_threshold_and_a_cap_per_client() {
        let gate = Arc::new(Handshakes::default());
        let l = limits(2, 3);
        let a = IpAddr::from([192, 0, 2, 1]);
        let b = IpAddr::from([192, 0, 2, 2]);
        let go = |admit: Admit| match admit {
            Admit::Go(p) => Some(p),
            _ => None,
        };
        let a1 = go(gate.admit(a, false, true, &l));
        let b1 = go(gate.admit(b, false, true, &l));
        assert!(a1.is_some() && b1.is_some());
        // Two in progress: the third must come back from a Retry first...
        assert!(matches!(gate.admit(a, false, true, &l), Admit::Retry));
        // ...and once it has, it goes on (it proved its address).
        let a2 = go(gate.admit(a, true, false, &l));
        assert!(a2.is_some());
        let a3 = go(gate.admit(a, true, false, &l));
        assert!(a3.is_some());
        // a has three in progress: its cap.
        assert!(matches!(gate.admit(a, true, false, &l), Admit::Refuse));
        assert_eq!(gate.retries.load(Ordering::Relaxed), 1);
        assert_eq!(gate.refused.load(Ordering::Relaxed), 1);
        drop((a1, a2, a3, b1));
        assert_eq!(gate.in_progress(), 0);
        assert!(
            go(gate.admit(a, false, true, &l)).is_some(),
            "counts given back"
        );
    }
}
