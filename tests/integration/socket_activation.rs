//! systemd socket activation without a running systemd: `systemd-socket-activate` (Debian's
//! `systemd` package) binds the sockets and starts the waypost binary with them, as a
//! `waypost.socket` unit would; waypost must serve on them, binding none of its configured
//! addresses, tell the sockets apart by name (`proxy`, `admin`, `socks`) and tell the service
//! manager it is ready (`NOTIFY_SOCKET`, `READY=1`).

use crate::support;

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::Duration;

use support::harness::Origin;
use waypost_testsupport::curl::Curl;
use waypost_testsupport::eventually;
use waypost_testsupport::peers::{free_port, require_program};

/// Kills the socket-activated waypost when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_handed_over_by_systemd_socket_activate_serves_proxied_requests() {
    require_program("systemd-socket-activate");
    require_program("curl");
    let origin = Origin::echo().await;
    let dir = tempfile::tempdir().unwrap();
    // the configured listen and admin addresses are held here: binding them would fail, so a
    // served request proves the inherited sockets were used
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held_admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = dir.path().join("waypost.toml");
    std::fs::write(
        &config,
        format!(
            "listen = [\"{}\"]\nadmin_listen = [\"{}\"]\n",
            held.local_addr().unwrap(),
            held_admin.local_addr().unwrap()
        ),
    )
    .unwrap();
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let port = free_port();
    let admin_port = free_port();
    let socks_port = free_port();
    let child = std::process::Command::new("systemd-socket-activate")
        .args(["-l", &format!("127.0.0.1:{port}"), "--fdname=proxy"])
        .args(["-l", &format!("127.0.0.1:{admin_port}"), "--fdname=admin"])
        .args(["-l", &format!("127.0.0.1:{socks_port}"), "--fdname=socks"])
        .arg(format!("--setenv=NOTIFY_SOCKET={}", notify_path.display()))
        .arg(env!("CARGO_BIN_EXE_waypost"))
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("WAYPOST_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start systemd-socket-activate");
    let _child = Child(child);
    // systemd-socket-activate listens first, then starts waypost on the first connection
    eventually(
        Duration::from_secs(20),
        || async { std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() },
        |up| *up,
    )
    .await;
    let out = Curl::new()
        .proxy(&format!("http://127.0.0.1:{port}"))
        .arg("-i")
        .arg(&origin.url("/activated"))
        .run_async()
        .await;
    assert!(out.stdout.contains("GET /activated"), "{}", out.text());
    assert!(
        out.stdout.to_ascii_lowercase().contains("x-request-id:"),
        "{}",
        out.text()
    );
    let ready = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 256];
        let n = notify.recv(&mut buf).expect("a READY=1 notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    assert_eq!(ready, "READY=1");
    // the socket named `admin` serves the admin surface and does not proxy
    let health = Curl::new()
        .status_async(&format!("http://127.0.0.1:{admin_port}/healthz"))
        .await;
    assert_eq!(health, "200");
    let proxied = Curl::new()
        .proxy(&format!("http://127.0.0.1:{admin_port}"))
        .status_async(&origin.url("/not-here"))
        .await;
    assert_eq!(proxied, "403", "the admin socket must not proxy");
    // the socket named `socks` speaks SOCKS5 (no socks_listen is configured at all)
    let socks = Curl::new()
        .args(["--socks5-hostname", &format!("127.0.0.1:{socks_port}")])
        .arg(&origin.url("/over-socks"))
        .run_async()
        .await;
    assert!(socks.stdout.contains("GET /over-socks"), "{}", socks.text());
    drop((held, held_admin));
}
