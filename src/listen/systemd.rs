//! systemd integration without systemd: socket activation (the `sd_listen_fds` protocol) and
//! readiness notification (`sd_notify`), both small enough to speak by hand.
//!
//! Socket activation: systemd (or `systemd-socket-activate`) binds the sockets and starts
//! waypost with them open from fd 3 on, `LISTEN_PID` = our pid, `LISTEN_FDS` = their number
//! and optionally `LISTEN_FDNAMES` = colon-separated names (`FileDescriptorName=` in the
//! `.socket` unit). Names tell the sockets apart: `proxy`, `admin` and `socks`; an unnamed
//! socket (or one named `unknown`, systemd's default, or after the socket unit's name) is a
//! proxy socket. The variables are removed once read, so PAC worker processes never see them,
//! and the inherited sockets are marked close-on-exec. This module only takes the sockets over;
//! the server decides what to do with them, and binds nothing for a role that was handed over.
//!
//! Notification: when `NOTIFY_SOCKET` is set (`Type=notify`), `READY=1` once every listener
//! serves, `RELOADING=1`/`READY=1` are not sent (reloads keep serving), `STOPPING=1` when the
//! drain begins. A failure to notify is logged, never fatal.

use std::net::TcpListener;

/// The first inherited descriptor (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// What an inherited socket is for, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Proxy,
    Admin,
    Socks,
}

impl Role {
    /// `proxy`, `admin`, `socks`; anything else (no name, `unknown`, a unit's name) is a proxy
    /// socket, as the first socket of a unit without names must be.
    pub fn from_name(name: &str) -> Role {
        match name.trim().to_ascii_lowercase().as_str() {
            "admin" => Role::Admin,
            "socks" | "socks5" => Role::Socks,
            _ => Role::Proxy,
        }
    }
}

/// The listening sockets handed over by the service manager, by role.
#[derive(Debug, Default)]
pub struct Inherited {
    pub proxy: Vec<TcpListener>,
    pub admin: Vec<TcpListener>,
    pub socks: Vec<TcpListener>,
}

impl Inherited {
    pub fn is_empty(&self) -> bool {
        self.proxy.is_empty() && self.admin.is_empty() && self.socks.is_empty()
    }
}

/// The roles of `count` inherited sockets from `LISTEN_FDNAMES` (pure: the protocol's rules).
pub fn roles(count: usize, names: Option<&str>) -> Vec<Role> {
    let names: Vec<&str> = names.map(|n| n.split(':').collect()).unwrap_or_default();
    (0..count)
        .map(|i| names.get(i).map_or(Role::Proxy, |n| Role::from_name(n)))
        .collect()
}

/// Takes over the sockets passed by socket activation, if they are meant for this process.
/// Must run before other threads start (it removes the `LISTEN_*` variables). `Ok(None)` when
/// waypost was not socket-activated.
pub fn take_listen_fds() -> Result<Option<Inherited>, String> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(v);
    }
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(None);
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        // meant for another process (a parent that did not clean up): not ours to take
        return Ok(None);
    }
    let count: usize = fds
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_FDS={fds:?} is not a number"))?;
    let mut inherited = Inherited::default();
    for (i, role) in roles(count, names.as_deref()).into_iter().enumerate() {
        let fd = LISTEN_FDS_START + i as i32;
        let listener = adopt(fd)?;
        match role {
            Role::Proxy => inherited.proxy.push(listener),
            Role::Admin => inherited.admin.push(listener),
            Role::Socks => inherited.socks.push(listener),
        }
    }
    Ok(Some(inherited))
}

#[cfg(unix)]
fn adopt(fd: i32) -> Result<TcpListener, String> {
    use std::os::fd::FromRawFd;
    // SAFETY: the sd_listen_fds protocol hands this process descriptors LISTEN_FDS_START ..
    // LISTEN_FDS_START + LISTEN_FDS - 1, and nothing else in waypost has touched them yet (this
    // runs first thing in main); each is adopted exactly once.
    let socket = unsafe { socket2::Socket::from_raw_fd(fd) };
    let bad = |why: String| format!("inherited socket fd {fd}: {why}");
    match socket.r#type() {
        Ok(t) if t == socket2::Type::STREAM => {}
        Ok(_) => {
            return Err(bad(
                "not a stream socket (use ListenStream= in the .socket unit)".into(),
            ))
        }
        Err(e) => return Err(bad(format!("not a socket: {e}"))),
    }
    let addr = socket.local_addr().map_err(|e| bad(e.to_string()))?;
    if addr.as_socket().is_none() {
        return Err(bad(
            "not a TCP socket (waypost listens on IP addresses, not unix sockets)".into(),
        ));
    }
    if !socket.is_listener().unwrap_or(true) {
        return Err(bad(
            "not listening (Accept=yes is not supported; use Accept=no)".into(),
        ));
    }
    socket.set_cloexec(true).map_err(|e| bad(e.to_string()))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| bad(e.to_string()))?;
    Ok(socket.into())
}

#[cfg(not(unix))]
fn adopt(fd: i32) -> Result<TcpListener, String> {
    Err(format!(
        "inherited socket fd {fd}: socket activation needs a unix system"
    ))
}

/// Sends `state` (e.g. `READY=1`) to the service manager when `NOTIFY_SOCKET` is set; returns
/// whether a message was sent.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    match send_notify(&path, state) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
            false
        }
    }
}

#[cfg(target_os = "linux")]
fn send_notify(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(std::path::Path::new(path))?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(all(unix, not(target_os = "linux")))]
fn send_notify(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    sock.send_to(state.as_bytes(), path)?;
    Ok(())
}

#[cfg(not(unix))]
fn send_notify(_path: &std::ffi::OsStr, _state: &str) -> std::io::Result<()> {
    Err(std::io::Error::other("not supported on this system"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unnamed_sockets_are_proxy_sockets() {
        assert_eq!(roles(2, None), vec![Role::Proxy, Role::Proxy]);
    }

    #[test]
    fn names_pick_the_role_and_unknown_names_mean_proxy() {
        assert_eq!(
            roles(4, Some("admin:proxy:socks:waypost.socket")),
            vec![Role::Admin, Role::Proxy, Role::Socks, Role::Proxy]
        );
        assert_eq!(roles(2, Some("socks")), vec![Role::Socks, Role::Proxy]);
    }

    #[test]
    fn notify_sends_the_state_to_the_socket_in_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        send_notify(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
