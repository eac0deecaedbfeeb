//! A small MaxMind DB (MMDB 2.0) writer: an IPv6 tree (IPv4 under `::/96`), 32-bit records,
//! and data values of the types geo records use (maps, strings, unsigned integers). It writes
//! the databases the tests need (loopback addresses mapped to chosen countries), in any of the
//! layouts the reader understands; the format is MaxMind's published spec
//! (<https://maxmind.github.io/MaxMind-DB/>).

use std::collections::BTreeMap;
use std::net::IpAddr;

/// A data value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    Str(String),
    U32(u32),
    U16(u16),
    U64(u64),
    Map(BTreeMap<String, Value>),
    Array(Vec<Value>),
}

impl Value {
    /// `{"country_code": CC}`: the DB-IP / ip-location-db country layout.
    pub fn country_code(cc: &str) -> Value {
        Value::Map([("country_code".to_string(), Value::Str(cc.into()))].into())
    }

    /// The GeoIP2-Country layout: `{"continent": {"code"}, "country": {"iso_code"}}`.
    pub fn geoip2_country(cc: &str, continent: &str) -> Value {
        let named = |k: &str, v: &str| Value::Map([(k.to_string(), Value::Str(v.into()))].into());
        Value::Map(
            [
                ("continent".to_string(), named("code", continent)),
                ("country".to_string(), named("iso_code", cc)),
            ]
            .into(),
        )
    }

    /// The GeoLite2-ASN / ip-location-db ASN layout.
    pub fn asn(number: u32, org: &str) -> Value {
        Value::Map(
            [
                ("autonomous_system_number".to_string(), Value::U32(number)),
                (
                    "autonomous_system_organization".to_string(),
                    Value::Str(org.into()),
                ),
            ]
            .into(),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Empty,
    Node(usize),
    Data(usize),
}

/// Networks and their records, written with [`Writer::to_bytes`].
#[derive(Debug)]
pub struct Writer {
    database_type: String,
    nodes: Vec<[Slot; 2]>,
    values: Vec<Value>,
}

impl Writer {
    pub fn new(database_type: &str) -> Writer {
        Writer {
            database_type: database_type.to_string(),
            nodes: vec![[Slot::Empty; 2]],
            values: Vec::new(),
        }
    }

    /// Maps `addr/prefix` (an IPv4 network goes under `::/96`) to `value`. Insert wider
    /// networks before narrower ones inside them.
    pub fn insert(&mut self, addr: IpAddr, prefix: u8, value: Value) -> &mut Writer {
        let (bits, len) = match addr {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 96 + u32::from(prefix.min(32))),
            IpAddr::V6(v6) => (u128::from(v6), u32::from(prefix.min(128))),
        };
        let data = self.values.len();
        self.values.push(value);
        let mut node = 0;
        for depth in 0..len {
            let bit = usize::from((bits >> (127 - depth)) & 1 == 1);
            if depth + 1 == len {
                self.nodes[node][bit] = Slot::Data(data);
                break;
            }
            node = match self.nodes[node][bit] {
                Slot::Node(n) => n,
                // A narrower network inside a wider one: split the wider one's record.
                other => {
                    let fill = if let Slot::Data(_) = other {
                        other
                    } else {
                        Slot::Empty
                    };
                    self.nodes.push([fill; 2]);
                    let n = self.nodes.len() - 1;
                    self.nodes[node][bit] = Slot::Node(n);
                    n
                }
            };
        }
        self
    }

    /// The database file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let node_count = self.nodes.len();
        let mut data = Vec::new();
        let mut offsets = Vec::with_capacity(self.values.len());
        for v in &self.values {
            offsets.push(data.len());
            encode(v, &mut data);
        }
        let mut out = Vec::with_capacity(node_count * 8 + 16 + data.len() + 256);
        for node in &self.nodes {
            for slot in node {
                let record = match *slot {
                    Slot::Empty => node_count,
                    Slot::Node(n) => n,
                    Slot::Data(d) => node_count + 16 + offsets[d],
                };
                let record = u32::try_from(record).unwrap_or(u32::MAX);
                out.extend_from_slice(&record.to_be_bytes());
            }
        }
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        let str_ = |s: &str| Value::Str(s.to_string());
        let metadata = Value::Map(
            [
                (
                    "node_count".to_string(),
                    Value::U32(u32::try_from(node_count).unwrap_or(u32::MAX)),
                ),
                ("record_size".to_string(), Value::U16(32)),
                ("ip_version".to_string(), Value::U16(6)),
                ("database_type".to_string(), str_(&self.database_type)),
                ("binary_format_major_version".to_string(), Value::U16(2)),
                ("binary_format_minor_version".to_string(), Value::U16(0)),
                ("build_epoch".to_string(), Value::U64(1_700_000_000)),
                ("languages".to_string(), Value::Array(vec![str_("en")])),
                (
                    "description".to_string(),
                    Value::Map([("en".to_string(), str_("edge test database"))].into()),
                ),
            ]
            .into(),
        );
        encode(&metadata, &mut out);
        out
    }
}

/// Control byte(s) for `kind` (1..=7 plain, 8.. extended) and `size`.
fn control(kind: u8, size: usize, out: &mut Vec<u8>) {
    let (size_bits, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, Vec::new()),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    if kind <= 7 {
        out.push((kind << 5) | size_bits);
    } else {
        out.push(size_bits);
        out.push(kind - 7);
    }
    out.extend_from_slice(&extra);
}

fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Str(s) => {
            control(2, s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::U16(n) => uint(5, u64::from(*n), out),
        Value::U32(n) => uint(6, u64::from(*n), out),
        Value::U64(n) => uint(9, *n, out),
        Value::Map(m) => {
            control(7, m.len(), out);
            for (k, v) in m {
                encode(&Value::Str(k.clone()), out);
                encode(v, out);
            }
        }
        Value::Array(items) => {
            control(11, items.len(), out);
            for v in items {
                encode(v, out);
            }
        }
    }
}

fn uint(kind: u8, n: u64, out: &mut Vec<u8>) {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(kind, bytes.len() - skip, out);
    out.extend_from_slice(&bytes[skip..]);
}
