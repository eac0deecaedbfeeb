//! Request filters: an ordered chain over the request context, run after routing and before the
//! cache, each of which may answer the request early. The limits are the first; ACLs, rate
//! limits, geo rules and the purge method plug in here.

use config::Snapshot;
use http::Response;

use crate::body::ProxyBody;
use crate::ctx::RequestCtx;
use crate::error::Error;
use crate::headers;
use crate::hygiene;

/// What a filter decided.
pub enum Verdict {
    /// On to the next filter, then the cache.
    Continue,
    /// Answer with this response; nothing after the filter runs.
    Respond(Response<ProxyBody>),
}

pub trait RequestFilter: Send + Sync {
    /// For logs: which filter answered.
    fn name(&self) -> &'static str;
    /// An `Err` answers with the error's status (400, 413, 414, 431 …).
    fn on_request(&self, ctx: &mut RequestCtx) -> Result<Verdict, Error>;
}

/// The filters of one config snapshot, in order.
pub struct Chain(Vec<Box<dyn RequestFilter>>);

impl Chain {
    pub fn for_snapshot(
        snapshot: &Snapshot,
        limiters: std::sync::Arc<crate::protect::Limiters>,
    ) -> Chain {
        let mut chain: Vec<Box<dyn RequestFilter>> = vec![Box::new(Limits {
            max_uri_bytes: snapshot.limits.max_uri_bytes,
            max_header_bytes: snapshot.limits.max_request_header_bytes,
            max_headers: snapshot.limits.max_request_headers,
        })];
        if !limiters.is_empty() {
            chain.push(Box::new(crate::protect::RateLimits(limiters)));
        }
        Chain(chain)
    }

    /// Runs the filters in order; `Some` when one of them answered.
    pub fn run(&self, ctx: &mut RequestCtx) -> Result<Option<Response<ProxyBody>>, Error> {
        for f in &self.0 {
            if let Verdict::Respond(resp) = f.on_request(ctx)? {
                tracing::debug!(request_id = %ctx.id, filter = f.name(), "answered by a filter");
                return Ok(Some(resp));
            }
        }
        Ok(None)
    }
}

/// The request size limits: URI (414), header block (431), declared body (413, before a byte of
/// it is read).
struct Limits {
    max_uri_bytes: u32,
    max_header_bytes: u32,
    max_headers: u32,
}

impl RequestFilter for Limits {
    fn name(&self) -> &'static str {
        "limits"
    }

    fn on_request(&self, ctx: &mut RequestCtx) -> Result<Verdict, Error> {
        let uri_len = ctx
            .head
            .uri
            .path_and_query()
            .map_or(0, |p| p.as_str().len());
        if uri_len > self.max_uri_bytes as usize {
            return Err(Error::UriTooLong {
                len: uri_len,
                limit: self.max_uri_bytes,
            });
        }
        // Counted here for every protocol (hyper's HTTP/1.1 parser has its own, higher, cap;
        // HTTP/2 and HTTP/3 have only the field-section size).
        let count = ctx.head.headers.len();
        if count > self.max_headers as usize {
            return Err(Error::TooManyHeaders {
                count,
                limit: self.max_headers,
            });
        }
        let header_len = headers::header_block_size(&ctx.head.headers);
        if header_len > self.max_header_bytes as usize {
            return Err(Error::HeadersTooLarge {
                len: header_len,
                limit: self.max_header_bytes,
            });
        }
        let max_body = ctx.max_body();
        if let Some(len) = hygiene::content_length(&ctx.head.headers).map_err(Error::BadRequest)?
            && len > max_body
        {
            return Err(Error::BodyTooLarge { limit: max_body });
        }
        Ok(Verdict::Continue)
    }
}
