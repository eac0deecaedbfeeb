//! PATCH (edge): an idle keep-alive connection holds no read or write buffer, and its next
//! read lands on the stack first.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};

use super::{Buffered, Cursor, INIT_BUFFER_SIZE};
use crate::rt::{Read, ReadBuf, Write};

/// The most a read after an idle release takes into the stack.
pub(super) const STACK_READ: usize = INIT_BUFFER_SIZE;

impl<T, B> Buffered<T, B>
where
    T: Read + Write + Unpin,
    B: Buf,
{
    // PATCH (edge): waiting for a message head with nothing buffered (an idle keep-alive
    // connection), hold no buffers: 8 KiB each way otherwise. Only here, not on every read
    // that would block, so a body arriving in pieces keeps its buffer.
    pub(super) fn release_if_idle(&mut self) {
        if self.read_buf.is_empty() {
            self.read_buf = BytesMut::new();
            if self.write_buf.remaining() == 0 {
                self.write_buf.headers = Cursor::new(Vec::new());
            }
        }
    }

    // PATCH (edge): the first read after `release_if_idle` goes to the stack, and the
    // buffer kept is the size of what came: a small request head then costs one allocation
    // from glibc's per-thread cache instead of 8 KiB from its main path and back (with
    // role.rs's 1 KiB head buffer, ~400 instructions and one allocation a request on a
    // connection that idled between requests).
    pub(super) fn poll_read_released(
        &mut self,
        cx: &mut Context<'_>,
        next: usize,
    ) -> Poll<io::Result<usize>> {
        let mut stack = [std::mem::MaybeUninit::<u8>::uninit(); STACK_READ];
        let mut buf = ReadBuf::uninit(&mut stack[..next]);
        match Pin::new(&mut self.io).poll_read(cx, buf.unfilled()) {
            Poll::Ready(Ok(())) => {
                let filled = buf.filled();
                let n = filled.len();
                trace!("received {} bytes", n);
                self.read_buf = BytesMut::with_capacity(n);
                self.read_buf.put_slice(filled);
                self.read_buf_strategy.record(n);
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                self.read_blocked = true;
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}
