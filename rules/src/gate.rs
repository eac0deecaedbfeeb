//! A cheap first test per rule: what its condition needs before it can hold (a path that
//! starts with certain bytes, a header that is present, a `Cookie` header, a query), taken
//! from the top-level `all` when the rule set is built. Per request the facts are read once
//! ([`Probe`]); a rule whose gate fails is skipped with a few integer operations instead of
//! string compares and header lookups. Rules that no visitor's request matches are the usual
//! case on a busy site, so this is most of what 50 rules cost a hit.

use http::{HeaderMap, HeaderName};

use crate::RequestFacts;
use crate::condition::{Condition, ValueTest};

/// Bytes of a path prefix a gate holds: one word.
const WORD: usize = 8;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Gate {
    /// The path's first bytes, masked, must equal `path` (both little-endian words).
    path: u64,
    path_mask: u64,
    /// Headers (bits into the rule set's [`Gates::headers`]) that must be present.
    headers: u64,
    cookie: bool,
    query: bool,
}

/// The per-request side of the gates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe {
    path: u64,
    headers: u64,
    cookie: bool,
    query: bool,
}

/// The gates of a rule set: header names they test, and each rule's gate.
#[derive(Debug, Default)]
pub(crate) struct Gates {
    headers: Vec<HeaderName>,
    pub(crate) rules: Vec<Gate>,
}

fn word(bytes: &[u8]) -> (u64, u64) {
    let n = bytes.len().min(WORD);
    let mut w = [0u8; WORD];
    w[..n].copy_from_slice(&bytes[..n]);
    let mask = if n == WORD {
        u64::MAX
    } else {
        (1u64 << (8 * n)) - 1
    };
    (u64::from_le_bytes(w), mask)
}

impl Gates {
    pub(crate) fn new<'a>(conditions: impl Iterator<Item = &'a Condition>) -> Gates {
        let mut g = Gates::default();
        g.rules = conditions.map(|c| g.gate(c)).collect::<Vec<_>>();
        g
    }

    fn gate(&mut self, c: &Condition) -> Gate {
        let mut gate = Gate::default();
        let parts: &[Condition] = match c {
            Condition::All(list) => list,
            other => std::slice::from_ref(other),
        };
        for p in parts {
            let prefix = match p {
                Condition::PathPrefix(s) | Condition::PathExact(s) => Some(s.as_str()),
                Condition::PathGlob(g) => Some(g.literal_prefix()),
                _ => None,
            };
            if let Some(prefix) = prefix
                && prefix.len() > (gate.path_mask.count_ones() / 8) as usize
            {
                (gate.path, gate.path_mask) = word(prefix.as_bytes());
            }
            match p {
                Condition::Header(name, t) if !matches!(t, ValueTest::Absent) => {
                    let i = match self.headers.iter().position(|h| h == name) {
                        Some(i) => i,
                        None => {
                            self.headers.push(name.clone());
                            self.headers.len() - 1
                        }
                    };
                    // Past 64 names a header simply has no gate.
                    if i < 64 {
                        gate.headers |= 1 << i;
                    }
                }
                Condition::Cookie(_, t) if !matches!(t, ValueTest::Absent) => gate.cookie = true,
                Condition::Query(_, t) if !matches!(t, ValueTest::Absent) => gate.query = true,
                _ => {}
            }
        }
        gate
    }

    pub(crate) fn probe(&self, f: &RequestFacts<'_>) -> Probe {
        let present = |h: &HeaderMap, n: &HeaderName| h.contains_key(n);
        let mut headers = 0u64;
        for (i, n) in self.headers.iter().take(64).enumerate() {
            if present(f.headers, n) {
                headers |= 1 << i;
            }
        }
        Probe {
            path: word(f.path.as_bytes()).0,
            headers,
            cookie: f.headers.contains_key(http::header::COOKIE),
            query: f.query.is_some(),
        }
    }
}

impl Gate {
    /// False only when the rule's condition cannot hold for the probed request.
    #[inline]
    pub(crate) fn open(&self, p: &Probe) -> bool {
        (p.path & self.path_mask) == self.path
            && (self.headers & !p.headers) == 0
            && (!self.cookie || p.cookie)
            && (!self.query || p.query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glob::Glob;
    use http::Method;

    fn facts<'a>(
        path: &'a str,
        query: Option<&'a str>,
        headers: &'a HeaderMap,
    ) -> RequestFacts<'a> {
        RequestFacts {
            method: &Method::GET,
            host: "h",
            path,
            query,
            headers,
            client: std::net::IpAddr::from([192, 0, 2, 1]),
            https: true,
            country: None,
            continent: None,
            asn: None,
            now: jiff::Timestamp::UNIX_EPOCH,
            request_id: "1",
            random: 0,
        }
    }

    #[test]
    fn gates_close_only_on_what_the_condition_needs() {
        let tenant = HeaderName::from_static("x-tenant");
        let conds = [
            Condition::All(vec![Condition::PathPrefix("/blog/".into())]),
            Condition::PathExact("/a".into()),
            Condition::All(vec![Condition::PathGlob(
                Glob::new("/static-long-name/**/*.js").unwrap_or_else(|_| unreachable!()),
            )]),
            Condition::Header(tenant.clone(), ValueTest::Present),
            Condition::Header(tenant.clone(), ValueTest::Absent),
            Condition::Cookie("beta".into(), ValueTest::Equals("1".into())),
            Condition::Query("q".into(), ValueTest::Present),
            Condition::Any(vec![
                Condition::PathPrefix("/x".into()),
                Condition::PathPrefix("/y".into()),
            ]),
            Condition::Not(Box::new(Condition::PathPrefix("/x".into()))),
        ];
        let g = Gates::new(conds.iter());
        let mut with = HeaderMap::new();
        with.insert(&tenant, "t".parse().unwrap_or_else(|_| unreachable!()));
        with.insert(
            http::header::COOKIE,
            "beta=1".parse().unwrap_or_else(|_| unreachable!()),
        );
        let without = HeaderMap::new();
        // (path, query, headers present) → which gates are open.
        let cases: [(&str, Option<&str>, bool, [bool; 9]); 5] = [
            (
                "/blog/post",
                None,
                false,
                [true, false, false, false, true, false, false, true, true],
            ),
            (
                "/a",
                Some("q=1"),
                true,
                [false, true, false, true, true, true, true, true, true],
            ),
            (
                "/ab",
                None,
                false,
                [false, true, false, false, true, false, false, true, true],
            ),
            (
                "/static-long-name/x/y.js",
                None,
                false,
                [false, false, true, false, true, false, false, true, true],
            ),
            (
                "/static-l",
                None,
                false,
                [false, false, true, false, true, false, false, true, true],
            ),
        ];
        for (path, query, hdrs, open) in cases {
            let h = if hdrs { &with } else { &without };
            let p = g.probe(&facts(path, query, h));
            let got: Vec<bool> = g.rules.iter().map(|r| r.open(&p)).collect();
            assert_eq!(got, open, "{path} {query:?} headers {hdrs}");
        }
        // A gate never closes on a request its condition holds for.
        for (c, gate) in conds.iter().zip(&g.rules) {
            for (path, query, hdrs) in [
                ("/blog/post", None, false),
                ("/a", Some("q=1"), true),
                ("/x/1", None, false),
            ] {
                let h = if hdrs { &with } else { &without };
                let f = facts(path, query, h);
                let cx = crate::template::Context::new(&f, None);
                if c.holds(&cx, None) {
                    assert!(
                        gate.open(&g.probe(&f)),
                        "{c} holds for {path} but its gate is closed"
                    );
                }
            }
        }
    }
}
