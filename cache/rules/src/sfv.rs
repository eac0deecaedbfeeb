//! Structured Field dictionaries (RFC 8941 §3.2, §4.2), strictly: `CDN-Cache-Control` is one
//! (RFC 9213), and a field that does not parse is ignored as a whole. Only what a dictionary
//! of directives needs: members with bare items, parameters and inner lists.

/// A bare item (RFC 8941 §3.3).
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Integer(i64),
    Decimal(f64),
    String(String),
    Token(String),
    Bytes(Vec<u8>),
    Boolean(bool),
    /// An inner list (its members' values, parameters dropped).
    InnerList(Vec<Item>),
}

/// One dictionary member: its key and value (parameters are parsed and dropped: no directive
/// here has any).
pub type Member = (String, Item);

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn key(&mut self) -> Option<String> {
        let start = self.i;
        match self.peek() {
            Some(c) if c.is_ascii_lowercase() || c == b'*' => self.i += 1,
            _ => return None,
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.*".contains(&c) {
                self.i += 1;
            } else {
                break;
            }
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .map(str::to_string)
    }

    fn bare_item(&mut self) -> Option<Item> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string(),
            b':' => self.bytes(),
            b'?' => {
                self.i += 1;
                match self.peek()? {
                    b'0' => {
                        self.i += 1;
                        Some(Item::Boolean(false))
                    }
                    b'1' => {
                        self.i += 1;
                        Some(Item::Boolean(true))
                    }
                    _ => None,
                }
            }
            c if c.is_ascii_alphabetic() || c == b'*' => self.token(),
            _ => None,
        }
    }

    fn number(&mut self) -> Option<Item> {
        let start = self.i;
        self.eat(b'-');
        let digits_start = self.i;
        let mut dot = None;
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() {
                self.i += 1;
            } else if c == b'.' && dot.is_none() {
                dot = Some(self.i);
                self.i += 1;
            } else {
                break;
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        match dot {
            None => {
                let n = self.i - digits_start;
                if n == 0 || n > 15 {
                    return None;
                }
                text.parse().ok().map(Item::Integer)
            }
            Some(d) => {
                let int = d - digits_start;
                let frac = self.i - d - 1;
                if int == 0 || int > 12 || frac == 0 || frac > 3 {
                    return None;
                }
                text.parse().ok().map(Item::Decimal)
            }
        }
    }

    fn string(&mut self) -> Option<Item> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return Some(Item::String(out)),
                b'\\' => {
                    let e = self.peek()?;
                    if e != b'"' && e != b'\\' {
                        return None;
                    }
                    self.i += 1;
                    out.push(char::from(e));
                }
                0x20..=0x7e => out.push(char::from(c)),
                _ => return None,
            }
        }
    }

    fn token(&mut self) -> Option<Item> {
        let start = self.i;
        self.i += 1;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&c) {
                self.i += 1;
            } else {
                break;
            }
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .map(|t| Item::Token(t.to_string()))
    }

    fn bytes(&mut self) -> Option<Item> {
        self.i += 1;
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == b':' {
                break;
            }
            if !(c.is_ascii_alphanumeric() || b"+/=".contains(&c)) {
                return None;
            }
            self.i += 1;
        }
        let raw = self.s[start..self.i].to_vec();
        if !self.eat(b':') {
            return None;
        }
        // The content is not needed, only its validity: keep the base64 text.
        Some(Item::Bytes(raw))
    }

    fn parameters(&mut self) -> Option<()> {
        while self.eat(b';') {
            self.sp();
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Some(())
    }

    fn item_or_inner_list(&mut self) -> Option<Item> {
        if self.eat(b'(') {
            let mut items = Vec::new();
            loop {
                self.sp();
                if self.eat(b')') {
                    self.parameters()?;
                    return Some(Item::InnerList(items));
                }
                items.push(self.bare_item()?);
                self.parameters()?;
                match self.peek()? {
                    b' ' | b')' => {}
                    _ => return None,
                }
            }
        }
        let item = self.bare_item()?;
        self.parameters()?;
        Some(item)
    }
}

/// Parses a dictionary; `None` when any part of it is invalid. Field lines are joined with
/// commas before parsing (RFC 8941 §4.2).
pub fn parse_dictionary(value: &[u8]) -> Option<Vec<Member>> {
    let mut p = Parser { s: value, i: 0 };
    let mut members: Vec<Member> = Vec::new();
    p.sp();
    if p.peek().is_none() {
        return Some(members);
    }
    loop {
        let key = p.key()?;
        let value = if p.eat(b'=') {
            p.item_or_inner_list()?
        } else {
            p.parameters()?;
            Item::Boolean(true)
        };
        // A repeated key: the last one wins (RFC 8941 §4.2.2).
        members.retain(|(k, _)| *k != key);
        members.push((key, value));
        p.ows();
        if p.peek().is_none() {
            return Some(members);
        }
        if !p.eat(b',') {
            return None;
        }
        p.ows();
        // A trailing comma: nothing after it.
        p.peek()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionaries() {
        let ok: &[(&str, &[(&str, Item)])] = &[
            ("", &[]),
            ("max-age=60", &[("max-age", Item::Integer(60))]),
            (
                "max-age=60, no-store",
                &[
                    ("max-age", Item::Integer(60)),
                    ("no-store", Item::Boolean(true)),
                ],
            ),
            (
                "a=1;p=2, b=?0, c=\"x\\\"y\", d=tok/en, e=:aGk=:, f=1.5",
                &[
                    ("a", Item::Integer(1)),
                    ("b", Item::Boolean(false)),
                    ("c", Item::String("x\"y".into())),
                    ("d", Item::Token("tok/en".into())),
                    ("e", Item::Bytes(b"aGk=".to_vec())),
                    ("f", Item::Decimal(1.5)),
                ],
            ),
            (
                "l=(1 \"two\" three);q=1",
                &[(
                    "l",
                    Item::InnerList(vec![
                        Item::Integer(1),
                        Item::String("two".into()),
                        Item::Token("three".into()),
                    ]),
                )],
            ),
            ("a=1, a=2", &[("a", Item::Integer(2))]),
        ];
        for (text, want) in ok {
            let got = parse_dictionary(text.as_bytes()).unwrap_or_else(|| panic!("{text:?}"));
            let want: Vec<Member> = want
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            assert_eq!(got, want, "{text:?}");
        }
        for bad in [
            "max-age=10000, &&&&&",
            "Max-Age=1",
            "max-age=",
            "max-age=60,",
            "max-age=60,,no-store",
            "a=1 b=2",
            "a=\"unterminated",
            "a=1234567890123456",
            "a=1.2345",
            "a=?2",
            "a=(1 2",
            "a=:not base64 :",
            "1a=1",
        ] {
            assert_eq!(parse_dictionary(bad.as_bytes()), None, "{bad:?}");
        }
    }
}
