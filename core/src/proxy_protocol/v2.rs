//! Version 2: a 16-byte binary header, an address block and TLVs (spec §2.2).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::*;

/// What the family byte asks for, and how many address bytes come before the TLVs.
#[derive(Clone, Copy)]
enum Block {
    /// LOCAL command, or PROXY with AF_UNSPEC: the whole block is skipped.
    Skip,
    Inet,
    Inet6,
    Unix,
}

impl Block {
    fn addr_len(self) -> usize {
        match self {
            Block::Skip => 0,
            Block::Inet => 12,
            Block::Inet6 => 36,
            Block::Unix => 216,
        }
    }
}

/// `buf` starts with the v2 signature.
pub(super) fn parse_v2(buf: &[u8]) -> Result<Option<(Proxied, usize)>, ProxyError> {
    let Some(&ver_cmd) = buf.get(12) else {
        return Ok(None);
    };
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::Invalid("v2: version is not 2"));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => {
            return Err(ProxyError::Invalid(
                "v2: command is neither LOCAL nor PROXY",
            ));
        }
    };
    let Some(&family) = buf.get(13) else {
        return Ok(None);
    };
    let block = if local {
        Block::Skip
    } else {
        match family {
            0x00 => Block::Skip,
            0x11 => Block::Inet,
            0x21 => Block::Inet6,
            0x31 | 0x32 => Block::Unix,
            0x12 | 0x22 => return Err(ProxyError::Invalid("v2: UDP on a TCP listener")),
            _ => {
                return Err(ProxyError::Invalid(
                    "v2: unknown address family or protocol",
                ));
            }
        }
    };
    let Some(&[hi, lo]) = buf.get(14..V2_FIXED) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    let addr_len = block.addr_len();
    if len < addr_len {
        return Err(ProxyError::Invalid(
            "v2: length shorter than the address block",
        ));
    }
    let total = V2_FIXED + len;
    let body = &buf[V2_FIXED..buf.len().min(total)];
    if !matches!(block, Block::Skip)
        && let Some(tlvs) = body.get(addr_len..)
    {
        check_tlvs(tlvs, len - addr_len)?;
    }
    if buf.len() < total {
        return Ok(None);
    }
    let proxied = match block {
        Block::Inet => addrs::<4, Ipv4Addr>(body),
        Block::Inet6 => addrs::<16, Ipv6Addr>(body),
        Block::Skip | Block::Unix => Some(Proxied::Local),
    };
    let proxied = proxied.ok_or(ProxyError::Invalid("v2: short address block"))?;
    Ok(Some((proxied, total)))
}

/// Source address, destination address, source port, destination port, in network order.
fn addrs<const N: usize, A>(block: &[u8]) -> Option<Proxied>
where
    A: From<[u8; N]> + Into<IpAddr>,
{
    let (src, rest) = block.split_first_chunk::<N>()?;
    let (dst, rest) = rest.split_first_chunk::<N>()?;
    let (sport, rest) = rest.split_first_chunk::<2>()?;
    let (dport, _) = rest.split_first_chunk::<2>()?;
    Some(Proxied::Addrs {
        source: SocketAddr::new(A::from(*src).into(), u16::from_be_bytes(*sport)),
        destination: SocketAddr::new(A::from(*dst).into(), u16::from_be_bytes(*dport)),
    })
}

/// Walks the TLVs that have arrived (`tlvs`) of the `declared` bytes the header gives them:
/// each is a type byte, a big-endian 16-bit length and that many bytes, and together they fill
/// the header exactly.
fn check_tlvs(tlvs: &[u8], declared: usize) -> Result<(), ProxyError> {
    let mut at = 0;
    while at < declared {
        if declared - at < 3 {
            return Err(ProxyError::Invalid("v2: truncated TLV"));
        }
        let Some(&[_, hi, lo]) = tlvs.get(at..at + 3) else {
            return Ok(()); // the rest has not arrived yet
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if declared - at - 3 < len {
            return Err(ProxyError::Invalid("v2: TLV longer than the header"));
        }
        at += 3 + len;
    }
    Ok(())
}
