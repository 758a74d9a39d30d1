//! The routing part of the configuration: the fixed upstreams and the bypass list, parsed.
//!
//! Typed values only; [`crate::route`] reads them to decide. Nothing here touches the network.

use waypost_tls::pattern::HostPattern;

use super::scopes::host_matches;
use crate::target::{Host, ProxyAddr};

/// A bypass rule: targets matching it go DIRECT. Host rules are destination patterns
/// ([`HostPattern`], matched by [`host_matches`]: the one matcher of every per-destination
/// list); a bypass `.suffix` means the subdomains only, as `*.suffix` (WinHTTP's reading).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BypassRule {
    /// A host name, `*.suffix`, a NO_PROXY domain (apex and subdomains), an IP or a CIDR block.
    Host(HostPattern),
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
        let bare = s.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<std::net::IpAddr>().is_ok() || s.contains('/') {
            return bare
                .parse::<HostPattern>()
                .map(BypassRule::Host)
                .map_err(|_| {
                    format!(
                        "invalid bypass rule {}",
                        crate::redact::value("route.bypass", s)
                    )
                });
        }
        let norm = |n: &str| match Host::parse(n) {
            Ok(Host::Name(n)) => Ok(n),
            _ => Err(format!(
                "invalid bypass rule {}",
                crate::redact::value("route.bypass", s)
            )),
        };
        if let Some(suffix) = s.strip_prefix("*.").or_else(|| s.strip_prefix('.')) {
            return Ok(BypassRule::Host(HostPattern::Subdomains(norm(suffix)?)));
        }
        Ok(BypassRule::Host(HostPattern::Exact(norm(s)?)))
    }

    /// Parses one NO_PROXY entry (curl semantics: `corp.example` covers its subdomains too).
    pub fn parse_no_proxy(s: &str) -> Result<BypassRule, String> {
        match BypassRule::parse(s)? {
            BypassRule::Host(HostPattern::Exact(n)) => Ok(BypassRule::Host(HostPattern::Domain(n))),
            other => Ok(other),
        }
    }

    pub fn matches(&self, host: &Host) -> bool {
        match (self, host) {
            (BypassRule::All, _) => true,
            (BypassRule::Local, Host::Name(n)) => !n.contains('.'),
            (BypassRule::Local, Host::Ip(_)) => false,
            (BypassRule::Host(p), h) => host_matches(p, h),
        }
    }
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
