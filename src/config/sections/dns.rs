//! `[dns]`: the resolver, its name servers and fixed host entries.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::config::problems::Problems;
use crate::config::raw::RawConfig;
use crate::config::{DnsConfig, ResolverKind};
use crate::redact::value as shown;

/// `[dns]`, each problem noted.
pub fn dns(raw: &RawConfig, p: &mut Problems) -> DnsConfig {
    let resolver = match raw.dns.resolver.as_str() {
        "hickory" => ResolverKind::Hickory,
        "system" => ResolverKind::System,
        other => {
            p.add(
                "dns.resolver",
                format!(
                    "unknown resolver {} (expected \"hickory\" or \"system\")",
                    shown("dns.resolver", other)
                ),
            );
            ResolverKind::Hickory
        }
    };
    let mut servers = Vec::new();
    for (i, srv) in raw.dns.servers.iter().enumerate() {
        match srv
            .parse::<SocketAddr>()
            .or_else(|_| srv.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        {
            Ok(a) => servers.push(a),
            Err(_) => p.add(
                format!("dns.servers[{i}]"),
                format!(
                    "{} is not an address (write e.g. \"10.0.0.53\" or \"10.0.0.53:53\")",
                    shown("dns.servers", srv)
                ),
            ),
        }
    }
    if !servers.is_empty() && resolver == ResolverKind::System {
        p.add(
            "dns.servers",
            "custom name servers need resolver = \"hickory\"",
        );
    }
    let mut hosts = HashMap::new();
    for (name, addrs) in &raw.dns.hosts {
        let mut ips = Vec::new();
        for a in addrs {
            match a.parse::<IpAddr>() {
                Ok(ip) => ips.push(ip),
                Err(_) => p.add(
                    format!("dns.hosts.{name}"),
                    format!("{} is not an IP address", shown("dns.hosts", a)),
                ),
            }
        }
        hosts.insert(name.to_ascii_lowercase(), ips);
    }

    DnsConfig {
        resolver,
        servers,
        hosts,
    }
}
