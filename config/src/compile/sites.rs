//! `[[sites]]`: host names, certificates, routes, request header policy, caching and
//! compression of each site.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::Compiler;
use crate::schema::{self, Algorithm};
use crate::{
    Coding, Compression, DEFAULT_STRIP_REQUEST_HEADERS, KeyRules, Levels, Policy, Pool, Route,
    Site, SiteCache, encoding,
};

/// Host name (lower case; a wildcard without its `*.`) to the index of the site serving it.
pub(super) type HostIndex = edge_core::ConfigMap<String, usize>;

impl Compiler<'_> {
    /// Every site, and the exact and wildcard host indexes into them. `https`: the listen
    /// addresses, since a site needs a certificate only when there is an HTTPS listener.
    pub(super) fn sites(
        &mut self,
        file: &schema::File,
        pools: &BTreeMap<String, Pool>,
        https: &[SocketAddr],
        dns_scope: Option<&super::dns::DnsScope>,
    ) -> (Vec<Arc<Site>>, HostIndex, HostIndex) {
        let mut sites = Vec::new();
        let mut exact_hosts = HostIndex::default();
        let mut wildcard_hosts = HostIndex::default();
        let mut site_names: HashMap<String, ()> = HashMap::new();
        let mut dns_labels: HashMap<String, String> = HashMap::new();
        for spanned_site in &file.sites {
            let s = spanned_site.get_ref();
            let index = sites.len();
            if site_names.insert(s.name.get_ref().clone(), ()).is_some() {
                self.error(
                    s.name.span(),
                    format!("duplicate site name {:?}", s.name.get_ref()),
                );
            }
            if s.hosts.is_empty() {
                self.error(spanned_site.span(), "site has no hosts");
            }
            let mut hosts = Vec::new();
            for h in &s.hosts {
                let raw = h.get_ref();
                let valid = !raw.is_empty()
                    && raw.bytes().all(|b| {
                        b.is_ascii_alphanumeric()
                            || matches!(b, b'-' | b'.' | b'*' | b'[' | b']' | b':')
                    })
                    && (!raw.contains('*')
                        || (raw.starts_with("*.") && raw[2..].find('*').is_none()));
                if !valid {
                    self.error(
                        h.span(),
                        format!(
                            "invalid host {raw:?}: expected a DNS name, `*.domain` or an IP literal"
                        ),
                    );
                    continue;
                }
                let lower = raw.to_ascii_lowercase();
                let (table, key) = match lower.strip_prefix("*.") {
                    Some(rest) => (&mut wildcard_hosts, rest.to_string()),
                    None => (&mut exact_hosts, lower.clone()),
                };
                if table.insert(key, index).is_some() {
                    self.error(
                        h.span(),
                        format!("duplicate host {raw:?}: it is already served by another site"),
                    );
                }
                hosts.push(lower);
            }
            let cert = match (&s.cert, &s.key) {
                (Some(c), Some(k)) => self.cert(c, k),
                (Some(c), None) => {
                    self.error(c.span(), "site has `cert` but no `key`");
                    None
                }
                (None, Some(k)) => {
                    self.error(k.span(), "site has `key` but no `cert`");
                    None
                }
                (None, None) => None,
            };
            if cert.is_none() && s.cert.is_none() && file.tls.is_none() && !https.is_empty() {
                self.error(
                    spanned_site.span(),
                    format!(
                        "site {:?} has no certificate and there is no default [tls] certificate",
                        s.name.get_ref()
                    ),
                );
            }
            let mut routes = Vec::new();
            if s.routes.is_empty() {
                self.error(spanned_site.span(), "site has no routes");
            }
            for r in &s.routes {
                let route = r.get_ref();
                if !route.path_prefix.starts_with('/') {
                    self.error(
                        r.span(),
                        format!("path_prefix {:?} must start with '/'", route.path_prefix),
                    );
                }
                if !pools.contains_key(route.pool.get_ref()) {
                    self.error(
                        route.pool.span(),
                        format!(
                            "unknown pool {:?}; defined pools: {:?}",
                            route.pool.get_ref(),
                            pools.keys().collect::<Vec<_>>()
                        ),
                    );
                }
                let names: Vec<&String> = pools.keys().collect();
                let pools_by_country = self.steering(&route.pools_by_country, "country", &names);
                let pools_by_continent =
                    self.steering(&route.pools_by_continent, "continent", &names);
                routes.push(Route {
                    path_prefix: route.path_prefix.clone(),
                    pool: route.pool.get_ref().clone(),
                    pools_by_country,
                    pools_by_continent,
                });
            }
            routes.sort_by_key(|r| std::cmp::Reverse(r.path_prefix.len()));
            let kept = self.header_names(&s.keep_request_headers);
            let strip_request_headers: Vec<http::HeaderName> = match &s.strip_request_headers {
                Some(list) => self.header_names(list),
                None => DEFAULT_STRIP_REQUEST_HEADERS
                    .iter()
                    .map(|n| http::HeaderName::from_static(n))
                    .collect(),
            }
            .into_iter()
            .filter(|n| !kept.contains(n))
            .collect();
            let mut site_cache = self.site_cache(&s.cache, &file.cache, &kept);
            let geo = self.site_geo(&s.geo, &s.access);
            // A copy per country: the country header (set by the edge, never the client's)
            // joins the key, so URL purges take every country's copy as they take every other
            // key dimension.
            if geo.cache_by_country && !site_cache.key.headers.contains(&geo.headers.country) {
                site_cache.key.headers.push(geo.headers.country.clone());
            }
            let compression = self.compression(&s.compression);
            if let Some(shield) = &s.shield
                && let Some(pool) = pools.get(shield.get_ref())
                && pool.algorithm != Algorithm::ConsistentHash
            {
                self.error(
                    shield.span(),
                    format!(
                        "shield pool {:?} must use algorithm = \"consistent-hash\": every edge has to ask the same shield for a URL",
                        shield.get_ref()
                    ),
                );
            }
            if let Some(shield) = &s.shield
                && !pools.contains_key(shield.get_ref())
            {
                self.error(
                    shield.span(),
                    format!(
                        "unknown shield pool {:?}; defined pools: {:?}",
                        shield.get_ref(),
                        pools.keys().collect::<Vec<_>>()
                    ),
                );
            }
            let log_sample = match &s.log_sample {
                None => 1.0,
                Some(v) => {
                    let share = *v.get_ref();
                    if !(0.0..=1.0).contains(&share) {
                        self.error(
                            v.span(),
                            "log_sample must be between 0 and 1 (the share of requests logged)",
                        );
                    }
                    share
                }
            };
            sites.push(Arc::new(Site {
                name: s.name.get_ref().clone(),
                hosts,
                cert,
                plain_http: s.plain_http,
                http3: s.http3.unwrap_or(file.listen.http3) && file.listen.http3,
                max_request_body_bytes: s
                    .max_request_body_bytes
                    .unwrap_or(file.limits.max_request_body_bytes),
                cache: site_cache,
                compression,
                shield: s.shield.as_ref().map(|p| p.get_ref().clone()),
                shield_fallback: s.shield_fallback,
                routes,
                strip_request_headers,
                request_body_min_rate: s.request_body_min_rate.unwrap_or(1024),
                request_body_grace: s.request_body_grace.unwrap_or(Duration::from_secs(10)),
                log_sample,
                geo,
                security_headers: self.security_headers(&s.security_headers),
                rate_limits: self.rate_limits(&s.rate_limits),
                rules: self.site_rules(&s.rules, s.ab.as_ref(), pools),
                zero_rtt: s.zero_rtt == schema::ZeroRtt::Safe,
                dns: self.site_dns(&s.name, &s.dns, dns_scope, &mut dns_labels),
            }));
        }
        (sites, exact_hosts, wildcard_hosts)
    }

    fn compression(&mut self, c: &schema::Compression) -> Compression {
        let mut prefer = Vec::new();
        for p in &c.prefer {
            match p.get_ref().parse::<Coding>() {
                Ok(coding) if prefer.contains(&coding) => {
                    self.error(p.span(), format!("{coding} is listed twice"))
                }
                Ok(coding) => prefer.push(coding),
                Err(e) => self.error(p.span(), e),
            }
        }
        let types = match &c.types {
            None => encoding::MediaTypes::new(encoding::DEFAULT_COMPRESSIBLE.iter().copied()),
            Some(list) => {
                let mut out = Vec::new();
                for t in list {
                    let v = t.get_ref().trim().to_ascii_lowercase();
                    if encoding::valid_type_pattern(&v) {
                        out.push(v);
                    } else {
                        self.error(
                            t.span(),
                            format!(
                                "invalid media type pattern {:?}: expected type/subtype, type/* or type/*+suffix",
                                t.get_ref()
                            ),
                        );
                    }
                }
                encoding::MediaTypes::new(out)
            }
        };
        Compression {
            enabled: c.enabled,
            prefer,
            types,
            min_bytes: c.min_bytes,
            stored_level: self.levels(&c.stored_level, schema::Levels::stored()),
            fly_level: self.levels(&c.fly_level, schema::Levels::fly()),
        }
    }

    fn levels(&mut self, l: &schema::Levels, defaults: schema::Levels) -> Levels {
        let mut pick = |v: &Option<toml::Spanned<i32>>,
                        d: &Option<toml::Spanned<i32>>,
                        coding: Coding,
                        range: std::ops::RangeInclusive<i32>| {
            let fallback = d.as_ref().map_or(*range.start(), |d| *d.get_ref());
            match v {
                None => fallback,
                Some(v) if range.contains(v.get_ref()) => *v.get_ref(),
                Some(v) => {
                    self.error(
                        v.span(),
                        format!(
                            "{coding} level {} is out of range {}..={}",
                            v.get_ref(),
                            range.start(),
                            range.end()
                        ),
                    );
                    fallback
                }
            }
        };
        Levels {
            zstd: pick(&l.zstd, &defaults.zstd, Coding::Zstd, -7..=22),
            br: pick(&l.br, &defaults.br, Coding::Br, 0..=11),
            gzip: pick(&l.gzip, &defaults.gzip, Coding::Gzip, 1..=9),
        }
    }

    fn header_names(&mut self, list: &[Spanned<String>]) -> Vec<http::HeaderName> {
        let mut names = Vec::new();
        for h in list {
            match http::HeaderName::from_bytes(h.get_ref().as_bytes()) {
                Ok(n) => {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                Err(_) => self.error(h.span(), format!("invalid header name {:?}", h.get_ref())),
            }
        }
        names
    }

    /// `kept`: steering headers the site forwards on purpose; they join the key.
    fn site_cache(
        &mut self,
        c: &schema::SiteCache,
        node: &schema::CacheNode,
        kept: &[http::HeaderName],
    ) -> SiteCache {
        let mut headers = self.header_names(&c.key_headers);
        for k in kept {
            if !headers.contains(k) {
                headers.push(k.clone());
            }
        }
        let mut force_ttl: Vec<(String, Duration)> = c
            .force_ttl
            .iter()
            .map(|f| (f.path_prefix.clone(), f.ttl))
            .collect();
        force_ttl.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        SiteCache {
            enabled: c.enabled,
            key: KeyRules {
                ignore_query: c.ignore_query,
                ignore_params: c.ignore_params.clone(),
                sort_query: c.sort_query,
                headers,
                cookies: c.key_cookies.clone(),
            },
            policy: Policy {
                heuristic_fraction: *node.heuristic_fraction.get_ref(),
                heuristic_max: node.heuristic_max,
                max_ttl: c.max_ttl,
                forced_ttl: None,
                cdn_cache_control: c.cdn_cache_control,
                stale_when_down: c.serve_stale_when_origin_down,
            },
            force_ttl,
            bypass_cookies: c.bypass_cookies.clone(),
            bypass_authorization: c.bypass_authorization,
            forward_ignored_params: c.forward_ignored_params,
            tag_headers: self.header_names(&c.tag_headers),
            strip_tag_headers: c.strip_tag_headers,
            purge_method: c.purge_method,
        }
    }
}
