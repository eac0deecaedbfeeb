#![forbid(unsafe_code)]
//! Primitives every room shares, so that no room has to depend on another for them: the body
//! type that streams through the data plane, the clock, and IP address ranges (`cidr`).

pub mod body;
pub mod cidr;
pub mod clock;
pub mod proxy_protocol;
pub mod query;

/// A map whose keys come from config (site hosts, pool and site names), looked up with what
/// clients send on every request. Clients never insert, so SipHash's resistance to chosen
/// collisions buys nothing here; foldhash hashes a host in ~30 instructions where SipHash took
/// ~180 (five such lookups per hit). Maps clients can fill keep the standard hasher.
pub type ConfigMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
