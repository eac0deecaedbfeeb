//! Purge requests as values: what to take out of the cache and how, so that a purge can be
//! recorded, replayed on another node and acknowledged. The store answers each with a report.

use crate::store::Ticket;

/// Which objects a purge covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeScope {
    /// Everything one primary key (a URL after key normalisation) can produce: every `Vary`
    /// variant and every stored encoding of each.
    Key(String),
}

/// What happens to the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeMode {
    /// Gone: the next request fetches from the origin.
    Hard,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purge {
    pub scope: PurgeScope,
    pub mode: PurgeMode,
}

impl Purge {
    pub fn hard_key(primary: impl Into<String>) -> Purge {
        Purge {
            scope: PurgeScope::Key(primary.into()),
            mode: PurgeMode::Hard,
        }
    }
}

/// What a purge did. It is in effect once this exists: the fence rejects fills that started
/// before it, whatever physical removal is still to come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    /// Objects (variants and encodings) removed.
    pub objects: usize,
    /// Fills and stored objects whose ticket is older than this are invalid for the scope.
    pub fence: Ticket,
}
