//! The routing part of the configuration: the fixed upstreams and the bypass list, parsed.
//!
//! Typed values only; [`crate::route`] reads them to decide. Nothing here touches the network.

use ipnet::IpNet;

use crate::target::{Host, ProxyAddr};

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
            _ => Err(format!(
                "invalid bypass rule {}",
                crate::redact::value("route.bypass", s)
            )),
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
