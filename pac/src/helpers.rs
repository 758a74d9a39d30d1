//! The PAC helper functions as pure Rust (spec §2, §3): string, address and glob logic with the
//! spec's edge cases. No engine and no DNS here; `bindings` adapts them to JS values and
//! supplies lookups.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `isPlainHostName`: no dot, and not an IP literal (WHATWG IPv4 forms such as `127` count).
pub fn is_plain_host_name(host: &str) -> bool {
    !host.contains('.') && !is_ip_literal_loose(host)
}

fn is_ip_literal_loose(host: &str) -> bool {
    if host.parse::<Ipv6Addr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && !host.contains(':')
        && matches!(url::Host::parse(host), Ok(url::Host::Ipv4(_)))
}

/// `dnsDomainIs`: a plain, case-sensitive suffix test.
pub fn dns_domain_is(host: &str, domain: &str) -> bool {
    host.ends_with(domain)
}

/// `localHostOrDomainIs`: equal, or `host` is a dot-terminated prefix of `hostdom`.
pub fn local_host_or_domain_is(host: &str, hostdom: &str) -> bool {
    host == hostdom
        || hostdom
            .strip_prefix(host)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// `dnsDomainLevels`: the number of dots.
pub fn dns_domain_levels(host: &str) -> usize {
    host.matches('.').count()
}

/// `isValidIpAddress` of the JS library: four decimal parts of 1-3 digits, each <= 255.
pub fn parse_pac_ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut out = [0u8; 4];
    let mut parts = s.as_bytes().split(|b| *b == b'.');
    for slot in &mut out {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 {
            return None;
        }
        let mut value: u16 = 0;
        for &b in p {
            if !b.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u16::from(b - b'0');
        }
        *slot = u8::try_from(value).ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(out))
}

/// `convert_addr`: the signed 32-bit value of `a.b.c.d`, each part through JS `ToNumber`.
pub fn convert_addr(s: &str) -> i32 {
    let mut parts = s.split('.');
    let mut value: u32 = 0;
    for shift in [24, 16, 8, 0] {
        let byte = parts
            .next()
            .map_or(0, |p| js_to_int32(js_string_to_number(p)) & 0xff);
        value |= byte << shift;
    }
    value as i32
}

/// `isInNet` once `host` is an address: masked comparison.
pub fn in_net(host: Ipv4Addr, pattern: Ipv4Addr, mask: Ipv4Addr) -> bool {
    let (h, p, m) = (u32::from(host), u32::from(pattern), u32::from(mask));
    h & m == p & m
}

/// Parses an IP literal strictly (no brackets, no zone, no spaces).
pub fn parse_ip_literal(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok()
}

fn mapped(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// `isInNetEx(ip, prefix)`: `None` means "not an answer" (the binding returns `false`).
/// IPv4 and IPv6 mix through IPv4-mapped addresses (Chromium's rule, spec §3).
pub fn is_in_net_ex(ip: &str, prefix: &str) -> bool {
    let Some(addr) = parse_ip_literal(ip) else {
        return false;
    };
    let mut split = prefix.split('/');
    let (Some(net), Some(len), None) = (split.next(), split.next(), split.next()) else {
        return false;
    };
    let Some(net) = parse_ip_literal(net.trim()) else {
        return false;
    };
    let len = len.trim();
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(mut len) = len.parse::<u32>() else {
        return false;
    };
    let max = if net.is_ipv4() { 32 } else { 128 };
    if len > max {
        return false;
    }
    if net.is_ipv4() {
        len += 96;
    }
    let (a, n) = (u128::from(mapped(addr)), u128::from(mapped(net)));
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    a & mask == n & mask
}

/// `sortIpAddressList`: IPv6 first, then ascending; original spellings kept. `None` = `false`.
pub fn sort_ip_address_list(list: &str) -> Option<String> {
    let cleaned: String = list.chars().filter(|c| *c != ' ' && *c != '\t').collect();
    let mut items = Vec::new();
    for token in cleaned.split(';').filter(|t| !t.is_empty()) {
        items.push((parse_ip_literal(token)?, token));
    }
    if items.is_empty() {
        return None;
    }
    items.sort_by(|(a, _), (b, _)| match (a, b) {
        (IpAddr::V6(_), IpAddr::V4(_)) => Ordering::Less,
        (IpAddr::V4(_), IpAddr::V6(_)) => Ordering::Greater,
        _ => a.cmp(b),
    });
    Some(items.iter().map(|(_, t)| *t).collect::<Vec<_>>().join(";"))
}

/// Whether `shExpMatch`'s pattern can be matched by the Rust glob matcher: only `*`, `?`, `.`
/// and characters that are literal in a JS RegExp. Others go through the engine's RegExp.
pub fn shexp_is_simple(pattern: &str) -> bool {
    // All the metacharacters are ASCII, so a byte scan sees exactly the characters.
    !pattern.bytes().any(|b| {
        matches!(
            b,
            b'\\' | b'^' | b'$' | b'+' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'|'
        )
    })
}

/// `shExpMatch` for simple patterns: `*` = any run, `?` = one char, neither matches a JS line
/// terminator (RegExp `.` semantics).
pub fn shexp_match_simple(s: &str, pattern: &str) -> bool {
    if s.is_ascii() && pattern.is_ascii() {
        // One byte per character: the same walk without decoding.
        let is_term = |c: u8| matches!(c, b'\n' | b'\r');
        return glob(s.as_bytes(), pattern.as_bytes(), b'*', b'?', is_term);
    }
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let is_term = |c: char| matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}');
    glob(&s, &p, '*', '?', is_term)
}

/// Backtracking glob walk over characters (`star` = any run, `one` = one non-terminator).
fn glob<T: Copy + Eq>(s: &[T], p: &[T], star_c: T, one: T, is_term: impl Fn(T) -> bool) -> bool {
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == star_c {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && (p[pi] == s[si] || (p[pi] == one && !is_term(s[si]))) {
            si += 1;
            pi += 1;
        } else if let Some((sp, ss)) = star.filter(|&(_, ss)| !is_term(s[ss])) {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == star_c)
}

/// The JS RegExp source the spec builds from a shell expression.
pub fn shexp_to_regexp(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    out.push('^');
    for c in pattern.chars() {
        match c {
            '.' => out.push_str("\\."),
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c => out.push(c),
        }
    }
    out.push('$');
    out
}

/// JS `ToNumber` for a string (enough for `convert_addr`).
fn js_string_to_number(s: &str) -> f64 {
    let t = s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if t.is_empty() {
        return 0.0;
    }
    let radix = |digits: &str, r: u32| {
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(r)) {
            f64::NAN
        } else {
            digits.chars().fold(0.0, |acc, c| {
                acc * f64::from(r) + f64::from(c.to_digit(r).unwrap_or(0))
            })
        }
    };
    let lower = t.to_ascii_lowercase();
    if let Some(h) = lower.strip_prefix("0x") {
        return radix(h, 16);
    }
    if let Some(o) = lower.strip_prefix("0o") {
        return radix(o, 8);
    }
    if let Some(b) = lower.strip_prefix("0b") {
        return radix(b, 2);
    }
    match t {
        "Infinity" | "+Infinity" => f64::INFINITY,
        "-Infinity" => f64::NEG_INFINITY,
        _ if t.contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E') => f64::NAN,
        _ => t.parse().unwrap_or(f64::NAN),
    }
}

fn js_to_int32(n: f64) -> u32 {
    if !n.is_finite() {
        return 0;
    }
    (n.trunc().rem_euclid(4_294_967_296.0)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_host_names_have_no_dot_and_are_not_ip_literals() {
        assert!(is_plain_host_name("www"));
        assert!(!is_plain_host_name("www.example.com"));
        assert!(!is_plain_host_name("::1"));
        assert!(!is_plain_host_name("::192.186.1.1"));
        assert!(!is_plain_host_name("127"));
        assert!(!is_plain_host_name("0x7f"));
        for h in ["[::1]", "foo:112", "foopy::1", ":", "[:]", ""] {
            assert!(is_plain_host_name(h), "{h}");
        }
    }

    #[test]
    fn dns_domain_is_is_a_case_sensitive_suffix_test() {
        assert!(dns_domain_is("www.netscape.com", ".netscape.com"));
        assert!(dns_domain_is("notanz.com", "anz.com"));
        assert!(!dns_domain_is("netscape.com", ".netscape.com"));
        assert!(!dns_domain_is("www.NETSCAPE.com", ".netscape.com"));
        assert!(dns_domain_is("a", ""));
    }

    #[test]
    fn local_host_or_domain_is_accepts_exact_or_dotted_prefix() {
        assert!(local_host_or_domain_is(
            "www.netscape.com",
            "www.netscape.com"
        ));
        assert!(local_host_or_domain_is("www", "www.netscape.com"));
        assert!(local_host_or_domain_is("www.netscape", "www.netscape.com"));
        assert!(!local_host_or_domain_is("www.mcom.com", "www.netscape.com"));
        assert!(!local_host_or_domain_is(
            "home.netscape.com",
            "www.netscape.com"
        ));
        assert!(!local_host_or_domain_is("WWW", "www.netscape.com"));
    }

    #[test]
    fn dns_domain_levels_counts_dots() {
        assert_eq!(dns_domain_levels(""), 0);
        assert_eq!(dns_domain_levels("."), 1);
        assert_eq!(dns_domain_levels("a.b."), 2);
        assert_eq!(dns_domain_levels("192.168.1.1"), 3);
        assert_eq!(dns_domain_levels("::1"), 0);
    }

    #[test]
    fn pac_ipv4_validation_reads_leading_zeros_as_decimal() {
        assert_eq!(
            parse_pac_ipv4("010.001.002.003"),
            Some(Ipv4Addr::new(10, 1, 2, 3))
        );
        for bad in [
            "10.0.0",
            "255.0.0",
            "255.255.255.256",
            "1.2.3.4.5",
            "a.b.c.d",
            "1.2.3.0x4",
            "",
            "1..2.3",
            "0001.1.1.1",
        ] {
            assert_eq!(parse_pac_ipv4(bad), None, "{bad}");
        }
    }

    #[test]
    fn convert_addr_is_signed_and_lenient() {
        assert_eq!(convert_addr("255.255.255.255"), -1);
        assert_eq!(convert_addr("192.168.1.1"), -1062731519);
        assert_eq!(convert_addr("10.0.0.1"), 167772161);
        assert_eq!(convert_addr("a.b"), 0);
        assert_eq!(convert_addr("1"), 1 << 24);
        assert_eq!(convert_addr("0x10.256.1.1"), (16 << 24) | (1 << 8) | 1);
    }

    #[test]
    fn in_net_masks_bitwise_including_non_contiguous_masks() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(in_net(
            ip("198.95.249.79"),
            ip("198.95.249.79"),
            ip("255.255.255.255")
        ));
        assert!(in_net(
            ip("198.95.6.8"),
            ip("198.95.0.0"),
            ip("255.255.0.0")
        ));
        assert!(!in_net(
            ip("198.96.6.8"),
            ip("198.95.0.0"),
            ip("255.255.0.0")
        ));
        assert!(in_net(ip("10.1.2.3"), ip("10.9.2.9"), ip("255.0.255.0")));
    }

    #[test]
    fn is_in_net_ex_follows_chromium_prefix_rules() {
        assert!(is_in_net_ex("198.95.249.79", "198.95.249.79/32"));
        assert!(is_in_net_ex("198.95.115.10", "198.95.0.0/16"));
        assert!(!is_in_net_ex("198.96.115.10", "198.95.0.0/16"));
        assert!(is_in_net_ex(
            "3ffe:8311:ffff:abcd:1234:dead:beef:1",
            "3ffe:8311:ffff::/48"
        ));
        assert!(!is_in_net_ex("3ffe:8312::1", "3ffe:8311:ffff::/48"));
        assert!(!is_in_net_ex("3ffe:8311:ffff::1", "3ffe:8311:ffff/48"));
        assert!(is_in_net_ex("127.0.0.1", "0:0:0:0:0:0:7f00:1/16"));
        assert!(is_in_net_ex("1.2.3.4", " 1.2.0.0 / 16 "));
        assert!(!is_in_net_ex("1.2.3.4", "1.2.0.0/33"));
        assert!(!is_in_net_ex("1.2.3.4", "1.2.0.0/16/1"));
        assert!(!is_in_net_ex("1.2.3.4", "1.2.0.0"));
        assert!(!is_in_net_ex("host.example", "1.2.0.0/16"));
        assert!(!is_in_net_ex("[::1]", "::/0"));
        assert!(is_in_net_ex("::1", "::/0"));
    }

    #[test]
    fn sort_ip_address_list_puts_ipv6_first_in_numeric_order() {
        assert_eq!(
            sort_ip_address_list("10.2.3.9;2001:4898:28:3:201:2ff:feea:fc14;::1;127.0.0.1;::9")
                .as_deref(),
            Some("::1;::9;2001:4898:28:3:201:2ff:feea:fc14;10.2.3.9;127.0.0.1")
        );
        assert_eq!(
            sort_ip_address_list(" 10.2.3.9 ; \t0:0::1;;").as_deref(),
            Some("0:0::1;10.2.3.9")
        );
        assert_eq!(sort_ip_address_list("10.2.3.9;notanip"), None);
        assert_eq!(sort_ip_address_list(";;"), None);
        assert_eq!(sort_ip_address_list(""), None);
    }

    #[test]
    fn simple_shell_expressions_match_like_the_regexp_translation() {
        assert!(shexp_match_simple(
            "http://home.netscape.com/people/ari/index.html",
            "*/ari/*"
        ));
        assert!(!shexp_match_simple(
            "http://home.netscape.com/people/montulli/index.html",
            "*/ari/*"
        ));
        assert!(shexp_match_simple("abc.com", "a?c.com"));
        assert!(!shexp_match_simple("abcxcom", "abc.com"));
        assert!(shexp_match_simple("", "*"));
        assert!(!shexp_match_simple("a\nb", "a*b"));
        assert!(!shexp_match_simple("a\nb", "a?b"));
        assert!(shexp_match_simple("aXbXc", "*b*"));
        assert!(shexp_match_simple("x.y.z", "*.*.z"));
        assert!(!shexp_match_simple("x.y", "*.*.z"));
    }

    #[test]
    fn regexp_metacharacters_route_to_the_engine() {
        assert!(shexp_is_simple("*.example.com"));
        for p in [
            "a+b.com",
            "[xy].com",
            "abc|xyz",
            "a$b",
            "(",
            "(*.a.com|a.com)",
        ] {
            assert!(!shexp_is_simple(p), "{p}");
        }
        assert_eq!(shexp_to_regexp("*.a?.com"), "^.*\\.a.\\.com$");
    }
}
