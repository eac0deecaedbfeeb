//! TLS for both transports. Certificates are resolved per handshake from the current snapshot, so
//! a reload changes certificates without touching listeners or open connections.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;

use crate::error::Error;
use crate::pipeline::Shared;

pub struct SniResolver {
    shared: Arc<Shared>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SniResolver")
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.shared
            .runtime()
            .snapshot
            .cert_for_sni(hello.server_name())
    }
}

fn base_config(
    shared: &Arc<Shared>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    stateless_tickets: bool,
) -> Result<rustls::ServerConfig, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver {
            shared: shared.clone(),
        }));
    // Resumption both ways: stateless tickets (TLS 1.2 and 1.3) and a server-side cache.
    // Without the ticketer, TLS 1.3 tickets are keys into the cache, which gives each out once
    // (`take`): single-use, as early data needs (a replayed ClientHello finds nothing).
    if stateless_tickets {
        cfg.ticketer =
            rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| Error::Tls(e.to_string()))?;
    }
    cfg.session_storage = ServerSessionMemoryCache::new(16 * 1024);
    Ok(cfg)
}

/// TCP: TLS 1.2 and 1.3, ALPN h2 then http/1.1.
pub fn tcp_config(shared: &Arc<Shared>) -> Result<Arc<rustls::ServerConfig>, Error> {
    let mut cfg = base_config(
        shared,
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        true,
    )?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// QUIC: TLS 1.3 only, ALPN h3. With `zero_rtt`, early data is accepted on resumptions from
/// single-use tickets (rustls accepts it only with stateful tickets); without, stateless
/// tickets and no early data.
pub fn quic_config(
    shared: &Arc<Shared>,
    idle: Duration,
    zero_rtt: bool,
) -> Result<quinn::ServerConfig, Error> {
    let mut cfg = base_config(shared, &[&rustls::version::TLS13], !zero_rtt)?;
    cfg.alpn_protocols = vec![b"h3".to_vec()];
    // QUIC takes all or nothing (RFC 9001 §4.6.1).
    cfg.max_early_data_size = if zero_rtt { u32::MAX } else { 0 };
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(cfg)
        .map_err(|e| Error::Tls(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let limits = &shared.runtime().snapshot.limits;
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(limits.quic_max_concurrent_streams.into());
    // HTTP/3 clients open three unidirectional streams (control, QPACK encoder and decoder;
    // RFC 9114 §6.2), plus perhaps a few reserved (grease) ones; quinn's default of 100 kept
    // 100 entries in a map per connection for streams no client opens. With the default 100
    // request streams, 12 keeps the receive map at 128 buckets instead of 256.
    transport.max_concurrent_uni_streams(12u32.into());
    // What one connection may hold of unacknowledged response bytes (quinn: 10 MB): a client
    // that does not read cannot make us buffer more.
    transport.send_window(limits.max_buffered_response_bytes);
    if let Ok(max_idle) = quinn::IdleTimeout::try_from(idle) {
        // The transport timeout only detects a vanished peer: our pings keep a live one
        // connected through a long request, and the listener closes connections that have
        // had no request for `idle` (pings say nothing about whether a client wants them).
        transport.max_idle_timeout(Some(max_idle));
        transport.keep_alive_interval(Some(idle / 3));
    }
    server.transport_config(Arc::new(transport));
    Ok(server)
}
