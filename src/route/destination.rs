//! The destination classifier: the one answer to "where does this address lead?", asked by
//! the dialer of every address it is about to connect to (after name resolution, so a name, a
//! numeric spelling such as `127.1` or `2130706433`, or a PAC- or config-named hop that resolves
//! to this machine is caught as well as a literal). Every path that opens a connection crosses
//! it: plain HTTP, CONNECT, upgrades, the SOCKS listener's CONNECT, and each proxy hop a PAC
//! script or the config names (the first hop; what lies beyond an upstream proxy is that
//! proxy's to police).
//!
//! [`classify`] returns a closed [`Destination`]; [`check`] turns it into the two rules:
//!
//! - [`Destination::OwnListener`] (one of waypost's own proxy, admin or SOCKS listeners, the
//!   served PAC included) is refused for everyone: a request to it through the proxy is a loop,
//!   or a way around the admin surface's checks;
//! - for a *restricted* connection (opened for a client that is not on loopback: gateway
//!   mode), [`Destination::ThisMachine`] (loopback, unspecified, any local interface address)
//!   and [`Destination::LinkLocal`] (169.254.0.0/16 with the cloud metadata service, fe80::/10)
//!   are refused too, so other machines cannot reach the gateway's local services through it.
//!
//! Spellings are normalised before any comparison: IPv4-mapped (`::ffff:127.0.0.1`) and
//! IPv4-compatible (`::127.0.0.1`) IPv6 become IPv4, and an unspecified address (`0.0.0.0`,
//! `::`, `::ffff:0.0.0.0`), which Linux connects to loopback, counts as loopback. Pure apart
//! from [`is_local`], which asks the kernel whether an address is bound here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::{ErrorKind, ProxyError};

/// Where an address leads, as far as waypost's own rules are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// One of waypost's own listeners (proxy, admin, SOCKS; the served PAC is on the proxy's).
    OwnListener,
    /// Another service of this machine: loopback, unspecified, or a local interface address.
    ThisMachine,
    /// The local link: 169.254.0.0/16 (cloud metadata) and fe80::/10.
    LinkLocal,
    /// Any other host, private or public.
    Remote,
}

/// `ip` with IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`) IPv6 turned into
/// IPv4, so one rule covers every spelling. `::` and `::1` stay IPv6.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.is_unspecified() || v6.is_loopback() => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            // `::a.b.c.d` (deprecated IPv4-compatible): the first 96 bits are zero
            None if v6.segments()[..6].iter().all(|s| *s == 0) => {
                IpAddr::V4(Ipv4Addr::from(v6.to_bits() as u32))
            }
            None => ip,
        },
        ip => ip,
    }
}

/// Where a connection to `ip` actually goes: its canonical form, with an unspecified address
/// (which Linux connects to loopback) replaced by loopback of its family.
fn effective(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}

/// Whether a client at `peer` gets restricted connections (it is not on this machine's
/// loopback).
pub fn restricts(peer: SocketAddr) -> bool {
    !canonical(peer.ip()).is_loopback()
}

/// Whether `ip` is an address of this machine: loopback, unspecified, or bound to one of its
/// interfaces (binding a UDP socket to it succeeds only then).
pub fn is_local(ip: IpAddr) -> bool {
    let ip = canonical(ip);
    ip.is_loopback()
        || ip.is_unspecified()
        || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// Link-local: 169.254.0.0/16 (the metadata service of most clouds) and fe80::/10.
pub fn is_link_local(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Whether a connection to `addr` would reach one of waypost's listeners (`own`): same port,
/// and the listener's address is where the connection goes, or the listener is unspecified
/// (every local address) and the connection stays on this machine. Any loopback address
/// reaches a loopback listener of the other family's unspecified twin too (`[::]` listeners
/// are dual-stack), so loopback is compared as "loopback", not bit for bit, when either side
/// is unspecified.
pub fn is_own(own: &[SocketAddr], addr: SocketAddr) -> bool {
    let to = effective(addr.ip());
    let unspecified_dest = canonical(addr.ip()).is_unspecified();
    own.iter().any(|o| {
        if o.port() != addr.port() {
            return false;
        }
        let listener = canonical(o.ip());
        listener == to
            || (listener.is_unspecified() && is_local(to))
            // `0.0.0.0` / `::` lead to loopback of either family's listener
            || (unspecified_dest && listener.is_loopback())
    })
}

/// Where `addr` leads (see [`Destination`]); `own`: waypost's listening addresses.
pub fn classify(own: &[SocketAddr], addr: SocketAddr) -> Destination {
    if is_own(own, addr) {
        Destination::OwnListener
    } else {
        beyond_own(addr)
    }
}

/// [`classify`] for an address that is not one of waypost's listeners (asks the kernel, through
/// [`is_local`], only here).
fn beyond_own(addr: SocketAddr) -> Destination {
    if is_local(effective(addr.ip())) {
        Destination::ThisMachine
    } else if is_link_local(addr.ip()) {
        Destination::LinkLocal
    } else {
        Destination::Remote
    }
}

/// Checks one address about to be dialled for `host:port` (named in the error).
pub fn check(
    own: &[SocketAddr],
    restricted: bool,
    host: &dyn std::fmt::Display,
    addr: SocketAddr,
) -> Result<(), ProxyError> {
    if is_own(own, addr) {
        return Err(ProxyError::new(
            ErrorKind::Loop,
            format!("{host} ({addr}) is this waypost itself; refusing to connect to it"),
        ));
    }
    // the rest of the classification (a socket bound to ask the kernel) only where a rule
    // depends on it: not on every unrestricted dial
    if !restricted {
        return Ok(());
    }
    match beyond_own(addr) {
        Destination::ThisMachine | Destination::LinkLocal => Err(ProxyError::new(
            ErrorKind::TargetNotAllowed,
            format!(
                "{host} ({}) is on this machine or link-local; clients on other machines may \
                 not reach it through waypost",
                addr.ip()
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn own_listeners_are_refused_for_everyone() {
        let own = [a("127.0.0.1:3128"), a("0.0.0.0:9128")];
        assert!(check(&own, false, &"x", a("127.0.0.1:3128")).is_err());
        assert!(check(&own, false, &"x", a("[::ffff:127.0.0.1]:3128")).is_err());
        assert!(check(&own, false, &"x", a("127.0.0.2:9128")).is_err());
        assert!(check(&own, false, &"x", a("127.0.0.1:8080")).is_ok());
    }

    #[test]
    fn restricted_connections_cannot_reach_this_machine_or_link_local_addresses() {
        for bad in [
            "127.0.0.1:80",
            "169.254.169.254:80",
            "[fe80::1]:80",
            "0.0.0.0:80",
            "[::1]:80",
        ] {
            assert_eq!(
                check(&[], true, &"x", a(bad)).unwrap_err().kind,
                ErrorKind::TargetNotAllowed,
                "{bad}"
            );
            assert!(check(&[], false, &"x", a(bad)).is_ok(), "{bad}");
        }
        assert!(check(&[], true, &"x", a("192.0.2.10:80")).is_ok());
    }

    #[test]
    fn every_spelling_of_this_machine_on_an_own_port_is_an_own_listener() {
        let own = [a("127.0.0.1:3128"), a("127.0.0.1:9128"), a("[::1]:1080")];
        for port in [3128, 9128, 1080] {
            for ip in [
                "127.0.0.1",
                "0.0.0.0",
                "::",
                "::ffff:0.0.0.0",
                "::ffff:127.0.0.1",
                "::127.0.0.1",
                "::1",
            ] {
                let addr = SocketAddr::new(ip.parse().unwrap(), port);
                // ::1 cannot reach a 127.0.0.1 listener, nor 127.0.0.1 a ::1 one; both are
                // still this machine
                let expect = match (ip, port) {
                    ("::1", 3128 | 9128) => Destination::ThisMachine,
                    ("127.0.0.1" | "::ffff:127.0.0.1" | "::127.0.0.1", 1080) => {
                        Destination::ThisMachine
                    }
                    _ => Destination::OwnListener,
                };
                assert_eq!(classify(&own, addr), expect, "{addr}");
            }
        }
        assert_eq!(
            classify(&own, a("127.0.0.1:8080")),
            Destination::ThisMachine
        );
        assert_eq!(classify(&own, a("[fe80::1]:3128")), Destination::LinkLocal);
        assert_eq!(classify(&own, a("192.0.2.10:3128")), Destination::Remote);
    }

    #[test]
    fn an_unspecified_listener_is_reached_from_every_local_address_and_spelling() {
        let own = [a("0.0.0.0:3128"), a("[::]:1080")];
        for bad in [
            "127.0.0.1:3128",
            "127.0.0.9:3128",
            "0.0.0.0:3128",
            "[::ffff:0.0.0.0]:3128",
            "[::1]:1080",
            "[::]:1080",
            "127.0.0.1:1080",
        ] {
            assert_eq!(classify(&own, a(bad)), Destination::OwnListener, "{bad}");
        }
    }

    #[test]
    fn canonical_maps_v4_mapped_and_compatible_forms_and_keeps_v6_loopback() {
        let c = |s: &str| canonical(s.parse().unwrap()).to_string();
        assert_eq!(c("::ffff:10.1.2.3"), "10.1.2.3");
        assert_eq!(c("::10.1.2.3"), "10.1.2.3");
        assert_eq!(c("::1"), "::1");
        assert_eq!(c("::"), "::");
        assert_eq!(c("2001:db8::1"), "2001:db8::1");
    }

    #[test]
    fn loopback_clients_are_not_restricted() {
        assert!(!restricts(a("127.0.0.1:5000")));
        assert!(!restricts(a("[::ffff:127.0.0.1]:5000")));
        assert!(restricts(a("10.1.2.3:5000")));
    }
}
