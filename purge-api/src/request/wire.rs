//! The JSON body and Fastly headers, field by field, so that every error can name the field
//! (and item) at fault, which serde's derived errors cannot do reliably.

use std::fmt;

use http::HeaderMap;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::normalise;
use super::{MAX_ITEM_BYTES, MAX_ITEMS, MAX_TAG_BYTES, RequestError, Targets};

pub(super) const SURROGATE_KEY: &str = "Surrogate-Key";
const FASTLY_SOFT_PURGE: &str = "Fastly-Soft-Purge";

/// The body's fields, sorted into what they mean.
#[derive(Default)]
pub(super) struct Body {
    /// The one target field and its value.
    pub target: Option<(String, Value)>,
    pub soft: bool,
    pub sites: Option<Value>,
    /// `everything: false` (or `purge_everything: false`) was given.
    pub everything_false: Option<String>,
}

impl Body {
    pub fn parse(bytes: &[u8]) -> Result<Body, RequestError> {
        // Fastly sends no body at all.
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body::default());
        }
        let fields: Fields = serde_json::from_slice(bytes).map_err(|e| {
            if e.is_data() {
                RequestError::NotObject
            } else {
                RequestError::Json(e.to_string())
            }
        })?;
        let mut body = Body::default();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in fields.0 {
            if seen.contains(&name) {
                return Err(RequestError::DuplicateField(name));
            }
            match name.as_str() {
                "soft" => body.soft = boolean(&name, &value)?,
                "sites" => body.sites = Some(value),
                "urls" | "files" | "prefixes" | "tags" | "hosts" => {
                    body.set_target(&name, value)?;
                }
                "everything" | "purge_everything" => {
                    if boolean(&name, &value)? {
                        body.set_target(&name, value)?;
                    } else {
                        body.everything_false = Some(name.clone());
                    }
                }
                _ => return Err(RequestError::UnknownField(name)),
            }
            seen.push(name);
        }
        Ok(body)
    }

    fn set_target(&mut self, name: &str, value: Value) -> Result<(), RequestError> {
        if let Some((first, _)) = &self.target {
            return Err(RequestError::TwoKinds {
                first: first.clone(),
                second: name.to_owned(),
            });
        }
        self.target = Some((name.to_owned(), value));
        Ok(())
    }
}

/// The target field's value, validated and normalised.
pub(super) fn targets(field: &str, value: Value) -> Result<Targets, RequestError> {
    Ok(match field {
        "urls" => Targets::Urls(list(field, value, MAX_ITEM_BYTES, normalise::url)?),
        "files" => Targets::Urls(files(value)?),
        "prefixes" => Targets::Prefixes(list(field, value, MAX_ITEM_BYTES, normalise::prefix)?),
        "tags" => Targets::Tags(list(field, value, MAX_TAG_BYTES, normalise::tag)?),
        "hosts" => Targets::Hosts(list(field, value, MAX_ITEM_BYTES, normalise::host)?),
        // Only `true` makes it here (see `Body::parse`); `sites` is added by the caller.
        _ => Targets::Everything { sites: None },
    })
}

fn boolean(field: &str, value: &Value) -> Result<bool, RequestError> {
    value.as_bool().ok_or_else(|| RequestError::WrongType {
        field: field.to_owned(),
        expected: "true or false",
    })
}

fn array(field: &str, value: Value) -> Result<Vec<Value>, RequestError> {
    let Value::Array(items) = value else {
        return Err(RequestError::WrongType {
            field: field.to_owned(),
            expected: "an array of strings",
        });
    };
    if items.is_empty() {
        return Err(RequestError::Empty {
            field: field.to_owned(),
        });
    }
    if items.len() > MAX_ITEMS {
        return Err(RequestError::TooMany {
            field: field.to_owned(),
            limit: MAX_ITEMS,
        });
    }
    Ok(items)
}

fn item<T>(
    field: &str,
    index: usize,
    s: &str,
    max_bytes: usize,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, RequestError> {
    let bad = |reason: String| RequestError::BadItem {
        field: field.to_owned(),
        index,
        reason,
    };
    if s.len() > max_bytes {
        return Err(bad(format!("longer than {max_bytes} bytes")));
    }
    parse(s).map_err(bad)
}

/// A non-empty array of at most [`MAX_ITEMS`] strings, each parsed by `parse`.
pub(super) fn list<T>(
    field: &str,
    value: Value,
    max_bytes: usize,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, RequestError> {
    array(field, value)?
        .iter()
        .enumerate()
        .map(|(index, value)| match value {
            Value::String(s) => item(field, index, s, max_bytes, parse),
            _ => Err(RequestError::WrongType {
                field: format!("{field}[{index}]"),
                expected: "a string",
            }),
        })
        .collect()
}

/// Cloudflare's `files`: URL strings or `{"url": ..., "headers": {...}}`. The headers select
/// a cached variant there; a purge here covers every variant, so they are ignored.
fn files(value: Value) -> Result<Vec<super::UrlTarget>, RequestError> {
    const FIELD: &str = "files";
    let wrong = |index: usize, expected| RequestError::WrongType {
        field: format!("{FIELD}[{index}]"),
        expected,
    };
    let mut out = Vec::new();
    for (index, value) in array(FIELD, value)?.iter().enumerate() {
        let url = match value {
            Value::String(s) => s,
            Value::Object(object) => {
                if let Some(key) = object.keys().find(|k| *k != "url" && *k != "headers") {
                    return Err(RequestError::UnknownField(format!(
                        "{FIELD}[{index}].{key}"
                    )));
                }
                match object.get("url") {
                    Some(Value::String(s)) => s,
                    _ => return Err(wrong(index, "an object with a `url` string")),
                }
            }
            _ => return Err(wrong(index, "a URL string or an object with a `url`")),
        };
        out.push(item(FIELD, index, url, MAX_ITEM_BYTES, normalise::url)?);
    }
    Ok(out)
}

/// `Fastly-Soft-Purge: 1` makes any purge soft; `0` is the default.
pub(super) fn fastly_soft(headers: &HeaderMap) -> Result<bool, RequestError> {
    let mut soft = false;
    for value in headers.get_all(FASTLY_SOFT_PURGE) {
        match value.as_bytes().trim_ascii() {
            b"1" => soft = true,
            b"0" => {}
            _ => {
                return Err(RequestError::BadHeader {
                    header: FASTLY_SOFT_PURGE,
                    reason: "expected 1 or 0".to_owned(),
                });
            }
        }
    }
    Ok(soft)
}

/// The keys of every `Surrogate-Key` header value (space-separated); `None` without one.
pub(super) fn surrogate_keys(headers: &HeaderMap) -> Result<Option<Vec<String>>, RequestError> {
    let mut values = headers.get_all(SURROGATE_KEY).iter().peekable();
    if values.peek().is_none() {
        return Ok(None);
    }
    let mut keys = Vec::new();
    for value in values {
        let value = std::str::from_utf8(value.as_bytes()).map_err(|_| RequestError::BadHeader {
            header: SURROGATE_KEY,
            reason: "not UTF-8".to_owned(),
        })?;
        keys.extend(value.split_ascii_whitespace());
    }
    if keys.is_empty() {
        return Err(RequestError::Empty {
            field: SURROGATE_KEY.to_owned(),
        });
    }
    if keys.len() > MAX_ITEMS {
        return Err(RequestError::TooMany {
            field: SURROGATE_KEY.to_owned(),
            limit: MAX_ITEMS,
        });
    }
    keys.into_iter()
        .enumerate()
        .map(|(index, key)| item(SURROGATE_KEY, index, key, MAX_TAG_BYTES, normalise::tag))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A JSON object's members in order, duplicates kept so that they can be refused (a
/// `serde_json::Map` silently keeps the last one).
struct Fields(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Fields, D::Error> {
        deserializer.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut fields = Vec::new();
        while let Some(entry) = map.next_entry::<String, Value>()? {
            fields.push(entry);
        }
        Ok(Fields(fields))
    }
}
