#![allow(clippy::unwrap_used)]

use std::net::Ipv6Addr;

use super::*;

const TRAILER: &[u8] = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";

fn v2(ver_cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut h = V2_SIG.to_vec();
    h.extend_from_slice(&[ver_cmd, family]);
    h.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    h.extend_from_slice(body);
    h
}

fn inet_body() -> Vec<u8> {
    // 192.0.2.1:12345 -> 198.51.100.7:443
    vec![192, 0, 2, 1, 198, 51, 100, 7, 0x30, 0x39, 0x01, 0xbb]
}

fn inet6_body() -> Vec<u8> {
    let mut b = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets().to_vec();
    b.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
    b.extend_from_slice(&[0x30, 0x39, 0x01, 0xbb]);
    b
}

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut t = vec![kind];
    t.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    t.extend_from_slice(value);
    t
}

fn with(mut a: Vec<u8>, parts: &[&[u8]]) -> Vec<u8> {
    for p in parts {
        a.extend_from_slice(p);
    }
    a
}

fn addrs(source: &str, destination: &str) -> Proxied {
    Proxied::Addrs {
        source: source.parse().unwrap(),
        destination: destination.parse().unwrap(),
    }
}

fn valid_cases() -> Vec<(&'static str, Vec<u8>, Proxied)> {
    let v4 = addrs("192.0.2.1:12345", "198.51.100.7:443");
    let v6 = addrs("[2001:db8::1]:12345", "[2001:db8::2]:443");
    let ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let tlvs = [
        tlv(0x01, b"h2"),
        tlv(0x02, b"example.com"),
        tlv(0x04, b""),
        tlv(0x03, &[1, 2, 3, 4]),
        tlv(
            0x20,
            &with(vec![0x07, 0, 0, 0, 0], &[&tlv(0x21, b"TLSv1.3")]),
        ),
    ]
    .concat();
    vec![
        (
            "v1 tcp4",
            b"PROXY TCP4 192.0.2.1 198.51.100.7 12345 443\r\n".to_vec(),
            v4,
        ),
        (
            "v1 tcp4 extremes",
            b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n".to_vec(),
            addrs("0.0.0.0:0", "255.255.255.255:65535"),
        ),
        (
            "v1 tcp6",
            b"PROXY TCP6 2001:db8::1 2001:db8::2 12345 443\r\n".to_vec(),
            v6,
        ),
        (
            "v1 tcp6 longest (104 bytes)",
            format!("PROXY TCP6 {ffff} {ffff} 65535 65535\r\n").into_bytes(),
            addrs(&format!("[{ffff}]:65535"), &format!("[{ffff}]:65535")),
        ),
        (
            "v1 tcp6 upper case, IPv4-mapped kept as IPv6",
            b"PROXY TCP6 ::FFFF:192.0.2.1 ::1 1 2\r\n".to_vec(),
            addrs("[::ffff:192.0.2.1]:1", "[::1]:2"),
        ),
        (
            "v1 unknown short",
            b"PROXY UNKNOWN\r\n".to_vec(),
            Proxied::Local,
        ),
        (
            "v1 unknown with addresses",
            b"PROXY UNKNOWN 2001:db8::1 2001:db8::2 1 2\r\n".to_vec(),
            Proxied::Local,
        ),
        (
            "v1 unknown with anything but CR/LF",
            b"PROXY UNKNOWN  whatever\t \x00\xff  \r\n".to_vec(),
            Proxied::Local,
        ),
        (
            "v1 unknown worst case (107 bytes)",
            [&b"PROXY UNKNOWN "[..], &[b'x'; 91], b"\r\n"].concat(),
            Proxied::Local,
        ),
        ("v2 ipv4", v2(0x21, 0x11, &inet_body()), v4),
        ("v2 ipv6", v2(0x21, 0x21, &inet6_body()), v6),
        ("v2 local", v2(0x20, 0x00, b""), Proxied::Local),
        (
            "v2 local with addresses",
            v2(0x20, 0x11, &inet_body()),
            Proxied::Local,
        ),
        (
            "v2 local ignores the family byte",
            v2(0x20, 0xff, b"abc"),
            Proxied::Local,
        ),
        ("v2 unspec", v2(0x21, 0x00, b""), Proxied::Local),
        (
            "v2 unspec with a block",
            v2(0x21, 0x00, b"junk"),
            Proxied::Local,
        ),
        ("v2 unix stream", v2(0x21, 0x31, &[0; 216]), Proxied::Local),
        ("v2 unix dgram", v2(0x21, 0x32, &[0; 216]), Proxied::Local),
        (
            "v2 ipv4 with TLVs",
            v2(0x21, 0x11, &[inet_body(), tlvs.clone()].concat()),
            v4,
        ),
        (
            "v2 ipv6 with TLVs",
            v2(0x21, 0x21, &[inet6_body(), tlvs].concat()),
            v6,
        ),
        (
            "v2 ipv4 with a 2000-byte NOOP TLV",
            v2(
                0x21,
                0x11,
                &[inet_body(), tlv(0x04, &[0xaa; 2000])].concat(),
            ),
            v4,
        ),
    ]
}

#[test]
fn valid_headers() {
    for (name, header, want) in valid_cases() {
        let len = header.len();
        assert_eq!(parse(&header), Ok(Some((want, len))), "{name}");
        assert!(looks_like_proxy(&header), "{name}");
        // What follows the header is the proxied stream: not consumed.
        let stream = [&header[..], TRAILER].concat();
        assert_eq!(
            parse(&stream),
            Ok(Some((want, len))),
            "{name}: with a request after it"
        );
        for k in 0..len {
            assert_eq!(parse(&header[..k]), Ok(None), "{name}: first {k} bytes");
            assert!(looks_like_proxy(&header[..k]), "{name}: first {k} bytes");
        }
        fuzzing::check(&header);
        fuzzing::check(&stream);
    }
}

#[test]
fn not_proxy_as_soon_as_both_signatures_differ() {
    let mut v2_last = V2_SIG.to_vec();
    v2_last[11] = 0x0b;
    // (name, input, length of the shortest prefix that is refused)
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        (
            "http/1.1 request",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            1,
        ),
        (
            "http/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            3,
        ),
        ("PROPFIND", b"PROPFIND / HTTP/1.1\r\n".to_vec(), 4),
        ("PUT", b"PUT / HTTP/1.1\r\n".to_vec(), 2),
        (
            "tls client hello",
            vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01],
            1,
        ),
        (
            "lower case",
            b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
            1,
        ),
        ("PROXY without its space", b"PROXY\r\n".to_vec(), 6),
        (
            "PROXY and a tab",
            b"PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
            6,
        ),
        (
            "empty line then request",
            b"\r\nGET / HTTP/1.1\r\n".to_vec(),
            3,
        ),
        (
            "two empty lines then request",
            b"\r\n\r\nGET / HTTP/1.1\r\n".to_vec(),
            5,
        ),
        (
            "v2 signature, lower case quit",
            b"\r\n\r\n\0\r\nquit\n\x21\x11".to_vec(),
            8,
        ),
        (
            "v2 signature, last byte off",
            [v2_last, vec![0x21, 0x11, 0, 0]].concat(),
            12,
        ),
        ("zeros", vec![0; 20], 1),
        ("0xff", vec![0xff; 20], 1),
    ];
    assert_eq!(parse(b""), Ok(None));
    assert!(looks_like_proxy(b""));
    for (name, input, refused_at) in cases {
        for k in 0..=input.len() {
            let prefix = &input[..k];
            if k < refused_at {
                assert_eq!(parse(prefix), Ok(None), "{name}: first {k} bytes");
                assert!(looks_like_proxy(prefix), "{name}: first {k} bytes");
            } else {
                assert_eq!(
                    parse(prefix),
                    Err(ProxyError::NotProxy),
                    "{name}: first {k} bytes"
                );
                assert!(!looks_like_proxy(prefix), "{name}: first {k} bytes");
            }
        }
        fuzzing::check(&input);
    }
}

fn sig_plus(rest: &[u8]) -> Vec<u8> {
    [V2_SIG, rest].concat()
}

/// A small deterministic stand-in for the fuzzer on stable: every one-byte change and cut
/// of each table input keeps the invariants of [`fuzzing::check`].
#[test]
fn mutations_keep_the_invariants() {
    let mut inputs: Vec<Vec<u8>> = valid_cases().into_iter().map(|(_, h, _)| h).collect();
    inputs.extend(invalid_cases().into_iter().map(|(_, i, _)| i));
    for input in inputs.iter().filter(|i| i.len() <= 256) {
        for at in 0..input.len() {
            for b in [
                0x00, 0x20, b'\r', b'\n', b'0', b'9', b':', b'.', 0x11, 0x21, 0xff,
            ] {
                let mut m = input.clone();
                m[at] = b;
                fuzzing::check(&m);
            }
            let mut cut = input.clone();
            cut.remove(at);
            fuzzing::check(&cut);
        }
    }
}

#[test]
fn errors_display() {
    assert_eq!(
        ProxyError::NotProxy.to_string(),
        "not a PROXY protocol header"
    );
    assert_eq!(
        ProxyError::Invalid("v1: bad port").to_string(),
        "invalid PROXY protocol header: v1: bad port"
    );
    assert_eq!(
        ProxyError::TooLong.to_string(),
        "PROXY protocol v1 line longer than 107 bytes"
    );
}

mod invalid;
use invalid::invalid_cases;
