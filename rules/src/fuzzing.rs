//! Fuzz entry point (`fuzz/fuzz_targets/site_rules.rs`), replayed by the tests below over the
//! committed corpus on stable: everything a visitor sends that the rules parse. Input is
//! text-shaped: header fields, one `name: value` per line, so corpus files stay readable.
//! Bearer tokens (JWS parsing and verification), Basic credentials, cookies, query
//! parameters and the device classifier run on them; none may panic, and no token may pass
//! verification against a key nobody has.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::auth::{Auth, BasicAuth, BasicOptions, JwtAuth, JwtKey, TokenSource};
use crate::{RequestFacts, device};

fn headers(data: &[u8]) -> (HeaderMap, Option<String>) {
    let mut map = HeaderMap::new();
    let mut query = None;
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name == b"?" {
            query = Some(String::from_utf8_lossy(value).into_owned());
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim_ascii()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(n, v);
        }
    }
    (map, query)
}

pub fn request(data: &[u8]) {
    let (map, query) = headers(data);
    let facts = RequestFacts {
        method: &Method::GET,
        host: "fuzz.test",
        path: "/",
        query: query.as_deref(),
        headers: &map,
        client: IpAddr::V4(Ipv4Addr::LOCALHOST),
        https: true,
        country: None,
        continent: None,
        asn: None,
        now: jiff::Timestamp::UNIX_EPOCH,
        request_id: "fuzz",
        random: 0,
    };
    let _ = device::classify(&map);
    for name in ["session", "ab", "beta", ""] {
        let _ = facts.cookie(name);
        let _ = facts.query_param(name);
    }
    // A secret the input cannot know: nothing may verify.
    let Ok(key) = JwtKey::hs256(&[0x5a; 32]) else {
        return;
    };
    for from in [TokenSource::Header, TokenSource::Cookie("token".into())] {
        let Ok(jwt) = JwtAuth::new(
            from,
            vec![key.clone()],
            Vec::new(),
            Vec::new(),
            Duration::from_secs(30),
            "fuzz",
        ) else {
            return;
        };
        assert!(Auth::Jwt(jwt).verify(&facts).is_err(), "{data:?}");
    }
    // Basic credentials: parsed and, for the known user, hashed (cost 4 keeps it fast).
    let users = [(
        "alice".to_string(),
        "$2b$04$AOiHAOiHAOiHAOiHAOiHAOiKY9YCk.CxRjT1bUjI.z1l8XXYHRk2O".to_string(),
    )];
    if let Ok(basic) = BasicAuth::new("fuzz", &users, BasicOptions::default()) {
        let _ = Auth::Basic(basic).verify(&facts);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn corpus_site_rules() {
        let dir = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/corpus/site_rules"
        ));
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let Ok(entry) = entry else { continue };
            let data = std::fs::read(entry.path()).unwrap_or_default();
            request(&data);
            n += 1;
        }
        assert!(n >= 5, "corpus has {n} files");
    }
}
