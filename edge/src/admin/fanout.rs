//! Purges over the control plane's bus (`control::PurgeBus`): a purge accepted here is recorded
//! in etcd, every node (this one included) applies it from the bus and acknowledges it, and the
//! answer waits for every live node's acknowledgement (or the deadline, naming who is missing).

use std::sync::Arc;
use std::time::Duration;

use cache::Storage as _;
use cache::purge::{Purge, PurgeMode, PurgeScope};
use control::{Applied, PurgeBus, PurgeEvent};
use edge_core::clock;
use purge_api::{PurgeRecord, PurgeRequest, Status, Token};

use crate::pipeline::{Runtime, Shared};

/// How long `POST /purge` waits for every live node's acknowledgement.
pub const ACK_WAIT: Duration = Duration::from_secs(10);

/// Connects this node to the bus: applies what it missed (before it serves; see
/// `PurgeBus::start`), then follows the stream in the background.
pub async fn start(shared: &Arc<Shared>, bus: Arc<PurgeBus>) {
    let _ = shared.bus.set(bus.clone());
    let for_apply = shared.clone();
    let for_soft = shared.clone();
    bus.start(
        move |event| {
            let shared = for_apply.clone();
            async move { apply_event(&shared, event).await }
        },
        move || {
            let shared = for_soft.clone();
            async move {
                let purge = Purge::new(PurgeScope::All, PurgeMode::Soft);
                shared.cache.store.purge(&purge).await;
            }
        },
    )
    .await;
}

/// One purge from the bus, expanded against this node's config as the accepting node did
/// (the same token scope), applied, and kept in the journal.
async fn apply_event(shared: &Shared, event: PurgeEvent) -> Applied {
    let rt = shared.runtime();
    let token = Token {
        name: event.token.clone(),
        sha256: [0; 32],
        sites: event.token_sites.clone(),
        kinds: None,
        read_only: false,
    };
    let scopes = match super::purge::scopes(
        &rt.snapshot,
        &shared.listen_ports(),
        &token,
        &event.request,
    ) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(purge_id = %event.id, error = %e, "purge from the bus does not apply here");
            return Applied {
                error: Some(e.to_string()),
                ..Applied::default()
            };
        }
    };
    let record =
        super::purge::apply_scopes(shared, &event.id, &token.name, event.request, scopes).await;
    Applied {
        purged: record.purged,
        took_us: record.took_us,
        error: None,
    }
}

/// `POST /purge` and `PURGE` with the bus: records the purge, waits for the acknowledgements.
pub async fn fan_out(
    shared: &Shared,
    rt: &Runtime,
    bus: &PurgeBus,
    token: &Token,
    request: PurgeRequest,
) -> PurgeRecord {
    let start = clock::now();
    let event = PurgeEvent {
        id: shared.purges.next_id(&rt.snapshot.node_name),
        request: request.clone(),
        token: token.name.clone(),
        token_sites: token.sites.clone(),
        from: rt.snapshot.node_name.clone(),
        at_unix_ms: clock::unix_ms(),
    };
    let mut record = PurgeRecord {
        id: event.id.clone(),
        status: Status::Failed,
        purged: 0,
        took_us: 0,
        token: token.name.clone(),
        at_unix_ms: event.at_unix_ms,
        request,
        acks: Vec::new(),
        pending: Vec::new(),
    };
    let fanout = async {
        let acks = bus.watch_acks(&event.id).await?;
        bus.publish(&event).await?;
        bus.wait_acks(&event.id, acks, ACK_WAIT).await
    }
    .await;
    match fanout {
        Ok(f) => {
            record.status = if f.pending.is_empty() {
                Status::Done
            } else {
                Status::Partial
            };
            record.purged = f.acks.iter().map(|a| a.purged).sum();
            record.acks = f.acks;
            record.pending = f.pending;
        }
        Err(e) => {
            tracing::warn!(purge_id = %record.id, error = %e, "purge not recorded on the bus");
        }
    }
    record.took_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    tracing::info!(
        purge_id = %record.id,
        status = ?record.status,
        acks = record.acks.len(),
        pending = record.pending.len(),
        took_us = record.took_us,
        "purge fanned out"
    );
    shared.purges.insert(record.clone());
    record
}

/// `GET /purge/{id}` with the bus: the journal's record (or the bus's, for a purge another node
/// accepted) with every acknowledgement as it stands now.
pub async fn record(shared: &Shared, bus: &PurgeBus, id: &str) -> Option<PurgeRecord> {
    let mut record = shared.purges.get(id)?;
    if let Ok(acks) = bus.acks(id).await {
        let acked: std::collections::BTreeSet<&str> =
            acks.iter().map(|a| a.node.as_str()).collect();
        record.pending.retain(|n| !acked.contains(n.as_str()));
        if record.pending.is_empty() && !acks.is_empty() {
            record.status = Status::Done;
        }
        record.purged = acks.iter().map(|a| a.purged).sum();
        record.acks = acks;
    }
    Some(record)
}
