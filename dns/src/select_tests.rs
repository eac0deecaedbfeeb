use super::*;
use crate::centroids::{self, COUNTRIES};

const FRANKFURT: Coord = Coord {
    lat: 50.11,
    lon: 8.68,
};
const NEW_YORK: Coord = Coord {
    lat: 40.71,
    lon: -74.01,
};

#[test]
fn distances_are_great_circle_kilometres() {
    let antipode = Coord {
        lat: -FRANKFURT.lat,
        lon: FRANKFURT.lon - 180.0,
    };
    let half_circumference = std::f64::consts::PI * EARTH_RADIUS_KM;
    let cases = [
        ("Frankfurt to New York", FRANKFURT, NEW_YORK, 6200.0, 50.0),
        ("New York to Frankfurt", NEW_YORK, FRANKFURT, 6200.0, 50.0),
        ("same point", FRANKFURT, FRANKFURT, 0.0, 1e-9),
        ("antipodes", FRANKFURT, antipode, 20015.0, 1.0),
        // Haversine loses a little precision near antipodes; metres do not matter here.
        (
            "half circumference",
            FRANKFURT,
            antipode,
            half_circumference,
            0.01,
        ),
    ];
    for (name, a, b, want, tolerance) in cases {
        let got = distance_km(a, b);
        assert!(
            (got - want).abs() <= tolerance,
            "{name}: {got} km, want {want}"
        );
    }
}

#[test]
fn the_country_table_is_sorted_unique_and_upper_case() {
    assert!(COUNTRIES.len() >= 245, "{} countries", COUNTRIES.len());
    assert!(COUNTRIES.windows(2).all(|w| w[0].0 < w[1].0));
    for (code, lat, lon) in COUNTRIES {
        assert!(code.iter().all(u8::is_ascii_uppercase), "{code:?}");
        assert!(
            (-90.0..=90.0).contains(lat) && (-180.0..=180.0).contains(lon),
            "{code:?}"
        );
    }
}

#[test]
fn centroids_place_countries_and_continents() {
    let countries: [(&[u8; 2], Option<Bounds>); 7] = [
        (b"DE", Some(((50.0, 52.0), (8.0, 11.0)))),
        (b"US", Some(((35.0, 42.0), (-100.0, -90.0)))),
        (b"JP", Some(((34.0, 38.0), (135.0, 140.0)))),
        (b"BR", Some(((-12.0, -8.0), (-57.0, -50.0)))),
        (b"de", None), // codes must be upper case
        (b"ZZ", None),
        (b"\0\0", None),
    ];
    for (code, want) in countries {
        let got = centroids::country(*code);
        check_coord(&format!("country {code:?}"), got, want);
    }
    let continents: [(&[u8; 2], Option<Bounds>); 9] = [
        (b"AF", Some(((-10.0, 15.0), (10.0, 30.0)))),
        (b"AN", Some(((-90.0, -70.0), (-180.0, 180.0)))),
        (b"AS", Some(((20.0, 50.0), (70.0, 120.0)))),
        (b"EU", Some(((45.0, 55.0), (5.0, 25.0)))),
        (b"NA", Some(((35.0, 55.0), (-110.0, -90.0)))),
        (b"OC", Some(((-30.0, -10.0), (120.0, 160.0)))),
        (b"SA", Some(((-25.0, -5.0), (-70.0, -50.0)))),
        (b"eu", None),
        (b"XX", None),
    ];
    for (code, want) in continents {
        let got = centroids::continent(*code);
        check_coord(&format!("continent {code:?}"), got, want);
    }
}

/// (latitude range, longitude range), inclusive.
type Bounds = ((f64, f64), (f64, f64));

fn check_coord(name: &str, got: Option<Coord>, want: Option<Bounds>) {
    match (got, want) {
        (None, None) => {}
        (Some(c), Some(((lat_lo, lat_hi), (lon_lo, lon_hi)))) => assert!(
            (lat_lo..=lat_hi).contains(&c.lat) && (lon_lo..=lon_hi).contains(&c.lon),
            "{name}: {c:?}"
        ),
        _ => panic!("{name}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn client_position_falls_back_from_location_to_country_to_continent() {
    let exact = Coord { lat: 1.0, lon: 2.0 };
    let de = centroids::country(*b"DE");
    let eu = centroids::continent(*b"EU");
    let cases = [
        ((Some(exact), Some(*b"DE"), Some(*b"EU")), Some(exact)),
        ((None, Some(*b"DE"), Some(*b"EU")), de),
        ((None, Some(*b"ZZ"), Some(*b"EU")), eu),
        ((None, None, Some(*b"EU")), eu),
        ((None, None, None), None),
    ];
    for ((location, country, continent), want) in cases {
        let client = Client {
            location,
            country,
            continent,
        };
        assert_eq!(client.position(), want, "{client:?}");
    }
}

#[test]
fn hysteresis_holds_between_leave_and_enter() {
    let h = Hysteresis::default();
    assert_eq!((h.enter, h.leave), (1.0, 0.8));
    let cases = [
        (false, Some(0.9), false),
        (false, Some(1.0), true),
        (false, Some(1.5), true),
        (true, Some(0.9), true),
        (true, Some(0.8), false),
        (true, Some(0.1), false),
        (true, None, true),
        (false, None, false),
        (true, Some(f64::NAN), true),
        (false, Some(f64::NAN), false),
    ];
    for (was, load, want) in cases {
        assert_eq!(h.next(was, load), want, "was {was}, load {load:?}");
    }
}

const UP: PopState = PopState {
    up: true,
    draining: false,
    overloaded: false,
};

fn pops() -> Vec<Pop> {
    let pop = |name: &str, lat, lon| Pop {
        name: name.into(),
        location: Coord { lat, lon },
    };
    vec![
        pop("fra", 50.1, 8.7),
        pop("nyc", 40.7, -74.0),
        pop("sin", 1.35, 103.8),
    ]
}

fn from(country: &[u8; 2]) -> Client {
    Client {
        country: Some(*country),
        ..Client::default()
    }
}

/// One state per POP: "up", "down", "over" (overloaded) or "drain".
fn states(spec: &str) -> Vec<PopState> {
    let state = |word| match word {
        "up" => UP,
        "down" => PopState::default(),
        "over" => PopState {
            overloaded: true,
            ..UP
        },
        "drain" => PopState {
            draining: true,
            ..UP
        },
        _ => panic!("unknown state {word}"),
    };
    spec.split_whitespace().map(state).collect()
}

/// Clauses separated by ';': "pin DE sin", "exclude fra nyc".
fn overrides(spec: &str) -> Overrides {
    let mut overrides = Overrides::default();
    for clause in spec.split(';') {
        match clause.split_whitespace().collect::<Vec<_>>().as_slice() {
            [] => {}
            ["pin", country, pop] => {
                let code: [u8; 2] = country.as_bytes().try_into().expect("two letters");
                overrides.pin.push((code, (*pop).into()));
            }
            ["exclude", names @ ..] => overrides.exclude.extend(names.iter().map(|&n| n.into())),
            _ => panic!("unknown override {clause}"),
        }
    }
    overrides
}

#[test]
fn choose_follows_its_rules() {
    use Reason::*;
    let (de, us, jp) = (from(b"DE"), from(b"US"), from(b"JP"));
    let nowhere = Client::default();
    let asia_only = Client {
        continent: Some(*b"AS"),
        ..nowhere
    };
    let in_new_york = Client {
        location: Some(NEW_YORK),
        ..de
    };
    let unknown_country = from(b"ZZ");
    let up = "up up up";
    // (name, client, states of fra nyc sin, overrides, count, wanted POPs, reason)
    #[rustfmt::skip]
    let cases = [
        ("German client",            de, up, "", 1, "fra", Nearest),
        ("US client",                us, up, "", 1, "nyc", Nearest),
        ("client in Japan",          jp, up, "", 1, "sin", Nearest),
        ("continent only",    asia_only, up, "", 1, "sin", Nearest),
        ("exact location beats country", in_new_york, up, "", 1, "nyc", Nearest),
        ("whole order",              de, up, "", 3, "fra nyc sin", Nearest),
        ("count 2",                  jp, up, "", 2, "sin fra", Nearest),
        ("count 0 is 1",             de, up, "", 0, "fra", Nearest),
        ("count above POPs",         de, up, "", 9, "fra nyc sin", Nearest),
        // Down POPs are absent, not spilled from.
        ("fra down",                 de, "down up up", "", 3, "nyc sin", Nearest),
        ("fra overloaded",           de, "over up up", "", 3, "nyc sin fra", Spilled),
        ("fra draining",             de, "drain up up", "", 3, "nyc sin", Spilled),
        ("far POP overloaded",       de, "up over up", "", 3, "fra sin nyc", Nearest),
        ("all overloaded",           de, "over over over", "", 3, "fra nyc sin", Nearest),
        ("fra draining, rest overloaded", de, "drain over over", "", 1, "nyc", Spilled),
        ("pin",                      de, up, "pin DE sin", 3, "sin fra nyc", Pinned),
        ("pin, count 1",             de, up, "pin DE sin", 1, "sin", Pinned),
        ("pin already nearest",      de, up, "pin DE fra", 1, "fra", Pinned),
        ("pin, no position", unknown_country, up, "pin ZZ sin", 2, "sin fra", Pinned),
        ("first pin wins",           de, up, "pin DE nyc; pin DE sin", 1, "nyc", Pinned),
        ("pin other country",        us, up, "pin DE sin", 1, "nyc", Nearest),
        ("pin to down",              de, "up up down", "pin DE sin", 1, "fra", Nearest),
        ("pin to draining",          de, "up up drain", "pin DE sin", 1, "fra", Nearest),
        ("pin to overloaded",        de, "up up over", "pin DE sin", 1, "fra", Nearest),
        ("pin to excluded",          de, up, "pin DE sin; exclude sin", 3, "fra nyc", Nearest),
        ("pin to unknown POP",       de, up, "pin DE lax", 1, "fra", Nearest),
        // Excluded POPs are absent, not spilled from.
        ("exclude fra",              de, up, "exclude fra", 3, "nyc sin", Nearest),
        ("all down",                 de, "down down down", "", 3, "fra nyc sin", FailOpen),
        ("all down, some excluded",  de, "down down down", "exclude fra", 3, "nyc sin", FailOpen),
        ("all excluded",             jp, up, "exclude fra nyc sin", 3, "sin fra nyc", FailOpen),
        ("fail open: draining first", de, "down down drain", "", 3, "sin fra nyc", FailOpen),
        ("no states: all down",      de, "", "", 1, "fra", FailOpen),
        ("no states, count 0",       de, "", "", 0, "fra", FailOpen),
        ("all down, no position", nowhere, "down down down", "", 3, "fra nyc sin", FailOpen),
        ("no position",         nowhere, up, "", 3, "fra nyc sin", NoLocation),
        ("no position, fra overloaded", nowhere, "over up up", "", 3, "nyc sin fra", NoLocation),
        ("no position, nyc down", nowhere, "up down up", "", 3, "fra sin", NoLocation),
    ];

    let pops = pops();
    for (name, client, state_spec, override_spec, count, want, reason) in cases {
        let choice = choose(
            &pops,
            &states(state_spec),
            &client,
            &overrides(override_spec),
            count,
        );
        let got: Vec<&str> = choice.pops.iter().map(|&i| &*pops[i].name).collect();
        let want: Vec<&str> = want.split_whitespace().collect();
        assert_eq!((got, choice.reason), (want, reason), "{name}");
    }
}

#[test]
fn ties_keep_config_order_and_no_pops_is_empty() {
    let twin = |name: &str| Pop {
        name: name.into(),
        location: FRANKFURT,
    };
    let pops = [twin("b"), twin("a"), twin("c")];
    let choice = choose(&pops, &[UP; 3], &from(b"DE"), &Overrides::default(), 3);
    assert_eq!(choice.pops, [0, 1, 2]);
    assert_eq!(choice.reason, Reason::Nearest);

    let empty = choose(&[], &[], &from(b"DE"), &Overrides::default(), 2);
    assert_eq!(empty.pops, Vec::<usize>::new());
    assert_eq!(empty.reason, Reason::FailOpen);
}
