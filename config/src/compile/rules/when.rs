//! A rule's `when` table, compiled into a `site_rules::Condition`: the keys of one table must
//! all hold; `all`, `any` and `not` nest.

use http::Method;
use site_rules::{Condition, Device, Glob, TimeWindow, ValueTest};
use toml::Spanned;

use super::super::Compiler;
use crate::schema::rules::{NamedTest, StatusItem, When};

impl Compiler<'_> {
    pub(super) fn rule_when(&mut self, w: &Spanned<When>, rule: &str) -> Condition {
        let span = w.span();
        let v = w.get_ref();
        let mut all = Vec::new();
        if let Some(p) = &v.path_prefix {
            if !p.get_ref().starts_with('/') {
                self.error(
                    p.span(),
                    format!("rule {rule:?}: path_prefix must start with '/'"),
                );
            }
            all.push(Condition::PathPrefix(p.get_ref().clone()));
        }
        if let Some(p) = &v.path {
            if !p.get_ref().starts_with('/') {
                self.error(p.span(), format!("rule {rule:?}: path must start with '/'"));
            }
            all.push(Condition::PathExact(p.get_ref().clone()));
        }
        if let Some(g) = &v.path_glob {
            all.extend(
                self.rule_check(g.span(), rule, Glob::new(g.get_ref()))
                    .map(Condition::PathGlob),
            );
        }
        if let Some(methods) = &v.method {
            let mut list = Vec::new();
            for m in methods {
                match Method::from_bytes(m.get_ref().trim().to_ascii_uppercase().as_bytes()) {
                    Ok(method) => list.push(method),
                    Err(_) => self.error(
                        m.span(),
                        format!("rule {rule:?}: {:?} is not a method", m.get_ref()),
                    ),
                }
            }
            all.push(Condition::Method(list));
        }
        if let Some(h) = &v.header {
            let test = self.rule_value_test(h, rule);
            let name = h.get_ref().name.clone();
            if let Some(test) = test {
                all.extend(self.rule_check(
                    name.span(),
                    rule,
                    Condition::header(name.get_ref(), test),
                ));
            }
        }
        if let Some(c) = &v.cookie
            && let Some(test) = self.rule_value_test(c, rule)
        {
            all.push(Condition::Cookie(
                c.get_ref().name.get_ref().trim().into(),
                test,
            ));
        }
        if let Some(q) = &v.query
            && let Some(test) = self.rule_value_test(q, rule)
        {
            all.push(Condition::Query(q.get_ref().name.get_ref().clone(), test));
        }
        if let Some(ranges) = &v.client {
            // One error per bad range, where it is written.
            let mut ok = Vec::new();
            for r in ranges {
                if self
                    .rule_check(r.span(), rule, Condition::client(&[r.get_ref()]))
                    .is_some()
                {
                    ok.push(r.get_ref().as_str());
                }
            }
            all.extend(self.rule_check(span.clone(), rule, Condition::client(&ok)));
        }
        if let Some(c) = &v.country {
            all.extend(self.rule_check(c.span(), rule, Condition::codes(c.get_ref(), false)));
        }
        if let Some(c) = &v.continent {
            all.extend(self.rule_check(c.span(), rule, Condition::codes(c.get_ref(), true)));
        }
        if let Some(asns) = &v.asn {
            all.push(Condition::Asn(asns.clone()));
        }
        if let Some(devices) = &v.device {
            let mut list = Vec::new();
            for d in devices {
                list.extend(self.rule_check(d.span(), rule, Device::parse(d.get_ref())));
            }
            all.push(Condition::Device(list));
        }
        if let Some(t) = &v.time {
            let tv = t.get_ref();
            let days: Vec<&str> = tv.days.iter().map(String::as_str).collect();
            all.extend(
                self.rule_check(
                    t.span(),
                    rule,
                    TimeWindow::new(&tv.from, &tv.to, &tv.zone, &days),
                )
                .map(Condition::Time),
            );
        }
        if let Some(b) = &v.bucket {
            let r = match b.get_ref().as_slice() {
                [lo, hi] => site_rules::bucket_range(*lo, *hi),
                _ => Err(site_rules::Error::Rule(
                    "bucket takes [low, high], inclusive, e.g. [0, 9]".into(),
                )),
            };
            all.extend(self.rule_check(b.span(), rule, r).map(Condition::Bucket));
        }
        if let Some(items) = &v.status {
            let mut ranges = Vec::new();
            for s in items {
                let r = match s.get_ref() {
                    StatusItem::Code(c) => site_rules::status_range(*c, *c),
                    StatusItem::Range(text) => match text.split_once('-') {
                        Some((lo, hi)) => match (lo.trim().parse(), hi.trim().parse()) {
                            (Ok(lo), Ok(hi)) => site_rules::status_range(lo, hi),
                            _ => Err(site_rules::Error::Rule(format!(
                                "status {text:?}: expected a code or \"500-599\""
                            ))),
                        },
                        None => Err(site_rules::Error::Rule(format!(
                            "status {text:?}: expected a code or \"500-599\""
                        ))),
                    },
                };
                ranges.extend(self.rule_check(s.span(), rule, r));
            }
            all.push(Condition::Status(ranges));
        }
        if let Some(list) = &v.all {
            all.push(Condition::All(
                list.iter().map(|w| self.rule_when(w, rule)).collect(),
            ));
        }
        if let Some(list) = &v.any {
            all.push(Condition::Any(
                list.iter().map(|w| self.rule_when(w, rule)).collect(),
            ));
        }
        if let Some(not) = &v.not {
            all.push(Condition::Not(Box::new(self.rule_when(not, rule))));
        }
        if all.len() == 1 {
            all.pop().unwrap_or(Condition::All(Vec::new()))
        } else {
            Condition::All(all)
        }
    }

    fn rule_value_test(&mut self, t: &Spanned<NamedTest>, rule: &str) -> Option<ValueTest> {
        let v = t.get_ref();
        if v.name.get_ref().trim().is_empty() {
            self.error(
                v.name.span(),
                format!("rule {rule:?}: name must not be empty"),
            );
        }
        self.rule_check(
            t.span(),
            rule,
            ValueTest::from_keys(v.present, v.equals.as_deref(), v.regex.as_deref()),
        )
    }
}
