//! The admin listener as purge tooling uses it: HTTP/1.1 requests with a bearer token, JSON
//! answers. Token hashes come from the edge binary itself (`edge token-hash`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

#[derive(Debug)]
pub struct AdminReply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl AdminReply {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One request to the admin listener over plain HTTP/1.1.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> AdminReply {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to admin");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("admin handshake");
    tokio::spawn(conn);
    let mut b = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(path)
        .header("host", "admin");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request");
    let resp = send.send_request(req).await.expect("admin answer");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("admin body").to_bytes();
    AdminReply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// `POST /purge` with a JSON body and a bearer token.
pub async fn purge(addr: SocketAddr, secret: &str, body: &serde_json::Value) -> AdminReply {
    let auth = format!("Bearer {secret}");
    call(
        addr,
        "POST",
        "/purge",
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
    .await
}

/// The `sha256` for `[[admin.tokens]]`, from `edge token-hash`.
pub fn token_hash(secret: &str) -> String {
    let mut child = Command::new(crate::edge_binary())
        .arg("token-hash")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn edge token-hash");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{secret}\n").as_bytes())
        .expect("write secret");
    let out = child.wait_with_output().expect("edge token-hash");
    assert!(out.status.success(), "edge token-hash failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An `[[admin.tokens]]` entry (TOML), `scope` being extra keys (`sites = [..]`, `kinds = [..]`).
pub fn token_toml(name: &str, secret: &str, scope: &str) -> String {
    format!(
        "\n[[admin.tokens]]\nname = \"{name}\"\nsha256 = \"{}\"\n{scope}\n",
        token_hash(secret)
    )
}
