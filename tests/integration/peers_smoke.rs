//! Proves the real-peer helpers of `tests/support/peers.rs` against the peers
//! themselves, without waypost: every squid mode answers as documented, the KDC issues
//! tickets squid accepts, the SOCKS5 servers and the python origin serve, and dropping
//! a handle stops its daemon. Clients are raw sockets and curl.

use crate::support;

use std::process::Command;
use std::time::Duration;

use support::peers::{self, Kdc, Origin, Socks5, Squid, WpadLab, PASSWORD, USER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use waypost_testsupport::curl::Curl;
use waypost_testsupport::{eventually, eventually_blocking, procfs};

/// An in-test origin: answers every request on a connection `200 hello`, then closes.
async fn hello_origin() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = read_head(&mut conn).await;
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                    )
                    .await;
            });
        }
    });
    port
}

/// Reads up to the end of an HTTP head.
async fn read_head(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

async fn read_to_end(conn: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut buf))
        .await
        .expect("peer answered in time")
        .unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

/// The HTTP status curl got for `url` through `proxy` with `extra` options.
fn status_via(proxy: &str, extra: &[&str], url: &str) -> String {
    Curl::new().proxy(proxy).args(extra).status(url)
}

const CREDS: &str = "user:Secret-Pass-1";

#[tokio::test]
async fn squid_open_forwards_an_absolute_form_get_to_an_in_test_origin() {
    let origin = hello_origin().await;
    let squid = Squid::start("open");
    let mut conn = TcpStream::connect(squid.addr()).await.unwrap();
    let request = format!(
        "GET http://127.0.0.1:{origin}/smoke HTTP/1.1\r\nHost: 127.0.0.1:{origin}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let response = read_to_end(&mut conn).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("hello"), "{response}");
    // squid logs a request when its transaction ends, which may be after the client is done
    let logged = format!("GET http://127.0.0.1:{origin}/smoke 200");
    eventually(
        Duration::from_secs(10),
        || async { squid.access_log() },
        |log| log.contains(&logged),
    )
    .await;
}

#[tokio::test]
async fn squid_open_tunnels_connect_to_an_in_test_origin() {
    let origin = hello_origin().await;
    let squid = Squid::start("open");
    let mut conn = TcpStream::connect(squid.addr()).await.unwrap();
    conn.write_all(
        format!("CONNECT 127.0.0.1:{origin} HTTP/1.1\r\nHost: 127.0.0.1:{origin}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let head = read_head(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    conn.write_all(b"GET /in-tunnel HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let response = read_to_end(&mut conn).await;
    assert!(
        response.starts_with("HTTP/1.1 200") && response.ends_with("hello"),
        "{response}"
    );
}

#[tokio::test]
async fn dropping_a_squid_stops_it_and_its_port_closes() {
    let squid = Squid::start("basic");
    let addr = squid.addr();
    let pid_file = squid.state_dir().join("pids/squid.pid");
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(procfs::running(&pid));
    drop(squid);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "squid still accepts on {addr}"
    );
    assert!(!procfs::running(&pid), "squid pid {pid} still alive");
}

#[test]
fn squid_chain_forwards_through_its_parent() {
    let origin = Origin::start();
    let parent = Squid::start("open");
    let child = Squid::start_with_parent("open", parent.port);
    assert_eq!(
        status_via(&child.url(), &[], &format!("{}/chained", origin.url())),
        "200"
    );
    // the parent saw it (logged when its transaction ends, maybe after curl is done)
    eventually_blocking(
        Duration::from_secs(10),
        || parent.access_log(),
        |log| log.contains("/chained"),
    );
}

#[test]
fn squid_basic_demands_basic_and_checks_the_password() {
    let origin = Origin::start();
    let squid = Squid::start("basic");
    let url = format!("{}/basic", origin.url());
    assert_eq!(status_via(&squid.url(), &[], &url), "407");
    assert_eq!(
        status_via(&squid.url(), &["--proxy-basic", "-U", CREDS], &url),
        "200"
    );
    assert_eq!(
        status_via(&squid.url(), &["--proxy-basic", "-U", "user:wrong"], &url),
        "407"
    );
    eventually_blocking(
        Duration::from_secs(10),
        || squid.access_log(),
        |log| log.contains("user=user"),
    );
}

#[test]
fn squid_ntlm_verifies_the_ntlmv2_response_against_the_password() {
    let origin = Origin::start();
    let squid = Squid::start("ntlm");
    let url = format!("{}/ntlm", origin.url());
    assert_eq!(
        status_via(&squid.url(), &["--proxy-ntlm", "-U", CREDS], &url),
        "200"
    );
    assert_eq!(
        status_via(
            &squid.url(),
            &["--proxy-ntlm", "-U", "EXAMPLE\\user:Secret-Pass-1"],
            &url
        ),
        "200"
    );
    assert_eq!(
        status_via(&squid.url(), &["--proxy-ntlm", "-U", "user:wrong"], &url),
        "407"
    );
    let log = squid.ntlm_log();
    assert!(
        log.contains(r#""ntlm_version": "v2""#) && log.contains(r#""verdict": "ok""#),
        "{log}"
    );
    assert!(log.contains(r#""verdict": "fail""#), "{log}");
}

#[test]
fn squid_ntlm_mic_refuses_curl_which_sends_no_mic() {
    let origin = Origin::start();
    let squid = Squid::start("ntlm-mic");
    assert_eq!(
        status_via(&squid.url(), &["--proxy-ntlm", "-U", CREDS], &origin.url()),
        "407"
    );
    assert!(
        squid.ntlm_log().contains("MIC required but absent"),
        "{}",
        squid.ntlm_log()
    );
}

#[test]
fn squid_ntlm_mic_accepts_a_client_whose_authenticate_carries_a_mic() {
    let origin = Origin::start();
    let squid = Squid::start("ntlm-mic");
    let proxy = squid.addr().to_string();
    assert_eq!(
        peers::reference_ntlm_client(&["--proxy", &proxy, &origin.url()]),
        "200"
    );
    let target = format!("127.0.0.1:{}", origin.port);
    assert_eq!(
        peers::reference_ntlm_client(&["--proxy", &proxy, "--connect", &target, &origin.url()]),
        "200"
    );
    assert_eq!(
        peers::reference_ntlm_client(&["--proxy", &proxy, "--password", "wrong", &origin.url()]),
        "407"
    );
    assert!(
        squid.ntlm_log().contains(r#""mic_present": true"#),
        "{}",
        squid.ntlm_log()
    );
}

#[test]
fn squid_negotiate_accepts_a_kerberos_ticket_from_the_test_kdc() {
    let origin = Origin::start();
    let kdc = Kdc::start();
    let squid = Squid::builder("negotiate").kdc(&kdc).start();
    kdc.kinit();
    let wrong = kdc.state_dir().join("wrong-ccache");
    assert!(
        !kdc.kinit_into(&wrong, "not-the-password"),
        "the KDC accepted a wrong password"
    );
    let neg = |proxy: &str| {
        Curl::new()
            .proxy(proxy)
            .args(["--proxy-negotiate", "-U", ":"])
            .envs(&kdc.env())
            .status(&origin.url())
    };
    // SPN HTTP/localhost is in the keytab; HTTP/127.0.0.1 is not (as on Windows)
    assert_eq!(neg(&format!("http://localhost:{}", squid.port)), "200");
    assert_eq!(neg(&squid.url()), "407");
    eventually_blocking(
        Duration::from_secs(10),
        || squid.access_log(),
        |log| log.contains(&format!("user={USER}@")),
    );
}

#[test]
fn squid_all_offers_negotiate_ntlm_basic_in_that_order_and_accepts_each() {
    let origin = Origin::start();
    let squid = Squid::start("all");
    let kdc = squid.kdc().expect("mode all starts its own KDC");
    kdc.kinit();
    let head = Curl::new().proxy(&squid.url()).head(&origin.url());
    let schemes: Vec<&str> = head
        .lines()
        .filter_map(|l| l.strip_prefix("proxy-authenticate: "))
        .map(|v| v.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(schemes, ["negotiate", "ntlm", "basic"], "{head}");
    let proxy = format!("http://localhost:{}", squid.port);
    for scheme in [
        "--proxy-negotiate",
        "--proxy-ntlm",
        "--proxy-basic",
        "--proxy-anyauth",
    ] {
        let creds = if scheme == "--proxy-negotiate" {
            ":".to_string()
        } else {
            format!("{USER}:{PASSWORD}")
        };
        let got = Curl::new()
            .proxy(&proxy)
            .args([scheme, "-U", &creds])
            .envs(&kdc.env())
            .status(&origin.url());
        assert_eq!(got, "200", "{scheme}");
    }
    // raw NTLMSSP inside Negotiate (Windows without Kerberos) goes to the NTLM verifier
    let raw = peers::reference_ntlm_client(&[
        "--proxy",
        &squid.addr().to_string(),
        "--scheme",
        "Negotiate",
        &origin.url(),
    ]);
    assert_eq!(raw, "200");
}

#[test]
fn squid_all_close_closes_the_connection_after_the_first_407() {
    let origin = Origin::start();
    let squid = Squid::start("all-close");
    let head = Curl::new().proxy(&squid.url()).head(&origin.url());
    assert!(
        head.starts_with("http/1.1 407") && head.contains("connection: close"),
        "{head}"
    );
    let proxy = format!("http://localhost:{}", squid.port);
    assert_eq!(
        status_via(&proxy, &["--proxy-ntlm", "-U", CREDS], &origin.url()),
        "200"
    );
    // a WinHTTP-like client sends nothing first, sees the close, reconnects and handshakes
    assert_eq!(
        peers::reference_ntlm_client(&["--proxy", &squid.addr().to_string(), &origin.url()]),
        "200"
    );
}

#[test]
fn squid_https_port_speaks_tls_with_a_certificate_from_the_test_ca() {
    let origin = Origin::start_tls();
    let squid = Squid::start("https");
    let proxy_ca = squid
        .ca_pem
        .as_ref()
        .expect("https mode has a CA")
        .display()
        .to_string();
    let origin_ca = origin.ca_pem.as_ref().unwrap().display().to_string();
    let got = Curl::new()
        .proxy(&squid.url())
        .args(["--proxy-cacert", &proxy_ca, "--cacert", &origin_ca])
        .status(&origin.url());
    assert_eq!(got, "200");
    // without the CA the proxy's certificate is refused
    let refused = Curl::new()
        .proxy(&squid.url())
        .args(["--cacert", &origin_ca])
        .status(&origin.url());
    assert_eq!(refused, "000");
}

#[test]
fn socks5_servers_connect_with_and_without_a_password() {
    let origin = Origin::start();
    let open = Socks5::start();
    let authed = Socks5::start_with_auth();
    let via = |socks: &Socks5, extra: &[&str]| {
        Curl::new()
            .args(["--socks5-hostname", &socks.addr().to_string()])
            .args(extra)
            .status(&origin.url())
    };
    assert_eq!(via(&open, &[]), "200");
    assert_eq!(via(&authed, &["--proxy-user", CREDS]), "200");
    assert_eq!(via(&authed, &["--proxy-user", "user:wrong"]), "000");
    assert_eq!(via(&authed, &[]), "000");
}

#[test]
fn python_origin_echoes_what_it_received() {
    let origin = Origin::start();
    let body = Curl::new()
        .args(["-H", "X-Probe: 1", &format!("{}/echo", origin.url())])
        .run()
        .stdout;
    assert!(
        body.starts_with("origin=http method=GET path=/echo"),
        "{body}"
    );
    assert!(body.contains("> X-Probe: 1"), "{body}");
    assert_eq!(
        Curl::new().status(&format!("{}/status/418", origin.url())),
        "418"
    );
}

#[test]
fn wpad_lab_offers_the_pac_by_dhcp_and_dns_inside_its_namespace() {
    let pac = "function FindProxyForURL(url, host) { return \"PROXY 127.0.0.1:3128; DIRECT\"; }\n";
    let lab = WpadLab::start(pac);
    let run = |cmd: &mut Command| {
        String::from_utf8_lossy(&cmd.output().expect("ip netns exec").stdout).into_owned()
    };
    let dhcp = run(lab
        .in_client("busybox")
        .args([
            "udhcpc",
            "-i",
            &lab.client_iface,
            "-f",
            "-q",
            "-n",
            "-t",
            "5",
            "-T",
            "1",
            "-O",
            "wpad",
            "-s",
        ])
        .arg(&lab.udhcpc_script));
    assert!(dhcp.contains(&format!("wpad={}", lab.wpad_url)), "{dhcp}");
    assert!(dhcp.contains(&format!("domain={}", lab.domain)), "{dhcp}");
    // "wpad" through the search domain, as a WPAD client would ask
    let hosts = run(lab.in_client("getent").args(["hosts", "wpad"]));
    assert!(hosts.starts_with(&lab.server_ip), "{hosts}");
    let served = Curl::in_netns(&lab.client_ns)
        .arg(&format!("http://wpad.{}/wpad.dat", lab.domain))
        .run()
        .stdout;
    assert_eq!(served, pac);
    lab.set_pac("function FindProxyForURL(url, host) { return \"DIRECT\"; }\n");
    let served = Curl::in_netns(&lab.client_ns)
        .arg(&lab.wpad_url)
        .run()
        .stdout;
    assert!(served.contains("\"DIRECT\""), "{served}");
}
