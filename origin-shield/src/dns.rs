//! Endpoint names: resolved with hickory-resolver, re-resolved when the answer's TTL runs out
//! (clamped to the configured floor and ceiling). A changed answer replaces the pool's
//! members; requests in flight keep theirs.

use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use crate::Pool;

pub struct Dns {
    resolver: TokioResolver,
    pub settings: config::DnsSettings,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns")
            .field("settings", &self.settings)
            .finish()
    }
}

impl Dns {
    pub fn new(settings: &config::DnsSettings) -> Result<Dns, String> {
        let builder = if settings.servers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| format!("system DNS config: {e}"))?
        } else {
            let servers = settings
                .servers
                .iter()
                .map(|s| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = s.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = s.port();
                    NameServerConfig::new(s.ip(), true, vec![udp, tcp])
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), servers),
                TokioRuntimeProvider::default(),
            )
        };
        let resolver = builder.build().map_err(|e| e.to_string())?;
        Ok(Dns {
            resolver,
            settings: settings.clone(),
        })
    }

    /// The addresses of `host` and how long they may be used.
    async fn resolve(&self, host: &str) -> Result<(Vec<IpAddr>, Duration), String> {
        // A trailing dot: the name is absolute, no search domains.
        let lookup = self
            .resolver
            .lookup_ip(format!("{host}."))
            .await
            .map_err(|e| e.to_string())?;
        // hickory states expiry as a std Instant: compare with the same clock.
        #[allow(clippy::disallowed_methods)]
        let ttl = lookup
            .valid_until()
            .saturating_duration_since(Instant::now());
        let ips: Vec<IpAddr> = lookup.iter().collect();
        if ips.is_empty() {
            return Err("no addresses".into());
        }
        Ok((ips, ttl))
    }
}

pub fn spawn(pool: &Arc<Pool>, dns: &Arc<Dns>) {
    if pool.cfg.dns.is_empty() || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    tokio::spawn(resolve_loop(Arc::downgrade(pool), dns.clone()));
}

async fn resolve_loop(pool: Weak<Pool>, dns: Arc<Dns>) {
    let (min, max) = (dns.settings.min_ttl, dns.settings.max_ttl);
    loop {
        let Some(p) = pool.upgrade() else { return };
        let names = p.cfg.dns.clone();
        drop(p);
        let mut next = max;
        for (i, name) in names.iter().enumerate() {
            let result = dns.resolve(&name.host).await;
            let Some(p) = pool.upgrade() else { return };
            match result {
                Ok((ips, ttl)) => {
                    let shown = ips.clone();
                    if p.set_answer(i, ips) {
                        tracing::info!(pool = %p.name, name = %name.host, addresses = ?shown, ttl_s = ttl.as_secs(), "endpoint name resolved to new addresses");
                    }
                    next = next.min(ttl.clamp(min, max));
                }
                Err(e) => {
                    // Keep the last answer: a DNS outage must not empty a working pool.
                    tracing::warn!(pool = %p.name, name = %name.host, error = %e, "DNS resolution failed; keeping the previous addresses");
                    next = next.min(min.max(Duration::from_secs(1)));
                }
            }
        }
        tokio::time::sleep(next).await;
    }
}
