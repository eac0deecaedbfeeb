//! What went wrong, and where: `file:line:col: reason`.

use std::fmt;
use std::path::PathBuf;

/// One problem found in a config document, with its location when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The document's name (`Document::name`): a file path, or a source's own name such as
    /// `etcd:/edge/config`.
    pub file: PathBuf,
    /// 1-based line and column; `None` when the problem is about the document as a whole.
    pub location: Option<(usize, usize)>,
    pub reason: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.file.display(), self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The source could not deliver the document at all.
    #[error("{}: cannot read config: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", join_lines(.0))]
    Invalid(Vec<Diagnostic>),
}

impl ConfigError {
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            ConfigError::Read { path, source } => vec![Diagnostic {
                file: path.clone(),
                location: None,
                reason: format!("cannot read config: {source}"),
            }],
            ConfigError::Invalid(d) => d.clone(),
        }
    }
}

fn join_lines(d: &[Diagnostic]) -> String {
    d.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// 1-based line and column of byte `offset` in `text` (columns count bytes, as toml's spans do).
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    // A span always starts on a character boundary; be safe rather than panic if one does not.
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}
