//! Address ranges for trust decisions (`node.trusted_peers`). The engine lives in `edge-core`
//! (one ACL engine shared with geo access lists and site rules); re-exported here so callers
//! keep their paths.

pub use edge_core::cidr::{Cidr, CidrSet};
