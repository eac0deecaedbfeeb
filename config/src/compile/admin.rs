//! `[admin]` compiled: tokens checked (hash form, known sites and kinds, unique names and
//! secrets), TLS required off loopback.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use purge_api::{Kind, Token, Tokens};
use toml::Spanned;

use super::Compiler;
use crate::schema;
use crate::snapshot::{AdminSettings, Site};

impl Compiler<'_> {
    pub(super) fn admin(
        &mut self,
        admin: &schema::admin::Admin,
        listen: &[Spanned<String>],
        addrs: &[SocketAddr],
        sites: &[Arc<Site>],
    ) -> AdminSettings {
        let tls = admin.tls.as_ref().and_then(|t| self.cert(&t.cert, &t.key));
        let exposed = addrs.iter().position(|a| !a.ip().is_loopback());
        if let Some(i) = exposed
            && admin.tls.is_none()
        {
            let span = listen.get(i).map_or(0..0, Spanned::span);
            self.error(
                span,
                "an admin address off loopback needs [admin.tls] (cert and key): bearer tokens must not cross a network in the clear",
            );
        }
        let rate = *admin.purge_rate.get_ref();
        if !(rate > 0.0 && rate.is_finite()) {
            self.error(
                admin.purge_rate.span(),
                "admin.purge_rate must be a positive number of purges per second",
            );
        }
        let site_names: HashSet<&str> = sites.iter().map(|s| s.name.as_str()).collect();
        let mut names = HashSet::new();
        let mut hashes = HashSet::new();
        let mut tokens = Vec::new();
        for t in &admin.tokens {
            let span = t.span();
            let t = t.get_ref();
            let name = t.name.get_ref().trim().to_string();
            if name.is_empty() || !names.insert(name.clone()) {
                self.error(
                    t.name.span(),
                    format!("admin token name {name:?} is empty or used twice"),
                );
            }
            let Some(sha256) = purge_api::auth::parse_hex(t.sha256.get_ref().trim()) else {
                self.error(
                    t.sha256.span(),
                    "admin token sha256 must be 64 hex digits: the SHA-256 of the secret (`edge token-hash`)",
                );
                continue;
            };
            if !hashes.insert(sha256) {
                self.error(span, "two admin tokens have the same secret");
            }
            let sites = t.sites.as_ref().map(|list| {
                list.iter()
                    .filter_map(|s| {
                        let known = site_names.contains(s.get_ref().as_str());
                        if !known {
                            self.error(
                                s.span(),
                                format!("admin token {name:?}: no site is named {:?}", s.get_ref()),
                            );
                        }
                        known.then(|| s.get_ref().clone())
                    })
                    .collect()
            });
            let kinds = t.kinds.as_ref().map(|list| {
                list.iter()
                    .filter_map(|k| {
                        let kind = Kind::parse(k.get_ref());
                        if kind.is_none() {
                            self.error(
                                k.span(),
                                format!(
                                    "unknown purge kind {:?}: expected url, prefix, tag, host or everything",
                                    k.get_ref()
                                ),
                            );
                        }
                        kind
                    })
                    .collect()
            });
            tokens.push(Token {
                name,
                sha256,
                sites,
                kinds,
                read_only: t.read_only,
            });
        }
        AdminSettings {
            tls,
            open_metrics: admin.open_metrics.unwrap_or(exposed.is_none()),
            purge_rate: rate,
            purge_burst: admin.purge_burst.max(1),
            tokens: Tokens::new(tokens),
        }
    }
}
