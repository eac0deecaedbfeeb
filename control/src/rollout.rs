//! Staged rollouts: a version goes to canary nodes (by name or POP) first, and to every node
//! only when each canary applied it and stayed healthy for the watch time; otherwise the
//! canaries are rolled back. The controller is the `edge config push --canary` process: nodes
//! never decide for other nodes. While it watches it holds `control/rollout-controller` under
//! a lease; if it dies, the rollout stays halted at the canaries until `promote` or `abort`.

use std::collections::BTreeSet;
use std::time::Duration;

use etcd_client::PutOptions;
use serde::{Deserialize, Serialize};

use crate::store::{encode, now_unix};
use crate::{ControlError, Store};

/// A controller that stops renewing for this long has died: its rollout shows as halted.
pub const CONTROLLER_TTL_SECS: i64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutState {
    /// The canaries run the new version; the rest run the active one.
    Canary,
    Promoted,
    RolledBack,
    Aborted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutRecord {
    pub version: u64,
    /// The active version when it started (what the canaries go back to).
    pub previous: Option<u64>,
    /// Node names or POP names.
    pub canaries: Vec<String>,
    pub state: RolloutState,
    pub by: String,
    pub started_at: u64,
    /// Why it was rolled back or aborted.
    #[serde(default)]
    pub reason: Option<String>,
}

impl RolloutRecord {
    /// Whether a node (by its name and POP) is one of the canaries.
    pub fn is_canary(&self, node: &str, pop: &str) -> bool {
        self.canaries.iter().any(|c| c == node || c == pop)
    }

    /// The version a node should run: the rollout's while it is a canary of one in progress,
    /// else the active one.
    pub fn version_for(rollout: Option<&RolloutRecord>, active: u64, node: &str, pop: &str) -> u64 {
        match rollout {
            Some(r) if r.state == RolloutState::Canary && r.is_canary(node, pop) => r.version,
            _ => active,
        }
    }
}

/// How a canary is judged.
#[derive(Debug, Clone)]
pub struct Health {
    /// How long every canary must apply the version in.
    pub apply_within: Duration,
    /// How long the canaries are watched once they all run it.
    pub watch: Duration,
    /// How much higher the canaries' 5xx ratio may be than the other nodes' over the watch.
    pub max_5xx_rise: f64,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            apply_within: Duration::from_secs(30),
            watch: Duration::from_secs(30),
            max_5xx_rise: 0.01,
        }
    }
}

/// How a rollout ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Promoted,
    RolledBack(String),
}

impl Store {
    pub async fn rollout(&self) -> Result<Option<(RolloutRecord, i64)>, ControlError> {
        let key = self.keys().rollout();
        let mut c = self.client();
        let resp = c
            .get(key.clone(), None)
            .await
            .map_err(ControlError::etcd("get rollout"))?;
        match resp.kvs().first() {
            Some(kv) => Ok(Some((
                serde_json::from_slice(kv.value()).map_err(|e| ControlError::Corrupt {
                    key,
                    reason: e.to_string(),
                })?,
                kv.mod_revision(),
            ))),
            None => Ok(None),
        }
    }

    async fn put_rollout(&self, r: &RolloutRecord) -> Result<(), ControlError> {
        let mut c = self.client();
        c.put(self.keys().rollout(), encode(r), None)
            .await
            .map_err(ControlError::etcd("put rollout"))?;
        Ok(())
    }

    /// Whether a controller is watching the rollout now.
    pub async fn rollout_controlled(&self) -> Result<bool, ControlError> {
        let mut c = self.client();
        let resp = c
            .get(self.keys().rollout_controller(), None)
            .await
            .map_err(ControlError::etcd("get rollout controller"))?;
        Ok(!resp.kvs().is_empty())
    }

    /// Ends the rollout in progress as `state` (promoting its version when `Promoted`).
    pub async fn finish_rollout(
        &self,
        state: RolloutState,
        by: &str,
        reason: Option<String>,
    ) -> Result<RolloutRecord, ControlError> {
        let Some((mut r, _)) = self.rollout().await? else {
            return Err(ControlError::Settings("no rollout to finish".into()));
        };
        if r.state != RolloutState::Canary {
            return Err(ControlError::Settings(format!(
                "the rollout of version {} is already {:?}",
                r.version, r.state
            )));
        }
        if state == RolloutState::Promoted {
            self.activate(r.version, by).await?;
        }
        r.state = state;
        r.reason = reason;
        self.put_rollout(&r).await?;
        Ok(r)
    }
}

/// Runs a rollout of version `n` (already stored, not active) to `canaries`, judged by
/// `health`; promotes it or rolls the canaries back. `progress` hears what happens.
pub async fn run(
    store: &Store,
    n: u64,
    canaries: &[String],
    health: &Health,
    by: &str,
    progress: impl Fn(&str),
) -> Result<Verdict, ControlError> {
    let Some((active, _)) = store.active().await? else {
        return Err(ControlError::Settings(
            "a canary rollout needs an active version to compare with: push one first".into(),
        ));
    };
    if let Some((r, _)) = store.rollout().await?
        && r.state == RolloutState::Canary
    {
        return Err(ControlError::Settings(format!(
            "the rollout of version {} is still at its canaries: edge config promote or abort",
            r.version
        )));
    }
    let reports = store.reports().await?;
    let matched: BTreeSet<String> = reports
        .iter()
        .filter(|r| canaries.iter().any(|c| *c == r.node || *c == r.pop))
        .map(|r| r.node.clone())
        .collect();
    if matched.is_empty() {
        return Err(ControlError::Settings(format!(
            "no live node matches the canaries {canaries:?}"
        )));
    }
    // Held while this process watches: if it dies, the rollout shows as halted.
    let mut c = store.client();
    let lease = c
        .lease_grant(CONTROLLER_TTL_SECS, None)
        .await
        .map_err(ControlError::etcd("controller lease"))?
        .id();
    c.put(
        store.keys().rollout_controller(),
        by.as_bytes(),
        Some(PutOptions::new().with_lease(lease)),
    )
    .await
    .map_err(ControlError::etcd("controller key"))?;
    let (mut keeper, mut keep_stream) = c
        .lease_keep_alive(lease)
        .await
        .map_err(ControlError::etcd("controller keep-alive"))?;
    let keepalive = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            if keeper.keep_alive().await.is_err() {
                return;
            }
            let _ = keep_stream.message().await;
        }
    });
    let record = RolloutRecord {
        version: n,
        previous: Some(active.version),
        canaries: canaries.to_vec(),
        state: RolloutState::Canary,
        by: by.to_string(),
        started_at: now_unix(),
        reason: None,
    };
    store.put_rollout(&record).await?;
    progress(&format!(
        "version {n} to the canaries {}",
        matched.iter().cloned().collect::<Vec<_>>().join(", ")
    ));
    let verdict = judge(store, n, &matched, health, &progress).await;
    let result = match verdict {
        Ok(()) => {
            store
                .finish_rollout(RolloutState::Promoted, by, None)
                .await?;
            Ok(Verdict::Promoted)
        }
        Err(reason) => {
            store
                .finish_rollout(RolloutState::RolledBack, by, Some(reason.clone()))
                .await?;
            Ok(Verdict::RolledBack(reason))
        }
    };
    keepalive.abort();
    let _ = c.lease_revoke(lease).await;
    result
}

/// Ok when every canary applied `n` within the time and its 5xx ratio over the watch stayed
/// within `max_5xx_rise` of the other nodes'; else why not.
async fn judge(
    store: &Store,
    n: u64,
    canaries: &BTreeSet<String>,
    health: &Health,
    progress: &impl Fn(&str),
) -> Result<(), String> {
    let step = Duration::from_millis(200);
    let deadline = edge_core::clock::now() + health.apply_within;
    let start = loop {
        let reports = store.reports().await.map_err(|e| e.to_string())?;
        if let Some(r) = reports
            .iter()
            .find(|r| canaries.contains(&r.node) && r.failed_version == Some(n))
        {
            return Err(format!(
                "{} refused version {n}: {}",
                r.node,
                r.error.as_deref().unwrap_or("")
            ));
        }
        let applied = reports
            .iter()
            .filter(|r| canaries.contains(&r.node) && r.version == n)
            .count();
        if applied == canaries.len() {
            break reports;
        }
        if edge_core::clock::now() >= deadline {
            return Err(format!(
                "{applied} of {} canaries applied version {n} within {:?}",
                canaries.len(),
                health.apply_within
            ));
        }
        tokio::time::sleep(step).await;
    };
    progress(&format!(
        "every canary runs version {n}; watching them for {:?}",
        health.watch
    ));
    tokio::time::sleep(health.watch).await;
    let end = store.reports().await.map_err(|e| e.to_string())?;
    for name in canaries {
        match end.iter().find(|r| &r.node == name) {
            None => return Err(format!("{name} stopped reporting")),
            Some(r) if r.version != n => {
                return Err(format!("{name} runs version {} instead", r.version));
            }
            Some(r) if r.error.is_some() => {
                return Err(format!(
                    "{name} reports an error: {}",
                    r.error.as_deref().unwrap_or("")
                ));
            }
            Some(_) => {}
        }
    }
    let ratio = |is_canary: bool| {
        let (mut req, mut err) = (0u64, 0u64);
        for r in end
            .iter()
            .filter(|r| canaries.contains(&r.node) == is_canary)
        {
            if let Some(s) = start.iter().find(|s| s.node == r.node) {
                req += r.requests.saturating_sub(s.requests);
                err += r.status_5xx.saturating_sub(s.status_5xx);
            }
        }
        (
            req,
            if req == 0 {
                0.0
            } else {
                err as f64 / req as f64
            },
        )
    };
    let (canary_req, canary) = ratio(true);
    let (_, others) = ratio(false);
    progress(&format!(
        "canaries: {canary_req} responses, 5xx ratio {canary:.3}; other nodes {others:.3}"
    ));
    if canary > others + health.max_5xx_rise {
        return Err(format!(
            "5xx ratio on the canaries {canary:.3} against {others:.3} elsewhere"
        ));
    }
    Ok(())
}

/// What `edge config status` says about the rollout, and whether it is halted.
pub fn describe(r: &RolloutRecord, controlled: bool) -> (String, bool) {
    match r.state {
        RolloutState::Canary if controlled => (
            format!(
                "rollout: version {} at its canaries {:?}, being watched",
                r.version, r.canaries
            ),
            false,
        ),
        RolloutState::Canary => (
            format!(
                "rollout: version {} HALTED at its canaries {:?} (its controller is gone): edge config promote | abort",
                r.version, r.canaries
            ),
            true,
        ),
        RolloutState::Promoted => (
            format!("last rollout: version {} promoted", r.version),
            false,
        ),
        RolloutState::RolledBack | RolloutState::Aborted => (
            format!(
                "last rollout: version {} {} ({})",
                r.version,
                if r.state == RolloutState::Aborted {
                    "aborted"
                } else {
                    "rolled back"
                },
                r.reason.as_deref().unwrap_or("")
            ),
            false,
        ),
    }
}
