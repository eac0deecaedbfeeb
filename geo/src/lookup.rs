//! The node's databases, swapped whole when a file changes, and a bounded per-address cache.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::{Database, Geo, GeoError};

/// Cache slots (a power of two): direct-mapped by a hash of the address, so the cache never
/// grows and a lookup takes one uncontended slot lock, never a global one.
const SLOTS: usize = 4096;

/// A file as last seen: a replaced file (atomic rename) has a new inode; a rewrite in place a
/// new size or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path)?;
    Ok(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

struct Loaded {
    generation: u64,
    dbs: Vec<(PathBuf, Stamp, Arc<Database>)>,
}

#[derive(Clone, Copy)]
struct Slot {
    ip: IpAddr,
    generation: u64,
    geo: Geo,
}

/// What [`GeoIp::refresh`] did.
#[derive(Debug, Default)]
pub struct Refreshed {
    /// Files read and swapped in.
    pub loaded: Vec<PathBuf>,
    /// Files that could not be used; the previous copy (if any) keeps answering.
    pub failed: Vec<GeoError>,
}

/// Per path: a stamp seen once and waiting to be seen again before it is read, and the stamp
/// of a file that failed to load (not read again until it changes).
#[derive(Default)]
struct Watch {
    pending: Vec<(PathBuf, Stamp)>,
    failed: Vec<(PathBuf, Stamp)>,
}

pub struct GeoIp {
    loaded: ArcSwap<Loaded>,
    cache: Box<[Mutex<Option<Slot>>]>,
    watch: Mutex<Watch>,
    pub lookups: AtomicU64,
    pub cache_hits: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
}

impl Default for GeoIp {
    fn default() -> Self {
        GeoIp {
            loaded: ArcSwap::from_pointee(Loaded {
                generation: 0,
                dbs: Vec::new(),
            }),
            cache: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
            watch: Mutex::default(),
            lookups: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        }
    }
}

fn slot_of(ip: IpAddr) -> usize {
    let bits = match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    let folded = (bits as u64) ^ ((bits >> 64) as u64);
    (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize & (SLOTS - 1)
}

impl GeoIp {
    /// Whether any database is loaded (without one, every lookup is empty).
    pub fn is_enabled(&self) -> bool {
        !self.loaded.load().dbs.is_empty()
    }

    /// The databases loaded, by path, with their `database_type`.
    pub fn databases(&self) -> Vec<(PathBuf, String)> {
        self.loaded
            .load()
            .dbs
            .iter()
            .map(|(p, _, db)| (p.clone(), db.database_type().to_string()))
            .collect()
    }

    /// What the databases say about `ip`: the first database that knows a field gives it.
    pub fn lookup(&self, ip: IpAddr) -> Geo {
        let loaded = self.loaded.load();
        if loaded.dbs.is_empty() {
            return Geo::default();
        }
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let ip = ip.to_canonical();
        let slot = &self.cache[slot_of(ip)];
        if let Some(s) = *slot.lock().unwrap_or_else(PoisonError::into_inner)
            && s.ip == ip
            && s.generation == loaded.generation
        {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return s.geo;
        }
        let geo = loaded
            .dbs
            .iter()
            .fold(Geo::default(), |g, (_, _, db)| g.or(db.lookup(ip)));
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(Slot {
            ip,
            generation: loaded.generation,
            geo,
        });
        geo
    }

    /// Brings the loaded databases in line with `paths` (in order): new paths are read now; a
    /// changed file is read once it has looked the same on two calls in a row and did not
    /// change while being read (so a file being copied or rewritten in place is not read half
    /// written); a file that fails to parse leaves the previous copy answering. Blocking file
    /// I/O: call it off the request threads.
    pub fn refresh(&self, paths: &[PathBuf]) -> Refreshed {
        let mut report = Refreshed::default();
        let mut watch = self.watch.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.loaded.load_full();
        let mut next = Vec::with_capacity(paths.len());
        let mut changed = current.dbs.len() != paths.len();
        for path in paths {
            let old = current.dbs.iter().find(|(p, _, _)| p == path);
            let now = match stamp(path) {
                Ok(s) => s,
                Err(e) => {
                    if !watch.failed.iter().any(|(p, _)| p == path) {
                        report.failed.push(GeoError::Read {
                            path: path.clone(),
                            source: e,
                        });
                        watch.failed.push((
                            path.clone(),
                            Stamp {
                                dev: 0,
                                ino: 0,
                                size: 0,
                                mtime_ns: 0,
                            },
                        ));
                    }
                    if let Some(o) = old {
                        next.push(o.clone());
                    } else {
                        changed = true;
                    }
                    continue;
                }
            };
            if let Some(o) = old.filter(|(_, s, _)| *s == now) {
                next.push(o.clone());
                continue;
            }
            if watch.failed.iter().any(|(p, s)| p == path && *s == now) {
                if let Some(o) = old {
                    next.push(o.clone());
                }
                continue;
            }
            // A file already serving must look the same twice before it is read again.
            let seen_before = watch.pending.iter().any(|(p, s)| p == path && *s == now);
            if old.is_some() && !seen_before {
                watch.pending.retain(|(p, _)| p != path);
                watch.pending.push((path.clone(), now));
                if let Some(o) = old {
                    next.push(o.clone());
                }
                continue;
            }
            watch.pending.retain(|(p, _)| p != path);
            match read(path, now) {
                Ok(db) => {
                    watch.failed.retain(|(p, _)| p != path);
                    report.loaded.push(path.clone());
                    next.push((path.clone(), now, Arc::new(db)));
                    changed = true;
                }
                Err(ReadError::Moved(newer)) => {
                    watch.pending.push((path.clone(), newer));
                    if let Some(o) = old {
                        next.push(o.clone());
                    }
                }
                Err(ReadError::Failed(e)) => {
                    watch.failed.retain(|(p, _)| p != path);
                    watch.failed.push((path.clone(), now));
                    report.failed.push(GeoError::In {
                        path: path.clone(),
                        source: Box::new(e),
                    });
                    if let Some(o) = old {
                        next.push(o.clone());
                    } else {
                        changed = true;
                    }
                }
            }
        }
        if changed {
            self.loaded.store(Arc::new(Loaded {
                generation: current.generation + 1,
                dbs: next,
            }));
        }
        self.reloads_ok
            .fetch_add(report.loaded.len() as u64, Ordering::Relaxed);
        self.reloads_failed
            .fetch_add(report.failed.len() as u64, Ordering::Relaxed);
        report
    }
}

enum ReadError {
    /// The file changed while it was read: try again when it settles.
    Moved(Stamp),
    Failed(GeoError),
}

fn read(path: &Path, before: Stamp) -> Result<Database, ReadError> {
    let bytes = std::fs::read(path).map_err(|e| {
        ReadError::Failed(GeoError::Read {
            path: path.to_path_buf(),
            source: e,
        })
    })?;
    match stamp(path) {
        Ok(after) if after != before => return Err(ReadError::Moved(after)),
        _ => {}
    }
    Database::from_bytes(bytes).map_err(ReadError::Failed)
}
