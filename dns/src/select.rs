//! Which POPs answer one query: a pure function of where the client is, how the POPs are
//! doing and what the site overrides. No I/O, no clock, so every rule is tested by table.

use std::sync::Arc;

use crate::centroids;

/// Mean Earth radius (IUGG), in kilometres.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A point on Earth, in degrees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coord {
    pub lat: f64,
    pub lon: f64,
}

/// Great-circle distance (haversine, mean Earth radius 6371.0088 km).
pub fn distance_km(a: Coord, b: Coord) -> f64 {
    let (lat_a, lat_b) = (a.lat.to_radians(), b.lat.to_radians());
    let half_dlat = (lat_b - lat_a) / 2.0;
    let half_dlon = (b.lon - a.lon).to_radians() / 2.0;
    let h = half_dlat.sin().powi(2) + lat_a.cos() * lat_b.cos() * half_dlon.sin().powi(2);
    // Rounding can push `h` a hair above 1 near antipodes, where asin would give NaN.
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// What the choice knows of a POP (from config).
#[derive(Clone, Debug, PartialEq)]
pub struct Pop {
    pub name: Arc<str>,
    pub location: Coord,
}

/// The live state of one POP, as health probes and node reports left it.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct PopState {
    pub up: bool,
    pub draining: bool,
    pub overloaded: bool,
}

/// Hysteresis for load: a POP becomes overloaded when its load (a fraction of its configured
/// capacity, e.g. 1.2 = 120 %) reaches `enter` (default 1.0) and stops being overloaded only
/// when it falls to `leave` (default 0.8) or below, so a POP near its limit does not flap in
/// and out of answers. `None` load (nothing reported) keeps the previous value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hysteresis {
    pub enter: f64,
    pub leave: f64,
}

impl Default for Hysteresis {
    fn default() -> Hysteresis {
        Hysteresis {
            enter: 1.0,
            leave: 0.8,
        }
    }
}

impl Hysteresis {
    /// Whether the POP is overloaded after this report. A NaN load counts as no report: a
    /// broken reading should neither pull a POP out of answers nor put it back.
    pub fn next(&self, was_overloaded: bool, load: Option<f64>) -> bool {
        match load.filter(|l| !l.is_nan()) {
            None => was_overloaded,
            Some(load) if was_overloaded => load > self.leave,
            Some(load) => load >= self.enter,
        }
    }
}

/// The asking client as far as geo knows. Codes are upper case, as the geo crate gives them.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Client {
    pub location: Option<Coord>,
    pub country: Option<[u8; 2]>,
    pub continent: Option<[u8; 2]>,
}

impl Client {
    /// The exact location if known, else the country centroid, else the continent centre.
    pub fn position(&self) -> Option<Coord> {
        self.location
            .or_else(|| self.country.and_then(centroids::country))
            .or_else(|| self.continent.and_then(centroids::continent))
    }
}

/// A site's overrides.
#[derive(Default, Clone, Debug)]
pub struct Overrides {
    /// Country code (upper case) → POP name: clients from that country go there first.
    pub pin: Vec<([u8; 2], Arc<str>)>,
    /// POP names never to answer with (unless excluding them leaves nothing at all).
    pub exclude: Vec<Arc<str>>,
}

/// Why the answer is what it is (for metrics, logs and the RFC 7871 scope decision).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The client's country is pinned to the first POP.
    Pinned,
    /// The first POP is the nearest one that is up and not excluded.
    Nearest,
    /// A nearer POP was up but draining or overloaded, so the answer moved further away.
    Spilled,
    /// The client's position is unknown: candidates in config order.
    NoLocation,
    /// No POP usable: all non-excluded POPs in distance order, so clients still get an
    /// address.
    FailOpen,
}

/// The answer for one query.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// Indices into the `pops` slice given to [`choose`], best first, no repeats.
    pub pops: Vec<usize>,
    pub reason: Reason,
}

/// Chooses up to `count` POPs for one query, best first.
///
/// `states[i]` is the state of `pops[i]`; a POP without a state counts as down. A `count`
/// of 0 is taken as 1, so the DNS always has something to answer with.
///
/// 1. **Candidates** are the POPs that are not in `overrides.exclude` (by name), are `up` and
///    are not `draining`.
/// 2. **Normal order**: candidates that are not overloaded, nearest to
///    [`Client::position`] first; then the overloaded candidates, nearest first. So a query
///    goes to an overloaded POP only when every candidate is overloaded. Equal distances
///    keep config order.
/// 3. **Pin**: if the client's country is pinned (the first matching entry of
///    `overrides.pin`) to a POP that is a candidate and not overloaded, that POP moves to the
///    front ([`Reason::Pinned`]) and the rest follow in normal order. A pin to a POP that is
///    down, draining, overloaded, excluded or unknown is ignored.
/// 4. **Reason** when not pinned, with a known position: [`Reason::Spilled`] if some POP
///    other than the first is up, not excluded and strictly nearer than the first (it was
///    skipped for draining or overload); otherwise [`Reason::Nearest`]. Down and excluded
///    POPs never count as spilled from.
/// 5. **Unknown position**: the normal order degenerates to config order (not overloaded
///    first), with [`Reason::NoLocation`].
/// 6. **No candidate at all**: [`Reason::FailOpen`] with every non-excluded POP (every POP,
///    if exclusion removes them all): the up (draining) ones first, then the down ones, each
///    group by distance (config order when the position is unknown). Health probes can be
///    wrong; answering with something beats answering with nothing. With no POPs at all the
///    list is empty.
/// 7. The list is cut to `count`.
pub fn choose(
    pops: &[Pop],
    states: &[PopState],
    client: &Client,
    overrides: &Overrides,
    count: usize,
) -> Choice {
    let position = client.position();
    // Without a position every distance is 0, and the stable sorts below keep config order.
    let distance: Vec<f64> = pops
        .iter()
        .map(|pop| position.map_or(0.0, |p| distance_km(p, pop.location)))
        .collect();
    let state = |i: usize| states.get(i).copied().unwrap_or_default();
    let excluded: Vec<bool> = pops
        .iter()
        .map(|pop| overrides.exclude.contains(&pop.name))
        .collect();
    let is_candidate = |i: usize| !excluded[i] && state(i).up && !state(i).draining;

    let mut order: Vec<usize> = (0..pops.len()).filter(|&i| is_candidate(i)).collect();
    order.sort_by(|&a, &b| {
        state(a)
            .overloaded
            .cmp(&state(b).overloaded)
            .then(distance[a].total_cmp(&distance[b]))
    });

    let Some(&first) = order.first() else {
        return fail_open(states, &distance, &excluded, count);
    };

    let pinned = pinned_pop(pops, client, overrides)
        .filter(|&i| is_candidate(i) && !state(i).overloaded)
        .and_then(|i| order.iter().position(|&o| o == i));
    let reason = if let Some(at) = pinned {
        order[..=at].rotate_right(1);
        Reason::Pinned
    } else if position.is_none() {
        Reason::NoLocation
    } else {
        let skipped_nearer = (0..pops.len())
            .any(|i| i != first && !excluded[i] && state(i).up && distance[i] < distance[first]);
        if skipped_nearer {
            Reason::Spilled
        } else {
            Reason::Nearest
        }
    };

    order.truncate(count.max(1));
    Choice {
        pops: order,
        reason,
    }
}

/// The index of the POP the client's country is pinned to, if any.
fn pinned_pop(pops: &[Pop], client: &Client, overrides: &Overrides) -> Option<usize> {
    let country = client.country?;
    let (_, name) = overrides.pin.iter().find(|(c, _)| *c == country)?;
    pops.iter().position(|pop| pop.name == *name)
}

/// The answer when no POP is a candidate (see [`choose`], rule 6).
fn fail_open(states: &[PopState], distance: &[f64], excluded: &[bool], count: usize) -> Choice {
    let is_down = |i: usize| !states.get(i).is_some_and(|s| s.up);
    let mut order: Vec<usize> = (0..distance.len()).filter(|&i| !excluded[i]).collect();
    if order.is_empty() {
        order = (0..distance.len()).collect();
    }
    order.sort_by(|&a, &b| {
        is_down(a)
            .cmp(&is_down(b))
            .then(distance[a].total_cmp(&distance[b]))
    });
    order.truncate(count.max(1));
    Choice {
        pops: order,
        reason: Reason::FailOpen,
    }
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
