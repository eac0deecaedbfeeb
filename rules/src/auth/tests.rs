#![allow(clippy::unwrap_used)]

use std::time::Duration;

use argon2::{Argon2, Params, PasswordHasher};
use base64::Engine as _;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};

use super::*;
use crate::tests::Req;

/// An argon2id hash with small parameters (tests only), fixed salt.
pub(crate) fn argon2_hash(pw: &str) -> String {
    let params = Params::new(1024, 1, 1, None).unwrap();
    let a = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    a.hash_password_with_salt(pw.as_bytes(), b"fixed-salt-16byt")
        .unwrap()
        .to_string()
}

fn basic_header(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

fn basic(max_failures: u32) -> Auth {
    let bcrypt = bcrypt::hash_with_salt("bob-pw", 4, [7; 16])
        .unwrap()
        .format_for_version(bcrypt::Version::TwoB);
    assert!(bcrypt.starts_with("$2b$04$"));
    Auth::Basic(
        BasicAuth::new(
            "staff \"area\"",
            &[
                ("alice".into(), argon2_hash("alice-pw")),
                ("bob".into(), bcrypt),
            ],
            BasicOptions {
                cache_for: Duration::from_secs(60),
                max_failures,
            },
        )
        .unwrap(),
    )
}

fn verifications(a: &Auth) -> u64 {
    match a {
        Auth::Basic(b) => b.hash_verifications(),
        Auth::Jwt(_) => 0,
    }
}

#[test]
fn basic_right_wrong_missing_and_cached() {
    let auth = basic(3);
    let alice = Req::get("/").header("authorization", &basic_header("alice", "alice-pw"));
    let bob = Req::get("/").header("authorization", &basic_header("bob", "bob-pw"));
    assert!(!auth.is_cheap(&alice.facts()));
    assert_eq!(auth.verify(&alice.facts()).unwrap().user, "alice");
    assert_eq!(auth.verify(&bob.facts()).unwrap().user, "bob");
    assert_eq!(verifications(&auth), 2);
    // Cached: no more hashing for 60 s.
    for _ in 0..5 {
        assert!(auth.is_cheap(&alice.facts()));
        auth.verify(&alice.facts()).unwrap();
    }
    assert_eq!(verifications(&auth), 2);
    let later = alice.clone().at("2025-07-16T12:01:01Z");
    auth.verify(&later.facts()).unwrap();
    assert_eq!(verifications(&auth), 3);

    let e = auth.verify(&Req::get("/").facts()).unwrap_err();
    assert_eq!(e.kind, AuthFailure::Missing);
    assert_eq!(e.status(), http::StatusCode::UNAUTHORIZED);
    assert_eq!(
        e.www_authenticate(),
        "Basic realm=\"staff \\\"area\\\"\", charset=\"UTF-8\""
    );
    let wrong = Req::get("/").header("authorization", &basic_header("alice", "nope"));
    let unknown = Req::get("/").header("authorization", &basic_header("mallory", "alice-pw"));
    assert_eq!(
        auth.verify(&wrong.facts()).unwrap_err().kind,
        AuthFailure::Invalid
    );
    assert_eq!(
        auth.verify(&unknown.facts()).unwrap_err().kind,
        AuthFailure::Invalid
    );
    assert_eq!(
        auth.verify(&wrong.facts()).unwrap_err().kind,
        AuthFailure::Invalid
    );
    assert_eq!(verifications(&auth), 6);
    // Three failures this minute from this address: refused without hashing, even right ones
    // that are not cached.
    let bob_again = bob.clone().at("2025-07-16T12:00:30Z");
    let e = auth.verify(&wrong.facts()).unwrap_err();
    assert_eq!(e.kind, AuthFailure::TooManyFailures);
    assert!(auth.is_cheap(&wrong.facts()));
    assert_eq!(verifications(&auth), 6);
    // A cached success still passes; another address is not limited; the next minute resets.
    auth.verify(&bob_again.facts()).unwrap();
    let mut elsewhere = wrong.clone();
    elsewhere.client = "198.51.100.1".parse().unwrap();
    assert_eq!(
        auth.verify(&elsewhere.facts()).unwrap_err().kind,
        AuthFailure::Invalid
    );
    let next_minute = wrong.clone().at("2025-07-16T12:01:00Z");
    assert_eq!(
        auth.verify(&next_minute.facts()).unwrap_err().kind,
        AuthFailure::Invalid
    );
}

#[test]
fn bad_hashes_are_refused() {
    for hash in ["plain", "$argon2id$v=19$garbage", "$2b$04$short"] {
        assert!(
            BasicAuth::new("r", &[("u".into(), hash.into())], BasicOptions::default()).is_err(),
            "{hash}"
        );
    }
    assert!(
        BasicAuth::new(
            "r",
            &[("a:b".into(), argon2_hash("x"))],
            BasicOptions::default()
        )
        .is_err()
    );
}

pub(crate) const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
// Key pairs made for these tests only (`openssl genpkey`).
pub(crate) const EC_PRIVATE: &str = include_str!("testdata/es256-private.pem");
pub(crate) const EC_PUBLIC: &str = include_str!("testdata/es256-public.pem");
pub(crate) const RSA_PRIVATE: &str = include_str!("testdata/rs256-private.pem");
pub(crate) const RSA_PUBLIC: &str = include_str!("testdata/rs256-public.pem");

pub(crate) fn now() -> i64 {
    Req::get("/").now.as_second()
}

/// A signing key for test tokens (the crate only verifies).
pub(crate) enum EncodingKey {
    Hs(Vec<u8>),
    Es(EcdsaKeyPair),
    Rs(RsaKeyPair),
}

impl EncodingKey {
    pub(crate) fn from_secret(secret: &[u8]) -> Result<EncodingKey, String> {
        Ok(EncodingKey::Hs(secret.to_vec()))
    }

    /// PKCS#8 (`-----BEGIN PRIVATE KEY-----`), as `openssl genpkey` writes.
    fn pkcs8(pem: &[u8]) -> Result<Vec<u8>, String> {
        let (label, der) = super::der::pem(std::str::from_utf8(pem).map_err(|e| e.to_string())?)?;
        if label != "PRIVATE KEY" {
            return Err(format!("{label:?}"));
        }
        Ok(der)
    }

    pub(crate) fn from_ec_pem(pem: &[u8]) -> Result<EncodingKey, String> {
        let rng = ring::rand::SystemRandom::new();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &Self::pkcs8(pem)?, &rng)
            .map(EncodingKey::Es)
            .map_err(|e| e.to_string())
    }

    pub(crate) fn from_rsa_pem(pem: &[u8]) -> Result<EncodingKey, String> {
        RsaKeyPair::from_pkcs8(&Self::pkcs8(pem)?)
            .map(EncodingKey::Rs)
            .map_err(|e| e.to_string())
    }
}

/// A compact JWS of `header` and `claims`, signed with `key` (whatever `header` says).
pub(crate) fn sign_token(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    key: &EncodingKey,
) -> String {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let rng = ring::rand::SystemRandom::new();
    let sig = match key {
        EncodingKey::Hs(secret) => ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
            input.as_bytes(),
        )
        .as_ref()
        .to_vec(),
        EncodingKey::Es(k) => k.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
        EncodingKey::Rs(k) => {
            let mut sig = vec![0; k.public().modulus_len()];
            k.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                .unwrap();
            sig
        }
    };
    format!("{input}.{}", b64(&sig))
}

/// A token with the header `{"typ":"JWT","alg":…}`, as the tests have always signed.
pub(crate) fn token(claims: serde_json::Value, alg: JwtAlg, key: &EncodingKey) -> String {
    let alg = match alg {
        JwtAlg::Hs256 => "HS256",
        JwtAlg::Rs256 => "RS256",
        JwtAlg::Es256 => "ES256",
    };
    sign_token(
        &serde_json::json!({ "typ": "JWT", "alg": alg }),
        &claims,
        key,
    )
}

fn jwt(from: TokenSource) -> Auth {
    Auth::Jwt(
        JwtAuth::new(
            from,
            vec![
                JwtKey::hs256(SECRET).unwrap(),
                JwtKey::public_pem(JwtAlg::Es256, EC_PUBLIC).unwrap(),
                JwtKey::public_pem(JwtAlg::Rs256, RSA_PUBLIC).unwrap(),
            ],
            vec!["shop".into()],
            vec!["https://id.test".into()],
            Duration::from_secs(30),
            "shop",
        )
        .unwrap(),
    )
}

#[test]
fn jwt_cases() {
    let hs = EncodingKey::from_secret(SECRET).unwrap();
    let es = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    let rs = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let other = EncodingKey::from_secret(b"another secret, 32 bytes long!!!").unwrap();
    let t = now();
    let claims = |exp: i64, aud: &str| serde_json::json!({ "sub": "u1", "exp": exp, "aud": aud, "iss": "https://id.test" });
    const HS256: JwtAlg = JwtAlg::Hs256;
    const ES256: JwtAlg = JwtAlg::Es256;
    const RS256: JwtAlg = JwtAlg::Rs256;
    let cases: Vec<(&str, Option<String>, Result<&str, AuthFailure>)> = vec![
        (
            "valid hs256",
            Some(token(claims(t + 60, "shop"), HS256, &hs)),
            Ok("u1"),
        ),
        (
            "valid es256",
            Some(token(claims(t + 60, "shop"), ES256, &es)),
            Ok("u1"),
        ),
        (
            "valid rs256",
            Some(token(claims(t + 60, "shop"), RS256, &rs)),
            Ok("u1"),
        ),
        (
            "es256 signed by the wrong key",
            Some(token(
                claims(t + 60, "shop"),
                ES256,
                &EncodingKey::from_ec_pem(include_bytes!("testdata/es256-other.pem")).unwrap(),
            )),
            Err(AuthFailure::Invalid),
        ),
        (
            "in leeway",
            Some(token(claims(t - 20, "shop"), HS256, &hs)),
            Ok("u1"),
        ),
        (
            "expired",
            Some(token(claims(t - 31, "shop"), HS256, &hs)),
            Err(AuthFailure::Expired),
        ),
        (
            "no exp",
            Some(token(
                serde_json::json!({"aud": "shop", "iss": "https://id.test"}),
                HS256,
                &hs,
            )),
            Err(AuthFailure::Expired),
        ),
        (
            "wrong key",
            Some(token(claims(t + 60, "shop"), HS256, &other)),
            Err(AuthFailure::Invalid),
        ),
        (
            "wrong audience",
            Some(token(claims(t + 60, "blog"), HS256, &hs)),
            Err(AuthFailure::Invalid),
        ),
        (
            "wrong issuer",
            Some(token(
                serde_json::json!({"exp": t + 60, "aud": ["x", "shop"], "iss": "evil"}),
                HS256,
                &hs,
            )),
            Err(AuthFailure::Invalid),
        ),
        (
            "audience list",
            Some(token(
                serde_json::json!({"exp": t + 60, "aud": ["x", "shop"], "iss": "https://id.test"}),
                HS256,
                &hs,
            )),
            Ok(""),
        ),
        (
            "not yet",
            Some(token(
                serde_json::json!({"exp": t + 600, "nbf": t + 300, "aud": "shop", "iss": "https://id.test"}),
                HS256,
                &hs,
            )),
            Err(AuthFailure::Invalid),
        ),
        (
            "garbage",
            Some("not.a.jwt".into()),
            Err(AuthFailure::Invalid),
        ),
        ("missing", None, Err(AuthFailure::Missing)),
    ];
    let by_header = jwt(TokenSource::Header);
    let by_cookie = jwt(TokenSource::Cookie("session".into()));
    for (what, tok, want) in cases {
        let mut h = Req::get("/");
        let mut c = Req::get("/");
        if let Some(tok) = &tok {
            h = h.header("authorization", &format!("Bearer {tok}"));
            c = c.header("cookie", &format!("a=b; session={tok}"));
        }
        for (auth, req) in [(&by_header, &h), (&by_cookie, &c)] {
            let got = auth.verify(&req.facts());
            match (&got, &want) {
                (Ok(id), Ok(user)) => assert_eq!(id.user, *user, "{what}"),
                (Err(e), Err(kind)) => {
                    assert_eq!(e.kind, *kind, "{what}");
                    let challenge = e.www_authenticate().to_str().unwrap();
                    if *kind == AuthFailure::Missing {
                        assert_eq!(challenge, "Bearer realm=\"shop\"");
                    } else {
                        assert_eq!(challenge, "Bearer realm=\"shop\", error=\"invalid_token\"");
                    }
                }
                _ => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }
    assert!(JwtKey::hs256(b"short").is_err());
    assert!(JwtKey::public_pem(JwtAlg::Es256, "not a pem").is_err());
    assert!(JwtKey::public_pem(JwtAlg::Rs256, EC_PUBLIC).is_err());
}
