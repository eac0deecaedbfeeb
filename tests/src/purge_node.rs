//! A node for purge tests: an origin that counts requests, an edge with admin tokens, and the
//! checks purge tests make (cached, still a hit, a miss with new content, a purge done).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::Value;

use crate::admin::{self, token_toml};
use crate::client::{self, Proto, Reply, Target};
use crate::origin::Origin;
use crate::{Edge, Setup};

const WAIT: Duration = Duration::from_secs(15);

/// The path without its query: what the origin counts hits by.
pub fn key(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// The origin body's version: `/c/NAME v3 lang=-` → 3.
pub fn version(r: &Reply) -> u64 {
    let text = r.text();
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('v')?.parse().ok())
        .unwrap_or_else(|| panic!("no version in {text:?}"))
}

pub struct PurgeNode {
    pub setup: Setup,
    pub origin: Origin,
    pub edge: Edge,
}

impl PurgeNode {
    /// `tokens`: (name, secret, scope TOML such as `sites = ["a"]`); `extra` goes before them.
    pub async fn start(tag: &str, extra: &str, tokens: &[(&str, &str, &str)]) -> PurgeNode {
        let setup = Setup::new(tag);
        let origin = Origin::start().await;
        let tokens: String = tokens
            .iter()
            .map(|(name, secret, scope)| token_toml(name, secret, scope))
            .collect();
        let config = setup.config(origin.addr, &format!("{extra}\n{tokens}"));
        let edge = Edge::start(&setup.dir, &config);
        PurgeNode {
            setup,
            origin,
            edge,
        }
    }

    pub fn admin(&self) -> SocketAddr {
        self.edge.admin.expect("admin listener")
    }

    pub fn target(&self, host: &str) -> Target {
        self.setup.target(self.edge.https(), host)
    }

    /// One request on a fresh connection, bounded.
    pub async fn send(
        &self,
        proto: Proto,
        host: &str,
        method: &str,
        path: &str,
        h: &[(&str, &str)],
    ) -> Reply {
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        let target = self.target(host);
        let req = client::request(proto, &target, m, path, h, Bytes::new());
        match tokio::time::timeout(WAIT, req).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => panic!("{method} {host}{path} over {proto:?}: {e}"),
            Err(_) => panic!("{method} {host}{path} over {proto:?}: no answer within {WAIT:?}"),
        }
    }

    pub async fn get(&self, host: &str, path: &str) -> Reply {
        let r = self.send(Proto::H2, host, "GET", path, &[]).await;
        assert_eq!(r.status, 200, "GET {host}{path}: {}", r.text());
        r
    }

    /// Fetches `path` until it is cached (a second fetch is a hit); returns its version.
    pub async fn cache(&self, host: &str, path: &str) -> u64 {
        let before = self.origin.hits(key(path));
        let first = version(&self.get(host, path).await);
        assert_eq!(
            version(&self.get(host, path).await),
            first,
            "{host}{path} cached"
        );
        assert_eq!(
            self.origin.hits(key(path)),
            before + 1,
            "{host}{path}: one fill"
        );
        first
    }

    /// The next GET is served from the cache: the origin sees nothing.
    pub async fn assert_hit(&self, host: &str, path: &str, what: &str) {
        let before = self.origin.hits(key(path));
        self.get(host, path).await;
        assert_eq!(
            self.origin.hits(key(path)),
            before,
            "{what}: {host}{path} must still be a hit"
        );
    }

    /// The next GET goes to the origin and gets new content.
    pub async fn assert_miss(&self, host: &str, path: &str, what: &str) {
        let before = self.origin.hits(key(path));
        let r = self.get(host, path).await;
        assert_eq!(
            self.origin.hits(key(path)),
            before + 1,
            "{what}: {host}{path} must be a miss"
        );
        assert!(version(&r) > before, "{what}: new content: {}", r.text());
    }

    /// `POST /purge` with `secret`, expecting it done; the answer.
    pub async fn purge(&self, secret: &str, body: Value) -> Value {
        let call = admin::purge(self.admin(), secret, &body);
        let reply = match tokio::time::timeout(WAIT, call).await {
            Ok(r) => r,
            Err(_) => panic!("purge {body}: no answer within {WAIT:?}"),
        };
        assert_eq!(reply.status, 200, "purge {body}: {}", reply.body);
        let answer = reply.json();
        assert_eq!(answer["status"], "done", "{answer}");
        assert!(
            answer["id"].as_str().is_some_and(|s| !s.is_empty()),
            "{answer}"
        );
        assert!(answer["purged"].is_u64(), "{answer}");
        assert!(answer["took_us"].is_u64(), "{answer}");
        answer
    }
}
