//! Purge requests as values: what to take out of the cache and how, so that a purge can be
//! recorded, replayed on another node and acknowledged. The store answers each with a report.

use crate::store::Ticket;

/// Which objects a purge covers. Hosts are normalised (lower case, no trailing dot, no port):
/// a purge covers every listener port and both schemes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PurgeScope {
    /// One primary key exactly (every `Vary` variant and stored encoding of it): what an
    /// unsafe method invalidates.
    Key(String),
    /// Everything a URL can produce: both schemes, any port, every `Vary` variant and encoding
    /// and every extra key dimension (key headers, key cookies). `path_query` is the path and
    /// query as the cache key holds them (normalised by the site's key rules). `ports`: the
    /// non-default ports keys may carry (the node's listeners), so that their objects are
    /// removed now too rather than at their next lookup.
    Url {
        host: String,
        path_query: String,
        ports: Vec<u16>,
    },
    /// Every URL of `host` whose path starts with `path_prefix`.
    Prefix { host: String, path_prefix: String },
    /// Every object the origin tagged with this surrogate key: of one site (stored tags are
    /// namespaced by site, see [`site_tag`]), or of every site (`site: None`, an admin's
    /// purge).
    Tag { site: Option<String>, tag: String },
    /// Everything of one host.
    Host(String),
    /// Everything of every subdomain of this domain (what a site's `*.domain` host serves).
    Domain(String),
    /// Everything on the node.
    All,
}

/// How the store holds a site's surrogate key: tenants' keys never meet, so one site's tag
/// purge cannot touch another's objects. Tags are visible ASCII, so the space separates.
pub fn site_tag(site: &str, tag: &str) -> String {
    format!("{site} {tag}")
}

/// The tag of a stored (namespaced) tag, without its site.
pub fn bare_tag(stored: &str) -> &str {
    stored.rsplit_once(' ').map_or(stored, |(_, t)| t)
}

/// What happens to the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PurgeMode {
    /// Gone: the next request fetches from the origin.
    Hard,
    /// Stale: served as stale content may be (`stale-while-revalidate`, `stale-if-error`,
    /// the origin being down) and revalidated; a 304 makes it fresh again.
    Soft,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

    pub fn new(scope: PurgeScope, mode: PurgeMode) -> Purge {
        Purge { scope, mode }
    }
}

/// What a purge did. It is in effect once this exists: the fence rejects fills that started
/// before it, and lookups treat older objects as gone (hard) or stale (soft), whatever
/// physical removal is still to come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    /// Objects (variants, encodings, slices) found and removed or marked now; fences also
    /// cover objects not counted here (on disk only, or found later).
    pub objects: usize,
    /// Fills and stored objects whose ticket is older than this are invalid for the scope.
    pub fence: Ticket,
}

/// The parts of a primary key a purge matches on: `scheme://host[:port]/path[?query][\n…]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyParts<'a> {
    /// Lower case, without the port.
    pub host: &'a str,
    /// Path and query, as the key holds them.
    pub path_query: &'a str,
}

impl<'a> KeyParts<'a> {
    /// Splits a primary key; `None` for keys that are not URLs (internal keys).
    pub fn of(primary: &'a str) -> Option<KeyParts<'a>> {
        let rest = primary
            .strip_prefix("https://")
            .or_else(|| primary.strip_prefix("http://"))?;
        let url = rest.split('\n').next().unwrap_or(rest);
        let slash = url.find('/')?;
        let authority = &url[..slash];
        let host = if authority.starts_with('[') {
            authority
                .find(']')
                .map_or(authority, |end| &authority[..=end])
        } else {
            authority.split(':').next().unwrap_or(authority)
        };
        Some(KeyParts {
            host,
            path_query: &url[slash..],
        })
    }

    pub fn path(&self) -> &'a str {
        self.path_query.split('?').next().unwrap_or(self.path_query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts() {
        let cases = [
            ("https://a.test/x?y=1", Some(("a.test", "/x?y=1", "/x"))),
            ("http://a.test:8080/x", Some(("a.test", "/x", "/x"))),
            (
                "https://a.test:8443/x\nh:x-device=m",
                Some(("a.test", "/x", "/x")),
            ),
            ("https://[::1]:8443/p?q", Some(("[::1]", "/p?q", "/p"))),
            ("https://a.test/x\nslices", Some(("a.test", "/x", "/x"))),
            ("v:internal", None),
            ("https://nopath", None),
        ];
        for (key, want) in cases {
            let got = KeyParts::of(key).map(|k| (k.host, k.path_query, k.path()));
            assert_eq!(got, want, "{key:?}");
        }
    }
}
