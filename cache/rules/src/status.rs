//! `Cache-Status` (RFC 9211).

use std::fmt;

/// Why a request went forward (RFC 9211 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    UriMiss,
    VaryMiss,
    Stale,
    Request,
    Bypass,
}

impl Fwd {
    fn as_str(self) -> &'static str {
        match self {
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Stale => "stale",
            Fwd::Request => "request",
            Fwd::Bypass => "bypass",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStatus {
    pub hit: bool,
    pub fwd: Option<Fwd>,
    pub fwd_status: Option<u16>,
    pub stored: bool,
    pub collapsed: bool,
    pub ttl: Option<i64>,
    pub detail: Option<&'static str>,
}

impl CacheStatus {
    pub fn hit(ttl: i64) -> Self {
        CacheStatus {
            hit: true,
            ttl: Some(ttl),
            ..Default::default()
        }
    }

    pub fn fwd(fwd: Fwd) -> Self {
        CacheStatus {
            fwd: Some(fwd),
            ..Default::default()
        }
    }

    /// The field value for a node named `node` (a token).
    pub fn render(&self, node: &str) -> String {
        use fmt::Write as _;
        // Sized once: grown from empty it took three allocations on every response.
        let mut out = String::with_capacity(node.len() + 64);
        let _ = write!(out, "{}", self.with_node(node));
        out
    }

    /// The field value, for writing straight into a buffer of the caller's.
    pub fn display<'a>(&'a self, node: &'a str) -> impl fmt::Display + 'a {
        self.with_node(node)
    }

    fn with_node<'a>(&'a self, node: &'a str) -> Rendered<'a> {
        Rendered { node, s: self }
    }
}

struct Rendered<'a> {
    node: &'a str,
    s: &'a CacheStatus,
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.s;
        f.write_str(self.node)?;
        if s.hit {
            f.write_str("; hit")?;
        }
        if let Some(fwd) = s.fwd {
            write!(f, "; fwd={}", fwd.as_str())?;
        }
        if let Some(code) = s.fwd_status {
            write!(f, "; fwd-status={code}")?;
        }
        if s.stored {
            f.write_str("; stored")?;
        }
        if s.collapsed {
            f.write_str("; collapsed")?;
        }
        if let Some(ttl) = s.ttl {
            write!(f, "; ttl={ttl}")?;
        }
        if let Some(d) = s.detail {
            write!(f, "; detail={d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc_9211_fields() {
        assert_eq!(CacheStatus::hit(42).render("pop1"), "pop1; hit; ttl=42");
        let miss = CacheStatus {
            fwd: Some(Fwd::UriMiss),
            fwd_status: Some(200),
            stored: true,
            ..Default::default()
        };
        assert_eq!(
            miss.render("pop1"),
            "pop1; fwd=uri-miss; fwd-status=200; stored"
        );
        let stale = CacheStatus {
            hit: true,
            fwd: Some(Fwd::Stale),
            fwd_status: Some(503),
            ttl: Some(-20),
            detail: Some("stale-if-error"),
            ..Default::default()
        };
        assert_eq!(
            stale.render("pop1"),
            "pop1; hit; fwd=stale; fwd-status=503; ttl=-20; detail=stale-if-error"
        );
        let c = CacheStatus {
            fwd: Some(Fwd::UriMiss),
            collapsed: true,
            ..Default::default()
        };
        assert_eq!(c.render("n"), "n; fwd=uri-miss; collapsed");
    }
}
