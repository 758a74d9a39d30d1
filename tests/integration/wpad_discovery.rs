//! WPAD discovery against a real DHCP and DNS server: dnsmasq in a network namespace of its
//! own, joined by a veth pair to a client namespace in which discovery runs.
//!
//! Needs root (namespaces, udp/67-68), `ip` (iproute2) and `dnsmasq` (dnsmasq-base); a test
//! without them fails naming what is missing, it never passes silently. Discovery itself runs
//! in a child process: this test binary re-invoked under `ip netns exec` with the ignored
//! test `discovery_runs_inside_the_client_namespace_when_asked_by_an_outer_test`, which prints
//! its result as one JSON line. Everything a lab creates (two namespaces, the veth inside
//! them, `/etc/netns/<client>/`, dnsmasq) is removed by its `Drop`, also when a test fails;
//! a lab left behind by a killed run is removed by the next run.
//!
//! The namespaces see nothing but each other: the only traffic is on the veth between them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

const SERVER_IP: &str = "10.214.9.1";
const CLIENT_IP: &str = "10.214.9.2";
const INNER_TEST: &str = "discovery_runs_inside_the_client_namespace_when_asked_by_an_outer_test";

/// The inner test's full name in this binary (`wpad_discovery::...`), for `--exact`.
fn inner_test() -> String {
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    format!("{module}::{INNER_TEST}")
}
const INNER_ENV: &str = "WAYPOST_WPAD_INNER";

/// What the lab's dnsmasq offers.
struct LabSpec {
    /// Send option 252 (`http://SERVER_IP/wpad.dat`) to clients that ask for it.
    dhcp_wpad: bool,
    /// `search` of the client's resolv.conf and DHCP option 15.
    search: &'static str,
    /// The one `wpad.*` name in DNS (-> SERVER_IP); dnsmasq is authoritative for
    /// `example.test`, so every other name there is NXDOMAIN.
    wpad_name: &'static str,
}

/// Two namespaces, a veth, a resolv.conf for the client and dnsmasq; removed on drop.
struct Lab {
    lab_ns: String,
    client_ns: String,
    client_if: String,
    namespaces: Vec<String>,
    etc_netns: Option<PathBuf>,
    dnsmasq: Option<Child>,
    state: tempfile::TempDir,
}

impl Lab {
    fn start(spec: LabSpec) -> Lab {
        require_root_and_tools();
        remove_stale_labs();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let state = tempfile::Builder::new()
            .prefix("waypost-wpad-test-")
            .tempdir_in("/tmp")
            .expect("state dir in /tmp");
        let mut lab = Lab {
            lab_ns: format!("wdl{pid}-{n}"),
            client_ns: format!("wdc{pid}-{n}"),
            client_if: format!("wdc{pid}-{n}"),
            namespaces: Vec::new(),
            etc_netns: None,
            dnsmasq: None,
            state,
        };
        let (lab_ns, cli_ns) = (lab.lab_ns.clone(), lab.client_ns.clone());
        for ns in [&lab_ns, &cli_ns] {
            run(Command::new("ip").args(["netns", "add", ns]));
            lab.namespaces.push(ns.clone());
        }
        // the veth ends are named after their namespaces and die with them
        run(Command::new("ip").args([
            "link", "add", "name", &lab_ns, "netns", &lab_ns, "type", "veth", "peer", "name",
            &cli_ns, "netns", &cli_ns,
        ]));
        for (ns, addr) in [(&lab_ns, SERVER_IP), (&cli_ns, CLIENT_IP)] {
            run(Command::new("ip").args([
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{ns}.disable_ipv6=1"),
            ]));
            run(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]));
            run(Command::new("ip").args([
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                ns,
            ]));
            run(Command::new("ip").args(["-n", ns, "link", "set", ns, "up"]));
        }
        // the kernel marks a fresh veth RUNNING (operstate UP) up to a second later, and
        // discovery rightly skips interfaces that are not
        for ns in [&lab_ns, &cli_ns] {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !output(Command::new("ip").args(["-n", ns, "link", "show", "dev", ns]))
                .contains("state UP")
            {
                assert!(
                    Instant::now() < deadline,
                    "veth {ns} did not come up within 5 s"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let etc = Path::new("/etc/netns").join(&cli_ns);
        fs::create_dir_all(&etc).expect("create /etc/netns/<client ns>");
        lab.etc_netns = Some(etc.clone());
        fs::write(
            etc.join("resolv.conf"),
            format!(
                "nameserver {SERVER_IP}\nsearch {}\noptions timeout:1 attempts:1\n",
                spec.search
            ),
        )
        .expect("write the client resolv.conf");
        lab.start_dnsmasq(&spec);
        lab
    }

    fn start_dnsmasq(&mut self, spec: &LabSpec) {
        let dir = self.state.path();
        let wpad_option = if spec.dhcp_wpad {
            format!("dhcp-option=252,\"http://{SERVER_IP}/wpad.dat\"\n")
        } else {
            String::new()
        };
        let conf = format!(
            "interface={lab}\nexcept-interface=lo\nlisten-address={SERVER_IP}\nbind-interfaces\nno-resolv\nno-hosts\nno-poll\n\
             local=/example.test/\nhost-record={wpad},{SERVER_IP}\n\
             dhcp-range=10.214.9.100,10.214.9.150,255.255.255.0,10m\ndhcp-authoritative\n\
             dhcp-option=option:router\ndhcp-option=option:dns-server,{SERVER_IP}\ndhcp-option=option:domain-name,{search}\n\
             {wpad_option}dhcp-leasefile={dir}/leases\npid-file=\nuser=root\nlog-facility={dir}/dnsmasq.log\nlog-queries\nlog-dhcp\n",
            lab = self.lab_ns,
            wpad = spec.wpad_name,
            search = spec.search,
            dir = dir.display(),
        );
        let conf_path = dir.join("dnsmasq.conf");
        fs::write(&conf_path, conf).expect("write dnsmasq.conf");
        // `ip netns exec` execs dnsmasq: the child's pid is dnsmasq's
        let child = Command::new("ip")
            .args(["netns", "exec", &self.lab_ns, "dnsmasq", "-k", "-C"])
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dnsmasq under ip netns exec");
        self.dnsmasq = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self
                .dnsmasq
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let mut err = String::new();
                if let Some(mut e) = self.dnsmasq.take().and_then(|mut c| c.stderr.take()) {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!("dnsmasq exited ({status}): {err}\n{}", self.dnsmasq_log());
            }
            let up = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.client_ns,
                    "bash",
                    "-c",
                    &format!("exec 3<>/dev/tcp/{SERVER_IP}/53"),
                ])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not answer on {SERVER_IP}:53 within 10 s\n{}",
                self.dnsmasq_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn dnsmasq_log(&self) -> String {
        fs::read_to_string(self.state.path().join("dnsmasq.log")).unwrap_or_default()
    }

    /// Runs the inner test in the client namespace with `env`; returns its result line.
    fn run_inside(&self, env: &[(&str, &str)]) -> Value {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.client_ns])
            .arg(exe)
            .args([
                "--exact",
                &inner_test(),
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd
            .output()
            .expect("run the inner test under ip netns exec");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("WPAD-RESULT ").map(|(_, r)| r))
            .unwrap_or_else(|| {
                panic!(
                    "the inner test printed no result ({}):\n{stdout}\n{}\n--- dnsmasq log\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr),
                    self.dnsmasq_log()
                )
            });
        eprintln!("[{}] inner run {env:?}:\n{stdout}", self.client_ns);
        serde_json::from_str(line).expect("the inner result is JSON")
    }
}

impl Lab {
    /// Runs `waypost ARGS` in the client namespace as the unprivileged user `nobody` (a copy of
    /// the binary it can execute), with `CAP_NET_BIND_SERVICE` as an ambient capability or with
    /// no capability at all; returns (exit code, stdout, stderr).
    fn run_waypost_as_nobody(&self, bind_cap: bool, args: &[&str]) -> (i32, String, String) {
        let out = self
            .nobody_command(bind_cap, args)
            .output()
            .expect("run waypost under setpriv");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The command line of [`Lab::run_waypost_as_nobody`].
    fn nobody_command(&self, bind_cap: bool, args: &[&str]) -> Command {
        use std::os::unix::fs::PermissionsExt;
        let bin_dir = self.state.path().join("bin");
        fs::create_dir_all(&bin_dir).unwrap();
        let exe = bin_dir.join("waypost");
        if !exe.exists() {
            fs::copy(env!("CARGO_BIN_EXE_waypost"), &exe).expect("copy the waypost binary");
        }
        for (path, mode) in [
            (self.state.path(), 0o755),
            (bin_dir.as_path(), 0o755),
            (exe.as_path(), 0o755),
        ] {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        }
        let caps: &[&str] = match bind_cap {
            true => &[
                "--inh-caps=+net_bind_service",
                "--ambient-caps=+net_bind_service",
            ],
            false => &["--inh-caps=-all"],
        };
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.client_ns,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .args(caps)
        .arg("--")
        .arg(&exe)
        .args(args)
        .env("WAYPOST_LOG", "warn")
        .stdin(Stdio::null());
        cmd
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- dnsmasq log of {}\n{}", self.lab_ns, self.dnsmasq_log());
        }
        if let Some(mut c) = self.dnsmasq.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(dir) = self.etc_netns.take() {
            let _ = fs::remove_dir_all(dir);
        }
        for ns in self.namespaces.drain(..).rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn output(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn require_root_and_tools() {
    let uid = fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines().find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|v| v.split_whitespace().nth(1).unwrap_or("").to_string())
        })
    });
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "the WPAD discovery tests need root (CAP_SYS_ADMIN for network namespaces, CAP_NET_BIND_SERVICE for udp/67-68): run them as root"
    );
    for program in ["ip", "dnsmasq", "bash"] {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .any(|d| d.join(program).is_file());
        assert!(found, "missing program '{program}': apt-get install -y iproute2 dnsmasq-base (or run scripts/install-deps.sh as root)");
    }
}

/// Removes labs of test processes that died without dropping them (their pid is in the name).
fn remove_stale_labs() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix("wdl")
            .or_else(|| name.strip_prefix("wdc"))
        else {
            continue;
        };
        let Some(Ok(pid)) = rest.split_once('-').map(|(p, _)| p.parse::<u32>()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        // processes left in it were started by that run (dnsmasq): end them by pid
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &name]).output() {
            for p in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", p]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let _ = fs::remove_dir_all(Path::new("/etc/netns").join(&name));
    }
}

fn attempts(result: &Value) -> Vec<(String, String, String)> {
    let tried = result
        .get("tried")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    tried
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or("").to_string();
            (s("method"), s("target"), s("reason"))
        })
        .collect()
}

#[test]
fn dhcp_option_252_is_found_first_inside_a_network_namespace() {
    let lab = Lab::start(LabSpec {
        dhcp_wpad: true,
        search: "corp.example.test",
        wpad_name: "wpad.corp.example.test",
    });
    let r = lab.run_inside(&[(INNER_ENV, "discover")]);
    let found = &r["found"];
    assert_eq!(found["url"], format!("http://{SERVER_IP}/wpad.dat"), "{r}");
    assert_eq!(found["method"], "dhcp", "{r}");
    assert_eq!(
        found["source"],
        format!("DHCPACK from {SERVER_IP} on {}", lab.client_if),
        "{r}"
    );
    assert!(
        attempts(found).is_empty(),
        "nothing failed before DHCP answered: {r}"
    );
    let log = lab.dnsmasq_log();
    assert!(
        log.contains("DHCPINFORM") && log.contains(CLIENT_IP),
        "dnsmasq saw our DHCPINFORM from {CLIENT_IP}:\n{log}"
    );
    assert!(!log.contains("query["), "DNS was not needed:\n{log}");
}

#[test]
fn without_option_252_dns_devolution_finds_wpad_of_the_parent_domain() {
    let lab = Lab::start(LabSpec {
        dhcp_wpad: false,
        search: "lab.corp.example.test",
        wpad_name: "wpad.corp.example.test",
    });
    let r = lab.run_inside(&[(INNER_ENV, "discover")]);
    let found = &r["found"];
    assert_eq!(
        found["url"], "http://wpad.corp.example.test/wpad.dat",
        "{r}"
    );
    assert_eq!(found["method"], "dns", "{r}");
    assert_eq!(
        found["source"],
        format!("wpad.corp.example.test resolves to {SERVER_IP}"),
        "{r}"
    );
    let tried = attempts(found);
    let dhcp = tried
        .iter()
        .find(|(m, _, _)| m == "dhcp")
        .unwrap_or_else(|| panic!("a DHCP attempt is reported: {r}"));
    assert_eq!(
        dhcp.2,
        format!("DHCPACK from {SERVER_IP} has no option 252"),
        "{r}"
    );
    assert!(
        tried.contains(&(
            "dns".into(),
            "wpad.lab.corp.example.test".into(),
            "does not resolve (NXDOMAIN)".into()
        )),
        "{r}"
    );
}

#[test]
fn wpad_discover_prints_each_attempt_and_what_was_found() {
    let lab = Lab::start(LabSpec {
        dhcp_wpad: false,
        search: "lab.corp.example.test",
        wpad_name: "wpad.corp.example.test",
    });
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.client_ns])
        .arg(exe)
        .args([
            "--exact",
            &inner_test(),
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INNER_ENV, "cli")
        .output()
        .expect("run the inner test under ip netns exec");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // the first report line shares its line with libtest's "test ... "
    let lines: Vec<&str> = stdout
        .lines()
        .filter_map(|l| {
            ["tried  ", "found  "]
                .iter()
                .filter_map(|p| l.find(p))
                .min()
                .map(|i| &l[i..])
        })
        .collect();
    let dhcp = format!(
        "tried  dhcp {:<40} DHCPACK from {SERVER_IP} has no option 252",
        format!("{} ({CLIENT_IP})", lab.client_ns)
    );
    let expected = [
        dhcp.as_str(),
        "tried  dns  wpad.lab.corp.example.test               does not resolve (NXDOMAIN)",
        "found  dns  http://wpad.corp.example.test/wpad.dat  (wpad.corp.example.test resolves to 10.214.9.1)",
    ];
    assert_eq!(lines, expected, "{stdout}");
    assert!(stdout.contains(r#"WPAD-RESULT {"exit":0}"#), "{stdout}");
}

#[test]
fn dns_devolution_stops_at_the_registrable_domain_and_reports_every_name_asked() {
    let lab = Lab::start(LabSpec {
        dhcp_wpad: false,
        search: "lab.corp.example.test",
        wpad_name: "wpad.corp.example.test",
    });
    let r = lab.run_inside(&[
        (INNER_ENV, "discover"),
        ("WAYPOST_WPAD_DOMAINS", "a.other.example.test"),
    ]);
    assert!(r.get("found").is_none(), "{r}");
    let names: Vec<String> = attempts(&r["not_found"])
        .into_iter()
        .filter(|(m, _, _)| m == "dns")
        .map(|(_, t, _)| t)
        .collect();
    assert_eq!(
        names,
        [
            "wpad.a.other.example.test",
            "wpad.other.example.test",
            "wpad.example.test"
        ],
        "{r}"
    );
    let log = lab.dnsmasq_log();
    assert!(
        log.contains("wpad.example.test"),
        "the registrable domain was asked:\n{log}"
    );
    assert!(!log.contains(" wpad.test "), "never a TLD:\n{log}");
}

#[test]
fn an_address_change_in_the_namespace_bumps_the_network_watcher_promptly() {
    let lab = Lab::start(LabSpec {
        dhcp_wpad: true,
        search: "corp.example.test",
        wpad_name: "wpad.corp.example.test",
    });
    let r = lab.run_inside(&[(INNER_ENV, "watch"), ("WAYPOST_WPAD_IFACE", &lab.client_if)]);
    assert_eq!(r["bumped"], true, "{r}");
    // the fallback poll is set to 30 s inside: a change seen this fast came from netlink
    assert!(r["after_ms"].as_u64().is_some_and(|ms| ms < 2000), "{r}");
}

#[test]
fn an_unprivileged_user_is_told_dhcp_is_unavailable_and_cap_net_bind_service_enables_it() {
    if Command::new("setpriv").arg("--version").output().is_err() {
        panic!("setpriv (util-linux) is needed for this test");
    }
    let lab = Lab::start(LabSpec {
        dhcp_wpad: true,
        search: "corp.example.test",
        wpad_name: "wpad.corp.example.test",
    });
    let discover = [
        "wpad",
        "discover",
        "--json",
        "--dhcp-timeout",
        "2s",
        "--dns-timeout",
        "2s",
    ];
    // unprivileged, no capability: DHCP says why it cannot run and how to enable it; DNS still finds it
    let (code, out, err) = lab.run_waypost_as_nobody(false, &discover);
    let r: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!((code, r["method"].as_str()), (0, Some("dns")), "{r}\n{err}");
    let reasons: Vec<String> = r["tried"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["reason"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|x| x.contains("DHCP WPAD discovery is unavailable")
                && x.contains("setcap cap_net_bind_service")),
        "{reasons:?}"
    );
    // the proxy itself (a user service) logs it once, as a warning
    let mut proxy = lab
        .nobody_command(false, &["run", "--pac", "auto", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start waypost run as nobody");
    let stderr = proxy.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let warned = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if l.contains("DHCP WPAD discovery is unavailable") => break true,
            Ok(l) => seen.push(l),
            Err(_) => break false,
        }
    };
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert!(
        warned,
        "waypost run warns that DHCP discovery is unavailable: {seen:?}"
    );
    // with CAP_NET_BIND_SERVICE only (still uid nobody): the DHCPINFORM of its own works
    let (code, out, err) = lab.run_waypost_as_nobody(true, &discover);
    let r: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(
        (code, r["method"].as_str()),
        (0, Some("dhcp")),
        "{r}\n{err}"
    );
    assert_eq!(r["url"], format!("http://{SERVER_IP}/wpad.dat"), "{r}");
    assert!(!err.contains("unavailable"), "{err}");
}

/// The discovery half of the tests above, run by them in the client namespace; does nothing
/// when run directly.
#[test]
#[ignore = "run by the other tests of this file under `ip netns exec`"]
fn discovery_runs_inside_the_client_namespace_when_asked_by_an_outer_test() {
    let Ok(mode) = std::env::var(INNER_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = match mode.as_str() {
        "discover" => rt.block_on(async {
            let opts = waypost::net::wpad::WpadOptions {
                dhcp_timeout: Duration::from_secs(2),
                dns_timeout: Duration::from_secs(2),
                interfaces: None,
                search_domains: std::env::var("WAYPOST_WPAD_DOMAINS").ok().map(|d| d.split(',').map(str::to_string).collect()),
            };
            match waypost::net::wpad::discover(&opts).await {
                Ok(found) => serde_json::json!({ "found": found }),
                Err(e) => serde_json::json!({ "not_found": { "error": e.to_string(), "tried": e.tried() } }),
            }
        }),
        "cli" => rt.block_on(async {
            let args = waypost::net::wpad::cli::DiscoverArgs {
                json: false,
                dhcp_timeout: Duration::from_secs(2),
                dns_timeout: Duration::from_secs(2),
                interfaces: Vec::new(),
                domains: Vec::new(),
            };
            let code = waypost::net::wpad::cli::run_discover(args).await;
            serde_json::json!({ "exit": code })
        }),
        "watch" => rt.block_on(async {
            let iface = std::env::var("WAYPOST_WPAD_IFACE").expect("WAYPOST_WPAD_IFACE");
            let mut rx = waypost::net::wpad::netwatch::NetworkWatcher::spawn_with_poll(Duration::from_secs(3));
            tokio::time::sleep(Duration::from_millis(300)).await; // subscribed and first snapshot taken
            let start = std::time::Instant::now();
            run(Command::new("ip").args(["addr", "add", "10.214.9.77/24", "dev", &iface]));
            let bumped = tokio::time::timeout(Duration::from_secs(10), rx.changed()).await.is_ok();
            serde_json::json!({ "bumped": bumped, "after_ms": start.elapsed().as_millis() as u64, "counter": *rx.borrow() })
        }),
        other => panic!("unknown {INNER_ENV}={other}"),
    };
    println!("\nWPAD-RESULT {result}");
}
