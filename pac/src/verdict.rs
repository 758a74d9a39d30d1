//! The return-string grammar (spec §4): `"PROXY a:8080; SOCKS5 b; DIRECT"` becomes an ordered
//! list of typed [`ProxyEntry`] values. Pure parsing: no I/O, no engine. Invalid entries are
//! dropped with a warning, never the whole list; an empty list means DIRECT.

use std::fmt;
use std::str::FromStr;

/// The protocol spoken to a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    /// Plain HTTP proxy (`PROXY` or `HTTP`), default port 80.
    Http,
    /// HTTP proxy over TLS (`HTTPS`), default port 443.
    Https,
    /// SOCKS4 (`SOCKS` or `SOCKS4`), default port 1080.
    Socks4,
    /// SOCKS5 (`SOCKS5`), default port 1080.
    Socks5,
}

impl ProxyKind {
    /// The port used when the entry names none.
    pub fn default_port(self) -> u16 {
        match self {
            ProxyKind::Http => 80,
            ProxyKind::Https => 443,
            ProxyKind::Socks4 | ProxyKind::Socks5 => 1080,
        }
    }

    /// The scheme of the proxy's URL form (`http`, `https`, `socks4`, `socks5`).
    pub fn url_scheme(self) -> &'static str {
        match self {
            ProxyKind::Http => "http",
            ProxyKind::Https => "https",
            ProxyKind::Socks4 => "socks4",
            ProxyKind::Socks5 => "socks5",
        }
    }

    /// The canonical keyword (`PROXY`, `HTTPS`, `SOCKS4`, `SOCKS5`).
    pub fn keyword(self) -> &'static str {
        match self {
            ProxyKind::Http => "PROXY",
            ProxyKind::Https => "HTTPS",
            ProxyKind::Socks4 => "SOCKS4",
            ProxyKind::Socks5 => "SOCKS5",
        }
    }
}

/// One hop choice from a PAC result, in the order the script gave.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProxyEntry {
    /// Connect without a proxy.
    Direct,
    /// Go through a proxy. `host` is canonical (lower-case, punycode, IPv6 without brackets).
    Proxy {
        /// Protocol spoken to the proxy.
        kind: ProxyKind,
        /// Host name or IP address, without brackets.
        host: String,
        /// Port, with the kind's default filled in.
        port: u16,
    },
}

impl fmt::Display for ProxyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyEntry::Direct => f.write_str("DIRECT"),
            ProxyEntry::Proxy { kind, host, port } if host.contains(':') => {
                write!(f, "{} [{host}]:{port}", kind.keyword())
            }
            ProxyEntry::Proxy { kind, host, port } => write!(f, "{} {host}:{port}", kind.keyword()),
        }
    }
}

/// Why one entry of a PAC result was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// The entry is empty.
    #[error("empty entry")]
    Empty,
    /// The type keyword is not one waypost knows.
    #[error("unknown proxy type {0:?}")]
    UnknownType(String),
    /// `DIRECT` followed by something.
    #[error("DIRECT takes no host")]
    DirectWithHost,
    /// A proxy type without a host.
    #[error("missing host")]
    MissingHost,
    /// The host or port is malformed.
    #[error("invalid host or port {0:?}")]
    BadHost(String),
}

fn is_space(c: char) -> bool {
    c.is_ascii_whitespace()
}

impl FromStr for ProxyEntry {
    type Err = EntryError;

    fn from_str(entry: &str) -> Result<Self, EntryError> {
        let entry = entry.trim_matches(is_space);
        if entry.is_empty() {
            return Err(EntryError::Empty);
        }
        let (keyword, rest) = match entry.find(is_space) {
            Some(i) => (&entry[..i], entry[i..].trim_matches(is_space)),
            None => (entry, ""),
        };
        let is = |word: &str| keyword.eq_ignore_ascii_case(word);
        let kind = if is("DIRECT") {
            return if rest.is_empty() {
                Ok(ProxyEntry::Direct)
            } else {
                Err(EntryError::DirectWithHost)
            };
        } else if is("PROXY") || is("HTTP") {
            ProxyKind::Http
        } else if is("HTTPS") {
            ProxyKind::Https
        } else if is("SOCKS") || is("SOCKS4") {
            ProxyKind::Socks4
        } else if is("SOCKS5") {
            ProxyKind::Socks5
        } else {
            return Err(EntryError::UnknownType(keyword.to_string()));
        };
        if rest.is_empty() {
            return Err(EntryError::MissingHost);
        }
        let (host, port) = parse_host_port(rest, kind.default_port())
            .ok_or_else(|| EntryError::BadHost(rest.to_string()))?;
        Ok(ProxyEntry::Proxy { kind, host, port })
    }
}

/// Splits `host[:port]` / `[v6][:port]` and canonicalises the host.
fn parse_host_port(text: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(inner) = text.strip_prefix('[') {
        let end = inner.find(']')?;
        let after = &inner[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (&text[..end + 2], port)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
        Some(_) => return None,
    };
    if host.is_empty() || host.contains(|c: char| is_space(c) || "/@?#\\".contains(c)) {
        return None;
    }
    if let Some(canonical) = plain_host(host) {
        return Some((canonical, port));
    }
    let canonical = match url::Host::parse(host).ok()? {
        // The IDNA mapping can produce ASCII a proxy name never has: U+037E (Greek question
        // mark) becomes `;`, the entry separator, so the printed answer would not read back.
        url::Host::Domain(d)
            if d.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) =>
        {
            d
        }
        url::Host::Domain(_) => return None,
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    };
    Some((canonical, port))
}

/// The canonical form of the hosts PAC results nearly always name, without the URL host parser
/// (IDNA mapping): `Some` only where that parser is known to give the same answer, i.e.
/// - a dotted-decimal IPv4 address without leading zeros (WHATWG reads those parts as decimal
///   too, and prints the address the same way), or
/// - a lower-case ASCII name of letters, digits, `-` and `.`, without punycode labels, whose
///   last label starts with a letter (so it is no IPv4 number), not ending in a dot: IDNA
///   leaves such a name as it is.
fn plain_host(host: &str) -> Option<String> {
    let bytes = host.as_bytes();
    if bytes.is_empty() || bytes.len() > 253 {
        return None;
    }
    if bytes.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
        let leading_zero = host
            .split('.')
            .any(|part| part.len() > 1 && part.starts_with('0'));
        if leading_zero {
            return None;
        }
        // Valid, and without leading zeros the address prints as written.
        return host
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .map(|_| host.to_string());
    }
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'.';
    if !bytes.iter().all(allowed) || host.ends_with('.') {
        return None;
    }
    if host.split('.').any(|label| label.starts_with("xn--")) {
        return None;
    }
    let last = host.rsplit('.').next()?;
    if !last.as_bytes().first()?.is_ascii_lowercase() {
        return None;
    }
    Some(host.to_string())
}

/// Parses a whole PAC result. Invalid entries are dropped with a warning; when nothing valid
/// remains the answer is `[DIRECT]`. Order and duplicates are kept.
pub fn parse_result(result: &str) -> Vec<ProxyEntry> {
    let mut entries = Vec::new();
    for part in result.split(';') {
        if part.trim_matches(is_space).is_empty() {
            continue;
        }
        match part.parse::<ProxyEntry>() {
            Ok(entry) => entries.push(entry),
            Err(err) => tracing::warn!(entry = part.trim(), %err, "dropping invalid PAC entry"),
        }
    }
    if entries.is_empty() {
        entries.push(ProxyEntry::Direct);
    }
    entries
}

/// Renders a list back into a PAC result string (`"PROXY a:80; DIRECT"`).
pub fn format_result(entries: &[ProxyEntry]) -> String {
    entries
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn proxy(kind: ProxyKind, host: &str, port: u16) -> ProxyEntry {
        ProxyEntry::Proxy {
            kind,
            host: host.into(),
            port,
        }
    }

    #[test]
    fn default_ports_are_filled_in_per_type() {
        assert_eq!(
            parse_result("PROXY a; HTTPS b; SOCKS c; SOCKS5 d; HTTP e"),
            vec![
                proxy(ProxyKind::Http, "a", 80),
                proxy(ProxyKind::Https, "b", 443),
                proxy(ProxyKind::Socks4, "c", 1080),
                proxy(ProxyKind::Socks5, "d", 1080),
                proxy(ProxyKind::Http, "e", 80),
            ]
        );
    }

    #[test]
    fn keywords_are_case_insensitive_and_hosts_lower_cased() {
        assert_eq!(
            parse_result("pRoXy FOO.Example:3128"),
            vec![proxy(ProxyKind::Http, "foo.example", 3128)]
        );
        assert_eq!(parse_result("direct"), vec![ProxyEntry::Direct]);
    }

    #[test]
    fn whitespace_and_empty_entries_are_tolerated() {
        assert_eq!(
            parse_result(" ;\tPROXY  a:1 \t;;\n DIRECT ; "),
            vec![proxy(ProxyKind::Http, "a", 1), ProxyEntry::Direct]
        );
    }

    #[test]
    fn invalid_entries_are_dropped_but_the_rest_kept() {
        assert_eq!(
            parse_result("PROXY-foo:1; QUIC q:443; PROXY a:99999; PROXY b:; DIRECT x:1; PROXY c:8"),
            vec![proxy(ProxyKind::Http, "c", 8)]
        );
    }

    #[test]
    fn nothing_valid_means_direct() {
        for s in ["", "  ", "PROXY", "PROXY-foopy:10", "garbage"] {
            assert_eq!(parse_result(s), vec![ProxyEntry::Direct], "{s:?}");
        }
    }

    #[test]
    fn duplicates_and_order_are_preserved() {
        assert_eq!(
            parse_result("DIRECT ; proxy foopy1 ; DIRECT"),
            vec![
                ProxyEntry::Direct,
                proxy(ProxyKind::Http, "foopy1", 80),
                ProxyEntry::Direct
            ]
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed_in_display_and_canonicalised() {
        let e = parse_result("SOCKS5 [0:0::1]:1080");
        assert_eq!(e, vec![proxy(ProxyKind::Socks5, "::1", 1080)]);
        assert_eq!(e[0].to_string(), "SOCKS5 [::1]:1080");
        assert_eq!(parse_result("PROXY ::1"), vec![ProxyEntry::Direct]);
    }

    #[test]
    fn whatwg_ipv4_forms_are_canonicalised() {
        assert_eq!(
            parse_result("PROXY 0x0A.0.0.1:8080"),
            vec![proxy(ProxyKind::Http, "10.0.0.1", 8080)]
        );
    }

    #[test]
    fn userinfo_paths_and_schemes_are_rejected() {
        for s in [
            "PROXY u@h:1",
            "PROXY h:1/x",
            "PROXY http://h:1",
            "PROXY a b",
        ] {
            assert_eq!(parse_result(s), vec![ProxyEntry::Direct], "{s:?}");
        }
    }

    #[test]
    fn a_host_whose_idn_mapping_yields_a_separator_is_dropped() {
        // fuzz/pac_verdict: U+037E maps to `;`; the entry printed back read as two entries
        let text = "proxy   B\u{ff}B\u{fc}char.examxy.\u{37e}B\u{fc}cher";
        assert_eq!(parse_result(text), vec![ProxyEntry::Direct]);
        assert_eq!(
            parse_result("PROXY b\u{fc}cher.example:80"),
            vec![proxy(ProxyKind::Http, "xn--bcher-kva.example", 80)]
        );
    }

    #[test]
    fn a_comma_is_not_a_separator() {
        assert_eq!(
            parse_result("PROXY a:1, PROXY b:2"),
            vec![ProxyEntry::Direct]
        );
    }

    fn arb_entry() -> impl Strategy<Value = ProxyEntry> {
        let kind = prop_oneof![
            Just(ProxyKind::Http),
            Just(ProxyKind::Https),
            Just(ProxyKind::Socks4),
            Just(ProxyKind::Socks5)
        ];
        let host = prop_oneof![
            "[a-z][a-z0-9]{0,10}(\\.[a-z][a-z0-9]{0,6}){0,3}",
            any::<[u8; 4]>().prop_map(|b| std::net::Ipv4Addr::from(b).to_string()),
            any::<[u16; 8]>().prop_map(|s| std::net::Ipv6Addr::from(s).to_string()),
        ];
        prop_oneof![
            Just(ProxyEntry::Direct),
            (kind, host, any::<u16>()).prop_map(|(kind, host, port)| ProxyEntry::Proxy {
                kind,
                host,
                port
            }),
        ]
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(entries in proptest::collection::vec(arb_entry(), 1..6)) {
            let text = format_result(&entries);
            prop_assert_eq!(parse_result(&text), entries.clone());
            for e in &entries {
                let reparsed = e.to_string().parse::<ProxyEntry>();
                prop_assert_eq!(reparsed.as_ref(), Ok(e));
            }
        }

        #[test]
        fn the_plain_host_shortcut_agrees_with_the_url_host_parser(
            host in "([a-z0-9.-]|xn--|0x|00|[A-Z_])(([a-z0-9.-]|xn--|0x|00|[A-Z_]){0,24})"
        ) {
            if let Some(fast) = plain_host(&host) {
                let slow = match url::Host::parse(&host) {
                    Ok(url::Host::Domain(d)) => Some(d),
                    Ok(url::Host::Ipv4(ip)) => Some(ip.to_string()),
                    Ok(url::Host::Ipv6(ip)) => Some(ip.to_string()),
                    Err(_) => None,
                };
                prop_assert_eq!(Some(fast), slow);
            }
        }

        #[test]
        fn parsing_never_panics_and_never_returns_empty(s in "\\PC{0,40}") {
            prop_assert!(!parse_result(&s).is_empty());
        }
    }
}
