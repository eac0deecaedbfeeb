//! The disk tier's metadata format: what is written beside each object, and the format marker
//! that keeps a directory written by another format from ever being misread.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use super::{CacheError, Ticket};
use crate::rules::StoredMeta;

/// Bumped whenever what is written changes meaning. 2: objects carry their fill ticket.
/// 3: and their surrogate keys (tags).
pub(crate) const FORMAT: &str = "edge-cache-format 3";

/// What the store keeps beside the rules' metadata: the fill's ticket and the object's tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extra {
    pub ticket: Ticket,
    pub tags: Vec<Arc<str>>,
}
const MARKER: &str = "edge-format";

#[derive(Serialize, Deserialize)]
struct MetaJson {
    status: u16,
    headers: Vec<(String, String)>,
    request_time_ms: u64,
    response_time_ms: u64,
    vary: Vec<(String, Option<String>)>,
    body_len: u64,
    generation: u64,
    ticket: u64,
    #[serde(default)]
    tags: Vec<String>,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn encode(m: &StoredMeta, extra: &Extra) -> serde_json::Value {
    let json = MetaJson {
        status: m.status.as_u16(),
        // Stored header values are visible ASCII in practice; others are not kept.
        headers: m
            .headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        request_time_ms: ms(m.request_time),
        response_time_ms: ms(m.response_time),
        vary: m
            .vary
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.clone()))
            .collect(),
        body_len: m.body_len,
        generation: m.generation,
        ticket: extra.ticket.0,
        tags: extra.tags.iter().map(|t| t.to_string()).collect(),
    };
    serde_json::to_value(json).unwrap_or_default()
}

pub(crate) fn decode(key: &str, v: serde_json::Value) -> Result<(StoredMeta, Extra), CacheError> {
    let corrupt = |reason: String| CacheError::Corrupt {
        key: key.to_string(),
        reason,
    };
    let j: MetaJson = serde_json::from_value(v).map_err(|e| corrupt(e.to_string()))?;
    let mut headers = HeaderMap::new();
    for (n, v) in j.headers {
        let name = HeaderName::from_bytes(n.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
        let value = HeaderValue::from_str(&v).map_err(|e| corrupt(e.to_string()))?;
        headers.append(name, value);
    }
    let mut vary = Vec::new();
    for (n, v) in j.vary {
        vary.push((
            HeaderName::from_bytes(n.as_bytes()).map_err(|e| corrupt(e.to_string()))?,
            v,
        ));
    }
    let meta = StoredMeta {
        status: StatusCode::from_u16(j.status).map_err(|e| corrupt(e.to_string()))?,
        headers,
        request_time: UNIX_EPOCH + Duration::from_millis(j.request_time_ms),
        response_time: UNIX_EPOCH + Duration::from_millis(j.response_time_ms),
        vary,
        body_len: j.body_len,
        generation: j.generation,
        parsed: Default::default(),
    };
    let extra = Extra {
        ticket: Ticket(j.ticket),
        tags: j.tags.into_iter().map(Arc::from).collect(),
    };
    Ok((meta, extra))
}

/// Makes `dir` hold this format: a directory written by another one (or by a version that
/// wrote no marker) is emptied with a log line, never read. Blocking; run at start.
pub(crate) fn ensure_format(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let marker = dir.join(MARKER);
    match std::fs::read_to_string(&marker) {
        Ok(found) if found.trim() == FORMAT => return Ok(()),
        Ok(found) => tracing::warn!(
            dir = %dir.display(),
            found = found.trim(),
            expected = FORMAT,
            "cache directory has another format; discarding its objects"
        ),
        Err(_) => {
            let has_objects = std::fs::read_dir(dir)?
                .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("index-")));
            if has_objects {
                tracing::warn!(
                    dir = %dir.display(),
                    expected = FORMAT,
                    "cache directory was written by an older version (no format marker); discarding its objects"
                );
            }
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("index-") || name.starts_with("content-") || name == "tmp" {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    std::fs::write(&marker, format!("{FORMAT}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_refuses_the_old_shape() {
        let mut headers = HeaderMap::new();
        headers.insert("etag", HeaderValue::from_static("\"x\""));
        let meta = StoredMeta {
            status: StatusCode::OK,
            headers,
            request_time: UNIX_EPOCH + Duration::from_millis(1_000),
            response_time: UNIX_EPOCH + Duration::from_millis(2_000),
            vary: vec![(
                HeaderName::from_static("accept-language"),
                Some("fr".into()),
            )],
            body_len: 5,
            generation: 7,
            parsed: Default::default(),
        };
        let extra = Extra {
            ticket: Ticket(42),
            tags: vec![Arc::from("product-7"), Arc::from("home")],
        };
        let (back, back_extra) = decode("k", encode(&meta, &extra)).expect("decode");
        assert_eq!(back, meta);
        assert_eq!(back_extra, extra);
        // Format 1 had no ticket: never read as ticket 0 (which no fence could reject).
        let mut old = encode(&meta, &extra);
        old.as_object_mut().expect("object").remove("ticket");
        assert!(decode("k", old).is_err());
    }

    #[test]
    fn a_directory_of_another_format_is_emptied_once() {
        let dir = std::env::temp_dir().join(format!("edge-codec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("index-v5")).expect("mkdir");
        std::fs::create_dir_all(dir.join("content-v2")).expect("mkdir");
        std::fs::write(dir.join("content-v2").join("x"), b"old").expect("write");
        ensure_format(&dir).expect("format");
        assert!(!dir.join("content-v2").exists() && !dir.join("index-v5").exists());
        std::fs::create_dir_all(dir.join("content-v2")).expect("mkdir");
        ensure_format(&dir).expect("format");
        assert!(dir.join("content-v2").exists(), "the same format is kept");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
