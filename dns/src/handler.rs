//! The query path: one DNS message in, one out. Checks what hickory's decoder leaves to us
//! (opcode, question count, EDNS version, the Client Subnet option), finds where the client
//! is, asks the [`Zone`](crate::zone::Zone) and shapes the response (EDNS echoed, RFC 7871
//! scope). Holds no lock: the zone and the POPs' state are read from `ArcSwap`s.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_server::proto::rr::{LowerName, Name};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::metrics::Metrics;
use crate::select::{Client, PopState};
use crate::zone::{Asked, Reply, Zone};

/// Largest UDP response we send: the DNS flag day 2020 value, which avoids IP fragmentation.
const MAX_UDP_PAYLOAD: u16 = 1232;

/// What the handler reads per query.
pub struct Shared {
    pub zone: ArcSwap<Zone>,
    pub states: ArcSwap<Vec<PopState>>,
    pub geo: Arc<geo::GeoIp>,
    pub metrics: Arc<Metrics>,
}

#[derive(Clone)]
pub struct Handler(pub Arc<Shared>);

/// The Client Subnet option of a query, checked (RFC 7871 §7.1.2): scope 0, no address bits
/// beyond the source prefix. `Err` is a FORMERR.
fn client_subnet(edns: Option<&Edns>) -> Result<Option<ClientSubnet>, ()> {
    let Some(EdnsOption::Subnet(cs)) = edns.and_then(|e| e.option(EdnsCode::Subnet)) else {
        return Ok(None);
    };
    let (max, bits) = match cs.addr() {
        IpAddr::V4(v4) => (32, u128::from(u32::from(v4)) << 96),
        IpAddr::V6(v6) => (128, u128::from(v6)),
    };
    let prefix = cs.source_prefix();
    let host_bits = if prefix >= 128 { 0 } else { bits << prefix };
    if cs.scope_prefix() != 0 || prefix > max || (prefix < max && host_bits != 0) {
        return Err(());
    }
    Ok(Some(*cs))
}

/// `ip` with only its first `prefix` bits.
fn truncate(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

impl Shared {
    /// Where the client is: its subnet's country, that country's centre (or its continent's).
    fn locate(&self, ip: IpAddr) -> (Client, Option<geo::Code>) {
        let g = self.geo.lookup(ip);
        let client = Client {
            location: None,
            country: g.country.map(|c| c.0),
            continent: g.continent.map(|c| c.0),
        };
        (client, g.country)
    }

    /// The whole answer for one request, as parts for the response builder.
    pub fn answer(&self, request: &Request) -> Answer {
        let started = edge_core::clock::now();
        let mut meta = Metadata::response_from_request(&request.metadata);
        let mut out = Answer::default();
        let ecs = client_subnet(request.edns.as_ref());
        let mut edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            e
        });
        let info = request.request_info().ok();
        let qtype = info.as_ref().map(|i| i.query.query_type());
        meta.response_code = if request.metadata.op_code != OpCode::Query {
            ResponseCode::NotImp
        } else if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            ResponseCode::BADVERS
        } else if info.is_none() || ecs.is_err() {
            ResponseCode::FormErr
        } else {
            ResponseCode::NoError
        };
        if meta.response_code == ResponseCode::NoError
            && let Some(info) = &info
        {
            let zone = self.zone.load();
            let states = self.states.load();
            let ecs = ecs.ok().flatten();
            // The subnet a resolver sent, cut to what we use; else the resolver itself.
            let (addr, used) = match ecs {
                Some(cs) if cs.source_prefix() > 0 => {
                    let limit = match cs.addr() {
                        IpAddr::V4(_) => zone.ecs_ipv4_prefix,
                        IpAddr::V6(_) => zone.ecs_ipv6_prefix,
                    };
                    let used = cs.source_prefix().min(limit);
                    (truncate(cs.addr(), used), Some(used))
                }
                _ => (request.src().ip(), None),
            };
            let mut country = None;
            let lower: &LowerName = info.query.name();
            let name: &Name = info.query.original().name();
            let asked = Asked {
                name,
                lower,
                qtype: info.query.query_type(),
                qclass: info.query.query_class(),
            };
            let reply: Reply = zone.answer(&asked, &states, || {
                let (c, cc) = self.locate(addr);
                country = cc;
                c
            });
            meta.response_code = reply.rcode;
            meta.authoritative = reply.authoritative;
            if let (Some(site), Some(choice)) = (reply.site, &reply.choice) {
                let pop = choice.pops.first().map(|&p| zone.pops[p].name.clone());
                self.metrics.answered(
                    &zone.sites[site].name,
                    pop.as_deref(),
                    country,
                    choice.reason,
                );
            }
            if let (Some(e), Some(cs)) = (edns.as_mut(), ecs) {
                // Echo family, source prefix and address; the scope is what the answer used
                // (0: good for every client, e.g. a name that does not depend on location).
                let scope = if reply.located { used.unwrap_or(0) } else { 0 };
                let mut back = cs;
                back.set_scope_prefix(scope);
                e.options_mut().insert(EdnsOption::Subnet(back));
            }
            out.answers = reply.answers;
            out.authority = reply.authority;
            out.additional = reply.additional;
        }
        self.metrics.query(qtype, meta.response_code, started);
        out.meta = Some(meta);
        out.edns = edns;
        out
    }
}

/// A response's parts.
#[derive(Default)]
pub struct Answer {
    pub meta: Option<Metadata>,
    pub edns: Option<Edns>,
    pub answers: Vec<hickory_server::proto::rr::Record>,
    pub authority: Vec<hickory_server::proto::rr::Record>,
    pub additional: Vec<hickory_server::proto::rr::Record>,
}

#[async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let a = self.0.answer(request);
        let meta = a
            .meta
            .unwrap_or_else(|| Metadata::response_from_request(&request.metadata));
        let builder = MessageResponseBuilder::new(&request.queries, a.edns.as_ref());
        let none: [hickory_server::proto::rr::Record; 0] = [];
        let msg = builder.build(meta, &a.answers, &a.authority, &none, &a.additional);
        match response.send_response(msg).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "dns: sending a response failed");
                ResponseInfo::from(Header {
                    metadata: meta,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_checked_as_rfc_7871_says() {
        let cs = |s: &str, p: u8, scope: u8| {
            ClientSubnet::new(
                s.parse().ok().unwrap_or(IpAddr::from([0, 0, 0, 0])),
                p,
                scope,
            )
        };
        let with = |c: ClientSubnet| {
            let mut e = Edns::new();
            e.options_mut().insert(EdnsOption::Subnet(c));
            e
        };
        assert_eq!(client_subnet(None), Ok(None));
        assert!(client_subnet(Some(&with(cs("192.0.2.0", 24, 0)))).is_ok_and(|c| c.is_some()));
        // Host bits beyond the prefix, and a scope in a query: FORMERR.
        assert_eq!(client_subnet(Some(&with(cs("192.0.2.1", 24, 0)))), Err(()));
        assert_eq!(client_subnet(Some(&with(cs("192.0.2.0", 24, 8)))), Err(()));
        assert!(client_subnet(Some(&with(cs("2001:db8::", 56, 0)))).is_ok_and(|c| c.is_some()));
        assert!(client_subnet(Some(&with(cs("0.0.0.0", 0, 0)))).is_ok());
        assert_eq!(
            truncate(
                "192.0.2.77"
                    .parse()
                    .ok()
                    .unwrap_or(IpAddr::from([0, 0, 0, 0])),
                24
            ),
            IpAddr::from([192, 0, 2, 0])
        );
        assert_eq!(
            truncate(IpAddr::from([10, 1, 2, 3]), 0),
            IpAddr::from([0, 0, 0, 0])
        );
    }
}
