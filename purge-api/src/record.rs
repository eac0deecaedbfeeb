//! Records of purges done: the answer to `POST /purge`, kept in a bounded journal for
//! `GET /purge/{id}`.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::request::{PurgeRequest, Targets};

/// Records kept by default.
pub const DEFAULT_JOURNAL_CAPACITY: usize = 10_000;
/// Approximate bytes of records kept by default: a request may be up to 64 KiB, so the count
/// alone would allow over half a gigabyte.
pub const DEFAULT_JOURNAL_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    Failed,
    /// Fanned out, and some live nodes had not acknowledged it by the deadline (`pending`).
    Partial,
}

/// One node's acknowledgement of a fanned-out purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAck {
    pub node: String,
    pub pop: String,
    pub tier: String,
    pub applied_at_unix_ms: u64,
    /// Objects purged on that node.
    pub purged: u64,
    pub took_us: u64,
    /// Why the node could not apply it (it purged nothing), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One purge and its outcome. Field order is the JSON order: the summary comes first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeRecord {
    pub id: String,
    pub status: Status,
    /// Objects purged on this node.
    pub purged: u64,
    pub took_us: u64,
    /// Name of the token that asked.
    pub token: String,
    pub at_unix_ms: u64,
    pub request: PurgeRequest,
    /// With the control plane: every node's acknowledgement (shields first), and the live
    /// nodes that had not acknowledged by the deadline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acks: Vec<NodeAck>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
}

impl PurgeRecord {
    /// Roughly what the record holds on the heap, for the journal's byte bound.
    fn approx_bytes(&self) -> usize {
        let items: usize = match &self.request.targets {
            Targets::Urls(urls) => urls
                .iter()
                .map(|u| 64 + u.host.len() + u.path_and_query.len())
                .sum(),
            Targets::Prefixes(p) => p
                .iter()
                .map(|p| 48 + p.host.len() + p.path_prefix.len())
                .sum(),
            Targets::Tags(items) | Targets::Hosts(items) => {
                items.iter().map(|s| 24 + s.len()).sum()
            }
            Targets::Everything { sites } => sites.iter().flatten().map(|s| 24 + s.len()).sum(),
        };
        // The id is held twice: in the record and in the eviction order.
        128 + 2 * self.id.len() + self.token.len() + items
    }
}

/// A bounded journal of recent records; the oldest go first.
#[derive(Debug)]
pub struct Journal {
    capacity: usize,
    max_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    records: HashMap<String, PurgeRecord>,
    order: VecDeque<String>,
    bytes: usize,
}

impl Default for Journal {
    fn default() -> Journal {
        Journal::new(DEFAULT_JOURNAL_CAPACITY)
    }
}

impl Journal {
    /// At most `capacity` records (0 keeps none) and [`DEFAULT_JOURNAL_BYTES`].
    pub fn new(capacity: usize) -> Journal {
        Journal::with_max_bytes(capacity, DEFAULT_JOURNAL_BYTES)
    }

    /// At most `capacity` records and about `max_bytes`; the newest record is kept even if
    /// it alone is larger.
    pub fn with_max_bytes(capacity: usize, max_bytes: usize) -> Journal {
        Journal {
            capacity,
            max_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Adds a record, or replaces the one with the same id (keeping its place).
    pub fn insert(&self, record: PurgeRecord) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        let size = record.approx_bytes();
        if let Some(old) = inner.records.insert(record.id.clone(), record.clone()) {
            inner.bytes = inner.bytes.saturating_sub(old.approx_bytes());
        } else {
            inner.order.push_back(record.id);
        }
        inner.bytes += size;
        while inner.order.len() > self.capacity
            || (inner.bytes > self.max_bytes && inner.order.len() > 1)
        {
            let Some(id) = inner.order.pop_front() else {
                break;
            };
            if let Some(old) = inner.records.remove(&id) {
                inner.bytes = inner.bytes.saturating_sub(old.approx_bytes());
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<PurgeRecord> {
        self.lock().records.get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// The `n` records added last, newest first (the status page lists them).
    pub fn recent(&self, n: usize) -> Vec<PurgeRecord> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.records.get(id))
            .take(n)
            .cloned()
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A fresh id, `node-sequence-suffix`, URL-safe. The sequence is process-wide, so ids
    /// are unique in the process even across journals (a config reload may make a new
    /// one); the suffix is a hash of it keyed per process, so a restarted node does not
    /// reuse the ids of its last life.
    pub fn next_id(&self, node: &str) -> String {
        static SEQUENCE: AtomicU64 = AtomicU64::new(1);
        static KEY: OnceLock<RandomState> = OnceLock::new();
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let suffix = KEY.get_or_init(RandomState::new).hash_one(sequence);
        let mut id = String::with_capacity(node.len() + 32);
        for c in node.chars().take(64) {
            id.push(
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~') {
                    c
                } else {
                    '_'
                },
            );
        }
        if id.is_empty() {
            id.push_str("node");
        }
        id.push('-');
        push_base36(&mut id, sequence);
        id.push('-');
        // Always six base-36 digits (about 31 bits of the hash): enough to tell lives apart.
        let (low, high) = (36u64.pow(5), 36u64.pow(6));
        push_base36(&mut id, low + suffix % (high - low));
        id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update leaves the maps consistent before it can panic, so poison is harmless.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn push_base36(out: &mut String, mut n: u64) {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut buf = [0u8; 13];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[(n % 36) as usize];
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.extend(buf[i..].iter().map(|&b| char::from(b)));
}
