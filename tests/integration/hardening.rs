//! Attacks on waypost itself (issue 12), each tried with raw-socket probes on loopback: the
//! admin surface read by a web page (DNS rebinding) or without credentials, the proxy turned
//! against its own ports and the machine's local services, CONNECT to arbitrary ports, and
//! `tls.sni_rules` dodged through the CONNECT host.

use crate::support;

use std::net::SocketAddr;

use base64::Engine;
use support::harness::{self, Origin};

/// One request with `Connection: close`, the whole answer as text.
async fn ask(addr: SocketAddr, head: &str) -> String {
    let req = format!("{head}\r\nConnection: close\r\n\r\n");
    harness::raw(addr, req.as_bytes()).await
}

fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

#[tokio::test]
async fn admin_paths_answer_only_localhost_or_ip_literal_hosts() {
    let proxy = harness::start_proxy(|c| c.admin_listen = vec!["127.0.0.1:0".into()]).await;
    for addr in [proxy.addrs[0], proxy.admin_addrs[0]] {
        for path in [
            "/metrics",
            "/explain?url=http://intranet/",
            "/status.json",
            "/readyz",
        ] {
            let reply = ask(
                addr,
                &format!(
                    "GET {path} HTTP/1.1\r\nHost: rebind.attacker.example:{}",
                    addr.port()
                ),
            )
            .await;
            assert!(reply.starts_with("HTTP/1.1 403"), "{path}: {reply}");
            assert!(reply.contains("admin-refused"), "{reply}");
            assert!(!reply.contains("waypost_"), "no metric may leak: {reply}");
        }
        for host in [
            format!("127.0.0.1:{}", addr.port()),
            "localhost".into(),
            "[::1]:1".into(),
        ] {
            let reply = ask(addr, &format!("GET /metrics HTTP/1.1\r\nHost: {host}")).await;
            assert!(reply.starts_with("HTTP/1.1 200"), "{host}: {reply}");
        }
    }
}

#[tokio::test]
async fn admin_paths_need_the_client_auth_credentials_when_configured() {
    let proxy = harness::start_proxy(|c| {
        c.admin_listen = vec!["127.0.0.1:0".into()];
        c.client_auth.username = "app".into();
        c.client_auth.password = "s3cret-pw".into();
    })
    .await;
    for addr in [proxy.addrs[0], proxy.admin_addrs[0]] {
        let reply = ask(addr, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1").await;
        assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
        assert!(
            reply.contains("www-authenticate: Basic realm=\"waypost admin\""),
            "{reply}"
        );
        assert!(!reply.contains("waypost_"), "{reply}");
        let wrong = ask(
            addr,
            &format!(
                "GET /explain?url=http://x/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}",
                basic("app:nope")
            ),
        )
        .await;
        assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
        let right = ask(
            addr,
            &format!(
                "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}",
                basic("app:s3cret-pw")
            ),
        )
        .await;
        assert!(
            right.starts_with("HTTP/1.1 200") && right.contains("waypost_"),
            "{right}"
        );
        // probes work without the password, and learn nothing but the verdict
        let health = ask(addr, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1").await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        let ready = ask(addr, "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1").await;
        assert!(ready.ends_with("\r\n\r\nready\n"), "{ready}");
    }
}

#[tokio::test]
async fn the_client_pac_is_served_under_any_host_and_without_credentials_but_nothing_else_is() {
    let proxy = harness::start_proxy(|c| {
        c.client_auth.username = "app".into();
        c.client_auth.password = "s3cret-pw".into();
    })
    .await;
    let addr = proxy.addrs[0];
    for path in ["/proxy.pac", "/wpad.dat"] {
        let reply = ask(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: wpad.corp.example"),
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{path}: {reply}");
        assert!(reply.contains("FindProxyForURL"), "{reply}");
        assert!(!reply.contains("s3cret-pw"), "{reply}");
    }
    let metrics = ask(addr, "GET /metrics HTTP/1.1\r\nHost: wpad.corp.example").await;
    assert!(metrics.starts_with("HTTP/1.1 403"), "{metrics}");
    let status = ask(addr, "GET /status.json HTTP/1.1\r\nHost: 127.0.0.1").await;
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
}

#[tokio::test]
async fn admin_listeners_serve_only_the_admin_allow_list() {
    let proxy = harness::start_proxy(|c| {
        c.admin_listen = vec!["127.0.0.1:0".into()];
        c.admin_allow = vec!["10.0.0.0/8".into()];
    })
    .await;
    let reply = ask(
        proxy.admin_addrs[0],
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(reply.contains("admin_allow"), "{reply}");
}

#[tokio::test]
async fn requests_through_the_proxy_to_its_own_ports_never_reach_the_admin_surface() {
    let proxy = harness::start_proxy(|c| c.admin_listen = vec!["127.0.0.1:0".into()]).await;
    let (port, admin) = (proxy.addrs[0].port(), proxy.admin_addrs[0].port());
    for url in [
        format!("http://127.0.0.1:{port}/metrics"),
        format!("http://localhost:{port}/status.json"),
        format!("http://127.0.0.1:{admin}/metrics"),
    ] {
        let reply = ask(proxy.addrs[0], &format!("GET {url} HTTP/1.1\r\nHost: x")).await;
        assert!(reply.starts_with("HTTP/1.1 508"), "{url}: {reply}");
        assert!(!reply.contains("waypost_"), "{url}: {reply}");
    }
    let reply = ask(
        proxy.addrs[0],
        &format!("CONNECT 127.0.0.1:{admin} HTTP/1.1\r\nHost: 127.0.0.1:{admin}"),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 508"), "{reply}");
}

#[tokio::test]
async fn connect_is_limited_to_443_and_8443_by_default() {
    let echo = harness::echo_server().await;
    let proxy = harness::start_proxy(|c| {
        c.tls.connect_ports = waypost_tls::TlsConfig::default().connect_ports;
    })
    .await;
    let reply = ask(
        proxy.addrs[0],
        &format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}"),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(reply.contains("target-not-allowed"), "{reply}");
    for port in [25, 6379, 22] {
        let reply = ask(
            proxy.addrs[0],
            &format!("CONNECT smtp.example:{port} HTTP/1.1\r\nHost: smtp.example:{port}"),
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 403"), "{port}: {reply}");
    }
    assert_eq!(waypost_tls::TlsConfig::default().connect_ports, [443, 8443]);
}

#[tokio::test]
async fn sni_deny_rules_also_judge_the_connect_host() {
    let echo = harness::echo_server().await;
    let proxy = harness::start_proxy(|c| {
        c.tls.sni_rules.deny = vec!["denied.example".into()];
        c.dns
            .hosts
            .insert("denied.example".into(), vec!["127.0.0.1".into()]);
        c.dns
            .hosts
            .insert("fine.example".into(), vec!["127.0.0.1".into()]);
    })
    .await;
    // a plaintext tunnel (no ClientHello, so no SNI to judge) to a denied host
    let port = echo.port();
    let reply = ask(
        proxy.addrs[0],
        &format!("CONNECT denied.example:{port} HTTP/1.1\r\nHost: denied.example:{port}"),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(reply.contains("sni_rules"), "{reply}");
    let mut s = tokio::net::TcpStream::connect(proxy.addrs[0])
        .await
        .unwrap();
    let req = format!("CONNECT fine.example:{port} HTTP/1.1\r\nHost: fine.example:{port}\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut s, req.as_bytes())
        .await
        .unwrap();
    let head = support::wire::read_head(&mut s, std::time::Duration::from_secs(10)).await;
    assert_eq!(support::wire::status_of(&head), 200, "{head}");
}

/// This machine's address on its first non-loopback interface (the route to a TEST-NET
/// address; nothing is sent).
fn lan_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("198.51.100.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn clients_on_other_machines_cannot_reach_local_or_link_local_services() {
    let Some(lan) = lan_ip() else {
        panic!("this test needs a non-loopback interface (a gateway client's address)");
    };
    let origin = Origin::echo().await;
    let proxy = harness::start_proxy(|c| {
        c.listen = vec!["0.0.0.0:0".into()];
        c.allow = vec![format!("{lan}/32"), "127.0.0.0/8".into()];
        c.dns
            .hosts
            .insert("sneaky.example".into(), vec!["127.0.0.1".into()]);
    })
    .await;
    let gateway = SocketAddr::new(lan, proxy.addrs[0].port());
    let port = origin.addr.port();
    for url in [
        origin.url("/"),
        format!("http://sneaky.example:{port}/"),
        format!("http://{lan}:{port}/"),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://[fe80::1]/".into(),
    ] {
        let reply = ask(gateway, &format!("GET {url} HTTP/1.1\r\nHost: x")).await;
        assert!(reply.starts_with("HTTP/1.1 403"), "{url}: {reply}");
        assert!(reply.contains("target-not-allowed"), "{url}: {reply}");
    }
    let reply = ask(
        gateway,
        &format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x"),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    // the machine's own user (on loopback) still reaches its local services
    let local = SocketAddr::from(([127, 0, 0, 1], proxy.addrs[0].port()));
    assert_eq!(harness::get(local, &origin.url("/")).await.0, 200);
}

/// A raw request head of exactly `size` bytes for `url` (padded with one `X-Pad` header).
fn head_of_size(url: &str, size: usize) -> String {
    let start = format!("GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: ");
    let pad = size - start.len() - 4;
    format!("{start}{}\r\n\r\n", "a".repeat(pad))
}

#[tokio::test]
async fn the_request_head_limit_holds_to_the_byte() {
    let origin = Origin::echo().await;
    let proxy = harness::start_proxy(|_| {}).await;
    let url = origin.url("/");
    let at_limit = harness::raw(proxy.addrs[0], head_of_size(&url, 65536).as_bytes()).await;
    assert!(
        at_limit.starts_with("HTTP/1.1 200"),
        "{}",
        &at_limit[..80.min(at_limit.len())]
    );
    for size in [65537, 70_000, 100_000] {
        let reply = harness::raw(proxy.addrs[0], head_of_size(&url, size).as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 431"), "{size}: {reply}");
    }
    assert_eq!(
        origin.connections.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn a_request_with_a_transfer_coding_other_than_chunked_gets_501() {
    let origin = Origin::echo().await;
    let proxy = harness::start_proxy(|_| {}).await;
    let req = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        origin.url("/")
    );
    let reply = harness::raw(proxy.addrs[0], req.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 501"), "{reply}");
    assert!(reply.contains("unsupported-transfer-coding"), "{reply}");
    assert_eq!(
        origin.connections.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn an_upstream_answer_with_both_content_length_and_chunked_is_refused_not_truncated() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
                    .await;
            });
        }
    });
    let proxy = harness::start_proxy(|_| {}).await;
    let reply = ask(
        proxy.addrs[0],
        &format!("GET http://{addr}/ HTTP/1.1\r\nHost: {addr}"),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 502"), "{reply}");
    assert!(
        reply.contains("x-waypost-error: bad-upstream-framing"),
        "{reply}"
    );
    assert!(!reply.contains("hel"), "{reply}");
}

#[tokio::test]
async fn a_pac_url_token_never_shows_and_the_kept_script_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let pac = Origin::start(|_req| async {
        http::Response::new(waypost::body::full(
            "function FindProxyForURL(u, h) { return \"DIRECT\"; }",
        ))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("last-good.pac");
    let source = format!("http://{}/proxy.pac?token=SECRET-TOKEN-42", pac.addr);
    let (src, cache_file) = (source.clone(), cache.display().to_string());
    let proxy = harness::start_proxy(move |c| {
        c.pac.source = src.into();
        c.pac.cache_file = cache_file;
    })
    .await;
    let addr = proxy.addrs[0];
    let explain = waypost_testsupport::eventually(
        std::time::Duration::from_secs(10),
        || async move {
            ask(
                addr,
                "GET /explain?url=http%3A%2F%2Fexample.test%2F HTTP/1.1\r\nHost: 127.0.0.1",
            )
            .await
        },
        |r| r.contains("\"method\""),
    )
    .await;
    let status = ask(addr, "GET /status.json HTTP/1.1\r\nHost: 127.0.0.1").await;
    for shown in [&explain, &status] {
        assert!(!shown.contains("SECRET-TOKEN-42"), "{shown}");
        assert!(shown.contains("proxy.pac?***"), "{shown}");
    }
    let mark = std::fs::read_to_string(dir.path().join("last-good.pac.source")).unwrap();
    assert!(!mark.contains("SECRET-TOKEN-42"), "{mark}");
    for f in ["last-good.pac", "last-good.pac.source"] {
        let mode = std::fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_waypost"))
        .args(["config", "check"])
        .env("WAYPOST_PAC__SOURCE", &source)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{out}");
    assert!(
        out.contains("proxy.pac?***") && !out.contains("SECRET-TOKEN-42"),
        "{out}"
    );
}

#[test]
fn a_client_auth_password_file_readable_by_others_refuses_to_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.pw");
    std::fs::write(&file, "pw\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut raw = waypost::config::raw::RawConfig::default();
    raw.client_auth.username = "app".into();
    raw.client_auth.password_file = file.display().to_string();
    let problems = waypost::config::validate(&raw, &Default::default()).unwrap_err();
    let p = problems
        .iter()
        .find(|p| p.key == "client_auth.password_file")
        .expect("a problem");
    assert!(
        p.message.contains("chmod 600") && p.message.contains("client.pw"),
        "{}",
        p.message
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(waypost::config::validate(&raw, &Default::default()).is_ok());
}

/// Refusals before an exchange begins (a malformed target, authority form without CONNECT, a
/// CONNECT to nothing) are answered like every failure: a request id, and the outcome counted.
#[tokio::test]
async fn requests_refused_before_their_exchange_get_a_request_id_and_are_counted() {
    let proxy = harness::start_proxy(|_| {}).await;
    let addr = proxy.addrs[0];
    for (head, kind) in [
        (
            "GET example.com:80 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
            "http",
        ),
        (
            "CONNECT :0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "connect",
        ),
    ] {
        let reply = harness::raw(addr, head.as_bytes())
            .await
            .to_ascii_lowercase();
        assert!(reply.starts_with("http/1.1 400"), "{head}: {reply}");
        assert!(reply.contains("x-request-id: "), "{head}: {reply}");
        let m = harness::registry_metrics(&proxy);
        let series = format!("waypost_requests_total{{kind=\"{kind}\",outcome=\"bad-request\"}}");
        assert!(m.lines().any(|l| l.starts_with(&series)), "{head}: {m}");
    }
}
