//! `[admin]`: who may use the admin listener (bearer tokens with scopes) and how it is served.

use serde::Deserialize;
use toml::Spanned;

use super::Tls;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Certificate for the admin listener: required when any `listen.admin` address is not
    /// loopback (tokens must not cross a network in the clear).
    pub tls: Option<Tls>,
    /// Serve `/metrics` without a token. Default: when every admin address is loopback.
    pub open_metrics: Option<bool>,
    /// Purge requests per second each token may make, and the burst it may save up.
    #[serde(default = "default_purge_rate")]
    pub purge_rate: Spanned<f64>,
    #[serde(default = "default_purge_burst")]
    pub purge_burst: u32,
    #[serde(default)]
    pub tokens: Vec<Spanned<Token>>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            tls: None,
            open_metrics: None,
            purge_rate: default_purge_rate(),
            purge_burst: default_purge_burst(),
            tokens: Vec::new(),
        }
    }
}

fn default_purge_rate() -> Spanned<f64> {
    Spanned::new(0..0, 20.0)
}

fn default_purge_burst() -> u32 {
    100
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// Who holds it: named in logs, metrics and purge records.
    pub name: Spanned<String>,
    /// Lower-case hex SHA-256 of the secret (`edge token-hash` prints it); never the secret.
    pub sha256: Spanned<String>,
    /// Sites it may purge; absent: every site.
    pub sites: Option<Vec<Spanned<String>>>,
    /// Purge kinds it may use (url, prefix, tag, host, everything); absent: every kind.
    pub kinds: Option<Vec<Spanned<String>>>,
    /// May read (metrics, purge records) but not purge.
    #[serde(default)]
    pub read_only: bool,
}
