//! Where each `[dns]` and `[sites.dns]` mistake is reported: file:line:col and reason, every
//! mistake in one run, and the bugs a review found.

use super::*;

/// Each mistake is refused with one diagnostic, at the mark (`^`), naming what is wrong.
#[test]
fn dns_errors_name_line_column_and_reason() {
    let dir = temp_dir("geodns-errors");
    let site_dns = |site_extra: &str| format!("{SITE}{site_extra}\n{DNS}");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "zone not a DNS name",
            edit(
                DNS,
                "zone = \"cdn.example.net\"",
                "zone = ^\"cdn_example.net\"",
            ),
            "dns.zone: \"cdn_example.net\" is not a DNS name",
        ),
        (
            "zone with an empty label",
            edit(
                DNS,
                "zone = \"cdn.example.net\"",
                "zone = ^\"cdn..example.net\"",
            ),
            "dns.zone: \"cdn..example.net\" is not a DNS name",
        ),
        (
            "zone label starting with a hyphen",
            edit(
                DNS,
                "zone = \"cdn.example.net\"",
                "zone = ^\"-cdn.example.net\"",
            ),
            "is not a DNS name",
        ),
        (
            "delegated zone not a DNS name",
            edit(
                DNS,
                "zone = \"cdn.example.net\"",
                "zone = \"cdn.example.net\"\ndelegated = [\"example.org\", ^\"exa mple.org\"]",
            ),
            "dns.delegated: \"exa mple.org\" is not a DNS name",
        ),
        (
            "hostmaster not a DNS name",
            edit(
                DNS,
                "zone = \"cdn.example.net\"",
                "zone = \"cdn.example.net\"\nhostmaster = ^\"ops@example.net\"",
            ),
            "dns.hostmaster: \"ops@example.net\" is not a DNS name",
        ),
        (
            "listen address without a port",
            edit(
                DNS,
                "zone = \"cdn.example.net\"",
                "zone = \"cdn.example.net\"\nlisten = [^\"127.0.0.1\"]",
            ),
            "invalid dns.listen address \"127.0.0.1\"",
        ),
        (
            "metrics address without a port",
            edit(
                DNS,
                "zone = \"cdn.example.net\"",
                "zone = \"cdn.example.net\"\nmetrics = ^\"localhost\"",
            ),
            "invalid dns.metrics address \"localhost\"",
        ),
        (
            "location with three numbers",
            edit(DNS, "[50.11, 8.68]", "^[50.11, 8.68, 100.0]"),
            "dns.pops.location: expected [latitude, longitude] in degrees",
        ),
        (
            "latitude 91",
            edit(DNS, "[50.11, 8.68]", "^[91.0, 8.68]"),
            "dns.pops.location: expected [latitude, longitude] in degrees",
        ),
        (
            "longitude -181",
            edit(DNS, "[40.71, -74.01]", "^[40.71, -181.0]"),
            "dns.pops.location: expected [latitude, longitude] in degrees",
        ),
        (
            "POP address not an IP address",
            edit(
                DNS,
                "[\"192.0.2.10\"]",
                "[\"192.0.2.10\", ^\"192.0.2.300\"]",
            ),
            "dns.pops.addresses: \"192.0.2.300\" is not an IP address",
        ),
        (
            "POP address given as a name",
            edit(DNS, "[\"192.0.2.20\"]", "[^\"nyc.example.net\"]"),
            "dns.pops.addresses: \"nyc.example.net\" is not an IP address",
        ),
        (
            "POP address twice",
            edit(DNS, "[\"192.0.2.10\"]", "[\"192.0.2.10\", ^\"192.0.2.10\"]"),
            "dns.pops.addresses: duplicate address 192.0.2.10",
        ),
        (
            "POP without addresses",
            edit(
                DNS,
                "name = \"nyc\"\nlocation = [40.71, -74.01]\naddresses = [\"192.0.2.20\"]",
                "name = ^\"nyc\"\nlocation = [40.71, -74.01]\naddresses = []",
            ),
            "dns.pops: POP \"nyc\" has no addresses",
        ),
        (
            "POP without a name",
            edit(DNS, "name = \"nyc\"", "name = ^\" \""),
            "dns.pops: a POP needs a name",
        ),
        (
            "https probe",
            edit(
                DNS,
                "addresses = [\"192.0.2.10\"]",
                "addresses = [\"192.0.2.10\"]\nprobes = [^\"https://192.0.2.10/readyz\"]",
            ),
            "dns.pops.probes: \"https://192.0.2.10/readyz\" is not a plain-HTTP URL",
        ),
        (
            "probe without scheme and host",
            edit(
                DNS,
                "addresses = [\"192.0.2.10\"]",
                "addresses = [\"192.0.2.10\"]\nprobes = [\"http://192.0.2.10/readyz\", ^\"/readyz\"]",
            ),
            "dns.pops.probes: \"/readyz\" is not a plain-HTTP URL",
        ),
        (
            "probe with an empty host",
            edit(
                DNS,
                "addresses = [\"192.0.2.10\"]",
                "addresses = [\"192.0.2.10\"]\nprobes = [^\"http:///readyz\"]",
            ),
            "dns.pops.probes: \"http:///readyz\" is not a plain-HTTP URL",
        ),
        (
            "duplicate POP name",
            edit(DNS, "name = \"nyc\"", "name = ^\"fra\""),
            "dns.pops: duplicate POP \"fra\"",
        ),
        (
            "capacity_rps 0",
            edit(
                DNS,
                "addresses = [\"192.0.2.10\"]",
                "addresses = [\"192.0.2.10\"]\ncapacity_rps = ^0.0",
            ),
            "dns.pops: a capacity must be above 0",
        ),
        (
            "capacity_cpu below 0",
            edit(
                DNS,
                "addresses = [\"192.0.2.20\"]",
                "addresses = [\"192.0.2.20\"]\ncapacity_cpu = ^-4.0",
            ),
            "dns.pops: a capacity must be above 0",
        ),
        (
            "overload leave above enter",
            format!("{DNS}\n[dns.overload]\nenter = 0.9\nleave = ^0.95\n"),
            "dns.overload: leave (0.95) must be above 0 and at most enter (0.9)",
        ),
        (
            "overload leave 0",
            edit(
                DNS,
                "zone = \"cdn.example.net\"",
                "zone = \"cdn.example.net\"\noverload = { leave = ^0.0 }",
            ),
            "dns.overload: leave (0) must be above 0 and at most enter (1)",
        ),
        (
            "name server in the zone without addresses",
            edit(
                DNS,
                "[{ name = \"ns1.cdn.example.net\", addresses = [\"192.0.2.53\"] }]",
                "[{ name = \"ns.provider.example\" }, ^{ name = \"NS2.cdn.example.net.\" }]",
            ),
            "dns.nameservers: ns2.cdn.example.net is inside the zone and needs addresses (glue)",
        ),
        (
            "name server not a DNS name",
            edit(
                DNS,
                "name = \"ns1.cdn.example.net\"",
                "name = ^\"ns1.cdn.example.net:53\"",
            ),
            "dns.nameservers: \"ns1.cdn.example.net:53\" is not a DNS name",
        ),
        (
            "name server address not an IP address",
            edit(
                DNS,
                "[\"192.0.2.53\"]",
                "[\"192.0.2.53\", ^\"192.0.2.54:53\"]",
            ),
            "dns.nameservers: \"192.0.2.54:53\" is not an IP address",
        ),
        (
            "no name servers",
            edit(
                &format!("^{DNS}"),
                "[{ name = \"ns1.cdn.example.net\", addresses = [\"192.0.2.53\"] }]",
                "[]",
            ),
            "dns.nameservers: the zone needs at least one name server",
        ),
        (
            "nameservers missing",
            edit(
                &format!("^{DNS}"),
                "nameservers = [{ name = \"ns1.cdn.example.net\", addresses = [\"192.0.2.53\"] }]\n",
                "",
            ),
            "missing field `nameservers`",
        ),
        (
            "no POPs",
            format!(
                "{SITE}^[dns]\nzone = \"cdn.example.net\"\nnameservers = [{{ name = \"ns.provider.example\" }}]\npops = []\n"
            ),
            "dns.pops: at least one POP is needed",
        ),
        (
            "ttl 0, reported at [dns]",
            format!("{SITE}^{}", edit(DNS, "zone = ", "ttl = \"0s\"\nzone = ")),
            "dns.ttl must be between 1s and 1d",
        ),
        (
            "ttl above a day",
            format!("^{}", edit(DNS, "zone = ", "ttl = \"2d\"\nzone = ")),
            "dns.ttl must be between 1s and 1d",
        ),
        (
            "answers 0",
            format!("^{}", edit(DNS, "zone = ", "answers = 0\nzone = ")),
            "dns.answers must be at least 1",
        ),
        (
            "ECS prefix too long",
            format!("^{}", edit(DNS, "zone = ", "ecs_ipv4_prefix = 33\nzone = ")),
            "dns.ecs_ipv4_prefix is at most 32",
        ),
        (
            "probe interval too short",
            format!(
                "^{}",
                edit(DNS, "zone = ", "probe = { interval = \"10ms\" }\nzone = ")
            ),
            "dns.probe: interval is at least 100ms",
        ),
        (
            "unknown key in [[dns.pops]]",
            edit(DNS, "name = \"nyc\"", "name = \"nyc\"\n^capacity = 5"),
            "unknown field `capacity`",
        ),
        (
            "pin to an unknown POP",
            site_dns("[sites.dns]\npin = { DE = ^\"ams\" }"),
            "sites.dns: unknown POP \"ams\" (known: fra, nyc)",
        ),
        (
            // The key has no location of its own: the diagnostic points at its value.
            "pin key not a country code",
            site_dns("[sites.dns]\npin = { DEU = ^\"fra\" }"),
            "sites.dns.pin: \"DEU\" is not a country code",
        ),
        (
            "pin key with a digit",
            site_dns("[sites.dns]\npin = { D1 = ^\"fra\" }"),
            "sites.dns.pin: \"D1\" is not a country code",
        ),
        (
            "exclude of an unknown POP",
            site_dns("[sites.dns]\nexclude = [\"fra\", ^\"sin\"]"),
            "sites.dns: unknown POP \"sin\" (known: fra, nyc)",
        ),
        (
            "[sites.dns] pin without [dns]",
            format!("{LISTEN}{SITE}[sites.dns]\npin = {{ DE = ^\"fra\" }}\n"),
            "sites.dns: POPs are named in [dns], which this file does not have",
        ),
        (
            "[sites.dns] exclude without [dns]",
            format!("{LISTEN}{SITE}dns = {{ exclude = [^\"fra\"] }}\n"),
            "sites.dns: POPs are named in [dns], which this file does not have",
        ),
        (
            "site name not a DNS label",
            format!("{}{DNS}", edit(SITE, "\"shop\"", "^\"my_site\"")),
            "site name \"my_site\" is not a DNS label: set sites.dns.label",
        ),
        (
            "site name with a dot",
            format!("{}{DNS}", edit(SITE, "\"shop\"", "^\"shop.eu\"")),
            "site name \"shop.eu\" is not a DNS label",
        ),
        (
            "label with a dot",
            site_dns("[sites.dns]\nlabel = ^\"a.b\""),
            "sites.dns.label: \"a.b\" is not a DNS label",
        ),
        (
            "label with an underscore, for a site named alike",
            format!(
                "{}[sites.dns]\nlabel = ^\"my_site\"\n{DNS}",
                edit(SITE, "\"shop\"", "\"my_site\"")
            ),
            "sites.dns.label: \"my_site\" is not a DNS label",
        ),
        (
            "label ending in a hyphen",
            site_dns("[sites.dns]\nlabel = ^\"shop-\""),
            "sites.dns.label: \"shop-\" is not a DNS label",
        ),
        (
            "empty label",
            site_dns("[sites.dns]\nlabel = ^\"\""),
            "sites.dns.label: \"\" is not a DNS label",
        ),
    ];
    for (name, marked, reason) in &cases {
        let (text, (line, col)) = unmark(marked);
        let err = compile_in(&dir, &text).expect_err(name);
        let diags = err.diagnostics();
        assert_eq!(diags.len(), 1, "{name}: one diagnostic, got {err}");
        let d = &diags[0];
        assert_eq!(d.location, Some((line, col)), "{name}: {d}");
        assert!(d.reason.contains(reason), "{name}: {d}");
        assert!(
            d.to_string().starts_with(&format!(
                "{}:{line}:{col}: ",
                dir.join("edge.toml").display()
            )),
            "{name}: {d}"
        );
    }
}

/// One run reports every mistake of the file, each at its place (marks and reasons in file order).
#[test]
fn every_dns_error_is_reported_in_one_run() {
    let dir = temp_dir("geodns-all");
    let marked = r#"[pools.p]
endpoints = ["127.0.0.1:2"]

[[sites]]
name = ^"my_site"
hosts = ["a.example.com"]
routes = [{ pool = "p" }]

[[sites]]
name = "b"
hosts = ["b.example.com"]
routes = [{ pool = "p" }]
dns = { label = ^"b.b", pin = { DE = ^"ams" }, exclude = [^"sin"] }

[dns]
zone = "cdn.example.net"
nameservers = [^{ name = "ns1.cdn.example.net" }]
overload = { enter = 0.5, leave = ^0.6 }

[[dns.pops]]
name = "fra"
location = [50.11, 8.68]
addresses = [^"192.0.2.300"]
probes = [^"https://fra.example.net/readyz"]
capacity_rps = ^0.0

[[dns.pops]]
name = ^"fra"
location = ^[50.11, 8.68, 0.0]
addresses = ["192.0.2.11"]
"#;
    let (text, want) = marks(marked);
    let reasons = [
        "site name \"my_site\" is not a DNS label",
        "sites.dns.label: \"b.b\" is not a DNS label",
        "sites.dns: unknown POP \"ams\"",
        "sites.dns: unknown POP \"sin\"",
        "dns.nameservers: ns1.cdn.example.net is inside the zone and needs addresses",
        "dns.overload: leave (0.6) must be above 0 and at most enter (0.5)",
        "dns.pops.addresses: \"192.0.2.300\" is not an IP address",
        "dns.pops.probes: \"https://fra.example.net/readyz\" is not a plain-HTTP URL",
        "dns.pops: a capacity must be above 0",
        "dns.pops: duplicate POP \"fra\"",
        "dns.pops.location: expected [latitude, longitude]",
    ];
    assert_eq!(want.len(), reasons.len());
    let err = compile_in(&dir, &text).expect_err("many errors");
    let mut got: Vec<((usize, usize), String)> = err
        .diagnostics()
        .into_iter()
        .map(|d| (d.location.expect("every error has a location"), d.reason))
        .collect();
    got.sort();
    assert_eq!(got.len(), reasons.len(), "{err}");
    for ((at, (got_at, got_reason)), reason) in want.iter().zip(&got).zip(reasons) {
        assert_eq!(got_at, at, "{got_reason}");
        assert!(got_reason.contains(reason), "{got_reason:?} vs {reason:?}");
    }
}

// Bugs a review found (each test failed before its fix).

/// `[dns.overload] enter` below the default `leave` (0.8) is refused, but the default `leave`
/// has no location, so the diagnostic has none either.
#[test]
fn overload_enter_alone_is_reported_at_its_place() {
    let dir = temp_dir("geodns-bug-overload");
    let (text, at) = unmark(&format!("{DNS}[dns.overload]\nenter = ^0.5\n"));
    let err = compile_in(&dir, &text).expect_err("enter 0.5 < default leave 0.8");
    let diags = err.diagnostics();
    assert_eq!(diags.len(), 1, "{err}");
    assert_eq!(diags[0].location, Some(at), "{err}");
}

/// POP names are trimmed, but the duplicate check compares the trimmed name with the text as
/// written: `" fra"` after `"fra"` is neither refused nor kept.
#[test]
fn a_duplicate_pop_name_with_spaces_is_refused() {
    let dir = temp_dir("geodns-bug-dup-space");
    let (text, at) = unmark(&edit(DNS, "name = \"nyc\"", "name = ^\" fra\""));
    let err = compile_in(&dir, &text).expect_err("duplicate POP");
    let diags = err.diagnostics();
    assert_eq!(diags.len(), 1, "{err}");
    assert_eq!(diags[0].location, Some(at), "{err}");
    assert!(diags[0].reason.contains("duplicate POP"), "{err}");
}

/// A POP refused for its location is not remembered, so a second POP of the same name is not
/// reported as a duplicate in the same run.
#[test]
fn a_duplicate_of_a_refused_pop_is_reported_too() {
    let dir = temp_dir("geodns-bug-dup-refused");
    let marked = edit(
        &edit(DNS, "[50.11, 8.68]", "^[91.0, 8.68]"),
        "name = \"nyc\"",
        "name = ^\"fra\"",
    );
    let (text, want) = marks(&marked);
    let err = compile_in(&dir, &text).expect_err("bad location, then a duplicate");
    let got: Vec<(usize, usize)> = err
        .diagnostics()
        .iter()
        .filter_map(|d| d.location)
        .collect();
    assert_eq!(got, want, "{err}");
}

/// A `[dns]` that does not compile (a bad zone or hostmaster) is treated as no `[dns]` by the
/// sites: every pin and exclude is refused with "which this file does not have", and site names
/// are no longer checked as labels. Only the zone should be reported (and the site name).
#[test]
fn a_bad_zone_does_not_make_sites_dns_claim_there_is_no_dns() {
    let dir = temp_dir("geodns-bug-cascade");
    let marked = format!(
        "{}[sites.dns]\npin = {{ DE = \"fra\" }}\n{}",
        edit(SITE, "\"shop\"", "^\"my_site\""),
        edit(
            DNS,
            "zone = \"cdn.example.net\"",
            "zone = ^\"cdn_example.net\""
        ),
    );
    let (text, want) = marks(&marked);
    let err = compile_in(&dir, &text).expect_err("bad zone");
    let mut got: Vec<(usize, usize)> = err
        .diagnostics()
        .iter()
        .filter_map(|d| d.location)
        .collect();
    got.sort();
    assert_eq!(got, want, "{err}");
    assert!(!err.to_string().contains("does not have"), "{err}");
}

/// `[sites.dns]` without `[dns]` is refused for `pin` and `exclude`, but `label` alone passes.
#[test]
fn a_site_dns_label_without_dns_is_refused() {
    let dir = temp_dir("geodns-bug-label");
    let (text, at) = unmark(&format!("{LISTEN}{SITE}[sites.dns]\nlabel = ^\"store\"\n"));
    let err = compile_in(&dir, &text).expect_err("[sites.dns] without [dns]");
    let diags = err.diagnostics();
    assert_eq!(diags.len(), 1, "{err}");
    assert_eq!(diags[0].location, Some(at), "{err}");
}

/// Two sites answering as one name under the zone: the second would silently win.
#[test]
fn two_sites_with_one_label_are_refused() {
    let dir = temp_dir("geodns-label-clash");
    let text = format!(
        "{SITE}\n[[sites]]\nname = \"shop2\"\nhosts = [\"shop2.example.com\"]\nroutes = [{{ pool = \"p\" }}]\n[sites.dns]\nlabel = ^\"shop\"\n{DNS}"
    );
    let (text, at) = unmark(&text);
    let err = compile_in(&dir, &text).expect_err("label clash");
    let diags = err.diagnostics();
    assert_eq!(diags.len(), 1, "{err}");
    assert_eq!(diags[0].location, Some(at), "{err}");
    assert!(diags[0].reason.contains("already answers as"), "{err}");
}

/// A site named like an in-zone name server would replace the server's glue.
#[test]
fn a_site_label_that_is_a_name_server_is_refused() {
    let dir = temp_dir("geodns-label-ns");
    let (text, at) = unmark(&format!(
        "{}{DNS}",
        edit(SITE, "name = \"shop\"", "name = ^\"ns1\"")
    ));
    let err = compile_in(&dir, &text).expect_err("label is the name server's");
    let diags = err.diagnostics();
    assert_eq!(diags.len(), 1, "{err}");
    assert_eq!(diags[0].location, Some(at), "{err}");
    assert!(diags[0].reason.contains("name server"), "{err}");
}
