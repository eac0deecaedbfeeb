//! Counts per client address, in 16 locked shards (never one global lock): how many
//! connections, or handshakes, an address has open. An address at zero takes no room.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

const SHARDS: usize = 16;

#[derive(Default)]
pub struct PerAddress {
    shards: [Mutex<HashMap<IpAddr, u32>>; SHARDS],
}

fn shard(ip: IpAddr) -> usize {
    let bits = match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    ((bits ^ (bits >> 64)) as usize).wrapping_mul(0x9E37_79B9) >> 7 & (SHARDS - 1)
}

impl PerAddress {
    /// Counts one more for `ip` unless it already has `cap`; false when it has.
    pub fn try_add(&self, ip: IpAddr, cap: u32) -> bool {
        let mut map = self.shards[shard(ip)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(ip).or_insert(0);
        if *n >= cap {
            if *n == 0 {
                map.remove(&ip);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// Gives one back.
    pub fn remove(&self, ip: IpAddr) {
        let mut map = self.shards[shard(ip)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }

    /// No address holds anything.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.shards
            .iter()
            .all(|m| m.lock().unwrap_or_else(PoisonError::into_inner).is_empty())
    }
}
