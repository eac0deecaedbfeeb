//! 1xx interim responses from the origin (`103 Early Hints` above all), passed to the client
//! ahead of the final response as they arrive. They are never stored, and their fields never
//! join the final response: they travel beside the exchange, not in it.
//!
//! Over HTTP/1.1 and HTTP/2 hyper's server connection writes them (vendored patch, see the
//! workspace Cargo.toml); over HTTP/3 the request's stream task does (quic.rs). HTTP/1.0 clients
//! get none (RFC 9110 §15.2). What reaches the edge: interim responses from HTTP/1.1 origins and
//! shields; hyper's HTTP/2 client drops them (README, cache section).

use http::{Extensions, Request, Response, StatusCode};

use crate::headers;

/// Where a request's interim responses go: hyper's connection writes them (HTTP/1.1, HTTP/2)
/// or the HTTP/3 stream's task sends them, both before the final head.
#[derive(Clone, Debug)]
pub struct Interim(hyper::ext::InformationalSender);

impl Interim {
    pub fn new(sender: hyper::ext::InformationalSender) -> Interim {
        Interim(sender)
    }

    /// The client connection's sender, when it can carry interim responses.
    pub fn take(extensions: &mut Extensions) -> Option<Interim> {
        extensions
            .remove::<hyper::ext::InformationalSender>()
            .map(Interim)
    }

    /// Passes the interim responses the origin sends for `req` on to the client.
    pub fn forward_from<B>(&self, req: &mut Request<B>) {
        let to = self.0.clone();
        hyper::ext::on_informational(req, move |res| {
            if let Some(interim) = relayed(res.status(), res.headers()) {
                to.send(interim);
            }
        });
    }
}

/// What the client receives for an origin's interim response: none for `100 Continue` (an
/// answer to the edge's own request, and hyper answers the client's `Expect` itself) nor
/// `101` (upgrades have their own path); others with their hop-by-hop fields removed.
pub fn relayed(status: StatusCode, fields: &http::HeaderMap) -> Option<Response<()>> {
    if !status.is_informational()
        || status == StatusCode::CONTINUE
        || status == StatusCode::SWITCHING_PROTOCOLS
    {
        return None;
    }
    let mut res = Response::new(());
    *res.status_mut() = status;
    *res.headers_mut() = fields.clone();
    headers::strip_hop_by_hop(res.headers_mut());
    Some(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn early_hints_pass_without_hop_by_hop_fields() {
        let mut fields = http::HeaderMap::new();
        fields.insert("link", HeaderValue::from_static("</a.css>; rel=preload"));
        fields.insert("connection", HeaderValue::from_static("x-hop"));
        fields.insert("x-hop", HeaderValue::from_static("1"));
        let res = relayed(StatusCode::from_u16(103).expect("103"), &fields).expect("relayed");
        assert_eq!(res.status().as_u16(), 103);
        assert_eq!(res.headers()["link"], "</a.css>; rel=preload");
        assert!(res.headers().get("x-hop").is_none());
        assert!(res.headers().get("connection").is_none());
    }

    #[test]
    fn continue_switching_and_finals_are_not_relayed() {
        let fields = http::HeaderMap::new();
        for code in [100, 101, 200, 304] {
            let status = StatusCode::from_u16(code).expect("status");
            assert!(relayed(status, &fields).is_none(), "{code}");
        }
        let processing = StatusCode::from_u16(102).expect("102");
        assert!(relayed(processing, &fields).is_some());
    }
}
