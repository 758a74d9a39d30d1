//! The listening part: the proxy, admin and SOCKS listeners, who may use them (`allow`,
//! `admin_allow`), what may not be exposed beyond loopback, and the connection caps.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::config::problems::Problems;
use crate::config::raw::RawConfig;
use crate::redact::value as shown;

/// The listeners and their allow lists.
pub struct Listeners {
    pub listen: Vec<SocketAddr>,
    pub admin_listen: Vec<SocketAddr>,
    pub socks_listen: Vec<SocketAddr>,
    pub allow: Vec<IpNet>,
    pub admin_allow: Vec<IpNet>,
}

/// The listening keys, each problem noted.
pub fn listeners(raw: &RawConfig, p: &mut Problems) -> Listeners {
    let mut listen = Vec::new();
    if raw.listen.is_empty() {
        p.add("listen", "at least one listen address is required");
    }
    for (i, l) in raw.listen.iter().enumerate() {
        match l.parse::<SocketAddr>() {
            Ok(a) => listen.push(a),
            Err(_) => p.add(
                format!("listen[{i}]"),
                format!(
                    "invalid address {} (write e.g. \"127.0.0.1:3128\" or \"[::1]:3128\")",
                    shown("listen", l)
                ),
            ),
        }
    }
    let mut admin_listen = Vec::new();
    for (i, l) in raw.admin_listen.iter().enumerate() {
        match l.parse::<SocketAddr>() {
            Ok(a) => admin_listen.push(a),
            Err(_) => p.add(
                format!("admin_listen[{i}]"),
                format!(
                    "invalid address {} (write e.g. \"0.0.0.0:9128\")",
                    shown("admin_listen", l)
                ),
            ),
        }
    }
    let mut socks_listen = Vec::new();
    for (i, l) in raw.socks_listen.iter().enumerate() {
        match l.parse::<SocketAddr>() {
            Ok(a) => socks_listen.push(a),
            Err(_) => p.add(
                format!("socks_listen[{i}]"),
                format!(
                    "invalid address {} (write e.g. \"127.0.0.1:1080\")",
                    shown("socks_listen", l)
                ),
            ),
        }
    }
    let allow = networks(&raw.allow, "allow", p);
    let admin_allow = networks(&raw.admin_allow, "admin_allow", p);
    // SOCKS listeners proxy too: beyond loopback they need the allow list as well
    let proxying: Vec<SocketAddr> = listen.iter().chain(&socks_listen).copied().collect();
    for (key, message) in
        crate::config::exposure::problems(raw, &proxying, &allow, &admin_listen, &admin_allow)
    {
        p.add(key, message);
    }
    if raw.max_client_connections == 0 {
        p.add("max_client_connections", "must be at least 1");
    }
    if raw.admin_max_connections == 0 {
        p.add("admin_max_connections", "must be at least 1");
    }

    Listeners {
        listen,
        admin_listen,
        socks_listen,
        allow,
        admin_allow,
    }
}

/// A list of networks (`10.0.0.0/8`, or a single address) under `key`.
fn networks(list: &[String], key: &str, p: &mut Problems) -> Vec<IpNet> {
    let mut out = Vec::new();
    for (i, a) in list.iter().enumerate() {
        match a
            .parse::<IpNet>()
            .or_else(|_| a.parse::<IpAddr>().map(IpNet::from))
        {
            Ok(n) => out.push(n),
            Err(_) => p.add(
                format!("{key}[{i}]"),
                format!(
                    "invalid network {} (write e.g. \"10.0.0.0/8\")",
                    shown(key, a)
                ),
            ),
        }
    }
    out
}
