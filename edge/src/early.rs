//! TLS 1.3 early data (0-RTT) over QUIC, RFC 8470.
//!
//! A resumed client may send requests before its handshake completes. Early data can be
//! replayed (an attacker resends the captured packets), so only what is safe to see twice is
//! answered from it: on sites with `zero_rtt = "safe"`, a GET or HEAD without a body, which the
//! origin receives with `Early-Data: 1`. Everything else waits here until the handshake
//! completes, which proves the client is live on this connection. Session tickets are
//! single-use (`tls::quic_config`), so the same early data is not accepted on a second
//! connection either.
//!
//! h3 does not say which streams came in early data, so a request counts as early when the
//! connection's handshake is not yet confirmed at the time we decide: data that arrived early
//! but is read after confirmation is treated as confirmed, which it then is.

use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;
use http::header::HeaderName;
use tokio::sync::watch;

use crate::ctx::RequestCtx;
use crate::error::Error;

pub static EARLY_DATA: HeaderName = HeaderName::from_static("early-data");

/// What became of requests that came before their connection's handshake completed (the
/// `result` label of `edge_early_data_requests_total`).
pub const RESULTS: [&str; 3] = ["answered", "waited", "retried"];
pub static COUNTS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

fn count(result: usize) {
    COUNTS[result].fetch_add(1, Ordering::Relaxed);
}

/// A connection's handshake as its requests see it: pending until confirmed; the sender
/// dropped without confirming means it failed.
#[derive(Debug, Clone)]
pub struct Handshake(watch::Receiver<bool>);

/// Held by the task that drives the handshake.
#[derive(Debug)]
pub struct Confirm(watch::Sender<bool>);

impl Confirm {
    pub fn confirmed(self) {
        self.0.send_replace(true);
    }
}

impl Handshake {
    pub fn pending() -> (Confirm, Handshake) {
        let (tx, rx) = watch::channel(false);
        (Confirm(tx), Handshake(rx))
    }

    pub fn is_confirmed(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits for the handshake. The task driving it enforces the handshake timeout.
    pub async fn confirmed(&self) -> Result<(), Error> {
        let mut rx = self.0.clone();
        rx.wait_for(|done| *done)
            .await
            .map(|_| ())
            .map_err(|_| Error::HandshakeFailed)
    }
}

/// Phase: early data, after routing and before any decision keyed on the client's address
/// (ACLs, geo access rules, rate limits): those are never made on early data alone, since
/// its source address is not yet validated. A request that may not be answered early waits
/// here for the handshake; one that may is marked (`ctx.early`).
pub async fn gate(ctx: &mut RequestCtx) -> Result<(), Error> {
    let Some(handshake) = ctx.conn.handshake.as_ref() else {
        return Ok(());
    };
    if handshake.is_confirmed() {
        return Ok(());
    }
    let site = ctx.site()?;
    let safe = matches!(ctx.method, http::Method::GET | http::Method::HEAD);
    let address_rules = !site.geo.access.is_empty()
        || site
            .rate_limits
            .iter()
            .any(|r| r.applies(&ctx.method, ctx.path()));
    if site.zero_rtt && safe && !address_rules {
        ctx.early = Some(handshake.clone());
        return Ok(());
    }
    count(1);
    handshake.confirmed().await
}

/// Phase: after the request body settled. A GET or HEAD that carries a body is passed through
/// as it is, so it cannot be sent again after a 425: it waits for the handshake instead.
pub async fn settle(ctx: &mut RequestCtx) -> Result<(), Error> {
    let Some(handshake) = ctx.early.take() else {
        return Ok(());
    };
    if ctx.has_body {
        count(1);
        return handshake.confirmed().await;
    }
    ctx.early = Some(handshake);
    count(0);
    Ok(())
}

/// Marks an origin request made from early data (RFC 8470 §5.1).
pub fn mark(ctx: &RequestCtx, fields: &mut http::HeaderMap) {
    if ctx.early.is_some() {
        fields.insert(EARLY_DATA.clone(), HeaderValue::from_static("1"));
    }
}

/// The origin answered `425 Too Early`: when the request was early, wait for the handshake
/// and say the request may go again without `Early-Data` (RFC 8470 §5.2; browsers show a
/// 425 rather than retrying). `false`: pass the 425 on.
pub async fn retry_after_425(ctx: &RequestCtx, status: http::StatusCode) -> Result<bool, Error> {
    let Some(handshake) = &ctx.early else {
        return Ok(false);
    };
    if status != http::StatusCode::TOO_EARLY {
        return Ok(false);
    }
    handshake.confirmed().await?;
    count(2);
    Ok(true)
}
