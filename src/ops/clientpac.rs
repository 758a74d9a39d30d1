//! `/proxy.pac` and `/wpad.dat`: the PAC script waypost serves to browsers and operating
//! systems so they can be pointed at it once (`http://127.0.0.1:3128/proxy.pac`).
//!
//! The script sends everything to this waypost (`PROXY host:port`, then `SOCKS5 host:port`
//! when `socks_listen` is set) except what waypost itself would send DIRECT by its static
//! rules: the `route.bypass` list and, with `route.bypass_loopback`, loopback. Everything else
//! — the network's PAC, failover, authentication — stays inside waypost. The address is the
//! one the client reached waypost by: the `Host` header's host (the name the client used) with
//! the port of the proxy listener the request came in on, or of the first proxy listener when
//! it came in on an admin listener. Building the text is pure ([`script`]); nothing here does
//! I/O.

use std::net::SocketAddr;

use crate::app::App;
use crate::config::{BypassRule, StaticRoutes};
use crate::target::Host;
use waypost_tls::pattern::HostPattern;

/// The content type browsers expect for a PAC script.
pub const CONTENT_TYPE: &str = "application/x-ns-proxy-autoconfig";

/// The local address a connection was accepted on (a request extension set by the server).
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub SocketAddr);

/// Where a listener is reachable for the client that asked: `host_header`'s host (the name
/// the client used to reach waypost) when the listener listens on every address or on the
/// address the request arrived on, else the listener's own address.
pub fn endpoint(
    listener: SocketAddr,
    arrived: Option<SocketAddr>,
    host_header: Option<&str>,
) -> String {
    let reached = host_header
        .and_then(host_of)
        .or_else(|| arrived.map(|a| Host::Ip(a.ip())));
    let same_ip = arrived.is_some_and(|a| a.ip() == listener.ip());
    match reached {
        Some(h) if listener.ip().is_unspecified() || same_ip => {
            format!("{}:{}", h.to_authority_host(), listener.port())
        }
        _ => listener.to_string(),
    }
}

/// The host of a `Host` header value (`name`, `name:port`, `[v6]:port`).
fn host_of(value: &str) -> Option<Host> {
    let v = value.trim();
    let host = if v.starts_with('[') {
        &v[..=v.find(']')?]
    } else {
        v.rsplit_once(':').map_or(v, |(h, _)| h)
    };
    Host::parse(host).ok()
}

/// Which proxy listener the request is about: the one it arrived on, else the first one.
pub fn proxy_listener(proxies: &[SocketAddr], arrived: Option<SocketAddr>) -> Option<SocketAddr> {
    let on = arrived.and_then(|a| {
        proxies
            .iter()
            .find(|l| l.port() == a.port() && (l.ip().is_unspecified() || l.ip() == a.ip()))
            .map(|_| a)
    });
    on.or_else(|| proxies.first().copied())
}

/// The script for this request: its listener and `Host` header pick the addresses.
pub fn for_request<B>(app: &App, req: &http::Request<B>) -> String {
    let arrived = req.extensions().get::<Arrived>().map(|a| a.0);
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok());
    let proxies = crate::app::lock(&app.ops.listening).clone();
    let socks = crate::app::lock(&app.ops.socks_listening).clone();
    let proxy = proxy_listener(&proxies, arrived).map(|l| endpoint(l, arrived, host));
    // the SOCKS listener is reached by the same name, on its own port
    let socks = socks.first().map(|&l| endpoint(l, arrived, host));
    script(proxy.as_deref(), socks.as_deref(), &app.cfg.routes)
}

/// The PAC script: `proxy` and `socks` are `host:port` strings.
pub fn script(proxy: Option<&str>, socks: Option<&str>, routes: &StaticRoutes) -> String {
    let mut out = String::from(
        "// Served by waypost: sends this client's traffic to waypost, which decides per URL how\n\
         // to reach it (the network's PAC, upstream proxies, authentication). Generated; do not edit.\n\
         function FindProxyForURL(url, host) {\n    \
         var h = host.toLowerCase().replace(/^\\[|\\]$/g, \"\");\n    \
         var v4 = /^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$/.test(h);\n    \
         var v6 = h.indexOf(\":\") >= 0;\n",
    );
    if routes.bypass_loopback {
        out.push_str(
            "    // loopback is always DIRECT (route.bypass_loopback)\n    \
             if (h == \"localhost\" || dnsDomainIs(h, \".localhost\") || (v4 && isInNet(h, \"127.0.0.0\", \"255.0.0.0\")) || h == \"::1\") return \"DIRECT\";\n",
        );
    }
    if !routes.bypass.is_empty() {
        out.push_str("    // route.bypass\n");
    }
    for rule in &routes.bypass {
        out.push_str(&format!(
            "    if ({}) return \"DIRECT\";\n",
            condition(rule)
        ));
    }
    let mut entries = Vec::new();
    if let Some(p) = proxy {
        entries.push(format!("PROXY {p}"));
    }
    if let Some(s) = socks {
        entries.push(format!("SOCKS5 {s}"));
    }
    if entries.is_empty() {
        entries.push("DIRECT".into());
    }
    out.push_str(&format!("    return \"{}\";\n}}\n", entries.join("; ")));
    out
}

/// A JavaScript condition on `h` (lower-case host, IPv6 without brackets) for one rule.
fn condition(rule: &BypassRule) -> String {
    let q = |s: &str| format!("{s:?}");
    match rule {
        BypassRule::All => "true".into(),
        BypassRule::Local => "isPlainHostName(h)".into(),
        BypassRule::Host(HostPattern::Exact(n)) => format!("h == {}", q(n)),
        BypassRule::Host(HostPattern::Subdomains(s)) => {
            format!("dnsDomainIs(h, {})", q(&format!(".{s}")))
        }
        BypassRule::Host(HostPattern::Domain(s)) => {
            format!("h == {} || dnsDomainIs(h, {})", q(s), q(&format!(".{s}")))
        }
        BypassRule::Host(HostPattern::Cidr(ipnet::IpNet::V4(net))) => format!(
            "v4 && isInNet(h, {}, {})",
            q(&net.network().to_string()),
            q(&net.netmask().to_string())
        ),
        BypassRule::Host(HostPattern::Cidr(net)) => {
            format!("v6 && isInNetEx(h, {})", q(&net.trunc().to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(rules: &[&str]) -> StaticRoutes {
        StaticRoutes {
            bypass: rules
                .iter()
                .map(|r| BypassRule::parse(r).unwrap())
                .collect(),
            bypass_loopback: true,
            ..StaticRoutes::default()
        }
    }

    #[test]
    fn the_script_lists_the_proxy_then_socks_and_each_bypass_rule() {
        let s = script(
            Some("127.0.0.1:3128"),
            Some("127.0.0.1:1080"),
            &routes(&[
                "*.corp.example",
                "<local>",
                "10.0.0.0/8",
                "fd00::/8",
                "intranet",
            ]),
        );
        assert!(
            s.contains("return \"PROXY 127.0.0.1:3128; SOCKS5 127.0.0.1:1080\";"),
            "{s}"
        );
        assert!(s.contains("dnsDomainIs(h, \".corp.example\")"), "{s}");
        assert!(s.contains("isPlainHostName(h)"), "{s}");
        assert!(s.contains("isInNet(h, \"10.0.0.0\", \"255.0.0.0\")"), "{s}");
        assert!(s.contains("isInNetEx(h, \"fd00::/8\")"), "{s}");
        assert!(s.contains("h == \"intranet\""), "{s}");
    }

    #[test]
    fn the_address_is_the_host_the_client_used_with_the_listener_port() {
        let any: SocketAddr = "0.0.0.0:3128".parse().unwrap();
        let arrived = Some("10.1.2.3:3128".parse().unwrap());
        assert_eq!(
            endpoint(any, arrived, Some("waypost.local:3128")),
            "waypost.local:3128"
        );
        assert_eq!(endpoint(any, arrived, None), "10.1.2.3:3128");
        let lo: SocketAddr = "127.0.0.1:3128".parse().unwrap();
        let admin = Some("127.0.0.1:9128".parse().unwrap());
        assert_eq!(
            endpoint(lo, admin, Some("localhost:9128")),
            "localhost:3128"
        );
        assert_eq!(
            endpoint(lo, Some("10.0.0.9:9128".parse().unwrap()), Some("x")),
            "127.0.0.1:3128"
        );
        let v6: SocketAddr = "[::1]:3128".parse().unwrap();
        assert_eq!(endpoint(v6, Some(v6), Some("[::1]:3128")), "[::1]:3128");
    }

    #[test]
    fn the_listener_is_the_one_the_request_came_in_on_or_the_first() {
        let ls: Vec<SocketAddr> = vec![
            "127.0.0.1:3128".parse().unwrap(),
            "[::]:3129".parse().unwrap(),
        ];
        let on = |a: &str| {
            proxy_listener(&ls, Some(a.parse().unwrap()))
                .unwrap()
                .to_string()
        };
        assert_eq!(on("[::1]:3129"), "[::1]:3129");
        assert_eq!(on("127.0.0.1:9128"), "127.0.0.1:3128");
    }
}
