//! `[[auth.proxies]]` match patterns: `host[:port]` with `*.suffix` and `*` hosts and `*`
//! ports ([`ProxyPattern`]). Below the config that validates them and the identities that
//! choose by them.

use std::net::IpAddr;

/// The host part of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// `*`: every host.
    Any,
    /// `*.corp.example` (or `.corp.example`): every name below `corp.example`, not itself.
    Suffix(String),
    /// One name or address, compared case-insensitively without a trailing dot.
    Exact(String),
}

/// `host[:port]` of a `[[auth.proxies]]` entry's `match`. Port omitted or `*` = any port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPattern {
    host: HostPattern,
    port: Option<u16>,
    text: String,
}

fn normalize(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

impl ProxyPattern {
    /// Parses `proxy.corp:8080`, `*.corp`, `*:3128`, `10.1.2.3`, `[::1]:3128`, `*`.
    pub fn parse(text: &str) -> Result<ProxyPattern, String> {
        let t = text.trim();
        let bad = |why: &str| {
            Err(format!(
                "{text:?} {why}; write host[:port] like \"proxy.corp.example:8080\", \"*.corp.example\" or \"*:3128\""
            ))
        };
        if t.is_empty() {
            return bad("is empty");
        }
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            match rest.split_once(']') {
                Some((h, "")) => (h, None),
                Some((h, p)) => match p.strip_prefix(':') {
                    Some(p) => (h, Some(p)),
                    None => return bad("has text after the IPv6 address"),
                },
                None => return bad("has no closing ]"),
            }
        } else if t.matches(':').count() > 1 {
            if t.parse::<IpAddr>().is_err() {
                return bad("is not a host");
            }
            (t, None)
        } else {
            match t.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (t, None),
            }
        };
        let port = match port {
            None | Some("*") => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return bad("has no valid port (1-65535 or *)"),
            },
        };
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(s) = host.strip_prefix("*.").or_else(|| host.strip_prefix('.')) {
            HostPattern::Suffix(normalize(s))
        } else {
            HostPattern::Exact(normalize(host))
        };
        if let HostPattern::Suffix(h) | HostPattern::Exact(h) = &host {
            if h.is_empty() || h.contains(['*', '/', ' ', '@']) {
                return bad("is not a host name, an address or *.suffix");
            }
        }
        Ok(ProxyPattern {
            host,
            port,
            text: t.to_string(),
        })
    }

    /// Whether the proxy `host:port` (as configured, never a resolved address) fits.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = normalize(host);
        match &self.host {
            HostPattern::Any => true,
            HostPattern::Suffix(s) => host.ends_with(&format!(".{s}")),
            HostPattern::Exact(h) => *h == host,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}
