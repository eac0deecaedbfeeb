//! Huffman encoding of string literals. PATCH (edge): one table-driven encoder (codes from
//! `huffman_codes.rs` into a 64-bit accumulator, written straight to the buffer) replaces
//! upstream's bit-by-bit `HuffmanEncoder`; the output is the same.

use bytes::BufMut;

use super::BitWindow;
use super::huffman_codes::CODES;

#[derive(Debug, PartialEq)]
pub struct Error {
    buffer_pos: BitWindow,
    len: usize,
    capacity: usize,
    text: String,
}

/// Bits of the Huffman code of `value` (without padding).
pub(super) fn huffman_bits(value: &[u8]) -> usize {
    value.iter().map(|&b| CODES[b as usize].1 as usize).sum()
}

/// Writes the Huffman code of `value`, its last byte padded with the most significant bits of
/// EOS (all ones).
pub(super) fn put_huffman<B: BufMut>(value: &[u8], buf: &mut B) {
    let (mut acc, mut pending) = (0u64, 0u32);
    for &b in value {
        let (code, len) = CODES[b as usize];
        // At most 7 pending bits plus a 30-bit code: the low bits of `acc` always hold them.
        acc = (acc << len) | u64::from(code);
        pending += u32::from(len);
        while pending >= 8 {
            pending -= 8;
            buf.put_u8((acc >> pending) as u8);
        }
    }
    if pending > 0 {
        buf.put_u8(((acc << (8 - pending)) as u8) | (0xff >> pending));
    }
}

pub trait HpackStringEncode {
    fn hpack_encode(&self) -> Result<Vec<u8>, Error>;
}

impl HpackStringEncode for Vec<u8> {
    fn hpack_encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(huffman_bits(self).div_ceil(8));
        put_huffman(self, &mut out);
        Ok(out)
    }
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
