//! Routing decisions as data: which hops to try, in order, for a target.
//!
//! [`decide`] is a pure function of the target and the static rules (bypass list, fixed upstream,
//! environment proxies); [`scope_route`], the routing a scope forces, comes before both. It returns a [`Decision`]: an ordered list of [`Hop`]s and the reason.
//! The PAC source plugs into the same seam by producing hops from a PAC answer. Nothing here
//! touches the network. [`plan`] turns one hop and a target into a [`ConnectPlan`]: where to
//! dial, through which proxy, TLS or not, the request form, the identity credentials may go
//! to (the autologon policy applied once, there) and the pool key.

use std::fmt;

pub mod destination;
pub mod headers;
mod plan;

pub use crate::config::routes::{BypassRule, StaticRoutes};
use crate::config::{ScopeRoute, Scopes};
use crate::target::{Host, Scheme, Target};
pub use crate::target::{ProxyAddr, ProxyKind};
pub use plan::{plan, ConnectPlan, Path, PoolKey, Purpose, ServerKey};

/// One way to reach a target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Hop {
    Direct,
    Proxy(ProxyAddr),
}

impl Hop {
    /// The bounded metric label: `direct` or the proxy's `host:port`.
    pub fn label(&self) -> String {
        match self {
            Hop::Direct => "direct".into(),
            Hop::Proxy(p) => p.label(),
        }
    }
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hop::Direct => f.write_str("DIRECT"),
            Hop::Proxy(p) => write!(f, "{p}"),
        }
    }
}

/// The ordered hops to try for one request, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub hops: Vec<Hop>,
    pub reason: &'static str,
}

/// The static routing decision. Pure: same inputs, same answer.
pub fn decide(target: &Target, routes: &StaticRoutes) -> Decision {
    if let Some(d) = static_bypass(target, routes) {
        return d;
    }
    let upstream = match target.scheme {
        Scheme::Http => &routes.http_upstream,
        Scheme::Https => &routes.https_upstream,
    };
    match upstream {
        Some(p) => Decision {
            hops: vec![Hop::Proxy(p.clone())],
            reason: "upstream",
        },
        None => Decision {
            hops: vec![Hop::Direct],
            reason: "direct",
        },
    }
}

/// The hops of a PAC answer, in order; proxies marked bad move to the end (still tried last).
/// Entries that cannot be used (an unparsable host) are skipped.
pub fn hops_from_pac(
    entries: &[waypost_pac::ProxyEntry],
    is_bad: impl Fn(&ProxyAddr) -> bool,
) -> Vec<Hop> {
    use waypost_pac::ProxyEntry;
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for e in entries {
        let hop = match e {
            ProxyEntry::Direct => Hop::Direct,
            ProxyEntry::Proxy { kind, host, port } => {
                let kind = *kind;
                let Ok(host) = Host::parse(host) else {
                    continue;
                };
                Hop::Proxy(ProxyAddr {
                    kind,
                    host,
                    port: *port,
                })
            }
        };
        if good.contains(&hop) || bad.contains(&hop) {
            continue;
        }
        match &hop {
            Hop::Proxy(p) if is_bad(p) => bad.push(hop),
            _ => good.push(hop),
        }
    }
    good.extend(bad);
    if good.is_empty() {
        good.push(Hop::Direct);
    }
    good
}

/// The routing of the target's scope (`route.bypass`, `route.via` of the first matching scope
/// that sets one), which wins over every other rule. `None` = no scope routes it.
pub fn scope_route(target: &Target, scopes: &Scopes) -> Option<Decision> {
    let (_, route) = scopes.route_for(&target.host, target.port)?;
    let hop = match route {
        ScopeRoute::Direct => Hop::Direct,
        ScopeRoute::Via(p) => Hop::Proxy(p.clone()),
    };
    Some(Decision {
        hops: vec![hop],
        reason: "scope",
    })
}

/// Static rules that win over PAC: loopback and the bypass list. `None` = not bypassed.
pub fn static_bypass(target: &Target, routes: &StaticRoutes) -> Option<Decision> {
    if routes.bypass_loopback && target.host.is_loopback() {
        return Some(Decision {
            hops: vec![Hop::Direct],
            reason: "loopback",
        });
    }
    if routes.bypass.iter().any(|r| r.matches(&target.host)) {
        return Some(Decision {
            hops: vec![Hop::Direct],
            reason: "bypass",
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(url: &str) -> Target {
        Target::from_absolute(&url.parse().unwrap(), false).unwrap()
    }

    fn routes(bypass: &[&str]) -> StaticRoutes {
        let p = ProxyAddr::parse("http://proxy.corp.example:3128").unwrap();
        StaticRoutes {
            http_upstream: Some(p.clone()),
            https_upstream: Some(p),
            bypass: bypass
                .iter()
                .map(|b| BypassRule::parse(b).unwrap())
                .collect(),
            bypass_loopback: true,
        }
    }

    #[test]
    fn requests_go_to_the_upstream_unless_bypassed() {
        let r = routes(&["*.intra.example", "10.0.0.0/8", "<local>", "exact.example"]);
        assert_eq!(decide(&t("http://www.example.org/"), &r).reason, "upstream");
        assert_eq!(
            decide(&t("http://a.intra.example/"), &r).hops,
            vec![Hop::Direct]
        );
        assert_eq!(decide(&t("http://intra.example/"), &r).reason, "upstream");
        assert_eq!(decide(&t("http://10.1.2.3/"), &r).hops, vec![Hop::Direct]);
        assert_eq!(decide(&t("http://intranet/"), &r).hops, vec![Hop::Direct]);
        assert_eq!(
            decide(&t("http://exact.example/"), &r).hops,
            vec![Hop::Direct]
        );
        assert_eq!(
            decide(&t("http://sub.exact.example/"), &r).reason,
            "upstream"
        );
    }

    #[test]
    fn loopback_is_direct_unless_configured_otherwise() {
        let mut r = routes(&[]);
        assert_eq!(decide(&t("http://localhost:8080/"), &r).reason, "loopback");
        assert_eq!(decide(&t("http://127.0.0.1/"), &r).reason, "loopback");
        assert_eq!(decide(&t("http://[::1]/"), &r).reason, "loopback");
        r.bypass_loopback = false;
        assert_eq!(decide(&t("http://127.0.0.1/"), &r).reason, "upstream");
    }

    #[test]
    fn no_proxy_entries_cover_the_domain_and_its_subdomains() {
        let rule = BypassRule::parse_no_proxy("corp.example").unwrap();
        assert!(rule.matches(&Host::parse("corp.example").unwrap()));
        assert!(rule.matches(&Host::parse("a.corp.example").unwrap()));
        assert!(!rule.matches(&Host::parse("xcorp.example").unwrap()));
    }

    #[test]
    fn pac_answers_become_hops_with_bad_proxies_last() {
        let entries =
            waypost_pac::parse_result("PROXY a:1; PROXY b:2; SOCKS5 s:1080; DIRECT; PROXY a:1");
        let bad_a = |p: &ProxyAddr| p.label() == "a:1";
        let hops: Vec<String> = hops_from_pac(&entries, bad_a)
            .iter()
            .map(|h| h.to_string())
            .collect();
        assert_eq!(
            hops,
            ["http://b:2", "socks5://s:1080", "DIRECT", "http://a:1"]
        );
        assert_eq!(hops_from_pac(&[], |_| false), vec![Hop::Direct]);
    }

    #[test]
    fn proxy_addresses_parse_with_default_ports() {
        let p = ProxyAddr::parse("http://proxy:8080").unwrap();
        assert_eq!(p.label(), "proxy:8080");
        assert_eq!(ProxyAddr::parse("https://p.example").unwrap().port, 443);
        assert_eq!(
            ProxyAddr::parse("socks5://[::1]").unwrap().label(),
            "[::1]:1080"
        );
        assert_eq!(
            ProxyAddr::parse("p.example:3128").unwrap().kind,
            ProxyKind::Http
        );
        assert!(ProxyAddr::parse("http://u:p@proxy:1").is_err());
        assert!(ProxyAddr::parse("ftp://proxy:1").is_err());
        assert!(ProxyAddr::parse("http://proxy:1/path").is_err());
    }
}
