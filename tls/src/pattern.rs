//! Destination patterns, the one syntax every per-destination list of waypost uses (`[[scopes]]`
//! `match`, `route.bypass`, the TLS host lists): [`HostPattern`] is `example.com` (exact),
//! `*.example.com` (any subdomain, not the apex), `.example.com` (the apex and any subdomain),
//! an IP literal or a CIDR block; [`DestPattern`] is a host pattern with an optional port
//! (`host:8443`, `[::1]:8443`, `*.corp.example:443`).
//!
//! Matching is pure, case-insensitive and allocates nothing; a trailing dot on the host is
//! ignored. This module only parses and matches; which of several matching entries wins is the
//! caller's rule (waypost's: the first).

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use std::str::FromStr;

/// One parsed host pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Matches exactly this host name (lowercase, no trailing dot).
    Exact(String),
    /// `*.suffix`: matches `a.suffix`, `a.b.suffix`, but not `suffix`.
    Subdomains(String),
    /// `.suffix`: matches `suffix` and every subdomain of it.
    Domain(String),
    /// An IP literal (a block of one address) or a CIDR block: matches IP hosts inside it.
    Cidr(IpNet),
}

impl HostPattern {
    /// Whether `host` (a DNS name or an IP literal, any case, brackets allowed) matches.
    pub fn matches(&self, host: &str) -> bool {
        let host = trim(host);
        if let HostPattern::Cidr(_) = self {
            return host.parse::<IpAddr>().is_ok_and(|ip| self.matches_ip(ip));
        }
        self.matches_name(host)
    }

    /// Whether the host name `name` (no brackets) matches; an IP pattern matches no name.
    pub fn matches_name(&self, name: &str) -> bool {
        let name = name.strip_suffix('.').unwrap_or(name);
        match self {
            HostPattern::Exact(h) => name.eq_ignore_ascii_case(h),
            HostPattern::Subdomains(s) => is_strict_subdomain(name, s),
            HostPattern::Domain(s) => name.eq_ignore_ascii_case(s) || is_strict_subdomain(name, s),
            HostPattern::Cidr(_) => false,
        }
    }

    /// Whether the IP host `ip` matches (only IP and CIDR patterns do).
    pub fn matches_ip(&self, ip: IpAddr) -> bool {
        matches!(self, HostPattern::Cidr(net) if net.contains(&ip))
    }

    /// Whether every host this pattern matches is matched by `other` too (for "shadowed by an
    /// earlier entry" warnings; conservative: false when unsure).
    pub fn within(&self, other: &HostPattern) -> bool {
        use HostPattern::*;
        match (self, other) {
            (_, _) if self == other => true,
            (Exact(h), _) => other.matches_name(h),
            (Subdomains(s), Subdomains(o)) | (Subdomains(s), Domain(o)) => {
                s.eq_ignore_ascii_case(o) || is_strict_subdomain(s, o)
            }
            (Domain(s), Domain(o)) => is_strict_subdomain(s, o),
            (Domain(s), Subdomains(o)) => is_strict_subdomain(s, o),
            (Cidr(net), Cidr(o)) => o.contains(net),
            _ => false,
        }
    }
}

fn trim(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn is_strict_subdomain(host: &str, suffix: &str) -> bool {
    host.len() > suffix.len() + 1
        && host.as_bytes()[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
}

/// Why a pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid host pattern {0:?} (expected host, *.suffix, .suffix, an IP or a CIDR block)")]
pub struct PatternError(pub String);

impl FromStr for HostPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PatternError(s.to_string());
        let bare = trim(s);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(HostPattern::Cidr(IpNet::from(ip)));
        }
        if bare.contains('/') {
            return bare.parse().map(HostPattern::Cidr).map_err(|_| bad());
        }
        let (kind, rest): (fn(String) -> HostPattern, &str) = if let Some(r) = s.strip_prefix("*.")
        {
            (HostPattern::Subdomains, r)
        } else if let Some(r) = s.strip_prefix('.') {
            (HostPattern::Domain, r)
        } else {
            (HostPattern::Exact, s)
        };
        let rest = rest.trim_end_matches('.').to_ascii_lowercase();
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
        if rest.is_empty() || !rest.chars().all(valid_char) || rest.contains("..") {
            return Err(bad());
        }
        Ok(kind(rest))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Subdomains(s) => write!(f, "*.{s}"),
            HostPattern::Domain(s) => write!(f, ".{s}"),
            HostPattern::Cidr(net) if net.prefix_len() == net.max_prefix_len() => {
                write!(f, "{}", net.addr())
            }
            HostPattern::Cidr(net) => write!(f, "{net}"),
        }
    }
}

/// Whether any pattern in `list` matches `host`.
pub fn any_matches(list: &[HostPattern], host: &str) -> bool {
    list.iter().any(|p| p.matches(host))
}

/// A destination pattern: a host pattern and, optionally, the one port it applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DestPattern {
    pub host: HostPattern,
    /// None: any port.
    pub port: Option<u16>,
}

impl DestPattern {
    /// Whether `host` (name or IP literal, brackets allowed) on `port` matches.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        self.port.is_none_or(|p| p == port) && self.host.matches(host)
    }

    /// Whether every destination this pattern matches is matched by `other` too.
    pub fn within(&self, other: &DestPattern) -> bool {
        (other.port.is_none() || other.port == self.port) && self.host.within(&other.host)
    }
}

impl FromStr for DestPattern {
    type Err = PatternError;

    /// `host`, `host:port`, `[v6]`, `[v6]:port`, `10.0.0.0/8`, `10.0.0.0/8:443`; a bare IPv6
    /// address (more than one colon) has no port.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PatternError(s.to_string());
        let s = s.trim();
        let (host, port) = match s.strip_prefix('[') {
            Some(r) => {
                let (h, after) = r.split_once(']').ok_or_else(bad)?;
                match after {
                    "" => (h, None),
                    p => (h, Some(p.strip_prefix(':').ok_or_else(bad)?)),
                }
            }
            None if s.matches(':').count() == 1 => {
                let (h, p) = s.split_once(':').ok_or_else(bad)?;
                (h, Some(p))
            }
            None => (s, None),
        };
        let port = match port {
            None => None,
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?),
        };
        let host = host.parse().map_err(|_| bad())?;
        Ok(DestPattern { host, port })
    }
}

impl fmt::Display for DestPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v6 = matches!(self.host, HostPattern::Cidr(IpNet::V6(_)));
        match (self.port, v6) {
            (None, _) => write!(f, "{}", self.host),
            (Some(p), true) => write!(f, "[{}]:{p}", self.host),
            (Some(p), false) => write!(f, "{}:{p}", self.host),
        }
    }
}

#[cfg(test)]
#[path = "pattern_tests.rs"]
mod tests;
