//! `Cache-Status` (RFC 9211).

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
        let mut out = Vec::with_capacity(node.len() + 64);
        self.write_to(node, &mut out);
        // Only `node` is not ours, and it came in as a str.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends the field value to `out`: written directly, where `fmt` cost ~500 instructions
    /// on every response.
    pub fn write_to(&self, node: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(node.as_bytes());
        if self.hit {
            out.extend_from_slice(b"; hit");
        }
        if let Some(fwd) = self.fwd {
            out.extend_from_slice(b"; fwd=");
            out.extend_from_slice(fwd.as_str().as_bytes());
        }
        if let Some(code) = self.fwd_status {
            out.extend_from_slice(b"; fwd-status=");
            decimal(i64::from(code), out);
        }
        if self.stored {
            out.extend_from_slice(b"; stored");
        }
        if self.collapsed {
            out.extend_from_slice(b"; collapsed");
        }
        if let Some(ttl) = self.ttl {
            out.extend_from_slice(b"; ttl=");
            decimal(ttl, out);
        }
        if let Some(d) = self.detail {
            out.extend_from_slice(b"; detail=");
            out.extend_from_slice(d.as_bytes());
        }
    }
}

fn decimal(n: i64, out: &mut Vec<u8>) {
    if n < 0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_written_as_decimals_of_any_sign() {
        for ttl in [0, 7, 10, 3599, -1, -20, i64::MAX, i64::MIN] {
            assert_eq!(
                CacheStatus::hit(ttl).render("n"),
                format!("n; hit; ttl={ttl}")
            );
        }
    }

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
