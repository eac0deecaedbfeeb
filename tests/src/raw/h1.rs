//! Raw HTTP/1.1 over plain TCP: a byte-exact exchange, a lenient response parser, and the
//! head and chunked-body parsing shared with the recording origin.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::RawResponse;

/// Connects to `addr`, writes all of `bytes`, and returns everything read until the peer
/// closes or `wait` passes with nothing new. Writing runs alongside reading, so a peer that
/// answers before it has read everything cannot deadlock the exchange; our side is never
/// half-closed while reading.
pub async fn h1_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Vec<u8> {
    h1_exchange_paced(addr, &[bytes], Duration::ZERO, wait).await
}

/// Like [`h1_exchange`], but writes `parts` one at a time with `pause` between them (a head,
/// then its body a moment later; a pipelined second request after the first was answered).
pub async fn h1_exchange_paced(
    addr: SocketAddr,
    parts: &[&[u8]],
    pause: Duration,
    wait: Duration,
) -> Vec<u8> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let parts_len = u32::try_from(parts.len()).unwrap_or(u32::MAX);
    let parts: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
    let writer = tokio::spawn(async move {
        for (i, part) in parts.iter().enumerate() {
            if i > 0 && !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            if wr.write_all(part).await.is_err() {
                break;
            }
        }
        // Dropping the write half would half-close the connection: hand it back instead.
        wr
    });
    // A writer stuck on a peer that never reads must not hold the test forever either.
    let deadline = tokio::time::Instant::now() + pause * parts_len + wait + super::TIMEOUT;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(wait, rd.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            // Still writing (paced parts): keep waiting for it.
            Err(_) if !writer.is_finished() && tokio::time::Instant::now() < deadline => {}
            _ => break,
        }
    }
    if writer.is_finished() {
        let _wr = writer.await;
    } else {
        writer.abort();
    }
    out
}

/// Parses a stream of HTTP/1.1 responses. Honors `Content-Length`, chunked
/// `Transfer-Encoding` (which wins over `Content-Length`), responses without a body (1xx, 204,
/// 304; HEAD is not assumed) and a last response delimited by the connection's end. Stops at the
/// first thing that does not parse; a truncated last body is returned as far as it got.
pub fn parse_responses(data: &[u8]) -> Vec<RawResponse> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let Head::Done { len, lines } = split_head(&data[pos..]) else {
            break;
        };
        let status = std::str::from_utf8(lines[0]).ok().and_then(|l| {
            let mut parts = l.splitn(3, ' ');
            let version = parts.next()?;
            let code = parts.next()?;
            (version.starts_with("HTTP/") && code.len() == 3)
                .then(|| code.parse::<u16>().ok())
                .flatten()
        });
        let Some(status) = status else { break };
        let Some(headers) = parse_fields(&lines[1..], true) else {
            break;
        };
        pos += len;
        let mut resp = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if status < 200 || status == 204 || status == 304 {
            out.push(resp);
            continue;
        }
        let rest = &data[pos..];
        match body_framing(&resp.headers) {
            Framing::Chunked => {
                let mut dec = Chunked::default();
                let mut used = 0;
                let done = matches!(dec.advance(rest, &mut used), Ok(true));
                resp.body = dec.body;
                pos += used;
                out.push(resp);
                if !done {
                    break;
                }
            }
            Framing::Length(n) => {
                let take = rest.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                resp.body = rest[..take].to_vec();
                pos += take;
                out.push(resp);
                if (take as u64) < n {
                    break;
                }
            }
            // No (usable) framing: the body runs to the end of the connection.
            Framing::Invalid | Framing::UntilClose => {
                resp.body = rest.to_vec();
                out.push(resp);
                break;
            }
        }
    }
    out
}

pub(super) enum Head<'a> {
    Incomplete,
    /// `len` bytes of head (leading empty lines included); `lines` without their line ends,
    /// the start line first.
    Done {
        len: usize,
        lines: Vec<&'a [u8]>,
    },
}

/// Splits a message head into lines. Lines end in LF with an optional CR before it (as lenient
/// servers accept); empty lines before the start line are skipped (RFC 9112 §2.2).
pub(super) fn split_head(data: &[u8]) -> Head<'_> {
    let mut pos = 0;
    let mut lines = Vec::new();
    loop {
        let Some(line) = take_line(data, &mut pos) else {
            return Head::Incomplete;
        };
        if !line.is_empty() {
            lines.push(line);
        } else if !lines.is_empty() {
            return Head::Done { len: pos, lines };
        }
    }
}

/// The next line from `data[*pos..]` without its LF or CRLF; `None` until the LF is there.
fn take_line<'a>(data: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let nl = data[*pos..].iter().position(|&b| b == b'\n')?;
    let line = &data[*pos..*pos + nl];
    *pos += nl + 1;
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

/// Header lines as `(name, value)`: names exactly as sent, values without surrounding
/// whitespace. `None` for a line without a colon, an obs-fold continuation line, or (unless
/// `lenient`) whitespace inside a name — all of which a server must reject.
pub(super) fn parse_fields(lines: &[&[u8]], lenient: bool) -> Option<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(lines.len());
    for line in lines {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return None;
        }
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || (!lenient && name.iter().any(|b| matches!(b, b' ' | b'\t'))) {
            return None;
        }
        let value = value.trim_ascii();
        out.push((
            String::from_utf8_lossy(name).trim().to_string(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    Some(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    Length(u64),
    Chunked,
    /// A response without length information: until the connection closes.
    UntilClose,
    /// Unusable: a Transfer-Encoding that does not end in chunked, or conflicting or
    /// non-numeric Content-Length values.
    Invalid,
}

/// How a message's body is delimited (RFC 9112 §6.3): Transfer-Encoding wins over
/// Content-Length; without either, a request has no body and a response runs until close.
pub(super) fn body_framing(headers: &[(String, String)]) -> Framing {
    let te = super::find_all(headers, "transfer-encoding");
    if !te.is_empty() {
        let last = te.join(",");
        let last = last.rsplit(',').next().unwrap_or("").trim();
        return if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::Invalid
        };
    }
    let mut len = None;
    for v in super::find_all(headers, "content-length") {
        for part in v.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Framing::Invalid;
            }
            let Ok(n) = part.parse::<u64>() else {
                return Framing::Invalid;
            };
            if len.is_some_and(|l| l != n) {
                return Framing::Invalid;
            }
            len = Some(n);
        }
    }
    len.map_or(Framing::UntilClose, Framing::Length)
}

/// An incremental chunked-body decoder (RFC 9112 §7.1); chunk extensions and trailer fields
/// are skipped.
#[derive(Default)]
pub(super) struct Chunked {
    state: ChunkState,
    pub body: Vec<u8>,
}

#[derive(Default, Clone, Copy)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

impl Chunked {
    /// Consumes what it can of `data[*pos..]`: `Ok(true)` once the last chunk and the trailer
    /// section are in, `Ok(false)` when it needs more bytes.
    pub(super) fn advance(&mut self, data: &[u8], pos: &mut usize) -> Result<bool, String> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(line) = take_line(data, pos) else {
                        return if data.len() - *pos > 4096 {
                            Err("chunk-size line too long".into())
                        } else {
                            Ok(false)
                        };
                    };
                    let hex = line.split(|&b| b == b';').next().unwrap_or(b"");
                    let hex = hex.trim_ascii_end();
                    if hex.is_empty() || hex.len() > 15 || !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(format!(
                            "bad chunk size {:?}",
                            String::from_utf8_lossy(line)
                        ));
                    }
                    let n = u64::from_str_radix(std::str::from_utf8(hex).unwrap_or("0"), 16)
                        .map_err(|e| e.to_string())?;
                    self.state = if n == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(n)
                    };
                }
                ChunkState::Data(n) => {
                    let avail = (data.len() - *pos) as u64;
                    let k = avail.min(n) as usize;
                    self.body.extend_from_slice(&data[*pos..*pos + k]);
                    *pos += k;
                    if (k as u64) < n {
                        self.state = ChunkState::Data(n - k as u64);
                        return Ok(false);
                    }
                    self.state = ChunkState::DataEnd;
                }
                ChunkState::DataEnd => {
                    let rest = &data[*pos..];
                    if rest.starts_with(b"\r\n") {
                        *pos += 2;
                    } else if rest.starts_with(b"\n") {
                        *pos += 1;
                    } else if rest.is_empty() || rest == b"\r" {
                        return Ok(false);
                    } else {
                        return Err("no CRLF after chunk data".into());
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(line) = take_line(data, pos) else {
                        return Ok(false);
                    };
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                    }
                }
                ChunkState::Done => return Ok(true),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_with_length_chunked_and_no_body() {
        let data = b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello\
            HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n\
            3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n\
            HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"v\"\r\n\r\n\
            HTTP/1.1 204 No Content\r\n\r\n\
            HTTP/1.0 200 OK\r\nServer: old\r\n\r\nto the end";
        let r = parse_responses(data);
        let summary: Vec<(u16, &[u8])> = r.iter().map(|r| (r.status, &r.body[..])).collect();
        assert_eq!(
            summary,
            vec![
                (100, &b""[..]),
                (200, b"hello"),
                (200, b"abcde"),
                (304, b""),
                (204, b""),
                (200, b"to the end"),
            ]
        );
        assert_eq!(r[1].header("x-a"), Some("1"));
        assert_eq!(r[3].header("etag"), Some("\"v\""));
        assert_eq!(r[2].header_all("Content-Length"), vec!["99"]);
    }

    #[test]
    fn truncated_and_garbage() {
        let r = parse_responses(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].body, b"abc");
        let r = parse_responses(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxgarbage\r\n\r\n");
        assert_eq!(r.len(), 1);
        assert!(parse_responses(b"HTTP/1.1 200 OK\r\nContent-Le").is_empty());
    }

    #[test]
    fn framing_rules() {
        let h = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(body_framing(&h(&[])), Framing::UntilClose);
        assert_eq!(
            body_framing(&h(&[("Content-Length", "5"), ("content-length", "5")])),
            Framing::Length(5)
        );
        assert_eq!(
            body_framing(&h(&[("Content-Length", "5"), ("content-length", "6")])),
            Framing::Invalid
        );
        assert_eq!(
            body_framing(&h(&[("Content-Length", "+5")])),
            Framing::Invalid
        );
        assert_eq!(
            body_framing(&h(&[
                ("Transfer-Encoding", "gzip, chunked"),
                ("Content-Length", "1")
            ])),
            Framing::Chunked
        );
        assert_eq!(
            body_framing(&h(&[("Transfer-Encoding", "chunked, gzip")])),
            Framing::Invalid
        );
    }
}
