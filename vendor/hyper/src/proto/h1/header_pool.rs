//! PATCH (edge): the header map a kept-alive connection reuses from one request to the next
//! (`cached_headers`), kept per thread for connections that hand off between requests
//! (`idle_handoff`): they are rebuilt per request, and a fresh map per request cost an
//! allocation and its growth on every request.

use std::cell::RefCell;

use http::HeaderMap;

/// Maps kept per thread: enough for the connections one thread serves at once.
const KEPT: usize = 64;
/// Larger maps (a request with many fields) are dropped, not kept.
const MAX_CAPACITY: usize = 128;

thread_local! {
    static POOL: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

pub(crate) fn put(mut headers: HeaderMap) {
    if headers.capacity() > MAX_CAPACITY {
        return;
    }
    headers.clear();
    POOL.with(|pool| {
        if let Ok(mut pool) = pool.try_borrow_mut() {
            if pool.len() < KEPT {
                pool.push(headers);
            }
        }
    });
}

pub(crate) fn take() -> Option<HeaderMap> {
    POOL.with(|pool| pool.try_borrow_mut().ok()?.pop())
}
