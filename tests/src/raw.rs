//! Attacker-grade test tooling: tools that send and see exact bytes, so tests can check how the
//! edge handles malformed, ambiguous or hostile traffic — things the normal clients in
//! [`crate::client`] cannot send and the hyper-based [`crate::origin`] never shows.
//!
//! - [`RecordingOrigin`]: a raw HTTP/1.1 origin that records every request byte for byte (and
//!   can answer before reading the body, like many real servers, which turns a proxy's framing
//!   mistakes into request smuggling).
//! - [`h1_exchange`] / [`parse_responses`]: raw bytes in, raw responses out over plain TCP.
//! - [`h2_request`]: HTTP/2 over TLS with the `h2` crate directly (fewer normalisations).
//! - [`h3_raw`]: an HTTP/3 request stream written frame by frame over quinn, with a hand-rolled
//!   QPACK field section, so pseudo-header order, duplicates and bad names can be sent.
//!
//! Everything listens and connects on 127.0.0.1 only.

mod h1;
mod http2;
mod http3;
mod interim;
mod origin;
mod qpack;

use std::time::Duration;

pub use h1::{h1_exchange, h1_exchange_paced, parse_responses};
pub use http2::{h2_request, h2_request_paced};
pub use http3::{
    H3_FRAME_ERROR, H3_FRAME_UNEXPECTED, H3_GENERAL_PROTOCOL_ERROR, H3_MESSAGE_ERROR, H3_NO_ERROR,
    H3_REQUEST_INCOMPLETE, H3_REQUEST_REJECTED,
};
pub use http3::{H3Outcome, h3_frame, h3_raw, h3_raw_stream, h3_varint};
pub use interim::{WithInterim, get_with_interim, h1_version};
pub use origin::{OriginMode, Recorded, RecordingOrigin};
pub use qpack::{huffman_decode, qpack_decode, qpack_encode};

use crate::client::tls_config;

/// Every network wait in this module is bounded by this, so a test never hangs.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A response as parsed from the wire: names as sent (HTTP/1.1) or as decoded (HTTP/2, HTTP/3).
/// `Debug` shows the body as text.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Every header named `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        find_all(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl std::fmt::Debug for RawResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn find_all<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}
