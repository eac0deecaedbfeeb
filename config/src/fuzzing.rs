//! Fuzz entry point for the config compiler. Config text comes from an operator or, later, a
//! remote store, and a reload must refuse bad text with a located diagnostic, never take the
//! process down. The cargo-fuzz target in `fuzz/` calls it; the test below replays the
//! committed corpus on stable.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::Document;

/// The input as TOML text (lossy UTF-8), with no blobs: `compile` returns, and every
/// diagnostic it gives has a reason and, when located, a line and column inside the text.
pub fn compile(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let doc = Document {
        name: PathBuf::from("fuzz.toml"),
        base: PathBuf::from("/fuzz"),
        text,
        blobs: BTreeMap::new(),
        unavailable: BTreeMap::new(),
        revision: 1,
        parts: Vec::new(),
    };
    let Err(e) = crate::compile(&doc) else {
        return;
    };
    let diagnostics = e.diagnostics();
    assert!(
        !diagnostics.is_empty(),
        "refused without a diagnostic: {e:?}"
    );
    let lines: Vec<&str> = doc.text.split('\n').collect();
    for d in &diagnostics {
        assert!(!d.reason.trim().is_empty(), "{d:?}");
        let Some((line, col)) = d.location else {
            continue;
        };
        assert!(
            (1..=lines.len()).contains(&line),
            "{d:?}: {} lines",
            lines.len()
        );
        // Columns count bytes; one past the end points at the line break (or the end).
        let width = lines[line - 1].len() + 1;
        assert!(
            (1..=width).contains(&col),
            "{d:?}: line {line} is {width} wide"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_compile() {
        cache_rules::fuzzing::replay_corpus(
            std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../fuzz/corpus/compile"
            )),
            compile,
        );
    }
}
