//! Unit tests over whole rule sets: a request described by [`Req`], evaluated.

#![allow(clippy::unwrap_used)]

mod ab;
mod actions;
mod matching;

use std::sync::Arc;

use http::{HeaderMap, Method};

use crate::{Actions, Condition, RequestFacts, Rule, RuleSet};

/// An owned request to make [`RequestFacts`] from.
#[derive(Clone)]
pub(crate) struct Req {
    pub method: Method,
    pub host: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub client: std::net::IpAddr,
    pub https: bool,
    pub country: Option<String>,
    pub continent: Option<String>,
    pub asn: Option<u32>,
    pub now: jiff::Timestamp,
    pub random: u64,
}

impl Req {
    pub fn get(path_and_query: &str) -> Req {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (path_and_query.to_string(), None),
        };
        Req {
            method: Method::GET,
            host: "shop.test".into(),
            path,
            query,
            headers: HeaderMap::new(),
            client: "192.0.2.10".parse().unwrap(),
            https: true,
            country: None,
            continent: None,
            asn: None,
            // A Wednesday, 12:00 UTC.
            now: "2025-07-16T12:00:00Z".parse().unwrap(),
            random: 7,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Req {
        self.headers.append(name, value.parse().unwrap());
        self
    }

    pub fn at(mut self, when: &str) -> Req {
        self.now = when.parse().unwrap();
        self
    }

    pub fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            method: &self.method,
            host: &self.host,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            client: self.client,
            https: self.https,
            country: self.country.as_deref(),
            continent: self.continent.as_deref(),
            asn: self.asn,
            now: self.now,
            request_id: "req-1",
            random: self.random,
        }
    }
}

/// A rule named `name` routing to pool `name` when `when` holds.
pub(crate) fn pool_rule(name: &str, when: Condition) -> Rule {
    Rule {
        name: name.into(),
        phase: Default::default(),
        when,
        actions: Actions {
            pool: Some(Arc::from(name)),
            ..Actions::default()
        },
    }
}

pub(crate) fn set(rules: Vec<Rule>) -> RuleSet {
    RuleSet::new(rules, None).unwrap()
}
