//! Network change detection for WPAD refresh: a counter that goes up when the set of interface
//! addresses or the default routes change (WinHTTP re-runs detection when the IP changes).
//!
//! On Linux a netlink socket (link, address and route groups) wakes the watcher at once; a
//! periodic poll is the fallback and the safety net. Either way a bump happens only when the
//! observed state differs ([`snapshot`]: addresses from `getifaddrs`, default routes from
//! `/proc/net/route` and `/proc/net/ipv6_route`), so link noise without effect is not
//! reported. The watcher only observes; the caller decides what a change means.

use std::time::Duration;

use tokio::sync::watch;

/// Poll period without netlink; with netlink the poll runs ten times less often.
const POLL: Duration = Duration::from_secs(3);
/// After a netlink event, wait this long for the burst to settle (an address change comes
/// with route changes) before looking.
const SETTLE: Duration = Duration::from_millis(250);

/// Spawns the watcher task; see [`NetworkWatcher::spawn`].
pub struct NetworkWatcher;

impl NetworkWatcher {
    /// Starts watching on the current tokio runtime (must be called inside one). The receiver
    /// starts at 0 and goes up by one for each observed change; the task stops when every
    /// receiver is dropped.
    pub fn spawn() -> watch::Receiver<u64> {
        Self::spawn_with_poll(POLL)
    }

    /// Like [`NetworkWatcher::spawn`] with another fallback poll period (tests).
    pub fn spawn_with_poll(poll: Duration) -> watch::Receiver<u64> {
        let (tx, rx) = watch::channel(0u64);
        tokio::spawn(run(tx, poll));
        rx
    }
}

enum Wake {
    Closed,
    Tick,
    Netlink(std::io::Result<()>),
}

async fn run(tx: watch::Sender<u64>, poll: Duration) {
    let mut last = snapshot();
    let mut nl = netlink::Subscription::open().ok();
    loop {
        let period = if nl.is_some() { poll * 10 } else { poll };
        let wake = tokio::select! {
            _ = tx.closed() => Wake::Closed,
            _ = tokio::time::sleep(period) => Wake::Tick,
            r = netlink::wait(nl.as_mut()) => Wake::Netlink(r),
        };
        match wake {
            Wake::Closed => return,
            Wake::Tick => {}
            Wake::Netlink(Ok(())) => {
                tokio::time::sleep(SETTLE).await;
                if let Some(s) = nl.as_mut() {
                    s.drain();
                }
            }
            Wake::Netlink(Err(e)) => {
                tracing::debug!(error = %e, "netlink watch failed; polling network state instead");
                nl = None;
            }
        }
        let now = snapshot();
        if now != last {
            tracing::debug!("network change observed");
            last = now;
            tx.send_modify(|c| *c = c.wrapping_add(1));
        }
    }
}

/// What counts as "the network": every interface address and every default route, sorted
/// (empty parts when they cannot be read).
pub fn snapshot() -> Vec<String> {
    try_snapshot().unwrap_or_default()
}

/// [`snapshot`], or the error that kept it from being read (e.g. no file descriptor left):
/// a caller comparing snapshots must not take a failed read for a changed network.
pub fn try_snapshot() -> std::io::Result<Vec<String>> {
    let mut s: Vec<String> = Vec::new();
    for a in nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)? {
        let Some(addr) = a.address else { continue };
        if let Some(v4) = addr.as_sockaddr_in() {
            s.push(format!("addr {} {}", a.interface_name, v4.ip()));
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            s.push(format!("addr {} {}", a.interface_name, v6.ip()));
        }
    }
    s.extend(default_routes_v4(&read_optional("/proc/net/route")?));
    s.extend(default_routes_v6(&read_optional("/proc/net/ipv6_route")?));
    s.sort();
    Ok(s)
}

/// A file's text; empty when it does not exist (no IPv6, no resolv.conf), an error otherwise.
pub fn read_optional(path: &str) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        r => r,
    }
}

/// Default IPv4 routes (`iface gateway metric`) in a `/proc/net/route` text.
pub fn default_routes_v4(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
            (f.len() >= 8 && f[1] == "00000000" && f[7] == "00000000")
                .then(|| format!("route4 {} {} {}", f[0], f[2], f[6]))
        })
        .collect()
}

/// Default IPv6 routes (`iface nexthop metric`) in a `/proc/net/ipv6_route` text, leaving out
/// the kernel's reject entries on `lo`.
pub fn default_routes_v6(text: &str) -> Vec<String> {
    const ZERO: &str = "00000000000000000000000000000000";
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // dest plen src splen nexthop metric refcnt use flags iface
            (f.len() >= 10 && f[0] == ZERO && f[1] == "00" && f[9] != "lo")
                .then(|| format!("route6 {} {} {}", f[9], f[4], f[5]))
        })
        .collect()
}

#[cfg(target_os = "linux")]
mod netlink {
    use std::os::fd::{AsRawFd, OwnedFd};

    use nix::errno::Errno;
    use nix::sys::socket::{
        self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
    };
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    const RTMGRP_LINK: u32 = 0x1;
    const RTMGRP_IPV4_IFADDR: u32 = 0x10;
    const RTMGRP_IPV4_ROUTE: u32 = 0x40;
    const RTMGRP_IPV6_IFADDR: u32 = 0x100;
    const RTMGRP_IPV6_ROUTE: u32 = 0x400;

    /// A route netlink socket subscribed to link, address and route changes.
    pub struct Subscription(AsyncFd<OwnedFd>);

    impl Subscription {
        pub fn open() -> std::io::Result<Subscription> {
            let fd = socket::socket(
                AddressFamily::Netlink,
                SockType::Raw,
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                SockProtocol::NetlinkRoute,
            )?;
            let groups = RTMGRP_LINK
                | RTMGRP_IPV4_IFADDR
                | RTMGRP_IPV4_ROUTE
                | RTMGRP_IPV6_IFADDR
                | RTMGRP_IPV6_ROUTE;
            socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups))?;
            // SAFETY: an `OwnedFd` is open until dropped and always returns the same fd; the
            // `AsyncFd` owns it for its whole life.
            let afd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
            Ok(Subscription(afd))
        }

        /// Reads and discards what is queued (the content does not matter: the snapshot
        /// decides whether anything changed).
        pub fn drain(&mut self) {
            let mut buf = [0u8; 8192];
            loop {
                match socket::recv(
                    self.0.get_ref().as_raw_fd(),
                    &mut buf,
                    MsgFlags::MSG_DONTWAIT,
                ) {
                    Ok(0) | Err(Errno::EAGAIN) => return,
                    Ok(_) | Err(Errno::ENOBUFS) | Err(Errno::EINTR) => continue, // ENOBUFS: overrun, we look anyway
                    Err(_) => return,
                }
            }
        }
    }

    /// Resolves when netlink has something to read; never without a subscription.
    pub async fn wait(sub: Option<&mut Subscription>) -> std::io::Result<()> {
        let Some(sub) = sub else {
            return std::future::pending().await;
        };
        let mut guard = sub.0.readable().await?;
        guard.clear_ready();
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod netlink {
    pub struct Subscription;

    impl Subscription {
        pub fn open() -> std::io::Result<Subscription> {
            Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "netlink is Linux only",
            ))
        }

        pub fn drain(&mut self) {}
    }

    pub async fn wait(_: Option<&mut Subscription>) -> std::io::Result<()> {
        std::future::pending().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ipv4_routes_are_read_from_proc_net_route() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                    eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(default_routes_v4(text), ["route4 eth0 0100A8C0 100"]);
        assert!(default_routes_v4("Iface\tDestination\n").is_empty());
    }

    #[test]
    fn default_ipv6_routes_skip_the_kernel_reject_entries_on_lo() {
        let z = "00000000000000000000000000000000";
        let text = format!(
            "{z} 00 {z} 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n\
             {z} 00 {z} 00 {z} ffffffff 00000001 00000000 00200200 lo\n\
             fe800000000000000000000000000000 40 {z} 00 {z} 00000100 00000001 00000000 00000001 eth0\n"
        );
        assert_eq!(
            default_routes_v6(&text),
            ["route6 eth0 fe800000000000000000000000000001 00000400"]
        );
    }

    #[test]
    fn snapshot_includes_the_loopback_address() {
        assert!(
            snapshot()
                .iter()
                .any(|l| l.starts_with("addr lo 127.0.0.1")),
            "{:?}",
            snapshot()
        );
    }

    #[tokio::test]
    async fn the_watcher_starts_at_zero_and_stops_when_the_receiver_is_dropped() {
        let rx = NetworkWatcher::spawn_with_poll(Duration::from_millis(20));
        assert_eq!(*rx.borrow(), 0);
        drop(rx);
        // the task notices and returns: nothing is left running on this runtime
        waypost_testsupport::eventually(
            Duration::from_secs(5),
            || async {
                tokio::runtime::Handle::current()
                    .metrics()
                    .num_alive_tasks()
            },
            |alive| *alive == 0,
        )
        .await;
    }
}
