//! Clients that cannot be pointed at an HTTP proxy, with real clients: curl through the SOCKS5
//! listener (domain names, IPv4, IPv6, a login), `/proxy.pac` read by waypost's own PAC engine
//! and used by headless Chromium, and `waypost env` evaluated by bash. The chain behind
//! waypost is the real one where it matters: a PAC-selected squid that demands NTLM.

use crate::support;

use std::path::Path;

use http::Request;
use hyper::body::Incoming;
use support::harness::{self, metric, Origin};
use support::peers::{Squid, PASSWORD, USER};
use waypost::body;
use waypost::config::raw::RawConfig;
use waypost_testsupport::curl::{Curl, CurlOutput};
use waypost_testsupport::peers::require_program;

/// waypost routes by a file PAC to the NTLM squid and answers its 407s with the test user.
fn via_ntlm_squid(raw: &mut RawConfig, pac_dir: &Path, squid_port: u16) {
    let pac = pac_dir.join("corp.pac");
    std::fs::write(
        &pac,
        format!(
            "function FindProxyForURL(url, host) {{ return \"PROXY localhost:{squid_port}\"; }}\n"
        ),
    )
    .unwrap();
    raw.pac.source = pac.display().to_string().into();
    raw.auth.user = Some(USER.to_string());
    raw.auth.password = Some(waypost_auth::credentials::SecretString::new(PASSWORD));
}

async fn curl(args: &[&str]) -> CurlOutput {
    Curl::new().args(args).run_async().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_socks5_hostname_reaches_an_origin_through_a_pac_selected_ntlm_squid() {
    let squid = tokio::task::spawn_blocking(|| Squid::start("ntlm"))
        .await
        .unwrap();
    let origin = Origin::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let port = squid.port;
    let proxy = harness::start_proxy(|raw| {
        via_ntlm_squid(raw, dir.path(), port);
        raw.socks_listen = vec!["127.0.0.1:0".into()];
    })
    .await;
    let socks = proxy.socks_addrs[0];
    // squid resolves origin.example.test to 127.0.0.1; neither curl nor waypost resolves it
    let url = format!(
        "http://origin.example.test:{}/via-socks",
        origin.addr.port()
    );
    let out = curl(&["--socks5-hostname", &socks.to_string(), &url]).await;
    assert!(out.success(), "{}", out.text());
    assert!(out.stdout.contains("GET /via-socks"), "{}", out.text());
    let connect = format!("CONNECT origin.example.test:{}", origin.addr.port());
    let log = squid.access_log_when(|l| l.contains(&connect)).await;
    assert!(
        log.contains(&connect),
        "the tunnel went through squid: {log}"
    );
    assert!(
        squid.ntlm_log().contains("\"authenticate\""),
        "waypost answered squid's NTLM challenge: {}",
        squid.ntlm_log()
    );
    let m = harness::metrics(proxy.addrs[0]).await;
    assert!(metric(&m, "waypost_client_connections_total") >= 1.0, "{m}");
}

/// An HTTP origin on `[::1]` (the harness' origins are IPv4).
async fn origin_v6() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let body = "hello over IPv6\n";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks_clients_connect_to_ipv4_and_ipv6_addresses() {
    let origin = Origin::echo().await;
    let v6 = origin_v6().await;
    let proxy = harness::start_proxy(|raw| raw.socks_listen = vec!["127.0.0.1:0".into()]).await;
    let socks = proxy.socks_addrs[0].to_string();
    // --socks5: curl resolves and sends the address (ATYP 1 / ATYP 4)
    let out = curl(&["--socks5", &socks, &origin.url("/v4")]).await;
    assert!(out.stdout.contains("GET /v4"), "{}", out.text());
    let out = curl(&["--socks5", &socks, &format!("http://{v6}/")]).await;
    assert_eq!(out.stdout, "hello over IPv6\n", "{}", out.text());
    let m = harness::metrics(proxy.addrs[0]).await;
    assert_eq!(
        metric(&m, "waypost_requests_total{kind=\"socks\",outcome=\"ok\"}"),
        2.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_socks_password_is_refused_and_the_right_one_connects() {
    let origin = Origin::echo().await;
    let proxy = harness::start_proxy(|raw| {
        raw.socks_listen = vec!["127.0.0.1:0".into()];
        raw.client_auth.username = "app".into();
        raw.client_auth.password = "Client-Pass-7".into();
    })
    .await;
    let socks = proxy.socks_addrs[0].to_string();
    let url = origin.url("/login");
    let wrong = curl(&["--socks5", &socks, "--proxy-user", "app:wrong", &url]).await;
    assert!(!wrong.success(), "{}", wrong.text());
    assert!(!wrong.stdout.contains("GET /login"), "{}", wrong.text());
    let none = curl(&["--socks5", &socks, &url]).await;
    assert!(!none.success(), "{}", none.text());
    let right = curl(&[
        "--socks5",
        &socks,
        "--proxy-user",
        "app:Client-Pass-7",
        &url,
    ])
    .await;
    assert!(right.stdout.contains("GET /login"), "{}", right.text());
    // the admin paths want the client_auth login too: read the registry itself
    let m = harness::registry_metrics(&proxy);
    assert_eq!(
        metric(
            &m,
            "waypost_client_connections_rejected_total{reason=\"auth\"}"
        ),
        2.0,
        "{m}"
    );
    // each refusal is recorded as every refusal is: an outcome (and an access line)
    assert_eq!(
        metric(
            &m,
            "waypost_requests_total{kind=\"socks\",outcome=\"client-auth-required\"}"
        ),
        2.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_socks_connect_gets_the_connection_refused_reply_code() {
    // a port nothing listens on, reached DIRECT (loopback)
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let proxy = harness::start_proxy(|raw| raw.socks_listen = vec!["127.0.0.1:0".into()]).await;
    let mut s = tokio::net::TcpStream::connect(proxy.socks_addrs[0])
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut greeting = [0u8; 2];
    s.read_exact(&mut greeting).await.unwrap();
    assert_eq!(greeting, [5, 0]);
    let mut req = vec![5, 1, 0, 1, 127, 0, 0, 1];
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[..2], [5, 5], "connection refused: {reply:?}");
}

/// Fetches `/proxy.pac` (or another path) from waypost with curl; returns (content type, body).
async fn fetch_pac(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let out = curl(&["-D", "/dev/stderr", &format!("http://{addr}{path}")]).await;
    assert!(out.success(), "{}", out.text());
    let ctype = out
        .stderr
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    (ctype, out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_pac_sends_bypassed_hosts_direct_and_the_rest_to_this_waypost() {
    let proxy = harness::start_proxy(|raw| {
        raw.socks_listen = vec!["127.0.0.1:0".into()];
        raw.route.bypass = vec!["*.corp.example".into(), "10.0.0.0/8".into()];
    })
    .await;
    let addr = proxy.addrs[0];
    let socks = proxy.socks_addrs[0];
    let (ctype, script) = fetch_pac(addr, "/proxy.pac").await;
    assert_eq!(ctype, "application/x-ns-proxy-autoconfig");
    let (_, wpad) = fetch_pac(addr, "/wpad.dat").await;
    assert_eq!(wpad, script);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.pac");
    std::fs::write(&file, &script).unwrap();
    // waypost's own PAC engine evaluates what browsers will
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_waypost"))
        .args(["pac", "eval", "--json", "--pac"])
        .arg(&file)
        .args([
            "--url",
            "http://wiki.corp.example/",
            "--url",
            "https://www.example.com/",
            "--url",
            "http://10.1.2.3/",
            "--url",
            "http://localhost:8080/",
        ])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["result"].as_str().unwrap_or("").to_string()
        })
        .collect();
    let to_waypost = format!("PROXY {addr}; SOCKS5 {socks}");
    assert_eq!(
        results,
        ["DIRECT", to_waypost.as_str(), "DIRECT", "DIRECT"],
        "{script}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_with_proxy_pac_url_reaches_an_origin_through_waypost_and_the_ntlm_squid() {
    require_program("chromium");
    let squid = tokio::task::spawn_blocking(|| Squid::start("ntlm"))
        .await
        .unwrap();
    let origin = Origin::start(|_req: Request<Incoming>| async {
        let mut r = http::Response::new(body::full(
            "<!doctype html><html><body><p id=m>reached through the PAC of waypost</p></body></html>",
        ));
        r.headers_mut()
            .insert("content-type", "text/html".parse().unwrap());
        r
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let port = squid.port;
    let proxy = harness::start_proxy(|raw| via_ntlm_squid(raw, dir.path(), port)).await;
    let pac_url = format!("http://{}/proxy.pac", proxy.addrs[0]);
    let url = format!("http://origin.example.test:{}/page", origin.addr.port());
    let profile = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("timeout")
        .args(["60", "chromium"])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--mute-audio",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--proxy-pac-url={pac_url}"))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .await
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("reached through the PAC of waypost"),
        "{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = squid.access_log_when(|l| l.contains(&url)).await;
    assert!(log.contains(&url), "the page came through squid: {log}");
    let m = harness::metrics(proxy.addrs[0]).await;
    assert!(
        metric(
            &m,
            "waypost_auth_handshakes_total{outcome=\"authenticated\",scheme=\"ntlm\"}"
        ) >= 1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_evaluating_waypost_env_sends_curl_through_waypost() {
    let origin = Origin::echo().await;
    let proxy = harness::start_proxy(|raw| {
        raw.dns
            .hosts
            .insert("origin.example.test".into(), vec!["127.0.0.1".into()]);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("waypost.toml");
    std::fs::write(&config, format!("listen = [\"{}\"]\n", proxy.addrs[0])).unwrap();
    let url = format!("http://origin.example.test:{}/from-env", origin.addr.port());
    let script = format!(
        "set -e; eval \"$('{exe}' env --config '{cfg}')\"; test \"$NO_PROXY\" = \"$no_proxy\"; \
         curl -sS -i --max-time 20 '{url}'",
        exe = env!("CARGO_BIN_EXE_waypost"),
        cfg = config.display(),
    );
    let out = tokio::process::Command::new("bash")
        .args(["-c", &script])
        .env_remove("WAYPOST_CONFIG")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("GET /from-env"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("x-request-id:"),
        "the answer came through waypost: {text}"
    );
}

/// Runs the waypost binary; returns (success, stdout).
async fn waypost(args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_waypost"))
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn completions_for_every_shell_and_the_man_page_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let (ok, text) = waypost(&["completions", shell]).await;
        assert!(ok, "{shell}: {text}");
        for sub in ["doctor", "explain", "completions", "env"] {
            assert!(
                text.contains(sub),
                "{shell} completion lacks {sub}:\n{text}"
            );
        }
    }
    let (ok, man) = waypost(&["man"]).await;
    assert!(ok, "{man}");
    assert!(
        man.starts_with(".ie") || man.contains(".TH waypost"),
        "not roff:\n{man}"
    );
    for sub in [
        "waypost\\-run",
        "waypost\\-doctor",
        "waypost\\-env",
        "waypost\\-man",
    ] {
        assert!(man.contains(sub), "the man page lacks {sub}:\n{man}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (ok, _) = waypost(&["man", "--dir", &dir.path().display().to_string()]).await;
    assert!(ok);
    for page in [
        "waypost.1",
        "waypost-run.1",
        "waypost-env.1",
        "waypost-pac-eval.1",
    ] {
        assert!(dir.path().join(page).exists(), "man --dir wrote no {page}");
    }
    let run = std::fs::read_to_string(dir.path().join("waypost-run.1")).unwrap();
    let version = concat!("\"waypost ", env!("CARGO_PKG_VERSION"), "\"");
    assert!(
        run.lines()
            .any(|l| l.starts_with(".TH") && l.contains(version)),
        "a subcommand's page names no program and version in its footer:\n{run}"
    );
    if std::process::Command::new("man")
        .arg("--version")
        .output()
        .is_ok()
    {
        // man renders it
        let page = dir.path().join("waypost.1");
        let out = std::process::Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        // grotty's overstrike bold (`S\x08S`) dropped
        let mut text = String::new();
        for c in String::from_utf8_lossy(&out.stdout).chars() {
            if c == '\u{8}' {
                text.pop();
            } else {
                text.push(c);
            }
        }
        assert!(
            out.status.success() && text.contains("SUBCOMMANDS"),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socks_connect_to_waypost_itself_is_refused_as_a_loop() {
    let proxy = harness::start_proxy(|raw| raw.socks_listen = vec!["127.0.0.1:0".into()]).await;
    let socks = proxy.socks_addrs[0];
    let out = curl(&["--socks5", &socks.to_string(), &format!("http://{socks}/")]).await;
    assert!(!out.success(), "{}", out.text());
    let m = harness::metrics(proxy.addrs[0]).await;
    assert_eq!(
        metric(
            &m,
            "waypost_requests_total{kind=\"socks\",outcome=\"loop\"}"
        ),
        1.0,
        "{m}"
    );
}
