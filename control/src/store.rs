//! The store's records and the calls that read and write them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, SortOrder, SortTarget, Txn, TxnOp,
};
use serde::{Deserialize, Serialize};

use crate::{ControlError, Keys, StoreSettings};

/// One version of the shared document: immutable once written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: u64,
    pub author: String,
    pub message: String,
    /// Unix seconds.
    pub created_at: u64,
    /// SHA-256 (hex) of the TOML text, stored as a blob.
    pub text: String,
    /// Certificate, key and CA files by the name the text gives them, as blob hashes.
    pub blobs: BTreeMap<String, String>,
    /// Names the text refers to that were not uploaded: each node reads them from its own disk,
    /// relative to its node file.
    #[serde(default)]
    pub local: Vec<String>,
}

/// What every node runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveRecord {
    pub version: u64,
    /// The version active before this one (what `rollback` goes back to).
    pub previous: Option<u64>,
    pub by: String,
    /// Unix seconds.
    pub at: u64,
}

/// A connection to one deployment's keys in etcd. Cheap to clone (one channel underneath).
#[derive(Clone)]
pub struct Store {
    client: Client,
    keys: Keys,
}

pub(crate) fn now_unix() -> u64 {
    edge_core::clock::unix_ms() / 1000
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, value: &[u8]) -> Result<T, ControlError> {
    serde_json::from_slice(value).map_err(|e| ControlError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Our own plain records: serialisation cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

impl Store {
    /// Connects with the settings of a node file (`base`: where its relative paths start).
    /// Without a user this does not wait for etcd (calls fail until it answers); with one, it
    /// authenticates now, so it fails while etcd is down.
    pub async fn connect(settings: &StoreSettings, base: &Path) -> Result<Store, ControlError> {
        if settings.endpoints.is_empty() {
            return Err(ControlError::Settings(
                "no etcd endpoint: give --store etcd://HOST:PORT/PREFIX or [store] endpoints"
                    .into(),
            ));
        }
        let read = |p: &Path| {
            let path = if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            };
            std::fs::read(&path).map_err(|source| ControlError::Io { path, source })
        };
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3))
            .with_keep_alive_while_idle(true)
            // etcd's default (simple) auth tokens do not survive its restart: log in again.
            .with_auto_token_refresh(true);
        let tls = settings.ca_file.is_some();
        if let Some(ca) = &settings.ca_file {
            let mut t = etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
            match (&settings.cert_file, &settings.key_file) {
                (Some(c), Some(k)) => {
                    t = t.identity(etcd_client::Identity::from_pem(read(c)?, read(k)?));
                }
                (None, None) => {}
                _ => {
                    return Err(ControlError::Settings(
                        "[store] cert_file and key_file go together".into(),
                    ));
                }
            }
            options = options.with_tls(t);
        }
        if let Some(user) = &settings.user {
            let Some(pw) = &settings.password_file else {
                return Err(ControlError::Settings(
                    "[store] user needs password_file".into(),
                ));
            };
            let password = String::from_utf8_lossy(&read(pw)?).trim().to_string();
            options = options.with_user(user.clone(), password);
        }
        let scheme = if tls { "https" } else { "http" };
        let endpoints: Vec<String> = settings
            .endpoints
            .iter()
            .map(|e| format!("{scheme}://{e}"))
            .collect();
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(ControlError::etcd("connect"))?;
        let keys = Keys::new(settings.prefix.as_deref().unwrap_or("/edge"));
        Ok(Store { client, keys })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    async fn get_one(&self, key: &str) -> Result<Option<(Vec<u8>, i64)>, ControlError> {
        let mut c = self.client.clone();
        let resp = c
            .get(key, None)
            .await
            .map_err(ControlError::etcd(format!("get {key}")))?;
        Ok(resp
            .kvs()
            .first()
            .map(|kv| (kv.value().to_vec(), kv.mod_revision())))
    }

    /// Stores `bytes` under its hash (idempotent) and returns the hash.
    pub async fn put_blob(&self, bytes: &[u8]) -> Result<String, ControlError> {
        let sha = sha256_hex(bytes);
        let key = self.keys.blob(&sha);
        let mut c = self.client.clone();
        c.put(key.clone(), bytes, None)
            .await
            .map_err(ControlError::etcd(format!("put {key}")))?;
        Ok(sha)
    }

    /// The blob with hash `sha`, checked against it.
    pub async fn blob(&self, sha: &str) -> Result<Vec<u8>, ControlError> {
        let key = self.keys.blob(sha);
        let Some((bytes, _)) = self.get_one(&key).await? else {
            return Err(ControlError::Corrupt {
                key,
                reason: "missing".into(),
            });
        };
        if sha256_hex(&bytes) != sha {
            return Err(ControlError::Corrupt {
                key,
                reason: "content does not match its hash".into(),
            });
        }
        Ok(bytes)
    }

    /// The highest version number written so far (0: none).
    pub async fn last_version(&self) -> Result<u64, ControlError> {
        let mut c = self.client.clone();
        let opts = GetOptions::new()
            .with_prefix()
            .with_keys_only()
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .with_limit(1);
        let resp = c
            .get(self.keys.versions(), Some(opts))
            .await
            .map_err(ControlError::etcd("list versions"))?;
        Ok(resp
            .kvs()
            .first()
            .and_then(|kv| kv.key_str().ok())
            .and_then(|k| self.keys.version_of(k))
            .unwrap_or(0))
    }

    /// Writes a new version (blobs first, then one small transaction for the record, which also
    /// makes it active when `activate`). Returns its number.
    pub async fn create_version(
        &self,
        text: &str,
        blobs: &BTreeMap<String, Vec<u8>>,
        local: Vec<String>,
        author: &str,
        message: &str,
        activate: bool,
    ) -> Result<u64, ControlError> {
        let text_sha = self.put_blob(text.as_bytes()).await?;
        let mut hashes = BTreeMap::new();
        for (name, bytes) in blobs {
            hashes.insert(name.clone(), self.put_blob(bytes).await?);
        }
        loop {
            let n = self.last_version().await? + 1;
            let record = VersionRecord {
                version: n,
                author: author.to_string(),
                message: message.to_string(),
                created_at: now_unix(),
                text: text_sha.clone(),
                blobs: hashes.clone(),
                local: local.clone(),
            };
            let key = self.keys.version(n);
            let mut ops = vec![TxnOp::put(key.clone(), encode(&record), None)];
            let mut compares = vec![Compare::create_revision(key, CompareOp::Equal, 0)];
            if activate {
                let current = self.active().await?;
                let (rec, rev) = match current {
                    Some((a, rev)) => (Some(a.version), rev),
                    None => (None, 0),
                };
                let active = ActiveRecord {
                    version: n,
                    previous: rec,
                    by: author.to_string(),
                    at: now_unix(),
                };
                ops.push(TxnOp::put(self.keys.active(), encode(&active), None));
                compares.push(Compare::mod_revision(
                    self.keys.active(),
                    CompareOp::Equal,
                    rev,
                ));
            }
            let mut c = self.client.clone();
            let resp = c
                .txn(Txn::new().when(compares).and_then(ops))
                .await
                .map_err(ControlError::etcd("write version"))?;
            if resp.succeeded() {
                return Ok(n);
            }
            // Another push took the number (or moved the pointer) first: read again.
        }
    }

    pub async fn version(&self, n: u64) -> Result<VersionRecord, ControlError> {
        let key = self.keys.version(n);
        match self.get_one(&key).await? {
            Some((value, _)) => decode(&key, &value),
            None => Err(ControlError::NoSuchVersion(n)),
        }
    }

    /// Every version, oldest first.
    pub async fn versions(&self) -> Result<Vec<VersionRecord>, ControlError> {
        let mut c = self.client.clone();
        let opts = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Ascend);
        let resp = c
            .get(self.keys.versions(), Some(opts))
            .await
            .map_err(ControlError::etcd("list versions"))?;
        resp.kvs()
            .iter()
            .map(|kv| decode(&String::from_utf8_lossy(kv.key()), kv.value()))
            .collect()
    }

    /// The active pointer and its mod revision.
    pub async fn active(&self) -> Result<Option<(ActiveRecord, i64)>, ControlError> {
        let key = self.keys.active();
        match self.get_one(&key).await? {
            Some((value, rev)) => Ok(Some((decode(&key, &value)?, rev))),
            None => Ok(None),
        }
    }

    /// Makes version `n` active (it must exist).
    pub async fn activate(&self, n: u64, by: &str) -> Result<ActiveRecord, ControlError> {
        self.version(n).await?;
        loop {
            let (previous, rev) = match self.active().await? {
                Some((a, rev)) => (Some(a.version), rev),
                None => (None, 0),
            };
            let active = ActiveRecord {
                version: n,
                previous,
                by: by.to_string(),
                at: now_unix(),
            };
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    self.keys.active(),
                    CompareOp::Equal,
                    rev,
                )])
                .and_then([TxnOp::put(self.keys.active(), encode(&active), None)]);
            let mut c = self.client.clone();
            let resp = c.txn(txn).await.map_err(ControlError::etcd("activate"))?;
            if resp.succeeded() {
                return Ok(active);
            }
        }
    }

    /// Version `n`'s record, text and uploaded blobs.
    pub async fn document(
        &self,
        n: u64,
    ) -> Result<(VersionRecord, String, BTreeMap<String, Vec<u8>>), ControlError> {
        let record = self.version(n).await?;
        let text = self.blob(&record.text).await?;
        let text = String::from_utf8(text).map_err(|_| ControlError::Corrupt {
            key: self.keys.blob(&record.text),
            reason: "document text is not UTF-8".into(),
        })?;
        let mut blobs = BTreeMap::new();
        for (name, sha) in &record.blobs {
            blobs.insert(name.clone(), self.blob(sha).await?);
        }
        Ok((record, text, blobs))
    }

    /// Every node's current report.
    pub async fn reports(&self) -> Result<Vec<crate::NodeReport>, ControlError> {
        let mut c = self.client.clone();
        let resp = c
            .get(self.keys.nodes(), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(ControlError::etcd("list node reports"))?;
        resp.kvs()
            .iter()
            .map(|kv| decode(&String::from_utf8_lossy(kv.key()), kv.value()))
            .collect()
    }
}
