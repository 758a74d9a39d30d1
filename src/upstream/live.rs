//! Upstream sockets by local address, so that a network change can cut the ones it stranded.
//!
//! When the machine leaves a network without the link going down first (undocking with Wi-Fi
//! up, a VPN dropping), a TCP connection bound to an address that is gone sends into nothing:
//! a request on it waits for its response timeout. So every upstream socket waypost opens is
//! registered here with its local address ([`LiveSockets::register`]); on a network change,
//! [`LiveSockets::cut_stranded`] shuts down (both directions) each one whose local address is
//! gone, or whose interface no longer carries the default route it carried before, so that
//! whatever waits on it (a pooled connection, a request, a tunnel) fails at once.
//!
//! Soundness: the guard ([`Registered`]) is held next to the socket and dropped before it
//! closes, and both the removal and the cut hold one lock; a cut therefore never reaches a
//! closed (or reused) descriptor.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::net::NetworkId;

/// The process's upstream sockets: one registry, whichever configuration generation opened them
/// (pooled connections outlive a reload).
pub fn sockets() -> &'static Arc<LiveSockets> {
    static LIVE: std::sync::OnceLock<Arc<LiveSockets>> = std::sync::OnceLock::new();
    LIVE.get_or_init(Arc::default)
}

/// The descriptor and local address of `io` when it is a TCP stream (to register once the
/// stream is final: the caller keeps `io` alive while it registers).
pub fn socket_of<IO: std::any::Any>(io: &IO) -> Option<(Fd, IpAddr)> {
    let tcp = (io as &dyn std::any::Any).downcast_ref::<tokio::net::TcpStream>()?;
    Some((Fd(tcp.as_raw_fd()), tcp.local_addr().ok()?.ip()))
}

/// A descriptor number, for [`LiveSockets::register`].
#[derive(Debug, Clone, Copy)]
pub struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

#[derive(Default)]
pub struct LiveSockets {
    sockets: Mutex<HashMap<u64, (IpAddr, RawFd)>>,
    next: AtomicU64,
    /// When connections were last cut (a failure soon after names the cause).
    last_cut: Mutex<Option<Instant>>,
}

/// Keeps a socket registered; dropped (before the socket closes) to take it out.
pub struct Registered {
    id: u64,
    set: Arc<LiveSockets>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.set
            .sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registered({})", self.id)
    }
}

impl LiveSockets {
    /// Registers `socket` (the guard must be dropped before the socket is closed). Loopback
    /// sockets are not registered: a network change cannot strand them.
    pub fn register(self: &Arc<Self>, socket: &impl AsRawFd, local: IpAddr) -> Option<Registered> {
        if local.is_loopback() {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (local, socket.as_raw_fd()));
        Some(Registered {
            id,
            set: self.clone(),
        })
    }

    /// How many sockets are registered (tests, status).
    pub fn len(&self) -> usize {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shuts down every registered socket stranded by the move from `before` to `now` (see
    /// [`stranded`]); returns how many.
    pub fn cut_stranded(&self, before: &NetworkId, now: &NetworkId) -> usize {
        let map = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        let locals: HashSet<IpAddr> = map.values().map(|(ip, _)| *ip).collect();
        let gone: HashSet<IpAddr> = locals
            .into_iter()
            .filter(|ip| stranded(*ip, before, now))
            .collect();
        let mut cut = 0;
        for (ip, fd) in map.values() {
            if gone.contains(ip) {
                // the descriptor is open: its guard is registered, and a guard is removed
                // (under this lock) before its socket closes
                let _ = nix::sys::socket::shutdown(*fd, nix::sys::socket::Shutdown::Both);
                cut += 1;
            }
        }
        drop(map);
        if cut > 0 {
            *self.last_cut.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
        cut
    }

    /// Whether connections were cut within `within` (a failure then has that cause).
    pub fn cut_within(&self, within: std::time::Duration) -> bool {
        self.last_cut
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() <= within)
    }
}

/// Whether a socket with local address `ip` is stranded by the move from `before` to `now`:
/// the address is gone, or its interface carried a default route (of its family) before and
/// no longer does while another interface now does (the way out moved elsewhere).
pub fn stranded(ip: IpAddr, before: &NetworkId, now: &NetworkId) -> bool {
    let Some(iface) = iface_of(now, ip) else {
        return true;
    };
    let family = if ip.is_ipv4() { "route4 " } else { "route6 " };
    let routes = |n: &NetworkId| -> Vec<String> {
        n.interfaces
            .iter()
            .filter_map(|l| l.strip_prefix(family))
            .filter_map(|r| r.split_whitespace().next().map(str::to_string))
            .collect()
    };
    let (was, is) = (routes(before), routes(now));
    was.contains(&iface) && !is.contains(&iface) && !is.is_empty()
}

/// The interface holding `ip` in `n`.
fn iface_of(n: &NetworkId, ip: IpAddr) -> Option<String> {
    n.interfaces.iter().find_map(|l| {
        let mut w = l.strip_prefix("addr ")?.split_whitespace();
        let (iface, addr) = (w.next()?, w.next()?);
        (addr.parse::<IpAddr>().ok()? == ip).then(|| iface.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(lines: &[&str]) -> NetworkId {
        NetworkId {
            interfaces: lines.iter().map(|l| l.to_string()).collect(),
            ..NetworkId::default()
        }
    }

    #[test]
    fn a_socket_is_stranded_when_its_address_goes_or_the_way_out_moves_elsewhere() {
        let docked = net(&[
            "addr eth0 10.0.0.5",
            "addr wlan0 192.168.1.7",
            "route4 eth0 0100000A 100",
            "route4 wlan0 0101A8C0 600",
        ]);
        let undocked = net(&["addr wlan0 192.168.1.7", "route4 wlan0 0101A8C0 600"]);
        let eth = "10.0.0.5".parse().unwrap();
        let wlan = "192.168.1.7".parse().unwrap();
        assert!(stranded(eth, &docked, &undocked), "address gone");
        assert!(!stranded(wlan, &docked, &undocked), "wlan0 still routes");
        // cable out, address kept, default route moved to wlan0
        let unplugged = net(&[
            "addr eth0 10.0.0.5",
            "addr wlan0 192.168.1.7",
            "route4 wlan0 0101A8C0 600",
        ]);
        assert!(stranded(eth, &docked, &unplugged));
        // no default route anywhere any more: nothing moved elsewhere, nothing to judge by
        let offline = net(&["addr eth0 10.0.0.5"]);
        assert!(!stranded(eth, &docked, &offline));
        // an address on an interface that never had the default route stays
        let lan = net(&["addr eth1 172.16.0.2", "route4 wlan0 0101A8C0 600"]);
        let lan_before = net(&["addr eth1 172.16.0.2", "route4 eth0 0100000A 100"]);
        assert!(!stranded("172.16.0.2".parse().unwrap(), &lan_before, &lan));
    }

    #[tokio::test]
    async fn cut_sockets_fail_at_once_and_dropped_ones_leave_the_registry() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (_server, _) = listener.accept().await.unwrap();
        let live = Arc::new(LiveSockets::default());
        assert!(
            live.register(&client, "127.0.0.1".parse().unwrap())
                .is_none(),
            "loopback"
        );
        // registered as if bound to an address of eth0
        let guard = live.register(&client, "10.9.9.9".parse().unwrap()).unwrap();
        let other = tokio::net::TcpStream::connect(addr).await.unwrap();
        let kept = live
            .register(&other, "192.168.1.7".parse().unwrap())
            .unwrap();
        assert_eq!(live.len(), 2);
        let before = net(&["addr eth0 10.9.9.9", "addr wlan0 192.168.1.7"]);
        let after = net(&["addr wlan0 192.168.1.7"]);
        assert!(!live.cut_within(std::time::Duration::from_secs(5)));
        assert_eq!(live.cut_stranded(&before, &after), 1);
        assert!(live.cut_within(std::time::Duration::from_secs(5)));
        // a read on the cut socket ends at once (EOF) instead of waiting for the peer
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 8];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("the read returns")
            .unwrap_or(0);
        assert_eq!(n, 0);
        drop(guard);
        drop(kept);
        assert!(live.is_empty());
    }
}
