//! WPAD by DNS: the `wpad.<domain>` names to try ("DNS devolution") and the lookups.
//!
//! [`dns_candidates`] and [`search_domains_from_resolv_conf`] are pure. Devolution strips one
//! leading label at a time and stops at the registrable domain of the Public Suffix List
//! (`example.com`, `contoso.co.uk`): a name at or above a public suffix (`wpad.com`,
//! `wpad.co.uk`, `wpad.github.io`) can be registered by anyone and is never generated
//! (Microsoft advisory 945713). [`resolves`] is the only I/O: an A/AAAA lookup of the
//! absolute name through the system resolver configuration, bounded by a timeout.

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;

/// The `wpad.<d>` names for `domain`, most specific first, from the whole domain down to its
/// registrable domain. Empty for a public suffix, a single label, or a malformed name.
/// Accepts upper case, a trailing dot and Unicode (converted to its ASCII form).
pub fn dns_candidates(domain: &str) -> Vec<String> {
    let Some(domain) = normalize(domain) else {
        return Vec::new();
    };
    let Some(registrable) = psl::domain_str(&domain).map(str::to_string) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut d = domain.as_str();
    loop {
        out.push(format!("wpad.{d}"));
        if d.len() <= registrable.len() {
            break;
        }
        match d.split_once('.') {
            Some((_, rest)) => d = rest,
            None => break,
        }
    }
    out
}

/// Lower-case ASCII form without a trailing dot, or `None` when it is not a host name.
fn normalize(domain: &str) -> Option<String> {
    let d = domain.trim().trim_end_matches('.');
    if d.is_empty() {
        return None;
    }
    let ascii = idna::domain_to_ascii(d).ok()?;
    let ok = ascii.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    (ok && ascii.len() <= 253 - "wpad.".len()).then_some(ascii)
}

/// The DNS search list of a resolv.conf text: the last `search` or `domain` line wins, as in
/// glibc. Order kept, duplicates dropped.
pub fn search_domains_from_resolv_conf(text: &str) -> Vec<String> {
    let mut domains: Vec<String> = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("search") | Some("domain") => {
                domains.clear();
                for w in words {
                    if w.starts_with('#') || w.starts_with(';') {
                        break;
                    }
                    let w = w.trim_end_matches('.').to_ascii_lowercase();
                    if !w.is_empty() && !domains.contains(&w) {
                        domains.push(w);
                    }
                }
            }
            _ => {}
        }
    }
    domains
}

/// The resolver of the system configuration (`/etc/resolv.conf`, which `ip netns exec`
/// replaces per namespace), or why there is none.
pub fn system_resolver(timeout: Duration) -> Result<TokioResolver, String> {
    let mut builder = TokioResolver::builder_tokio()
        .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?;
    let opts = builder.options_mut();
    opts.timeout = timeout;
    opts.attempts = 1;
    opts.cache_size = 0;
    builder
        .build()
        .map_err(|e| format!("cannot build a DNS resolver: {e}"))
}

/// The addresses of the absolute name `name` (no search list applied), or why it does not
/// resolve.
pub async fn resolves(
    resolver: &TokioResolver,
    name: &str,
    timeout: Duration,
) -> Result<Vec<IpAddr>, String> {
    let fqdn = format!("{name}.");
    match tokio::time::timeout(timeout, resolver.lookup_ip(fqdn.as_str())).await {
        Err(_) => Err(format!("no DNS answer within {timeout:?}")),
        Ok(Err(e)) if e.is_nx_domain() => Err("does not resolve (NXDOMAIN)".to_string()),
        Ok(Err(e)) if e.is_no_records_found() => Err("has no address records".to_string()),
        Ok(Err(e)) => Err(format!("lookup failed: {e}")),
        Ok(Ok(answer)) => {
            let ips: Vec<IpAddr> = answer.iter().collect();
            if ips.is_empty() {
                Err("has no address records".to_string())
            } else {
                Ok(ips)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devolution_walks_up_one_label_at_a_time_to_the_registrable_domain() {
        assert_eq!(
            dns_candidates("a.b.corp.example.com"),
            [
                "wpad.a.b.corp.example.com",
                "wpad.b.corp.example.com",
                "wpad.corp.example.com",
                "wpad.example.com"
            ]
        );
    }

    #[test]
    fn devolution_never_reaches_a_two_label_public_suffix() {
        assert_eq!(
            dns_candidates("corp.contoso.co.uk"),
            ["wpad.corp.contoso.co.uk", "wpad.contoso.co.uk"]
        );
        assert_eq!(
            dns_candidates("corp.contoso.co.us"),
            ["wpad.corp.contoso.co.us", "wpad.contoso.co.us"]
        );
    }

    #[test]
    fn a_registrable_domain_yields_only_itself() {
        assert_eq!(dns_candidates("example.com"), ["wpad.example.com"]);
    }

    #[test]
    fn a_tld_or_public_suffix_yields_nothing() {
        for d in [
            "com",
            "co.uk",
            "uk",
            "github.io",
            "s3.amazonaws.com",
            "",
            ".",
            "lan",
        ] {
            assert!(
                dns_candidates(d).is_empty(),
                "{d:?} -> {:?}",
                dns_candidates(d)
            );
        }
    }

    #[test]
    fn devolution_stops_below_a_private_public_suffix() {
        assert_eq!(
            dns_candidates("corp.foo.github.io"),
            ["wpad.corp.foo.github.io", "wpad.foo.github.io"]
        );
    }

    #[test]
    fn an_unlisted_tld_counts_as_a_public_suffix() {
        assert_eq!(
            dns_candidates("lab.corp.example.test"),
            [
                "wpad.lab.corp.example.test",
                "wpad.corp.example.test",
                "wpad.example.test"
            ]
        );
    }

    #[test]
    fn case_trailing_dot_and_unicode_are_normalized() {
        assert_eq!(
            dns_candidates("Corp.Example.COM."),
            ["wpad.corp.example.com", "wpad.example.com"]
        );
        assert_eq!(
            dns_candidates("büro.example.de"),
            ["wpad.xn--bro-hoa.example.de", "wpad.example.de"]
        );
    }

    #[test]
    fn malformed_domains_yield_nothing() {
        for d in ["a..example.com", "exa mple.com", "a/b.example.com"] {
            assert!(dns_candidates(d).is_empty(), "{d:?}");
        }
    }

    #[test]
    fn resolv_conf_search_list_last_line_wins_and_keeps_order() {
        let text = "nameserver 10.0.0.1\ndomain old.example\nsearch Corp.Example.com. example.com corp.example.com # comment\noptions ndots:1\n";
        assert_eq!(
            search_domains_from_resolv_conf(text),
            ["corp.example.com", "example.com"]
        );
        assert_eq!(
            search_domains_from_resolv_conf("search a.example\ndomain b.example\n"),
            ["b.example"]
        );
        assert!(search_domains_from_resolv_conf("nameserver 1.1.1.1\n").is_empty());
    }
}
