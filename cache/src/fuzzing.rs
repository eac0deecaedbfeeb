//! Fuzz entry point for the one parser here that reads bytes we did not write in this process:
//! the disk tier's metadata, which survives restarts, upgrades and torn writes. The cargo-fuzz
//! target in `fuzz/` calls it; the test below replays the committed corpus on stable.

use http::HeaderMap;

use crate::store::codec;

/// For the crates above this one (edge), which do not depend on the rules crate directly.
pub use cache_rules::fuzzing::replay_corpus;

/// Metadata JSON as found on disk: decoding never panics, and what decodes survives
/// encode→decode unchanged, except header values that are not visible ASCII, which `encode`
/// drops on purpose.
pub fn stored_meta(data: &[u8]) {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok((meta, extra)) = codec::decode("fuzz", json) else {
        return;
    };
    let (back, back_extra) = match codec::decode("fuzz", codec::encode(&meta, &extra)) {
        Ok(d) => d,
        Err(e) => panic!("what encode writes does not decode: {e}"),
    };
    let mut want = meta.clone();
    want.headers = HeaderMap::new();
    for (name, value) in &meta.headers {
        if value.to_str().is_ok() {
            want.headers.append(name.clone(), value.clone());
        }
    }
    assert_eq!(back, want);
    assert_eq!(back_extra, extra);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_stored_meta() {
        cache_rules::fuzzing::replay_corpus(
            std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../fuzz/corpus/stored_meta"
            )),
            stored_meta,
        );
    }
}
