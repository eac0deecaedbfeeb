//! `[pools.NAME]`: endpoints (addresses and DNS names), balancing, retries, health checks,
//! outlier ejection and the transport to the origin.

use std::net::SocketAddr;
use std::time::Duration;

use toml::Spanned;

use super::Compiler;
use crate::schema;
use crate::{DnsEndpoint, HealthCheck, OriginTls, OriginTransport, Outlier, Pool};

impl Compiler<'_> {
    pub(super) fn pool(&mut self, name: &str, spanned: &Spanned<schema::Pool>) -> Option<Pool> {
        let p = spanned.get_ref();
        if p.endpoints.is_empty() {
            self.error(spanned.span(), format!("pool {name:?} has no endpoints"));
        }
        let mut endpoints = Vec::new();
        let mut weights = Vec::new();
        let mut dns: Vec<DnsEndpoint> = Vec::new();
        for e in &p.endpoints {
            let (addr, weight) = match e.get_ref() {
                schema::Endpoint::Addr(a) => (a, 1),
                schema::Endpoint::Weighted { addr, weight } => (addr, *weight),
            };
            match addr.parse::<SocketAddr>() {
                Ok(a) if endpoints.contains(&a) => {
                    self.error(e.span(), format!("duplicate pool endpoint address {a}"))
                }
                Ok(_) if weight == 0 || weight > 1000 => {
                    self.error(e.span(), format!("weight {weight} is out of range 1..=1000"))
                }
                Ok(a) => {
                    endpoints.push(a);
                    weights.push(weight);
                }
                Err(_) => match dns_endpoint(addr) {
                    Some(_) if weight == 0 || weight > 1000 => {
                        self.error(e.span(), format!("weight {weight} is out of range 1..=1000"))
                    }
                    Some((host, port)) if dns.iter().any(|d| d.host == host && d.port == port) => {
                        self.error(e.span(), format!("duplicate pool endpoint {addr}"))
                    }
                    Some((host, port)) => dns.push(DnsEndpoint { host, port, weight }),
                    None => self.error(
                        e.span(),
                        format!(
                            "invalid pool endpoint {addr:?}: expected IP:PORT or NAME:PORT, e.g. \"127.0.0.1:9000\" or \"origin.example.com:443\""
                        ),
                    ),
                },
            }
        }
        let budget = *p.retry_budget.get_ref();
        if !(0.0..=1.0).contains(&budget) {
            self.error(
                p.retry_budget.span(),
                "retry_budget is a share of requests in flight, from 0.0 to 1.0",
            );
        }
        let health = p.health.as_ref().map(|h| HealthCheck {
            method: http::Method::from_bytes(h.method.as_bytes()).unwrap_or(http::Method::GET),
            path: h.path.clone(),
            host: h.host.clone(),
            expect: h.expect.clone(),
            interval: h.interval.max(Duration::from_millis(50)),
            timeout: h.timeout,
            rise: h.rise.max(1),
            fall: h.fall.max(1),
            jitter: h.jitter.clamp(0.0, 0.5),
        });
        if let Some(h) = &p.health
            && (!h.path.starts_with('/') || http::Method::from_bytes(h.method.as_bytes()).is_err())
        {
            self.error(
                spanned.span(),
                format!("pool {name:?}: health check needs a method and a path starting with '/'"),
            );
        }
        let tls = if p.tls {
            let ca = p
                .tls_ca_file
                .as_ref()
                .map(|file| self.ca_file(file))
                .unwrap_or_default();
            if let Some(n) = &p.tls_server_name
                && rustls_pki_types::ServerName::try_from(n.get_ref().as_str()).is_err()
            {
                self.error(
                    n.span(),
                    format!("invalid TLS server name {:?}", n.get_ref()),
                );
            }
            Some(OriginTls {
                ca,
                server_name: p.tls_server_name.as_ref().map(|n| n.get_ref().clone()),
            })
        } else {
            for (key, v) in [
                ("tls_ca_file", &p.tls_ca_file),
                ("tls_server_name", &p.tls_server_name),
            ] {
                if let Some(v) = v {
                    self.error(v.span(), format!("{key} needs tls = true"));
                }
            }
            None
        };
        if let Some(h) = &p.host
            && http::HeaderValue::from_str(h.get_ref()).is_err()
        {
            self.error(h.span(), format!("invalid host {:?}", h.get_ref()));
        }
        let o = &p.outlier;
        Some(Pool {
            dns,
            transport: OriginTransport {
                protocol: p.protocol,
                tls,
            },
            host: p.host.as_ref().map(|h| h.get_ref().clone()),
            name: name.to_string(),
            endpoints,
            weights,
            algorithm: p.algorithm,
            retries: p.retries.min(10),
            retry_budget: budget.clamp(0.0, 1.0),
            per_try_timeout: p.per_try_timeout,
            max_requests: p.max_requests.max(1),
            health,
            outlier: Outlier {
                consecutive_failures: o.consecutive_failures,
                base_ejection: o.base_ejection,
                max_ejection: o.max_ejection.max(o.base_ejection),
                max_ejected_share: o.max_ejected_share.clamp(0.0, 1.0),
            },
        })
    }
}

/// `NAME:PORT` with a DNS host name (letters, digits, `-`, `.`; not an IP literal).
fn dns_endpoint(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(label_ok)
        && host.parse::<std::net::IpAddr>().is_err()
        && port != 0;
    valid.then_some((host, port))
}
