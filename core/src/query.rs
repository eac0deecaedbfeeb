//! Query components as forms send them: percent-decoding shared by the access log's query
//! redaction and the site rules' query conditions, so both read a parameter the same way.

use std::borrow::Cow;

/// Percent-decodes a query component, `+` as a space; an invalid escape stays as written, and
/// bytes that do not form UTF-8 become U+FFFD. Borrows when there is nothing to decode.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decoding() {
        for (raw, want) in [
            ("a+b%21%zz%4", "a b!%zz%4"),
            ("%C3%A9", "é"),
            ("plain", "plain"),
            ("%41", "A"),
            ("%", "%"),
            ("%ff", "\u{fffd}"),
        ] {
            assert_eq!(percent_decode(raw), want, "{raw}");
        }
        assert!(matches!(
            percent_decode("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
