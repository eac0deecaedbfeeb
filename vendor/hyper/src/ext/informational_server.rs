//! PATCH (edge): sending 1xx interim responses from a server.
//!
//! A `Service` returns one final response, so hyper had no way to send `103 Early Hints` (or
//! any 1xx) before it. For HTTP/1.1 and HTTP/2 requests the server connection now puts an
//! [`InformationalSender`] in the request's extensions; what is sent through it is written
//! before the final response. Not given to HTTP/1.0 requests (RFC 9110 §15.2: no 1xx to
//! 1.0 clients).

use http::Response;
use tokio::sync::mpsc;

/// Sends 1xx interim responses ahead of the final one; taken from a request's extensions.
#[derive(Clone, Debug)]
pub struct InformationalSender {
    tx: mpsc::UnboundedSender<Response<()>>,
}

pub(crate) type InformationalReceiver = mpsc::UnboundedReceiver<Response<()>>;

impl InformationalSender {
    pub(crate) fn pair() -> (InformationalSender, InformationalReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        (InformationalSender { tx }, rx)
    }

    /// Queues an interim response. False, and nothing is sent, when the status is not 1xx
    /// (or is `101`, which only an upgrade may send) or when the exchange is over; interim
    /// responses queued after the final response has gone are dropped.
    pub fn send(&self, response: Response<()>) -> bool {
        let status = response.status();
        if !status.is_informational() || status == http::StatusCode::SWITCHING_PROTOCOLS {
            return false;
        }
        self.tx.send(response).is_ok()
    }
}
