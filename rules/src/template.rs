//! Templates for header values, redirect targets, rewrites and response bodies: literal text
//! with `${variable}`s, parsed once when the config compiles (an unknown variable is an error
//! then, never a surprise at request time). `$$` is a literal `$`. Rewrite targets may also use
//! the regex's captures, `$1` or `${1}` (`$0`: the whole match).

use std::cell::OnceCell;
use std::fmt;
use std::fmt::Write as _;

use crate::device::{self, Device};
use crate::{Error, RequestFacts, Result};

/// A value a template or a cache key can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Var {
    /// The visitor's address.
    Client,
    /// Country code (empty when unknown).
    Country,
    /// Continent code (empty when unknown).
    Continent,
    RequestId,
    /// The A/B bucket, 0-99 (needs `[sites.ab]`).
    Bucket,
    /// `mobile`, `tablet`, `desktop` or `bot`.
    Device,
    Host,
    /// The request's path (before any rewrite).
    Path,
    /// The query without `?` (empty when none).
    Query,
    /// `https` or `http`.
    Scheme,
}

/// Every variable name, for error messages.
pub(crate) const VAR_NAMES: &str =
    "client, country, continent, request_id, bucket, device, host, path, query, scheme";

impl Var {
    pub fn parse(name: &str) -> Result<Var> {
        Ok(match name {
            "client" => Var::Client,
            "country" => Var::Country,
            "continent" => Var::Continent,
            "request_id" => Var::RequestId,
            "bucket" => Var::Bucket,
            "device" => Var::Device,
            "host" => Var::Host,
            "path" => Var::Path,
            "query" => Var::Query,
            "scheme" => Var::Scheme,
            _ => return Err(Error::UnknownVariable(name.into(), VAR_NAMES)),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Var::Client => "client",
            Var::Country => "country",
            Var::Continent => "continent",
            Var::RequestId => "request_id",
            Var::Bucket => "bucket",
            Var::Device => "device",
            Var::Host => "host",
            Var::Path => "path",
            Var::Query => "query",
            Var::Scheme => "scheme",
        }
    }
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(Var),
    Capture(usize),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
    /// Made once when the template has no variables and is a valid header value: the value
    /// is then a reference-counted copy per request, not a render and a validation.
    literal: Option<http::HeaderValue>,
}

impl Template {
    /// Parses `text`; `captures`: whether `$1`… are allowed (rewrite targets only).
    pub fn parse(text: &str, captures: bool) -> Result<Template> {
        let err = |why: &str| Error::Template(text.into(), why.into());
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            lit.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (part, used) = if let Some(tail) = after.strip_prefix('$') {
                lit.push('$');
                rest = tail;
                continue;
            } else if let Some(body) = after.strip_prefix('{') {
                let end = body.find('}').ok_or_else(|| err("'${' without '}'"))?;
                let name = &body[..end];
                let part = match name.parse::<usize>() {
                    Ok(n) if captures => Part::Capture(n),
                    Ok(_) => return Err(err("captures ($1) are only allowed in a rewrite's `to`")),
                    Err(_) => Part::Var(Var::parse(name)?),
                };
                (part, end + 2)
            } else {
                let digits = after.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 {
                    return Err(err(
                        "'$' must start ${variable} (write $$ for a literal '$')",
                    ));
                }
                if !captures {
                    return Err(err("captures ($1) are only allowed in a rewrite's `to`"));
                }
                let n = after[..digits]
                    .parse()
                    .map_err(|_| err("capture number too large"))?;
                (Part::Capture(n), digits)
            };
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(part);
            rest = &after[used..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        let literal = parts
            .iter()
            .all(|p| matches!(p, Part::Lit(_)))
            .then(|| http::HeaderValue::from_str(&text.replace("$$", "$")).ok())
            .flatten();
        Ok(Template {
            text: text.into(),
            parts,
            literal,
        })
    }

    /// The template as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the template uses `var`.
    pub fn uses(&self, var: Var) -> bool {
        self.parts.contains(&Part::Var(var))
    }

    /// The highest capture group it names, if any.
    pub fn max_capture(&self) -> Option<usize> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Capture(n) => Some(*n),
                _ => None,
            })
            .max()
    }

    /// The literal text parts (validated as header values when compiled).
    pub(crate) fn literals(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Lit(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// The template as a header value for this request (`None`: the request's values made it
    /// an invalid one).
    pub(crate) fn header_value(&self, cx: &Context<'_>) -> Option<http::HeaderValue> {
        if let Some(v) = &self.literal {
            return Some(v.clone());
        }
        // From the String without a copy.
        http::HeaderValue::try_from(self.render(cx, None)).ok()
    }

    pub(crate) fn render(&self, cx: &Context<'_>, caps: Option<&regex::Captures<'_>>) -> String {
        let mut out = String::with_capacity(self.text.len() + 32);
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) => cx.write(*v, &mut out),
                Part::Capture(n) => {
                    if let Some(m) = caps.and_then(|c| c.get(*n)) {
                        out.push_str(m.as_str());
                    }
                }
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

/// One evaluation's values: the facts, plus the device class (classified on first use) and the
/// A/B bucket.
pub(crate) struct Context<'a> {
    pub facts: &'a RequestFacts<'a>,
    pub bucket: Option<u8>,
    device: OnceCell<Device>,
    /// The client address as text, formatted once.
    client: OnceCell<String>,
}

impl<'a> Context<'a> {
    pub fn new(facts: &'a RequestFacts<'a>, bucket: Option<u8>) -> Context<'a> {
        Context {
            facts,
            bucket,
            device: OnceCell::new(),
            client: OnceCell::new(),
        }
    }

    pub fn device(&self) -> Device {
        *self
            .device
            .get_or_init(|| device::classify(self.facts.headers))
    }

    /// The device class if anything asked for it.
    pub fn device_if_known(&self) -> Option<Device> {
        self.device.get().copied()
    }

    pub fn write(&self, v: Var, out: &mut String) {
        let f = self.facts;
        match v {
            Var::Client => out.push_str(
                self.client
                    .get_or_init(|| f.client.to_canonical().to_string()),
            ),
            Var::Country => out.push_str(f.country.unwrap_or("")),
            Var::Continent => out.push_str(f.continent.unwrap_or("")),
            Var::RequestId => out.push_str(f.request_id),
            Var::Bucket => {
                if let Some(b) = self.bucket {
                    let _ = write!(out, "{b}");
                }
            }
            Var::Device => out.push_str(self.device().as_str()),
            Var::Host => out.push_str(f.host),
            Var::Path => out.push_str(f.path),
            Var::Query => out.push_str(f.query.unwrap_or("")),
            Var::Scheme => out.push_str(if f.https { "https" } else { "http" }),
        }
    }

    pub fn value(&self, v: Var) -> String {
        let mut s = String::new();
        self.write(v, &mut s);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        let t = Template::parse("https://${host}/a${path}?$$x", false).expect("template");
        assert!(t.uses(Var::Host) && t.uses(Var::Path) && !t.uses(Var::Query));
        assert_eq!(t.literals().collect::<Vec<_>>(), ["https://", "/a", "?$x"]);
        let t = Template::parse("/new/$1/${2}", true).expect("template");
        assert_eq!(t.max_capture(), Some(2));
        for (bad, captures) in [
            ("${nope}", false),
            ("${host", false),
            ("$1", false),
            ("${1}", false),
            ("a $ b", true),
        ] {
            assert!(Template::parse(bad, captures).is_err(), "{bad}");
        }
        assert!(matches!(
            Template::parse("${nope}", false),
            Err(Error::UnknownVariable(..))
        ));
    }
}
