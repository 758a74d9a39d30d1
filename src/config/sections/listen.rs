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
    if raw.listen.is_empty() {
        p.add("listen", "at least one listen address is required");
    }
    let listen = addresses(
        &raw.listen,
        "listen",
        "\"127.0.0.1:3128\" or \"[::1]:3128\"",
        p,
    );
    let admin_listen = addresses(&raw.admin_listen, "admin_listen", "\"0.0.0.0:9128\"", p);
    let socks_listen = addresses(&raw.socks_listen, "socks_listen", "\"127.0.0.1:1080\"", p);
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

/// A list of socket addresses under `key`; `example` is shown with a bad one.
fn addresses(list: &[String], key: &str, example: &str, p: &mut Problems) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for (i, l) in list.iter().enumerate() {
        match l.parse::<SocketAddr>() {
            Ok(a) => out.push(a),
            Err(_) => p.add(
                format!("{key}[{i}]"),
                format!("invalid address {} (write e.g. {example})", shown(key, l)),
            ),
        }
    }
    out
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
