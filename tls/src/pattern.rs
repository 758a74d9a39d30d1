//! Host patterns as written in the TLS config: `example.com` (exact), `*.example.com`
//! (any subdomain, not the apex) and `.example.com` (the apex and any subdomain).
//!
//! Matching is pure and case-insensitive; a trailing dot on the host is ignored. This module
//! only parses and matches; it does not decide which rule wins (the policy takes the first).

use std::fmt;
use std::str::FromStr;

/// One parsed host pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Matches exactly this host.
    Exact(String),
    /// `*.suffix`: matches `a.suffix`, `a.b.suffix`, but not `suffix`.
    Subdomains(String),
    /// `.suffix`: matches `suffix` and every subdomain of it.
    Domain(String),
}

impl HostPattern {
    /// Whether `host` (a DNS name or an IP literal, any case) matches this pattern.
    pub fn matches(&self, host: &str) -> bool {
        let host = normalize(host);
        match self {
            HostPattern::Exact(h) => host == *h,
            HostPattern::Subdomains(s) => is_strict_subdomain(&host, s),
            HostPattern::Domain(s) => host == *s || is_strict_subdomain(&host, s),
        }
    }
}

fn normalize(host: &str) -> String {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn is_strict_subdomain(host: &str, suffix: &str) -> bool {
    host.len() > suffix.len() + 1
        && host.ends_with(suffix)
        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
}

/// Why a pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid host pattern {0:?} (expected host, *.suffix or .suffix)")]
pub struct PatternError(pub String);

impl FromStr for HostPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PatternError(s.to_string());
        let (kind, rest): (fn(String) -> HostPattern, &str) = if let Some(r) = s.strip_prefix("*.")
        {
            (HostPattern::Subdomains, r)
        } else if let Some(r) = s.strip_prefix('.') {
            (HostPattern::Domain, r)
        } else {
            (HostPattern::Exact, s)
        };
        let rest = normalize(rest);
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':');
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
        }
    }
}

/// Whether any pattern in `list` matches `host`.
pub fn any_matches(list: &[HostPattern], host: &str) -> bool {
    list.iter().any(|p| p.matches(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        s.parse().unwrap()
    }

    #[test]
    fn exact_pattern_matches_only_that_host_in_any_case() {
        assert!(p("Example.com").matches("example.COM."));
        assert!(!p("example.com").matches("a.example.com"));
    }

    #[test]
    fn star_pattern_matches_subdomains_but_not_the_apex() {
        assert!(p("*.example.com").matches("a.b.example.com"));
        assert!(!p("*.example.com").matches("example.com"));
        assert!(!p("*.example.com").matches("badexample.com"));
    }

    #[test]
    fn dot_pattern_matches_apex_and_subdomains() {
        assert!(p(".example.com").matches("example.com"));
        assert!(p(".example.com").matches("x.example.com"));
        assert!(!p(".example.com").matches("xexample.com"));
    }

    #[test]
    fn patterns_round_trip_through_display() {
        for s in ["a.b", "*.a.b", ".a.b", "127.0.0.1"] {
            assert_eq!(p(s).to_string(), s);
        }
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for s in ["", "*.", ".", "a..b", "a b", "*x.com", "a/b"] {
            assert!(s.parse::<HostPattern>().is_err(), "{s}");
        }
    }
}
