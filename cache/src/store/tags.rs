//! The tag index: surrogate key → the stored variants that carry it, so that a tag purge can
//! count and remove them. Untagged objects cost it nothing. It is rebuilt from the disk tier's
//! metadata at start, and an object leaves it when it leaves the store (purged, replaced,
//! evicted from the last tier that held it).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::Ticket;

/// Limits on what one response may tag itself with; the rest is dropped and counted.
pub const MAX_TAGS: usize = 1024;
pub const MAX_TAG_BYTES: usize = 1024;
pub const MAX_TAG_HEADER_BYTES: usize = 16 * 1024;

#[derive(Default)]
struct Index {
    by_tag: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// A variant's tags and the ticket of the body they came with (so that a purge's removal
    /// leaves alone a body published after it).
    by_variant: HashMap<Arc<str>, (super::Tags, Ticket)>,
    /// Object-to-tag references (kept as it changes: a scrape must not walk the index).
    refs: usize,
}

#[derive(Default)]
pub(crate) struct TagIndex {
    inner: Mutex<Index>,
}

impl TagIndex {
    /// Records `variant`'s tags (replacing what it had).
    pub(crate) fn insert(&self, variant: &str, tags: &Arc<[Arc<str>]>, ticket: Ticket) {
        let Ok(mut ix) = self.inner.lock() else {
            return;
        };
        Self::unlink(&mut ix, variant);
        if tags.is_empty() {
            return;
        }
        let v: Arc<str> = Arc::from(variant);
        for t in tags.iter() {
            ix.by_tag.entry(t.clone()).or_default().insert(v.clone());
        }
        ix.refs += tags.len();
        ix.by_variant.insert(v, (tags.clone(), ticket));
    }

    pub(crate) fn remove(&self, variant: &str) {
        if let Ok(mut ix) = self.inner.lock() {
            Self::unlink(&mut ix, variant);
        }
    }

    /// Removes `variant` if its indexed body is older than `fence` (a purge's removal).
    pub(crate) fn remove_older(&self, variant: &str, fence: Ticket) {
        if let Ok(mut ix) = self.inner.lock()
            && ix.by_variant.get(variant).is_some_and(|(_, t)| *t < fence)
        {
            Self::unlink(&mut ix, variant);
        }
    }

    fn unlink(ix: &mut Index, variant: &str) {
        let Some((tags, _)) = ix.by_variant.remove(variant) else {
            return;
        };
        ix.refs -= tags.len();
        for t in tags.iter() {
            if let Some(set) = ix.by_tag.get_mut(t) {
                set.remove(variant);
                if set.is_empty() {
                    ix.by_tag.remove(t);
                }
            }
        }
    }

    /// The variants carrying `tag` (the model test's view).
    #[cfg(test)]
    pub(crate) fn variants(&self, tag: &str) -> Vec<Arc<str>> {
        self.inner
            .lock()
            .map(|ix| {
                ix.by_tag
                    .get(tag)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// How many variants carry `tag` (of one site), or the bare tag in any site (`any_site`).
    pub(crate) fn count(&self, tag: &str, any_site: bool) -> usize {
        self.inner
            .lock()
            .map(|ix| {
                if any_site {
                    ix.by_tag
                        .iter()
                        .filter(|(t, _)| crate::purge::bare_tag(t) == tag)
                        .map(|(_, s)| s.len())
                        .sum()
                } else {
                    ix.by_tag.get(tag).map_or(0, HashSet::len)
                }
            })
            .unwrap_or_default()
    }

    /// Takes the set of variants carrying `tag` out of the index (a hard purge: every one of
    /// them is fenced off): a move, not a copy, so a purge of 100,000 objects is in effect in
    /// microseconds. Each variant leaves the rest of the index when it is removed.
    pub(crate) fn take(&self, tag: &str, any_site: bool) -> Vec<HashSet<Arc<str>>> {
        let Ok(mut ix) = self.inner.lock() else {
            return Vec::new();
        };
        if !any_site {
            return ix.by_tag.remove(tag).into_iter().collect();
        }
        // An admin's every-site tag purge: rare, so a walk over the distinct tags.
        let names: Vec<Arc<str>> = ix
            .by_tag
            .keys()
            .filter(|t| crate::purge::bare_tag(t) == tag)
            .cloned()
            .collect();
        names.iter().filter_map(|t| ix.by_tag.remove(t)).collect()
    }

    /// (tags, tagged variants, tag references): what the index holds, for metrics.
    pub(crate) fn size(&self) -> (usize, usize, usize) {
        self.inner
            .lock()
            .map(|ix| (ix.by_tag.len(), ix.by_variant.len(), ix.refs))
            .unwrap_or_default()
    }
}

/// Surrogate keys from response header values: `Surrogate-Key` (space-separated, Fastly) and
/// `Cache-Tag` (comma-separated, Cloudflare). Over the limits, the extra is dropped; the
/// second value is how many tags were dropped.
pub fn parse_tags<'a>(values: impl Iterator<Item = (&'a [u8], u8)>) -> (Vec<Arc<str>>, usize) {
    let mut tags: Vec<Arc<str>> = Vec::new();
    let mut seen = HashSet::new();
    let mut dropped = 0;
    let mut header_bytes = 0;
    for (value, separator) in values {
        header_bytes += value.len();
        if header_bytes > MAX_TAG_HEADER_BYTES {
            dropped += value
                .split(|b| *b == separator || *b == b' ')
                .filter(|t| !t.is_empty())
                .count();
            continue;
        }
        for raw in value.split(|b| *b == separator || (separator == b',' && *b == b' ')) {
            let t = raw.trim_ascii();
            if t.is_empty() {
                continue;
            }
            let valid = t.len() <= MAX_TAG_BYTES && t.iter().all(|b| b.is_ascii_graphic());
            if !valid || tags.len() >= MAX_TAGS {
                dropped += 1;
                continue;
            }
            let Ok(s) = std::str::from_utf8(t) else {
                dropped += 1;
                continue;
            };
            if seen.insert(s.to_string()) {
                tags.push(Arc::from(s));
            }
        }
    }
    (tags, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_headers_both_syntaxes_limits_and_junk() {
        let (tags, dropped) = parse_tags(
            [
                (&b"product-7  home\tx"[..], b' '),
                (&b"a, b,,c , home"[..], b','),
            ]
            .into_iter(),
        );
        let names: Vec<&str> = tags.iter().map(|t| &**t).collect();
        assert_eq!(names, ["product-7", "a", "b", "c", "home"]);
        assert_eq!(dropped, 1, "a tag with a control character");
        let many = (0..2000)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let (tags, dropped) = parse_tags([(many.as_bytes(), b' ')].into_iter());
        assert_eq!(tags.len(), MAX_TAGS.min(2000));
        assert!(dropped > 0);
        let long = "x".repeat(MAX_TAG_BYTES + 1);
        let (tags, dropped) = parse_tags([(long.as_bytes(), b' ')].into_iter());
        assert!(tags.is_empty() && dropped == 1);
    }

    #[test]
    fn index_follows_inserts_replacements_and_removals() {
        let ix = TagIndex::default();
        let t =
            |names: &[&str]| -> Arc<[Arc<str>]> { names.iter().map(|n| Arc::from(*n)).collect() };
        ix.insert("o:a", &t(&["x", "y"]), Ticket(1));
        ix.insert("o:b", &t(&["y"]), Ticket(1));
        assert_eq!(ix.variants("y").len(), 2);
        ix.insert("o:a", &t(&["z"]), Ticket(1));
        assert!(ix.variants("x").is_empty(), "replaced tags leave");
        assert_eq!(ix.variants("z"), vec![Arc::<str>::from("o:a")]);
        ix.remove("o:b");
        assert!(ix.variants("y").is_empty());
        assert_eq!(ix.size(), (1, 1, 1));
    }
}
