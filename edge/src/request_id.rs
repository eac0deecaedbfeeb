//! A request's id, held inline: ours is sixteen hex digits, a trusted peer's (its
//! `X-Request-Id`) up to 64 characters. No allocation per request.

use std::fmt;

/// The longest id taken from a trusted peer.
pub const MAX_LEN: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    len: u8,
    bytes: [u8; MAX_LEN],
}

impl RequestId {
    /// An id of 1 to `MAX_LEN` characters a header field value holds unchanged (visible
    /// ASCII, space, tab); `None` otherwise.
    pub fn new(id: &str) -> Option<RequestId> {
        let len = id.len();
        if len == 0
            || len > MAX_LEN
            || !id
                .bytes()
                .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
        {
            return None;
        }
        let mut bytes = [0u8; MAX_LEN];
        bytes[..len].copy_from_slice(id.as_bytes());
        Some(RequestId {
            len: len as u8,
            bytes,
        })
    }

    /// Sixteen lower-case hex digits of `n`.
    pub fn hex16(n: u64) -> RequestId {
        let mut bytes = [0u8; MAX_LEN];
        for (i, b) in bytes[..16].iter_mut().enumerate() {
            *b = b"0123456789abcdef"[((n >> ((15 - i) * 4)) & 0xf) as usize];
        }
        RequestId { len: 16, bytes }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (`new`, `hex16`): this never falls back.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_are_sixteen_hex_digits() {
        for n in [0, 1, 0xf, 0x1234_5678_9abc_def0, u64::MAX] {
            assert_eq!(RequestId::hex16(n).as_str(), format!("{n:016x}"));
        }
    }

    #[test]
    fn a_peers_id_is_kept_when_it_is_short_visible_ascii() {
        assert_eq!(
            RequestId::new("abc-123").map(|i| i.to_string()),
            Some("abc-123".into())
        );
        let longest = "x".repeat(MAX_LEN);
        assert_eq!(RequestId::new(&longest).map(|i| i.len()), Some(MAX_LEN));
        for bad in ["", "a\nb", "é", &"x".repeat(MAX_LEN + 1)] {
            assert!(RequestId::new(bad).is_none(), "{bad:?}");
        }
    }
}
