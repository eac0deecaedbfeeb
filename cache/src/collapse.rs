//! Request collapsing: concurrent misses for one key make one origin request. The first caller
//! leads; the others follow and learn how the fill ended. Hit-for-pass remembers keys whose
//! responses were uncacheable, so that later requests for them are not serialised behind a
//! leader that will never store anything.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

/// How a leader's fetch went, as its followers see it.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The object is streaming: read it from here as it arrives.
    Streaming(Arc<crate::inflight::Inflight>),
    /// Stored: look it up again.
    Stored,
    /// The response may not be stored: go to the origin yourself.
    Uncacheable,
    /// The fetch failed or was abandoned: go to the origin yourself.
    Failed,
}

impl PartialEq for Outcome {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Outcome::Streaming(a), Outcome::Streaming(b)) => Arc::ptr_eq(a, b),
            (Outcome::Stored, Outcome::Stored)
            | (Outcome::Uncacheable, Outcome::Uncacheable)
            | (Outcome::Failed, Outcome::Failed) => true,
            _ => false,
        }
    }
}

type Slot = watch::Receiver<Option<Outcome>>;
/// A slot, the number of the leader that owns it (a leader only ever removes its own) and the
/// purge clock's reading when it began.
type Slots = HashMap<String, (u64, u64, Slot)>;

/// Orders fetches and purges (the store's tickets): a fetch that began before the last purge
/// may carry purged content, so nobody arriving after that purge follows it.
pub trait PurgeClock: Send + Sync {
    /// The current reading (the next ticket).
    fn now(&self) -> u64;
    /// The fence of the most recent purge of any kind.
    fn last_purge(&self) -> u64;
}

#[derive(Clone, Default)]
pub struct Collapser {
    inflight: Arc<Mutex<Slots>>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
    clock: Option<Arc<dyn PurgeClock>>,
}

pub enum Role {
    Leader(Leader),
    Follower(Follower),
}

impl Collapser {
    /// With a purge clock: a fetch in flight when a purge comes is not followed by requests
    /// that arrive after it (the purge may cover it: tags are not known until its response).
    pub fn with_clock(clock: Arc<dyn PurgeClock>) -> Collapser {
        Collapser {
            clock: Some(clock),
            ..Collapser::default()
        }
    }

    /// Leads the fetch for `key`, or follows the one in flight.
    pub fn join(&self, key: &str) -> Role {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Ok(mut map) = self.inflight.lock() else {
            // A poisoned map only loses collapsing, never correctness.
            let (tx, _) = watch::channel(None);
            return Role::Leader(Leader {
                key: key.to_string(),
                id,
                tx,
                owner: None,
            });
        };
        let (began, last_purge) = self
            .clock
            .as_ref()
            .map_or((0, 0), |c| (c.now(), c.last_purge()));
        // One hash of the key for the lookup and the insert (SipHash: clients choose keys).
        let slot = match map.entry(key.to_string()) {
            Entry::Occupied(e) if e.get().1 >= last_purge => {
                return Role::Follower(Follower {
                    rx: e.get().2.clone(),
                });
            }
            slot => slot,
        };
        // Nobody fetching, or the fetch began before a purge: lead a new one. (The old leader
        // still finishes for its own followers; it no longer owns the slot.)
        let (tx, rx) = watch::channel(None);
        slot.insert_entry((id, began, rx));
        Role::Leader(Leader {
            key: key.to_string(),
            id,
            tx,
            owner: Some(self.inflight.clone()),
        })
    }

    /// Requests arriving from now on do not follow the fetch in flight for `key` (a purge made
    /// its answer stale): the next one leads a fetch of its own. Followers already waiting
    /// keep theirs.
    pub fn forget(&self, key: &str) {
        if let Ok(mut map) = self.inflight.lock() {
            map.remove(key);
        }
    }

    /// Leads only if nobody else is fetching `key` (background refreshes).
    pub fn try_lead(&self, key: &str) -> Option<Leader> {
        match self.join(key) {
            Role::Leader(l) => Some(l),
            Role::Follower(_) => None,
        }
    }

    pub fn in_flight(&self) -> usize {
        self.inflight.lock().map_or(0, |m| m.len())
    }
}

/// The one fetch for a key. Dropping it unfinished tells followers it failed.
pub struct Leader {
    key: String,
    id: u64,
    tx: watch::Sender<Option<Outcome>>,
    owner: Option<Arc<Mutex<Slots>>>,
}

impl Leader {
    pub fn complete(mut self, outcome: Outcome) {
        self.release(outcome);
    }

    /// Tells followers (present and arriving) where the object streams, while staying the
    /// leader until `complete`.
    pub fn announce(&self, inflight: Arc<crate::inflight::Inflight>) {
        let _ = self.tx.send(Some(Outcome::Streaming(inflight)));
    }

    fn release(&mut self, outcome: Outcome) {
        if let Some(owner) = self.owner.take() {
            // Removed with one hash; put back in the rare case a later leader owns it now.
            if let Ok(mut map) = owner.lock()
                && let Some(slot) = map.remove(&self.key)
                && slot.0 != self.id
            {
                map.insert(std::mem::take(&mut self.key), slot);
            }
            let _ = self.tx.send(Some(outcome));
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.release(Outcome::Failed);
    }
}

pub struct Follower {
    rx: Slot,
}

impl Follower {
    /// Waits for the leader, at most `timeout` (then `Failed`).
    pub async fn wait(mut self, timeout: Duration) -> Outcome {
        let waited = tokio::time::timeout(timeout, self.rx.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(v)) => v.clone().unwrap_or(Outcome::Failed),
            _ => Outcome::Failed,
        }
    }
}

/// Keys recently found uncacheable.
#[derive(Clone)]
pub struct HitForPass {
    keys: moka::future::Cache<String, ()>,
}

impl HitForPass {
    pub fn new(ttl: Duration, capacity: u64) -> Self {
        HitForPass {
            keys: moka::future::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub async fn mark(&self, key: &str) {
        self.keys.insert(key.to_string(), ()).await;
    }

    pub async fn forget(&self, key: &str) {
        self.keys.invalidate(key).await;
    }

    pub async fn is_marked(&self, key: &str) -> bool {
        self.keys.get(key).await.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct Clock {
        now: AtomicU64,
        last: AtomicU64,
    }

    impl PurgeClock for Clock {
        fn now(&self) -> u64 {
            self.now.fetch_add(1, Ordering::SeqCst)
        }
        fn last_purge(&self) -> u64 {
            self.last.load(Ordering::SeqCst)
        }
    }

    #[tokio::test]
    async fn nobody_arriving_after_a_purge_follows_a_fetch_that_began_before_it() {
        let clock = Arc::new(Clock::default());
        let c = Collapser::with_clock(clock.clone());
        let Role::Leader(old) = c.join("k") else {
            panic!("lead")
        };
        let Role::Follower(before) = c.join("k") else {
            panic!("before the purge: follows")
        };
        // A purge: its fence is the clock's next reading.
        clock
            .last
            .store(clock.now.fetch_add(1, Ordering::SeqCst), Ordering::SeqCst);
        let Role::Leader(new) = c.join("k") else {
            panic!("after the purge: leads a fetch of its own")
        };
        let Role::Follower(after) = c.join("k") else {
            panic!("follows the new fetch")
        };
        // The old leader ends: its follower hears, and the new slot stays.
        old.complete(Outcome::Stored);
        assert_eq!(before.wait(Duration::from_secs(5)).await, Outcome::Stored);
        assert_eq!(
            c.in_flight(),
            1,
            "the old leader does not remove the new slot"
        );
        new.complete(Outcome::Uncacheable);
        assert_eq!(
            after.wait(Duration::from_secs(5)).await,
            Outcome::Uncacheable
        );
    }

    #[tokio::test]
    async fn one_leader_many_followers() {
        let c = Collapser::default();
        let Role::Leader(leader) = c.join("k") else {
            panic!("first must lead")
        };
        let followers: Vec<_> = (0..10)
            .map(|_| match c.join("k") {
                Role::Follower(f) => tokio::spawn(f.wait(Duration::from_secs(5))),
                Role::Leader(_) => panic!("second leader"),
            })
            .collect();
        assert!(
            matches!(c.join("other"), Role::Leader(_)),
            "keys are independent"
        );
        leader.complete(Outcome::Stored);
        for f in followers {
            assert_eq!(f.await.expect("join"), Outcome::Stored);
        }
        assert_eq!(c.in_flight(), 0);
        assert!(
            matches!(c.join("k"), Role::Leader(_)),
            "a finished key can be led again"
        );
    }

    #[tokio::test]
    async fn abandoned_leader_fails_followers_and_timeouts_are_bounded() {
        let c = Collapser::default();
        let Role::Leader(leader) = c.join("k") else {
            panic!("lead")
        };
        let Role::Follower(f) = c.join("k") else {
            panic!("follow")
        };
        drop(leader);
        assert_eq!(f.wait(Duration::from_secs(5)).await, Outcome::Failed);

        let Role::Leader(_slow) = c.join("s") else {
            panic!("lead")
        };
        let Role::Follower(f) = c.join("s") else {
            panic!("follow")
        };
        assert_eq!(f.wait(Duration::from_millis(20)).await, Outcome::Failed);
        assert!(c.try_lead("s").is_none(), "still led by the slow one");
    }

    #[tokio::test]
    async fn a_forgotten_fetch_is_not_followed_and_its_end_does_not_free_the_new_one() {
        let c = Collapser::default();
        let Role::Leader(old) = c.join("k") else {
            panic!("lead")
        };
        let Role::Follower(early) = c.join("k") else {
            panic!("follow")
        };
        c.forget("k");
        let Role::Leader(new) = c.join("k") else {
            panic!("after forget, the next request leads")
        };
        old.complete(Outcome::Stored);
        assert_eq!(early.wait(Duration::from_secs(1)).await, Outcome::Stored);
        assert!(
            matches!(c.join("k"), Role::Follower(_)),
            "the old leader's end left the new fetch in place"
        );
        new.complete(Outcome::Stored);
        assert_eq!(c.in_flight(), 0);
    }

    #[tokio::test]
    async fn hit_for_pass_expires() {
        let h = HitForPass::new(Duration::from_millis(50), 100);
        h.mark("k").await;
        assert!(h.is_marked("k").await);
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(!h.is_marked("k").await);
    }
}
