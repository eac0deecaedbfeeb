//! [`EtcdSource`]: a node's config from etcd. The node file (local) and the active version's
//! shared document (from etcd) are joined into one document; the node watches the active
//! pointer and reloads when it moves, reports what it runs, and keeps the last version it
//! applied on disk, to start from it when etcd cannot be reached.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use config::{ConfigError, ConfigSource, Document, Layer, Snapshot, layered, referenced_blobs};
use etcd_client::{LeaseKeepAliveStream, LeaseKeeper, PutOptions, WatchOptions};
use tokio::sync::{Notify, OnceCell};

use crate::report::{self, LEASE_TTL_SECS, NodeReport, REPORT_EVERY, ReportStats};
use crate::rollout::RolloutRecord;
use crate::store::now_unix;
use crate::{ControlError, NodeFile, Store};

/// How long one fetch may wait for etcd before it counts as unreachable.
const FETCH_WITHIN: Duration = Duration::from_secs(4);

/// Config from etcd, for `edge run --store etcd://…` (or a node file with `[store]`).
pub struct EtcdSource {
    inner: Arc<Inner>,
}

type StatsFn = Box<dyn Fn() -> ReportStats + Send + Sync>;

struct Inner {
    node_path: PathBuf,
    /// The node file as first read: identity and store settings (changing those needs a
    /// restart; the rest of the file is re-read on every fetch).
    node: NodeFile,
    store: OnceCell<Store>,
    changed: Notify,
    status: Mutex<Status>,
    stats: OnceLock<StatsFn>,
    /// A version has been applied: from then on a failed fetch is refused, never answered from
    /// the last known good (which is only for starting).
    applied_any: AtomicBool,
    /// The report's lease, and whether the node is leaving (no more reports).
    lease: Mutex<Option<i64>>,
    leaving: AtomicBool,
    /// Wakes the report loop when what it reports changed (a version applied or refused).
    report_now: Notify,
}

#[derive(Default, Clone)]
struct Status {
    version: u64,
    applied_at: u64,
    last_known_good: bool,
    error: Option<String>,
    failed_version: Option<u64>,
    /// The rollout record as last read (none: no rollout has been started).
    rollout: Option<RolloutRecord>,
}

/// What the node's status page shows of the control plane.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ControlStatus {
    pub store: String,
    pub node: String,
    pub pop: String,
    /// The version this node runs, and when it applied it (unix ms; 0: not yet).
    pub version: u64,
    pub applied_at: u64,
    /// Serving the last known good copy from disk (etcd was unreachable at start).
    pub last_known_good: bool,
    pub error: Option<String>,
    pub failed_version: Option<u64>,
    pub rollout: Option<RolloutRecord>,
    /// This node is a canary of the rollout in progress.
    pub canary: bool,
}

impl EtcdSource {
    /// Starts watching and reporting in the background (on the current runtime).
    pub fn start(node_path: &Path, node: NodeFile) -> EtcdSource {
        let inner = Arc::new(Inner {
            node_path: node_path.to_path_buf(),
            node,
            store: OnceCell::new(),
            changed: Notify::new(),
            status: Mutex::new(Status::default()),
            stats: OnceLock::new(),
            applied_any: AtomicBool::new(false),
            lease: Mutex::new(None),
            leaving: AtomicBool::new(false),
            report_now: Notify::new(),
        });
        tokio::spawn(watch_loop(inner.clone()));
        tokio::spawn(report_loop(inner.clone()));
        EtcdSource { inner }
    }

    /// The node's control-plane state, for its status page.
    pub fn control_status(&self) -> ControlStatus {
        let st = self.inner.status().clone();
        let node = &self.inner.node;
        let canary = st.rollout.as_ref().is_some_and(|r| {
            r.state == crate::rollout::RolloutState::Canary && r.is_canary(&node.name, &node.pop)
        });
        ControlStatus {
            store: self.inner.describe(),
            node: node.name.clone(),
            pop: node.pop.clone(),
            version: st.version,
            applied_at: st.applied_at,
            last_known_good: st.last_known_good,
            error: st.error,
            failed_version: st.failed_version,
            rollout: st.rollout,
            canary,
        }
    }

    /// Where the node's reports take requests and 5xx from.
    pub fn set_stats(&self, stats: impl Fn() -> ReportStats + Send + Sync + 'static) {
        let _ = self.inner.stats.set(Box::new(stats));
    }
}

impl Inner {
    async fn store(&self) -> Result<&Store, ControlError> {
        let dir = self.node.dir();
        self.store
            .get_or_try_init(|| Store::connect(&self.node.store, &dir))
            .await
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn describe(&self) -> String {
        format!(
            "etcd://{}{}",
            self.node.store.endpoints.join(","),
            self.node.store.prefix.as_deref().unwrap_or("/edge")
        )
    }

    fn lkg_dir(&self) -> PathBuf {
        self.node.state_dir().join("last-known-good")
    }

    /// The active version's shared document, joined with the node file.
    async fn remote(&self, node_text: &str) -> Result<Document, ControlError> {
        let store = self.store().await?;
        let Some((active, _)) = store.active().await? else {
            return Err(ControlError::Settings(format!(
                "{}: no version pushed yet (edge config push)",
                self.describe()
            )));
        };
        // A canary of a rollout in progress runs the rollout's version.
        let rollout = store.rollout().await?.map(|(r, _)| r);
        self.status().rollout = rollout.clone();
        let version = RolloutRecord::version_for(
            rollout.as_ref(),
            active.version,
            &self.node.name,
            &self.node.pop,
        );
        let (_record, text, blobs) = store.document(version).await?;
        let name = PathBuf::from(format!(
            "etcd:{}/versions/{}",
            store.keys().prefix(),
            version
        ));
        self.join(node_text, &name, &text, blobs, version).await
    }

    /// The document of `shared_text` (version `version`, named `name`) for this node: joined
    /// with the node file; names the version did not upload are read from the node's disk.
    async fn join(
        &self,
        node_text: &str,
        name: &Path,
        shared_text: &str,
        mut blobs: BTreeMap<String, Vec<u8>>,
        version: u64,
    ) -> Result<Document, ControlError> {
        let (text, parts) = layered(
            Layer {
                name: &self.node_path,
                text: node_text,
            },
            Layer {
                name,
                text: shared_text,
            },
        )?;
        let base = self.node.dir();
        let missing: Vec<String> = referenced_blobs(&text)
            .into_iter()
            .filter(|n| !blobs.contains_key(n))
            .collect();
        let read_base = base.clone();
        let (local, unavailable) = tokio::task::spawn_blocking(move || {
            let mut found = BTreeMap::new();
            let mut unavailable = BTreeMap::new();
            for n in missing {
                let path = read_base.join(&n);
                match std::fs::read(&path) {
                    Ok(b) => {
                        found.insert(n, b);
                    }
                    Err(e) => {
                        unavailable.insert(
                            n,
                            format!(
                                "not in version {version} and not on this node: {}: {e}",
                                path.display()
                            ),
                        );
                    }
                }
            }
            (found, unavailable)
        })
        .await
        .unwrap_or_default();
        blobs.extend(local);
        Ok(Document {
            name: name.to_path_buf(),
            base,
            text,
            blobs,
            unavailable,
            revision: version,
            parts,
        })
    }

    async fn read_node_text(&self) -> Result<String, ConfigError> {
        let path = self.node_path.clone();
        tokio::fs::read_to_string(&path)
            .await
            .map_err(|source| ConfigError::Read { path, source })
    }
}

impl ConfigSource for EtcdSource {
    async fn fetch(&self) -> Result<Document, ConfigError> {
        let inner = &self.inner;
        let node_text = inner.read_node_text().await?;
        let remote = tokio::time::timeout(FETCH_WITHIN, inner.remote(&node_text)).await;
        let err = match remote {
            Ok(Ok(doc)) => {
                let mut s = inner.status();
                s.last_known_good = false;
                // Back on the version it runs (a rollback past a refused one): that refusal
                // is history, not a problem of this node any more.
                if doc.revision == s.version {
                    s.error = None;
                    s.failed_version = None;
                }
                drop(s);
                return Ok(doc);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {FETCH_WITHIN:?}"),
        };
        if !inner.applied_any.load(Ordering::Relaxed) {
            match lkg::load(&inner.lkg_dir()) {
                Ok(Some(saved)) => {
                    tracing::warn!(
                        store = %inner.describe(),
                        error = %err,
                        version = saved.version,
                        "etcd unreachable; starting from the last known good version"
                    );
                    let doc = inner
                        .join(
                            &node_text,
                            &saved.name,
                            &saved.text,
                            saved.blobs,
                            saved.version,
                        )
                        .await
                        .map_err(|e| read_error(inner, e.to_string()))?;
                    inner.status().last_known_good = true;
                    return Ok(doc);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "last known good version unreadable"),
            }
        }
        Err(read_error(inner, err))
    }

    async fn changed(&self) {
        self.inner.changed.notified().await;
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn always_watch(&self) -> bool {
        true
    }

    fn applied(&self, doc: &Document, _snapshot: &Snapshot) {
        let inner = &self.inner;
        inner.applied_any.store(true, Ordering::Relaxed);
        {
            let mut s = inner.status();
            s.version = doc.revision;
            s.applied_at = now_unix();
            s.error = None;
            s.failed_version = None;
        }
        inner.report_now.notify_one();
        // Only versions read from etcd become the last known good one (a start from it must
        // not rewrite it).
        if inner.status().last_known_good {
            return;
        }
        let Some(saved) = lkg::Saved::of(doc) else {
            return;
        };
        let dir = inner.lkg_dir();
        let write = move || {
            if let Err(e) = lkg::store(&dir, &saved) {
                tracing::warn!(error = %e, "could not keep the last known good version");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(write);
            }
            Err(_) => write(),
        }
    }

    async fn stopping(&self) {
        let inner = &self.inner;
        inner.leaving.store(true, Ordering::Relaxed);
        let lease = inner.lease.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let (Some(id), Some(store)) = (lease, inner.store.get()) {
            // Revoking the lease deletes the report: the node leaves the live set now, not
            // when the lease runs out.
            let _ = store.client().lease_revoke(id).await;
        }
    }

    fn refused(&self, doc: &Document, error: &ConfigError) {
        let mut s = self.inner.status();
        s.error = Some(error.to_string());
        s.failed_version = Some(doc.revision);
        self.inner.report_now.notify_one();
    }
}

fn read_error(inner: &Inner, reason: String) -> ConfigError {
    ConfigError::Read {
        path: PathBuf::from(inner.describe()),
        source: std::io::Error::other(reason),
    }
}

/// Watches `P/control/`; every change (and every re-established watch: what happened while it
/// was down is read back in full) wakes `changed`. A compacted or cancelled watch is started
/// again from now, after which the full state is read, so no history is needed.
async fn watch_loop(inner: Arc<Inner>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        if let Ok(store) = inner.store().await {
            let mut client = store.client();
            let key = store.keys().control();
            match client
                .watch(key, Some(WatchOptions::new().with_prefix()))
                .await
            {
                Ok(mut stream) => {
                    backoff = Duration::from_millis(200);
                    inner.changed.notify_one();
                    loop {
                        match stream.message().await {
                            Ok(Some(resp)) => {
                                if resp.canceled() || resp.compact_revision() > 0 {
                                    tracing::info!(
                                        "etcd watch cancelled or compacted; reading everything again"
                                    );
                                    break;
                                }
                                if !resp.events().is_empty() {
                                    inner.changed.notify_one();
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::info!(error = %e, "etcd watch ended");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "etcd watch not started"),
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Writes the node's report every [`REPORT_EVERY`] under a lease, making a new lease whenever
/// etcd lost the old one (an outage longer than its TTL).
async fn report_loop(inner: Arc<Inner>) {
    let mut lease: Option<(i64, LeaseKeeper, LeaseKeepAliveStream)> = None;
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                () = tokio::time::sleep(REPORT_EVERY) => {}
                () = inner.report_now.notified() => {}
            }
        }
        first = false;
        if inner.leaving.load(Ordering::Relaxed) {
            return;
        }
        let Ok(store) = inner.store().await else {
            continue;
        };
        let mut client = store.client();
        if lease.is_none() {
            let Ok(granted) = client.lease_grant(LEASE_TTL_SECS, None).await else {
                continue;
            };
            let Ok((keeper, stream)) = client.lease_keep_alive(granted.id()).await else {
                continue;
            };
            lease = Some((granted.id(), keeper, stream));
            *inner.lease.lock().unwrap_or_else(|p| p.into_inner()) = Some(granted.id());
        }
        let Some((id, keeper, stream)) = lease.as_mut() else {
            continue;
        };
        let value = serde_json::to_vec(&inner.report()).unwrap_or_default();
        let put = client
            .put(
                store.keys().node(&inner.node.name),
                value,
                Some(PutOptions::new().with_lease(*id)),
            )
            .await;
        let renewed = put.is_ok()
            && keeper.keep_alive().await.is_ok()
            && matches!(
                tokio::time::timeout(REPORT_EVERY, stream.message()).await,
                Ok(Ok(Some(r))) if r.ttl() > 0
            );
        if !renewed {
            // etcd lost the lease (an outage longer than its TTL) or the stream broke.
            lease = None;
        }
    }
}

impl Inner {
    fn report(&self) -> NodeReport {
        let status = self.status().clone();
        let stats = self.stats.get().map(|f| f()).unwrap_or_default();
        NodeReport {
            node: self.node.name.clone(),
            pop: self.node.pop.clone(),
            region: self.node.region.clone(),
            tier: self.node.tier.clone(),
            version: status.version,
            applied_at: status.applied_at,
            last_known_good: status.last_known_good,
            error: status.error,
            failed_version: status.failed_version,
            requests: stats.requests,
            status_5xx: stats.status_5xx,
            cpu: report::cpu_seconds(),
            reported_at: now_unix(),
        }
    }
}

/// The last known good version on the node's disk: the shared text, its name and version, and
/// the blobs it was applied with.
mod lkg {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use serde::{Deserialize, Serialize};

    use config::Document;

    pub struct Saved {
        pub version: u64,
        pub name: PathBuf,
        pub text: String,
        pub blobs: BTreeMap<String, Vec<u8>>,
    }

    #[derive(Serialize, Deserialize)]
    struct Manifest {
        version: u64,
        name: PathBuf,
        /// Blob name → file name under `blobs/`.
        blobs: BTreeMap<String, String>,
    }

    impl Saved {
        /// The shared part of a layered document.
        pub fn of(doc: &Document) -> Option<Saved> {
            let shared = doc.parts.get(1)?;
            Some(Saved {
                version: doc.revision,
                name: shared.name.clone(),
                text: doc.text.get(shared.offset..)?.to_string(),
                blobs: doc.blobs.clone(),
            })
        }
    }

    /// Blocking. Written beside the old copy and renamed over it, so a crash leaves one whole
    /// copy or the other.
    pub fn store(dir: &Path, saved: &Saved) -> std::io::Result<()> {
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)?;
        let tmp = parent.join(format!(".lkg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join("blobs"))?;
        std::fs::write(tmp.join("shared.toml"), &saved.text)?;
        let mut names = BTreeMap::new();
        for (i, (name, bytes)) in saved.blobs.iter().enumerate() {
            let file = format!("{i}");
            std::fs::write(tmp.join("blobs").join(&file), bytes)?;
            names.insert(name.clone(), file);
        }
        let manifest = Manifest {
            version: saved.version,
            name: saved.name.clone(),
            blobs: names,
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
        std::fs::write(tmp.join("manifest.json"), json)?;
        let old = parent.join(format!(".lkg-old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&old);
        if dir.exists() {
            std::fs::rename(dir, &old)?;
        }
        std::fs::rename(&tmp, dir)?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// Blocking. `None` when there is none.
    pub fn load(dir: &Path) -> std::io::Result<Option<Saved>> {
        let manifest = match std::fs::read(dir.join("manifest.json")) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let manifest: Manifest =
            serde_json::from_slice(&manifest).map_err(std::io::Error::other)?;
        let text = std::fs::read_to_string(dir.join("shared.toml"))?;
        let mut blobs = BTreeMap::new();
        for (name, file) in manifest.blobs {
            blobs.insert(name, std::fs::read(dir.join("blobs").join(file))?);
        }
        Ok(Some(Saved {
            version: manifest.version,
            name: manifest.name,
            text,
            blobs,
        }))
    }
}
