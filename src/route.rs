//! Routing decisions as data: which hops to try, in order, for a target.
//!
//! [`decide`] is a pure function of the target and the static rules (bypass list, fixed upstream,
//! environment proxies). It returns a [`Decision`]: an ordered list of [`Hop`]s and the reason.
//! The PAC source plugs into the same seam by producing hops from a PAC answer. Nothing here
//! touches the network.

use std::fmt;

use ipnet::IpNet;

use crate::target::{Host, Scheme, Target};

/// The protocol spoken to an upstream proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    /// Plain HTTP proxy (`PROXY`, `HTTP`, `http://`).
    Http,
    /// HTTP proxy reached over TLS (`HTTPS`, `https://`).
    Https,
    Socks4,
    Socks5,
}

impl ProxyKind {
    pub fn default_port(self) -> u16 {
        match self {
            ProxyKind::Http => 80,
            ProxyKind::Https => 443,
            ProxyKind::Socks4 | ProxyKind::Socks5 => 1080,
        }
    }
    pub fn url_scheme(self) -> &'static str {
        match self {
            ProxyKind::Http => "http",
            ProxyKind::Https => "https",
            ProxyKind::Socks4 => "socks4",
            ProxyKind::Socks5 => "socks5",
        }
    }
}

/// An upstream proxy's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyAddr {
    pub kind: ProxyKind,
    pub host: Host,
    pub port: u16,
}

impl ProxyAddr {
    /// Parses `http://host:port`, `https://...`, `socks5://...`, `socks4://...` or bare
    /// `host:port` (HTTP). A path, query or credentials are refused.
    pub fn parse(s: &str) -> Result<ProxyAddr, String> {
        let (kind, rest) = match s.split_once("://") {
            Some((scheme, rest)) => {
                let kind = match scheme.to_ascii_lowercase().as_str() {
                    "http" => ProxyKind::Http,
                    "https" => ProxyKind::Https,
                    "socks4" | "socks4a" => ProxyKind::Socks4,
                    "socks5" | "socks5h" | "socks" => ProxyKind::Socks5,
                    other => {
                        return Err(format!(
                        "unsupported proxy scheme {other:?} (use http, https, socks4 or socks5)"
                    ))
                    }
                };
                (kind, rest)
            }
            None => (ProxyKind::Http, s),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('@') {
            return Err(
                "credentials in the proxy URL are not accepted; configure them in [auth]".into(),
            );
        }
        if rest.contains('/') || rest.contains('?') {
            return Err(format!(
                "proxy {s:?} must be scheme://host:port without a path"
            ));
        }
        let (host, port) =
            split_host_port(rest).ok_or_else(|| format!("invalid proxy address {s:?}"))?;
        let host = Host::parse(host)?;
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("invalid port in {s:?}"))?,
            None => kind.default_port(),
        };
        Ok(ProxyAddr { kind, host, port })
    }

    /// A label for metrics and logs: `host:port` (configured upstreams are a bounded set).
    pub fn label(&self) -> String {
        format!("{}:{}", self.host.to_authority_host(), self.port)
    }
}

fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let host = &s[..=end];
        let rest = &s[end + 1..];
        return match rest.strip_prefix(':') {
            Some(p) => Some((host, Some(p))),
            None if rest.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(p))),
        Some(_) => None,
        None => Some((s, None)),
    }
}

impl fmt::Display for ProxyAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.kind.url_scheme(), self.label())
    }
}

/// One way to reach a target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Hop {
    Direct,
    Proxy(ProxyAddr),
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hop::Direct => f.write_str("DIRECT"),
            Hop::Proxy(p) => write!(f, "{p}"),
        }
    }
}

/// The ordered hops to try for one request, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub hops: Vec<Hop>,
    pub reason: &'static str,
}

/// A bypass rule: targets matching it go DIRECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BypassRule {
    /// Matches one host name exactly.
    Exact(String),
    /// Matches names below the suffix (`*.corp.example` or `.corp.example`).
    Subdomains(String),
    /// Matches the name itself and every name below it (NO_PROXY's `corp.example`).
    DomainAndSubdomains(String),
    /// Matches IP literals inside the block.
    Cidr(IpNet),
    /// `<local>`: plain host names without a dot.
    Local,
    /// `*`: everything.
    All,
}

impl BypassRule {
    /// Parses a rule as written in `route.bypass`.
    pub fn parse(s: &str) -> Result<BypassRule, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty bypass rule".into());
        }
        if s == "*" {
            return Ok(BypassRule::All);
        }
        if s.eq_ignore_ascii_case("<local>") {
            return Ok(BypassRule::Local);
        }
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(BypassRule::Cidr(net));
        }
        if let Ok(ip) = s
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
        {
            return Ok(BypassRule::Cidr(IpNet::from(ip)));
        }
        let norm = |n: &str| match Host::parse(n) {
            Ok(Host::Name(n)) => Ok(n),
            _ => Err(format!("invalid bypass rule {s:?}")),
        };
        if let Some(suffix) = s.strip_prefix("*.").or_else(|| s.strip_prefix('.')) {
            return Ok(BypassRule::Subdomains(norm(suffix)?));
        }
        Ok(BypassRule::Exact(norm(s)?))
    }

    /// Parses one NO_PROXY entry (curl semantics: `corp.example` covers its subdomains too).
    pub fn parse_no_proxy(s: &str) -> Result<BypassRule, String> {
        match BypassRule::parse(s)? {
            BypassRule::Exact(n) => Ok(BypassRule::DomainAndSubdomains(n)),
            other => Ok(other),
        }
    }

    pub fn matches(&self, host: &Host) -> bool {
        match (self, host) {
            (BypassRule::All, _) => true,
            (BypassRule::Local, Host::Name(n)) => !n.contains('.'),
            (BypassRule::Exact(e), Host::Name(n)) => e == n,
            (BypassRule::Subdomains(s), Host::Name(n)) => is_below(n, s),
            (BypassRule::DomainAndSubdomains(s), Host::Name(n)) => n == s || is_below(n, s),
            (BypassRule::Cidr(net), Host::Ip(ip)) => net.contains(ip),
            _ => false,
        }
    }
}

fn is_below(name: &str, suffix: &str) -> bool {
    name.len() > suffix.len() + 1
        && name.ends_with(suffix)
        && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
}

/// The static routing rules, validated from config.
#[derive(Debug, Clone, Default)]
pub struct StaticRoutes {
    /// Upstream for `http://` requests (None = DIRECT).
    pub http_upstream: Option<ProxyAddr>,
    /// Upstream for CONNECT and `https://` requests (None = DIRECT).
    pub https_upstream: Option<ProxyAddr>,
    pub bypass: Vec<BypassRule>,
    /// `localhost` and loopback addresses always go DIRECT.
    pub bypass_loopback: bool,
}

/// The static routing decision. Pure: same inputs, same answer.
pub fn decide(target: &Target, routes: &StaticRoutes) -> Decision {
    if let Some(d) = static_bypass(target, routes) {
        return d;
    }
    let upstream = match target.scheme {
        Scheme::Http => &routes.http_upstream,
        Scheme::Https => &routes.https_upstream,
    };
    match upstream {
        Some(p) => Decision {
            hops: vec![Hop::Proxy(p.clone())],
            reason: "upstream",
        },
        None => Decision {
            hops: vec![Hop::Direct],
            reason: "direct",
        },
    }
}

/// The hops of a PAC answer, in order; proxies marked bad move to the end (still tried last).
/// Entries that cannot be used (an unparsable host) are skipped.
pub fn hops_from_pac(
    entries: &[waypost_pac::ProxyEntry],
    is_bad: impl Fn(&ProxyAddr) -> bool,
) -> Vec<Hop> {
    use waypost_pac::{ProxyEntry, ProxyKind as K};
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for e in entries {
        let hop = match e {
            ProxyEntry::Direct => Hop::Direct,
            ProxyEntry::Proxy { kind, host, port } => {
                let kind = match kind {
                    K::Http => ProxyKind::Http,
                    K::Https => ProxyKind::Https,
                    K::Socks4 => ProxyKind::Socks4,
                    K::Socks5 => ProxyKind::Socks5,
                };
                let Ok(host) = Host::parse(host) else {
                    continue;
                };
                Hop::Proxy(ProxyAddr {
                    kind,
                    host,
                    port: *port,
                })
            }
        };
        if good.contains(&hop) || bad.contains(&hop) {
            continue;
        }
        match &hop {
            Hop::Proxy(p) if is_bad(p) => bad.push(hop),
            _ => good.push(hop),
        }
    }
    good.extend(bad);
    if good.is_empty() {
        good.push(Hop::Direct);
    }
    good
}

/// Static rules that win over PAC: loopback and the bypass list. `None` = not bypassed.
pub fn static_bypass(target: &Target, routes: &StaticRoutes) -> Option<Decision> {
    if routes.bypass_loopback && target.host.is_loopback() {
        return Some(Decision {
            hops: vec![Hop::Direct],
            reason: "loopback",
        });
    }
    if routes.bypass.iter().any(|r| r.matches(&target.host)) {
        return Some(Decision {
            hops: vec![Hop::Direct],
            reason: "bypass",
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(url: &str) -> Target {
        Target::from_absolute(&url.parse().unwrap(), false).unwrap()
    }

    fn routes(bypass: &[&str]) -> StaticRoutes {
        let p = ProxyAddr::parse("http://proxy.corp.example:3128").unwrap();
        StaticRoutes {
            http_upstream: Some(p.clone()),
            https_upstream: Some(p),
            bypass: bypass
                .iter()
                .map(|b| BypassRule::parse(b).unwrap())
                .collect(),
            bypass_loopback: true,
        }
    }

    #[test]
    fn requests_go_to_the_upstream_unless_bypassed() {
        let r = routes(&["*.intra.example", "10.0.0.0/8", "<local>", "exact.example"]);
        assert_eq!(decide(&t("http://www.example.org/"), &r).reason, "upstream");
        assert_eq!(
            decide(&t("http://a.intra.example/"), &r).hops,
            vec![Hop::Direct]
        );
        assert_eq!(decide(&t("http://intra.example/"), &r).reason, "upstream");
        assert_eq!(decide(&t("http://10.1.2.3/"), &r).hops, vec![Hop::Direct]);
        assert_eq!(decide(&t("http://intranet/"), &r).hops, vec![Hop::Direct]);
        assert_eq!(
            decide(&t("http://exact.example/"), &r).hops,
            vec![Hop::Direct]
        );
        assert_eq!(
            decide(&t("http://sub.exact.example/"), &r).reason,
            "upstream"
        );
    }

    #[test]
    fn loopback_is_direct_unless_configured_otherwise() {
        let mut r = routes(&[]);
        assert_eq!(decide(&t("http://localhost:8080/"), &r).reason, "loopback");
        assert_eq!(decide(&t("http://127.0.0.1/"), &r).reason, "loopback");
        assert_eq!(decide(&t("http://[::1]/"), &r).reason, "loopback");
        r.bypass_loopback = false;
        assert_eq!(decide(&t("http://127.0.0.1/"), &r).reason, "upstream");
    }

    #[test]
    fn no_proxy_entries_cover_the_domain_and_its_subdomains() {
        let rule = BypassRule::parse_no_proxy("corp.example").unwrap();
        assert!(rule.matches(&Host::parse("corp.example").unwrap()));
        assert!(rule.matches(&Host::parse("a.corp.example").unwrap()));
        assert!(!rule.matches(&Host::parse("xcorp.example").unwrap()));
    }

    #[test]
    fn pac_answers_become_hops_with_bad_proxies_last() {
        let entries =
            waypost_pac::parse_result("PROXY a:1; PROXY b:2; SOCKS5 s:1080; DIRECT; PROXY a:1");
        let bad_a = |p: &ProxyAddr| p.label() == "a:1";
        let hops: Vec<String> = hops_from_pac(&entries, bad_a)
            .iter()
            .map(|h| h.to_string())
            .collect();
        assert_eq!(
            hops,
            ["http://b:2", "socks5://s:1080", "DIRECT", "http://a:1"]
        );
        assert_eq!(hops_from_pac(&[], |_| false), vec![Hop::Direct]);
    }

    #[test]
    fn proxy_addresses_parse_with_default_ports() {
        let p = ProxyAddr::parse("http://proxy:8080").unwrap();
        assert_eq!(p.label(), "proxy:8080");
        assert_eq!(ProxyAddr::parse("https://p.example").unwrap().port, 443);
        assert_eq!(
            ProxyAddr::parse("socks5://[::1]").unwrap().label(),
            "[::1]:1080"
        );
        assert_eq!(
            ProxyAddr::parse("p.example:3128").unwrap().kind,
            ProxyKind::Http
        );
        assert!(ProxyAddr::parse("http://u:p@proxy:1").is_err());
        assert!(ProxyAddr::parse("ftp://proxy:1").is_err());
        assert!(ProxyAddr::parse("http://proxy:1/path").is_err());
    }
}
