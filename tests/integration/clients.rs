//! Real clients end to end: programs nobody here wrote (curl, pip, git, npm, headless
//! Chromium) use waypost as their proxy, and waypost reaches every target through the whole
//! chain: a PAC script picks `PROXY <dead>; PROXY <squid>`, the dead proxy fails and is marked
//! bad (failover), the squid demands NTLM which waypost answers on the client's behalf (auth),
//! and later requests reuse the authenticated connection (pool). Each test checks the client's
//! own result and that squid logged the request as the authenticated user.
//!
//! Targets are real peers on loopback: the python origin of tests/peers (HTTP, HTTPS, `/ws`
//! WebSocket echo) and `python3 -m http.server` serving a PEP 503 index with a wheel built by
//! tests/clients/make_repos.py, an npm registry document with its tarball, a bare git
//! repository (dumb HTTP) and a page that opens a WebSocket.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use support::harness;
use support::peers::{free_port, require_program, Origin, Squid};
use waypost::listen::server::Running;
use waypost_testsupport::{eventually, eventually_blocking, metrics::metric};

const USER: &str = "EXAMPLE\\user";
const PASSWORD: &str = "Secret-Pass-1";

/// waypost with a PAC that sends everything to a dead proxy first, then to an NTLM squid.
struct Chain {
    squid: Squid,
    proxy: Running,
    _pac: tempfile::TempDir,
    /// Holds the dead proxy's port for the chain's life: bound, never listening (connections
    /// are refused, and no other test's listener can take the port meanwhile).
    _dead: tokio::net::TcpSocket,
}

impl Chain {
    async fn start() -> Chain {
        let squid = tokio::task::spawn_blocking(|| Squid::start("ntlm"))
            .await
            .unwrap();
        let dead_socket = tokio::net::TcpSocket::new_v4().unwrap();
        dead_socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let dead = dead_socket.local_addr().unwrap().port();
        let pac = tempfile::tempdir().unwrap();
        let script = pac.path().join("proxy.pac");
        std::fs::write(
            &script,
            format!(
                "function FindProxyForURL(url, host) {{\n  \
                 return \"PROXY 127.0.0.1:{dead}; PROXY localhost:{}\";\n}}\n",
                squid.port
            ),
        )
        .unwrap();
        let proxy = harness::start_proxy(|c| {
            c.pac.source = script.display().to_string().into();
            c.route.bypass_loopback = false; // the targets are on loopback too
            c.auth.user = Some(USER.to_string());
            c.auth.password = Some(waypost_auth::credentials::SecretString::new(PASSWORD));
        })
        .await;
        Chain {
            squid,
            proxy,
            _pac: pac,
            _dead: dead_socket,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.proxy.addrs[0])
    }

    /// Squid logged `needle` (a unique path) as a request of the NTLM user. Squid writes the
    /// line when the transaction ends, which may be just after the client has its answer.
    async fn assert_squid_authenticated(&self, needle: &str) {
        let relayed = |log: &str| {
            log.lines()
                .find(|l| l.contains(needle) && !l.contains(" 407 "))
                .map(str::to_string)
        };
        let log = eventually(
            Duration::from_secs(10),
            || async { self.squid.access_log() },
            |log| relayed(log).is_some(),
        )
        .await;
        let line = relayed(&log).unwrap();
        assert!(
            line.contains("user=user"),
            "not authenticated as user: {line}"
        );
    }

    async fn metrics(&self) -> String {
        harness::metrics(self.proxy.addrs[0]).await
    }
}

/// Runs a client program off the runtime's threads (the proxy runs on them).
async fn run(mut cmd: Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = tokio::task::spawn_blocking(move || {
        cmd.env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("no_proxy")
            .env_remove("NO_PROXY")
            .env_remove("all_proxy")
            .env_remove("ALL_PROXY")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{shown} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// `python3 -m http.server` on a free port, serving `dir`; stopped on drop.
struct Files {
    port: u16,
    child: Child,
}

impl Files {
    fn serve(dir: &Path) -> Files {
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .arg("--directory")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        eventually_blocking(
            Duration::from_secs(20),
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            |up| *up,
        );
        Files { port, child }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The served tree of make_repos.py, for a server whose URL is known only after it starts:
/// the directory is created first, filled once the port is known.
fn repos(origin_port: u16) -> (tempfile::TempDir, Files) {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::serve(dir.path());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/make_repos.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(dir.path())
        .arg(files.url())
        .arg(format!("ws://127.0.0.1:{origin_port}/ws"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_http_and_https_through_a_pac_chosen_ntlm_squid_after_failover() {
    require_program("curl");
    let chain = Chain::start().await;
    let (origin, tls_origin) =
        tokio::task::spawn_blocking(|| (Origin::start(), Origin::start_tls()))
            .await
            .unwrap();

    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-x", &chain.url()])
        .arg(format!("{}/curl-http", origin.url()));
    let body = stdout(&run(cmd).await);
    assert!(body.contains("/curl-http"), "{body}");
    chain.assert_squid_authenticated("/curl-http").await;
    // a second client connection: waypost sends it on the pooled, authenticated connection
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-x", &chain.url()])
        .arg(format!("{}/curl-http-again", origin.url()));
    assert!(stdout(&run(cmd).await).contains("/curl-http-again"));

    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-x", &chain.url(), "--cacert"])
        .arg(tls_origin.ca_pem.as_ref().unwrap())
        .arg(format!("{}/curl-https", tls_origin.url()));
    let body = stdout(&run(cmd).await);
    assert!(body.contains("/curl-https"), "{body}");
    chain
        .assert_squid_authenticated(&format!("CONNECT localhost:{}", tls_origin.port))
        .await;

    let m = chain.metrics().await;
    // the dead first proxy failed once, was marked bad, and is tried last since
    assert_eq!(
        metric(
            &m,
            "waypost_route_failovers_total{reason=\"connect-refused\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(metric(&m, "waypost_proxies_marked_bad"), 1.0, "{m}");
    assert!(
        metric(&m, "waypost_auth_connections_reused_total") >= 1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_installs_a_wheel_from_a_local_index_through_the_chain() {
    require_program("python3");
    let chain = Chain::start().await;
    let (_dir, files) = repos(1);
    let target = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("python3");
    cmd.args([
        "-m",
        "pip",
        "install",
        "--no-cache-dir",
        "--disable-pip-version-check",
    ])
    .args(["--no-deps", "--target"])
    .arg(target.path())
    .args(["--index-url", &format!("{}/simple/", files.url())])
    .args(["--trusted-host", "127.0.0.1", "--proxy", &chain.url()])
    .arg("waypost-probe")
    .env("PIP_CONFIG_FILE", "/dev/null");
    run(cmd).await;
    let installed =
        std::fs::read_to_string(target.path().join("waypost_probe/__init__.py")).unwrap();
    assert!(installed.contains("installed through waypost"));
    chain
        .assert_squid_authenticated("/simple/waypost-probe/")
        .await;
    chain
        .assert_squid_authenticated("/files/waypost_probe-1.0-py3-none-any.whl")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_clones_over_http_through_the_chain() {
    require_program("git");
    let chain = Chain::start().await;
    let served = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let git = |dir: &Path, args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.test"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(work.path().join("README"), "cloned through waypost\n").unwrap();
    git(work.path(), &["init", "-q", "-b", "main"]);
    git(work.path(), &["add", "README"]);
    git(work.path(), &["commit", "-q", "-m", "first"]);
    let bare = served.path().join("repo.git");
    git(
        work.path(),
        &["clone", "-q", "--bare", ".", bare.to_str().unwrap()],
    );
    git(&bare, &["update-server-info"]); // dumb HTTP: info/refs
    let files = Files::serve(served.path());

    let dest = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("git");
    cmd.args(["-c", &format!("http.proxy={}", chain.url())])
        .args(["clone", "-q", &format!("{}/repo.git", files.url())])
        .arg(dest.path().join("clone"))
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    run(cmd).await;
    let text = std::fs::read_to_string(dest.path().join("clone/README")).unwrap();
    assert_eq!(text, "cloned through waypost\n");
    chain
        .assert_squid_authenticated("/repo.git/info/refs")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_installs_a_package_from_a_local_registry_through_the_chain() {
    require_program("npm");
    let chain = Chain::start().await;
    let (_dir, files) = repos(1);
    let prefix = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("npm");
    cmd.args([
        "install",
        "--no-audit",
        "--no-fund",
        "--no-package-lock",
        "--prefix",
    ])
    .arg(prefix.path())
    .args(["--cache"])
    .arg(prefix.path().join(".npm-cache"))
    .args(["--registry", &format!("{}/npm/", files.url())])
    .args(["--proxy", &chain.url(), "--https-proxy", &chain.url()])
    .arg("waypost-probe")
    .env("npm_config_userconfig", "/dev/null")
    .env("npm_config_update_notifier", "false");
    run(cmd).await;
    let installed =
        std::fs::read_to_string(prefix.path().join("node_modules/waypost-probe/index.js")).unwrap();
    assert!(installed.contains("installed through waypost"));
    chain
        .assert_squid_authenticated("/npm/waypost-probe-1.0.0.tgz")
        .await;
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|b| {
        Command::new("which")
            .arg(b)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    })
}

/// Headless Chromium told to use waypost (`--proxy-server`; loopback is not bypassed).
fn chromium_dump(proxy: &str, url: &str, profile: &Path) -> Command {
    let mut cmd = Command::new(chromium().expect("chromium (scripts/install-deps.sh installs it)"));
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=10000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(format!("--proxy-server={proxy}"))
    .arg("--proxy-bypass-list=<-loopback>")
    .args(["--dump-dom", url]);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_with_proxy_server_loads_a_page_and_a_websocket_through_the_chain() {
    require_program("chromium");
    let chain = Chain::start().await;
    let origin = tokio::task::spawn_blocking(Origin::start).await.unwrap();
    let (_dir, files) = repos(origin.port);
    let profile = tempfile::tempdir().unwrap();

    let page = format!("{}/chromium-page", origin.url());
    let dom = stdout(&run(chromium_dump(&chain.url(), &page, profile.path())).await);
    assert!(dom.contains("/chromium-page"), "{dom}");
    chain.assert_squid_authenticated("/chromium-page").await;

    // ws:// from a page script: Chromium tunnels it through the proxy with CONNECT
    let ws_page = format!("{}/ws.html", files.url());
    let dom = stdout(&run(chromium_dump(&chain.url(), &ws_page, profile.path())).await);
    assert!(
        dom.contains("echo:ping through waypost"),
        "{dom}\nsquid:\n{}",
        chain.squid.access_log()
    );
    chain
        .assert_squid_authenticated(&format!("CONNECT 127.0.0.1:{}", origin.port))
        .await;
}
