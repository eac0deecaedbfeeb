//! Checked constructors for what the config compiles into: each validates its input and says
//! what is wrong in an [`Error`] the config turns into `file:line:col: reason`.

use edge_core::cidr::{Cidr, CidrSet};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::action::{HeaderAction, Redirect, Respond, Rewrite};
use crate::condition::{Condition, ValueTest, regex};
use crate::template::{Template, Var};
use crate::{Error, Result};

/// Longest direct-response body (it is kept in memory with the config).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

fn header_name(name: &str) -> Result<HeaderName> {
    HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| Error::HeaderName(name.into()))
}

/// A template for a header value: its literal parts must be valid in a header.
fn header_template(text: &str) -> Result<Template> {
    let t = Template::parse(text, false)?;
    if t.literals().any(|l| HeaderValue::from_str(l).is_err()) {
        return Err(Error::HeaderValue(text.into()));
    }
    Ok(t)
}

impl HeaderAction {
    /// `set = { NAME = "value with ${variables}" }`.
    pub fn set(name: &str, value: &str) -> Result<HeaderAction> {
        Ok(HeaderAction::Set(
            header_name(name)?,
            header_template(value)?,
        ))
    }

    /// `append = { NAME = "…" }`.
    pub fn append(name: &str, value: &str) -> Result<HeaderAction> {
        Ok(HeaderAction::Append(
            header_name(name)?,
            header_template(value)?,
        ))
    }

    /// `remove = [NAME]`.
    pub fn remove(name: &str) -> Result<HeaderAction> {
        Ok(HeaderAction::Remove(header_name(name)?))
    }
}

impl Redirect {
    pub fn new(status: u16, location: &str) -> Result<Redirect> {
        if ![301, 302, 307, 308].contains(&status) {
            return Err(Error::RedirectStatus(status));
        }
        let status = StatusCode::from_u16(status).map_err(|_| Error::RedirectStatus(status))?;
        Ok(Redirect {
            status,
            location: header_template(location)?,
        })
    }
}

impl Respond {
    /// `status: None` only in response rules (keep the origin's status).
    pub fn new(status: Option<u16>, body: &str, content_type: &str) -> Result<Respond> {
        let status = status
            .map(|s| StatusCode::from_u16(s).map_err(|_| Error::Status(u32::from(s))))
            .transpose()?;
        if body.len() > MAX_BODY_BYTES {
            return Err(Error::Rule(format!(
                "respond body is {} bytes; at most {MAX_BODY_BYTES}",
                body.len()
            )));
        }
        Ok(Respond {
            status,
            body: Template::parse(body, false)?,
            content_type: HeaderValue::from_str(content_type)
                .map_err(|_| Error::HeaderValue(content_type.into()))?,
        })
    }
}

impl Rewrite {
    /// `{ from = "^/old/(.*)$", to = "/new/$1" }`.
    pub fn regex(from: &str, to: &str) -> Result<Rewrite> {
        let re = regex(from)?;
        let to = Template::parse(to, true)?;
        if let Some(n) = to.max_capture()
            && n >= re.captures_len()
        {
            return Err(Error::Template(
                to.to_string(),
                format!(
                    "${n}, but the regex has {} capture group(s)",
                    re.captures_len() - 1
                ),
            ));
        }
        Ok(Rewrite::Regex { from: re, to })
    }

    /// `{ path = "/new${path}", query = "…" }`; at least one of them.
    pub fn set(path: Option<&str>, query: Option<&str>) -> Result<Rewrite> {
        if path.is_none() && query.is_none() {
            return Err(Error::Rule(
                "rewrite needs from/to, or path and/or query".into(),
            ));
        }
        let path = path.map(|p| Template::parse(p, false)).transpose()?;
        if let Some(p) = &path
            && !p.text().starts_with('/')
            && !p.text().starts_with("${path}")
        {
            return Err(Error::Rule(format!("rewrite path {p} must start with '/'")));
        }
        Ok(Rewrite::Set {
            path,
            query: query.map(|q| Template::parse(q, false)).transpose()?,
        })
    }
}

impl ValueTest {
    /// From the `present`/`equals`/`regex` keys of a header, cookie or query test; exactly one
    /// of them.
    pub fn from_keys(
        present: Option<bool>,
        equals: Option<&str>,
        regex_pattern: Option<&str>,
    ) -> Result<ValueTest> {
        match (present, equals, regex_pattern) {
            (Some(true), None, None) => Ok(ValueTest::Present),
            (Some(false), None, None) => Ok(ValueTest::Absent),
            (None, Some(v), None) => Ok(ValueTest::Equals(v.into())),
            (None, None, Some(p)) => Ok(ValueTest::Regex(regex(p)?)),
            _ => Err(Error::Rule(
                "give exactly one of present, equals or regex".into(),
            )),
        }
    }
}

impl Condition {
    pub fn header(name: &str, test: ValueTest) -> Result<Condition> {
        Ok(Condition::Header(header_name(name)?, test))
    }

    /// Client address ranges (`10.0.0.0/8`, `2001:db8::/32`, a bare address).
    pub fn client<S: AsRef<str>>(ranges: &[S]) -> Result<Condition> {
        let mut cidrs = Vec::new();
        let mut texts = Vec::new();
        for r in ranges {
            let c: Cidr = r.as_ref().trim().parse().map_err(Error::Cidr)?;
            texts.push(c.to_string());
            cidrs.push(c);
        }
        Ok(Condition::Client(CidrSet::new(&cidrs), texts))
    }

    /// Two-letter codes (countries: ISO 3166-1 alpha-2; continents: AF, AN, AS, EU, NA, OC,
    /// SA), kept upper case.
    pub fn codes<S: AsRef<str>>(codes: &[S], continents: bool) -> Result<Condition> {
        let mut out = Vec::new();
        for c in codes {
            let c = c.as_ref().trim().to_ascii_uppercase();
            let ok = if continents {
                ["AF", "AN", "AS", "EU", "NA", "OC", "SA"].contains(&c.as_str())
            } else {
                c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())
            };
            if !ok {
                return Err(Error::Rule(format!(
                    "{c:?} is not a {} code",
                    if continents {
                        "continent (AF, AN, AS, EU, NA, OC, SA)"
                    } else {
                        "two-letter country"
                    }
                )));
            }
            out.push(c);
        }
        Ok(if continents {
            Condition::Continent(out)
        } else {
            Condition::Country(out)
        })
    }
}

impl Var {
    /// A variable a cache key may add: not `request_id` (every request would be its own
    /// object).
    pub fn parse_cache_key(name: &str) -> Result<Var> {
        match Var::parse(name.trim())? {
            Var::RequestId => Err(Error::Rule(
                "request_id in a cache key would make every request a miss".into(),
            )),
            v => Ok(v),
        }
    }
}
