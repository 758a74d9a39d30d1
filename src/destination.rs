//! The destination policy: which addresses a connection waypost opens may go to. One place,
//! used by the dialer on every address it is about to connect to (after resolution, so a name
//! that resolves to loopback is caught as well as a literal).
//!
//! - waypost's own listeners (proxy and admin ports) are refused for everyone: a request to
//!   them through the proxy is a loop, or a way around the admin surface's checks;
//! - for a *restricted* connection (opened for a client that is not on loopback: gateway
//!   mode), this machine's addresses (loopback, unspecified, any local interface address) and
//!   link-local ones (169.254.0.0/16 with the cloud metadata service, fe80::/10) are refused
//!   too, so other machines cannot reach the gateway's local services through it.
//!
//! Only the first hop is checked: a target reached through an upstream proxy is resolved and
//! policed by that proxy. Pure apart from [`is_local`], which asks the kernel.

use std::net::{IpAddr, SocketAddr};

use crate::error::{ErrorKind, ProxyError};

/// `ip` with IPv4-mapped IPv6 (`::ffff:127.0.0.1`) turned into IPv4, so one rule covers both.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
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

/// Whether `addr` is one of waypost's listeners (`own`; an unspecified listen address stands
/// for every local address on its port).
pub fn is_own(own: &[SocketAddr], addr: SocketAddr) -> bool {
    let ip = canonical(addr.ip());
    own.iter().any(|o| {
        o.port() == addr.port()
            && (canonical(o.ip()) == ip || (o.ip().is_unspecified() && is_local(ip)))
    })
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
    if restricted && (is_link_local(addr.ip()) || is_local(addr.ip())) {
        return Err(ProxyError::new(
            ErrorKind::TargetNotAllowed,
            format!(
                "{host} ({}) is on this machine or link-local; clients on other machines may \
                 not reach it through waypost",
                addr.ip()
            ),
        ));
    }
    Ok(())
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
    fn loopback_clients_are_not_restricted() {
        assert!(!restricts(a("127.0.0.1:5000")));
        assert!(!restricts(a("[::ffff:127.0.0.1]:5000")));
        assert!(restricts(a("10.1.2.3:5000")));
    }
}
