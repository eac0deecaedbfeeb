//! Content codings: `Accept-Encoding` negotiation (RFC 9110 §12.5.3) and the rules for when a
//! response may be compressed. Pure functions of header values; the edge does the I/O.

use std::fmt;
use std::str::FromStr;

use http::header::{self, HeaderMap, HeaderValue};

/// The content codings the edge produces and decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Coding {
    Zstd,
    Br,
    Gzip,
}

impl Coding {
    pub const ALL: [Coding; 3] = [Coding::Zstd, Coding::Br, Coding::Gzip];

    /// The token as it appears in `Content-Encoding` and `Accept-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The coding a `Content-Encoding` value names, if it is one we can decode.
    /// `x-gzip` is gzip (RFC 9110 §8.4.1.3).
    pub fn from_token(token: &str) -> Option<Coding> {
        let t = token.trim();
        if t.eq_ignore_ascii_case("gzip") || t.eq_ignore_ascii_case("x-gzip") {
            Some(Coding::Gzip)
        } else if t.eq_ignore_ascii_case("br") {
            Some(Coding::Br)
        } else if t.eq_ignore_ascii_case("zstd") {
            Some(Coding::Zstd)
        } else {
            None
        }
    }
}

impl fmt::Display for Coding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Coding {
    type Err = String;

    fn from_str(s: &str) -> Result<Coding, String> {
        Coding::from_token(s)
            .filter(|_| !s.eq_ignore_ascii_case("x-gzip"))
            .ok_or_else(|| format!("unknown content coding `{s}` (expected zstd, br or gzip)"))
    }
}

/// A parsed `Accept-Encoding` field: the weight of each coding the client named.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcceptEncoding {
    /// Weights in thousandths (q=0.5 is 500), per coding we know.
    known: [Option<u16>; 3],
    identity: Option<u16>,
    star: Option<u16>,
    /// The field was present (an empty field means "identity only").
    present: bool,
}

impl AcceptEncoding {
    /// Parses every `Accept-Encoding` field of a request. Elements with an unknown coding are
    /// ignored; elements with a malformed weight are ignored as a whole.
    pub fn from_headers(headers: &HeaderMap) -> AcceptEncoding {
        let mut ae = AcceptEncoding::default();
        for value in headers.get_all(header::ACCEPT_ENCODING) {
            ae.present = true;
            let Ok(value) = value.to_str() else { continue };
            for element in value.split(',') {
                ae.add(element);
            }
        }
        ae
    }

    /// Parses one field value.
    pub fn parse(value: &str) -> AcceptEncoding {
        let mut ae = AcceptEncoding {
            present: true,
            ..Default::default()
        };
        for element in value.split(',') {
            ae.add(element);
        }
        ae
    }

    fn add(&mut self, element: &str) {
        let mut parts = element.split(';');
        let coding = parts.next().unwrap_or("").trim();
        if coding.is_empty() {
            return;
        }
        let mut q = 1000;
        for param in parts {
            let Some((name, value)) = param.split_once('=') else {
                return;
            };
            if name.trim().eq_ignore_ascii_case("q") {
                match parse_qvalue(value.trim()) {
                    Some(v) => q = v,
                    None => return,
                }
            }
        }
        let slot = if coding == "*" {
            &mut self.star
        } else if coding.eq_ignore_ascii_case("identity") {
            &mut self.identity
        } else if let Some(c) = Coding::from_token(coding) {
            &mut self.known[index(c)]
        } else {
            return;
        };
        // A coding named twice keeps its highest weight.
        *slot = Some(slot.map_or(q, |old| old.max(q)));
    }

    /// The weight the client gives `coding` (thousandths), counting `*`.
    fn weight(&self, coding: Coding) -> u16 {
        if !self.present {
            return 0;
        }
        self.known[index(coding)].or(self.star).unwrap_or(0)
    }

    /// Whether the client takes a body in `coding`. A request without the field is treated as
    /// "identity only": RFC 9110 allows any coding then, but clients that send nothing (curl,
    /// scripts) rarely decode anything.
    pub fn accepts(&self, coding: Coding) -> bool {
        self.weight(coding) > 0
    }

    fn identity_weight(&self) -> u16 {
        if !self.present {
            return 1000;
        }
        match (self.identity, self.star) {
            (Some(q), _) => q,
            (None, Some(0)) => 0,
            // Identity is acceptable unless excluded (§12.5.3).
            _ => 1000,
        }
    }

    /// Whether an unencoded body is acceptable.
    pub fn accepts_identity(&self) -> bool {
        self.identity_weight() > 0
    }

    /// Picks the coding for a response: the acceptable coding with the highest weight, ties
    /// broken by `preference` (the server's order). `None` means identity: no coding in
    /// `preference` is acceptable, or identity weighs more than all of them. When nothing at all
    /// is acceptable the edge still answers with identity, as RFC 9110 §12.5.3 allows.
    pub fn negotiate(&self, preference: &[Coding]) -> Option<Coding> {
        let mut best: Option<(Coding, u16)> = None;
        for &c in preference {
            let w = self.weight(c);
            if w > 0 && best.is_none_or(|(_, bw)| w > bw) {
                best = Some((c, w));
            }
        }
        let (coding, w) = best?;
        // Identity is acceptable by default, but only an explicit weight can outrank a coding.
        (w >= self.identity.unwrap_or(0)).then_some(coding)
    }
}

fn index(c: Coding) -> usize {
    match c {
        Coding::Zstd => 0,
        Coding::Br => 1,
        Coding::Gzip => 2,
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` (RFC 9110 §12.4.2), in
/// thousandths.
fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Media types that are never worth compressing, whatever the configured list says: they are
/// compressed already.
fn never_compressible(essence: &str) -> bool {
    let (ty, sub) = essence.split_once('/').unwrap_or((essence, ""));
    match ty {
        "image" => !matches!(sub, "svg+xml" | "x-icon" | "vnd.microsoft.icon" | "bmp"),
        "audio" | "video" => true,
        "font" => matches!(sub, "woff" | "woff2"),
        "application" => matches!(
            sub,
            "zip"
                | "gzip"
                | "x-gzip"
                | "zstd"
                | "x-bzip2"
                | "x-xz"
                | "x-7z-compressed"
                | "vnd.rar"
                | "x-rar-compressed"
                | "font-woff"
                | "font-woff2"
                | "x-font-woff"
        ),
        _ => false,
    }
}

/// The default compressible list: text, JSON, JavaScript, XML, SVG, wasm, uncompressed fonts.
pub const DEFAULT_COMPRESSIBLE: &[&str] = &[
    "text/*",
    "application/json",
    "application/*+json",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/xml",
    "application/*+xml",
    "application/xhtml+xml",
    "application/wasm",
    "application/x-ndjson",
    "application/graphql-response+json",
    "image/svg+xml",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "font/ttf",
    "font/otf",
    "application/vnd.ms-fontobject",
    "application/x-font-ttf",
];

/// Whether a pattern from the compressible list is well formed: `type/subtype`, `type/*` or
/// `type/*+suffix`, lower case.
pub fn valid_type_pattern(p: &str) -> bool {
    let Some((ty, sub)) = p.split_once('/') else {
        return false;
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$&-^_.+".contains(&b))
    };
    token(ty)
        && (sub == "*"
            || sub.strip_prefix("*+").is_some_and(token)
            || (token(sub) && !sub.contains('*')))
}

/// The media type of a `Content-Type` value without parameters, lower-cased.
pub fn media_essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether a response of this `Content-Type` may be compressed given the configured list.
pub fn compressible_type(content_type: Option<&str>, list: &MediaTypes) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    let check = |e: &str| !never_compressible(e) && list.matches(e);
    // Media types are lower case in practice: only allocate for the odd one that is not.
    if essence.bytes().any(|b| b.is_ascii_uppercase()) {
        check(&essence.to_ascii_lowercase())
    } else {
        check(essence)
    }
}

/// Whether a response carries a content coding other than `identity`.
pub fn has_content_encoding(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONTENT_ENCODING).iter().any(|v| {
        v.to_str().map_or(true, |s| {
            s.split(',')
                .any(|t| !t.trim().is_empty() && !t.trim().eq_ignore_ascii_case("identity"))
        })
    })
}

/// The single coding a response is encoded with, if it is exactly one we can decode.
pub fn single_coding(headers: &HeaderMap) -> Option<Coding> {
    let mut values = headers.get_all(header::CONTENT_ENCODING).iter();
    let v = values.next()?.to_str().ok()?;
    if values.next().is_some() || v.contains(',') {
        return None;
    }
    Coding::from_token(v)
}

/// The `ETag` of a transformed representation: a strong validator cannot stay strong once the
/// bytes differ (RFC 9110 §8.8.1), so it is marked weak. Weak comparison (used by
/// `If-None-Match`) still matches the identity's tag, so revalidation keeps working.
pub fn weaken_etag(etag: &str) -> String {
    let t = etag.trim();
    if t.starts_with("W/") {
        t.to_string()
    } else {
        format!("W/{t}")
    }
}

/// A site's compression settings, as the representation rules need them.
#[derive(Debug, Clone, Copy)]
pub struct CompressPolicy<'a> {
    pub enabled: bool,
    /// Compressible media type patterns.
    pub types: &'a MediaTypes,
    /// Smaller bodies are sent as they are.
    pub min_bytes: u64,
    /// The server's order among codings the client weighs equally.
    pub prefer: &'a [Coding],
}

impl CompressPolicy<'_> {
    /// Whether a response's representation depends on `Accept-Encoding`: its media type is
    /// compressible, it is not encoded yet, `no-transform` is absent and it is not too small.
    pub fn eligible(&self, headers: &HeaderMap, len: Option<u64>) -> bool {
        self.enabled
            && !has_content_encoding(headers)
            && compressible_type(
                headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok()),
                self.types,
            )
            && len.is_none_or(|n| n >= self.min_bytes)
            && !no_transform(headers)
    }

    /// [`eligible`](Self::eligible) for a stored response, whose Cache-Control a hit has
    /// parsed already.
    pub fn eligible_stored(&self, meta: &crate::rules::StoredMeta) -> bool {
        self.enabled
            && !meta.content_encoded()
            && meta.compressible_under(self.types)
            && meta.body_len >= self.min_bytes
            && !meta.no_transform()
    }
}

/// `Cache-Control: no-transform`: intermediaries must not change the content (RFC 9111 §5.2.2.6).
pub fn no_transform(headers: &HeaderMap) -> bool {
    crate::cache_control::CacheControl::from_headers(headers, &header::CACHE_CONTROL)
        .is_some_and(|c| c.no_transform)
}

/// Adds `Vary: Accept-Encoding` unless the response already varies on it (or on everything).
pub fn add_vary(headers: &mut HeaderMap) {
    let mut joined = String::new();
    for v in headers.get_all(header::VARY) {
        let Ok(s) = v.to_str() else { continue };
        if s.split(',')
            .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case("accept-encoding"))
        {
            return;
        }
        if !joined.is_empty() {
            joined.push_str(", ");
        }
        joined.push_str(s);
    }
    if !joined.is_empty() {
        joined.push_str(", ");
    }
    joined.push_str("Accept-Encoding");
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(header::VARY, v);
    }
}

/// Header changes for a body now sent in `coding` (None: decoded to identity): the old
/// length is gone, validators are weakened, ranges no longer apply to these bytes.
pub fn mark_transformed(headers: &mut HeaderMap, coding: Option<Coding>) {
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ACCEPT_RANGES);
    match coding {
        Some(c) => {
            headers.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(c.as_str()),
            );
        }
        None => {
            headers.remove(header::CONTENT_ENCODING);
        }
    }
    weaken_etag_field(headers);
}

/// Makes the `ETag` field weak (see [`weaken_etag`]).
pub fn weaken_etag_field(headers: &mut HeaderMap) {
    if let Some(etag) = headers.get(header::ETAG).and_then(|v| v.to_str().ok())
        && let Ok(v) = HeaderValue::from_str(&weaken_etag(etag))
    {
        headers.insert(header::ETAG, v);
    }
}

mod media_types;
pub use media_types::MediaTypes;

#[cfg(test)]
mod tests;
