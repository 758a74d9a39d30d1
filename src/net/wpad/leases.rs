//! What the system's DHCP client already knows: option 252 from the lease it holds, so that
//! an unprivileged waypost (which cannot bind udp/68 for a DHCPINFORM of its own) still finds a
//! DHCP-announced PAC URL.
//!
//! Asked in order, per interface: NetworkManager (`nmcli`, its `DHCP4.OPTION` `wpad` entry,
//! which NetworkManager requests by default), systemd-networkd (its lease file under
//! `/run/systemd/netif/leases/<ifindex>`: `OPTION_252=` hex, present when the network asks for
//! it with `RequestOptions=252`), dhclient (`/var/lib/dhcp/dhclient*.leases`: `option wpad`,
//! declared as `option wpad code 252 = text;` in dhclient.conf, or `option unknown-252`). The
//! parsers are pure; [`ask`] does the reading, under roots a test can move.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the system clients keep their leases (tests point these elsewhere).
#[derive(Debug, Clone)]
pub struct Roots {
    /// systemd-networkd's lease directory.
    pub networkd: PathBuf,
    /// Directories with dhclient lease files.
    pub dhclient: Vec<PathBuf>,
    /// Ask NetworkManager through `nmcli` (when it is installed).
    pub nmcli: bool,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            networkd: PathBuf::from("/run/systemd/netif/leases"),
            dhclient: vec![
                PathBuf::from("/var/lib/dhcp"),
                PathBuf::from("/var/lib/dhclient"),
                PathBuf::from("/var/lib/NetworkManager"),
            ],
            nmcli: true,
        }
    }
}

/// The PAC URL a system DHCP client holds for `iface` (index `ifindex`), and which client.
pub async fn ask(roots: &Roots, iface: &str, ifindex: u32) -> Option<(String, &'static str)> {
    if roots.nmcli {
        if let Some(url) = networkmanager(iface).await {
            return Some((url, "NetworkManager"));
        }
    }
    let lease = std::fs::read_to_string(roots.networkd.join(ifindex.to_string())).ok();
    if let Some(url) = lease.as_deref().and_then(networkd_wpad) {
        return Some((url, "systemd-networkd"));
    }
    for dir in &roots.dhclient {
        for text in lease_files(dir) {
            if let Some(url) = dhclient_wpad(&text, iface) {
                return Some((url, "dhclient"));
            }
        }
    }
    None
}

fn lease_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.ends_with(".leases") || n.ends_with(".lease")
        })
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect()
}

/// `nmcli -t -f DHCP4 device show IFACE`, bounded to a second.
async fn networkmanager(iface: &str) -> Option<String> {
    let run = tokio::process::Command::new("nmcli")
        .args(["-t", "-f", "DHCP4", "device", "show", iface])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(1), run)
        .await
        .ok()?
        .ok()?;
    nmcli_wpad(&String::from_utf8_lossy(&out.stdout))
}

/// The `wpad` option of `nmcli -t -f DHCP4 device show` output
/// (`DHCP4.OPTION[7]:wpad = http://wpad.corp.example/wpad.dat`).
pub fn nmcli_wpad(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| {
            let (_, option) = l.split_once(':')?;
            let (name, value) = option.split_once('=')?;
            (name.trim() == "wpad").then(|| value.trim().to_string())
        })
        .filter(|u| !u.is_empty())
}

/// `OPTION_252=<hex>` (or `WPAD=<url>`) of a systemd-networkd lease file.
pub fn networkd_wpad(text: &str) -> Option<String> {
    for line in text.lines() {
        if let Some(url) = line.strip_prefix("WPAD=") {
            return Some(url.trim().to_string()).filter(|u| !u.is_empty());
        }
        if let Some(hex) = line.strip_prefix("OPTION_252=") {
            let bytes = decode_hex(hex.trim())?;
            return text_option(&bytes);
        }
    }
    None
}

/// The `wpad` (or `unknown-252`) option of the newest lease for `iface` in a dhclient lease
/// file: a quoted string, or colon-separated hex bytes.
pub fn dhclient_wpad(text: &str, iface: &str) -> Option<String> {
    let mut found = None;
    for block in text.split("lease {").skip(1) {
        let block = block.split('}').next().unwrap_or("");
        let on_iface = block
            .lines()
            .any(|l| l.trim() == format!("interface \"{iface}\";"));
        if !on_iface {
            continue;
        }
        for line in block.lines().map(str::trim) {
            let Some(rest) = line
                .strip_prefix("option wpad ")
                .or_else(|| line.strip_prefix("option unknown-252 "))
            else {
                continue;
            };
            let value = rest.trim_end_matches(';').trim();
            let url = match value.strip_prefix('"') {
                Some(q) => Some(q.trim_end_matches('"').to_string()),
                None => value
                    .split(':')
                    .map(|b| u8::from_str_radix(b, 16).ok())
                    .collect::<Option<Vec<u8>>>()
                    .and_then(|b| text_option(&b)),
            };
            // later leases in the file are newer
            if let Some(u) = url.filter(|u| !u.is_empty()) {
                found = Some(u);
            }
        }
    }
    found
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Option 252's bytes as text, without a trailing NUL.
fn text_option(bytes: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(bytes)
        .trim_end_matches('\0')
        .trim()
        .to_string();
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networkmanager_reports_option_252_as_wpad() {
        let out = "DHCP4.OPTION[1]:broadcast_address = 10.0.0.255\n\
                   DHCP4.OPTION[2]:domain_name = corp.example\n\
                   DHCP4.OPTION[9]:wpad = http://wpad.corp.example/wpad.dat\n";
        assert_eq!(
            nmcli_wpad(out).as_deref(),
            Some("http://wpad.corp.example/wpad.dat")
        );
        assert_eq!(
            nmcli_wpad("DHCP4.OPTION[1]:domain_name = corp.example\n"),
            None
        );
        assert_eq!(nmcli_wpad(""), None);
    }

    #[test]
    fn a_networkd_lease_carries_option_252_as_hex() {
        let url = "http://10.1.2.3/wpad.dat";
        let hex: String = url.bytes().chain([0]).map(|b| format!("{b:02X}")).collect();
        let lease =
            format!("# This is private data. Do not parse.\nADDRESS=10.1.2.50\nOPTION_252={hex}\n");
        assert_eq!(networkd_wpad(&lease).as_deref(), Some(url));
        assert_eq!(networkd_wpad("ADDRESS=10.1.2.50\n"), None);
        assert_eq!(
            networkd_wpad("OPTION_252=ABC\n"),
            None,
            "odd hex is refused"
        );
    }

    #[test]
    fn the_newest_dhclient_lease_of_the_interface_wins() {
        let leases = r#"
lease {
  interface "eth0";
  fixed-address 10.0.0.5;
  option wpad "http://old.corp.example/wpad.dat";
}
lease {
  interface "wlan0";
  option wpad "http://cafe.example/wpad.dat";
}
lease {
  interface "eth0";
  option unknown-252 68:74:74:70:3a:2f:2f:6e:65:77:2f:77:2e:64:61:74:00;
}
"#;
        assert_eq!(
            dhclient_wpad(leases, "eth0").as_deref(),
            Some("http://new/w.dat")
        );
        assert_eq!(
            dhclient_wpad(leases, "wlan0").as_deref(),
            Some("http://cafe.example/wpad.dat")
        );
        assert_eq!(dhclient_wpad(leases, "eth1"), None);
    }

    #[tokio::test]
    async fn lease_files_are_read_per_interface_index_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let networkd = dir.path().join("netif");
        let dhclient = dir.path().join("dhcp");
        std::fs::create_dir_all(&networkd).unwrap();
        std::fs::create_dir_all(&dhclient).unwrap();
        let hex: String = "http://nd/wpad.dat"
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        std::fs::write(networkd.join("7"), format!("OPTION_252={hex}\n")).unwrap();
        std::fs::write(
            dhclient.join("dhclient.eth1.leases"),
            "lease {\n  interface \"eth1\";\n  option wpad \"http://dh/wpad.dat\";\n}\n",
        )
        .unwrap();
        let roots = Roots {
            networkd,
            dhclient: vec![dhclient],
            nmcli: false,
        };
        assert_eq!(
            ask(&roots, "eth0", 7).await,
            Some(("http://nd/wpad.dat".into(), "systemd-networkd"))
        );
        assert_eq!(
            ask(&roots, "eth1", 8).await,
            Some(("http://dh/wpad.dat".into(), "dhclient"))
        );
        assert_eq!(ask(&roots, "eth2", 9).await, None);
    }
}
