//! The control plane of a multi-POP deployment, over etcd: versioned config documents that
//! nodes watch and swap in ([`EtcdSource`], a `config::ConfigSource`), the reports nodes write
//! about what they run ([`report`]), and the operator's side of it (`push`, `history`, `diff`,
//! `rollback`, `status`; the `edge config` commands call them).
//!
//! Layout under the deployment's prefix `P` (see [`Keys`]):
//! - `P/blobs/<sha256>`: certificates, keys and document texts, content-addressed, so a version
//!   is written as many small puts and one small transaction (etcd caps a transaction at 128
//!   operations and a request at ~1.5 MiB);
//! - `P/versions/<N>`: the record of version N (who, when, why, its text and blobs by hash),
//!   never changed once written;
//! - `P/control/active`: the version every node runs, and the one before it;
//! - `P/nodes/<name>`: each node's report, under a lease, so a dead node's report disappears.

mod bus;
mod diff;
mod error;
mod keys;
mod node_file;
pub mod ops;
pub mod report;
pub mod rollout;
mod source;
mod store;

pub use bus::{Applied, Fanout, PurgeBus, PurgeEvent};
pub use diff::unified_diff;
pub use error::ControlError;
pub use keys::Keys;
pub use node_file::{NodeFile, StoreSettings, parse_store_url};
pub use report::{NodeReport, ReportStats};
pub use source::{ControlStatus, EtcdSource};
pub use store::{ActiveRecord, Store, VersionRecord};
