//! `edge purge`: asks a node's admin API to purge, for humans and scripts. Exit code 0 only
//! when the node answers that the purge is done; the answer is printed either way.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Value, json};

use crate::error::Error;

/// What to purge, from the command line.
pub struct Targets {
    pub urls: Vec<String>,
    pub prefixes: Vec<String>,
    pub tags: Vec<String>,
    pub hosts: Vec<String>,
    pub everything: bool,
    pub soft: bool,
}

impl Targets {
    /// The JSON body: exactly one kind of target (clap enforces it).
    pub fn body(&self) -> Value {
        let mut body = if self.everything {
            json!({"everything": true})
        } else if !self.urls.is_empty() {
            json!({"urls": self.urls})
        } else if !self.prefixes.is_empty() {
            json!({"prefixes": self.prefixes})
        } else if !self.tags.is_empty() {
            json!({"tags": self.tags})
        } else {
            json!({"hosts": self.hosts})
        };
        if self.soft {
            body["soft"] = Value::Bool(true);
        }
        body
    }
}

fn io(context: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        context: context.to_string(),
        source,
    }
}

fn other(message: String) -> Error {
    Error::Io {
        context: message,
        source: std::io::Error::other("edge purge"),
    }
}

/// Sends the purge; Ok(true) when the node says it is done.
pub async fn run(
    admin: &str,
    token_file: &Path,
    ca_file: Option<&PathBuf>,
    targets: &Targets,
) -> Result<bool, Error> {
    let secret = std::fs::read_to_string(token_file).map_err(io("reading the token file"))?;
    let secret = secret.trim();
    let base: Uri = admin
        .parse()
        .map_err(|e| other(format!("--admin {admin}: {e}")))?;
    let (Some(scheme), Some(authority)) = (base.scheme_str(), base.authority()) else {
        return Err(other(format!(
            "--admin {admin}: expected http://host:port or https://host:port"
        )));
    };
    let uri: Uri = format!("{scheme}://{authority}/purge")
        .parse()
        .map_err(|e| other(format!("--admin {admin}: {e}")))?;
    let body = serde_json::to_vec(&targets.body()).unwrap_or_default();
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri.clone())
        .header(header::HOST, authority.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {secret}"))
                .map_err(|_| other("the token file holds an invalid token".into()))?,
        )
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| other(e.to_string()))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| other(format!("{admin}: connection timed out")))?
    .map_err(io("connecting to the admin listener"))?;
    let (status, text) = if scheme == "https" {
        let connector = tokio_rustls::TlsConnector::from(client_tls(ca_file)?);
        let name = rustls_pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| other(format!("{host}: {e}")))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(io("TLS handshake with the admin listener"))?;
        send(TokioIo::new(tls), req).await?
    } else {
        send(TokioIo::new(tcp), req).await?
    };
    println!("{text}");
    let done = status.is_success()
        && serde_json::from_str::<Value>(&text)
            .ok()
            .is_some_and(|v| v["status"] == "done");
    if !done {
        eprintln!("edge purge: {uri} answered {status}");
    }
    Ok(done)
}

async fn send<T>(io: T, req: Request<Full<Bytes>>) -> Result<(http::StatusCode, String), Error>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| other(format!("admin listener: {e}")))?;
    tokio::spawn(conn);
    let resp = tokio::time::timeout(Duration::from_secs(60), sender.send_request(req))
        .await
        .map_err(|_| other("the admin listener did not answer in 60s".into()))?
        .map_err(|e| other(format!("admin listener: {e}")))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| other(format!("admin listener: {e}")))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The roots to trust: `--ca-file` (the admin certificate or its CA) or the public ones.
fn client_tls(ca_file: Option<&PathBuf>) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(io("reading --ca-file"))?;
            for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| other(format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| other(format!("{}: {e}", path.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}
