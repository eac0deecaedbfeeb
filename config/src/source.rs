//! Where config documents come from. A [`ConfigSource`] delivers [`Document`]s (text and the
//! blobs it names, with a revision) and says when it may have changed; `compile` turns a
//! document into a snapshot without any I/O of its own. [`FileSource`] is the TOML file on disk;
//! a remote store (etcd) is the next one.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::{ConfigError, Document, Reload, Snapshot, compile, referenced_blobs};

/// A provider of config documents.
///
/// Static dispatch (`impl Future` in the trait) is enough: the edge holds one source for the life
/// of the process and is generic over it, so no `dyn` and no boxed futures are needed.
pub trait ConfigSource: Send + Sync + 'static {
    /// The current document (with its blobs). Equal revisions from one source mean equal
    /// documents, so a caller may skip compiling a revision it already serves.
    fn fetch(&self) -> impl Future<Output = Result<Document, ConfigError>> + Send;

    /// Resolves when the source may have changed (file: the modification time or size of the
    /// file or of a file it names, polled at an interval; SIGHUP is handled by the caller).
    /// Spurious wake-ups are allowed: `fetch` then returns the same revision. Cancel-safe: what
    /// counts as seen is recorded by `fetch`, not here.
    fn changed(&self) -> impl Future<Output = ()> + Send;

    /// Human-readable name for logs.
    fn describe(&self) -> String;

    /// Takes the `[reload]` settings of each snapshot the caller starts serving, since those
    /// live in the document itself. A polling source takes its pace from them; others ignore
    /// them. (`watch_file` is the caller's: it decides whether to wait on `changed` at all.)
    fn apply_reload_settings(&self, _settings: &Reload) {}

    /// Whether the caller should wait on `changed` whatever `[reload] watch_file` says: a
    /// central store pushes versions, and a node must follow them.
    fn always_watch(&self) -> bool {
        false
    }

    /// The caller now serves `snapshot`, compiled from `doc` (the first one included). A
    /// remote source keeps it as the last known good and reports it.
    fn applied(&self, _doc: &Document, _snapshot: &Snapshot) {}

    /// The caller refused `doc` (it did not compile) and keeps serving what it ran.
    fn refused(&self, _doc: &Document, _error: &ConfigError) {}

    /// The process is shutting down (a remote source withdraws the node's report).
    fn stopping(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Modification time and size: a file changed when either did.
type Stamp = (SystemTime, u64);

/// The config file on disk, and the certificate, key and CA files it names (relative to its
/// directory).
///
/// Revisions count distinct contents seen by this source: the first fetch is revision 1, and a
/// fetch whose text and blob bytes equal the previous fetch's keeps its revision; any change (the
/// text, a blob's bytes, a blob appearing or disappearing) adds one. They are not persisted: a
/// restarted process starts again at 1.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    poll_interval: Duration,
    /// Every file the last fetch read, stamped *before* it was read: a write that races with
    /// the read then still shows up as a change on the next poll.
    stamps: Vec<(PathBuf, Option<Stamp>)>,
    /// The text and blobs of the last successful fetch, to tell whether a fetch is new.
    last: Option<(String, BTreeMap<String, Vec<u8>>)>,
    revision: u64,
}

/// What one read of the files produced (before a revision is assigned).
struct FileRead {
    stamps: Vec<(PathBuf, Option<Stamp>)>,
    doc: Result<Document, ConfigError>,
}

impl FileSource {
    /// `poll_interval`: how often `changed` looks at the files until `apply_reload_settings`
    /// says otherwise.
    pub fn new(path: impl Into<PathBuf>, poll_interval: Duration) -> FileSource {
        FileSource {
            path: path.into(),
            state: Mutex::new(State {
                poll_interval,
                stamps: Vec::new(),
                last: None,
                revision: 0,
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `fetch` for callers without a runtime (`edge check`, tests): reads on this thread.
    pub fn fetch_blocking(&self) -> Result<Document, ConfigError> {
        self.record(read_files(&self.path))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement; a panic elsewhere cannot break it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers what was read and gives the document its revision.
    fn record(&self, read: FileRead) -> Result<Document, ConfigError> {
        let mut state = self.state();
        state.stamps = read.stamps;
        let mut doc = read.doc?;
        let same = state
            .last
            .as_ref()
            .is_some_and(|(text, blobs)| *text == doc.text && *blobs == doc.blobs);
        if !same {
            state.revision += 1;
            state.last = Some((doc.text.clone(), doc.blobs.clone()));
        }
        doc.revision = state.revision;
        Ok(doc)
    }
}

impl ConfigSource for FileSource {
    async fn fetch(&self) -> Result<Document, ConfigError> {
        let path = self.path.clone();
        let read = tokio::task::spawn_blocking(move || read_files(&path))
            .await
            .map_err(|e| ConfigError::Read {
                path: self.path.clone(),
                source: std::io::Error::other(format!("reading task failed: {e}")),
            })?;
        self.record(read)
    }

    async fn changed(&self) {
        loop {
            let interval = self.state().poll_interval;
            tokio::time::sleep(interval).await;
            // Taken after the sleep, so a fetch made meanwhile counts as seen.
            let seen = self.state().stamps.clone();
            let paths: Vec<PathBuf> = seen.iter().map(|(p, _)| p.clone()).collect();
            let now = tokio::task::spawn_blocking(move || {
                paths.iter().map(|p| stamp(p)).collect::<Vec<_>>()
            })
            .await;
            match now {
                Ok(now) if now.iter().zip(&seen).all(|(n, (_, s))| n == s) => {}
                // Changed, or the stat task failed: let a fetch find out.
                _ => return,
            }
        }
    }

    fn describe(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn apply_reload_settings(&self, settings: &Reload) {
        self.state().poll_interval = settings.poll_interval;
    }
}

/// Reads, validates and compiles the config file at `path` and the files it names, on this
/// thread (for `edge check` and tests). The snapshot's version is 1, a fresh source's first
/// revision.
pub fn load(path: &Path) -> Result<Snapshot, ConfigError> {
    // Nothing polls this source; the interval is never used.
    let source = FileSource::new(path, Duration::from_secs(1));
    compile(&source.fetch_blocking()?)
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Blocking: the config file, then every blob its text names. Each file is stamped before it is
/// read.
fn read_files(path: &Path) -> FileRead {
    let mut stamps = vec![(path.to_path_buf(), stamp(path))];
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(source) => {
            return FileRead {
                stamps,
                doc: Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                }),
            };
        }
    };
    let base = base_dir(path);
    let (blobs, unavailable) = read_blobs(&base, &text, &mut stamps);
    FileRead {
        stamps,
        doc: Ok(Document {
            name: path.to_path_buf(),
            base,
            text,
            blobs,
            unavailable,
            revision: 0,
            parts: Vec::new(),
        }),
    }
}

/// Relative names in a config file are relative to its directory (`"edge.toml"` has the
/// empty parent, which joins as the working directory).
fn base_dir(path: &Path) -> PathBuf {
    path.parent().unwrap_or(Path::new(".")).to_path_buf()
}

/// Blocking: reads the blobs `text` names, resolved against `base`; a file that cannot be read
/// goes into the second map with the error, which `compile` reports at the reference.
pub(crate) fn read_blobs(
    base: &Path,
    text: &str,
    stamps: &mut Vec<(PathBuf, Option<Stamp>)>,
) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, String>) {
    let mut blobs = BTreeMap::new();
    let mut unavailable = BTreeMap::new();
    for name in referenced_blobs(text) {
        let file = base.join(&name);
        stamps.push((file.clone(), stamp(&file)));
        match std::fs::read(&file) {
            Ok(bytes) => {
                blobs.insert(name, bytes);
            }
            Err(e) => {
                unavailable.insert(name, format!("{}: {e}", file.display()));
            }
        }
    }
    (blobs, unavailable)
}
