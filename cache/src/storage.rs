//! The storage seam: what the cache phase may ask of a store. `Store` (memory over disk) is
//! the one implementation today; the edge sees only this trait's operations. A purge takes a
//! [`Purge`] value and answers with a report, so that purges can be recorded, replayed on
//! other nodes and acknowledged.

use std::future::Future;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName};

use crate::encoding::Coding;
use crate::purge::{Purge, PurgeReport};
use crate::rules::StoredMeta;
use crate::store::{CacheError, DiskReader, Fill, Found, Lookup, Ticket};

/// What a scrape shows of each tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    pub memory_objects: u64,
    pub memory_bytes: u64,
    pub memory_budget: u64,
    pub memory_evictions: u64,
    /// Zero without a disk tier.
    pub disk_objects: u64,
    pub disk_bytes: u64,
    pub disk_budget: u64,
    pub disk_evictions: u64,
}

pub trait Storage: Send + Sync {
    /// Objects, bytes, budgets and evictions of each tier, without waiting on anything.
    fn tier_stats(&self) -> TierStats;
    /// Bytes held by the memory tier (approximate), after pending bookkeeping is done.
    fn memory_bytes(&self) -> impl Future<Output = u64> + Send;
    /// The same without waiting for pending bookkeeping: for scrapes, which must not make a
    /// worker process a backlog (a large purge leaves one).
    fn memory_bytes_now(&self) -> u64;
    /// Bytes held by the disk tier.
    fn disk_bytes(&self) -> u64;
    /// A ticket for an origin request that may fill the cache: take it before sending.
    fn ticket(&self) -> Ticket;
    /// The stored response for a request (its Vary values select the variant); a fenced
    /// object is a miss.
    fn lookup(&self, primary: &str, req_headers: &HeaderMap)
    -> impl Future<Output = Lookup> + Send;
    /// The stored `coding` variant of an identity object, if made from the same body.
    fn lookup_encoded(
        &self,
        primary: &str,
        identity: &Found,
        coding: Coding,
    ) -> impl Future<Output = Option<Found>> + Send;
    /// Starts storing a response to the origin request that took `ticket`.
    fn fill(
        &self,
        primary: &str,
        meta: StoredMeta,
        vary_names: Vec<HeaderName>,
        ticket: Ticket,
    ) -> Fill;
    /// Starts storing the `coding` variant of an identity object of `primary`.
    fn fill_encoded(
        &self,
        primary: &str,
        identity_variant: &str,
        generation: u64,
        coding: Coding,
    ) -> Fill;
    /// Starts storing a part of `primary` (a slice of a large object, its slice index) under
    /// its own key `part`, fenced by `primary`'s purges.
    fn fill_part(&self, primary: &str, part: &str, meta: StoredMeta, ticket: Ticket) -> Fill;
    /// Replaces a variant's metadata after a 304 to the revalidation that took `ticket`.
    fn update_meta(
        &self,
        primary: &str,
        found: &Found,
        meta: StoredMeta,
        ticket: Ticket,
    ) -> impl Future<Output = ()> + Send;
    /// In effect when it returns: fills that started earlier publish nothing.
    fn purge(&self, purge: &Purge) -> impl Future<Output = PurgeReport> + Send;
    /// A whole (small) disk object, verified.
    fn read_disk(&self, found: &Found) -> impl Future<Output = Result<Bytes, CacheError>> + Send;
    /// A streaming reader of a disk object (verified at its end).
    fn open_disk(
        &self,
        found: &Found,
    ) -> impl Future<Output = Result<DiskReader, CacheError>> + Send;
    /// (tags, tagged objects, tag references) in the tag index, for metrics.
    fn tag_index_size(&self) -> (usize, usize, usize);
    /// Waits for background writes started so far (shutdown).
    fn flush(&self) -> impl Future<Output = ()> + Send;
}
