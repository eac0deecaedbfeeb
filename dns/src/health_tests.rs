use super::*;

fn pop(rps: Option<f64>, cpu: Option<f64>) -> DnsPop {
    DnsPop {
        name: "fra".into(),
        latitude: 50.1,
        longitude: 8.7,
        addresses: vec![],
        probes: vec![],
        capacity_rps: rps,
        capacity_cpu: cpu,
        draining: false,
    }
}

fn report(node: &str, requests: u64, cpu: f64, at: u64) -> NodeReport {
    NodeReport {
        node: node.into(),
        pop: "fra".into(),
        region: String::new(),
        tier: "edge".into(),
        version: 1,
        applied_at: 0,
        last_known_good: false,
        error: None,
        failed_version: None,
        requests,
        status_5xx: 0,
        cpu,
        reported_at: at,
    }
}

#[test]
fn probes_take_a_pop_down_after_fall_failures_and_back_after_rise_successes() {
    let p = pop(None, None);
    let mut h = PopHealth::default();
    // (probe result, up afterwards) with fall 2, rise 3.
    let steps = [
        (false, true),
        (true, true), // a success resets the failure count
        (false, true),
        (false, false),
        (true, false),
        (true, false),
        (false, false), // resets the success count
        (true, false),
        (true, false),
        (true, true),
    ];
    for (i, (ok, up)) in steps.into_iter().enumerate() {
        h.probed(ok, 2, 3);
        assert_eq!(h.state(&p).up, up, "step {i}");
    }
}

#[test]
fn a_pop_without_live_nodes_is_down_and_draining_comes_from_config() {
    let mut p = pop(None, None);
    let mut h = PopHealth::default();
    let hy = Hysteresis::default();
    assert!(h.state(&p).up, "up before anything is known");
    h.reported(&p, &[], &hy);
    assert!(!h.state(&p).up, "no node reports: down");
    let r = report("n1", 0, 0.0, 100);
    h.reported(&p, &[&r], &hy);
    assert!(h.state(&p).up);
    p.draining = true;
    assert!(h.state(&p).draining);
}

#[test]
fn load_is_the_rate_between_reports_against_capacity_with_hysteresis() {
    let p = pop(Some(100.0), Some(4.0));
    let hy = Hysteresis {
        enter: 1.0,
        leave: 0.8,
    };
    let mut h = PopHealth::default();
    // Two nodes; rates from consecutive reports 2 s apart.
    // Per round: each node's (requests, cpu) so far, the load expected, overloaded after.
    type Round<'a> = (&'a [(u64, f64)], Option<f64>, bool);
    let rounds: [Round<'_>; 6] = [
        (&[(0, 0.0), (0, 0.0)], None, false),          // no rate yet
        (&[(100, 0.2), (60, 0.2)], Some(0.8), false),  // 80 req/s of 100
        (&[(220, 0.4), (160, 0.4)], Some(1.1), true),  // 110 req/s: over
        (&[(400, 0.6), (320, 0.6)], Some(1.7), true),  // 170 req/s
        (&[(580, 0.8), (336, 0.8)], Some(0.98), true), // 98 req/s: still over (hysteresis)
        (&[(740, 1.0), (336, 1.0)], Some(0.8), false), // 80 req/s: back
    ];
    for (i, (nodes, load, over)) in rounds.iter().enumerate() {
        let at = 100 + 2 * i as u64;
        let reports: Vec<NodeReport> = nodes
            .iter()
            .enumerate()
            .map(|(n, (req, cpu))| report(&format!("n{n}"), *req, *cpu, at))
            .collect();
        let refs: Vec<&NodeReport> = reports.iter().collect();
        h.reported(&p, &refs, &hy);
        match (h.load, load) {
            (Some(got), Some(want)) => assert!(
                (got - want).abs() < 1e-9,
                "round {i}: load {got} want {want}"
            ),
            (got, want) => assert_eq!(got, *want, "round {i}"),
        }
        assert_eq!(h.state(&p).overloaded, *over, "round {i}");
    }
}

#[test]
fn cpu_counts_against_its_own_capacity() {
    let p = pop(None, Some(1.0));
    let hy = Hysteresis::default();
    let mut h = PopHealth::default();
    let a = report("n", 10, 10.0, 100);
    h.reported(&p, &[&a], &hy);
    // 3 CPU seconds in 2 s on a 1-core capacity: 150 %.
    let b = report("n", 20, 13.0, 102);
    h.reported(&p, &[&b], &hy);
    assert_eq!(h.load, Some(1.5));
    assert!(h.state(&p).overloaded);
}

#[test]
fn a_repeated_report_keeps_the_older_sample() {
    let p = pop(Some(10.0), None);
    let hy = Hysteresis::default();
    let mut h = PopHealth::default();
    h.reported(&p, &[&report("n", 0, 0.0, 100)], &hy);
    h.reported(&p, &[&report("n", 0, 0.0, 100)], &hy);
    h.reported(&p, &[&report("n", 40, 0.0, 104)], &hy);
    assert_eq!(
        h.load,
        Some(1.0),
        "40 requests over the 4 s since the first report"
    );
}
