//! Headers that must be refused, and refused as early as the bytes show it.

use super::*;

/// (name, input, what the refusal mentions, or "too long" for [`ProxyError::TooLong`]).
pub(super) fn invalid_cases() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let v = |s: &str| s.as_bytes().to_vec();
    let ffff4 = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    vec![
        (
            "v1 unknown protocol",
            v("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"),
            "protocol",
        ),
        (
            "v1 lower case protocol",
            v("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"),
            "protocol",
        ),
        (
            "v1 UDP4",
            v("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"),
            "protocol",
        ),
        ("v1 UNKNOWNX", v("PROXY UNKNOWNX\r\n"), "protocol"),
        ("v1 no protocol", v("PROXY \r\n"), "protocol"),
        (
            "v1 two spaces after PROXY",
            v("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
            "protocol",
        ),
        ("v1 TCP4 without addresses", v("PROXY TCP4\r\n"), "missing"),
        ("v1 TCP4 with IPv6", v("PROXY TCP4 ::1 ::1 1 2\r\n"), "IPv4"),
        (
            "v1 TCP6 with IPv4",
            v("PROXY TCP6 192.0.2.1 192.0.2.2 1 2\r\n"),
            "IPv6",
        ),
        (
            "v1 TCP6 mixed",
            v("PROXY TCP6 ::1 192.0.2.2 1 2\r\n"),
            "IPv6",
        ),
        (
            "v1 octet 256",
            v("PROXY TCP4 256.0.0.1 10.0.0.1 1 2\r\n"),
            "IPv4",
        ),
        (
            "v1 three octets",
            v("PROXY TCP4 1.2.3 10.0.0.1 1 2\r\n"),
            "IPv4",
        ),
        (
            "v1 five octets",
            v("PROXY TCP4 1.2.3.4.5 10.0.0.1 1 2\r\n"),
            "IPv4",
        ),
        (
            "v1 heading zero octet",
            v("PROXY TCP4 10.0.0.1 10.00.0.1 1 2\r\n"),
            "IPv4",
        ),
        (
            "v1 empty octet",
            v("PROXY TCP4 10..0.1 10.0.0.1 1 2\r\n"),
            "IPv4",
        ),
        (
            "v1 junk after address",
            v("PROXY TCP4 1.2.3.4x 10.0.0.1 1 2\r\n"),
            "IPv4",
        ),
        (
            "v1 IPv6 zone",
            v("PROXY TCP6 fe80::1%eth0 fe80::2 1 2\r\n"),
            "IPv6",
        ),
        (
            "v1 IPv6 brackets",
            v("PROXY TCP6 [::1] ::1 1 2\r\n"),
            "IPv6",
        ),
        (
            "v1 IPv6 nine groups",
            v("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n"),
            "IPv6",
        ),
        (
            "v1 IPv6 two ::",
            v("PROXY TCP6 1::2::3 ::1 1 2\r\n"),
            "IPv6",
        ),
        (
            "v1 port 65536",
            v("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"),
            "port",
        ),
        (
            "v1 port 99999",
            v("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"),
            "port",
        ),
        (
            "v1 port 6 digits",
            v("PROXY TCP4 1.2.3.4 5.6.7.8 000001 2\r\n"),
            "port",
        ),
        (
            "v1 port +80",
            v("PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n"),
            "port",
        ),
        (
            "v1 port -1",
            v("PROXY TCP4 1.2.3.4 5.6.7.8 -1 443\r\n"),
            "port",
        ),
        (
            "v1 port heading zero",
            v("PROXY TCP4 1.2.3.4 5.6.7.8 80 0443\r\n"),
            "port",
        ),
        (
            "v1 port hex",
            v("PROXY TCP4 1.2.3.4 5.6.7.8 0x50 443\r\n"),
            "port",
        ),
        (
            "v1 two spaces",
            v("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"),
            "extra space",
        ),
        (
            "v1 trailing space",
            v("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"),
            "too many",
        ),
        (
            "v1 missing port",
            v("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"),
            "missing",
        ),
        (
            "v1 extra field",
            v("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"),
            "too many",
        ),
        (
            "v1 tab separator",
            v("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"),
            "IPv4",
        ),
        (
            "v1 LF only (must not swallow the request line)",
            v("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nGET / HTTP/1.1\r\n"),
            "CR or LF",
        ),
        (
            "v1 UNKNOWN LF only",
            v("PROXY UNKNOWN\nGET / HTTP/1.1\r\n"),
            "CR or LF",
        ),
        (
            "v1 CR only",
            v("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\r\n"),
            "CR or LF",
        ),
        ("v1 CR CR LF", v("PROXY UNKNOWN\r\r\n"), "CR or LF"),
        (
            "v1 109 bytes",
            [&b"PROXY UNKNOWN "[..], &[b'x'; 93], b"\r\n"].concat(),
            "too long",
        ),
        (
            "v1 107 bytes, no CRLF",
            [&b"PROXY UNKNOWN "[..], &[b'x'; 93]].concat(),
            "too long",
        ),
        (
            "v1 CRLF split across byte 107",
            [&b"PROXY UNKNOWN "[..], &[b'x'; 92], b"\r\n"].concat(),
            "too long",
        ),
        (
            "v1 no CRLF in a long stream",
            [&b"PROXY UNKNOWN "[..], &[b'x'; 500], b"\r\n"].concat(),
            "too long",
        ),
        (
            "v1 TCP6 with two 45-character addresses (116 bytes)",
            format!("PROXY TCP6 {ffff4} {ffff4} 65535 65535\r\n").into_bytes(),
            "too long",
        ),
        ("v2 version 1", v2(0x11, 0x11, &inet_body()), "version"),
        ("v2 version 0", v2(0x01, 0x11, &inet_body()), "version"),
        ("v2 version 3", v2(0x31, 0x11, &inet_body()), "version"),
        ("v2 version f", v2(0xf0, 0x00, b""), "version"),
        ("v2 command 2", v2(0x22, 0x11, &inet_body()), "command"),
        ("v2 command f", v2(0x2f, 0x11, &inet_body()), "command"),
        ("v2 udp4", v2(0x21, 0x12, &inet_body()), "UDP"),
        ("v2 udp6", v2(0x21, 0x22, &inet6_body()), "UDP"),
        (
            "v2 inet unspec protocol",
            v2(0x21, 0x10, &inet_body()),
            "family",
        ),
        ("v2 unspec family stream", v2(0x21, 0x01, b""), "family"),
        ("v2 inet protocol 3", v2(0x21, 0x13, &inet_body()), "family"),
        ("v2 family 4", v2(0x21, 0x41, &inet_body()), "family"),
        ("v2 family ff", v2(0x21, 0xff, &inet_body()), "family"),
        ("v2 ipv4 length 0", v2(0x21, 0x11, b""), "length"),
        (
            "v2 ipv4 length 11",
            v2(0x21, 0x11, &inet_body()[..11]),
            "length",
        ),
        (
            "v2 ipv6 length 35",
            v2(0x21, 0x21, &inet6_body()[..35]),
            "length",
        ),
        (
            "v2 ipv6 with IPv4 addresses",
            v2(0x21, 0x21, &inet_body()),
            "length",
        ),
        ("v2 unix length 215", v2(0x21, 0x31, &[0; 215]), "length"),
        (
            "v2 TLV header cut",
            v2(0x21, 0x11, &with(inet_body(), &[&[0x01, 0x00]])),
            "TLV",
        ),
        (
            "v2 TLV value past the header",
            v2(
                0x21,
                0x11,
                &with(inet_body(), &[&[0x01, 0x00, 0x05, b'h', b'2']]),
            ),
            "TLV",
        ),
        (
            "v2 one byte after the TLVs",
            v2(
                0x21,
                0x11,
                &with(inet_body(), &[&tlv(0x01, b"h2"), &[0x04]]),
            ),
            "TLV",
        ),
        (
            "v2 unix with a bad TLV",
            v2(0x21, 0x31, &with(vec![0; 216], &[&[0x04, 0xff, 0xff]])),
            "TLV",
        ),
    ]
}

#[test]
fn invalid_headers() {
    for (name, input, want) in invalid_cases() {
        let got = parse(&input);
        match (want, &got) {
            ("too long", Err(ProxyError::TooLong)) => {}
            (_, Err(ProxyError::Invalid(why))) if why.contains(want) => {}
            _ => panic!("{name}: {got:?}, want an error about {want:?}"),
        }
        assert!(looks_like_proxy(&input), "{name}");
        // Final: more bytes do not change the answer.
        assert_eq!(
            parse(&[&input[..], TRAILER].concat()),
            got,
            "{name}: with more bytes"
        );
        fuzzing::check(&input);
    }
}

/// A prefix that cannot grow into a header is refused before the header would end.
#[test]
fn invalid_prefixes_are_refused_early() {
    let sig = |rest: &[u8]| [V2_SIG, rest].concat();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("v1 protocol", b"PROXY TCP5".to_vec(), "protocol"),
        ("v1 protocol, one byte", b"PROXY X".to_vec(), "protocol"),
        ("v1 IPv6 in TCP4", b"PROXY TCP4 ::".to_vec(), "IPv4"),
        ("v1 octet 256", b"PROXY TCP4 256".to_vec(), "IPv4"),
        ("v1 heading zero", b"PROXY TCP4 01".to_vec(), "IPv4"),
        ("v1 five octets", b"PROXY TCP4 1.2.3.4.".to_vec(), "IPv4"),
        ("v1 IPv4 in TCP6", b"PROXY TCP6 1.2.3.4 ".to_vec(), "IPv6"),
        (
            "v1 IPv6 character",
            b"PROXY TCP6 2001:db8::g".to_vec(),
            "IPv6",
        ),
        (
            "v1 IPv6 over 45 characters",
            [&b"PROXY TCP6 "[..], &[b'0'; 46]].concat(),
            "IPv6",
        ),
        (
            "v1 port 65536",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536".to_vec(),
            "port",
        ),
        (
            "v1 port heading zero",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01".to_vec(),
            "port",
        ),
        (
            "v1 port sign",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +".to_vec(),
            "port",
        ),
        ("v1 two spaces", b"PROXY TCP4  ".to_vec(), "extra space"),
        (
            "v1 fifth field",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ".to_vec(),
            "too many",
        ),
        (
            "v1 CR not ending a line",
            b"PROXY TCP4 1.2.3.4\r".to_vec(),
            "missing",
        ),
        ("v1 bare LF", b"PROXY UNKNOWN\n".to_vec(), "CR or LF"),
        (
            "v1 CR then not LF",
            b"PROXY UNKNOWN\rx".to_vec(),
            "CR or LF",
        ),
        ("v2 version", sig(&[0x11]), "version"),
        ("v2 command", sig(&[0x23]), "command"),
        ("v2 udp", sig(&[0x21, 0x12]), "UDP"),
        ("v2 family", sig(&[0x21, 0x51]), "family"),
        ("v2 length", sig(&[0x21, 0x21, 0x00, 0x0c]), "length"),
        (
            "v2 TLV past the header",
            sig(&with(
                vec![0x21, 0x11, 0x00, 0x10],
                &[&inet_body(), &[0x01, 0x00, 0x02]],
            )),
            "TLV",
        ),
    ];
    for (name, input, want) in cases {
        match parse(&input) {
            Err(ProxyError::Invalid(why)) if why.contains(want) => {}
            got => panic!("{name}: {got:?}, want an error about {want:?}"),
        }
        fuzzing::check(&input);
    }
}

#[test]
fn truncated_v2_waits_for_the_rest() {
    let long_tlv = v2(0x21, 0x11, &[inet_body(), tlv(0x02, &[b'a'; 300])].concat());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("signature only", V2_SIG.to_vec()),
        ("no length", sig_plus(&[0x21, 0x11])),
        ("half the length", sig_plus(&[0x21, 0x11, 0x00])),
        ("addresses cut", v2(0x21, 0x11, &inet_body())[..20].to_vec()),
        (
            "ipv6 addresses cut",
            v2(0x21, 0x21, &inet6_body())[..51].to_vec(),
        ),
        ("TLV header cut", long_tlv[..30].to_vec()),
        ("TLV value cut", long_tlv[..200].to_vec()),
        (
            "declares 65535 bytes",
            [sig_plus(&[0x20, 0x00, 0xff, 0xff]), vec![0; 1000]].concat(),
        ),
    ];
    for (name, input) in cases {
        assert_eq!(parse(&input), Ok(None), "{name}");
        fuzzing::check(&input);
    }
    // The longest header the length field allows.
    let max = [sig_plus(&[0x20, 0x00, 0xff, 0xff]), vec![0; 65535]].concat();
    assert_eq!(max.len(), V2_MAX);
    assert_eq!(parse(&max), Ok(Some((Proxied::Local, V2_MAX))));
    assert_eq!(parse(&max[..V2_MAX - 1]), Ok(None));
}
