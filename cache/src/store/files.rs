//! Open content files of disk objects: a warm disk hit is one `preadv2` on a descriptor kept
//! open, with no path walk, no `open`/`close` and no re-hash. A body's hash is checked when it
//! is written (cacache) and when its file is first opened here (a cold read); the descriptor
//! then pins that verified inode, since content files are written once and renamed into place.

use std::path::Path;
use std::sync::Arc;

use super::disk::content_path;

/// A verified, open content file.
#[derive(Debug)]
pub(crate) struct OpenFile {
    file: std::fs::File,
    integrity: cacache::Integrity,
    len: usize,
}

/// Why a read did not produce the body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadFail {
    /// Part of it is not in the page cache: read it on the blocking pool.
    WouldBlock,
    /// Missing, the wrong length or the wrong hash: drop the entry.
    Bad,
}

impl OpenFile {
    /// Opens the content file of `sri`, reads it and checks its length and hash. With `nowait`
    /// the read fails with `WouldBlock` rather than wait for the disk (runtime threads).
    pub(crate) fn open_verified(
        dir: &Path,
        sri: &cacache::Integrity,
        len: u64,
        nowait: bool,
    ) -> Result<(OpenFile, Vec<u8>), ReadFail> {
        let len = usize::try_from(len).map_err(|_| ReadFail::Bad)?;
        let file = std::fs::File::open(content_path(dir, sri)).map_err(|_| ReadFail::Bad)?;
        let on_disk = file.metadata().map_err(|_| ReadFail::Bad)?.len();
        if on_disk != len as u64 {
            return Err(ReadFail::Bad);
        }
        let f = OpenFile {
            file,
            integrity: sri.clone(),
            len,
        };
        let body = f.read(nowait)?;
        if sri.check(&body).is_err() {
            return Err(ReadFail::Bad);
        }
        Ok((f, body))
    }

    /// The whole body in one read (more only if the kernel returns it in parts).
    pub(crate) fn read(&self, nowait: bool) -> Result<Vec<u8>, ReadFail> {
        let flags = if nowait {
            rustix::io::ReadWriteFlags::NOWAIT
        } else {
            rustix::io::ReadWriteFlags::empty()
        };
        let mut buf = vec![0u8; self.len];
        let mut off = 0;
        while off < self.len {
            let mut slices = [std::io::IoSliceMut::new(&mut buf[off..])];
            match rustix::io::preadv2(&self.file, &mut slices, off as u64, flags) {
                Ok(0) => return Err(ReadFail::Bad),
                Ok(n) => off += n,
                Err(rustix::io::Errno::AGAIN) => return Err(ReadFail::WouldBlock),
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => return Err(ReadFail::Bad),
            }
        }
        Ok(buf)
    }
}

/// The open files, keyed by variant and bounded in number (each holds a descriptor, and a
/// removed file's disk space until it is closed: removals forget theirs).
pub(crate) struct OpenFiles {
    files: moka::sync::Cache<String, Arc<OpenFile>>,
}

impl OpenFiles {
    pub(crate) fn new(max: u64) -> OpenFiles {
        OpenFiles {
            files: moka::sync::Cache::new(max),
        }
    }

    /// The open file of `variant`, if it holds the body `sri` names (a replaced body does not).
    pub(crate) fn get(&self, variant: &str, sri: &cacache::Integrity) -> Option<Arc<OpenFile>> {
        self.files.get(variant).filter(|f| f.integrity == *sri)
    }

    /// Keeps `file` open (unless no file may be kept); the kept file.
    pub(crate) fn insert(&self, variant: &str, file: OpenFile) -> Option<Arc<OpenFile>> {
        if self.files.policy().max_capacity() == Some(0) {
            return None;
        }
        let file = Arc::new(file);
        self.files.insert(variant.to_string(), file.clone());
        Some(file)
    }

    pub(crate) fn forget(&self, variant: &str) {
        self.files.invalidate(variant);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.files.run_pending_tasks();
        self.files.entry_count()
    }
}
