//! Real peers for integration tests: squid in every authentication mode, an MIT
//! Kerberos KDC, SOCKS5 servers and a python origin, each started on 127.0.0.1 by the
//! scripts in `tests/peers/` with a private state dir and a port picked here.
//!
//! Each handle stops its daemons (by the pids the scripts recorded) when dropped; a
//! watchdog started by the scripts stops them too if the test process dies without
//! dropping. Starting is blocking (a script runs): in a `#[tokio::test]` start peers
//! before awaiting anything else, or in `spawn_blocking`.
//!
//! A missing program panics with a message naming `scripts/install-deps.sh`: tests
//! never skip silently. `WP_KEEP_PEERS=1` keeps the state dirs (configs, logs)
//! for a look after the run; a test that panics prints its peers' log tails.
//!
//! This module must not know anything about waypost itself. The root crate's tests reach it
//! as `support::peers` (a re-export in `tests/support/peers.rs`), `waypost-auth`'s through
//! `auth/tests/common`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use tempfile::TempDir;

/// Kerberos realm of every test KDC.
pub const REALM: &str = "EXAMPLE.TEST";
/// The one test user: Kerberos `user@EXAMPLE.TEST`, NTLM `user` or `EXAMPLE\user`, Basic, SOCKS5.
pub const USER: &str = "user";
pub const PASSWORD: &str = "Secret-Pass-1";
pub const NTLM_DOMAIN: &str = "EXAMPLE";
/// Name with a keytab entry (`HTTP/proxy.example.test`); squid resolves it to 127.0.0.1.
/// Clients must map it themselves (the keytab also has `HTTP/localhost`, which needs nothing).
pub const PROXY_HOST: &str = "proxy.example.test";
/// Name squid resolves to 127.0.0.1 from its own hosts file.
pub const ORIGIN_HOST: &str = "origin.example.test";

const INSTALL_HINT: &str = "run scripts/install-deps.sh (as root) to install the test dependencies";

/// `tests/peers/` of this checkout (the one copy of the scripts, whichever crate's tests
/// start the peers).
///
/// Found from the running test's package directory (`cargo test` sets `CARGO_MANIFEST_DIR`
/// when it runs a test), not only from the one this crate was compiled in: a target directory
/// shared by two checkouts can hold a build of this crate made in the other one, and its
/// scripts are not this checkout's.
pub fn peers_dir() -> PathBuf {
    let running = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    for start in running.into_iter().chain([compiled.clone()]) {
        if let Some(dir) = start
            .ancestors()
            .map(|d| d.join("tests").join("peers"))
            .find(|d| d.join("lib.sh").is_file())
        {
            return dir;
        }
    }
    compiled
        .parent()
        .expect("testsupport/ sits in the workspace root")
        .join("tests")
        .join("peers")
}

/// A loopback port that was free a moment ago, for TCP and UDP alike (the KDC takes
/// both), and never handed out twice by this process. A start script that finds it
/// taken after all makes the caller pick another one.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = tcp.local_addr().expect("local_addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        if HANDED_OUT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port)
        {
            return port;
        }
    }
}

/// Panics naming the installer unless `program` is on PATH (or an executable path).
pub fn require_program(program: &str) {
    let found = if program.contains('/') {
        Path::new(program).is_file()
    } else {
        std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
            .unwrap_or(false)
    };
    assert!(found, "missing program '{program}': {INSTALL_HINT}");
}

/// Runs `tests/peers/ntlm_client.py` (pyspnego: NTLMv2 with a MIC, WinHTTP-like legs on
/// one connection) with the venv of `scripts/install-deps.sh`; returns the final status
/// code it printed ("" when it failed). `args`: `--proxy 127.0.0.1:PORT [--scheme
/// Negotiate] [--password PW] [--connect HOST:PORT] URL`.
pub fn reference_ntlm_client(args: &[&str]) -> String {
    require_program("bash");
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#". "$1/lib.sh"; wp_require_venv; exec "$WP_VENV/bin/python" "$1/ntlm_client.py" "${@:2}""#)
        .arg("ntlm-client")
        .arg(peers_dir())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tests/peers/ntlm_client.py");
    if out.status.code() == Some(69) {
        panic!(
            "{}\n{INSTALL_HINT}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// One started peer: its state dir and the script-recorded daemons in it.
struct Peer {
    what: String,
    dir: TempDir,
    info: BTreeMap<String, String>,
}

impl Peer {
    /// Runs `tests/peers/<script> --state DIR --port PORT --owner-pid PID ARGS...`,
    /// picking a new port while the script reports the port taken (exit 75).
    fn start(what: &str, script: &str, args: &[String]) -> (Peer, u16) {
        Peer::start_in(None, what, script, args)
    }

    /// As [`Peer::start`], inside the network namespace `netns` when given.
    fn start_in(netns: Option<&str>, what: &str, script: &str, args: &[String]) -> (Peer, u16) {
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let mut all = vec!["--port".to_string(), port.to_string()];
            all.extend_from_slice(args);
            match Peer::launch_in(netns, what, &[script], &all) {
                Ok(peer) => return (peer, port),
                Err(stderr) => last_error = stderr, // port taken meanwhile: try another
            }
        }
        panic!("cannot start {what}: no free port after 5 attempts: {last_error}");
    }

    /// Runs `tests/peers/<command...> --state DIR --owner-pid PID ARGS...`; `Err(stderr)`
    /// when the script says to retry with other parameters (exit 75); panics otherwise.
    fn launch(what: &str, command: &[&str], args: &[String]) -> Result<Peer, String> {
        Peer::launch_in(None, what, command, args)
    }

    fn launch_in(
        netns: Option<&str>,
        what: &str,
        command: &[&str],
        args: &[String],
    ) -> Result<Peer, String> {
        require_program("bash");
        let dir = state_dir(what);
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "bash"]);
                c
            }
            None => Command::new("bash"),
        };
        let out = cmd
            .arg(peers_dir().join(command[0]))
            .args(&command[1..])
            .arg("--state")
            .arg(dir.path())
            .arg("--owner-pid")
            .arg(std::process::id().to_string())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run tests/peers/{}: {e}", command[0]));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let info = stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let peer = Peer {
            what: what.to_string(),
            dir,
            info,
        };
        match out.status.code() {
            Some(0) => Ok(peer),
            Some(75) => Err(stderr), // Drop cleans up what was started
            Some(69) => panic!("cannot start {what}: {}\n{INSTALL_HINT}", stderr.trim()),
            _ => panic!(
                "cannot start {what} (tests/peers/{} {}: {}):\n{}",
                command.join(" "),
                args.join(" "),
                out.status,
                stderr.trim()
            ),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn info_path(&self, key: &str) -> Option<PathBuf> {
        self.info.get(key).map(PathBuf::from)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            print_log_tails(&self.what, self.dir.path());
        }
        let _ = Command::new("bash")
            .arg(peers_dir().join("stop.sh"))
            .arg("--state")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        if std::env::var_os("WP_KEEP_PEERS").is_some_and(|v| v == "1") {
            self.dir.disable_cleanup(true);
            eprintln!(
                "[peers] kept {} state in {}",
                self.what,
                self.dir.path().display()
            );
        }
    }
}

/// A fresh state dir under /tmp (root-run daemons drop to `nobody`, which must be able
/// to reach it: TMPDIR may point somewhere private).
fn state_dir(what: &str) -> TempDir {
    let base = std::env::var_os("WP_PEERS_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    tempfile::Builder::new()
        .prefix(&format!("waypost-{what}-"))
        .tempdir_in(&base)
        .unwrap_or_else(|e| panic!("cannot create a state dir in {}: {e}", base.display()))
}

fn print_log_tails(what: &str, dir: &Path) {
    let Ok(entries) = fs::read_dir(dir.join("log")) else {
        return;
    };
    for entry in entries.flatten() {
        let text = fs::read_to_string(entry.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(20)..];
        if !tail.is_empty() {
            eprintln!(
                "--- {what}: tail of {}\n{}",
                entry.path().display(),
                tail.join("\n")
            );
        }
    }
}

/// An MIT Kerberos KDC for `EXAMPLE.TEST` with `user` / `Secret-Pass-1` and a keytab
/// for `HTTP/localhost` and `HTTP/proxy.example.test`.
pub struct Kdc {
    pub port: u16,
    /// What clients use as `KRB5_CONFIG` (names taken as given: no DNS canonicalisation).
    pub krb5_conf: PathBuf,
    /// Keys of `HTTP/localhost@EXAMPLE.TEST` and `HTTP/proxy.example.test@EXAMPLE.TEST`.
    pub keytab: PathBuf,
    /// Default credential cache, filled by [`Kdc::kinit`].
    pub ccache: PathBuf,
    /// The network namespace it runs in (None: this one).
    netns: Option<String>,
    peer: Peer,
}

impl Kdc {
    pub fn start() -> Kdc {
        Kdc::start_with(&[])
    }

    /// A KDC whose tickets live at most `max_life` (e.g. "2m"), with a clock skew allowance
    /// of 10 s to match (ticket renewal tests).
    pub fn start_short_lived(max_life: &str) -> Kdc {
        Kdc::start_with(&["--max-life", max_life, "--clockskew", "10"])
    }

    fn start_with(args: &[&str]) -> Kdc {
        Kdc::start_in_netns(None, args)
    }

    /// A KDC on the own 127.0.0.1 of the network namespace `netns` (a WPAD lab's client).
    pub fn start_in(netns: &str) -> Kdc {
        Kdc::start_in_netns(Some(netns), &[])
    }

    fn start_in_netns(netns: Option<&str>, args: &[&str]) -> Kdc {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (peer, port) = Peer::start_in(netns, "kdc", "start-kdc.sh", &args);
        let dir = peer.path().to_path_buf();
        Kdc {
            netns: netns.map(str::to_string),
            port,
            krb5_conf: dir.join("krb5.conf"),
            keytab: dir.join("http.keytab"),
            ccache: dir.join("ccache"),
            peer,
        }
    }

    pub fn state_dir(&self) -> &Path {
        self.peer.path()
    }

    /// Gets a TGT for `user@EXAMPLE.TEST` into [`Kdc::ccache`]; panics if the KDC refuses.
    pub fn kinit(&self) -> PathBuf {
        assert!(
            self.kinit_into(&self.ccache, PASSWORD),
            "kinit user@{REALM} failed; see {}",
            self.state_dir().join("log").display()
        );
        self.ccache.clone()
    }

    /// kinit with `password` into `ccache`; false when the KDC refuses.
    pub fn kinit_into(&self, ccache: &Path, password: &str) -> bool {
        require_program("kinit");
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "bash"]);
                c
            }
            None => Command::new("bash"),
        };
        cmd.arg(peers_dir().join("kinit.sh"))
            .arg("--state")
            .arg(self.state_dir())
            .arg("--ccache")
            .arg(ccache)
            .arg("--password")
            .arg(password)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Environment for a Kerberos client of this KDC: `KRB5_CONFIG`, `KRB5CCNAME`.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("KRB5_CONFIG".into(), self.krb5_conf.display().to_string()),
            (
                "KRB5CCNAME".into(),
                format!("FILE:{}", self.ccache.display()),
            ),
        ]
    }

    /// Writes a keytab with the key of `user@EXAMPLE.TEST` (from its password) to `path`.
    pub fn user_keytab(&self, path: &Path) -> PathBuf {
        use std::io::Write;
        require_program("ktutil");
        let script = format!(
            "addent -password -p {USER}@{REALM} -k 1 -e aes256-cts-hmac-sha1-96\n{PASSWORD}\nwkt {}\nquit\n",
            path.display()
        );
        let mut child = Command::new("ktutil")
            .env("KRB5_CONFIG", &self.krb5_conf)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("run ktutil");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(script.as_bytes())
            .expect("write to ktutil");
        assert!(child.wait().expect("ktutil").success(), "ktutil failed");
        path.to_path_buf()
    }

    /// The KDC's own log (AS and TGS requests).
    pub fn log(&self) -> PathBuf {
        self.state_dir().join("log").join("krb5kdc.log")
    }
}

/// Authentication modes of [`Squid`] (the `--mode` of `tests/peers/start-squid.sh`).
pub const SQUID_MODES: &[&str] = &[
    "open",
    "https",
    "basic",
    "ntlm",
    "ntlm-mic",
    "negotiate",
    "all",
    "all-close",
];

/// A squid on 127.0.0.1 in one of [`SQUID_MODES`]:
/// `open` no auth; `https` TLS to the proxy (`https_port`), no auth; `basic`; `ntlm`
/// (NTLMv2 verified against the password); `ntlm-mic` (MIC required); `negotiate`
/// (Kerberos); `all` (Negotiate, NTLM, Basic; Negotiate also takes raw NTLMSSP);
/// `all-close` (as `all`, the first 407 closes the connection).
pub struct Squid {
    pub port: u16,
    pub mode: String,
    /// CA of the `https` mode's certificate (for localhost, 127.0.0.1, proxy.example.test).
    pub ca_pem: Option<PathBuf>,
    peer: Peer,
    own_kdc: Option<Kdc>,
}

impl Squid {
    /// Starts squid in `mode`; the Kerberos modes get a KDC of their own ([`Squid::kdc`]).
    pub fn start(mode: &str) -> Squid {
        SquidBuilder::new(mode).start()
    }

    /// Starts squid in `mode` forwarding everything to the proxy at 127.0.0.1:`parent_port`.
    pub fn start_with_parent(mode: &str, parent_port: u16) -> Squid {
        SquidBuilder::new(mode)
            .parent(&format!("127.0.0.1:{parent_port}"))
            .start()
    }

    pub fn builder(mode: &str) -> SquidBuilder {
        SquidBuilder::new(mode)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` in mode `https`.
    pub fn url(&self) -> String {
        if self.mode == "https" {
            format!("https://localhost:{}", self.port)
        } else {
            format!("http://127.0.0.1:{}", self.port)
        }
    }

    /// The KDC this squid started for itself (Kerberos modes without a shared KDC).
    pub fn kdc(&self) -> Option<&Kdc> {
        self.own_kdc.as_ref()
    }

    pub fn state_dir(&self) -> &Path {
        self.peer.path()
    }

    /// One line per request: `time client METHOD URL status result user=NAME`.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.state_dir().join("log/access.log")).unwrap_or_default()
    }

    /// The access log once `done` holds for it, polled for up to 10 s: squid writes a
    /// transaction's line after the reply went out, so a client can read the log before the
    /// line of its last request is there.
    pub async fn access_log_when(&self, done: impl Fn(&str) -> bool) -> String {
        crate::eventually(
            std::time::Duration::from_secs(10),
            || async { self.access_log() },
            |log| done(log),
        )
        .await
    }

    pub fn cache_log(&self) -> String {
        fs::read_to_string(self.state_dir().join("log/cache.log")).unwrap_or_default()
    }

    /// A port squid refuses CONNECT to (403 `ERR_ACCESS_DENIED`), as a corporate squid refuses
    /// CONNECT outside its SSL ports; in the authenticating modes only after authentication.
    pub fn denied_connect_port(&self) -> u16 {
        self.peer
            .info
            .get("DENIED_CONNECT_PORT")
            .and_then(|p| p.parse().ok())
            .expect("start-squid.sh prints DENIED_CONNECT_PORT")
    }

    /// JSON lines from the NTLM verifier: user, domain, ntlm_version, mic_present,
    /// target_name, channel_bindings, verdict, reason, ...
    pub fn ntlm_log(&self) -> String {
        self.peer
            .info_path("NTLM_LOG")
            .and_then(|p| fs::read_to_string(p).ok())
            .unwrap_or_default()
    }
}

pub struct SquidBuilder {
    netns: Option<String>,
    mode: String,
    kdc_state: Option<PathBuf>,
    parent: Option<String>,
    tls_dir: Option<PathBuf>,
    credentials: Option<(String, String)>,
}

impl SquidBuilder {
    fn new(mode: &str) -> SquidBuilder {
        assert!(
            SQUID_MODES.contains(&mode),
            "unknown squid mode {mode:?}; one of {SQUID_MODES:?}"
        );
        SquidBuilder {
            netns: None,
            mode: mode.to_string(),
            kdc_state: None,
            parent: None,
            tls_dir: None,
            credentials: None,
        }
    }

    /// Accept `user` / `password` instead of [`USER`] / [`PASSWORD`] (modes basic and NTLM).
    pub fn credentials(mut self, user: &str, password: &str) -> SquidBuilder {
        self.credentials = Some((user.to_string(), password.to_string()));
        self
    }

    /// Run in the network namespace `netns` (on its own 127.0.0.1), e.g. a WPAD lab's client.
    pub fn netns(mut self, netns: &str) -> SquidBuilder {
        self.netns = Some(netns.to_string());
        self
    }

    /// Verify Kerberos tickets of this KDC (keep it alive as long as clients need it).
    pub fn kdc(mut self, kdc: &Kdc) -> SquidBuilder {
        self.kdc_state = Some(kdc.state_dir().to_path_buf());
        self
    }

    /// Forward everything to the proxy at `host:port` (`cache_peer ... parent`, `never_direct`).
    pub fn parent(mut self, host_port: &str) -> SquidBuilder {
        self.parent = Some(host_port.to_string());
        self
    }

    /// Reuse a CA dir (`ca.pem`, `server.pem`, `server.key`; made there if absent).
    pub fn tls_dir(mut self, dir: &Path) -> SquidBuilder {
        self.tls_dir = Some(dir.to_path_buf());
        self
    }

    pub fn start(self) -> Squid {
        let needs_kdc = matches!(self.mode.as_str(), "negotiate" | "all" | "all-close");
        let own_kdc = (needs_kdc && self.kdc_state.is_none()).then(Kdc::start);
        let mut args = vec!["--mode".to_string(), self.mode.clone()];
        if let Some(dir) = self
            .kdc_state
            .as_deref()
            .or(own_kdc.as_ref().map(|k| k.state_dir()))
        {
            args.extend(["--kdc-state".into(), dir.display().to_string()]);
        }
        if let Some(parent) = &self.parent {
            args.extend(["--parent".into(), parent.clone()]);
        }
        if let Some(dir) = &self.tls_dir {
            args.extend(["--tls-dir".into(), dir.display().to_string()]);
        }
        if let Some((user, password)) = &self.credentials {
            args.extend([
                "--user".into(),
                user.clone(),
                "--password".into(),
                password.clone(),
            ]);
        }
        let what = match &self.netns {
            Some(_) => format!("squid-{}-netns", self.mode),
            None => format!("squid-{}", self.mode),
        };
        let (peer, port) = Peer::start_in(self.netns.as_deref(), &what, "start-squid.sh", &args);
        Squid {
            port,
            mode: self.mode,
            ca_pem: peer.info_path("CA"),
            peer,
            own_kdc,
        }
    }
}

/// A SOCKS5 server on 127.0.0.1: Dante without authentication, or microsocks with
/// username/password (`user` / `Secret-Pass-1`). Both reach loopback destinations only.
pub struct Socks5 {
    pub port: u16,
    /// `Some((user, password))` when the server demands RFC 1929 authentication.
    pub credentials: Option<(String, String)>,
    peer: Peer,
}

impl Socks5 {
    pub fn start() -> Socks5 {
        let (peer, port) = Peer::start("socks5", "start-socks.sh", &[]);
        Socks5 {
            port,
            credentials: None,
            peer,
        }
    }

    pub fn start_with_auth() -> Socks5 {
        let (peer, port) = Peer::start("socks5-auth", "start-socks.sh", &["--auth".to_string()]);
        Socks5 {
            port,
            credentials: Some((USER.to_string(), PASSWORD.to_string())),
            peer,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn state_dir(&self) -> &Path {
        self.peer.path()
    }
}

/// The python origin of `tests/peers/origin.py`: echoes method, path and the request
/// headers it received; `/status/N`, `/bytes/N`, `/slow/MS`; POST `/sha256` answers
/// `bytes=N sha256=HEX` of the request body; `/sse?events=N&gap=SECONDS` streams server-sent
/// events that far apart; `/ws` is a WebSocket echo.
pub struct Origin {
    pub port: u16,
    /// CA of the TLS origin's certificate (for localhost, 127.0.0.1, origin.example.test).
    pub ca_pem: Option<PathBuf>,
    peer: Peer,
}

impl Origin {
    pub fn start() -> Origin {
        let (peer, port) = Peer::start("origin", "start-origin.sh", &[]);
        Origin {
            port,
            ca_pem: None,
            peer,
        }
    }

    pub fn start_tls() -> Origin {
        let (peer, port) = Peer::start("origin-tls", "start-origin.sh", &["--tls".to_string()]);
        Origin {
            port,
            ca_pem: peer.info_path("CA"),
            peer,
        }
    }

    /// `http://127.0.0.1:PORT` or `https://localhost:PORT`.
    pub fn url(&self) -> String {
        if self.ca_pem.is_some() {
            format!("https://localhost:{}", self.port)
        } else {
            format!("http://127.0.0.1:{}", self.port)
        }
    }

    pub fn state_dir(&self) -> &Path {
        self.peer.path()
    }
}

/// A WPAD network in two network namespaces (root only; `tests/peers/wpad-lab.sh`):
/// in the lab namespace dnsmasq answers DHCP (option 252 = [`WpadLab::wpad_url`],
/// option 15 = [`WpadLab::domain`]) and DNS (`wpad.<domain>` -> [`WpadLab::server_ip`]),
/// busybox httpd serves `/wpad.dat`. Programs under test run in the client namespace
/// ([`WpadLab::in_client`]): there DNS goes to the lab (`/etc/netns/<ns>/resolv.conf`,
/// search `<domain>`), DHCPINFORM on [`WpadLab::client_iface`] gets option 252, and
/// 127.0.0.1 is the namespace's own loopback (start upstreams there too if needed).
pub struct WpadLab {
    pub client_ns: String,
    pub client_iface: String,
    pub client_ip: String,
    pub server_ip: String,
    pub domain: String,
    /// What discovery should find: `http://<server_ip>/wpad.dat` (DHCP option 252), or
    /// `http://wpad.<domain>/wpad.dat` in a lab without option 252.
    pub wpad_url: String,
    /// The file httpd serves as `/wpad.dat`: rewrite it to change the PAC (roaming).
    pub pac_file: PathBuf,
    /// A busybox udhcpc script that prints what DHCP offered (for checks by hand).
    pub udhcpc_script: PathBuf,
    peer: Peer,
}

impl WpadLab {
    /// Brings a lab up serving `pac` as `/wpad.dat` (and `/proxy.pac`).
    pub fn start(pac: &str) -> WpadLab {
        WpadLab::start_with_domain(pac, "corp.example.test")
    }

    pub fn start_with_domain(pac: &str, domain: &str) -> WpadLab {
        WpadLab::launch(pac, domain, true)
    }

    /// A lab whose DHCP server leaves option 252 out: discovery has to find
    /// `wpad.<domain>` by DNS ([`WpadLab::wpad_url`] is then `http://wpad.<domain>/wpad.dat`).
    pub fn start_without_option_252(pac: &str) -> WpadLab {
        WpadLab::launch(pac, "corp.example.test", false)
    }

    fn launch(pac: &str, domain: &str, option_252: bool) -> WpadLab {
        static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let pac_dir = state_dir("wpad-pac");
        let pac_path = pac_dir.path().join("wpad.dat");
        fs::write(&pac_path, pac).expect("write the PAC");
        let mut last_error = String::new();
        for _attempt in 0..10 {
            // ids 1-250 name the namespaces and the /24; spread processes apart by pid
            let n = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let id = (std::process::id() + n * 7) % 250 + 1;
            let mut args = vec![
                "--id".to_string(),
                id.to_string(),
                "--pac".into(),
                pac_path.display().to_string(),
                "--domain".into(),
                domain.to_string(),
            ];
            if !option_252 {
                args.push("--no-option-252".into());
            }
            match Peer::launch("wpad-lab", &["wpad-lab.sh", "up"], &args) {
                Ok(peer) => {
                    let get = |k: &str| {
                        peer.info
                            .get(k)
                            .cloned()
                            .unwrap_or_else(|| panic!("wpad-lab.sh printed no {k}"))
                    };
                    return WpadLab {
                        client_ns: get("CLIENT_NS"),
                        client_iface: get("CLIENT_IFACE"),
                        client_ip: get("CLIENT_IP"),
                        server_ip: get("SERVER_IP"),
                        domain: get("DOMAIN"),
                        wpad_url: get("WPAD_URL"),
                        pac_file: PathBuf::from(get("PAC_FILE")),
                        udhcpc_script: PathBuf::from(get("UDHCPC_SCRIPT")),
                        peer,
                    };
                }
                Err(stderr) => last_error = stderr, // that id is in use: take another
            }
        }
        panic!("cannot start a WPAD lab: {last_error}");
    }

    /// A command that runs `program` inside the client namespace (`ip netns exec`).
    pub fn in_client(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.client_ns, program]);
        cmd
    }

    /// An `open` squid on the client namespace's own 127.0.0.1 (see [`Squid`]).
    pub fn squid_in_client(&self) -> Squid {
        let args = ["--mode".to_string(), "open".to_string()];
        let (peer, port) = Peer::start_in(
            Some(&self.client_ns),
            "squid-open-netns",
            "start-squid.sh",
            &args,
        );
        Squid {
            port,
            mode: "open".into(),
            ca_pem: None,
            peer,
            own_kdc: None,
        }
    }

    /// The python origin (see [`Origin`]) on the client namespace's own 127.0.0.1.
    pub fn origin_in_client(&self) -> Origin {
        let (peer, port) = Peer::start_in(
            Some(&self.client_ns),
            "origin-netns",
            "start-origin.sh",
            &[],
        );
        Origin {
            port,
            ca_pem: None,
            peer,
        }
    }

    /// Gives the client namespace this hosts file (for processes started from now on; removed
    /// with the lab).
    pub fn set_client_hosts(&self, text: &str) {
        let path = Path::new("/etc/netns").join(&self.client_ns).join("hosts");
        fs::write(path, text).expect("write the client's hosts file");
    }

    /// Serves `pac` from now on.
    pub fn set_pac(&self, pac: &str) {
        fs::write(&self.pac_file, pac).expect("rewrite wpad.dat");
    }

    /// dnsmasq's log: DHCP exchanges (`log-dhcp`) and DNS queries.
    pub fn dnsmasq_log(&self) -> String {
        fs::read_to_string(self.peer.path().join("log/dnsmasq.log")).unwrap_or_default()
    }
}
