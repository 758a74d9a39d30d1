//! Credentials never reach waypost's logs, even at trace level: the real binary, real squids
//! (Basic and NTLM), right and wrong passwords, everything it prints captured.

use crate::support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use support::peers::{free_port, Origin, Squid, PASSWORD, USER};
use waypost_testsupport::curl::status_via;
use waypost_testsupport::eventually_blocking;

/// `scheme`: `auth.scheme` (Basic to a plain-HTTP proxy must be chosen explicitly).
fn run_waypost(
    squid_port: u16,
    password_file: &std::path::Path,
    scheme: &str,
) -> (std::process::Child, u16) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_waypost"))
        .args([
            "run",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--upstream",
            &format!("http://localhost:{squid_port}"),
        ])
        .arg("--auth-user")
        .arg(USER)
        .arg("--auth-password-file")
        .arg(password_file)
        .arg("-vv")
        .env("WAYPOST_LOG", "trace")
        .env("WAYPOST_ROUTE__BYPASS_LOOPBACK", "false")
        .args(["--auth-scheme", scheme])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("waypost starts");
    let _listening = eventually_blocking(
        Duration::from_secs(10),
        || std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string()),
        |connected| connected.is_ok(),
    );
    (child, port)
}

fn stop(mut child: std::process::Child) -> String {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    let mut all = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut all)
        .unwrap();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut all)
        .unwrap();
    all
}

#[test]
fn trace_logs_of_basic_and_ntlm_handshakes_hold_no_password_hash_or_basic_token() {
    let origin = Origin::start();
    let url = format!("http://127.0.0.1:{}/secret-check", origin.port);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    let bad = dir.path().join("bad");
    std::fs::write(&good, format!("{PASSWORD}\n")).unwrap();
    std::fs::write(&bad, "Wrong-Secret-77\n").unwrap();
    for f in [&good, &bad] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut logs = String::new();
    for mode in ["basic", "ntlm"] {
        let squid = Squid::start(mode);
        for (file, expect) in [(&good, "200"), (&bad, "407")] {
            let scheme = if mode == "basic" { "basic" } else { "auto" };
            let (child, port) = run_waypost(squid.port, file, scheme);
            let proxy = format!("http://127.0.0.1:{port}");
            assert_eq!(
                status_via(&proxy, &url),
                expect,
                "{mode} with {}",
                file.display()
            );
            logs.push_str(&stop(child));
        }
    }
    assert!(logs.contains("TRACE"), "trace level was on");
    assert!(logs.contains("proxy_auth"), "the handshakes were logged");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for secret in [
        PASSWORD.to_string(),
        "Wrong-Secret-77".to_string(),
        b64(&format!("{USER}:{PASSWORD}")),
        b64(&format!("{USER}:Wrong-Secret-77")),
    ] {
        assert!(!logs.contains(&secret), "{secret} leaked into the logs");
    }
    // the NT hash of the password (MD4 of UTF-16LE), as it would appear in hex
    let nt_hash_prefix = "Secret-Pass-1"
        .encode_utf16()
        .map(|u| format!("{:04x}", u.swap_bytes()))
        .collect::<String>();
    assert!(
        !logs.to_ascii_lowercase().contains(&nt_hash_prefix),
        "UTF-16 password bytes leaked"
    );
}
