//! Bearer authentication and token scopes.

use http::StatusCode;

use super::request::{Headers, headers};
use crate::auth::{
    AuthError, Forbidden, Token, Tokens, WWW_AUTHENTICATE, hash_secret, hex, parse_hex,
};
use crate::request::Kind;

fn token(name: &str, secret: &str) -> Token {
    Token {
        name: name.to_owned(),
        sha256: hash_secret(secret),
        sites: None,
        kinds: None,
        read_only: false,
    }
}

fn tokens() -> Tokens {
    Tokens::new(vec![
        token("ops", "s3cret-ops"),
        Token {
            sites: Some(vec!["shop".into()]),
            kinds: Some(vec![Kind::Url, Kind::Tag]),
            ..token("shop-deploy", "s3cret-shop")
        },
        Token {
            read_only: true,
            ..token("grafana", "s3cret-ro")
        },
    ])
}

#[test]
fn authenticate() {
    let tokens = tokens();
    let cases: Vec<(&str, Headers, Result<&str, AuthError>)> = vec![
        ("missing", vec![], Err(AuthError::Missing)),
        (
            "right",
            vec![("authorization", "Bearer s3cret-ops")],
            Ok("ops"),
        ),
        (
            "scheme case",
            vec![("authorization", "bEARER s3cret-shop")],
            Ok("shop-deploy"),
        ),
        (
            "extra spaces",
            vec![("authorization", "Bearer   s3cret-ro ")],
            Ok("grafana"),
        ),
        (
            "unknown",
            vec![("authorization", "Bearer nope")],
            Err(AuthError::Invalid),
        ),
        (
            "prefix of secret",
            vec![("authorization", "Bearer s3cret")],
            Err(AuthError::Invalid),
        ),
        (
            "basic",
            vec![("authorization", "Basic czNjcmV0LW9wcw==")],
            Err(AuthError::Invalid),
        ),
        (
            "no scheme",
            vec![("authorization", "s3cret-ops")],
            Err(AuthError::Invalid),
        ),
        (
            "empty secret",
            vec![("authorization", "Bearer ")],
            Err(AuthError::Invalid),
        ),
        (
            "two parts",
            vec![("authorization", "Bearer s3cret-ops x")],
            Err(AuthError::Invalid),
        ),
        (
            "two headers",
            vec![
                ("authorization", "Bearer s3cret-ops"),
                ("authorization", "Bearer s3cret-ops"),
            ],
            Err(AuthError::Invalid),
        ),
    ];
    for (name, hs, want) in cases {
        let got = tokens.authenticate(&headers(&hs)).map(|t| t.name.as_str());
        assert_eq!(got, want, "{name}");
        if let Err(e) = got {
            assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(e.www_authenticate(), WWW_AUTHENTICATE);
        }
    }
    let none = Tokens::new(Vec::new());
    let hs = headers(&[("authorization", "Bearer s3cret-ops")]);
    assert_eq!(
        none.authenticate(&hs).map(|t| t.name.clone()),
        Err(AuthError::Invalid)
    );
}

#[test]
fn scopes() {
    let tokens = tokens();
    let by_name = |name: &str| {
        let secret = format!("Bearer s3cret-{name}");
        tokens
            .authenticate(&headers(&[("authorization", &secret)]))
            .unwrap()
            .clone()
    };
    let (ops, shop, ro) = (by_name("ops"), by_name("shop"), by_name("ro"));
    for kind in Kind::ALL {
        assert_eq!(ops.may_purge(kind, "anything"), Ok(()));
        assert!(matches!(
            ro.may_purge(kind, "shop"),
            Err(Forbidden::ReadOnly { .. })
        ));
    }
    assert_eq!(shop.may_purge(Kind::Url, "shop"), Ok(()));
    assert_eq!(shop.may_purge(Kind::Tag, "shop"), Ok(()));
    let err = shop.may_purge(Kind::Everything, "shop").unwrap_err();
    assert_eq!(
        err.to_string(),
        "token `shop-deploy` may not purge by everything"
    );
    assert_eq!(err.status(), StatusCode::FORBIDDEN);
    let err = shop.may_purge(Kind::Url, "blog").unwrap_err();
    assert_eq!(
        err.to_string(),
        "token `shop-deploy` may not purge site `blog`"
    );
    assert!(ops.may_read() && shop.may_read() && ro.may_read());
}

#[test]
fn hex_round_trip() {
    let hash = hash_secret("abc");
    // SHA-256("abc") from FIPS 180-2.
    let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(hex(&hash), want);
    assert_eq!(parse_hex(want), Some(hash));
    assert_eq!(parse_hex(&want.to_uppercase()), Some(hash));
    assert_eq!(parse_hex(&want[1..]), None);
    assert_eq!(parse_hex(&format!("{}g", &want[1..])), None);
    assert_eq!(parse_hex(&format!("{}é", &want[2..])), None);
    assert!(!format!("{:?}", token("x", "abc")).contains("ba78"));
}
