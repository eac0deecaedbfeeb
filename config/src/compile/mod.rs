//! Validation and compilation of a [`Document`] into a [`Snapshot`]: a pure function of the
//! document. Nothing here reads files, the network or the environment; a source has already put
//! every certificate, key and CA file the text names into `Document::blobs`. Split by section:
//! `tls` (certificates from blobs), `pools`, `sites`; this file holds the driver, the node-wide
//! sections and the assembly of the snapshot.

mod admin;
mod dns;
mod geo;
mod log;
mod pools;
mod protect;
mod rules;
mod sites;
#[cfg(test)]
mod test_doc;
mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use crate::schema;
use crate::{
    CacheSettings, Cidr, ConfigError, Diagnostic, DnsSettings, Document, Limits, Listen,
    OriginSettings, Reload, Snapshot, Timeouts,
};

/// Validates and compiles `doc`. Pure: the same document gives the same snapshot (but for
/// `loaded_at`), and no I/O happens. Every problem found is reported, each with the location in
/// `doc.text` it comes from; a certificate, key or CA name missing from `doc.blobs` is reported
/// where the text names it.
pub fn compile(doc: &Document) -> Result<Snapshot, ConfigError> {
    let mut cx = Compiler {
        doc,
        errors: Vec::new(),
    };
    let file: schema::File = match toml::from_str(&doc.text) {
        Ok(f) => f,
        Err(e) => {
            let (file, location) = match e.span() {
                Some(s) => {
                    let (file, at) = doc.locate(s.start);
                    (file, Some(at))
                }
                None => (doc.name.clone(), None),
            };
            return Err(ConfigError::Invalid(vec![Diagnostic {
                file,
                location,
                reason: e.message().trim().to_string(),
            }]));
        }
    };
    let snapshot = cx.snapshot(file);
    if cx.errors.is_empty() {
        snapshot.ok_or_else(|| ConfigError::Invalid(Vec::new()))
    } else {
        Err(ConfigError::Invalid(cx.errors))
    }
}

/// Collects diagnostics while the sections compile, so one run reports every problem.
struct Compiler<'a> {
    doc: &'a Document,
    errors: Vec<Diagnostic>,
}

impl Compiler<'_> {
    /// An empty span at 0 is a problem of the document as a whole (defaults have no location).
    fn error(&mut self, span: Range<usize>, reason: impl Into<String>) {
        let (file, location) = if span.is_empty() && span.start == 0 {
            (self.doc.name.clone(), None)
        } else {
            let (file, at) = self.doc.locate(span.start);
            (file, Some(at))
        };
        self.errors.push(Diagnostic {
            file,
            location,
            reason: reason.into(),
        });
    }

    fn addrs(&mut self, list: &[Spanned<String>], what: &str) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for a in list {
            match a.get_ref().parse::<SocketAddr>() {
                Ok(addr) if out.contains(&addr) => {
                    self.error(a.span(), format!("duplicate {what} address {addr}"))
                }
                Ok(addr) => out.push(addr),
                Err(_) => self.error(
                    a.span(),
                    format!(
                        "invalid {what} address {:?}: expected IP:PORT, e.g. \"127.0.0.1:8443\" or \"[::1]:8443\"",
                        a.get_ref()
                    ),
                ),
            }
        }
        out
    }

    fn snapshot(&mut self, file: schema::File) -> Option<Snapshot> {
        let node_name = file.node.name.get_ref().trim().to_string();
        if node_name.is_empty()
            || !node_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            self.error(
                file.node.name.span(),
                "node.name must be a non-empty token of letters, digits, '-', '_' or '.' (it goes into Via)",
            );
        }

        let mut label = |v: &Option<Spanned<String>>, what: &str| match v {
            None => String::new(),
            Some(s) => {
                let text = s.get_ref().trim().to_string();
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) {
                    self.error(s.span(), format!("node.{what} must be a non-empty token"));
                }
                text
            }
        };
        let pop = label(&file.node.pop, "pop");
        let region = label(&file.node.region, "region");

        let mut trusted_peers = Vec::new();
        for t in &file.node.trusted_peers {
            match t.get_ref().trim().parse::<Cidr>() {
                Ok(c) => trusted_peers.push(c),
                Err(e) => self.error(t.span(), format!("node.trusted_peers: {e}")),
            }
        }

        let https = self.addrs(&file.listen.https, "https listen");
        let http = self.addrs(&file.listen.http, "http listen");
        let admin = self.addrs(&file.listen.admin, "admin listen");
        let dns_servers = self.addrs(&file.origin.dns_servers, "DNS server");
        // A file for `edge dns` alone needs no HTTP listener.
        if https.is_empty() && http.is_empty() && file.dns.is_none() {
            self.error(
                0..0,
                "listen: at least one of `https` or `http` must list an address",
            );
        }

        let default_cert = match &file.tls {
            Some(t) => self.cert(&t.cert, &t.key),
            None => None,
        };

        let mut pools = BTreeMap::new();
        for (name, pool) in &file.pools {
            if let Some(p) = self.pool(name, pool) {
                pools.insert(name.clone(), p);
            }
        }

        let geodns = file.dns.as_ref().and_then(|d| self.geodns(d));
        let dns_scope = file.dns.as_ref().map(|d| dns::DnsScope::of(d.get_ref()));
        let (sites, exact_hosts, wildcard_hosts) =
            self.sites(&file, &pools, &https, dns_scope.as_ref());

        if file.limits.max_request_header_bytes < 1024 {
            self.error(
                0..0,
                "limits.max_request_header_bytes must be at least 1024",
            );
        }
        if file.limits.max_uri_bytes < 64 {
            self.error(0..0, "limits.max_uri_bytes must be at least 64");
        }

        let fraction = *file.cache.heuristic_fraction.get_ref();
        if !(0.0..=1.0).contains(&fraction) {
            self.error(
                file.cache.heuristic_fraction.span(),
                "cache.heuristic_fraction must be between 0 and 1",
            );
        }
        if file.cache.max_object_memory_bytes > file.cache.memory_bytes {
            self.error(
                0..0,
                "cache.max_object_memory_bytes must not exceed cache.memory_bytes",
            );
        }
        if !(4096..=64 << 20).contains(&file.cache.slice_bytes) {
            self.error(0..0, "cache.slice_bytes must be between 4KiB and 64MiB");
        }
        let disk_dir = file
            .cache
            .disk_dir
            .as_ref()
            .map(|d| self.doc.base.join(d.get_ref()));
        if file.reload.poll_interval < Duration::from_millis(100) {
            self.error(0..0, "reload.poll_interval must be at least 100ms");
        }

        let admin_settings = self.admin(&file.admin, &file.listen.admin, &admin, &sites);
        let log = self.log(&file.log);
        let geo = self.geo_node(&file.geo);
        let mut proxy_sources = Vec::new();
        for t in &file.listen.proxy_protocol {
            match t.get_ref().parse::<crate::net::Cidr>() {
                Ok(c) => proxy_sources.push(c),
                Err(e) => self.error(t.span(), format!("listen.proxy_protocol: {e}")),
            }
        }
        let proxy_protocol = crate::net::CidrSet::new(&proxy_sources);

        if !self.errors.is_empty() {
            return None;
        }
        let mut shield_peers: Vec<std::net::IpAddr> = sites
            .iter()
            .filter_map(|s| s.shield.as_ref())
            .filter_map(|name| pools.get(name))
            .flat_map(|p| p.endpoints.iter().map(|e| e.ip().to_canonical()))
            .collect();
        shield_peers.sort();
        shield_peers.dedup();
        Some(Snapshot {
            version: self.doc.revision,
            source: self.doc.name.clone(),
            loaded_at: edge_core::clock::wall(),
            pop: if pop.is_empty() {
                node_name.clone()
            } else {
                pop
            },
            region,
            tier: file.node.tier,
            node_name,
            trusted_peers,
            shield_peers,
            admin: admin_settings,
            listen: Listen {
                https,
                http,
                admin,
                http3: file.listen.http3,
                alt_svc_max_age: file.listen.alt_svc_max_age,
            },
            timeouts: Timeouts {
                tls_handshake: file.timeouts.tls_handshake,
                request_header: file.timeouts.request_header,
                client_idle: file.timeouts.client_idle,
                client_send: file
                    .timeouts
                    .client_send
                    .max(std::time::Duration::from_millis(100)),
                origin_connect: file.timeouts.origin_connect,
                origin_tls_handshake: file.timeouts.origin_tls_handshake,
                origin_response_header: file.timeouts.origin_response_header,
                origin_body_idle: file.timeouts.origin_body_idle,
                shutdown_grace: file.timeouts.shutdown_grace,
            },
            limits: Limits {
                max_request_header_bytes: file.limits.max_request_header_bytes,
                max_uri_bytes: file.limits.max_uri_bytes,
                max_request_headers: file.limits.max_request_headers.max(1),
                max_requests_per_connection: file.limits.max_requests_per_connection,
                max_connections_per_client: file.limits.max_connections_per_client,
                max_connections: file.limits.max_connections,
                h2_max_concurrent_streams: file.limits.h2_max_concurrent_streams.max(1),
                h2_max_pending_accept_reset_streams: file
                    .limits
                    .h2_max_pending_accept_reset_streams,
                h2_max_local_error_reset_streams: file.limits.h2_max_local_error_reset_streams,
                quic_retry_above: file.limits.quic_retry_above,
                quic_max_handshakes_per_client: file.limits.quic_max_handshakes_per_client,
                new_connections_per_client: file.limits.new_connections_per_client,
                new_connections_burst: file.limits.new_connections_burst,
                client_min_send_rate: file.limits.client_min_send_rate,
                client_send_grace: file.limits.client_send_grace,
                max_buffered_response_bytes: file.limits.max_buffered_response_bytes.max(16 * 1024),
                quic_max_concurrent_streams: file.limits.quic_max_concurrent_streams.max(1),
                early_reset_min_streams: file.limits.early_reset_min_streams.max(1),
            },
            origin: OriginSettings {
                max_idle_per_endpoint: file.origin.max_idle_per_endpoint,
                idle_timeout: file.origin.idle_timeout,
                max_connection_lifetime: Some(file.origin.max_connection_lifetime)
                    .filter(|d| !d.is_zero()),
                dns: DnsSettings {
                    servers: dns_servers,
                    min_ttl: file.origin.dns_min_ttl,
                    max_ttl: file.origin.dns_max_ttl.max(file.origin.dns_min_ttl),
                },
            },
            reload: Reload {
                watch_file: file.reload.watch_file,
                poll_interval: file.reload.poll_interval,
            },
            cache: CacheSettings {
                memory_bytes: file.cache.memory_bytes,
                max_object_memory_bytes: file.cache.max_object_memory_bytes,
                disk_dir,
                disk_bytes: file.cache.disk_bytes,
                hit_for_pass: file.cache.hit_for_pass,
                collapse_timeout: file.cache.collapse_timeout,
                slice_bytes: file.cache.slice_bytes,
                slice_above_bytes: file.cache.slice_above_bytes,
            },
            log,
            geo,
            dns: geodns.map(std::sync::Arc::new),
            proxy_protocol,
            default_cert,
            sites,
            pools,
            exact_hosts,
            wildcard_hosts,
        })
    }
}
