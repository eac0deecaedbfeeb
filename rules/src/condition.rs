//! Conditions: what a rule's `when` tests. Built once when the config compiles (regexes
//! included) and evaluated per request without allocating, except for percent-decoded query
//! parameters.

use std::fmt;
use std::ops::RangeInclusive;

use edge_core::cidr::CidrSet;
use http::{HeaderName, Method};

use crate::device::Device;
use crate::glob::Glob;
use crate::template::Context;
use crate::time::TimeWindow;
use crate::{Error, Result};

/// How a header, cookie or query parameter value is tested.
#[derive(Debug, Clone)]
pub enum ValueTest {
    /// Present (with any value).
    Present,
    /// Absent.
    Absent,
    /// Present with exactly this value (case-sensitive).
    Equals(String),
    /// Present with a value the regex finds a match in (anchor it with `^…$` for a whole
    /// value).
    Regex(regex::Regex),
}

impl ValueTest {
    fn test(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (ValueTest::Absent, v) => v.is_none(),
            (_, None) => false,
            (ValueTest::Present, Some(_)) => true,
            (ValueTest::Equals(want), Some(v)) => v == want,
            (ValueTest::Regex(re), Some(v)) => re.is_match(v),
        }
    }
}

/// A test of one request (or, in response rules, of the response status too).
#[derive(Debug, Clone)]
pub enum Condition {
    /// Every one holds (an empty list: always true).
    All(Vec<Condition>),
    /// At least one holds (an empty list: never).
    Any(Vec<Condition>),
    Not(Box<Condition>),
    PathPrefix(String),
    PathExact(String),
    PathGlob(Glob),
    Method(Vec<Method>),
    Header(HeaderName, ValueTest),
    /// Cookie by name (from every `Cookie` header).
    Cookie(String, ValueTest),
    /// Query parameter by name, percent-decoded.
    Query(String, ValueTest),
    /// The client address is in one of these ranges.
    Client(CidrSet, Vec<String>),
    /// ISO country codes, upper case; false when geo does not know the country.
    Country(Vec<String>),
    Continent(Vec<String>),
    Asn(Vec<u32>),
    Device(Vec<Device>),
    Time(TimeWindow),
    /// The A/B bucket is in this inclusive range.
    Bucket(RangeInclusive<u8>),
    /// Response rules only: the origin's status is in one of these inclusive ranges.
    Status(Vec<RangeInclusive<u16>>),
}

/// Compiles a regex for a condition or a rewrite: the `regex` crate (linear time), with a
/// bounded compiled size so a config cannot ask for gigabytes.
pub fn regex(pattern: &str) -> Result<regex::Regex> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| Error::Regex {
            pattern: pattern.into(),
            reason: e
                .to_string()
                .lines()
                .last()
                .unwrap_or("")
                .trim()
                .to_string(),
        })
}

/// A/B bucket range check, for compile-time validation.
pub fn bucket_range(from: u16, to: u16) -> Result<RangeInclusive<u8>> {
    if from > to || to > 99 {
        return Err(Error::Bucket(from, to));
    }
    // Both are at most 99 here.
    Ok(from as u8..=to as u8)
}

/// Status range check: `from..=to` within 100..=999.
pub fn status_range(from: u32, to: u32) -> Result<RangeInclusive<u16>> {
    for s in [from, to] {
        if !(100..=999).contains(&s) {
            return Err(Error::Status(s));
        }
    }
    if from > to {
        return Err(Error::Status(from));
    }
    Ok(from as u16..=to as u16)
}

impl Condition {
    /// Whether the condition holds; `status`: the origin's status in response rules.
    pub(crate) fn holds(&self, cx: &Context<'_>, status: Option<u16>) -> bool {
        let f = cx.facts;
        match self {
            Condition::All(list) => list.iter().all(|c| c.holds(cx, status)),
            Condition::Any(list) => list.iter().any(|c| c.holds(cx, status)),
            Condition::Not(c) => !c.holds(cx, status),
            Condition::PathPrefix(p) => f.path.starts_with(p.as_str()),
            Condition::PathExact(p) => f.path == p,
            Condition::PathGlob(g) => g.matches(f.path),
            Condition::Method(list) => list.contains(f.method),
            Condition::Header(name, test) => {
                // A header that is not visible ASCII is there, but has no testable value.
                let present = f.headers.contains_key(name);
                match test {
                    ValueTest::Present => present,
                    ValueTest::Absent => !present,
                    _ => test.test(f.header(name)),
                }
            }
            Condition::Cookie(name, test) => test.test(f.cookie(name)),
            Condition::Query(name, test) => test.test(f.query_param(name).as_deref()),
            Condition::Client(set, _) => set.contains(f.client),
            Condition::Country(list) => f
                .country
                .is_some_and(|c| list.iter().any(|l| l.eq_ignore_ascii_case(c))),
            Condition::Continent(list) => f
                .continent
                .is_some_and(|c| list.iter().any(|l| l.eq_ignore_ascii_case(c))),
            Condition::Asn(list) => f.asn.is_some_and(|a| list.contains(&a)),
            Condition::Device(list) => list.contains(&cx.device()),
            Condition::Time(w) => w.contains(f.now),
            Condition::Bucket(range) => cx.bucket.is_some_and(|b| range.contains(&b)),
            Condition::Status(ranges) => {
                status.is_some_and(|s| ranges.iter().any(|r| r.contains(&s)))
            }
        }
    }

    /// What testing it costs, roughly: comparisons first, then lookups and parses, then
    /// regexes and time zones, then the User-Agent classifier.
    fn cost(&self) -> u8 {
        match self {
            Condition::All(l) | Condition::Any(l) => {
                l.iter().map(Condition::cost).max().unwrap_or(0)
            }
            Condition::Not(c) => c.cost(),
            Condition::PathPrefix(_)
            | Condition::PathExact(_)
            | Condition::Method(_)
            | Condition::Client(..)
            | Condition::Country(_)
            | Condition::Continent(_)
            | Condition::Asn(_)
            | Condition::Bucket(_)
            | Condition::Status(_) => 0,
            Condition::PathGlob(_) | Condition::Cookie(..) | Condition::Query(..) => 1,
            Condition::Header(_, ValueTest::Present | ValueTest::Absent) => 1,
            Condition::Header(..) | Condition::Time(_) => 2,
            Condition::Device(_) => 3,
        }
    }

    /// The same condition with the parts of every `all` and `any` in order of cost (stable):
    /// conditions are pure, so the order only changes how soon a request is decided.
    pub(crate) fn cheapest_first(mut self) -> Condition {
        match &mut self {
            Condition::All(l) | Condition::Any(l) => {
                let parts = std::mem::take(l);
                let mut parts: Vec<Condition> =
                    parts.into_iter().map(Condition::cheapest_first).collect();
                parts.sort_by_key(Condition::cost);
                *l = parts;
            }
            Condition::Not(c) => {
                let inner = std::mem::replace(c.as_mut(), Condition::All(Vec::new()));
                **c = inner.cheapest_first();
            }
            _ => {}
        }
        self
    }

    /// Whether it (or a part of it) tests the response status.
    pub fn uses_status(&self) -> bool {
        self.any_part(&|c| matches!(c, Condition::Status(_)))
    }

    /// Whether it (or a part of it) tests the A/B bucket.
    pub fn uses_bucket(&self) -> bool {
        self.any_part(&|c| matches!(c, Condition::Bucket(_)))
    }

    /// Whether it holds for every request: an empty `all` (no `when`).
    pub fn is_always(&self) -> bool {
        matches!(self, Condition::All(list) if list.iter().all(Condition::is_always))
    }

    fn any_part(&self, pred: &dyn Fn(&Condition) -> bool) -> bool {
        pred(self)
            || match self {
                Condition::All(l) | Condition::Any(l) => l.iter().any(|c| c.any_part(pred)),
                Condition::Not(c) => c.any_part(pred),
                _ => false,
            }
    }
}

fn list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    f.write_str("[")?;
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{it}")?;
    }
    f.write_str("]")
}

impl fmt::Display for ValueTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueTest::Present => f.write_str("present"),
            ValueTest::Absent => f.write_str("absent"),
            ValueTest::Equals(v) => write!(f, "= {v:?}"),
            ValueTest::Regex(re) => write!(f, "~ /{}/", re.as_str()),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, l: &[Condition], sep: &str| -> fmt::Result {
            f.write_str("(")?;
            for (i, c) in l.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{c}")?;
            }
            f.write_str(")")
        };
        match self {
            Condition::All(l) if l.is_empty() => f.write_str("always"),
            Condition::All(l) if l.len() == 1 => write!(f, "{}", l[0]),
            Condition::All(l) => join(f, l, " and "),
            Condition::Any(l) if l.is_empty() => f.write_str("never"),
            Condition::Any(l) => join(f, l, " or "),
            Condition::Not(c) => write!(f, "not {c}"),
            Condition::PathPrefix(p) => write!(f, "path prefix {p}"),
            Condition::PathExact(p) => write!(f, "path = {p}"),
            Condition::PathGlob(g) => write!(f, "path glob {g}"),
            Condition::Method(m) => {
                f.write_str("method in ")?;
                list(f, m)
            }
            Condition::Header(n, t) => write!(f, "header {n} {t}"),
            Condition::Cookie(n, t) => write!(f, "cookie {n} {t}"),
            Condition::Query(n, t) => write!(f, "query {n} {t}"),
            Condition::Client(_, texts) => {
                f.write_str("client in ")?;
                list(f, texts)
            }
            Condition::Country(l) => {
                f.write_str("country in ")?;
                list(f, l)
            }
            Condition::Continent(l) => {
                f.write_str("continent in ")?;
                list(f, l)
            }
            Condition::Asn(l) => {
                f.write_str("asn in ")?;
                list(f, l)
            }
            Condition::Device(l) => {
                f.write_str("device in ")?;
                list(f, l)
            }
            Condition::Time(w) => write!(f, "time {w}"),
            Condition::Bucket(r) => write!(f, "bucket {}-{}", r.start(), r.end()),
            Condition::Status(rs) => {
                let texts: Vec<String> = rs
                    .iter()
                    .map(|r| {
                        if r.start() == r.end() {
                            r.start().to_string()
                        } else {
                            format!("{}-{}", r.start(), r.end())
                        }
                    })
                    .collect();
                f.write_str("status in ")?;
                list(f, &texts)
            }
        }
    }
}
