//! Time windows: `from`–`to` wall-clock times in UTC or a named IANA zone (from the bundled tz
//! database, so the machine's tzdata does not matter), optionally on given days of the week.
//!
//! `from` is inclusive and `to` exclusive. A window whose `to` is earlier than its `from`
//! crosses midnight (`22:00`–`06:00`); its days are the days it *starts* on, so a Friday
//! 22:00–06:00 window holds until Saturday 06:00. `from == to` is the whole day.

use std::fmt;

use jiff::civil::Weekday;
use jiff::tz::TimeZone;

use crate::{Error, Result};

/// A daily window of wall-clock time.
#[derive(Debug, Clone)]
pub struct TimeWindow {
    /// Minutes after midnight, `0..=1440`.
    from: u16,
    to: u16,
    zone: TimeZone,
    zone_name: String,
    /// Bit `n` set: the window opens on weekday `n` (Monday = 0). Empty: every day.
    days: u8,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

impl TimeWindow {
    /// `from`/`to` as `HH:MM`; `zone` an IANA name (`Europe/Berlin`) or `UTC`; `days` three-letter
    /// English names (any case), empty for every day.
    pub fn new(from: &str, to: &str, zone: &str, days: &[&str]) -> Result<TimeWindow> {
        let zone_name = zone.trim();
        let tz = if zone_name.eq_ignore_ascii_case("utc") {
            TimeZone::UTC
        } else {
            TimeZone::get(zone_name).map_err(|_| Error::TimeZone(zone.into()))?
        };
        let mut mask = 0u8;
        for d in days {
            let lower = d.trim().to_ascii_lowercase();
            let i = (0..7)
                .find(|&i| lower == DAYS[i] || lower == FULL_DAYS[i])
                .ok_or_else(|| Error::Day((*d).into()))?;
            mask |= 1 << i;
        }
        Ok(TimeWindow {
            from: minutes(from)?,
            to: minutes(to)?,
            zone: tz,
            zone_name: if zone_name.eq_ignore_ascii_case("utc") {
                "UTC".into()
            } else {
                zone_name.into()
            },
            days: mask,
        })
    }

    /// Whether `now` is inside the window.
    pub fn contains(&self, now: jiff::Timestamp) -> bool {
        let local = self.zone.to_datetime(now);
        let minute =
            u16::from(local.hour().unsigned_abs()) * 60 + u16::from(local.minute().unsigned_abs());
        let today = local.weekday();
        let (inside, opened_on) = if self.from == self.to {
            (true, today)
        } else if self.from < self.to {
            (minute >= self.from && minute < self.to, today)
        } else if minute >= self.from {
            (true, today)
        } else {
            // After midnight: the window opened yesterday.
            (minute < self.to, today.previous())
        };
        inside && (self.days == 0 || self.days & (1 << day_index(opened_on)) != 0)
    }
}

fn day_index(d: Weekday) -> u8 {
    (d.to_monday_zero_offset()).unsigned_abs()
}

fn minutes(hhmm: &str) -> Result<u16> {
    let bad = || Error::Time(hhmm.into());
    let (h, m) = hhmm.trim().split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02} {}",
            self.from / 60,
            self.from % 60,
            self.to / 60,
            self.to % 60,
            self.zone_name
        )?;
        if self.days != 0 {
            let days: Vec<&str> = (0..7)
                .filter(|i| self.days & (1 << i) != 0)
                .map(|i| DAYS[i])
                .collect();
            write!(f, " on {}", days.join(","))?;
        }
        Ok(())
    }
}
