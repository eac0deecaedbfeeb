//! The node file: what is per node (identity, listeners, cache storage, how to reach etcd). It is
//! the first layer of the node's config (see `config::layered`); here only `[node]` and
//! `[store]` are read, before any document exists, to know who the node is and where the store
//! is.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ControlError;

/// `[store]` of a node file (or of an operator's file for the `edge config` commands).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `host:port` of each etcd member.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Key prefix of the deployment (default `/edge`).
    pub prefix: Option<String>,
    /// TLS to etcd: the CA that signed etcd's certificate, and this node's client certificate.
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// etcd user (role-based access); the password is read from a file.
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Where the node keeps its last known good version (default: `state` beside the node
    /// file).
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
struct Identity {
    name: Option<String>,
    pop: Option<String>,
    region: Option<String>,
    tier: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
struct Layer {
    #[serde(default)]
    node: Identity,
    #[serde(default)]
    store: StoreSettings,
}

/// A node file, read.
#[derive(Debug, Clone)]
pub struct NodeFile {
    pub path: PathBuf,
    pub text: String,
    pub name: String,
    pub pop: String,
    pub region: String,
    pub tier: String,
    pub store: StoreSettings,
}

impl NodeFile {
    /// Blocking: reads and parses `path`.
    pub fn read(path: &Path) -> Result<NodeFile, ControlError> {
        let text = std::fs::read_to_string(path).map_err(|source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        NodeFile::parse(path, text)
    }

    pub fn parse(path: &Path, text: String) -> Result<NodeFile, ControlError> {
        // Only `[node]` and `[store]` matter here; the rest is the config compiler's.
        let top: toml::Table = toml::from_str(&text).map_err(|e| {
            // Where, as the config compiler says it: `file:line:col: reason`.
            let at = e.span().map_or(String::new(), |span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("{line}:{col}:")
            });
            ControlError::Settings(format!("{}:{at} {}", path.display(), e.message()))
        })?;
        let mut layer = toml::Table::new();
        for key in ["node", "store"] {
            if let Some(v) = top.get(key) {
                layer.insert(key.to_string(), v.clone());
            }
        }
        let layer: Layer = layer.try_into().map_err(|e: toml::de::Error| {
            ControlError::Settings(format!("{}: {}", path.display(), e.message()))
        })?;
        let name = layer.node.name.unwrap_or_else(|| "edge".to_string());
        Ok(NodeFile {
            path: path.to_path_buf(),
            text,
            pop: layer.node.pop.unwrap_or_else(|| name.clone()),
            region: layer.node.region.unwrap_or_default(),
            tier: layer.node.tier.unwrap_or_else(|| "edge".to_string()),
            name,
            store: layer.store,
        })
    }

    /// The directory relative paths of the node file are relative to.
    pub fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    }

    /// `--store etcd://HOST:PORT[,HOST:PORT…]/PREFIX` given on the command line: its endpoints
    /// and prefix replace the file's.
    pub fn with_store_url(mut self, url: &str) -> Result<NodeFile, ControlError> {
        let (endpoints, prefix) = parse_store_url(url)?;
        self.store.endpoints = endpoints;
        self.store.prefix = Some(prefix);
        Ok(self)
    }

    pub fn state_dir(&self) -> PathBuf {
        match &self.store.state_dir {
            Some(d) if d.is_absolute() => d.clone(),
            Some(d) => self.dir().join(d),
            None => self.dir().join("state"),
        }
    }
}

/// `etcd://HOST:PORT[,HOST:PORT…]/PREFIX` → endpoints and prefix (`/PREFIX`, default `/edge`).
pub fn parse_store_url(url: &str) -> Result<(Vec<String>, String), ControlError> {
    let bad = |why: &str| {
        ControlError::Settings(format!(
            "store URL {url:?}: {why} (expected etcd://HOST:PORT[,HOST:PORT…]/PREFIX)"
        ))
    };
    let rest = url
        .strip_prefix("etcd://")
        .ok_or_else(|| bad("not etcd://"))?;
    let (hosts, prefix) = match rest.split_once('/') {
        Some((h, p)) => (h, format!("/{}", p.trim_matches('/'))),
        None => (rest, "/edge".to_string()),
    };
    let endpoints: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect();
    if endpoints.is_empty() {
        return Err(bad("no endpoint"));
    }
    for e in &endpoints {
        let port_ok = e
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !port_ok {
            return Err(bad(&format!("{e:?} is not HOST:PORT")));
        }
    }
    let prefix = if prefix == "/" {
        "/edge".to_string()
    } else {
        prefix
    };
    Ok((endpoints, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        let (e, p) = parse_store_url("etcd://127.0.0.1:2379,[::1]:2380/prod/edge/").expect("ok");
        assert_eq!(e, ["127.0.0.1:2379", "[::1]:2380"]);
        assert_eq!(p, "/prod/edge");
        assert_eq!(parse_store_url("etcd://h:1").expect("ok").1, "/edge");
        for bad in ["http://h:1/x", "etcd:///x", "etcd://h/x", "etcd://h:port/x"] {
            assert!(parse_store_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_identity_and_store_settings() {
        let text = "[node]\nname = \"par-1\"\npop = \"par\"\nregion = \"eu\"\ntier = \"shield\"\n\n\
                    [listen]\nhttp = []\n\n[store]\nendpoints = [\"127.0.0.1:2379\"]\nuser = \"node\"\n";
        let n = NodeFile::parse(Path::new("/etc/edge/node.toml"), text.into()).expect("parses");
        assert_eq!(
            (n.name.as_str(), n.pop.as_str(), n.region.as_str()),
            ("par-1", "par", "eu")
        );
        assert_eq!(n.tier, "shield");
        assert_eq!(n.store.user.as_deref(), Some("node"));
        assert_eq!(n.state_dir(), Path::new("/etc/edge/state"));
        let err = NodeFile::parse(Path::new("n.toml"), "[store]\nendpoint = []\n".into())
            .expect_err("typo refused");
        assert!(err.to_string().contains("endpoint"), "{err}");
        // A syntax error names its line and column, as `edge check` does.
        let text = "[node]\nname = \"x\"\ntrusted_peers = [\"a\" \"b\"]\n";
        let err = NodeFile::parse(Path::new("n.toml"), text.into()).expect_err("bad TOML");
        assert!(err.to_string().contains("n.toml:3:22: "), "{err}");
    }
}
