//! The host's network interfaces as WPAD sees them: name, first IPv4 address, hardware
//! address, flags. Read with `getifaddrs(3)`; nothing here sends a packet.
//!
//! [`eligible`] is the pure choice of which interfaces get a DHCPINFORM (up, not loopback,
//! with an IPv4 address and broadcast); the reasons for leaving one out are kept so that
//! `waypost wpad discover` can say why an interface the user named was not asked.

use std::net::Ipv4Addr;

use nix::net::if_::InterfaceFlags;

/// One interface with what a DHCPINFORM needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub ipv4: Ipv4Addr,
    /// Link-layer address (empty when the interface has none, e.g. a tunnel).
    pub hw: Vec<u8>,
}

/// An interface as listed, before the choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub ipv4: Vec<Ipv4Addr>,
    pub hw: Vec<u8>,
    pub up: bool,
    pub loopback: bool,
    pub broadcast: bool,
}

/// All interfaces, in the order the kernel lists them. A failing `getifaddrs` yields none.
pub fn list() -> Vec<Listed> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<Listed> = Vec::new();
    for a in addrs {
        let idx = match out.iter().position(|l| l.name == a.interface_name) {
            Some(i) => i,
            None => {
                out.push(Listed {
                    name: a.interface_name.clone(),
                    ipv4: Vec::new(),
                    hw: Vec::new(),
                    up: false,
                    loopback: false,
                    broadcast: false,
                });
                out.len() - 1
            }
        };
        let l = &mut out[idx];
        l.up |= a.flags.contains(InterfaceFlags::IFF_UP)
            && a.flags.contains(InterfaceFlags::IFF_RUNNING);
        l.loopback |= a.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        l.broadcast |= a.flags.contains(InterfaceFlags::IFF_BROADCAST);
        if let Some(addr) = a.address {
            if let Some(sin) = addr.as_sockaddr_in() {
                l.ipv4.push(sin.ip());
            } else if let Some(mac) = addr.as_link_addr().and_then(|ll| ll.addr()) {
                if mac != [0; 6] {
                    l.hw = mac.to_vec();
                }
            }
        }
    }
    out
}

/// Interfaces to ask by DHCP, and the reasons others were skipped as `(name, reason)`.
/// `wanted`: only these names (a named interface that does not exist is reported too).
pub fn eligible(
    listed: &[Listed],
    wanted: Option<&[String]>,
) -> (Vec<Iface>, Vec<(String, String)>) {
    let mut chosen = Vec::new();
    let mut skipped = Vec::new();
    if let Some(names) = wanted {
        for n in names {
            if !listed.iter().any(|l| &l.name == n) {
                skipped.push((n.clone(), "no such interface".to_string()));
            }
        }
    }
    for l in listed {
        if wanted.is_some_and(|names| !names.contains(&l.name)) {
            continue;
        }
        let why = if l.loopback {
            Some("loopback")
        } else if !l.up {
            Some("not up")
        } else if l.ipv4.is_empty() {
            Some("no IPv4 address")
        } else if !l.broadcast {
            Some("no broadcast (point-to-point)")
        } else {
            None
        };
        match why {
            Some(why) => {
                // an unnamed loopback interface is not worth a line
                if wanted.is_some() || !l.loopback {
                    skipped.push((l.name.clone(), why.to_string()));
                }
            }
            None => chosen.push(Iface {
                name: l.name.clone(),
                ipv4: l.ipv4[0],
                hw: l.hw.clone(),
            }),
        }
    }
    (chosen, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(name: &str, ip: Option<[u8; 4]>, up: bool, loopback: bool) -> Listed {
        Listed {
            name: name.into(),
            ipv4: ip.map(Ipv4Addr::from).into_iter().collect(),
            hw: vec![2, 0, 0, 0, 0, 1],
            up,
            loopback,
            broadcast: !loopback,
        }
    }

    #[test]
    fn only_up_non_loopback_ipv4_interfaces_are_asked_and_the_others_say_why() {
        let all = [
            listed("lo", Some([127, 0, 0, 1]), true, true),
            listed("eth0", Some([10, 0, 0, 2]), true, false),
            listed("eth1", Some([10, 0, 1, 2]), false, false),
            listed("eth2", None, true, false),
        ];
        let (chosen, skipped) = eligible(&all, None);
        assert_eq!(
            chosen.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["eth0"]
        );
        assert_eq!(chosen[0].ipv4, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(
            skipped,
            [
                ("eth1".to_string(), "not up".to_string()),
                ("eth2".to_string(), "no IPv4 address".to_string())
            ]
        );
    }

    #[test]
    fn named_interfaces_that_cannot_be_asked_are_reported_with_the_reason() {
        let all = [
            listed("lo", Some([127, 0, 0, 1]), true, true),
            listed("eth0", Some([10, 0, 0, 2]), true, false),
        ];
        let wanted = vec!["lo".to_string(), "wlan9".to_string()];
        let (chosen, skipped) = eligible(&all, Some(&wanted));
        assert!(chosen.is_empty());
        assert!(skipped.contains(&("lo".into(), "loopback".into())));
        assert!(skipped.contains(&("wlan9".into(), "no such interface".into())));
    }

    #[test]
    fn listing_finds_the_loopback_interface() {
        let all = list();
        assert!(
            all.iter()
                .any(|l| l.loopback && l.ipv4.contains(&Ipv4Addr::LOCALHOST)),
            "{all:?}"
        );
    }
}
