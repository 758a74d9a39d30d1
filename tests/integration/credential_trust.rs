//! Trust decided by proof, not by names (issue 23): the real `waypost` binary, zero
//! configuration beyond its PAC URL, against a real MIT KDC, a squid that accepts only
//! Negotiate, and a recording "proxy" that answers 407 offering Negotiate, NTLM and Basic and
//! keeps every byte it receives.
//!
//! - office: the PAC (fetched over plain `http://`: the network's word) names the squid; the
//!   realm's KDC answers the proof, so Kerberos goes to the squid with no `[auth]` table at all;
//! - hostile: the KDC address leads to an impostor; the PAC names the recorder; nothing of any
//!   kind reaches it (SSO ticket, and a configured password with the proxy's name listed), and
//!   the client gets `X-Waypost-Error: auth-untrusted-proxy`, not the recorder's page;
//! - detector: the same recorder named by the user does receive each kind of credential, so
//!   the recorder would have seen them.
//!
//! waypost runs as its own process: `KRB5_CONFIG` and `KRB5CCNAME` are given to it alone.

#![cfg(feature = "gssapi")]

use crate::support;

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use support::harness::{self, Origin};
use support::peers::{Kdc, Squid, PASSWORD, USER};
use support::process::{spawn_waypost_with_env, Lines};

/// A "proxy" that answers every request with a 407 offering every scheme, recording all bytes.
struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<u8>>> = Arc::default();
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16384];
                    let mut pending = Vec::new();
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                        pending.extend_from_slice(&buf[..n]);
                        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            pending.drain(..end + 4);
                            let page = "attacker's page";
                            let reply = format!(
                                "HTTP/1.1 407 Proxy Authentication Required\r\n\
                                 Proxy-Authenticate: Negotiate\r\nProxy-Authenticate: NTLM\r\n\
                                 Proxy-Authenticate: Basic realm=\"corp\"\r\n\
                                 Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{page}",
                                page.len()
                            );
                            if s.write_all(reply.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Recorder { port, seen }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

/// An HTTP server answering every request with `pac` (a PAC fetched over plain http://).
async fn pac_server(pac: String) -> Origin {
    Origin::start(move |_req| {
        let pac = pac.clone();
        async move { http::Response::new(waypost::body::full(pac)) }
    })
    .await
}

fn pac_naming(port: u16) -> String {
    format!("function FindProxyForURL(url, host) {{ return \"PROXY localhost:{port}\"; }}")
}

fn write_config(dir: &Path, name: &str, pac_url: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "listen = [\"127.0.0.1:0\"]\n[pac]\nsource = \"{pac_url}\"\ncache_file = \"none\"\n\
             [route]\nbypass_loopback = false\n[tls]\nconnect_ports = []\n{extra}"
        ),
    )
    .unwrap();
    path
}

/// A krb5.conf like the KDC's, with the realm's KDC at `kdc` instead.
fn krb5_conf_with_kdc(real: &Path, kdc: &str, out: &Path) {
    let text = std::fs::read_to_string(real).unwrap();
    let rewritten: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("kdc") && l.contains('=') {
                format!("    kdc = {kdc}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(
        rewritten, text,
        "the KDC's krb5.conf names its kdc:\n{text}"
    );
    std::fs::write(out, rewritten).unwrap();
}

/// A TCP server that reads a request and answers with garbage: something posing as the KDC.
async fn impostor_kdc() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = s.read(&mut buf).await;
                let answer = b"\x7e\x03\x02\x01\x05";
                let _ = s.write_all(&(answer.len() as u32).to_be_bytes()).await;
                let _ = s.write_all(answer).await;
            });
        }
    });
    addr
}

async fn wait_for_line(lines: &Lines, needle: &str) -> String {
    // the whole log is what a timeout reports
    let all = waypost_testsupport::eventually(
        Duration::from_secs(20),
        || async { lines.lock().unwrap().clone() },
        |all| all.iter().any(|l| l.contains(needle)),
    )
    .await;
    all.into_iter()
        .find(|l| l.contains(needle))
        .unwrap_or_default()
}

fn env<'a>(krb5_conf: &'a Path, ccache: &'a OsStr) -> [(&'static str, &'a OsStr); 2] {
    [
        ("KRB5_CONFIG", krb5_conf.as_os_str()),
        ("KRB5CCNAME", ccache),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerberos_goes_to_a_wpad_named_proxy_only_on_a_network_the_kdc_proves() {
    let kdc = Kdc::start();
    let squid = Squid::builder("negotiate").kdc(&kdc).start();
    let origin = Origin::echo().await;
    let recorder = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ccache_path = dir.path().join("ccache");
    assert!(kdc.kinit_into(&ccache_path, PASSWORD), "kinit");
    let ccache = format!("FILE:{}", ccache_path.display());
    let ccache = OsStr::new(&ccache);

    // the office: the PAC over plain http:// names the squid; no [auth] table at all
    let office_pac = pac_server(pac_naming(squid.port)).await;
    let office = write_config(dir.path(), "office.toml", &office_pac.url("/wpad.dat"), "");
    let (child, addr, lines) =
        spawn_waypost_with_env(&office, None, &env(&kdc.krb5_conf, ccache)).await;
    let (status, headers, body) = harness::get(addr, &origin.url("/office")).await;
    assert_eq!(
        status,
        200,
        "{headers:?} {body} {:?}",
        lines.lock().unwrap()
    );
    assert!(body.contains("GET /office"), "{body}");
    wait_for_line(&lines, "network proven").await;
    let access = squid.access_log_when(|l| l.contains("/office")).await;
    assert!(
        access.contains(&format!("{USER}@")),
        "squid names the user:\n{access}"
    );
    let kdc_log = std::fs::read_to_string(kdc.log()).unwrap_or_default();
    assert!(
        kdc_log.contains("TGS_REQ") && kdc_log.contains("for krbtgt/EXAMPLE.TEST"),
        "the proof reached the KDC:\n{kdc_log}"
    );
    drop(child);

    // the hostile network: its "KDC" is an impostor, its PAC names the recorder; SSO ticket,
    // then a password with the recorder's name listed, as the one-line fix would have it
    let fake_kdc = impostor_kdc().await;
    let hostile_krb5 = dir.path().join("hostile-krb5.conf");
    krb5_conf_with_kdc(&kdc.krb5_conf, &fake_kdc.to_string(), &hostile_krb5);
    let hostile_pac = pac_server(pac_naming(recorder.port)).await;
    let with_password = format!(
        "[auth]\nuser = \"EXAMPLE\\\\{USER}\"\npassword = \"{PASSWORD}\"\nallow_proxies = [\"localhost\"]\n"
    );
    for (name, extra) in [
        ("sso.toml", String::new()),
        ("password.toml", with_password),
    ] {
        recorder.clear();
        let cfg = write_config(dir.path(), name, &hostile_pac.url("/wpad.dat"), &extra);
        let (child, addr, lines) =
            spawn_waypost_with_env(&cfg, None, &env(&hostile_krb5, ccache)).await;
        let (status, headers, body) = harness::get(addr, &origin.url("/hostile")).await;
        assert_eq!(status, 502, "{name}: {headers:?} {body}");
        assert_eq!(
            headers.get("x-waypost-error").map(|v| v.to_str().unwrap()),
            Some("auth-untrusted-proxy"),
            "{name}: {headers:?}"
        );
        assert!(
            !body.contains("attacker's page"),
            "{name}: the page is not relayed: {body}"
        );
        let tunnel = harness::raw(
            addr,
            format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", origin.addr).as_bytes(),
        )
        .await;
        assert!(
            tunnel.starts_with("HTTP/1.1 502") && tunnel.contains("auth-untrusted-proxy"),
            "{name}: {tunnel}"
        );
        let seen = recorder.text();
        assert!(
            seen.contains("GET http://") && seen.contains("CONNECT "),
            "{name}: {seen}"
        );
        assert!(
            !seen.to_ascii_lowercase().contains("proxy-authorization"),
            "{name}: a credential reached the hostile proxy:\n{seen}"
        );
        let line = wait_for_line(&lines, "network not proven").await;
        assert!(!line.contains(PASSWORD), "{line}");
        drop(child);
    }

    // the detector: named by the user (route.upstream), the recorder does get each kind
    for (scheme, user, marker) in [
        ("auto", None, "Proxy-Authorization: Negotiate YII"),
        (
            "ntlm",
            Some(format!("EXAMPLE\\\\{USER}")),
            "Proxy-Authorization: NTLM TlRMTVNTUAAB",
        ),
        (
            "basic",
            Some(USER.to_string()),
            "Proxy-Authorization: Basic ",
        ),
    ] {
        recorder.clear();
        let creds = match &user {
            Some(u) => format!("user = \"{u}\"\npassword = \"{PASSWORD}\"\n"),
            None => String::new(),
        };
        let cfg = dir.path().join(format!("detector-{scheme}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "listen = [\"127.0.0.1:0\"]\n[route]\nupstream = \"http://localhost:{}\"\n\
                 bypass_loopback = false\n[auth]\nscheme = \"{scheme}\"\npolicy = \"low\"\n{creds}",
                recorder.port
            ),
        )
        .unwrap();
        let (child, addr, _lines) =
            spawn_waypost_with_env(&cfg, None, &env(&kdc.krb5_conf, ccache)).await;
        let (status, _, _) = harness::get(addr, &origin.url("/detector")).await;
        assert_eq!(status, 407, "{scheme}: the recorder keeps refusing");
        let seen = recorder.text();
        assert!(
            seen.to_ascii_lowercase()
                .contains(&marker.to_ascii_lowercase()),
            "{scheme}: the recorder sees {marker:?}:\n{seen}"
        );
        drop(child);
    }
}
