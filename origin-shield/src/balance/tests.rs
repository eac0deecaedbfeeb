use std::collections::{HashMap, VecDeque};

use super::*;

fn eps(n: u16) -> Vec<SocketAddr> {
    (0..n)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], 9000 + i)))
        .collect()
}

fn counts(b: &Balancer, states: &[EndpointState], picks: usize) -> Vec<usize> {
    let refs: Vec<&EndpointState> = states.iter().collect();
    let mut c = vec![0; states.len()];
    for _ in 0..picks {
        let i = b.pick(&refs, &|_| true, Affinity::default()).expect("pick");
        c[i] += 1;
    }
    c
}

fn states(n: usize) -> Vec<EndpointState> {
    (0..n).map(|_| EndpointState::default()).collect()
}

#[test]
fn round_robin_is_even() {
    let b = Balancer::new(Algorithm::RoundRobin, &eps(3), &[1, 1, 1]);
    assert_eq!(counts(&b, &states(3), 3000), vec![1000, 1000, 1000]);
}

#[test]
fn smooth_weighted_round_robin_gives_exact_shares_and_interleaves() {
    let b = Balancer::new(Algorithm::WeightedRoundRobin, &eps(3), &[1, 2, 5]);
    let st = states(3);
    // Exact over whole cycles (tolerance 0).
    assert_eq!(counts(&b, &st, 8000), vec![1000, 2000, 5000]);
    // Smooth: the heavy endpoint never gets more than 2 in a row with weights 1:2:5.
    let refs: Vec<&EndpointState> = st.iter().collect();
    let seq: Vec<usize> = (0..16)
        .map(|_| b.pick(&refs, &|_| true, Affinity::default()).expect("pick"))
        .collect();
    let longest = seq.windows(3).filter(|w| w.iter().all(|&i| i == 2)).count();
    assert_eq!(longest, 0, "{seq:?}");
}

#[test]
fn random_spreads_within_five_percent() {
    let b = Balancer::new(Algorithm::Random, &eps(3), &[1, 1, 1]);
    for c in counts(&b, &states(3), 30_000) {
        assert!((9_500..=10_500).contains(&c), "{c}");
    }
}

#[test]
fn unusable_endpoints_are_never_picked() {
    for alg in [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::LeastInFlight,
        Algorithm::P2cEwma,
        Algorithm::ConsistentHash,
        Algorithm::ClientIpHash,
        Algorithm::Random,
    ] {
        let b = Balancer::new(alg, &eps(3), &[1, 1, 1]);
        let st = states(3);
        let refs: Vec<&EndpointState> = st.iter().collect();
        for k in 0..300 {
            let key = format!("k{k}");
            let ip = IpAddr::from([10, 0, 0, (k % 250) as u8]);
            let a = Affinity {
                key: Some(&key),
                client_ip: Some(ip),
            };
            let i = b.pick(&refs, &|i| i != 1, a).expect("pick");
            assert_ne!(i, 1, "{alg:?}");
        }
        assert_eq!(b.pick(&refs, &|_| false, Affinity::default()), None);
    }
}

/// A closed system: `clients` requests always in flight; endpoint 0 takes `slow` ticks per
/// request, the others 1. Returns each endpoint's share of requests.
fn simulate(alg: Algorithm, slow: u64) -> Vec<f64> {
    let b = Balancer::new(alg, &eps(3), &[1, 1, 1]);
    let st = states(3);
    let refs: Vec<&EndpointState> = st.iter().collect();
    let mut done_at: VecDeque<(u64, usize)> = VecDeque::new();
    let mut counts = [0u64; 3];
    let clients = 12;
    let mut tick = 0u64;
    let mut pending: Vec<(u64, usize)> = Vec::new();
    for _ in 0..clients {
        let i = b.pick(&refs, &|_| true, Affinity::default()).expect("pick");
        st[i].in_flight.fetch_add(1, Ordering::Relaxed);
        counts[i] += 1;
        pending.push((tick + if i == 0 { slow } else { 1 }, i));
    }
    while counts.iter().sum::<u64>() < 30_000 {
        tick += 1;
        pending.sort_unstable();
        done_at.extend(pending.iter().filter(|(t, _)| *t <= tick).copied());
        pending.retain(|(t, _)| *t > tick);
        while let Some((_, i)) = done_at.pop_front() {
            st[i].in_flight.fetch_sub(1, Ordering::Relaxed);
            let lat = if i == 0 { slow } else { 1 };
            st[i].observe_latency(Duration::from_millis(lat * 10));
            let j = b.pick(&refs, &|_| true, Affinity::default()).expect("pick");
            st[j].in_flight.fetch_add(1, Ordering::Relaxed);
            counts[j] += 1;
            pending.push((tick + if j == 0 { slow } else { 1 }, j));
        }
    }
    let total = counts.iter().sum::<u64>() as f64;
    counts.iter().map(|c| *c as f64 / total).collect()
}

#[test]
fn least_in_flight_and_p2c_ewma_send_traffic_away_from_a_slow_endpoint() {
    // Round-robin sends a third to the slow endpoint whatever its speed.
    let rr = simulate(Algorithm::RoundRobin, 10);
    assert!((rr[0] - 1.0 / 3.0).abs() < 0.01, "{rr:?}");
    for alg in [Algorithm::LeastInFlight, Algorithm::P2cEwma] {
        let shares = simulate(alg, 10);
        assert!(
            shares[0] < 0.15,
            "{alg:?} sent {:.1} % to the 10x slower endpoint",
            shares[0] * 100.0
        );
        assert!(shares[1] > 0.35 && shares[2] > 0.35, "{alg:?}: {shares:?}");
    }
}

#[test]
fn consistent_hashing_keeps_keys_when_an_endpoint_goes() {
    let all = eps(3);
    let b = Balancer::new(Algorithm::ConsistentHash, &all, &[1, 1, 1]);
    let st = states(3);
    let refs: Vec<&EndpointState> = st.iter().collect();
    let keys: Vec<String> = (0..10_000)
        .map(|i| format!("https://www.example.com/assets/{i}.js"))
        .collect();
    let pick = |b: &Balancer, key: &str, usable: &dyn Fn(usize) -> bool| {
        b.pick(
            &refs,
            usable,
            Affinity {
                key: Some(key),
                client_ip: None,
            },
        )
        .expect("pick")
    };
    let before: Vec<usize> = keys.iter().map(|k| pick(&b, k, &|_| true)).collect();
    // Even: each endpoint owns 30-37 % of keys.
    let mut per = HashMap::new();
    for i in &before {
        *per.entry(*i).or_insert(0) += 1;
    }
    for (i, n) in &per {
        assert!((3_000..=3_700).contains(n), "endpoint {i} owns {n} keys");
    }
    // Each endpoint in turn out of rotation (down), or removed from the config: only its keys
    // move. Ideal balance would keep exactly 2/3; the ring's imbalance costs at most 2 points.
    let mut kept_total = 0;
    for gone in 0..3 {
        let live: Vec<usize> = (0..3).filter(|&i| i != gone).collect();
        let live_addrs: Vec<SocketAddr> = live.iter().map(|&i| all[i]).collect();
        let smaller = Balancer::new(Algorithm::ConsistentHash, &live_addrs, &[1, 1]);
        let st2 = states(2);
        let refs2: Vec<&EndpointState> = st2.iter().collect();
        let mut kept_down = 0;
        let mut kept_removed = 0;
        for (j, key) in keys.iter().enumerate() {
            let down = pick(&b, key, &|i| i != gone);
            let removed = live_addrs[smaller
                .pick(
                    &refs2,
                    &|_| true,
                    Affinity {
                        key: Some(key),
                        client_ip: None,
                    },
                )
                .expect("pick")];
            if before[j] != gone {
                assert_eq!(down, before[j], "a key of a live endpoint moved");
                assert_eq!(removed, all[before[j]], "a key of a kept endpoint moved");
            }
            kept_down += usize::from(down == before[j]);
            kept_removed += usize::from(removed == all[before[j]]);
        }
        assert_eq!(kept_down, kept_removed);
        assert!(
            kept_down as f64 / keys.len() as f64 >= 2.0 / 3.0 - 0.02,
            "endpoint {gone} gone: {kept_down} of {} keys kept",
            keys.len()
        );
        kept_total += kept_down;
    }
    // On average over which endpoint goes, exactly the keys of the other two stay: 2/3.
    assert_eq!(kept_total, 2 * keys.len());
}

#[test]
fn client_ip_hash_is_sticky_and_spread() {
    let b = Balancer::new(Algorithm::ClientIpHash, &eps(3), &[1, 1, 1]);
    let st = states(3);
    let refs: Vec<&EndpointState> = st.iter().collect();
    let mut per = [0; 3];
    for k in 0..3000u32 {
        let ip = IpAddr::from(k.to_be_bytes());
        let a = Affinity {
            key: None,
            client_ip: Some(ip),
        };
        let first = b.pick(&refs, &|_| true, a).expect("pick");
        for _ in 0..3 {
            assert_eq!(b.pick(&refs, &|_| true, a), Some(first));
        }
        per[first] += 1;
    }
    for n in per {
        assert!((700..=1300).contains(&n), "{per:?}");
    }
}

#[test]
fn health_rise_and_fall() {
    let s = EndpointState::default();
    assert!(s.healthy());
    assert_eq!(s.check_result(false, 2, 3), None);
    assert_eq!(s.check_result(false, 2, 3), None);
    assert_eq!(s.check_result(false, 2, 3), Some(false));
    assert!(!s.healthy());
    assert_eq!(s.check_result(true, 2, 3), None);
    // A failure in between restarts the count.
    assert_eq!(s.check_result(false, 2, 3), None);
    assert_eq!(s.check_result(true, 2, 3), None);
    assert_eq!(s.check_result(true, 2, 3), Some(true));
    assert!(s.healthy());
}

#[test]
fn ejection_grows_exponentially_up_to_the_cap() {
    let s = EndpointState::default();
    let base = Duration::from_secs(10);
    let max = Duration::from_secs(60);
    let got: Vec<u64> = (0..5).map(|_| s.eject(0, base, max).as_secs()).collect();
    assert_eq!(got, vec![10, 20, 40, 60, 60]);
    assert!(s.ejected(59_999));
    assert!(!s.ejected(60_000));
}

#[test]
fn passing_checks_end_a_passive_ejection() {
    let s = EndpointState::default();
    s.eject(1_000, Duration::from_secs(30), Duration::from_secs(300));
    assert!(s.ejected(2_000));
    assert!(!s.readmit(true, 2, 2_000), "one pass of two");
    assert!(!s.readmit(false, 2, 2_100), "a failure starts over");
    assert!(!s.readmit(true, 2, 2_200));
    assert!(s.readmit(true, 2, 2_300), "rise passes in a row end it");
    assert!(!s.ejected(2_300));
    assert!(
        !s.readmit(true, 2, 2_400),
        "nothing to end when not ejected"
    );
}
