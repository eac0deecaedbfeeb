//! Fuzz entry point (`fuzz/fuzz_targets/dns_query.rs`), replayed by the tests below over the
//! committed corpus on stable: the whole query path for one datagram, as the server runs it.
//! hickory decodes the message (what it refuses, the server answers FORMERR or drops, without
//! us); what it accepts goes through [`Shared::answer`] and is encoded. Nothing may panic, and
//! every response must decode again with the query's id.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::Message;
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::Request;
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::handler::Shared;
use crate::metrics::Metrics;
use crate::select::PopState;
use crate::zone::Zone;

const CONFIG: &str = r#"
[listen]
http = ["127.0.0.1:1"]
[pools.origin]
endpoints = ["127.0.0.1:1"]
[[sites]]
name = "shop"
hosts = ["shop.example.com", "example.org", "*.example.org"]
routes = [{ path_prefix = "/", pool = "origin" }]
dns = { pin = { DE = "fra" }, exclude = ["sin"] }
[dns]
zone = "cdn.example.net"
delegated = ["example.org"]
nameservers = [{ name = "ns1.cdn.example.net", addresses = ["192.0.2.53", "2001:db8::53"] }]
answers = 2
[[dns.pops]]
name = "fra"
location = [50.11, 8.68]
addresses = ["192.0.2.10", "2001:db8::10"]
[[dns.pops]]
name = "nyc"
location = [40.71, -74.01]
addresses = ["192.0.2.20"]
[[dns.pops]]
name = "sin"
location = [1.35, 103.82]
addresses = ["192.0.2.30"]
"#;

fn shared() -> Result<&'static Shared, &'static str> {
    static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let doc = config::Document {
                name: PathBuf::from("fuzz.toml"),
                base: PathBuf::from("/fuzz"),
                text: CONFIG.into(),
                blobs: BTreeMap::new(),
                unavailable: BTreeMap::new(),
                revision: 1,
                parts: Vec::new(),
            };
            let snapshot = config::compile(&doc).map_err(|e| format!("{e:?}"))?;
            let dns = snapshot.dns.clone().ok_or("no [dns]")?;
            let states = vec![
                PopState {
                    up: true,
                    ..PopState::default()
                },
                PopState {
                    up: true,
                    overloaded: true,
                    ..PopState::default()
                },
                PopState {
                    up: false,
                    ..PopState::default()
                },
            ];
            Ok(Shared {
                zone: ArcSwap::from_pointee(Zone::new(&dns, &snapshot.sites, 1)),
                states: ArcSwap::from_pointee(states),
                geo: Arc::new(geo::GeoIp::default()),
                metrics: Metrics::new(Vec::new()),
            })
        })
        .as_ref()
        .map_err(String::as_str)
}

/// One datagram from a client, end to end.
pub fn query(data: &[u8]) {
    let shared = match shared() {
        Ok(s) => s,
        Err(e) => panic!("the fuzz zone's config does not compile: {e}"),
    };
    let src = std::net::SocketAddr::from(([198, 51, 100, 7], 5353));
    let Ok(request) = Request::from_bytes(data.to_vec(), src, Protocol::Udp) else {
        return; // hickory answers FORMERR or drops: not ours
    };
    let a = shared.answer(&request);
    let Some(meta) = a.meta else {
        panic!("an answer without a header");
    };
    let none: [hickory_server::proto::rr::Record; 0] = [];
    let response = MessageResponseBuilder::new(&request.queries, a.edns.as_ref()).build(
        meta,
        &a.answers,
        &a.authority,
        &none,
        &a.additional,
    );
    let mut bytes = Vec::with_capacity(512);
    let mut enc = BinEncoder::new(&mut bytes);
    if response.destructive_emit(&mut enc).is_err() {
        return; // hickory sends a SERVFAIL of its own then
    }
    let back = match Message::from_vec(&bytes) {
        Ok(m) => m,
        Err(e) => panic!("our response does not decode: {e}"),
    };
    assert_eq!(back.metadata.id, request.metadata.id);
}

#[cfg(test)]
mod tests {
    #[test]
    fn corpus_dns_query() {
        let dir = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/corpus/dns_query"
        ));
        let mut n = 0;
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if let Ok(data) = std::fs::read(entry.path()) {
                super::query(&data);
                n += 1;
            }
        }
        assert!(n >= 5, "corpus has {n} files");
    }
}
