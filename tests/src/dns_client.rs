//! A DNS client for the GeoDNS tests: queries built with hickory-proto's own types (the same
//! family as the server), sent over real UDP or TCP sockets, and `dig` from Debian's
//! bind9-dnsutils as a second, independent client.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use hickory_proto::op::ResponseCode;

/// A query for `name`, with EDNS (1232-byte payload) and, if given, a Client Subnet option
/// `subnet/prefix`.
pub fn query(name: &str, qtype: RecordType, subnet: Option<(IpAddr, u8)>) -> Message {
    let mut msg = Message::query();
    msg.add_query(Query::query(
        Name::from_ascii(name).unwrap_or_else(|e| panic!("{name}: {e}")),
        qtype,
    ));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some((ip, prefix)) = subnet {
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(ip, prefix, 0)));
    }
    msg.set_edns(edns);
    msg
}

/// Sends `bytes` over UDP and returns the reply datagram, or `None` after `wait`.
pub async fn udp_raw(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let bind: SocketAddr = if server.is_ipv6() {
        "[::1]:0".parse().ok()?
    } else {
        "127.0.0.1:0".parse().ok()?
    };
    let sock = tokio::net::UdpSocket::bind(bind).await.expect("bind udp");
    sock.send_to(bytes, server).await.expect("send");
    let mut buf = vec![0u8; 65_535];
    match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

/// Asks over UDP; the reply must come within 3 s and carry the query's id.
pub async fn ask(server: SocketAddr, msg: &Message) -> Message {
    let bytes = msg.to_vec().expect("encode query");
    let reply = udp_raw(server, &bytes, Duration::from_secs(3))
        .await
        .unwrap_or_else(|| panic!("no UDP answer from {server}"));
    let m = Message::from_vec(&reply).expect("decode reply");
    assert_eq!(m.metadata.id, msg.metadata.id, "reply id");
    m
}

/// Asks over TCP (two-byte length framing, RFC 1035 §4.2.2).
pub async fn ask_tcp(server: SocketAddr, msg: &Message) -> Message {
    let bytes = msg.to_vec().expect("encode query");
    let mut s = tokio::net::TcpStream::connect(server)
        .await
        .expect("connect tcp");
    let len = u16::try_from(bytes.len()).expect("small query");
    s.write_all(&len.to_be_bytes()).await.expect("write");
    s.write_all(&bytes).await.expect("write");
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut len))
        .await
        .expect("TCP answer within 3 s")
        .expect("read length");
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).await.expect("read message");
    let m = Message::from_vec(&buf).expect("decode reply");
    assert_eq!(m.metadata.id, msg.metadata.id, "reply id");
    m
}

/// The A and AAAA addresses of the answer section, in order.
pub fn addresses(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// The Client Subnet option of a reply: (address, source prefix, scope prefix).
pub fn subnet(m: &Message) -> Option<(IpAddr, u8, u8)> {
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(cs) => Some((cs.addr(), cs.source_prefix(), cs.scope_prefix())),
        _ => None,
    }
}

/// `dig @ADDR -p PORT ARGS… +short`: its output lines. Fails loudly when dig is missing.
pub fn dig(server: SocketAddr, args: &[&str]) -> Vec<String> {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+time=3", "+tries=1"])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("dig: {e}: install it with `apt-get install -y bind9-dnsutils`")
        });
    assert!(
        out.status.success(),
        "dig {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}
