//! A raw HTTP/1.1 origin that records every request byte for byte.
//!
//! Written on plain tokio sockets (no hyper) so that it sees exactly what the edge sends: the
//! order and spelling of header names, duplicate fields, body framing, and any bytes left over
//! after a request — which is where request smuggling shows up.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::h1::{Chunked, Framing, Head, body_framing, parse_fields, split_head};

/// A head that has not ended after this many bytes is garbage.
const MAX_HEAD: usize = 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OriginMode {
    /// Read the whole request, body included, then answer.
    Normal,
    /// Answer as soon as the head is parsed, then read the body by its framing before parsing
    /// the next request — what many real servers do, and what turns a proxy's framing
    /// mistakes into request smuggling. (`/slow-read` still reads the body first.)
    AnswerBeforeBody,
}

/// One request as the origin received it (`Debug` shows `body` and `raw` as text).
#[derive(Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Connection number: the n-th connection accepted is `n` (from 1).
    pub conn: u64,
    /// `"<garbage>"` when the head did not parse (then only `raw` is set).
    pub method: String,
    pub target: String,
    /// As received: order kept, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body with its framing removed (chunked decoded).
    pub body: Vec<u8>,
    /// The exact bytes of head and body as received (empty lines before the request line
    /// included).
    pub raw: Vec<u8>,
}

impl Recorded {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        super::find_header(&self.headers, name)
    }

    /// Every header named `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        super::find_all(&self.headers, name)
    }

    pub fn is_garbage(&self) -> bool {
        self.method == "<garbage>"
    }
}

impl std::fmt::Debug for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorded")
            .field("conn", &self.conn)
            .field("method", &self.method)
            .field("target", &self.target)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("raw", &String::from_utf8_lossy(&self.raw))
            .finish()
    }
}

struct Shared {
    next_seq: AtomicU64,
    /// (sequence number, request): the number lets a request recorded at its head be updated
    /// once its body is in.
    requests: Mutex<Vec<(u64, Recorded)>>,
    /// Bytes received, per connection number.
    bytes: Mutex<BTreeMap<u64, Vec<u8>>>,
    connections: AtomicU64,
    /// Held `/early-hints/held` responses wait for a permit.
    hints_gate: tokio::sync::Semaphore,
}

impl Default for Shared {
    fn default() -> Shared {
        Shared {
            next_seq: AtomicU64::new(0),
            requests: Mutex::default(),
            bytes: Mutex::default(),
            connections: AtomicU64::new(0),
            hints_gate: tokio::sync::Semaphore::new(0),
        }
    }
}

impl Shared {
    fn push(&self, rec: Recorded) -> u64 {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.requests.lock().expect("lock").push((seq, rec));
        seq
    }

    fn update(&self, seq: u64, rec: Recorded) {
        let mut reqs = self.requests.lock().expect("lock");
        if let Some(slot) = reqs.iter_mut().find(|(s, _)| *s == seq) {
            slot.1 = rec;
        }
    }
}

/// A raw HTTP/1.1 origin on 127.0.0.1 (see the module docs). Responses, always HTTP/1.1 with
/// Content-Length and keep-alive:
/// - by default 200, `Cache-Control: public, max-age=60`, `Content-Type: text/plain` and a
///   reflection body: `METHOD TARGET`, one `name: value` line per received header (names
///   lower-cased), then `body-len: N` (`body-len: unread` when answering before the body);
/// - path under `/private/` or containing `/account/`: the same, but no Cache-Control,
///   Expires or Last-Modified (a private page its origin forgot to mark);
/// - path starting with `/redirect`: 302 to `http://<received Host>/landing`, cacheable;
/// - `/dup-cl`: two different Content-Length headers (5 and 6), body `hello`; `/cl-te`:
///   Content-Length 5 with `Transfer-Encoding: chunked` and a chunked `hello`. Both are
///   cacheable, and the connection is closed after them;
/// - path starting with `/slow-read`: as the default, but always after reading the body.
/// - path starting with `/early-hints`: first a `103 Early Hints` (two `Link` fields, an
///   `X-Hint` field, and a hop-by-hop `X-Hop` named by `Connection`), then the default
///   response; under `/early-hints/held` the final response waits (10 s at most) for
///   [`RecordingOrigin::release_hints`].
///
/// A request with unusable framing (a Transfer-Encoding not ending in chunked, conflicting
/// Content-Length values) is recorded without a body, answered, and its connection closed; so
/// is a request whose chunked body breaks off or turns invalid (the body as far as it
/// decoded, `raw` holding everything received). `Expect: 100-continue` is honored in normal
/// mode; HEAD responses carry no body.
pub struct RecordingOrigin {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl RecordingOrigin {
    pub async fn start(mode: OriginMode) -> RecordingOrigin {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind recording origin");
        let addr = listener.local_addr().expect("origin addr");
        let shared = Arc::new(Shared::default());
        let tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (s, t) = (shared.clone(), tasks.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let id = s.connections.fetch_add(1, Ordering::Relaxed) + 1;
                let conn = Conn {
                    stream,
                    buf: Vec::new(),
                    id,
                    shared: s.clone(),
                };
                let handle = tokio::spawn(conn.serve(mode));
                t.lock().expect("lock").push(handle.abort_handle());
            }
        });
        tasks.lock().expect("lock").push(accept.abort_handle());
        RecordingOrigin {
            addr,
            shared,
            tasks,
        }
    }

    /// Every request recorded so far, in order of arrival.
    pub fn requests(&self) -> Vec<Recorded> {
        let reqs = self.shared.requests.lock().expect("lock");
        reqs.iter().map(|(_, r)| r.clone()).collect()
    }

    /// Polls until at least `n` requests are recorded (or `within` passes); returns them all.
    pub async fn wait_requests(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let reqs = self.requests();
            if reqs.len() >= n || tokio::time::Instant::now() >= deadline {
                return reqs;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Forgets the recorded requests and received bytes (not the connection count).
    pub fn clear(&self) {
        self.shared.requests.lock().expect("lock").clear();
        self.shared.bytes.lock().expect("lock").clear();
    }

    /// Every byte received, connection by connection (in connection order), each in order of
    /// arrival.
    pub fn bytes_received(&self) -> Vec<u8> {
        self.shared
            .bytes
            .lock()
            .expect("lock")
            .values()
            .flatten()
            .copied()
            .collect()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Lets one held `/early-hints/held` response go on to its final head.
    pub fn release_hints(&self) {
        self.shared.hints_gate.add_permits(1);
    }

    /// Closes the listener and every connection.
    pub fn stop(&self) {
        for t in self.tasks.lock().expect("lock").drain(..) {
            t.abort();
        }
    }
}

impl Drop for RecordingOrigin {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Default,
    Private,
    Redirect,
    DupCl,
    ClTe,
    SlowRead,
    EarlyHints { held: bool },
}

impl Route {
    fn of(target: &str) -> Route {
        // origin-form or absolute-form
        let path = match target.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
            None => target,
        };
        let path = path.split(['?', '#']).next().unwrap_or("");
        match path {
            "/dup-cl" => Route::DupCl,
            "/cl-te" => Route::ClTe,
            p if p.starts_with("/slow-read") => Route::SlowRead,
            p if p.starts_with("/redirect") => Route::Redirect,
            p if p.starts_with("/early-hints/held") => Route::EarlyHints { held: true },
            p if p.starts_with("/early-hints") => Route::EarlyHints { held: false },
            p if p.starts_with("/private/") || p.contains("/account/") => Route::Private,
            _ => Route::Default,
        }
    }
}

struct ReqHead {
    len: usize,
    method: String,
    target: String,
    http10: bool,
    headers: Vec<(String, String)>,
}

fn parse_request_head(len: usize, lines: &[&[u8]]) -> Option<ReqHead> {
    let start = std::str::from_utf8(lines.first()?).ok()?;
    let parts: Vec<&str> = start.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return None;
    };
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    if !token(method) || !token(target) || !version.starts_with("HTTP/1.") {
        return None;
    }
    Some(ReqHead {
        len,
        method: method.to_string(),
        target: target.to_string(),
        http10: version == "HTTP/1.0",
        headers: parse_fields(&lines[1..], false)?,
    })
}

struct Conn {
    stream: TcpStream,
    /// Received and not yet consumed by a recorded request.
    buf: Vec<u8>,
    id: u64,
    shared: Arc<Shared>,
}

impl Conn {
    /// Reads more into `buf`; false once the peer has closed (or the read failed).
    async fn fill(&mut self) -> bool {
        let old = self.buf.len();
        self.buf.reserve(16 * 1024);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(n) if n > 0 => {
                let mut bytes = self.shared.bytes.lock().expect("lock");
                bytes
                    .entry(self.id)
                    .or_default()
                    .extend_from_slice(&self.buf[old..]);
                true
            }
            _ => false,
        }
    }

    fn garbage(&self) {
        self.shared.push(Recorded {
            conn: self.id,
            method: "<garbage>".into(),
            target: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
            raw: self.buf.clone(),
        });
    }

    async fn serve(mut self, mode: OriginMode) {
        loop {
            let head = loop {
                let parsed = match split_head(&self.buf) {
                    Head::Done { len, lines } => Some(parse_request_head(len, &lines)),
                    Head::Incomplete => None,
                };
                match parsed {
                    Some(Some(head)) => break head,
                    Some(None) => return self.garbage(),
                    None if self.buf.len() > MAX_HEAD => return self.garbage(),
                    None => {
                        if !self.fill().await {
                            if self.buf.iter().any(|b| !matches!(b, b'\r' | b'\n')) {
                                self.garbage();
                            }
                            return;
                        }
                    }
                }
            };
            let framing = match body_framing(&head.headers) {
                Framing::UntilClose => Framing::Length(0),
                f => f,
            };
            let route = Route::of(&head.target);
            let close = head.http10
                || framing == Framing::Invalid
                || matches!(route, Route::DupCl | Route::ClTe)
                || super::find_all(&head.headers, "connection")
                    .iter()
                    .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
            let mut rec = Recorded {
                conn: self.id,
                method: head.method,
                target: head.target,
                headers: head.headers,
                body: Vec::new(),
                raw: self.buf[..head.len].to_vec(),
            };
            let has_body = !matches!(framing, Framing::Length(0) | Framing::Invalid);
            let early = mode == OriginMode::AnswerBeforeBody && route != Route::SlowRead;
            let seq = if early {
                let seq = self.shared.push(rec.clone());
                if !self.respond(&rec, route, None, close).await {
                    return;
                }
                Some(seq)
            } else {
                let expect = rec
                    .header("expect")
                    .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
                if expect && has_body {
                    let _ = self
                        .stream
                        .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                        .await;
                }
                None
            };
            let mut pos = head.len;
            let (body, complete) = self.read_body(&mut pos, framing).await;
            rec.body = body;
            rec.raw = self.buf[..pos].to_vec();
            self.buf.drain(..pos);
            match seq {
                Some(seq) => self.shared.update(seq, rec),
                None => {
                    self.shared.push(rec.clone());
                    let len = Some(rec.body.len());
                    if !self.respond(&rec, route, len, close || !complete).await {
                        return;
                    }
                }
            }
            if close || !complete {
                let _ = self.stream.shutdown().await;
                return;
            }
        }
    }

    /// The body from `buf[*pos..]` on, reading more as needed; `*pos` ends past it. False
    /// when the peer closed before its end or the chunked framing broke (then `*pos` takes in
    /// everything received).
    async fn read_body(&mut self, pos: &mut usize, framing: Framing) -> (Vec<u8>, bool) {
        match framing {
            Framing::Length(n) => loop {
                let have = self.buf.len() - *pos;
                if have as u64 >= n {
                    let end = *pos + n as usize;
                    let body = self.buf[*pos..end].to_vec();
                    *pos = end;
                    return (body, true);
                }
                if !self.fill().await {
                    let body = self.buf[*pos..].to_vec();
                    *pos = self.buf.len();
                    return (body, false);
                }
            },
            Framing::Chunked => {
                let mut dec = Chunked::default();
                loop {
                    match dec.advance(&self.buf, pos) {
                        Ok(true) => return (dec.body, true),
                        Ok(false) if self.fill().await => {}
                        _ => {
                            *pos = self.buf.len();
                            return (dec.body, false);
                        }
                    }
                }
            }
            Framing::Invalid | Framing::UntilClose => (Vec::new(), true),
        }
    }

    /// Writes the response for `rec`; false if the connection is gone.
    async fn respond(
        &mut self,
        rec: &Recorded,
        route: Route,
        body_len: Option<usize>,
        close: bool,
    ) -> bool {
        const CACHEABLE: &str = "Cache-Control: public, max-age=60\r\n";
        let conn = if close { "close" } else { "keep-alive" };
        let mut reflection = format!("{} {}\n", rec.method, rec.target);
        for (k, v) in &rec.headers {
            reflection.push_str(&format!("{}: {v}\n", k.to_ascii_lowercase()));
        }
        match body_len {
            Some(n) => reflection.push_str(&format!("body-len: {n}\n")),
            None => reflection.push_str("body-len: unread\n"),
        }
        let (status, extra, body) = match route {
            Route::EarlyHints { held } => {
                let hints = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\
                             Link: <https://cdn.test>; rel=preconnect\r\nX-Hint: only-in-103\r\n\
                             Connection: x-hop\r\nX-Hop: 1\r\n\r\n";
                if self.stream.write_all(hints.as_bytes()).await.is_err() {
                    return false;
                }
                if held {
                    let gate = tokio::time::timeout(
                        Duration::from_secs(10),
                        self.shared.hints_gate.acquire(),
                    );
                    if let Ok(Ok(permit)) = gate.await {
                        permit.forget();
                    }
                }
                ("200 OK", CACHEABLE.to_string(), reflection.as_str())
            }
            Route::Default | Route::SlowRead => {
                ("200 OK", CACHEABLE.to_string(), reflection.as_str())
            }
            Route::Private => ("200 OK", String::new(), reflection.as_str()),
            Route::Redirect => {
                let host = rec.header("host").unwrap_or("");
                let loc = format!("{CACHEABLE}Location: http://{host}/landing\r\n");
                ("302 Found", loc, "")
            }
            Route::DupCl => {
                let r = format!(
                    "HTTP/1.1 200 OK\r\n{CACHEABLE}Content-Type: text/plain\r\n\
                     Content-Length: 5\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello"
                );
                return self.stream.write_all(r.as_bytes()).await.is_ok();
            }
            Route::ClTe => {
                let r = format!(
                    "HTTP/1.1 200 OK\r\n{CACHEABLE}Content-Type: text/plain\r\n\
                     Content-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\
                     \r\n5\r\nhello\r\n0\r\n\r\n"
                );
                return self.stream.write_all(r.as_bytes()).await.is_ok();
            }
        };
        let mut out = format!(
            "HTTP/1.1 {status}\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: {conn}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        if !rec.method.eq_ignore_ascii_case("HEAD") {
            out.extend_from_slice(body.as_bytes());
        }
        self.stream.write_all(&out).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{h1_exchange, parse_responses};
    use super::*;

    #[tokio::test]
    async fn records_a_get_with_body_then_a_post_in_both_modes() {
        for mode in [OriginMode::Normal, OriginMode::AnswerBeforeBody] {
            let origin = RecordingOrigin::start(mode).await;
            let first = b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nX-Dup: 1\r\nx-dup: 2\r\n\
                Content-Length: 4\r\n\r\nabcd";
            let second = b"POST /private/b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\
                \r\n3\r\nxyz\r\n2;ext\r\n12\r\n0\r\nT: 1\r\n\r\n";
            let sent = [&first[..], &second[..]].concat();
            let got = h1_exchange(origin.addr, &sent, Duration::from_millis(300)).await;
            let resps = parse_responses(&got);
            assert_eq!(
                resps.len(),
                2,
                "{mode:?}: {}",
                String::from_utf8_lossy(&got)
            );
            assert_eq!(resps[0].header("cache-control"), Some("public, max-age=60"));
            assert_eq!(resps[1].header("cache-control"), None);
            let reflected = resps[0].text();
            assert!(reflected.starts_with("GET /a?x=1\nhost: h\nx-dup: 1\nx-dup: 2\n"));
            let len_line = if mode == OriginMode::Normal {
                "body-len: 4\n"
            } else {
                "body-len: unread\n"
            };
            assert!(reflected.ends_with(len_line), "{mode:?}: {reflected}");

            let reqs = origin.wait_requests(2, Duration::from_secs(2)).await;
            assert_eq!(reqs.len(), 2, "{mode:?}: {reqs:?}");
            assert_eq!(
                (reqs[0].method.as_str(), reqs[0].target.as_str()),
                ("GET", "/a?x=1")
            );
            assert_eq!(reqs[0].body, b"abcd");
            assert_eq!(reqs[0].header_all("X-DUP"), vec!["1", "2"]);
            assert_eq!(reqs[0].headers[2].0, "x-dup", "names as sent");
            assert_eq!(reqs[0].raw, first);
            assert_eq!(reqs[1].method, "POST");
            assert_eq!(reqs[1].body, b"xyz12");
            assert_eq!(reqs[1].raw, second);
            assert!(reqs.iter().all(|r| r.conn == 1));
            assert_eq!(origin.connections(), 1);
            assert_eq!(origin.bytes_received(), sent);
            origin.clear();
            assert!(origin.requests().is_empty());
        }
    }

    #[tokio::test]
    async fn garbage_broken_framing_and_redirect() {
        let origin = RecordingOrigin::start(OriginMode::Normal).await;
        let got = h1_exchange(
            origin.addr,
            b"GET /redirect/x HTTP/1.1\r\nHost: evil.test\r\n\r\nGET /dup-cl HTTP/1.1\r\n\r\n",
            Duration::from_millis(300),
        )
        .await;
        let resps = parse_responses(&got);
        assert_eq!(resps[0].status, 302);
        assert_eq!(
            resps[0].header("location"),
            Some("http://evil.test/landing")
        );
        assert_eq!(resps[1].header_all("content-length"), vec!["5", "6"]);
        let got = h1_exchange(origin.addr, b"BAD\r\n\r\n", Duration::from_millis(300)).await;
        assert!(got.is_empty(), "closed without an answer");
        let reqs = origin.wait_requests(3, Duration::from_secs(2)).await;
        assert_eq!(reqs.len(), 3);
        assert!(reqs[2].is_garbage());
        assert_eq!(reqs[2].raw, b"BAD\r\n\r\n");
        assert_eq!(reqs[2].conn, 2);
    }
}
