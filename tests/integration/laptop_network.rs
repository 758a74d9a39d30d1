//! Laptop life, the network half (issue 10): the real `waypost` binary follows the network it
//! is on without a restart — `myIpAddress()` after an address change, the resolver after a
//! rewritten resolv.conf, WPAD scripts bound to the network they came from, an ordered list of
//! PAC sources with the static upstream as the last fallback, bad-proxy marks cleared by a
//! network change — and the PAC script resolves names as waypost's own connections do.
//!
//! Each test builds its own network namespace (`ip netns add`; WPAD tests use the project's
//! WPAD lab) and runs waypost in it with `ip netns exec`, which also mounts
//! `/etc/netns/<ns>/resolv.conf` and `hosts` over `/etc/`. What the test observes is
//! `waypost explain --json` and `/metrics`, polled with a deadline. Needs root (namespaces),
//! `ip`; the DNS test `dnsmasq`, the WPAD tests `dnsmasq` and `busybox`, the failover test
//! `python3` and `curl`. Without root a test says so and passes (CI runs as root); without a
//! program it fails naming it. Namespaces and processes are removed on drop.

use crate::support;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::netns::NsWaypost;
use support::peers::{require_program, WpadLab};

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|v| v.split_whitespace().nth(1) == Some("0"))
            })
        })
        .unwrap_or(false)
}

/// False (with a notice) when not root: the test then has nothing to run.
fn root_or_skip() -> bool {
    if !is_root() {
        eprintln!("skipping: this test needs root (network namespaces); CI runs it as root");
        return false;
    }
    require_program("ip");
    true
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace with loopback up and a veth pair (`<ns>a` / `<ns>b`, both inside),
/// plus `/etc/netns/<ns>/`; all removed on drop.
struct Netns {
    name: String,
    iface: String,
    etc: PathBuf,
}

impl Netns {
    fn new() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("wln{}-{n}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns {
            iface: format!("{name}a"),
            etc: Path::new("/etc/netns").join(&name),
            name,
        };
        fs::create_dir_all(&ns.etc).expect("create /etc/netns/<ns>");
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        let peer = format!("{}b", ns.name);
        run(Command::new("ip").args([
            "-n", &ns.name, "link", "add", &ns.iface, "type", "veth", "peer", "name", &peer,
        ]));
        for dev in [&ns.iface, &peer] {
            run(Command::new("ip").args(["-n", &ns.name, "link", "set", dev, "up"]));
        }
        ns
    }

    /// Moves the namespace to `cidr` (e.g. `10.77.1.2/24`): old addresses go, a default route
    /// via `.1` of the new subnet is added.
    fn move_to(&self, cidr: &str) {
        run(Command::new("ip").args(["-n", &self.name, "-4", "addr", "flush", "dev", &self.iface]));
        run(Command::new("ip").args(["-n", &self.name, "addr", "add", cidr, "dev", &self.iface]));
        let ip = cidr.split('/').next().expect("cidr");
        let (net, _) = ip.rsplit_once('.').expect("dotted quad");
        run(Command::new("ip").args([
            "-n",
            &self.name,
            "route",
            "replace",
            "default",
            "via",
            &format!("{net}.1"),
            "dev",
            &self.iface,
        ]));
    }

    /// Writes `/etc/netns/<ns>/<file>` in place (same inode: a running `ip netns exec`
    /// process sees the new content through its bind mount).
    fn write_etc(&self, file: &str, text: &str) {
        fs::write(self.etc.join(file), text).expect("write /etc/netns file");
    }

    fn exec(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = fs::remove_dir_all(&self.etc);
    }
}

/// A process started in a namespace; killed on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real waypost binary in `ns` listening on 127.0.0.1:`port` with `config` (TOML,
/// without `listen`); killed on drop.
fn start_waypost(ns: &str, port: u16, config: &str) -> NsWaypost {
    start_waypost_in(ns, port, config, tempfile::tempdir().expect("tempdir"))
}

/// The same, in `dir` (the directory a stopped one left behind: a restart).
fn start_waypost_in(ns: &str, port: u16, config: &str, dir: tempfile::TempDir) -> NsWaypost {
    let addr = format!("127.0.0.1:{port}");
    let cfg = dir.path().join("waypost.toml");
    fs::write(&cfg, format!("listen = [\"{addr}\"]\n{config}")).expect("write config");
    let args = [OsStr::new("--config"), cfg.as_os_str(), OsStr::new("-v")];
    NsWaypost::spawn(ns, &addr, dir, &format!("waypost-{port}.log"), args, &[])
}

/// A port for a listener inside a fresh namespace (every port is free there; spread apart so
/// two waypost in one namespace differ).
fn port(n: u16) -> u16 {
    20_000 + (std::process::id() % 20_000) as u16 + n
}

const URL: &str = "http://www.example.com/";

#[test]
fn the_pac_route_follows_an_address_change_within_two_seconds_without_a_restart() {
    if !root_or_skip() {
        return;
    }
    let ns = Netns::new();
    ns.move_to("10.77.1.2/24");
    let dir = tempfile::tempdir().unwrap();
    let pac = dir.path().join("office.pac");
    fs::write(
        &pac,
        "function FindProxyForURL(url, host) {\n\
           if (isInNet(myIpAddress(), '10.77.1.0', '255.255.255.0')) return 'PROXY office.invalid:3128';\n\
           return 'PROXY home.invalid:3128; DIRECT';\n\
         }\n",
    )
    .unwrap();
    let config = format!(
        "[pac]\nsource = {:?}\ncache_file = \"none\"\n",
        pac.display().to_string()
    );
    // process isolation (the default: the parent must tell its workers the new address) and
    // worker threads
    let both = [
        start_waypost(&ns.name, port(0), &config),
        start_waypost(
            &ns.name,
            port(1),
            &format!("{config}isolation = \"threads\"\n"),
        ),
    ];
    for wp in &both {
        let r = wp.explain_until(URL, Duration::from_secs(20), |r| {
            r["raw"] == "PROXY office.invalid:3128"
        });
        assert_eq!(r["reason"], "pac", "{r}");
    }

    ns.move_to("10.77.2.2/24");
    let moved = Instant::now();
    for wp in &both {
        let r = wp.explain_until(URL, Duration::from_secs(2), |r| {
            r["raw"] == "PROXY home.invalid:3128; DIRECT"
        });
        assert_eq!(r["decision"][0], "http://home.invalid:3128", "{r}");
    }
    eprintln!(
        "route changed {:?} after the address change",
        moved.elapsed()
    );

    ns.move_to("10.77.1.2/24");
    for wp in &both {
        wp.explain_until(URL, Duration::from_secs(2), |r| {
            r["raw"] == "PROXY office.invalid:3128"
        });
        assert!(wp.metric("waypost_network_changes_total") >= 2.0);
    }
}

/// dnsmasq answering `name` with `ip` on `listen`:53 inside `ns`.
fn dnsmasq(ns: &Netns, listen: &str, name: &str, ip: &str) -> Daemon {
    require_program("dnsmasq");
    let child = ns
        .exec("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
        ])
        .args(["--bind-interfaces", "--except-interface=nonexistent"])
        .arg(format!("--listen-address={listen}"))
        .arg(format!("--address=/{name}/{ip}"))
        .arg("--user=root")
        .arg("--pid-file=")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnsmasq");
    Daemon(child)
}

#[test]
fn a_rewritten_resolv_conf_is_followed_by_pac_lookups_within_two_seconds() {
    if !root_or_skip() {
        return;
    }
    let ns = Netns::new();
    ns.move_to("10.78.1.2/24");
    let _office = dnsmasq(&ns, "127.0.0.2", "proxy.corp.test", "10.1.1.1");
    let _vpn = dnsmasq(&ns, "127.0.0.3", "proxy.corp.test", "10.2.2.2");
    ns.write_etc(
        "resolv.conf",
        "nameserver 127.0.0.2\noptions timeout:1 attempts:1\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let pac = dir.path().join("dns.pac");
    fs::write(
        &pac,
        "function FindProxyForURL(url, host) {\n\
           var ip = dnsResolve('proxy.corp.test');\n\
           return ip ? 'PROXY ' + ip + ':3128' : 'DIRECT';\n\
         }\n",
    )
    .unwrap();
    // no [dns] section: the resolver is built from resolv.conf
    let wp = start_waypost(
        &ns.name,
        port(0),
        &format!(
            "[pac]\nsource = {:?}\ncache_file = \"none\"\n",
            pac.display().to_string()
        ),
    );
    wp.explain_until(URL, Duration::from_secs(20), |r| {
        r["raw"] == "PROXY 10.1.1.1:3128"
    });
    // the VPN client rewrites resolv.conf
    ns.write_etc(
        "resolv.conf",
        "nameserver 127.0.0.3\noptions timeout:1 attempts:1\n",
    );
    let changed = Instant::now();
    wp.explain_until(URL, Duration::from_secs(2), |r| {
        r["raw"] == "PROXY 10.2.2.2:3128"
    });
    eprintln!(
        "PAC DNS followed {:?} after resolv.conf changed",
        changed.elapsed()
    );
}

#[test]
fn dns_resolve_in_a_pac_returns_dns_hosts_entries_and_resolver_system_reads_the_hosts_file() {
    if !root_or_skip() {
        return;
    }
    let ns = Netns::new();
    ns.move_to("10.79.1.2/24");
    ns.write_etc("hosts", "127.0.0.1 localhost\n10.5.5.5 sysonly.corp.test\n");
    ns.write_etc(
        "resolv.conf",
        "nameserver 127.0.0.9\noptions timeout:1 attempts:1\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let pac = dir.path().join("dns.pac");
    fs::write(
        &pac,
        "function FindProxyForURL(url, host) {\n\
           return 'PROXY ' + dnsResolve(host) + ':3128';\n\
         }\n",
    )
    .unwrap();
    let pac_line = format!(
        "[pac]\nsource = {:?}\ncache_file = \"none\"\n",
        pac.display().to_string()
    );
    // [dns.hosts] answers the script as it answers waypost's own connections
    let hosts = start_waypost(
        &ns.name,
        port(0),
        &format!("{pac_line}[dns.hosts]\n\"static.corp.test\" = [\"10.4.4.4\"]\n"),
    );
    let r = hosts.explain_until("http://static.corp.test/", Duration::from_secs(20), |r| {
        !r["raw"].is_null()
    });
    assert_eq!(r["raw"], "PROXY 10.4.4.4:3128", "{r}");
    // resolver = "system": getaddrinfo, so the namespace's /etc/hosts
    let system = start_waypost(
        &ns.name,
        port(1),
        &format!("{pac_line}[dns]\nresolver = \"system\"\n"),
    );
    let r = system.explain_until("http://sysonly.corp.test/", Duration::from_secs(20), |r| {
        !r["raw"].is_null()
    });
    assert_eq!(r["raw"], "PROXY 10.5.5.5:3128", "{r}");
}

fn sources(r: &Value) -> Vec<(String, String)> {
    r["pac_sources"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["source"].as_str().unwrap_or("").to_string(),
                        s["outcome"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn pac_sources_are_tried_in_order_and_the_static_upstream_is_the_last_fallback() {
    if !root_or_skip() {
        return;
    }
    // a network where WPAD finds nothing: only loopback and an unconnected veth
    let ns = Netns::new();
    ns.move_to("10.80.1.2/24");
    ns.write_etc(
        "resolv.conf",
        "nameserver 127.0.0.9\nsearch corp.test\noptions timeout:1 attempts:1\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let pac = dir.path().join("second.pac");
    fs::write(
        &pac,
        "function FindProxyForURL(url, host) { return 'PROXY second.invalid:3128'; }\n",
    )
    .unwrap();
    let quick =
        "wpad_dhcp_timeout = \"500ms\"\nwpad_dns_timeout = \"500ms\"\ncache_file = \"none\"\n";
    // 1. auto fails, the second source gives the script
    let wp = start_waypost(
        &ns.name,
        port(0),
        &format!(
            "[route]\nupstream = \"http://static.invalid:3128\"\n[pac]\nsource = [\"auto\", {:?}]\n{quick}",
            pac.display().to_string()
        ),
    );
    let r = wp.explain_until(URL, Duration::from_secs(20), |r| !r["raw"].is_null());
    assert_eq!(r["raw"], "PROXY second.invalid:3128", "{r}");
    assert_eq!(
        sources(&r),
        [
            ("auto".to_string(), "failed".to_string()),
            (pac.display().to_string(), "used".to_string())
        ],
        "{r}"
    );
    assert!(
        r["pac_sources"][0]["reason"]
            .as_str()
            .is_some_and(|s| s.contains("WPAD")),
        "{r}"
    );
    assert_eq!(r["pac"]["entry"], pac.display().to_string(), "{r}");
    // 2. every source fails: route.upstream, not DIRECT
    let none = start_waypost(
        &ns.name,
        port(1),
        &format!(
            "[route]\nupstream = \"http://static.invalid:3128\"\n[pac]\nsource = [\"auto\", \"http://127.0.0.1:9/none.pac\"]\n{quick}"
        ),
    );
    let r = none.explain_until(URL, Duration::from_secs(20), |r| sources(r).len() == 2);
    assert_eq!(
        sources(&r),
        [
            ("auto".to_string(), "failed".to_string()),
            (
                "http://127.0.0.1:9/none.pac".to_string(),
                "failed".to_string()
            )
        ],
        "{r}"
    );
    assert_eq!(r["reason"], "pac-unavailable-upstream", "{r}");
    assert_eq!(r["decision"][0], "http://static.invalid:3128", "{r}");
    // 3. the same without route.upstream: DIRECT, and refused under pac.mandatory
    let direct = start_waypost(
        &ns.name,
        port(2),
        &format!("[pac]\nsource = [\"auto\", \"http://127.0.0.1:9/none.pac\"]\n{quick}"),
    );
    let r = direct.explain_until(URL, Duration::from_secs(20), |r| sources(r).len() == 2);
    assert_eq!(r["decision"][0], "DIRECT", "{r}");
    let refused = start_waypost(
        &ns.name,
        port(3),
        &format!(
            "[pac]\nmandatory = true\nsource = [\"auto\", \"http://127.0.0.1:9/none.pac\"]\n{quick}"
        ),
    );
    let r = refused.explain_until(URL, Duration::from_secs(20), |r| sources(r).len() == 2);
    assert_eq!(r["reason"], "refused", "{r}");
}

/// Moves a WPAD lab's client to a network without WPAD: another subnet, a name server that
/// does not answer.
fn leave_the_wpad_network(lab: &WpadLab) {
    run(Command::new("ip").args([
        "-n",
        &lab.client_ns,
        "-4",
        "addr",
        "flush",
        "dev",
        &lab.client_iface,
    ]));
    run(Command::new("ip").args([
        "-n",
        &lab.client_ns,
        "addr",
        "add",
        "10.81.1.2/24",
        "dev",
        &lab.client_iface,
    ]));
    fs::write(
        Path::new("/etc/netns")
            .join(&lab.client_ns)
            .join("resolv.conf"),
        "nameserver 10.81.1.1\nsearch home.test\noptions timeout:1 attempts:1\n",
    )
    .expect("rewrite the client's resolv.conf");
}

const WPAD_PAC: &str =
    "function FindProxyForURL(url, host) { return 'PROXY wpad-proxy.invalid:3128'; }\n";

/// A laptop in a WPAD lab (its DHCP and DNS announce [`WPAD_PAC`]) running waypost with the
/// `[pac]` keys `pac_keys` gives for the lab and a last-good copy (`cache`) in its state
/// directory; `None` when the test is skipped (not root).
struct WpadLaptop {
    lab: WpadLab,
    config: String,
    cache: PathBuf,
    wp: NsWaypost,
}

fn laptop_on_a_wpad_network(pac_keys: impl FnOnce(&WpadLab) -> String) -> Option<WpadLaptop> {
    if !root_or_skip() {
        return None;
    }
    for program in ["dnsmasq", "busybox"] {
        require_program(program);
    }
    let lab = WpadLab::start(WPAD_PAC);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("last-good.pac");
    let config = format!(
        "[pac]\n{}cache_file = {:?}\n",
        pac_keys(&lab),
        cache.display().to_string()
    );
    let wp = start_waypost_in(&lab.client_ns, port(0), &config, dir);
    Some(WpadLaptop {
        lab,
        config,
        cache,
        wp,
    })
}

impl WpadLaptop {
    /// Stops waypost and starts it again (on another port) with the same config and state.
    fn restart(self) -> WpadLaptop {
        let dir = self.wp.stop();
        let wp = start_waypost_in(&self.lab.client_ns, port(1), &self.config, dir);
        WpadLaptop { wp, ..self }
    }
}

#[test]
fn a_wpad_script_is_not_used_on_a_network_without_wpad_nor_after_a_restart_there() {
    let Some(laptop) = laptop_on_a_wpad_network(|_| {
        "source = \"auto\"\nwpad_dhcp_timeout = \"1s\"\nwpad_dns_timeout = \"1s\"\n".into()
    }) else {
        return;
    };
    let r = laptop.wp.explain_until(URL, Duration::from_secs(20), |r| {
        r["raw"] == "PROXY wpad-proxy.invalid:3128"
    });
    assert_eq!(r["pac"]["entry"], "auto", "{r}");
    assert!(laptop.cache.is_file(), "the WPAD script is kept on disk");

    leave_the_wpad_network(&laptop.lab);
    // the script is dropped and the PAC status cleared as two steps: wait for both
    let r = laptop.wp.explain_until(URL, Duration::from_secs(15), |r| {
        r["raw"].is_null() && r["pac"].is_null()
    });
    assert_eq!(r["decision"][0], "DIRECT", "{r}");
    assert!(r["pac"].is_null(), "{r}");

    // a restart on this network does not bring the kept copy back
    let laptop = laptop.restart();
    let r = laptop.wp.explain_until(URL, Duration::from_secs(20), |r| {
        !r["pac_sources"].as_array().is_none_or(Vec::is_empty)
    });
    assert!(r["raw"].is_null(), "{r}");
    assert_eq!(r["decision"][0], "DIRECT", "{r}");
    assert!(
        laptop.wp.log().contains("found on another network"),
        "{}",
        laptop.wp.log()
    );
}

#[test]
fn an_explicit_url_source_keeps_its_last_good_copy_on_another_network_and_after_a_restart() {
    let Some(laptop) = laptop_on_a_wpad_network(|lab| {
        format!(
            "source = \"http://{}/wpad.dat\"\nfetch_timeout = \"1s\"\n",
            lab.server_ip
        )
    }) else {
        return;
    };
    laptop.wp.explain_until(URL, Duration::from_secs(20), |r| {
        r["raw"] == "PROXY wpad-proxy.invalid:3128"
    });
    leave_the_wpad_network(&laptop.lab);
    // the refresh after the change fails (the server is unreachable); the script stays
    let source = format!("http://{}/wpad.dat", laptop.lab.server_ip);
    laptop.wp.explain_until(URL, Duration::from_secs(15), |r| {
        sources(r) == [(source.clone(), "failed".to_string())]
    });
    let r = laptop.wp.explain_once(URL).expect("explain");
    assert_eq!(r["raw"], "PROXY wpad-proxy.invalid:3128", "{r}");
    let laptop = laptop.restart();
    let r = laptop
        .wp
        .explain_until(URL, Duration::from_secs(20), |r| !r["raw"].is_null());
    assert_eq!(r["raw"], "PROXY wpad-proxy.invalid:3128", "{r}");
}

/// `curl -x` through waypost inside the namespace; (status, seconds it took).
fn curl_via(ns: &Netns, proxy: &str, url: &str) -> (u16, f64) {
    curl_in(&ns.name, proxy, url)
}

/// `curl -x` through waypost inside the namespace named `ns`; (status, seconds it took).
fn curl_in(ns: &str, proxy: &str, url: &str) -> (u16, f64) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-s", "-o", "/dev/null"])
        .args(["-w", "%{http_code} %{time_total}", "--max-time", "30", "-x"])
        .arg(format!("http://{proxy}"))
        .arg(url)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut it = text.split_whitespace();
    let status = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let secs = it.next().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
    (status, secs)
}

#[test]
fn off_the_office_network_an_unreachable_pac_proxy_costs_one_failure_and_a_network_change_clears_its_mark(
) {
    if !root_or_skip() {
        return;
    }
    for program in ["python3", "curl"] {
        require_program(program);
    }
    // "home": no route to the office proxy (10.66.0.0/16)
    let ns = Netns::new();
    run(Command::new("ip").args([
        "-n",
        &ns.name,
        "addr",
        "add",
        "10.82.1.2/24",
        "dev",
        &ns.iface,
    ]));
    let origin_port = port(5);
    let _origin = Daemon(
        ns.exec("python3")
            .args([
                "-m",
                "http.server",
                &origin_port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 http.server"),
    );
    let dir = tempfile::tempdir().unwrap();
    let pac = dir.path().join("office.pac");
    fs::write(
        &pac,
        "function FindProxyForURL(url, host) { return 'PROXY 10.66.0.1:8080; DIRECT'; }\n",
    )
    .unwrap();
    let wp = start_waypost(
        &ns.name,
        port(0),
        &format!(
            "[route]\nbypass_loopback = false\n[pac]\nsource = {:?}\ncache_file = \"none\"\n",
            pac.display().to_string()
        ),
    );
    let site = format!("http://127.0.0.1:{origin_port}/");
    wp.explain_until(&site, Duration::from_secs(20), |r| !r["raw"].is_null());
    // the origin answers (python may take a moment to listen)
    let deadline = Instant::now() + Duration::from_secs(10);
    while ns
        .exec("curl")
        .args(["-s", "-o", "/dev/null", &site])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "python http.server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (first, t1) = curl_via(&ns, &wp.addr, &site);
    let (second, t2) = curl_via(&ns, &wp.addr, &site);
    eprintln!("first request {t1:.3} s, second {t2:.3} s");
    assert_eq!((first, second), (200, 200));
    let failures = "waypost_proxy_failures_total{proxy=\"10.66.0.1:8080\"";
    assert_eq!(
        wp.metric(failures),
        1.0,
        "only the first request tried the unreachable proxy"
    );
    let r = wp.explain_once(&site).expect("explain");
    assert_eq!(
        r["decision"][0], "DIRECT",
        "the marked proxy is tried last: {r}"
    );
    assert_eq!(r["bad_proxies"][0]["proxy"], "http://10.66.0.1:8080", "{r}");
    // back at the office (another address): the marks are gone
    run(Command::new("ip").args([
        "-n",
        &ns.name,
        "addr",
        "add",
        "10.82.2.2/24",
        "dev",
        &ns.iface,
    ]));
    let r = wp.explain_until(&site, Duration::from_secs(2), |r| {
        r["bad_proxies"].as_array().is_some_and(Vec::is_empty)
    });
    assert_eq!(r["decision"][0], "http://10.66.0.1:8080", "{r}");
}

/// Two namespaces joined by a veth: the laptop (`<name>c`, waypost and curl) and a server
/// network (`<name>s`); removed on drop.
struct Pair {
    laptop: String,
    server: String,
}

impl Pair {
    fn new() -> Pair {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = format!("wsw{}-{n}", std::process::id());
        let pair = Pair {
            laptop: format!("{base}c"),
            server: format!("{base}s"),
        };
        for ns in [&pair.laptop, &pair.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            run(Command::new("ip").args(["netns", "add", ns]));
            run(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]));
        }
        run(Command::new("ip").args([
            "-n",
            &pair.laptop,
            "link",
            "add",
            "vl",
            "type",
            "veth",
            "peer",
            "name",
            "vs",
            "netns",
            &pair.server,
        ]));
        run(Command::new("ip").args(["-n", &pair.laptop, "link", "set", "vl", "up"]));
        run(Command::new("ip").args(["-n", &pair.server, "link", "set", "vs", "up"]));
        pair
    }

    fn ip(&self, ns: &str, args: &[&str]) {
        run(Command::new("ip").arg("-n").arg(ns).args(args));
    }

    fn exec(&self, ns: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]);
        cmd
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.laptop, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A server in the server namespace that accepts connections on `port` and never answers
/// (a network that swallows everything), writing `accepted` to `marker` for each.
const SILENT_SERVER: &str = "import socket,sys\n\
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(16)\n\
held=[]\n\
while True:\n    c,_=s.accept(); held.append(c); open(sys.argv[2],'a').write('accepted\\n')\n";

#[test]
fn an_instant_switch_fails_a_request_stranded_on_the_old_address_at_once_and_the_next_one_works() {
    if !root_or_skip() {
        return;
    }
    for program in ["python3", "curl"] {
        require_program(program);
    }
    let pair = Pair::new();
    // the dock: 10.84.1.0/24; the server network answers on .1 of both subnets
    pair.ip(&pair.server, &["addr", "add", "10.84.1.1/24", "dev", "vs"]);
    pair.ip(&pair.server, &["addr", "add", "10.84.2.1/24", "dev", "vs"]);
    pair.ip(&pair.laptop, &["addr", "add", "10.84.1.2/24", "dev", "vl"]);
    pair.ip(
        &pair.laptop,
        &["route", "add", "default", "via", "10.84.1.1"],
    );
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("accepted");
    let (silent_port, http_port) = (port(7), port(8));
    let _silent = Daemon(
        pair.exec(&pair.server, "python3")
            .args(["-c", SILENT_SERVER, &silent_port.to_string()])
            .arg(&marker)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 silent server"),
    );
    let _origin = Daemon(
        pair.exec(&pair.server, "python3")
            .args([
                "-m",
                "http.server",
                &http_port.to_string(),
                "--bind",
                "0.0.0.0",
            ])
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 http.server"),
    );
    let site = format!("http://10.84.1.1:{http_port}/");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pair
        .exec(&pair.laptop, "curl")
        .args(["-s", "-o", "/dev/null", &site])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "the origin did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let accepted = || {
        fs::read_to_string(&marker)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while accepted() == 0 {
        assert!(Instant::now() < deadline, "the silent server did not start");
        let _ = pair
            .exec(&pair.laptop, "bash")
            .args(["-c", &format!("exec 3<>/dev/tcp/10.84.1.1/{silent_port}")])
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(50));
    }
    let probes = accepted();
    let wp = start_waypost(&pair.laptop, port(0), "[route]\nbypass_loopback = false\n");
    wp.explain_until(&site, Duration::from_secs(20), |_| true);
    // a request the silent server will never answer, in flight through waypost
    let silent = format!("http://10.84.1.1:{silent_port}/stranded");
    let stranded = pair
        .exec(&pair.laptop, "curl")
        .args(["-s", "-D", "-", "--max-time", "60", "-x"])
        .arg(format!("http://{}", wp.addr))
        .arg(&silent)
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl");
    let deadline = Instant::now() + Duration::from_secs(10);
    while accepted() == probes {
        assert!(
            Instant::now() < deadline,
            "the silent server saw no connection"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // undocking with Wi-Fi up: the new address and route first, then the old address goes
    let switched = Instant::now();
    pair.ip(&pair.laptop, &["addr", "add", "10.84.2.2/24", "dev", "vl"]);
    pair.ip(
        &pair.laptop,
        &["route", "replace", "default", "via", "10.84.2.1"],
    );
    pair.ip(&pair.laptop, &["addr", "del", "10.84.1.2/24", "dev", "vl"]);
    let out = stranded.wait_with_output().expect("curl ends");
    let took = switched.elapsed();
    let head = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("the stranded request ended {took:?} after the switch:\n{head}");
    // not the 90 s response timeout: the stranded socket was cut when the network changed
    assert!(took < Duration::from_secs(30), "{took:?}\n{}", wp.log());
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("x-waypost-error: upstream-closed"), "{head}");
    assert!(
        head.contains("the network changed"),
        "the answer names the cause: {head}"
    );
    assert!(
        wp.log()
            .contains("upstream connections through the old network closed"),
        "{}",
        wp.log()
    );
    // the next request goes out on the new address
    let (status, _) = curl_in(
        &pair.laptop,
        &wp.addr,
        &format!("http://10.84.2.1:{http_port}/"),
    );
    assert_eq!(status, 200, "{}", wp.log());
}
