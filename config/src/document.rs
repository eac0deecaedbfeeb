//! A config document as a source delivers it: everything `compile` needs, and nothing it has to
//! fetch itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::diagnostics::line_col;

/// The input of [`compile`](crate::compile): the TOML text and the files it refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Names the document in diagnostics (`file:line:col: reason`), e.g. the file path or
    /// `etcd:/edge/config`. Becomes `Snapshot::source`.
    pub name: PathBuf,
    /// Directory that paths which stay paths (`cache.disk_dir`) are relative to. The file source
    /// sets the config file's directory; a remote source sets a local directory of its choice.
    /// Kept apart from `name` because a remote name (`etcd:/edge/config`) is no directory.
    pub base: PathBuf,
    pub text: String,
    /// Named blobs the text refers to (certificate, key and CA files), by the name as written
    /// in the text, resolved against `base` by the source. See [`referenced_blobs`].
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// Blobs the source could not provide, by name, with its reason (the file source: the read
    /// error). A referenced name in neither map is reported as not provided by the source.
    pub unavailable: BTreeMap<String, String>,
    /// The source's revision of this document (file: a counter of distinct contents seen by
    /// this source, from 1; etcd: the version number). Becomes `Snapshot::version`.
    pub revision: u64,
    /// When `text` joins several texts (a node file and a shared document, see
    /// [`crate::layered`]): where each begins, so diagnostics name the text and the line in it.
    /// Empty: `text` is one text named `name`.
    pub parts: Vec<Part>,
}

/// One text of a layered document: its name and the byte offset where it begins in the joint
/// text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: PathBuf,
    pub offset: usize,
}

impl Document {
    /// The text and the 1-based line and column that byte `offset` of `text` comes from.
    pub fn locate(&self, offset: usize) -> (PathBuf, (usize, usize)) {
        match self.parts.iter().rev().find(|p| p.offset <= offset) {
            Some(part) => {
                let tail = self.text.get(part.offset..).unwrap_or("");
                (part.name.clone(), line_col(tail, offset - part.offset))
            }
            None => (self.name.clone(), line_col(&self.text, offset)),
        }
    }
}

/// Every certificate, key and CA file name written in `text`, sorted and without duplicates, so
/// a source knows what to fetch before it calls `compile`.
///
/// Lenient on purpose: it reads the TOML without the schema (unknown keys, wrong types and
/// settings that `compile` would refuse are ignored), so a name is listed whenever `compile`
/// might look for it. Text that is not TOML at all lists nothing; `compile` then reports the
/// syntax error.
pub fn referenced_blobs(text: &str) -> Vec<String> {
    let Ok(root) = toml::from_str::<toml::Table>(text) else {
        return Vec::new();
    };
    let mut names = BTreeSet::new();
    let mut take = |table: &toml::Table, keys: &[&str]| {
        for key in keys {
            if let Some(toml::Value::String(name)) = table.get(*key) {
                names.insert(name.clone());
            }
        }
    };
    if let Some(toml::Value::Table(tls)) = root.get("tls") {
        take(tls, &["cert", "key"]);
    }
    if let Some(toml::Value::Array(sites)) = root.get("sites") {
        for site in sites {
            if let toml::Value::Table(site) = site {
                take(site, &["cert", "key"]);
            }
        }
    }
    if let Some(toml::Value::Table(pools)) = root.get("pools") {
        for pool in pools.values() {
            if let toml::Value::Table(pool) = pool {
                take(pool, &["tls_ca_file"]);
            }
        }
    }
    names.into_iter().collect()
}
