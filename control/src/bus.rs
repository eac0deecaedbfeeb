//! The purge bus: a purge accepted by any node is recorded once in etcd (`P/purges/<id>`, with
//! its revision giving the order), every node applies it and acknowledges it under
//! `P/acks/<id>/<node>`, and the node that accepted it answers when every live node has.
//!
//! Shield first: a node of the `edge` tier applies a purge only once every live shield has
//! acknowledged it (or a deadline passed), so no edge refetches pre-purge content from a shield
//! that has not purged yet. A node keeps the revision of the last purge it applied on disk and,
//! when it starts, applies what it missed before it serves; if it cannot know (no record, etcd
//! unreachable, or gone longer than purge records are kept) it soft-purges everything: every
//! cached object is revalidated before reuse, and nothing purged is ever served as fresh.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    EventType, GetOptions, PutOptions, SortOrder, SortTarget, WatchOptions, WatchStream,
};
use purge_api::{NodeAck, PurgeRequest};
use serde::{Deserialize, Serialize};

use crate::store::now_unix;
use tokio::sync::OnceCell;

use crate::{ControlError, Keys, NodeFile, NodeReport, Store};

/// How long purge records stay in etcd (a lease). A node away longer than this cannot know
/// what it missed and soft-purges everything.
pub const RETENTION_SECS: i64 = 24 * 3600;
/// How long an edge waits for the live shields before it applies a purge anyway.
pub const SHIELD_WAIT: Duration = Duration::from_secs(5);

/// A purge as the bus carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeEvent {
    pub id: String,
    pub request: PurgeRequest,
    /// The token that asked, and the sites it may purge (`None`: every site): each node
    /// expands the request as the accepting node did.
    pub token: String,
    pub token_sites: Option<Vec<String>>,
    /// The node that accepted it.
    pub from: String,
    pub at_unix_ms: u64,
}

/// What applying a purge on this node gave.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub purged: u64,
    pub took_us: u64,
    pub error: Option<String>,
}

/// Everything the bus needs from the node: who it is and where it keeps its state.
pub struct PurgeBus {
    /// Connected on first use (with etcd auth, connecting logs in, which fails while etcd is
    /// down; the bus then keeps trying).
    store: OnceCell<Store>,
    settings: crate::StoreSettings,
    base: PathBuf,
    keys: Keys,
    node: String,
    pop: String,
    tier: String,
    state_file: PathBuf,
}

/// The answer to a fanned-out purge: acknowledgements (shields first) and the live nodes that
/// had not acknowledged by the deadline.
#[derive(Debug, Clone, Default)]
pub struct Fanout {
    pub acks: Vec<NodeAck>,
    pub pending: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct State {
    /// The revision of the last purge applied.
    revision: i64,
    unix: u64,
}

impl PurgeBus {
    pub fn new(node: &NodeFile) -> PurgeBus {
        PurgeBus {
            store: OnceCell::new(),
            settings: node.store.clone(),
            base: node.dir(),
            keys: Keys::new(node.store.prefix.as_deref().unwrap_or("/edge")),
            node: node.name.clone(),
            pop: node.pop.clone(),
            tier: node.tier.clone(),
            state_file: node.state_dir().join("purge-revision.json"),
        }
    }

    async fn store(&self) -> Result<&Store, ControlError> {
        self.store
            .get_or_try_init(|| Store::connect(&self.settings, &self.base))
            .await
    }

    async fn client(&self) -> Result<etcd_client::Client, ControlError> {
        Ok(self.store().await?.client())
    }

    /// A bus for an operator's tool (`edge purge --store`): it publishes and reads
    /// acknowledgements, and applies nothing.
    pub fn operator(settings: crate::StoreSettings, base: PathBuf) -> PurgeBus {
        PurgeBus {
            store: OnceCell::new(),
            keys: Keys::new(settings.prefix.as_deref().unwrap_or("/edge")),
            settings,
            base,
            node: "cli".into(),
            pop: String::new(),
            tier: "cli".into(),
            state_file: PathBuf::new(),
        }
    }

    fn purges(&self) -> String {
        format!("{}/purges/", self.keys.prefix())
    }

    fn acks_of(&self, id: &str) -> String {
        format!("{}/acks/{id}/", self.keys.prefix())
    }

    /// Records `event` on the bus. Returns its revision.
    pub async fn publish(&self, event: &PurgeEvent) -> Result<i64, ControlError> {
        let mut c = self.client().await?;
        let lease = c
            .lease_grant(RETENTION_SECS, None)
            .await
            .map_err(ControlError::etcd("purge lease"))?;
        let value = serde_json::to_vec(event).unwrap_or_default();
        let resp = c
            .put(
                format!("{}{}", self.purges(), event.id),
                value,
                Some(PutOptions::new().with_lease(lease.id())),
            )
            .await
            .map_err(ControlError::etcd("publish purge"))?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// The acknowledgements of purge `id` so far.
    pub async fn acks(&self, id: &str) -> Result<Vec<NodeAck>, ControlError> {
        let mut c = self.client().await?;
        let resp = c
            .get(self.acks_of(id), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(ControlError::etcd("read acks"))?;
        let mut acks: Vec<NodeAck> = resp
            .kvs()
            .iter()
            .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
            .collect();
        // Shields first (they apply first), then by node.
        acks.sort_by(|a, b| (a.tier != "shield", &a.node).cmp(&(b.tier != "shield", &b.node)));
        Ok(acks)
    }

    /// A watch on the acknowledgements of `id`, from now. Made before the purge is published
    /// (so no acknowledgement is missed) and without a start revision: etcd serves a watch
    /// that starts in the past from its catch-up loop, which runs every 100 ms, and that
    /// alone made the median fan-out 94 ms with ten nodes.
    pub async fn watch_acks(&self, id: &str) -> Result<WatchStream, ControlError> {
        let mut c = self.client().await?;
        c.watch(self.acks_of(id), Some(WatchOptions::new().with_prefix()))
            .await
            .map_err(ControlError::etcd("watch acks"))
    }

    /// Waits until every live node has acknowledged `id`, at most `within`, with `stream` from
    /// [`PurgeBus::watch_acks`]. Live nodes: those with a report now.
    pub async fn wait_acks(
        &self,
        id: &str,
        mut stream: WatchStream,
        within: Duration,
    ) -> Result<Fanout, ControlError> {
        let deadline = tokio::time::Instant::from_std(edge_core::clock::now().into_std() + within);
        let mut live = self.live(None).await?;
        loop {
            let acks = self.acks(id).await?;
            let acked: BTreeSet<&str> = acks.iter().map(|a| a.node.as_str()).collect();
            let pending: Vec<String> = live
                .iter()
                .filter(|n| !acked.contains(n.as_str()))
                .cloned()
                .collect();
            if pending.is_empty() {
                return Ok(Fanout { acks, pending });
            }
            match tokio::time::timeout_at(deadline, stream.message()).await {
                Err(_) => return Ok(Fanout { acks, pending }),
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None) | Err(_)) => {
                    // The watch broke: poll what is left of the wait.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            // A node that died meanwhile leaves the live set with its report.
            live = self.live(None).await.unwrap_or(live);
        }
    }

    /// Names of the nodes with a report now (of `tier`, or every tier).
    async fn live(&self, tier: Option<&str>) -> Result<BTreeSet<String>, ControlError> {
        let reports: Vec<NodeReport> = self.store().await?.reports().await?;
        Ok(reports
            .into_iter()
            .filter(|r| tier.is_none_or(|t| r.tier == t))
            .map(|r| r.node)
            .collect())
    }

    /// Applies purges as they come, forever: first what was missed since the saved revision
    /// (or, when that cannot be known, a soft purge of everything through `apply_all_soft`),
    /// then the stream. Returns once the catch-up is done (or known impossible), leaving the
    /// stream to a background task, so the caller can start serving after it.
    pub async fn start<A, F, S, G>(self: Arc<Self>, apply: A, apply_all_soft: S)
    where
        A: Fn(PurgeEvent) -> F + Send + Sync + 'static,
        F: Future<Output = Applied> + Send + 'static,
        S: Fn() -> G + Send + Sync + 'static,
        G: Future<Output = ()> + Send + 'static,
    {
        let saved = self.load_state().await;
        let fresh = saved
            .as_ref()
            .is_some_and(|s| now_unix().saturating_sub(s.unix) < RETENTION_SECS as u64 - 600);
        let mut next = match saved {
            Some(s) if fresh => Some(s.revision + 1),
            _ => None,
        };
        if next.is_none() {
            tracing::warn!(
                "purge history since this node last ran is unknown: every cached object will be revalidated before reuse"
            );
            apply_all_soft().await;
        }
        let caught =
            tokio::time::timeout(Duration::from_secs(5), self.catch_up(next, &apply)).await;
        match caught {
            Ok(Ok(rev)) => next = Some(rev + 1),
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no answer within 5 s".to_string(),
                };
                if next.is_some() {
                    tracing::warn!(error = %why, "cannot read the purges this node missed: every cached object will be revalidated before reuse");
                    apply_all_soft().await;
                }
                // Position unknown: `follow` soft-purges again once its watch is in place,
                // covering what was purged between now and then.
                next = None;
            }
        }
        tokio::spawn(self.follow(next, Arc::new(apply), Arc::new(apply_all_soft)));
    }

    /// Applies the purges recorded after `from` (all current ones when `None`, which only sets
    /// the position: their effects are covered by the soft purge of everything). Returns the
    /// revision it read at.
    async fn catch_up<A, F>(&self, from: Option<i64>, apply: &A) -> Result<i64, ControlError>
    where
        A: Fn(PurgeEvent) -> F,
        F: Future<Output = Applied>,
    {
        let mut c = self.client().await?;
        let mut opts = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Mod, SortOrder::Ascend);
        if let Some(rev) = from {
            opts = opts.with_min_mod_revision(rev);
        } else {
            opts = opts.with_keys_only().with_limit(1);
        }
        let resp = c
            .get(self.purges(), Some(opts))
            .await
            .map_err(ControlError::etcd("read purges"))?;
        let at = resp.header().map_or(0, |h| h.revision());
        if from.is_some() {
            for kv in resp.kvs() {
                if let Ok(event) = serde_json::from_slice::<PurgeEvent>(kv.value()) {
                    self.apply_one(event, apply).await;
                }
            }
        }
        self.save_state(at).await;
        Ok(at)
    }

    /// The stream after the catch-up. A broken watch resumes from the next revision; a
    /// compacted one (history gone) means a soft purge of everything, then onwards.
    async fn follow<A, F, S, G>(
        self: Arc<Self>,
        mut next: Option<i64>,
        apply: Arc<A>,
        apply_all_soft: Arc<S>,
    ) where
        A: Fn(PurgeEvent) -> F + Send + Sync,
        F: Future<Output = Applied> + Send,
        S: Fn() -> G + Send + Sync,
        G: Future<Output = ()> + Send,
    {
        loop {
            let Ok(mut c) = self.client().await else {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            };
            let mut opts = WatchOptions::new().with_prefix();
            if let Some(rev) = next {
                opts = opts.with_start_revision(rev);
            }
            let mut stream = match c.watch(self.purges(), Some(opts)).await {
                Ok(s) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            if next.is_none() {
                // The watch starts now; what was purged before it is covered by this.
                apply_all_soft().await;
            }
            loop {
                let resp = match stream.message().await {
                    Ok(Some(r)) => r,
                    Ok(None) | Err(_) => break,
                };
                if resp.compact_revision() > 0 {
                    tracing::warn!(
                        compacted = resp.compact_revision(),
                        "purges this node missed were compacted away: every cached object will be revalidated before reuse"
                    );
                    // Everything before the compaction point is covered by the soft purge.
                    apply_all_soft().await;
                    next = Some(resp.compact_revision());
                    break;
                }
                if resp.canceled() {
                    break;
                }
                for event in resp.events() {
                    if event.event_type() != EventType::Put {
                        continue;
                    }
                    let Some(kv) = event.kv() else { continue };
                    if let Ok(purge) = serde_json::from_slice::<PurgeEvent>(kv.value()) {
                        self.apply_one(purge, &*apply).await;
                    }
                    next = Some(kv.mod_revision() + 1);
                    self.save_state(kv.mod_revision()).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Applies one purge (after the shields, on an edge) and acknowledges it.
    async fn apply_one<A, F>(&self, event: PurgeEvent, apply: &A)
    where
        A: Fn(PurgeEvent) -> F,
        F: Future<Output = Applied>,
    {
        if self.tier != "shield" {
            self.wait_for_shields(&event.id).await;
        }
        let id = event.id.clone();
        let applied = apply(event).await;
        let ack = NodeAck {
            node: self.node.clone(),
            pop: self.pop.clone(),
            tier: self.tier.clone(),
            applied_at_unix_ms: edge_core::clock::unix_ms(),
            purged: applied.purged,
            took_us: applied.took_us,
            error: applied.error,
        };
        let key = format!("{}{}", self.acks_of(&id), self.node);
        let Ok(mut c) = self.client().await else {
            tracing::warn!(purge_id = %id, "purge applied but not acknowledged: etcd unreachable");
            return;
        };
        let value = serde_json::to_vec(&ack).unwrap_or_default();
        // Acks go with the purge record's lifetime: a lease of the same length.
        let lease = c
            .lease_grant(RETENTION_SECS, None)
            .await
            .ok()
            .map(|l| l.id());
        let opts = lease.map(|l| PutOptions::new().with_lease(l));
        if let Err(e) = c.put(key, value, opts).await {
            tracing::warn!(purge_id = %id, error = %e, "purge applied but not acknowledged");
        }
    }

    /// Until every live shield acknowledged `id`, at most [`SHIELD_WAIT`]: woken by each new
    /// acknowledgement (a watch made before the first look, so none is missed).
    async fn wait_for_shields(&self, id: &str) {
        let deadline = edge_core::clock::now() + SHIELD_WAIT;
        let mut stream = self.watch_acks(id).await.ok();
        loop {
            let Ok(shields) = self.live(Some("shield")).await else {
                return;
            };
            if shields.is_empty() {
                return;
            }
            let acked: BTreeSet<String> = match self.acks(id).await {
                Ok(a) => a.into_iter().map(|a| a.node).collect(),
                Err(_) => return,
            };
            if shields.iter().all(|s| acked.contains(s)) {
                return;
            }
            let now = edge_core::clock::now();
            if now >= deadline {
                tracing::warn!(purge_id = %id, "shields did not acknowledge in time; applying anyway");
                return;
            }
            let left = deadline - now;
            match stream.as_mut() {
                Some(s) => {
                    if !matches!(
                        tokio::time::timeout(left, s.message()).await,
                        Ok(Ok(Some(_)))
                    ) {
                        // Broken watch or the deadline: look once more, then poll.
                        stream = None;
                    }
                }
                None => tokio::time::sleep(Duration::from_millis(5).min(left)).await,
            }
        }
    }

    async fn load_state(&self) -> Option<State> {
        let bytes = tokio::fs::read(&self.state_file).await.ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    async fn save_state(&self, revision: i64) {
        let state = State {
            revision,
            unix: now_unix(),
        };
        let Ok(json) = serde_json::to_vec(&state) else {
            return;
        };
        if let Some(dir) = self.state_file.parent() {
            let _ = tokio::fs::create_dir_all(dir).await;
        }
        let tmp = self.state_file.with_extension("tmp");
        if tokio::fs::write(&tmp, json).await.is_ok() {
            let _ = tokio::fs::rename(&tmp, &self.state_file).await;
        }
    }
}
