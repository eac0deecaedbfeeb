//! Purge fences (Pingora's `valid_after`, generalised): every origin request that may fill the
//! cache takes a ticket before it is sent, every purge raises a fence for its scope (a key, a
//! URL, a path prefix, a tag, a host, everything), and an object, or a fill still in flight,
//! whose ticket is below a fence that covers it is gone (hard) or stale (soft). A purge is in
//! effect the moment its fence is up; physical removal may follow.
//!
//! Fences cost memory, so they are bounded: key fences expire (their objects are removed at
//! once, only fills in flight need them, and those are refused by `fill_floor` once a fence
//! is dropped); the other kinds are kept until their table is full, then the oldest are folded
//! into a coarser fence (URL and prefix into their host's, hosts and tags into everything's),
//! which purges more, never less.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::purge::{KeyParts, PurgeMode, PurgeScope, bare_tag, site_tag};

/// Orders origin requests and purges. Seeded from the wall clock, so tickets written to disk by
/// an earlier process stay below the ones this process hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ticket(pub u64);

impl Ticket {
    /// The ticket right after this one: `remove_purged(v, t.next())` takes bodies up to `t`.
    pub fn next(self) -> Ticket {
        Ticket(self.0.saturating_add(1))
    }
}

/// What the fences say about an object or a fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fenced {
    No,
    /// A soft purge covers it: stale, to be revalidated.
    Soft,
    /// A hard purge covers it: gone.
    Hard,
}

/// A hard and a soft fence for one scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Pair {
    hard: u64,
    soft: u64,
}

impl Pair {
    fn raise(&mut self, mode: PurgeMode, fence: u64) {
        match mode {
            PurgeMode::Hard => self.hard = self.hard.max(fence),
            PurgeMode::Soft => self.soft = self.soft.max(fence),
        }
    }

    fn verdict(&self, ticket: u64) -> Fenced {
        if ticket < self.hard {
            Fenced::Hard
        } else if ticket < self.soft {
            Fenced::Soft
        } else {
            Fenced::No
        }
    }

    fn max(self, other: Pair) -> Pair {
        Pair {
            hard: self.hard.max(other.hard),
            soft: self.soft.max(other.soft),
        }
    }
}

const KEY_FENCE_TTL: Duration = Duration::from_secs(3600);
const KEY_FENCES: u64 = 1 << 20;
/// How many URL, host and tag fences are kept before some are folded into coarser ones.
const TABLE_LIMIT: u64 = 1 << 16;
const PREFIX_LIMIT: usize = 4096;

#[derive(Default, Clone)]
struct Prefixes {
    /// host → (path prefix, fences)
    by_host: HashMap<String, Vec<(String, Pair)>>,
    count: usize,
}

/// The everything-fences, shared with the eviction listeners that fold into them.
#[derive(Default)]
struct Floors {
    all_hard: AtomicU64,
    all_soft: AtomicU64,
    /// The highest key fence that was dropped: fills ticketed below it publish nothing (a fill
    /// in flight for as long as a key fence lives is rare; letting it through is not safe).
    fill: AtomicU64,
}

impl Floors {
    fn fold(&self, p: Pair) {
        self.all_hard.fetch_max(p.hard, Ordering::AcqRel);
        self.all_soft.fetch_max(p.soft, Ordering::AcqRel);
    }
}

type FenceMap = moka::sync::Cache<String, Pair>;

pub(crate) struct Fences {
    next: AtomicU64,
    /// The highest fence raised (any scope): see `collapse::PurgeClock`.
    last: AtomicU64,
    keys: FenceMap,
    urls: FenceMap,
    hosts: FenceMap,
    tags: FenceMap,
    prefixes: ArcSwap<Prefixes>,
    floors: Arc<Floors>,
    /// No fence other than the floors was ever raised: lookups skip the tables.
    none: AtomicBool,
    /// No URL fence was ever raised: lookups skip building the URL's name.
    no_urls: AtomicBool,
    /// No domain fence was ever raised: lookups skip walking the host's parent domains.
    no_domains: AtomicBool,
    /// No every-site tag fence was ever raised: lookups skip the bare-tag names.
    no_any_site_tags: AtomicBool,
    /// Serialises purges (read-modify-write of a pair, the prefix table).
    write: Mutex<()>,
}

impl Fences {
    pub(crate) fn new(seed: u64) -> Fences {
        let floors = Arc::new(Floors::default());
        let on_key = floors.clone();
        let keys = moka::sync::Cache::builder()
            .max_capacity(KEY_FENCES)
            .time_to_live(KEY_FENCE_TTL)
            .eviction_listener(move |_k, p: Pair, cause| {
                if cause.was_evicted() {
                    on_key.fill.fetch_max(p.hard.max(p.soft), Ordering::AcqRel);
                }
            })
            .build();
        // A full table folds what it pushes out: hosts and tags into everything's fences,
        // URLs into their host's.
        let on_host = floors.clone();
        let hosts: FenceMap = moka::sync::Cache::builder()
            .max_capacity(TABLE_LIMIT)
            .eviction_listener(move |_k, p: Pair, cause| {
                if cause.was_evicted() {
                    on_host.fold(p);
                }
            })
            .build();
        let on_tag = floors.clone();
        let tags = moka::sync::Cache::builder()
            .max_capacity(TABLE_LIMIT)
            .eviction_listener(move |_k, p: Pair, cause| {
                if cause.was_evicted() {
                    on_tag.fold(p);
                }
            })
            .build();
        let host_of_url = hosts.clone();
        let urls = moka::sync::Cache::builder()
            .max_capacity(TABLE_LIMIT)
            .eviction_listener(move |k: Arc<String>, p: Pair, cause| {
                if cause.was_evicted() {
                    let host = k.split('\n').next().unwrap_or(&k).to_string();
                    let old = host_of_url.get(&host).unwrap_or_default();
                    host_of_url.insert(host, old.max(p));
                }
            })
            .build();
        Fences {
            next: AtomicU64::new(seed),
            last: AtomicU64::new(0),
            keys,
            urls,
            hosts,
            tags,
            prefixes: ArcSwap::from_pointee(Prefixes::default()),
            floors,
            none: AtomicBool::new(true),
            no_urls: AtomicBool::new(true),
            no_domains: AtomicBool::new(true),
            no_any_site_tags: AtomicBool::new(true),
            write: Mutex::new(()),
        }
    }

    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.next.fetch_add(1, Ordering::AcqRel))
    }

    pub(crate) fn now(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    pub(crate) fn last(&self) -> u64 {
        self.last.load(Ordering::Acquire)
    }

    fn raise_in(map: &FenceMap, name: String, mode: PurgeMode, fence: u64) {
        let p = map.get(&name).unwrap_or_default().tap(mode, fence);
        map.insert(name, p);
    }

    /// Raises the fence of a purge; everything ticketed before it is covered.
    pub(crate) fn raise(&self, scope: &PurgeScope, mode: PurgeMode) -> Ticket {
        let fence = self.ticket();
        let f = fence.0;
        let _w = self.write.lock();
        self.last.fetch_max(f, Ordering::AcqRel);
        match scope {
            PurgeScope::All => {
                self.floors.fold(Pair::default().tap(mode, f));
                return fence;
            }
            PurgeScope::Key(k) => Self::raise_in(&self.keys, k.clone(), mode, f),
            PurgeScope::Url {
                host, path_query, ..
            } => {
                Self::raise_in(&self.urls, format!("{host}\n{path_query}"), mode, f);
                self.no_urls.store(false, Ordering::Release);
            }
            PurgeScope::Host(host) => Self::raise_in(&self.hosts, host.clone(), mode, f),
            PurgeScope::Domain(domain) => {
                Self::raise_in(&self.hosts, format!("*.{domain}"), mode, f);
                self.no_domains.store(false, Ordering::Release);
            }
            PurgeScope::Tag { site, tag } => {
                Self::raise_in(&self.tags, tag_fence_name(site.as_deref(), tag), mode, f);
                if site.is_none() {
                    self.no_any_site_tags.store(false, Ordering::Release);
                }
            }
            PurgeScope::Prefix { host, path_prefix } => {
                let mut next = (**self.prefixes.load()).clone();
                let list = next.by_host.entry(host.clone()).or_default();
                match list.iter_mut().find(|(p, _)| p == path_prefix) {
                    Some((_, pair)) => pair.raise(mode, f),
                    None => {
                        list.push((path_prefix.clone(), Pair::default().tap(mode, f)));
                        next.count += 1;
                    }
                }
                if next.count > PREFIX_LIMIT {
                    // Fold the host with the most prefixes into a host fence.
                    let fold = next
                        .by_host
                        .iter()
                        .max_by_key(|(_, v)| v.len())
                        .map(|(h, _)| h.clone());
                    if let Some(h) = fold
                        && let Some(list) = next.by_host.remove(&h)
                    {
                        next.count -= list.len();
                        let pair = list.iter().fold(Pair::default(), |a, (_, p)| a.max(*p));
                        let old = self.hosts.get(&h).unwrap_or_default();
                        self.hosts.insert(h, old.max(pair));
                    }
                }
                self.prefixes.store(Arc::new(next));
            }
        }
        self.none.store(false, Ordering::Release);
        fence
    }

    /// The verdict for a stored object (or a fill) under `primary`, ticketed `ticket`, tagged
    /// `tags`. Hard wins over soft.
    pub(crate) fn check(&self, primary: &str, ticket: Ticket, tags: &[Arc<str>]) -> Fenced {
        let mut verdict = Pair {
            hard: self.floors.all_hard.load(Ordering::Acquire),
            soft: self.floors.all_soft.load(Ordering::Acquire),
        };
        if !self.none.load(Ordering::Acquire) {
            if let Some(p) = self.keys.get(primary) {
                verdict = verdict.max(p);
            }
            if let Some(parts) = KeyParts::of(primary) {
                if let Some(p) = self.hosts.get(parts.host) {
                    verdict = verdict.max(p);
                }
                if !self.no_domains.load(Ordering::Acquire) {
                    let mut rest = parts.host;
                    while let Some(dot) = rest.find('.') {
                        rest = &rest[dot + 1..];
                        if let Some(p) = self.hosts.get(&format!("*.{rest}")) {
                            verdict = verdict.max(p);
                        }
                    }
                }
                if !self.no_urls.load(Ordering::Acquire)
                    && let Some(p) = self
                        .urls
                        .get(&format!("{}\n{}", parts.host, parts.path_query))
                {
                    verdict = verdict.max(p);
                }
                let prefixes = self.prefixes.load();
                if let Some(list) = prefixes.by_host.get(parts.host) {
                    let path = parts.path();
                    for (prefix, p) in list {
                        if path.starts_with(prefix.as_str()) {
                            verdict = verdict.max(*p);
                        }
                    }
                }
            }
            let any_site = !self.no_any_site_tags.load(Ordering::Acquire);
            for tag in tags {
                if let Some(p) = self.tags.get(&**tag) {
                    verdict = verdict.max(p);
                }
                if any_site && let Some(p) = self.tags.get(&tag_fence_name(None, bare_tag(tag))) {
                    verdict = verdict.max(p);
                }
            }
        }
        verdict.verdict(ticket.0)
    }

    /// Whether a fill may publish: not covered by a hard fence, nor by a dropped key fence.
    pub(crate) fn fill_refused(&self, primary: &str, ticket: Ticket, tags: &[Arc<str>]) -> bool {
        ticket.0 < self.floors.fill.load(Ordering::Acquire)
            || self.check(primary, ticket, tags) == Fenced::Hard
    }

    /// A tag fence no longer needed: its objects were removed (hard purges only).
    pub(crate) fn drop_tag(&self, site: Option<&str>, tag: &str, fence: Ticket) {
        let tag = &tag_fence_name(site, tag);
        let _w = self.write.lock();
        let removable = self
            .tags
            .get(tag)
            .is_some_and(|p| p.hard <= fence.0 && p.soft == 0);
        if removable {
            self.tags.invalidate(tag);
            // Fills in flight that predate the purge are refused from now on by the floor.
            self.floors.fill.fetch_max(fence.0, Ordering::AcqRel);
        }
    }
}

/// The fence table's name for a tag purge: the stored (namespaced) tag for one site's, the
/// bare tag behind a space (no site name is empty) for every site's.
fn tag_fence_name(site: Option<&str>, tag: &str) -> String {
    site_tag(site.unwrap_or(""), tag)
}

trait Tap {
    fn tap(self, mode: PurgeMode, fence: u64) -> Self;
}

impl Tap for Pair {
    fn tap(mut self, mode: PurgeMode, fence: u64) -> Pair {
        self.raise(mode, fence);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: &str) -> PurgeScope {
        PurgeScope::Key(p.into())
    }

    #[test]
    fn every_scope_covers_what_it_names_and_nothing_else() {
        let f = Fences::new(100);
        let before = f.ticket();
        let tags: Vec<Arc<str>> = vec![Arc::from(site_tag("shop", "product-7"))];
        let u = "https://a.test:8443/shop/item?id=1\nh:x-device=m";
        let other = "https://b.test/shop/item?id=1";
        assert_eq!(f.check(u, before, &tags), Fenced::No);

        f.raise(
            &PurgeScope::Url {
                host: "a.test".into(),
                path_query: "/shop/item?id=1".into(),
                ports: Vec::new(),
            },
            PurgeMode::Soft,
        );
        assert_eq!(
            f.check(u, before, &[]),
            Fenced::Soft,
            "every port, extra dims"
        );
        assert_eq!(
            f.check("http://a.test/shop/item?id=1", before, &[]),
            Fenced::Soft
        );
        assert_eq!(
            f.check("https://a.test/shop/item?id=2", before, &[]),
            Fenced::No
        );
        assert_eq!(f.check(other, before, &[]), Fenced::No);

        f.raise(
            &PurgeScope::Tag {
                site: Some("other".into()),
                tag: "product-7".into(),
            },
            PurgeMode::Hard,
        );
        assert_eq!(
            f.check(u, before, &tags),
            Fenced::Soft,
            "another site's tag"
        );
        f.raise(
            &PurgeScope::Tag {
                site: Some("shop".into()),
                tag: "product-7".into(),
            },
            PurgeMode::Hard,
        );
        assert_eq!(f.check(u, before, &tags), Fenced::Hard, "hard wins");
        assert_eq!(f.check(other, before, &[]), Fenced::No);

        f.raise(
            &PurgeScope::Prefix {
                host: "b.test".into(),
                path_prefix: "/shop/".into(),
            },
            PurgeMode::Hard,
        );
        assert_eq!(f.check(other, before, &[]), Fenced::Hard);
        assert_eq!(f.check("https://b.test/about", before, &[]), Fenced::No);

        f.raise(&PurgeScope::Host("c.test".into()), PurgeMode::Soft);
        assert_eq!(f.check("https://c.test:443/x", before, &[]), Fenced::Soft);

        f.raise(&PurgeScope::Domain("w.test".into()), PurgeMode::Hard);
        assert_eq!(f.check("https://a.b.w.test/x", before, &[]), Fenced::Hard);
        assert_eq!(
            f.check("https://w.test/x", before, &[]),
            Fenced::No,
            "only subdomains"
        );
        assert_eq!(f.check("https://aw.test/x", before, &[]), Fenced::No);

        let other_site: Vec<Arc<str>> = vec![Arc::from(site_tag("blog", "t9"))];
        assert_eq!(f.check("https://e.test/x", before, &other_site), Fenced::No);
        f.raise(
            &PurgeScope::Tag {
                site: None,
                tag: "t9".into(),
            },
            PurgeMode::Hard,
        );
        assert_eq!(
            f.check("https://e.test/x", before, &other_site),
            Fenced::Hard,
            "every site's"
        );

        let after = f.ticket();
        for k in [u, other, "https://c.test/x"] {
            assert_eq!(f.check(k, after, &tags), Fenced::No, "fills after: {k}");
        }
        f.raise(&key("https://d.test/k"), PurgeMode::Hard);
        assert_eq!(f.check("https://d.test/k", after, &[]), Fenced::Hard);
        assert_eq!(f.check("https://d.test/k2", after, &[]), Fenced::No);

        f.raise(&PurgeScope::All, PurgeMode::Soft);
        assert_eq!(f.check("https://z.test/", after, &[]), Fenced::Soft);
        assert_eq!(f.check("https://z.test/", f.ticket(), &[]), Fenced::No);
    }

    #[test]
    fn full_tables_fold_into_coarser_fences() {
        let f = Fences::new(1);
        let old = f.ticket();
        for i in 0..=(TABLE_LIMIT + 64) {
            f.raise(
                &PurgeScope::Url {
                    host: "a.test".into(),
                    path_query: format!("/p{i}"),
                    ports: Vec::new(),
                },
                PurgeMode::Hard,
            );
        }
        f.urls.run_pending_tasks();
        f.hosts.run_pending_tasks();
        // URL fences pushed out were folded into a.test's host fence: purged still (and more).
        assert_eq!(f.check("https://a.test/p0", old, &[]), Fenced::Hard);
        assert_eq!(
            f.check("https://a.test/never-purged", old, &[]),
            Fenced::Hard
        );
        assert_eq!(f.check("https://b.test/p0", old, &[]), Fenced::No);
    }

    #[test]
    fn a_dropped_tag_fence_still_refuses_older_fills() {
        let f = Fences::new(1);
        let old = f.ticket();
        let tags: Vec<Arc<str>> = vec![Arc::from(site_tag("s", "t"))];
        let fence = f.raise(
            &PurgeScope::Tag {
                site: Some("s".into()),
                tag: "t".into(),
            },
            PurgeMode::Hard,
        );
        f.drop_tag(Some("s"), "t", fence);
        assert_eq!(f.check("https://a.test/x", old, &tags), Fenced::No);
        assert!(f.fill_refused("https://a.test/x", old, &tags));
        assert!(!f.fill_refused("https://a.test/x", f.ticket(), &tags));
    }
}
