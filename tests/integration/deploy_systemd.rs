//! The systemd units in deploy/systemd/ pass `systemd-analyze verify` (no running systemd
//! needed) without a single warning: the system service with its two sockets, and the user
//! service with its socket. The units name `/usr/local/bin/waypost` and `%h/.local/bin/waypost`,
//! which verify requires to exist; copies pointing at the freshly built binary are verified.
//!
//! Also checked as text: the hardening the issue asks for (Type=notify, an empty capability
//! bounding set, a syscall filter, ...) and that every FileDescriptorName is one the binary
//! knows (`proxy`, `admin`, `socks`).

use std::path::{Path, PathBuf};
use std::process::Command;

const SYSTEM: [&str; 3] = ["waypost.service", "waypost.socket", "waypost-admin.socket"];
const USER: [&str; 2] = ["waypost.service", "waypost.socket"];

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd")
}

fn analyze_available() -> bool {
    Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Copies `names` from `src` into a fresh directory with the binary paths replaced.
fn staged(src: &Path, names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_waypost");
    for name in names {
        let text = std::fs::read_to_string(src.join(name)).unwrap();
        let text = text
            .replace("/usr/local/bin/waypost", bin)
            .replace("%h/.local/bin/waypost", bin);
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// Runs `systemd-analyze verify` and returns (success, everything it printed).
fn verify(dir: &Path, names: &[&str], user: bool) -> (bool, String) {
    let runtime = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("systemd-analyze");
    if user {
        cmd.arg("--user")
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("HOME", dir);
    }
    cmd.args(["verify", "--man=no"]);
    for name in names {
        cmd.arg(dir.join(name));
    }
    let out = cmd.env("SYSTEMD_LOG_COLOR", "0").output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

macro_rules! require_analyze {
    () => {
        if !analyze_available() {
            eprintln!("SKIP: systemd-analyze is not installed (Debian package systemd)");
            return;
        }
    };
}

#[test]
fn the_system_service_and_its_sockets_verify_without_warnings() {
    require_analyze!();
    let dir = staged(&units_dir(), &SYSTEM);
    let (ok, text) = verify(dir.path(), &SYSTEM, false);
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}

#[test]
fn the_user_service_and_its_socket_verify_without_warnings() {
    require_analyze!();
    let dir = staged(&units_dir().join("user"), &USER);
    let (ok, text) = verify(dir.path(), &USER, true);
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify --user:\n{text}"
    );
}

#[test]
fn a_misspelt_directive_would_be_caught() {
    // The check above can fail: verify reports unknown keys on stderr (and exits 0).
    require_analyze!();
    let dir = staged(&units_dir(), &SYSTEM);
    let unit = dir.path().join("waypost.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    std::fs::write(&unit, text.replace("ProtectSystem=", "ProtectSystm=")).unwrap();
    let (_, text) = verify(dir.path(), &SYSTEM, false);
    assert!(text.contains("ProtectSystm"), "{text}");
}

fn directives(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn has(d: &[(String, String)], key: &str, value: &str) -> bool {
    d.iter().any(|(k, v)| k == key && v == value)
}

#[test]
fn the_system_service_is_hardened_and_notifies_readiness() {
    let d = directives(&units_dir().join("waypost.service"));
    for (k, v) in [
        ("Type", "notify"),
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallFilter", "@system-service"),
        (
            "RestrictAddressFamilies",
            "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        ),
    ] {
        assert!(has(&d, k, v), "{k}={v} missing in waypost.service");
    }
    let u = directives(&units_dir().join("user/waypost.service"));
    assert!(has(&u, "Type", "notify"));
    assert!(
        !u.iter()
            .any(|(k, _)| k == "PrivateTmp" || k == "DynamicUser"),
        "the user unit must see the user's ticket cache in /tmp"
    );
}

#[test]
fn every_socket_names_its_descriptor_as_the_binary_expects() {
    let known = ["proxy", "admin", "socks"];
    for path in [
        units_dir().join("waypost.socket"),
        units_dir().join("waypost-admin.socket"),
        units_dir().join("user/waypost.socket"),
    ] {
        let d = directives(&path);
        let names: Vec<_> = d
            .iter()
            .filter(|(k, _)| k == "FileDescriptorName")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(names.len(), 1, "{}", path.display());
        assert!(known.contains(&names[0]), "{}: {names:?}", path.display());
        assert!(has(&d, "Service", "waypost.service"), "{}", path.display());
    }
}
