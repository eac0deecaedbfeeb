//! Device classes from request headers: a small classifier, documented so that nobody has to
//! guess why a visitor landed where they did.
//!
//! In order:
//! 1. **Bots**: a `User-Agent` naming a known crawler (Googlebot, bingbot, …) or with a word
//!    ending in `bot`, `crawler` or `spider` (`AdsBot-Google`, `GPTBot`, `Baiduspider`;
//!    `CUBOT`, a phone maker, is not a bot). First, so that a crawler that also sends client
//!    hints is still a bot.
//! 2. **Client hints**: `Sec-CH-UA-Mobile: ?1` → mobile. Chromium browsers send it on every
//!    request; `?0` says nothing about tablets (Chrome on an Android tablet sends `?0`), so it
//!    falls through to the User-Agent.
//! 3. **User-Agent**: `iPad`, `Tablet`, `Kindle`/`Silk`, or `Android` without `Mobile` →
//!    tablet; `iPhone`, `iPod`, `Android … Mobile`, `Mobi`, `Windows Phone`, `Opera Mini` →
//!    mobile; anything else (and no User-Agent) → desktop.
//!
//! Caveats: iPadOS 13+ Safari asks for desktop sites by default and sends a Mac User-Agent
//! (`Macintosh; Intel Mac OS X`) with no client hints, so such an iPad is **desktop** here (no
//! header tells it apart; only script on the page can). Command-line tools and libraries (curl,
//! wget, Go's and Python's HTTP clients) are **desktop**: they get the canonical full page,
//! which is what monitoring and scripts expect; make a rule on `User-Agent` to treat them apart.

use std::fmt;

use http::HeaderMap;

use crate::{Error, Result};

/// A visitor's device class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Mobile,
    Tablet,
    Desktop,
    Bot,
}

impl Device {
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Mobile => "mobile",
            Device::Tablet => "tablet",
            Device::Desktop => "desktop",
            Device::Bot => "bot",
        }
    }

    /// `mobile`, `tablet`, `desktop` or `bot` (any case).
    pub fn parse(s: &str) -> Result<Device> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mobile" => Ok(Device::Mobile),
            "tablet" => Ok(Device::Tablet),
            "desktop" => Ok(Device::Desktop),
            "bot" => Ok(Device::Bot),
            _ => Err(Error::UnknownDevice(s.into())),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Crawlers whose names do not end in `bot`/`crawler`/`spider`, lower case, matched as
/// substrings.
const NAMED_BOTS: &[&str] = &[
    "googlebot",
    "bingbot",
    "mediapartners-google",
    "google-inspectiontool",
    "slurp",
    "facebookexternalhit",
    "ia_archiver",
    "headlesschrome",
    "lighthouse",
];

/// Words that end in `bot` but are not bots.
const NOT_BOTS: &[&str] = &["cubot"];

/// The device class of the request with these headers.
pub fn classify(headers: &HeaderMap) -> Device {
    let ua = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if is_bot(ua) {
        return Device::Bot;
    }
    if headers
        .get("sec-ch-ua-mobile")
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"?1")
    {
        return Device::Mobile;
    }
    classify_user_agent(ua)
}

/// The User-Agent part of [`classify`] (bots excluded).
fn classify_user_agent(ua: &str) -> Device {
    let has = |s: &str| ua.contains(s);
    let android = has("Android");
    if has("iPad") || has("Tablet") || has("Kindle") || has("Silk/") || (android && !has("Mobile"))
    {
        Device::Tablet
    } else if has("iPhone")
        || has("iPod")
        || has("Mobi")
        || has("Windows Phone")
        || has("Opera Mini")
        || (android && has("Mobile"))
    {
        Device::Mobile
    } else {
        Device::Desktop
    }
}

fn is_bot(ua: &str) -> bool {
    let lower = ua.to_ascii_lowercase();
    if NAMED_BOTS.iter().any(|b| lower.contains(b)) {
        return true;
    }
    lower
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .any(|w| {
            (w.ends_with("bot") || w.ends_with("crawler") || w.ends_with("spider"))
                && !NOT_BOTS.contains(&w)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ua: &str, mobile_hint: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = ua.parse() {
            h.insert(http::header::USER_AGENT, v);
        }
        if let Some(m) = mobile_hint.and_then(|m| m.parse().ok()) {
            h.insert("sec-ch-ua-mobile", m);
        }
        h
    }

    #[test]
    fn real_user_agents() {
        use Device::*;
        let cases: &[(&str, Option<&str>, Device)] = &[
            // Chrome 138, Windows
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
                Some("?0"),
                Desktop,
            ),
            // Firefox 140, Linux
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
                None,
                Desktop,
            ),
            // Firefox 140, macOS
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:140.0) Gecko/20100101 Firefox/140.0",
                None,
                Desktop,
            ),
            // Safari 18, macOS
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Safari/605.1.15",
                None,
                Desktop,
            ),
            // Edge 138, Windows
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36 Edg/138.0.0.0",
                Some("?0"),
                Desktop,
            ),
            // Chrome Android phone (reduced UA), with and without the hint
            (
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Mobile Safari/537.36",
                Some("?1"),
                Mobile,
            ),
            (
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Mobile Safari/537.36",
                None,
                Mobile,
            ),
            // Firefox Android
            (
                "Mozilla/5.0 (Android 15; Mobile; rv:140.0) Gecko/140.0 Firefox/140.0",
                None,
                Mobile,
            ),
            // Safari iPhone
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1",
                None,
                Mobile,
            ),
            // Chrome iPhone
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/138.0.7204.119 Mobile/15E148 Safari/604.1",
                None,
                Mobile,
            ),
            // iPad asking for the mobile site
            (
                "Mozilla/5.0 (iPad; CPU OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1",
                None,
                Tablet,
            ),
            // iPadOS default (desktop mode): indistinguishable from a Mac, documented caveat
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Safari/605.1.15",
                None,
                Desktop,
            ),
            // Chrome on an Android tablet (no "Mobile"; the hint is ?0)
            (
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
                Some("?0"),
                Tablet,
            ),
            // Samsung Galaxy Tab, Samsung Internet
            (
                "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 Chrome/125.0.0.0 Safari/537.36",
                None,
                Tablet,
            ),
            // Googlebot desktop and smartphone
            (
                "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; +http://www.google.com/bot.html) Chrome/138.0.7204.183 Safari/537.36",
                None,
                Bot,
            ),
            (
                "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.7204.183 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                Some("?1"),
                Bot,
            ),
            // bingbot
            (
                "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
                None,
                Bot,
            ),
            // Other crawlers
            (
                "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
                None,
                Bot,
            ),
            (
                "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
                None,
                Bot,
            ),
            (
                "AdsBot-Google (+http://www.google.com/adsbot.html)",
                None,
                Bot,
            ),
            (
                "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
                None,
                Bot,
            ),
            // A CUBOT phone is a phone
            (
                "Mozilla/5.0 (Linux; Android 12; CUBOT P80) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Mobile Safari/537.36",
                None,
                Mobile,
            ),
            // Command-line tools: desktop (documented)
            ("curl/8.14.1", None, Desktop),
            ("Wget/1.25.0", None, Desktop),
            // No User-Agent at all
            ("", None, Desktop),
        ];
        for (ua, hint, want) in cases {
            assert_eq!(classify(&headers(ua, *hint)), *want, "{ua} ({hint:?})");
        }
    }

    #[test]
    fn names_parse() {
        for d in [Device::Mobile, Device::Tablet, Device::Desktop, Device::Bot] {
            assert_eq!(Device::parse(d.as_str()), Ok(d));
        }
        assert!(Device::parse("phone").is_err());
    }
}
