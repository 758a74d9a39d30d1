//! Where a client wants to go: the parsed, normalised target of a request.
//!
//! Absolute-form URIs (`GET http://host/path`) and CONNECT authorities (`host:443`, `[::1]:8080`)
//! become a [`Target`]: scheme, host (a lower-case ASCII name, IDN converted to punycode, or an IP
//! address) and port. Parsing is pure; nothing here resolves or connects.

use std::fmt;
use std::net::IpAddr;

use http::Uri;

use crate::error::{ErrorKind, ProxyError};

/// The WHATWG URL standard's IPv4 parser: `Ok(None)` when `host` does not end in a number
/// (a name), `Ok(Some)` for 1-4 dot-separated parts in decimal, `0x` hex or `0` octal (the last
/// part fills the remaining bytes), an error for a number that does not fit.
fn whatwg_ipv4(host: &str) -> Result<Option<std::net::Ipv4Addr>, String> {
    let parts: Vec<&str> = host.split('.').collect();
    let number = |p: &str| -> Option<u64> {
        let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X"))
        {
            (h, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            (&p[1..], 8)
        } else {
            (p, 10)
        };
        if digits.is_empty() {
            return (radix == 16).then_some(0);
        }
        if digits.len() > 20 {
            return Some(u64::MAX);
        }
        u64::from_str_radix(digits, radix).ok()
    };
    // only a host whose last label is a number is an address (`1.example` is a name)
    let last = parts.last().copied().unwrap_or("");
    let is_number = !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit())
            || number(last).is_some() && (last.starts_with("0x") || last.starts_with("0X")));
    if !is_number {
        return Ok(None);
    }
    let bad = || format!("invalid IPv4 address {host:?}");
    if parts.len() > 4 {
        return Err(bad());
    }
    let numbers: Vec<u64> = parts
        .iter()
        .map(|p| number(p).ok_or_else(bad))
        .collect::<Result<_, _>>()?;
    let (init, last) = numbers.split_at(numbers.len() - 1);
    if init.iter().any(|n| *n > 255) || last[0] >= 1u64 << (8 * (5 - numbers.len())) {
        return Err(bad());
    }
    let mut addr = last[0];
    for (i, n) in init.iter().enumerate() {
        addr += n << (8 * (3 - i));
    }
    Ok(Some(std::net::Ipv4Addr::from(addr as u32)))
}

/// A host as waypost uses it: a normalised DNS name or an IP literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// Parses a host as written in a URL or config: `[v6]`, v4, or a name (IDN allowed,
    /// percent-encoded UTF-8 allowed).
    pub fn parse(raw: &str) -> Result<Host, String> {
        if raw.is_empty() {
            return Err("empty host".into());
        }
        if let Some(inner) = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            return inner
                .parse::<std::net::Ipv6Addr>()
                .map(|ip| Host::Ip(IpAddr::V6(ip)))
                .map_err(|_| format!("invalid IPv6 literal {raw}"));
        }
        if let Ok(ip) = raw.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        let decoded =
            percent_decode(raw).ok_or_else(|| format!("invalid percent-encoding in host {raw}"))?;
        let ascii =
            idna::domain_to_ascii(&decoded).map_err(|_| format!("invalid host name {raw}"))?;
        let ascii = ascii.trim_end_matches('.').to_string();
        if ascii.is_empty() || ascii.len() > 253 {
            return Err(format!("invalid host name {raw}"));
        }
        // The IDNA mapping (non-strict, as browsers) lets through ASCII that no DNS name has:
        // a percent-decoded CR LF, NUL, `/`, `:` or `[` would end up in a CONNECT line or Host
        // header upstream. Letters, digits, `-`, `_` (intranet names) and dots only.
        let dns_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
        if !ascii.bytes().all(dns_byte) {
            return Err(format!("invalid host name {raw:?}"));
        }
        // `127.0.0.1.` (a trailing dot, or an IDN full stop) is still an address: as a name it
        // would slip past every check made on addresses (loopback, allow lists, CIDR rules).
        if let Ok(ip) = ascii.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        // `127.1`, `2130706433`, `0x7f.0.0.1`, `0177.0.0.1`: what browsers, curl and the C
        // resolver read as IPv4 addresses is one here too (the WHATWG URL standard's IPv4 parser),
        // so that no numeric spelling of an address slips past the checks made on addresses.
        if let Some(v4) = whatwg_ipv4(&ascii)? {
            return Ok(Host::Ip(IpAddr::V4(v4)));
        }
        Ok(Host::Name(ascii))
    }

    /// True for `localhost`, `*.localhost` and loopback addresses.
    pub fn is_loopback(&self) -> bool {
        match self {
            Host::Ip(ip) => ip.is_loopback(),
            Host::Name(n) => n == "localhost" || n.ends_with(".localhost"),
        }
    }

    /// The host as it appears inside a URL authority (IPv6 bracketed).
    pub fn to_authority_host(&self) -> String {
        match self {
            Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
            Host::Ip(ip) => ip.to_string(),
            Host::Name(n) => n.clone(),
        }
    }
}

impl fmt::Display for Host {
    /// Without brackets, as PAC scripts and logs want it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A destination: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub scheme: Scheme,
    pub host: Host,
    pub port: u16,
}

impl Target {
    /// `host:port` with IPv6 bracketed, as used in CONNECT lines and Host headers.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host.to_authority_host(), self.port)
    }

    /// The Host header value: the port is omitted when it is the scheme's default.
    pub fn host_header(&self) -> String {
        if self.port == self.scheme.default_port() {
            self.host.to_authority_host()
        } else {
            self.authority()
        }
    }

    /// Parses an absolute-form request URI. `reject_userinfo` turns `user:pass@` into an error.
    pub fn from_absolute(uri: &Uri, reject_userinfo: bool) -> Result<Target, ProxyError> {
        let scheme = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => Scheme::Http,
            Some(s) if s.eq_ignore_ascii_case("https") => Scheme::Https,
            Some(s) => {
                return Err(ProxyError::bad_request(format!(
                    "unsupported URL scheme {s:?}"
                )))
            }
            None => {
                return Err(ProxyError::bad_request(
                    "request target is not an absolute URL",
                ))
            }
        };
        let auth = uri
            .authority()
            .ok_or_else(|| ProxyError::bad_request("URL has no host"))?;
        let auth_str = auth.as_str();
        if let Some(at) = auth_str.rfind('@') {
            if reject_userinfo {
                return Err(ProxyError::new(
                    ErrorKind::UserPwdInUrl,
                    "URL contains user:password@ (reject_userpwd_in_url is on)",
                ));
            }
            let _ = at;
        }
        let host = Host::parse(auth.host()).map_err(ProxyError::bad_request)?;
        let port = match auth.port_u16() {
            Some(0) => return Err(ProxyError::bad_request("port 0 is not a valid destination")),
            Some(p) => p,
            None if auth_str.ends_with(':') => scheme.default_port(),
            None => scheme.default_port(),
        };
        Ok(Target { scheme, host, port })
    }

    /// Parses a CONNECT authority `host:port`; the port is mandatory.
    pub fn from_connect(authority: &str) -> Result<Target, ProxyError> {
        let bad =
            |why: &str| ProxyError::bad_request(format!("bad CONNECT target {authority:?}: {why}"));
        if authority.contains('@') {
            return Err(bad("user info is not allowed"));
        }
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| bad("missing port"))?;
        let port: u16 = port.parse().map_err(|_| bad("invalid port"))?;
        if port == 0 {
            return Err(bad("port 0"));
        }
        if host.contains(':') && !host.starts_with('[') {
            return Err(bad("IPv6 literals must be in brackets"));
        }
        let host = Host::parse(host).map_err(|e| bad(&e))?;
        Ok(Target {
            scheme: Scheme::Https,
            host,
            port,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.authority())
    }
}

/// The protocol spoken to an upstream proxy: the PAC grammar's own ([`waypost_pac::ProxyKind`]),
/// one type for proxies named by a script and by the configuration.
pub use waypost_pac::ProxyKind;

/// An upstream proxy's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyAddr {
    pub kind: ProxyKind,
    pub host: Host,
    pub port: u16,
}

impl ProxyAddr {
    /// Parses `http://host:port`, `https://...`, `socks5://...`, `socks4://...` or bare
    /// `host:port` (HTTP). A path, query or credentials are refused; an error quotes `s`
    /// without its userinfo and query (a proxy URL comes from config, the environment or a PAC
    /// script, and may carry a token).
    pub fn parse(s: &str) -> Result<ProxyAddr, String> {
        let shown = |s: &str| format!("{:?}", crate::redact::url(s));
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
                "proxy {} must be scheme://host:port without a path",
                shown(s)
            ));
        }
        let (host, port) =
            split_host_port(rest).ok_or_else(|| format!("invalid proxy address {}", shown(s)))?;
        let host = Host::parse(host)?;
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("invalid port in {}", shown(s)))?,
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

#[cfg(test)]
mod tests {

    #[test]
    fn numeric_spellings_of_an_ipv4_address_are_that_address() {
        for (spelling, ip) in [
            ("127.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("0x7f.0.0.1", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("127.0.1", "127.0.0.1"),
            ("0", "0.0.0.0"),
            ("10.0x10.513", "10.16.2.1"),
        ] {
            assert_eq!(
                Host::parse(spelling),
                Ok(Host::Ip(ip.parse().unwrap())),
                "{spelling}"
            );
        }
        for name in ["1.example", "a1", "0x.example", "123abc"] {
            assert!(matches!(Host::parse(name), Ok(Host::Name(_))), "{name}");
        }
        for bad in [
            "256.0.0.1.1",
            "1.2.3.4.5",
            "4294967296",
            "1.256.0.0",
            "09.1",
            "example.0x",
        ] {
            assert!(Host::parse(bad).is_err(), "{bad}");
        }
    }

    use super::*;

    fn abs(s: &str) -> Result<Target, ProxyError> {
        Target::from_absolute(&s.parse().unwrap(), true)
    }

    #[test]
    fn absolute_urls_get_default_ports_and_lower_case_hosts() {
        let t = abs("http://Example.COM/x").unwrap();
        assert_eq!(t.host, Host::Name("example.com".into()));
        assert_eq!(t.port, 80);
        assert_eq!(abs("https://example.com/").unwrap().port, 443);
        assert_eq!(
            abs("http://example.com:8080/").unwrap().host_header(),
            "example.com:8080"
        );
    }

    #[test]
    fn ipv6_literals_parse_in_urls_and_connect_authorities() {
        let t = abs("http://[::1]:8080/").unwrap();
        assert_eq!(t.host, Host::Ip("::1".parse().unwrap()));
        assert_eq!(t.authority(), "[::1]:8080");
        let c = Target::from_connect("[2001:db8::1]:443").unwrap();
        assert_eq!(c.host.to_string(), "2001:db8::1");
        assert!(Target::from_connect("2001:db8::1:443").is_err());
    }

    #[test]
    fn idn_names_become_punycode() {
        assert_eq!(
            Host::parse("bücher.example").unwrap(),
            Host::Name("xn--bcher-kva.example".into())
        );
        assert_eq!(
            Host::parse("b%C3%BCcher.example").unwrap(),
            Host::Name("xn--bcher-kva.example".into())
        );
    }

    #[test]
    fn credentials_in_urls_are_rejected_when_configured() {
        let e = abs("http://u:p@example.com/").unwrap_err();
        assert_eq!(e.kind, ErrorKind::UserPwdInUrl);
        assert!(abs("http://:@example.com/").is_err());
        assert!(Target::from_absolute(&"http://u:p@example.com/".parse().unwrap(), false).is_ok());
    }

    #[test]
    fn connect_requires_a_port_and_rejects_garbage() {
        assert!(Target::from_connect("example.com").is_err());
        assert!(Target::from_connect("example.com:0").is_err());
        assert!(Target::from_connect("example.com:99999").is_err());
        assert_eq!(Target::from_connect("example.com:443").unwrap().port, 443);
    }

    #[test]
    fn host_names_with_control_characters_or_delimiters_are_refused_even_percent_encoded() {
        for raw in [
            "a%0d%0ax-injected:%201.example",
            "a%00b.example",
            "evil%2Fpath.example",
            "a%20b.example",
            "a%3Bb.example",
            "a\u{1}b.example",
        ] {
            assert!(
                Host::parse(raw).is_err(),
                "{raw:?} -> {:?}",
                Host::parse(raw)
            );
        }
        assert_eq!(
            Host::parse("intra_net-1.Example").unwrap(),
            Host::Name("intra_net-1.example".into())
        );
    }

    #[test]
    fn a_connect_authority_hiding_a_bracket_and_nul_behind_an_idn_label_is_refused() {
        // fuzz/request_target: the IDN label made this `xn--[::1]:808\u{1}\0er-4ob.example`, a
        // "name" that did not even survive being printed and parsed again
        assert!(Target::from_connect("[::1]:808\u{fc}\u{1}\0er.example:220").is_err());
    }

    #[test]
    fn an_ip_address_with_a_trailing_dot_is_an_address_not_a_name() {
        // fuzz/request_target: `10.0.10.0.:11` parsed as the name "10.0.10.0"
        assert_eq!(
            Host::parse("127.0.0.1.").unwrap(),
            Host::Ip("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            Host::parse("127\u{3002}0\u{3002}0\u{3002}1").unwrap(),
            Host::Ip("127.0.0.1".parse().unwrap())
        );
        assert!(Target::from_connect("127.0.0.1.:6379")
            .unwrap()
            .host
            .is_loopback());
        assert!(abs("http://127.0.0.1./").unwrap().host.is_loopback());
    }

    #[test]
    fn other_schemes_are_refused() {
        assert!(abs("ftp://example.com/").is_err());
    }
}
