//! Path globs: `*` matches within one segment (no `/`), `**` across segments, everything else
//! is literal (so `/**/x` needs two slashes: it does not match `/x`). Matched by simulating the pattern's automaton over the path: time is
//! O(path × pattern) with no backtracking, whatever the visitor sends.

use std::fmt;

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Byte(u8),
    /// `*`: any bytes but `/`.
    Star,
    /// `**`: any bytes.
    DoubleStar,
}

/// A compiled path glob such as `/static/**/*.js` or `/users/*/avatar`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    tokens: Vec<Token>,
    /// The literal bytes before the first star and after the last: most paths fail on them,
    /// without the automaton's two buffers.
    prefix: usize,
    suffix: usize,
}

impl Glob {
    /// The literal text before the first star: every matching path starts with it.
    pub fn literal_prefix(&self) -> &str {
        &self.text[..self.prefix]
    }

    pub fn new(pattern: &str) -> Result<Glob> {
        if !pattern.starts_with('/') {
            return Err(Error::Glob(pattern.into(), "must start with '/'".into()));
        }
        if pattern.contains("***") {
            return Err(Error::Glob(pattern.into(), "'***' means nothing".into()));
        }
        let b = pattern.as_bytes();
        let mut tokens = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'*' {
                if b.get(i + 1) == Some(&b'*') {
                    tokens.push(Token::DoubleStar);
                    i += 1;
                } else {
                    tokens.push(Token::Star);
                }
            } else {
                tokens.push(Token::Byte(b[i]));
            }
            i += 1;
        }
        let prefix = pattern.find('*').unwrap_or(pattern.len());
        let suffix = pattern
            .rfind('*')
            .map_or(0, |star| pattern.len() - star - 1);
        Ok(Glob {
            text: pattern.into(),
            tokens,
            prefix,
            suffix,
        })
    }

    /// Whether the whole of `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        let text = self.text.as_bytes();
        let p = path.as_bytes();
        if !p.starts_with(&text[..self.prefix]) || !p.ends_with(&text[text.len() - self.suffix..]) {
            return false;
        }
        if self.prefix == text.len() {
            // No star: an exact path.
            return p.len() == text.len();
        }
        let n = self.tokens.len();
        // `live[i]`: the pattern has consumed the input so far up to token `i`.
        let mut live = vec![false; n + 1];
        let mut next = vec![false; n + 1];
        live[0] = true;
        self.close(&mut live);
        for &c in path.as_bytes() {
            next.iter_mut().for_each(|s| *s = false);
            let mut any = false;
            for (i, token) in self.tokens.iter().enumerate() {
                if !live[i] {
                    continue;
                }
                match *token {
                    Token::Byte(b) if b == c => {
                        next[i + 1] = true;
                        any = true;
                    }
                    Token::Byte(_) => {}
                    // A star stays where it is after eating a byte.
                    Token::Star if c != b'/' => {
                        next[i] = true;
                        any = true;
                    }
                    Token::Star => {}
                    Token::DoubleStar => {
                        next[i] = true;
                        any = true;
                    }
                }
            }
            if !any {
                return false;
            }
            std::mem::swap(&mut live, &mut next);
            self.close(&mut live);
        }
        live[n]
    }

    /// Stars match the empty string: a live star makes the token after it live.
    fn close(&self, live: &mut [bool]) {
        for i in 0..self.tokens.len() {
            if live[i] && matches!(self.tokens[i], Token::Star | Token::DoubleStar) {
                live[i + 1] = true;
            }
        }
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let cases: &[(&str, &str, bool)] = &[
            ("/a/*/c", "/a/b/c", true),
            ("/a/*/c", "/a//c", true),
            ("/a/*/c", "/a/b/x/c", false),
            ("/a/**/c", "/a/b/x/c", true),
            ("/a/**/c", "/a/c", false),
            ("/a/**", "/a/", true),
            ("/a/**", "/a/b/c/d", true),
            ("/a/**", "/b/a/", false),
            ("/**/*.js", "/x/y/app.js", true),
            ("/**/*.js", "/app.js", false),
            ("/**.js", "/app.js", true),
            ("/*.js", "/x/app.js", false),
            ("/static/*", "/static/app.css", true),
            ("/static/*", "/static/", true),
            ("/exact", "/exact", true),
            ("/exact", "/exact/", false),
            ("/*/*", "/a", false),
            (
                "/*a*a*a*a*b",
                "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
        ];
        for (pattern, path, want) in cases {
            let g = Glob::new(pattern).expect("glob");
            assert_eq!(g.matches(path), *want, "{pattern} ~ {path}");
        }
        assert!(Glob::new("no-slash").is_err());
        assert!(Glob::new("/a/***").is_err());
    }

    #[test]
    fn long_hostile_input_is_linear() {
        let g = Glob::new("/**a**a**a**a**a**a**b").expect("glob");
        let path = format!("/{}", "a".repeat(100_000));
        // A backtracking matcher would not finish this; the automaton does 100,000 steps.
        assert!(!g.matches(&path));
    }
}
