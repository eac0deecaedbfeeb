//! HTTP dates, read the way recipients must (RFC 9110 §5.6.7): the IMF-fixdate, the obsolete
//! RFC 850 and asctime formats, any letter case, and a weekday that does not match the date
//! (ignored, as ATS, httpd and nginx do). Anything else is not a date.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn month(token: &str) -> Option<u32> {
    if token.len() != 3 {
        return None;
    }
    // Compared in place: this runs on every hit (Date, Expires), so no lowercased copy.
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(token))
        .map(|i| i as u32 + 1)
}

fn number(token: &str, max_len: usize) -> Option<u32> {
    if token.is_empty() || token.len() > max_len || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

/// `HH:MM:SS`
fn time(token: &str) -> Option<(u32, u32, u32)> {
    let mut parts = token.split(':');
    let h = number(parts.next()?, 2)?;
    let m = number(parts.next()?, 2)?;
    let s = number(parts.next()?, 2)?;
    if parts.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some((h, m, s.min(59)))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days-from-civil).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn at(y: i64, mo: u32, d: u32, (h, mi, s): (u32, u32, u32)) -> Option<SystemTime> {
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || y < 1970 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400
        + i64::from(h) * 3600
        + i64::from(mi) * 60
        + i64::from(s);
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// A two-digit RFC 850 year: within 50 years of now means this century (RFC 9110 §5.6.7);
/// fixed here at 1970..2069, which is what every date a cache meets falls in.
fn full_year(y: u32, digits: usize) -> i64 {
    match digits {
        2 if y < 70 => 2000 + i64::from(y),
        2 => 1900 + i64::from(y),
        _ => i64::from(y),
    }
}

/// The IMF-fixdate every current server sends (`Sun, 06 Nov 1994 08:49:37 GMT`), read by
/// position: a hit reads `Date` twice, and the general reader below costs twenty times this.
/// `None` sends the value to the general reader, which decides.
fn imf_fixdate(b: &[u8]) -> Option<SystemTime> {
    if b.len() != 29
        || !b[..3].iter().all(u8::is_ascii_alphabetic)
        || &b[3..5] != b", "
        || b[7] != b' '
        || b[11] != b' '
        || b[16] != b' '
        || b[19] != b':'
        || b[22] != b':'
        || b[25] != b' '
        || !b[26..].eq_ignore_ascii_case(b"gmt")
    {
        return None;
    }
    let two = |i: usize| {
        let (hi, lo) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
        (hi < 10 && lo < 10).then(|| u32::from(hi) * 10 + u32::from(lo))
    };
    // OR 0x20 lower-cases letters and maps no other byte onto a letter.
    let lower = [b[8] | 0x20, b[9] | 0x20, b[10] | 0x20];
    let mo = MONTHS.iter().position(|m| m.as_bytes() == lower)? as u32 + 1;
    let (h, m, s) = (two(17)?, two(20)?, two(23)?);
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    let year = two(12)? * 100 + two(14)?;
    at(i64::from(year), mo, two(5)?, (h, m, s.min(59)))
}

/// Parses an HTTP date leniently; `None` when it is not one.
pub fn parse(value: &str) -> Option<SystemTime> {
    imf_fixdate(value.as_bytes()).or_else(|| lenient(value))
}

fn lenient(value: &str) -> Option<SystemTime> {
    let value = value.trim();
    // The weekday, whatever it says, is dropped: before a comma (IMF-fixdate, RFC 850) or as
    // the first word (asctime).
    let rest = match value.split_once(',') {
        Some((weekday, rest)) if weekday.bytes().all(|b| b.is_ascii_alphabetic()) => rest,
        Some(_) => return None,
        None => value,
    };
    // At most five tokens, kept on the stack (a hit parses Date; no allocation).
    let mut tokens = [""; 5];
    let mut count = 0;
    for token in rest.split_ascii_whitespace() {
        if count == tokens.len() {
            return None;
        }
        tokens[count] = token;
        count += 1;
    }
    match &tokens[..count] {
        // IMF-fixdate: 06 Nov 1994 08:49:37 GMT
        [d, mo, y, t, zone] if zone.eq_ignore_ascii_case("gmt") => at(
            full_year(number(y, 4)?, y.len()),
            month(mo)?,
            number(d, 2)?,
            time(t)?,
        ),
        // RFC 850: 06-Nov-94 08:49:37 GMT
        [dmy, t, zone] if zone.eq_ignore_ascii_case("gmt") => {
            let mut parts = dmy.split('-');
            let (d, mo, y) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            at(
                full_year(number(y, 4)?, y.len()),
                month(mo)?,
                number(d, 2)?,
                time(t)?,
            )
        }
        // asctime: Sun Nov  6 08:49:37 1994
        [weekday, mo, d, t, y] if weekday.bytes().all(|b| b.is_ascii_alphabetic()) => at(
            i64::from(number(y, 4)?),
            month(mo)?,
            number(d, 2)?,
            time(t)?,
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_formats_any_case_and_a_wrong_weekday() {
        // 1994-11-06T08:49:37Z
        let want = UNIX_EPOCH + Duration::from_secs(784_111_777);
        for v in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Thu, 06 Nov 1994 08:49:37 GMT",
            "sun, 06 nov 1994 08:49:37 gmt",
            "SUN, 06 NOV 1994 08:49:37 GMT",
            "  Sun, 06 Nov 1994 08:49:37 GMT  ",
            "Mon Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse(v), Some(want), "{v:?}");
        }
        assert_eq!(
            parse("Thu, 08 Aug 2050 00:00:00 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(2_543_529_600))
        );
        assert_eq!(parse("Wednesday, 01-Jan-70 00:00:00 GMT"), Some(UNIX_EPOCH));
    }

    #[test]
    fn what_is_not_a_date() {
        for v in [
            "",
            "0",
            "-1",
            "garbage",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 1995 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Xyz 1994 08:49:37 GMT",
            "1, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06-Nov-94-1 08:49:37 GMT",
        ] {
            assert_eq!(parse(v), None, "{v:?}");
        }
        assert!(parse("Thu, 29 Feb 1996 00:00:00 GMT").is_some(), "leap day");
    }

    /// The positional reader is a shortcut, never a second opinion: wherever it answers, the
    /// general reader gives the same answer, and one changed byte anywhere in a date never makes
    /// the shortcut accept what the general reader refuses.
    #[test]
    fn the_fixdate_shortcut_agrees_with_the_general_reader() {
        let mut dates = Vec::new();
        for mo in MONTHS {
            for (day, year, time) in [
                (1, 1970, "00:00:00"),
                (28, 1999, "23:59:59"),
                (30, 2024, "12:34:60"),
                (31, 2069, "07:08:09"),
                (29, 2100, "01:02:03"),
            ] {
                let upper = mo.to_ascii_uppercase();
                dates.push(format!("Sun, {day:02} {upper} {year} {time} GMT"));
                dates.push(format!("mon, {day:02} {mo} {year} {time} gmt"));
            }
        }
        let mut checked = 0;
        for d in &dates {
            assert_eq!(imf_fixdate(d.as_bytes()), lenient(d), "{d:?}");
            for at in 0..d.len() {
                for b in [
                    b' ', b'0', b'9', b'a', b'Z', b':', b',', b'-', 0x80, b'@', b'[',
                ] {
                    let mut v = d.clone().into_bytes();
                    v[at] = b;
                    let Ok(v) = String::from_utf8(v) else {
                        continue;
                    };
                    if let Some(t) = imf_fixdate(v.as_bytes()) {
                        assert_eq!(Some(t), lenient(&v), "{v:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 1000, "{checked} accepted variants checked");
    }
}
