//! The document the compile tests compile: one file at `/etc/edge/edge.toml`.

use std::path::PathBuf;

use crate::{ConfigError, Document, Snapshot, compile};

pub(crate) fn compile_text(text: &str) -> Result<Snapshot, ConfigError> {
    compile(&Document {
        name: PathBuf::from("/etc/edge/edge.toml"),
        base: PathBuf::from("/etc/edge"),
        text: text.to_string(),
        blobs: Default::default(),
        unavailable: Default::default(),
        revision: 1,
        parts: Vec::new(),
    })
}
