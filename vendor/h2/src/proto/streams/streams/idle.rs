//! PATCH (edge): this module is not upstream h2's. An idle connection's stream set gives back
//! the memory its slabs and frame buffers keep for the connection's life (3.5 KiB after one
//! request, about 320 bytes a stream after a burst); `proto/idle_release.rs` says when.

use super::Streams;
use crate::proto::Peer;

impl<B, P> Streams<B, P>
where
    P: Peer,
{
    /// Frees the stream store's and the frame buffers' memory where they hold nothing, if the
    /// connection has no streams (checked under the same lock); whether it had none. See
    /// `RELEASE_ABOVE`.
    pub fn release_if_idle(&self) -> bool {
        let mut me = self.inner.lock().unwrap();
        if me.counts.has_streams() {
            return false;
        }
        me.store.release_if_empty();
        me.actions.recv.release_idle_memory();
        drop(me);
        self.send_buffer.inner.lock().unwrap().release_if_empty();
        true
    }
}
