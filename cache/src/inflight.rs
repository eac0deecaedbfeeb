//! An object being fetched, shared by every client that asked for it while it streams: the
//! request that started the fetch and the requests collapsed onto it read the same chunks as
//! they arrive. Used for objects of known length within the per-object memory limit, so the
//! shared buffer is bounded by that limit.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::sync::watch;

/// How far the fetch got: chunks available, and whether (and how) it ended; `waiting`: it had
/// to wait for its origin (or the store) at least once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    chunks: usize,
    done: Option<bool>,
    waiting: bool,
}

#[derive(Debug)]
pub struct Inflight {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The variant key of the response being fetched: a collapsed request reads it only if its
    /// own request selects the same variant (the headers `Vary` names).
    pub variant: String,
    pub vary_names: Vec<http::HeaderName>,
    chunks: Mutex<Vec<Bytes>>,
    progress: watch::Sender<Progress>,
}

impl Inflight {
    pub fn new(
        status: StatusCode,
        headers: HeaderMap,
        variant: String,
        vary_names: Vec<http::HeaderName>,
    ) -> Arc<Inflight> {
        let (progress, _) = watch::channel(Progress {
            chunks: 0,
            done: None,
            waiting: false,
        });
        Arc::new(Inflight {
            status,
            headers,
            variant,
            vary_names,
            chunks: Mutex::new(Vec::new()),
            progress,
        })
    }

    pub fn push(&self, chunk: Bytes) {
        let n = match self.chunks.lock() {
            Ok(mut c) => {
                c.push(chunk);
                c.len()
            }
            Err(_) => return,
        };
        self.progress.send_modify(|p| p.chunks = n);
    }

    /// The fetch has to wait (its origin has sent nothing more yet): a reader holding its head
    /// back for the first chunk should not wait any longer.
    pub fn waiting(&self) {
        self.progress
            .send_if_modified(|p| !std::mem::replace(&mut p.waiting, true));
    }

    /// Until a chunk or the end has arrived, or the fetch has had to wait: the moment to send
    /// the head, with the first chunk when the origin sent one with its head. No polling: the
    /// fetch's task says which it is.
    pub async fn first(&self) {
        // An error: the sender is gone with `self`, which cannot be while we borrow it.
        let _ = self
            .progress
            .subscribe()
            .wait_for(|p| p.chunks > 0 || p.done.is_some() || p.waiting)
            .await;
    }

    /// The fetch ended: cleanly (`ok`) or not. Readers of an unclean end see an error.
    pub fn finish(&self, ok: bool) {
        self.progress.send_modify(|p| p.done = Some(ok));
    }

    /// The next chunk after `index`, waiting for it; `Ok(None)` at a clean end.
    pub async fn chunk(&self, index: usize) -> Result<Option<Bytes>, &'static str> {
        let mut rx = self.progress.subscribe();
        let p = *rx
            .wait_for(|p| index < p.chunks || p.done.is_some())
            .await
            .map_err(|_| "the fetch was abandoned")?;
        if index < p.chunks {
            let c = self.chunks.lock().map_err(|_| "poisoned")?;
            return Ok(c.get(index).cloned());
        }
        match p.done {
            Some(true) => Ok(None),
            _ => Err("the origin response failed mid-body"),
        }
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        self.progress.send_modify(|p| {
            if p.done.is_none() {
                p.done = Some(false);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_get_every_chunk_as_it_arrives_and_see_failures() {
        let inf = Inflight::new(StatusCode::OK, HeaderMap::new(), String::new(), Vec::new());
        let reader = {
            let inf = inf.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut i = 0;
                while let Some(c) = inf.chunk(i).await.expect("clean") {
                    got.extend_from_slice(&c);
                    i += 1;
                }
                got
            })
        };
        assert_eq!(inf.progress.borrow().chunks, 0, "nothing has arrived");
        inf.push(Bytes::from_static(b"ab"));
        assert_eq!(inf.progress.borrow().chunks, 1, "a chunk has arrived");
        tokio::task::yield_now().await;
        inf.push(Bytes::from_static(b"cd"));
        inf.finish(true);
        assert_eq!(reader.await.expect("join"), b"abcd");
        // A late reader still gets everything.
        assert_eq!(inf.chunk(1).await, Ok(Some(Bytes::from_static(b"cd"))));
        assert_eq!(inf.chunk(2).await, Ok(None));

        let slow = Inflight::new(StatusCode::OK, HeaderMap::new(), String::new(), Vec::new());
        let first = tokio::spawn({
            let slow = slow.clone();
            async move { slow.first().await }
        });
        tokio::task::yield_now().await;
        assert!(
            !first.is_finished(),
            "nothing has arrived, nobody waits yet"
        );
        slow.waiting();
        first
            .await
            .expect("the head may go: the fetch waits on its origin");
        assert_eq!(slow.progress.borrow().chunks, 0, "waiting is not a chunk");
        inf.first().await; // arrived: at once

        let bad = Inflight::new(StatusCode::OK, HeaderMap::new(), String::new(), Vec::new());
        let empty = Inflight::new(StatusCode::OK, HeaderMap::new(), String::new(), Vec::new());
        empty.finish(true);
        empty.first().await; // an end counts: nothing more will come
        assert_eq!(empty.chunk(0).await, Ok(None));
        bad.push(Bytes::from_static(b"x"));
        bad.finish(false);
        assert_eq!(bad.chunk(0).await, Ok(Some(Bytes::from_static(b"x"))));
        assert!(bad.chunk(1).await.is_err());
    }
}
