//! A raw HTTP/3 request sender over quinn. The h3 crate validates what it sends, so this writes
//! the request stream itself: HEADERS with a hand-encoded QPACK field section (any order,
//! duplicates, bad names), DATA frames, or any bytes at all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::qpack::qpack_encode;
use super::{RawResponse, TIMEOUT};
use crate::Target;

pub const H3_NO_ERROR: u64 = 0x100;
pub const H3_GENERAL_PROTOCOL_ERROR: u64 = 0x101;
pub const H3_FRAME_UNEXPECTED: u64 = 0x105;
pub const H3_FRAME_ERROR: u64 = 0x106;
pub const H3_REQUEST_REJECTED: u64 = 0x10b;
pub const H3_REQUEST_INCOMPLETE: u64 = 0x10d;
pub const H3_MESSAGE_ERROR: u64 = 0x10e;

/// After the server stops our send stream, how long it has to start a response (or reset its
/// side) before the stop is taken as the outcome.
const STOP_GRACE: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum H3Outcome {
    /// The server reset its side of the stream (RESET_STREAM), or stopped ours (STOP_SENDING)
    /// and sent no response: the HTTP/3 error code, e.g. [`H3_MESSAGE_ERROR`].
    Reset(u64),
    /// A complete response (interim 1xx responses and trailers skipped).
    Response(RawResponse),
    /// The connection closed (or never came up): quinn's description, which carries the
    /// application error code for a CONNECTION_CLOSE, e.g. "closed by peer: 0x101".
    ConnectionClosed(String),
    /// None of the above: no outcome within [`TIMEOUT`], a response that does not decode, or
    /// a stream that ended without a response.
    Other(String),
}

/// Sends one request on a new connection: a HEADERS frame whose field section holds `fields`
/// in this exact order (pseudo-headers included, duplicates allowed, each a literal with a
/// literal name), then one DATA frame per element of `data`, then FIN if `fin`.
pub async fn h3_raw(
    target: &Target,
    fields: &[(&str, &str)],
    data: &[&[u8]],
    fin: bool,
) -> H3Outcome {
    let mut bytes = h3_frame(0x01, &qpack_encode(fields));
    for d in data {
        bytes.extend_from_slice(&h3_frame(0x00, d));
    }
    h3_raw_stream(target, &bytes, fin).await
}

/// Writes `bytes` as they are on a new request stream (after a proper control stream), then
/// FIN if `fin`, and reads the outcome. For frame-level abuse: DATA before HEADERS, truncated
/// or oversized frames, reserved frame types — build them with [`h3_frame`].
pub async fn h3_raw_stream(target: &Target, bytes: &[u8], fin: bool) -> H3Outcome {
    crate::init();
    match tokio::time::timeout(TIMEOUT, exchange(target, bytes, fin)).await {
        Ok(outcome) => outcome,
        Err(_) => H3Outcome::Other(format!("no outcome within {TIMEOUT:?}")),
    }
}

/// An HTTP/3 frame: type and length as QUIC variable-length integers, then the payload.
pub fn h3_frame(ty: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 16);
    h3_varint(&mut out, ty);
    h3_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// Appends `v` as a QUIC variable-length integer (RFC 9000 §16); `v` must be below 2^62.
pub fn h3_varint(out: &mut Vec<u8>, v: u64) {
    match v {
        0..0x40 => out.push(v as u8),
        0x40..0x4000 => out.extend_from_slice(&(v as u16 | 0x4000).to_be_bytes()),
        0x4000..0x4000_0000 => out.extend_from_slice(&(v as u32 | 0x8000_0000).to_be_bytes()),
        _ => out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes()),
    }
}

fn get_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *data.get(*pos)?;
    let len = 1usize << (first >> 6);
    let bytes = data.get(*pos..*pos + len)?;
    *pos += len;
    Some(
        bytes[1..]
            .iter()
            .fold(u64::from(first & 0x3f), |v, &b| (v << 8) | u64::from(b)),
    )
}

async fn exchange(target: &Target, bytes: &[u8], fin: bool) -> H3Outcome {
    let tls = super::tls_config(target, &[b"h3"]);
    let crypto = match quinn::crypto::rustls::QuicClientConfig::try_from(tls) {
        Ok(c) => c,
        Err(e) => return H3Outcome::Other(format!("QUIC TLS config: {e}")),
    };
    let local: SocketAddr = if target.addr.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    }
    .parse()
    .expect("addr");
    let mut endpoint = match quinn::Endpoint::client(local) {
        Ok(e) => e,
        Err(e) => return H3Outcome::Other(format!("QUIC client bind: {e}")),
    };
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connecting = match endpoint.connect(target.addr, &target.host) {
        Ok(c) => c,
        Err(e) => return H3Outcome::Other(format!("QUIC connect: {e}")),
    };
    let conn = match connecting.await {
        Ok(c) => c,
        Err(e) => return H3Outcome::ConnectionClosed(format!("QUIC handshake: {e}")),
    };
    let outcome = request(&conn, bytes, fin).await;
    conn.close(quinn::VarInt::from_u32(H3_NO_ERROR as u32), b"");
    outcome
}

async fn request(conn: &quinn::Connection, bytes: &[u8], fin: bool) -> H3Outcome {
    use H3Outcome::{ConnectionClosed, Other, Reset};
    // The control stream a client must open: type 0x00, then an empty SETTINGS frame (so a
    // QPACK dynamic table capacity of 0). It stays open for the connection's life.
    let mut control = match conn.open_uni().await {
        Ok(s) => s,
        Err(e) => return ConnectionClosed(e.to_string()),
    };
    let mut preface = vec![0x00];
    preface.extend_from_slice(&h3_frame(0x04, &[]));
    if let Err(e) = control.write_all(&preface).await {
        return ConnectionClosed(e.to_string());
    }
    let (mut send, mut recv) = match conn.open_bi().await {
        Ok(s) => s,
        Err(e) => return ConnectionClosed(e.to_string()),
    };
    let mut stopped = None;
    match send.write_all(bytes).await {
        Ok(()) if fin => {
            let _ = send.finish();
        }
        Ok(()) => {}
        Err(quinn::WriteError::Stopped(code)) => stopped = Some(code.into_inner()),
        Err(quinn::WriteError::ConnectionLost(e)) => return ConnectionClosed(e.to_string()),
        Err(e) => return Other(format!("write: {e}")),
    }
    let stop_watch = send.stopped();
    tokio::pin!(stop_watch);
    let mut watching = stopped.is_none();
    let mut grace = stopped.map(|_| Instant::now() + STOP_GRACE);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // The grace only runs while nothing of a response has arrived.
        let deadline = grace.filter(|_| buf.is_empty());
        tokio::select! {
            r = recv.read(&mut chunk) => match r {
                Ok(Some(n)) => buf.extend_from_slice(&chunk[..n]),
                Ok(None) => {
                    return match parse_response(&buf) {
                        Ok(resp) => H3Outcome::Response(resp),
                        Err(e) => Other(e),
                    };
                }
                Err(quinn::ReadError::Reset(code)) => return Reset(code.into_inner()),
                Err(quinn::ReadError::ConnectionLost(e)) => return ConnectionClosed(e.to_string()),
                Err(e) => return Other(format!("read: {e}")),
            },
            s = &mut stop_watch, if watching => {
                watching = false;
                if let Ok(Some(code)) = s {
                    stopped = Some(code.into_inner());
                    grace = Some(Instant::now() + STOP_GRACE);
                }
            }
            () = sleep_until(deadline) => {
                if let Some(code) = stopped {
                    return Reset(code);
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The response in a request stream's bytes: HEADERS (1xx ones skipped), then DATA; trailers
/// and unknown frame types are skipped.
fn parse_response(buf: &[u8]) -> Result<RawResponse, String> {
    let mut pos = 0;
    let mut resp: Option<RawResponse> = None;
    while pos < buf.len() {
        let (Some(ty), Some(len)) = (get_varint(buf, &mut pos), get_varint(buf, &mut pos)) else {
            return Err(format!("truncated frame header at {pos}"));
        };
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&e| e <= buf.len())
            .ok_or_else(|| format!("truncated frame (type 0x{ty:x}, length {len})"))?;
        let payload = &buf[pos..end];
        pos = end;
        match (ty, resp.as_mut()) {
            (0x01, None) => {
                let mut fields = super::qpack_decode(payload)?;
                let status = fields
                    .iter()
                    .position(|(k, _)| k == ":status")
                    .ok_or("response HEADERS without :status")?;
                let status = fields.remove(status).1;
                let status: u16 = status
                    .parse()
                    .map_err(|_| format!("bad :status {status}"))?;
                if status >= 200 {
                    resp = Some(RawResponse {
                        status,
                        headers: fields,
                        body: Vec::new(),
                    });
                }
            }
            (0x00, Some(r)) => r.body.extend_from_slice(payload),
            (0x00, None) => return Err("DATA before the response HEADERS".into()),
            _ => {}
        }
    }
    resp.ok_or_else(|| format!("stream ended without a response ({} bytes)", buf.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_frames() {
        for v in [
            0,
            37,
            63,
            64,
            15293,
            16383,
            16384,
            494_878_333,
            (1 << 30) + 7,
            (1 << 62) - 1,
        ] {
            let mut out = Vec::new();
            h3_varint(&mut out, v);
            let mut pos = 0;
            assert_eq!(get_varint(&out, &mut pos), Some(v));
            assert_eq!(pos, out.len());
        }
        // RFC 9000 §A.1 examples.
        let mut out = Vec::new();
        h3_varint(&mut out, 15293);
        assert_eq!(out, [0x7b, 0xbd]);
        let mut pos = 0;
        assert_eq!(
            get_varint(&[0x9d, 0x7f, 0x3e, 0x7d], &mut pos),
            Some(494_878_333)
        );

        let mut stream = h3_frame(0x01, &qpack_encode(&[(":status", "103")]));
        stream.extend(h3_frame(
            0x01,
            &qpack_encode(&[(":status", "200"), ("a", "b")]),
        ));
        stream.extend(h3_frame(0x21, b"reserved")); // 0x1f * N + 0x21: grease
        stream.extend(h3_frame(0x00, b"hel"));
        stream.extend(h3_frame(0x00, b"lo"));
        stream.extend(h3_frame(0x01, &qpack_encode(&[("trailer", "x")])));
        let r = parse_response(&stream).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(r.headers, vec![("a".to_string(), "b".to_string())]);
        assert!(parse_response(&stream[..stream.len() - 1]).is_err());
        assert!(parse_response(&h3_frame(0x00, b"x")).is_err());
    }
}
