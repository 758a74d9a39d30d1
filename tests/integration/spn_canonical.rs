//! The Kerberos SPN of a proxy named by an alias is built from its canonical name, as
//! Chromium does: a tiny DNS server (dnsmasq, on a free loopback port, named in `[dns]
//! servers`) answers `alias.example.test` with a CNAME to `proxy.example.test`, the name
//! the real MIT KDC has a service principal for; squid in negotiate mode accepts tickets
//! for it. With `auth.canonicalize_spn` on (the default) waypost asks for
//! `HTTP/proxy.example.test` and the request goes through; off, it asks for
//! `HTTP/alias.example.test`, which the KDC does not know, and the proxy's 407 stands.
//! waypost runs as its own process: `KRB5_CONFIG`, which names the test KDC, is given to it
//! alone.

#![cfg(feature = "gssapi")]

use crate::support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use support::harness::{self, Origin};
use support::peers::{free_port, require_program, Kdc, Squid, USER};
use support::process::spawn_waypost_with_env;
use waypost_testsupport::eventually;

const ALIAS: &str = "alias.example.test";
const CANONICAL: &str = "proxy.example.test";

/// dnsmasq answering only for the alias (CNAME) and the canonical name (127.0.0.1).
struct Dns {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dns {
    async fn start() -> Dns {
        require_program("dnsmasq");
        let port = free_port();
        let child = std::process::Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--pid-file=",
                "--log-facility=-",
                "--log-queries",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--host-record={CANONICAL},127.0.0.1"))
            .arg(format!("--cname={ALIAS},{CANONICAL}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dnsmasq starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dns = Dns { child, addr };
        let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
        for c in &mut ns.connections {
            c.port = port;
        }
        let resolver = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![ns]),
            TokioRuntimeProvider::default(),
        )
        .build()
        .unwrap();
        eventually(
            Duration::from_secs(20),
            || async {
                let q = resolver.lookup_ip(format!("{ALIAS}."));
                matches!(
                    tokio::time::timeout(Duration::from_secs(2), q).await,
                    Ok(Ok(_))
                )
            },
            |up| *up,
        )
        .await;
        dns
    }
}

fn config(dir: &Path, squid: &Squid, dns: &Dns, keytab: &Path, canonicalize: bool) -> String {
    let path = dir.join(format!("waypost-{canonicalize}.toml"));
    std::fs::write(
        &path,
        format!(
            "listen = [\"127.0.0.1:0\"]\n[route]\nupstream = \"http://{ALIAS}:{}\"\n\
             bypass_loopback = false\n[tls]\nconnect_ports = []\n[dns]\nservers = [\"{}\"]\n\
             [auth]\nuser = \"{USER}@EXAMPLE.TEST\"\nkeytab = {:?}\nallow_proxies = [\"{ALIAS}\"]\n\
             canonicalize_spn = {canonicalize}\n",
            squid.port,
            dns.addr,
            keytab.display().to_string()
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// The SPN `explain` reports for the first proxy hop of an http URL.
async fn explained_spn(proxy: SocketAddr) -> String {
    let url = "http://origin.example.test/";
    let (status, _, body) = harness::get(
        proxy,
        &format!("/explain?url={}", waypost::ops::admin::percent_encode(url)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["spn"].as_str().unwrap_or_default().to_string()
}

async fn connect_through(addr: SocketAddr, origin: SocketAddr, path: &str) -> String {
    harness::raw(
        addr,
        format!(
            "CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n\r\n\
             GET /{path} HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_named_by_a_cname_alias_gets_the_spn_of_its_canonical_name_and_fails_without() {
    let kdc = Kdc::start();
    let squid = Squid::builder("negotiate").kdc(&kdc).start();
    let dns = Dns::start().await;
    let dir = tempfile::tempdir().unwrap();
    let keytab = kdc.user_keytab(&dir.path().join("user.keytab"));
    let origin = Origin::echo().await;
    let env = [("KRB5_CONFIG", kdc.krb5_conf.as_os_str())];

    // on (the default's value): HTTP/proxy.example.test, which the KDC knows
    let on = config(dir.path(), &squid, &dns, &keytab, true);
    let (waypost, addr, lines) = spawn_waypost_with_env(Path::new(&on), None, &env).await;
    let reply = connect_through(addr, origin.addr, "canonical").await;
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.contains("GET /canonical"),
        "{reply}\n{:?}",
        lines.lock().unwrap()
    );
    let log = std::fs::read_to_string(kdc.log()).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.contains("TGS_REQ") && l.contains(&format!("HTTP/{CANONICAL}@"))),
        "{log}"
    );
    assert_eq!(explained_spn(addr).await, format!("HTTP/{CANONICAL}"));
    drop(waypost);

    // off (Chromium's DisableAuthNegotiateCnameLookup): HTTP/alias.example.test, unknown
    let off = config(dir.path(), &squid, &dns, &keytab, false);
    let (_waypost, addr, lines) = spawn_waypost_with_env(Path::new(&off), None, &env).await;
    let reply = connect_through(addr, origin.addr, "alias").await;
    assert!(
        !reply.starts_with("HTTP/1.1 200") && !reply.contains("GET /alias"),
        "{reply}\n{:?}",
        lines.lock().unwrap()
    );
    let log = std::fs::read_to_string(kdc.log()).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.contains("TGS_REQ") && l.contains(&format!("HTTP/{ALIAS}@"))),
        "the alias's SPN was asked for and refused:\n{log}"
    );
    assert_eq!(explained_spn(addr).await, format!("HTTP/{ALIAS}"));
}
