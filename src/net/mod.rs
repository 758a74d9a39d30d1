//! "Which network am I on": the one owner of the network identity (interface addresses,
//! default routes, DNS servers and search domains from resolv.conf) and of the change event
//! every network-dependent part subscribes to (PAC `myIpAddress` and caches, resolvers, WPAD
//! rediscovery, bad-proxy marks, pooled connections).
//!
//! It only observes and publishes: a `watch` of [`NetworkId`] that changes when the identity
//! does. Addresses and routes come from [`crate::net::wpad::netwatch`] (netlink, poll fallback);
//! resolv.conf is re-read every [`RESOLV_POLL`] (a VPN client rewrites it without any netlink
//! event). What a change means is decided by the subscribers ([`follow`] for the parts of one
//! `App` generation, the autoproxy's refresh task for the PAC engine and WPAD).

pub mod dns;
pub mod trust;
pub mod wpad;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::net::wpad::netwatch::read_optional;

/// How often resolv.conf is compared with what was seen last.
pub const RESOLV_POLL: Duration = Duration::from_millis(250);
/// The resolver configuration file (inside `ip netns exec NAME`, /etc/netns/NAME/resolv.conf
/// is mounted here).
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The identity of the network the machine is on now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkId {
    /// `addr IFACE IP`, `route4 ...`, `route6 ...` lines, sorted (see `netwatch::snapshot`).
    pub interfaces: Vec<String>,
    /// `nameserver` entries of resolv.conf, in order.
    pub dns_servers: Vec<String>,
    /// `search` (or `domain`) entries of resolv.conf, in order.
    pub search: Vec<String>,
}

impl NetworkId {
    /// Looks at the machine now (what cannot be read counts as empty).
    pub fn observe() -> NetworkId {
        let (dns_servers, search) =
            parse_resolv_conf(&read_optional(RESOLV_CONF).unwrap_or_default());
        NetworkId {
            interfaces: crate::net::wpad::netwatch::snapshot(),
            dns_servers,
            search,
        }
    }

    /// Looks at the machine now, or says why it could not: a read that failed (no file
    /// descriptor left, say) is not a network change.
    fn try_observe() -> std::io::Result<NetworkId> {
        let (dns_servers, search) = parse_resolv_conf(&read_optional(RESOLV_CONF)?);
        Ok(NetworkId {
            interfaces: crate::net::wpad::netwatch::try_snapshot()?,
            dns_servers,
            search,
        })
    }

    /// The fingerprint a WPAD-discovered script is bound to: like [`NetworkId::fingerprint`]
    /// but without IPv6 addresses (temporary addresses rotate on the same network; the IPv4
    /// addresses, the default routes and resolv.conf tell networks apart).
    pub fn wpad_binding(&self) -> String {
        NetworkId {
            interfaces: self
                .interfaces
                .iter()
                .filter(|l| {
                    !(l.starts_with("addr ")
                        && l.rsplit(' ').next().is_some_and(|ip| ip.contains(':')))
                })
                .cloned()
                .collect(),
            ..self.clone()
        }
        .fingerprint()
    }

    /// A stable fingerprint (16 hex digits, FNV-1a over the identity): the same network gives
    /// the same value across restarts and builds (kept on disk beside a WPAD script).
    pub fn fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let parts = [&self.interfaces, &self.dns_servers, &self.search];
        for (i, part) in parts.iter().enumerate() {
            for line in part.iter() {
                for b in line.bytes().chain([0u8]) {
                    h ^= u64::from(b);
                    h = h.wrapping_mul(0x0100_0000_01b3);
                }
            }
            h ^= 0xff - i as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// (nameservers, search domains) of a resolv.conf text.
pub fn parse_resolv_conf(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut servers, mut search) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => servers.extend(words.next().map(str::to_string)),
            Some("search") | Some("domain") => {
                search = words.map(str::to_string).collect();
            }
            _ => {}
        }
    }
    (servers, search)
}

/// Starts the observer on the current runtime (or, outside one, a value that never changes).
/// The task ends when every receiver is dropped.
pub fn spawn() -> watch::Receiver<Arc<NetworkId>> {
    let (tx, rx) = watch::channel(Arc::new(NetworkId::observe()));
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::spawn(observe(tx));
    }
    rx
}

async fn observe(tx: watch::Sender<Arc<NetworkId>>) {
    let mut links = crate::net::wpad::NetworkWatcher::spawn();
    let mut tick = tokio::time::interval(RESOLV_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            r = links.changed() => {
                if r.is_err() {
                    // the link watcher is gone: resolv.conf polling still sees interfaces
                    links = crate::net::wpad::NetworkWatcher::spawn();
                }
            }
            _ = tick.tick() => {
                // only resolv.conf can change without a netlink event: read just that
                let Ok(text) = read_optional(RESOLV_CONF) else { continue };
                let (servers, search) = parse_resolv_conf(&text);
                let last = tx.borrow();
                if servers == last.dns_servers && search == last.search {
                    continue;
                }
            }
        }
        let now = match NetworkId::try_observe() {
            Ok(now) => now,
            Err(e) => {
                tracing::debug!(error = %e, "cannot look at the network now; keeping the last view");
                continue;
            }
        };
        if now != **tx.borrow() {
            tracing::info!(
                fingerprint = %now.fingerprint(),
                dns_servers = ?now.dns_servers,
                "the network changed"
            );
            tx.send_replace(Arc::new(now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_gives_servers_in_order_and_the_last_search_line() {
        let text = "# generated\nnameserver 10.0.0.53\nnameserver 10.0.0.54 # second\n\
                    domain old.example\nsearch corp.example lab.example\noptions ndots:2\n";
        assert_eq!(
            parse_resolv_conf(text),
            (
                vec!["10.0.0.53".to_string(), "10.0.0.54".to_string()],
                vec!["corp.example".to_string(), "lab.example".to_string()]
            )
        );
    }

    #[test]
    fn the_fingerprint_is_stable_and_tells_networks_apart() {
        let office = NetworkId {
            interfaces: vec!["addr eth0 10.1.2.3".into()],
            dns_servers: vec!["10.1.0.53".into()],
            search: vec!["corp.example".into()],
        };
        let home = NetworkId {
            dns_servers: vec!["192.168.1.1".into()],
            ..office.clone()
        };
        assert_eq!(office.fingerprint(), office.clone().fingerprint());
        assert_ne!(office.fingerprint(), home.fingerprint());
        assert_eq!(office.fingerprint().len(), 16);
        // the parts are kept apart: moving a line from one part to another changes it
        let moved = NetworkId {
            interfaces: vec![],
            dns_servers: vec!["addr eth0 10.1.2.3".into(), "10.1.0.53".into()],
            ..office.clone()
        };
        assert_ne!(office.fingerprint(), moved.fingerprint());
    }
}
