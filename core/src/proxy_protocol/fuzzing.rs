//! Fuzz entry point (`fuzz/fuzz_targets/proxy_protocol.rs`), also run by the tests: parses
//! arbitrary bytes and their prefixes and asserts what must hold for every input.

use std::mem::discriminant;

use super::{Proxied, ProxyError, V1_MAX, V1_SIG, V2_MAX, looks_like_proxy, parse};

/// Every prefix up to this length is parsed; longer inputs are sampled.
const DENSE: usize = 160;

type Outcome = Result<Option<(Proxied, usize)>, ProxyError>;

fn same(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => discriminant(a) == discriminant(b),
        _ => false,
    }
}

/// `data` as bytes arriving on a connection: the answer is `Ok(None)` until enough have
/// arrived, then one final answer that more bytes do not change.
pub fn check(data: &[u8]) {
    let whole = parse(data);
    match whole {
        Ok(Some((_, consumed))) => {
            assert!(
                consumed <= data.len() && consumed <= V2_MAX,
                "{consumed} for {data:?}"
            );
            assert!(!data.starts_with(V1_SIG) || consumed <= V1_MAX, "{data:?}");
            assert_eq!(parse(&data[..consumed]), whole, "{data:?}");
            assert_eq!(parse(&data[..consumed - 1]), Ok(None), "{data:?}");
        }
        Ok(None) => {
            assert!(data.len() < V2_MAX, "{data:?}");
            assert!(!data.starts_with(V1_SIG) || data.len() < V1_MAX, "{data:?}");
        }
        Err(_) => {}
    }

    let mut lens: Vec<usize> = (0..=data.len().min(DENSE)).collect();
    lens.extend((1..=32).map(|i| data.len() * i / 32));
    lens.sort_unstable();
    lens.dedup();
    let mut settled: Option<(usize, Outcome)> = None;
    for k in lens {
        let prefix = &data[..k];
        let r = parse(prefix);
        assert_eq!(
            looks_like_proxy(prefix),
            r != Err(ProxyError::NotProxy),
            "looks_like_proxy disagrees with {r:?} for {prefix:?}"
        );
        match &settled {
            None if r == Ok(None) => {}
            None => settled = Some((k, r)),
            Some((at, first)) => assert!(
                same(first, &r),
                "{first:?} after {at} bytes, then {r:?} after {k} of {data:?}"
            ),
        }
    }

    if whole != Ok(None) {
        for tail in [&b"\r\n"[..], b" ", b"\0", V1_SIG] {
            let longer = [data, tail].concat();
            let r = parse(&longer);
            assert!(same(&whole, &r), "{whole:?}, then {r:?} for {longer:?}");
        }
    }
}
