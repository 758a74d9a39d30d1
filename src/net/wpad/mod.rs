//! WPAD discovery: where the PAC file of `pac = "auto"` lives, found the WinHTTP way.
//!
//! [`discover`] asks DHCP first (a DHCPINFORM with option 55 requesting option 252 on every
//! up, non-loopback IPv4 interface, all at once, bounded by `dhcp_timeout`), then DNS: for
//! each search domain, `wpad.<domain>` walking up one label at a time down to the registrable
//! domain, never a TLD or public suffix ([`dns_candidates`]). A name "exists" when it
//! resolves; the URL is then `http://wpad.<domain>/wpad.dat`. Fetching and checking the file
//! is the caller's job, as is deciding when to run again ([`NetworkWatcher`]). Every attempt
//! that did not give a URL is kept with its reason, for `waypost wpad discover` and logs.
//!
//! DHCP means the system's DHCP client first ([`leases`]: NetworkManager, systemd-networkd,
//! dhclient hold option 252 in their leases), then a DHCPINFORM of waypost's own, which needs
//! udp/68: root or `CAP_NET_BIND_SERVICE`. Without either, and with no client that knows, one
//! warning says so and how to enable it ([`DHCP_UNAVAILABLE`]).
//!
//! Layout: `dhcp` (packet codec + one socket per interface), `leases` (the system clients),
//! `dns` (candidates + lookups), `iface` (interface list), `netwatch` (change counter), `cli`
//! (the subcommand).

pub mod cli;
pub mod dhcp;
pub mod dns;
pub mod iface;
pub mod leases;
pub mod netwatch;

use std::fmt;
use std::time::Duration;

use serde::Serialize;

pub use dhcp::{build_dhcp_inform, parse_dhcp_ack, DhcpAck};
pub use dns::dns_candidates;
pub use netwatch::NetworkWatcher;

/// How a WPAD URL was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Dhcp,
    Dns,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Method::Dhcp => "dhcp",
            Method::Dns => "dns",
        })
    }
}

/// One thing discovery tried that gave no URL, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub method: Method,
    /// What was asked: an interface name for DHCP, a `wpad.<domain>` name for DNS, or `-`
    /// when the method could not start at all.
    pub target: String,
    pub reason: String,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.method, self.target, self.reason)
    }
}

/// A WPAD URL and how it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discovered {
    pub url: String,
    pub method: Method,
    /// Where it came from, for humans: "DHCPACK from 10.0.0.1 on eth0" or
    /// "wpad.corp.example.com resolves to 10.0.0.1".
    pub source: String,
    /// Everything tried before, with the reason each gave nothing.
    pub tried: Vec<Attempt>,
}

pub use crate::config::WpadOptions;

/// Discovery found nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("no WPAD URL found by DHCP or DNS ({} attempts)", tried.len())]
    NotFound { tried: Vec<Attempt> },
}

impl DiscoveryError {
    /// Everything tried, with the reasons.
    pub fn tried(&self) -> &[Attempt] {
        match self {
            DiscoveryError::NotFound { tried } => tried,
        }
    }
}

/// Runs WPAD discovery: DHCP, then DNS. See the module documentation.
pub async fn discover(opts: &WpadOptions) -> Result<Discovered, DiscoveryError> {
    let mut tried = Vec::new();
    let mut dhcp_domains = Vec::new();
    if let Some(found) = by_dhcp(opts, &mut tried, &mut dhcp_domains).await {
        return Ok(Discovered {
            url: found.0,
            method: Method::Dhcp,
            source: found.1,
            tried,
        });
    }
    let domains = match &opts.search_domains {
        Some(d) => d.clone(),
        None => {
            let mut d = dns::search_domains_from_resolv_conf(
                &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            );
            for extra in dhcp_domains {
                if !d.contains(&extra) {
                    d.push(extra);
                }
            }
            d
        }
    };
    if let Some(found) = by_dns(&domains, opts.dns_timeout, &mut tried).await {
        return Ok(Discovered {
            url: found.0,
            method: Method::Dns,
            source: found.1,
            tried,
        });
    }
    Err(DiscoveryError::NotFound { tried })
}

/// `(url, source)` from the first interface whose DHCPACK carries an http(s) option 252.
async fn by_dhcp(
    opts: &WpadOptions,
    tried: &mut Vec<Attempt>,
    domains: &mut Vec<String>,
) -> Option<(String, String)> {
    let fail = |target: &str, reason: String| Attempt {
        method: Method::Dhcp,
        target: target.to_string(),
        reason,
    };
    let (ifaces, skipped) = iface::eligible(&iface::list(), opts.interfaces.as_deref());
    tried.extend(skipped.into_iter().map(|(name, why)| fail(&name, why)));
    if ifaces.is_empty() {
        tried.push(fail(
            "-",
            "no up, non-loopback IPv4 interface to send a DHCPINFORM on".into(),
        ));
        return None;
    }
    let roots = leases::Roots::default();
    for i in &ifaces {
        if let Some((url, client)) = leases::ask(&roots, &i.name, ifindex(&i.name)).await {
            if is_http_url(&url) {
                return Some((url, format!("{client}'s DHCP lease on {}", i.name)));
            }
        }
    }
    let mut denied = 0;
    let asked = ifaces.len();
    let mut asks: tokio::task::JoinSet<(iface::Iface, Result<DhcpAck, String>)> =
        tokio::task::JoinSet::new();
    for i in ifaces {
        let timeout = opts.dhcp_timeout;
        asks.spawn(async move {
            let r = dhcp::inform(&i, timeout).await;
            (i, r)
        });
    }
    while let Some(joined) = asks.join_next().await {
        let Ok((i, answer)) = joined else { continue }; // a panicked task has nothing to report
        let target = format!("{} ({})", i.name, i.ipv4);
        match answer {
            Err(why) => {
                denied += usize::from(why.contains(dhcp::BIND_DENIED));
                tried.push(fail(&target, why));
            }
            Ok(ack) => {
                let server = ack
                    .server_id
                    .map_or_else(|| "a DHCP server".to_string(), |s| s.to_string());
                if let Some(d) = ack.domain.filter(|d| !domains.contains(d)) {
                    domains.push(d);
                }
                match ack.wpad_url {
                    Some(url) if is_http_url(&url) => {
                        asks.abort_all();
                        return Some((url, format!("DHCPACK from {server} on {}", i.name)));
                    }
                    Some(url) => tried.push(fail(
                        &target,
                        format!("option 252 from {server} is not an http(s) URL: {url:?}"),
                    )),
                    None => tried.push(fail(
                        &target,
                        format!("DHCPACK from {server} has no option 252"),
                    )),
                }
            }
        }
    }
    if denied == asked {
        tried.push(fail("-", DHCP_UNAVAILABLE.into()));
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!("{DHCP_UNAVAILABLE}");
        }
    }
    None
}

/// Why DHCP discovery cannot run for an unprivileged waypost, and how to enable it.
pub const DHCP_UNAVAILABLE: &str = "DHCP WPAD discovery is unavailable: no DHCP client of the system \
    (NetworkManager, systemd-networkd, dhclient) reported option 252, and a DHCPINFORM of waypost's \
    own needs udp/68 (root or CAP_NET_BIND_SERVICE); DNS discovery still runs. To enable it: \
    `sudo setcap cap_net_bind_service=+ep \"$(command -v waypost)\"` (a user unit also needs \
    NoNewPrivileges=no: see deploy/systemd/user/waypost.service), or give the system unit \
    AmbientCapabilities=CAP_NET_BIND_SERVICE";

/// The kernel's index of the interface `name` (0 when unknown).
fn ifindex(name: &str) -> u32 {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn is_http_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://")) && url.len() > "https://".len()
}

/// `(url, source)` from the first `wpad.<domain>` name that resolves.
async fn by_dns(
    domains: &[String],
    timeout: Duration,
    tried: &mut Vec<Attempt>,
) -> Option<(String, String)> {
    let fail = |target: &str, reason: String| Attempt {
        method: Method::Dns,
        target: target.to_string(),
        reason,
    };
    let mut names: Vec<String> = Vec::new();
    for d in domains {
        let c = dns_candidates(d);
        if c.is_empty() {
            tried.push(fail(
                d,
                "single label, public suffix or malformed: nothing to ask".into(),
            ));
        }
        for n in c {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    if domains.is_empty() {
        tried.push(fail(
            "-",
            "no DNS search domain (resolv.conf has no search/domain, DHCP gave none)".into(),
        ));
    }
    if names.is_empty() {
        return None;
    }
    let resolver = match dns::system_resolver(timeout) {
        Ok(r) => r,
        Err(why) => {
            tried.push(fail("-", why));
            return None;
        }
    };
    for name in names {
        match dns::resolves(&resolver, &name, timeout).await {
            Ok(ips) => {
                let shown: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
                return Some((
                    format!("http://{name}/wpad.dat"),
                    format!("{name} resolves to {}", shown.join(", ")),
                ));
            }
            Err(why) => tried.push(fail(&name, why)),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_are_accepted_from_option_252() {
        assert!(is_http_url("http://10.0.0.1/wpad.dat"));
        assert!(is_http_url("HTTPS://wpad.example.com/proxy.pac"));
        assert!(!is_http_url("file:///etc/proxy.pac"));
        assert!(!is_http_url("http://"));
        assert!(!is_http_url("wpad.example.com"));
    }

    #[test]
    fn attempts_print_method_target_and_reason() {
        let a = Attempt {
            method: Method::Dns,
            target: "wpad.example.com".into(),
            reason: "does not resolve (NXDOMAIN)".into(),
        };
        assert_eq!(
            a.to_string(),
            "dns wpad.example.com: does not resolve (NXDOMAIN)"
        );
    }

    #[tokio::test]
    async fn dns_discovery_without_domains_says_so_and_sends_nothing() {
        let mut tried = Vec::new();
        assert_eq!(
            by_dns(&[], Duration::from_millis(10), &mut tried).await,
            None
        );
        assert_eq!(tried.len(), 1);
        assert!(
            tried[0].reason.contains("no DNS search domain"),
            "{tried:?}"
        );
        let mut tried = Vec::new();
        assert_eq!(
            by_dns(&["co.uk".into()], Duration::from_millis(10), &mut tried).await,
            None
        );
        assert!(tried[0].reason.contains("public suffix"), "{tried:?}");
    }
}
