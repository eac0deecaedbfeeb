//! HTTP/2 over TLS with the `h2` crate directly: hyper's client normalises requests (it sets
//! Host, drops or merges headers); `h2` sends the fields it is given, in order.
//!
//! What `h2` and `http` still refuse or change, so callers know what cannot be tested this way
//! (those need a hand-written HPACK sender):
//! - connection-specific fields — `connection`, `transfer-encoding`, `upgrade`, `keep-alive`,
//!   `proxy-connection`, and `te` with any value but `trailers` — make `send_request` fail
//!   locally (a "malformed headers" user error), nothing is sent;
//! - header names are lower-cased by `http::HeaderName`, and names or values with CR, LF, NUL
//!   or other control characters (values: HTAB allowed) cannot be built, nor names starting
//!   with `:` (no extra or duplicated pseudo-headers);
//! - the pseudo-headers come from `method` and `uri` only, always in the order `:method`,
//!   `:scheme`, `:authority`, `:path`, and `uri` must parse as an `http::Uri`. An empty path is
//!   sent as `/` (`*` for OPTIONS). A relative `uri` (`/x`) is sent with `:scheme: http` and
//!   no `:authority` at all — useful with an explicit `host` field;
//! - what it does send as given: a `host` field next to `:authority`, duplicate fields, and a
//!   `content-length` that disagrees with the body (the client does not check it).

use bytes::Bytes;

use super::{RawResponse, TIMEOUT};
use crate::Target;

/// Sends one request on a new HTTP/2 connection (ALPN `h2`, SNI `target.host`, trusting
/// `target.roots`) and reads the whole response. `uri` is absolute, e.g.
/// `https://localhost:1234/x`: it becomes `:scheme`, `:authority` and `:path`. `headers` may
/// include `host` and duplicates. A reset stream, a GOAWAY or a connection error is an `Err`
/// naming the HTTP/2 reason, e.g. "RST_STREAM PROTOCOL_ERROR (from peer): …".
pub async fn h2_request(
    target: &Target,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<RawResponse, String> {
    h2_request_paced(target, method, uri, headers, body, None).await
}

/// [`h2_request`], with `pause` between the HEADERS frame (flushed alone) and the body's DATA
/// frame: the server reads the head before any of the body, whatever the scheduler does.
pub async fn h2_request_paced(
    target: &Target,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    pause: Option<std::time::Duration>,
) -> Result<RawResponse, String> {
    crate::init();
    tokio::time::timeout(TIMEOUT, exchange(target, method, uri, headers, body, pause))
        .await
        .map_err(|_| format!("no response within {TIMEOUT:?}"))?
}

async fn exchange(
    target: &Target,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    pause: Option<std::time::Duration>,
) -> Result<RawResponse, String> {
    let tls = crate::client::connect_tls(target, &[b"h2"]).await?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    if alpn.as_deref() != Some(b"h2") {
        return Err(format!("ALPN did not pick h2: {alpn:?}"));
    }
    let (client, connection) = h2::client::handshake(tls).await.map_err(reason)?;
    let driver = tokio::spawn(connection);
    let result = async {
        let mut req = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(())
            .map_err(|e| format!("building the request: {e}"))?;
        let mut client = client.ready().await.map_err(reason)?;
        let (response, mut stream) = client.send_request(req, body.is_none()).map_err(reason)?;
        if let Some(b) = body {
            if let Some(pause) = pause {
                // The connection task writes the HEADERS frame meanwhile.
                tokio::time::sleep(pause).await;
            }
            // If this fails (the server reset the stream, or answered already), the response
            // future says why.
            let _ = stream.send_data(Bytes::copy_from_slice(b), true);
        }
        let response = response.await.map_err(reason)?;
        let (parts, mut recv) = response.into_parts();
        let mut out = RawResponse {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    (k.as_str().to_string(), v)
                })
                .collect(),
            body: Vec::new(),
        };
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.map_err(reason)?;
            let _ = recv.flow_control().release_capacity(chunk.len());
            out.body.extend_from_slice(&chunk);
        }
        Ok(out)
    }
    .await;
    driver.abort();
    result
}

/// "RST_STREAM PROTOCOL_ERROR (from peer): …", "GOAWAY …", "I/O: …".
fn reason(e: h2::Error) -> String {
    let kind = if e.is_go_away() {
        "GOAWAY"
    } else if e.is_reset() {
        "RST_STREAM"
    } else if e.is_io() {
        "I/O"
    } else {
        "h2"
    };
    let from = if e.is_remote() { " (from peer)" } else { "" };
    match e.reason() {
        Some(r) => format!("{kind} {r:?}{from}: {e}"),
        None => format!("{kind}{from}: {e}"),
    }
}
