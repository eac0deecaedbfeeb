//! Malformed tokens and keys, and a fixed-seed fuzz of the token parser and the DER reader.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine as _;
use serde_json::json;

use super::der;
use super::jwt::{Malformed, parse};
use super::tests::{
    EC_PRIVATE, EC_PUBLIC, EncodingKey, RSA_PRIVATE, RSA_PUBLIC, SECRET, now, sign_token, token,
};
use super::{AuthFailure, JwtAlg, JwtAuth, JwtKey, TokenSource};

fn b64url(v: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

/// A PEM section of `der`, 64 columns.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A DER element.
fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match value.len() {
        n @ 0..=0x7f => out.push(n as u8),
        n @ 0x80..=0xff => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend(value);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// secp384r1, 1.3.132.0.34.
const P384_OID: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

fn spki(alg: &[Vec<u8>], key: &[u8]) -> Vec<u8> {
    let mut bits = vec![0];
    bits.extend(key);
    seq(&[seq(alg), tlv(0x03, &bits)])
}

fn der_of(pem_text: &str) -> Vec<u8> {
    der::pem(pem_text).unwrap().1
}

fn auth(keys: Vec<JwtKey>) -> JwtAuth {
    JwtAuth::new(
        TokenSource::Header,
        keys,
        vec![],
        vec![],
        Duration::from_secs(30),
        "r",
    )
    .unwrap()
}

fn all_keys() -> JwtAuth {
    auth(vec![
        JwtKey::hs256(SECRET).unwrap(),
        JwtKey::public_pem(JwtAlg::Es256, EC_PUBLIC).unwrap(),
        JwtKey::public_pem(JwtAlg::Rs256, RSA_PUBLIC).unwrap(),
    ])
}

fn claims() -> serde_json::Value {
    json!({ "sub": "u1", "exp": now() + 60 })
}

fn key_error(alg: JwtAlg, pem_text: &str) -> String {
    JwtKey::public_pem(alg, pem_text).unwrap_err().to_string()
}

#[test]
fn malformed_tokens() {
    let hs = EncodingKey::from_secret(SECRET).unwrap();
    let good = token(claims(), JwtAlg::Hs256, &hs);
    let a = all_keys();
    assert_eq!(a.check(&good, now()).unwrap().user, "u1");
    let (h, rest) = good.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let with_header = |header: &str| format!("{}.{p}.{s}", b64url(header));
    let cases: Vec<(&str, String, Malformed)> = vec![
        ("empty", String::new(), Malformed::Segments),
        ("one part", h.into(), Malformed::Segments),
        ("two parts", format!("{h}.{p}"), Malformed::Segments),
        ("four parts", format!("{good}.{s}"), Malformed::Segments),
        ("trailing dot", format!("{good}."), Malformed::Segments),
        (
            "bad base64 header",
            format!("{h}*.{p}.{s}"),
            Malformed::Base64,
        ),
        ("padded header", format!("{h}=.{p}.{s}"), Malformed::Base64),
        (
            "bad base64 payload",
            format!("{h}.{p}!.{s}"),
            Malformed::Base64,
        ),
        (
            "standard alphabet",
            format!("{h}.{p}.{s}+/"),
            Malformed::Base64,
        ),
        (
            "bad base64 signature",
            format!("{h}.{p}.a"),
            Malformed::Base64,
        ),
        (
            "header not json",
            with_header("alg=HS256"),
            Malformed::Header,
        ),
        (
            "header not an object",
            with_header("[\"HS256\"]"),
            Malformed::Header,
        ),
        ("no alg", with_header(r#"{"typ":"JWT"}"#), Malformed::Header),
        (
            "alg a number",
            with_header(r#"{"alg":256}"#),
            Malformed::Header,
        ),
        (
            "typ a number",
            with_header(r#"{"alg":"HS256","typ":1}"#),
            Malformed::Header,
        ),
        ("alg none", with_header(r#"{"alg":"none"}"#), Malformed::Alg),
        (
            "critical extension",
            with_header(r#"{"alg":"HS256","crit":["exp"],"exp":1}"#),
            Malformed::Crit,
        ),
        ("alg None", with_header(r#"{"alg":"None"}"#), Malformed::Alg),
        (
            "alg lower case",
            with_header(r#"{"alg":"hs256"}"#),
            Malformed::Alg,
        ),
        (
            "alg HS384",
            with_header(r#"{"alg":"HS384"}"#),
            Malformed::Alg,
        ),
        (
            "alg PS256",
            with_header(r#"{"alg":"PS256"}"#),
            Malformed::Alg,
        ),
        ("alg empty", with_header(r#"{"alg":""}"#), Malformed::Alg),
    ];
    for (what, tok, want) in cases {
        assert_eq!(parse(&tok).err(), Some(want), "{what}");
        assert_eq!(
            a.check(&tok, now()).unwrap_err(),
            AuthFailure::Invalid,
            "{what}"
        );
    }
    // `alg: none` with no signature at all, the classic downgrade.
    let none = format!("{}.{p}.", b64url(r#"{"alg":"none","typ":"JWT"}"#));
    assert_eq!(parse(&none).unwrap_err(), Malformed::Alg);
    assert_eq!(a.check(&none, now()).unwrap_err(), AuthFailure::Invalid);
    // Well-formed, signed, but the claims are not a JSON object.
    for payload in [json!("u1"), json!([1, 2]), json!({ "exp": "tomorrow" })] {
        let tok = sign_token(&json!({"alg": "HS256"}), &payload, &hs);
        assert!(parse(&tok).is_ok());
        assert_eq!(a.check(&tok, now()).unwrap_err(), AuthFailure::Invalid);
    }
    // The signing input is the two encoded parts as sent, dot included.
    let jws = parse(&good).unwrap();
    assert_eq!(jws.signing_input, format!("{h}.{p}").as_bytes());
    assert_eq!(jws.alg, JwtAlg::Hs256);
}

#[test]
fn alg_must_match_the_key() {
    let hs = EncodingKey::from_secret(SECRET).unwrap();
    let es = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    let rs = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let a = all_keys();
    let c = claims();
    let signed = |alg: &str, key: &EncodingKey| sign_token(&json!({ "alg": alg }), &c, key);
    for (alg, key) in [("HS256", &hs), ("ES256", &es), ("RS256", &rs)] {
        assert!(a.check(&signed(alg, key), now()).is_ok(), "{alg}");
    }
    // The header names one algorithm, the signature is another's.
    for (alg, key) in [
        ("HS256", &es),
        ("HS256", &rs),
        ("ES256", &hs),
        ("ES256", &rs),
        ("RS256", &hs),
        ("RS256", &es),
    ] {
        assert_eq!(
            a.check(&signed(alg, key), now()).unwrap_err(),
            AuthFailure::Invalid,
            "{alg}"
        );
    }
    // Key confusion: HS256 "signed" with the RSA public key as the secret, against a rule that
    // has only the RSA key, or has both.
    let confused = EncodingKey::from_secret(RSA_PUBLIC.as_bytes()).unwrap();
    let tok = signed("HS256", &confused);
    for keys in [
        vec![JwtKey::public_pem(JwtAlg::Rs256, RSA_PUBLIC).unwrap()],
        vec![
            JwtKey::public_pem(JwtAlg::Rs256, RSA_PUBLIC).unwrap(),
            JwtKey::hs256(SECRET).unwrap(),
        ],
    ] {
        assert_eq!(
            auth(keys).check(&tok, now()).unwrap_err(),
            AuthFailure::Invalid
        );
    }
    // An algorithm with no key configured.
    let only_hs = auth(vec![JwtKey::hs256(SECRET).unwrap()]);
    assert_eq!(
        only_hs.check(&signed("ES256", &es), now()).unwrap_err(),
        AuthFailure::Invalid
    );
    // Keys of the wrong type for the algorithm they are configured with.
    assert!(key_error(JwtAlg::Rs256, EC_PUBLIC).contains("not an RSA key"));
    assert!(key_error(JwtAlg::Es256, RSA_PUBLIC).contains("not an EC key"));
    assert!(key_error(JwtAlg::Hs256, RSA_PUBLIC).contains("HS256 takes a secret"));
    assert!(key_error(JwtAlg::Es256, EC_PRIVATE).contains("\"PRIVATE KEY\""));
}

#[test]
fn kid_is_tried_first() {
    let other = b"another secret, 32 bytes long!!!";
    let a = auth(vec![
        JwtKey::hs256(other).unwrap().with_kid("a"),
        JwtKey::hs256(SECRET).unwrap().with_kid("b"),
        JwtKey::hs256(other).unwrap(),
        JwtKey::public_pem(JwtAlg::Es256, EC_PUBLIC)
            .unwrap()
            .with_kid("b"),
    ]);
    let hs = EncodingKey::from_secret(SECRET).unwrap();
    let kids = |header: serde_json::Value| {
        let tok = sign_token(&header, &claims(), &hs);
        let jws = parse(&tok).unwrap();
        let order: Vec<Option<String>> = a
            .candidates(&jws)
            .iter()
            .map(|k| k.kid().map(String::from))
            .collect();
        (a.check(&tok, now()).map(|i| i.user), order)
    };
    let s = |k: &str| Some(k.to_string());
    // Only HS256 keys; the named one first, the others in order. Any of them may pass.
    for (header, order) in [
        (
            json!({"alg": "HS256", "kid": "b"}),
            vec![s("b"), s("a"), None],
        ),
        (
            json!({"alg": "HS256", "kid": "a"}),
            vec![s("a"), s("b"), None],
        ),
        (
            json!({"alg": "HS256", "kid": "zz"}),
            vec![s("a"), s("b"), None],
        ),
        (json!({"alg": "HS256"}), vec![s("a"), s("b"), None]),
    ] {
        assert_eq!(kids(header.clone()), (Ok("u1".into()), order), "{header}");
    }
    // A `kid` of the wrong type is a malformed header.
    let tok = sign_token(&json!({"alg": "HS256", "kid": 7}), &claims(), &hs);
    assert_eq!(parse(&tok).unwrap_err(), Malformed::Header);
}

#[test]
fn pkcs1_rsa_public_key() {
    let spki = der_of(RSA_PUBLIC);
    let pkcs1 = der::rsa_spki(&spki).unwrap();
    let pkcs1_pem = pem("RSA PUBLIC KEY", pkcs1);
    let a = auth(vec![JwtKey::public_pem(JwtAlg::Rs256, &pkcs1_pem).unwrap()]);
    let rs = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    assert_eq!(
        a.check(&token(claims(), JwtAlg::Rs256, &rs), now())
            .unwrap()
            .user,
        "u1"
    );
    // PKCS#1 is RSA only; and an SPKI is not PKCS#1.
    assert!(key_error(JwtAlg::Es256, &pkcs1_pem).contains("\"RSA PUBLIC KEY\""));
    assert!(key_error(JwtAlg::Rs256, &pem("RSA PUBLIC KEY", &spki)).contains("DER"));
}

#[test]
fn bad_keys_are_refused_clearly() {
    let rsa = der_of(RSA_PUBLIC);
    let ec = der_of(EC_PUBLIC);
    // Cut short anywhere.
    for (alg, der) in [(JwtAlg::Rs256, &rsa), (JwtAlg::Es256, &ec)] {
        for len in 1..der.len() {
            let e = key_error(alg, &pem("PUBLIC KEY", &der[..len]));
            assert!(
                e.starts_with(&format!("invalid JWT key: {alg:?} PEM: ")),
                "{e}"
            );
            assert!(e.contains("DER"), "{len}: {e}");
        }
        // Something after it.
        let mut long = der.clone();
        long.push(0);
        assert!(key_error(alg, &pem("PUBLIC KEY", &long)).contains("trailing"));
    }
    let point = der::p256_spki(&ec).unwrap().to_vec();
    let pkcs1 = der::rsa_spki(&rsa).unwrap().to_vec();
    let null = tlv(0x05, &[]);
    let cases: Vec<(&str, JwtAlg, Vec<u8>, &str)> = vec![
        ("garbage", JwtAlg::Rs256, b"hello, world".to_vec(), "DER"),
        ("empty sequence", JwtAlg::Es256, seq(&[]), "DER"),
        (
            "RSA key with the EC OID",
            JwtAlg::Rs256,
            spki(&[tlv(0x06, EC_OID), tlv(0x06, P256_OID)], &pkcs1),
            "not an RSA key (algorithm 1.2.840.10045.2.1",
        ),
        (
            "EC key with the RSA OID",
            JwtAlg::Es256,
            spki(&[tlv(0x06, RSA_OID), null.clone()], &point),
            "not an EC key (algorithm 1.2.840.113549.1.1.1",
        ),
        (
            "P-384",
            JwtAlg::Es256,
            spki(&[tlv(0x06, EC_OID), tlv(0x06, P384_OID)], &point),
            "EC curve 1.3.132.0.34 is not P-256",
        ),
        (
            "no curve",
            JwtAlg::Es256,
            spki(&[tlv(0x06, EC_OID)], &point),
            "without a named curve",
        ),
        (
            "compressed point",
            JwtAlg::Es256,
            spki(&[tlv(0x06, EC_OID), tlv(0x06, P256_OID)], &point[..33]),
            "compressed",
        ),
        (
            "short point",
            JwtAlg::Es256,
            spki(&[tlv(0x06, EC_OID), tlv(0x06, P256_OID)], &point[..64]),
            "65-byte",
        ),
        (
            "RSA parameters not NULL",
            JwtAlg::Rs256,
            spki(&[tlv(0x06, RSA_OID), tlv(0x02, &[1])], &pkcs1),
            "must be NULL",
        ),
        (
            "OID not an OID",
            JwtAlg::Rs256,
            spki(&[tlv(0x04, RSA_OID), null.clone()], &pkcs1),
            "expected tag 0x06",
        ),
        (
            "bits with unused bits",
            JwtAlg::Rs256,
            seq(&[
                seq(&[tlv(0x06, RSA_OID), null.clone()]),
                tlv(0x03, &[[1].as_slice(), &pkcs1].concat()),
            ]),
            "unused bits",
        ),
        (
            "1024-bit RSA",
            JwtAlg::Rs256,
            spki(
                &[tlv(0x06, RSA_OID), null.clone()],
                &seq(&[
                    tlv(0x02, &[[0, 0xc1].as_slice(), &[0x55; 127]].concat()),
                    tlv(0x02, &[1, 0, 1]),
                ]),
            ),
            "RSA modulus of 1024 bits: 2048 to 8192 supported",
        ),
        (
            "even RSA exponent",
            JwtAlg::Rs256,
            spki(
                &[tlv(0x06, RSA_OID), null.clone()],
                &seq(&[
                    tlv(0x02, &[[0, 0xc1].as_slice(), &[0x55; 255]].concat()),
                    tlv(0x02, &[2]),
                ]),
            ),
            "exponent",
        ),
        (
            "negative RSA modulus",
            JwtAlg::Rs256,
            spki(
                &[tlv(0x06, RSA_OID), null],
                &seq(&[tlv(0x02, &[0xc1; 256]), tlv(0x02, &[1, 0, 1])]),
            ),
            "negative INTEGER",
        ),
    ];
    for (what, alg, der, want) in cases {
        let e = key_error(alg, &pem("PUBLIC KEY", &der));
        assert!(e.contains(want), "{what}: {e}");
    }
    // Bad PEM around a good key.
    let b64 = base64::engine::general_purpose::STANDARD.encode(&rsa);
    for (text, want) in [
        ("not a pem".to_string(), "no PEM section"),
        (
            format!("-----BEGIN PUBLIC KEY-----\n{b64}\n"),
            "no \"-----END PUBLIC KEY-----\"",
        ),
        (
            format!(
                "-----BEGIN PUBLIC KEY-----\n{}!\n-----END PUBLIC KEY-----\n",
                &b64[1..]
            ),
            "bad base64",
        ),
        (
            format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n"),
            "a \"CERTIFICATE\" section",
        ),
    ] {
        let e = key_error(JwtAlg::Rs256, &text);
        assert!(e.contains(want), "{e}");
    }
}

/// xorshift64*: fixed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        (0..self.below(max + 1))
            .map(|_| self.next() as u8)
            .collect()
    }

    /// `v` with a few bytes changed, dropped, inserted, or cut short.
    fn mutate(&mut self, v: &[u8], alphabet: &[u8]) -> Vec<u8> {
        let mut v = v.to_vec();
        for _ in 0..1 + self.below(3) {
            let byte = if alphabet.is_empty() {
                self.next() as u8
            } else {
                alphabet[self.below(alphabet.len())]
            };
            let at = self.below(v.len() + 1);
            match self.below(4) {
                0 if at < v.len() => v[at] = byte,
                1 if at < v.len() => {
                    v.remove(at);
                }
                2 => v.insert(at, byte),
                _ => v.truncate(at),
            }
        }
        v
    }
}

fn der_parsers(input: &[u8]) {
    let mut r = der::Reader::new(input);
    while let Ok((_, value)) = r.read() {
        // Into the value too, as a structure would be.
        let mut inner = der::Reader::new(value);
        while inner.read().is_ok() {}
        if r.is_empty() {
            break;
        }
    }
    let _ = der::spki(input);
    let _ = der::rsa_spki(input);
    let _ = der::p256_spki(input);
    let _ = der::rsa_pkcs1(input);
}

#[test]
fn fuzz_der_reader() {
    let mut rng = Rng(0x5eed_0001);
    let valid = [
        der_of(RSA_PUBLIC),
        der_of(EC_PUBLIC),
        der::rsa_spki(&der_of(RSA_PUBLIC)).unwrap().to_vec(),
    ];
    for i in 0..20_000 {
        let input = if i % 2 == 0 {
            rng.bytes(300)
        } else {
            let v = &valid[rng.below(valid.len())];
            rng.mutate(v, &[])
        };
        der_parsers(&input);
        if i % 50 == 0 {
            for alg in [JwtAlg::Rs256, JwtAlg::Es256] {
                let _ = JwtKey::public_pem(alg, &pem("PUBLIC KEY", &input));
                let _ = JwtKey::public_pem(alg, &pem("RSA PUBLIC KEY", &input));
            }
        }
    }
    // Random text as PEM.
    let pem_alphabet = b"-----BEGIN PUBLIC KEY END RSA\n\r =+/ABCabc0129";
    let base = RSA_PUBLIC.as_bytes();
    for _ in 0..5_000 {
        let text = rng.mutate(base, pem_alphabet);
        let text = String::from_utf8_lossy(&text);
        let _ = JwtKey::public_pem(JwtAlg::Rs256, &text);
        let noise: Vec<u8> = (0..rng.below(200))
            .map(|_| pem_alphabet[rng.below(pem_alphabet.len())])
            .collect();
        let _ = der::pem(&String::from_utf8_lossy(&noise));
    }
}

#[test]
fn fuzz_token_parser() {
    let mut rng = Rng(0x5eed_0002);
    let a = all_keys();
    let hs = EncodingKey::from_secret(SECRET).unwrap();
    let es = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    let rs = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let valid = [
        token(claims(), JwtAlg::Hs256, &hs),
        token(claims(), JwtAlg::Es256, &es),
        token(claims(), JwtAlg::Rs256, &rs),
    ];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
    for t in &valid {
        assert!(a.check(t, now()).is_ok());
    }
    // Random bytes, and random strings of token characters.
    for _ in 0..20_000 {
        let bytes = rng.bytes(200);
        let _ = parse(&String::from_utf8_lossy(&bytes));
        let text: Vec<u8> = (0..rng.below(200))
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        let text = String::from_utf8_lossy(&text);
        let _ = parse(&text);
        let _ = a.check(&text, now());
    }
    // Valid headers around random payloads and signatures, through verification.
    for i in 0..3_000 {
        let alg = ["HS256", "ES256", "RS256", "none"][i % 4];
        let tok = format!(
            "{}.{}.{}",
            b64url(format!(r#"{{"alg":"{alg}"}}"#)),
            b64url(rng.bytes(100)),
            b64url(rng.bytes(300)),
        );
        assert!(parse(&tok).is_ok() == (alg != "none"));
        assert_eq!(a.check(&tok, now()).unwrap_err(), AuthFailure::Invalid);
    }
    // Any change to a valid token is refused: one character replaced (base64url without padding
    // has one encoding per value, so the bytes change), or mutated more roughly.
    for i in 0..1_500 {
        let t = valid[i % valid.len()].as_bytes();
        let mut changed = t.to_vec();
        let at = rng.below(t.len());
        while changed[at] == t[at] {
            changed[at] = alphabet[rng.below(alphabet.len())];
        }
        let changed = String::from_utf8(changed).unwrap();
        assert!(a.check(&changed, now()).is_err(), "{changed}");
        let rough = rng.mutate(t, alphabet);
        if rough != t {
            assert!(a.check(&String::from_utf8(rough).unwrap(), now()).is_err());
        }
    }
}
