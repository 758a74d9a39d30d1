//! "Is this destination waypost itself?" has one answer on every path: every spelling of this
//! machine's address (literal, unspecified, v4-mapped, numeric, a name, a trailing dot) on
//! every port waypost listens on (proxy with the served PAC, admin, SOCKS) is refused with 508
//! `loop` (a SOCKS failure on the SOCKS listener) whether it arrives as a plain request, a
//! CONNECT, an upgrade, a SOCKS CONNECT, a hop a PAC script names, or the configured upstream;
//! nothing ever reaches the admin surface or nests a session into waypost, and a request
//! costs no more than the client's own connection.

use crate::support;

use std::net::SocketAddr;

use support::harness::{self, metric};
use support::peers::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Spellings of this machine, as a URL or authority writes them.
const SPELLINGS: &[&str] = &[
    "127.0.0.1",
    "localhost",
    "127.0.0.1.",
    "0.0.0.0",
    "[::]",
    "[::ffff:0.0.0.0]",
    "[::ffff:127.0.0.1]",
    "127.1",
    "2130706433",
    "0x7f.1",
];

/// One request on a fresh connection; the status line and what followed.
async fn ask(proxy: SocketAddr, head: &str) -> String {
    harness::raw(
        proxy,
        format!("{head}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
}

fn refused_as_loop(reply: &str) -> bool {
    reply.starts_with("HTTP/1.1 508")
        && reply.to_ascii_lowercase().contains("x-waypost-error: loop")
        && !reply.contains("waypost_")
}

/// A SOCKS5 CONNECT to `host` (as a domain name, the way clients send names) on `port`; the
/// reply code (0 = succeeded).
async fn socks_connect(socks: SocketAddr, host: &str, port: u16) -> u8 {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut s = TcpStream::connect(socks).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).await.unwrap();
    assert_eq!(choice, [5, 0], "no-auth method");
    let mut req = vec![5, 1, 0, 3, host.len() as u8];
    req.extend_from_slice(host.as_bytes());
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut reply = [0u8; 2];
    match tokio::time::timeout(std::time::Duration::from_secs(10), s.read_exact(&mut reply)).await {
        Ok(Ok(_)) => reply[1],
        _ => 0xff, // closed without a reply: refused too
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_waypost_itself_is_refused_on_every_entry_path() {
    let dir = tempfile::tempdir().unwrap();
    // the PAC names whatever hop the URL's query asks for: one script serves every case
    let pac = dir.path().join("hop.pac");
    std::fs::write(
        &pac,
        "function FindProxyForURL(url, host) { var i = url.indexOf('?hop='); \
         return i > 0 ? decodeURIComponent(url.substring(i + 5)) : 'DIRECT'; }",
    )
    .unwrap();
    let pac_source = pac.display().to_string();
    let proxy = harness::start_proxy(|c| {
        c.admin_listen = vec!["127.0.0.1:0".into()];
        c.socks_listen = vec!["127.0.0.1:0".into()];
        c.pac.source = pac_source.clone().into();
        c.pac.cache_file = "none".into();
        c.route.bypass_loopback = false;
    })
    .await;
    let (http, admin, socks) = (proxy.addrs[0], proxy.admin_addrs[0], proxy.socks_addrs[0]);
    let connections = "waypost_client_connections_total";
    let before = metric(&harness::registry_metrics(&proxy), connections);
    let mut failures = Vec::new();
    let mut asked = 0.0;
    for host in SPELLINGS {
        for port in [http.port(), admin.port(), socks.port()] {
            let cases = [
                ("http", format!("GET http://{host}:{port}/metrics HTTP/1.1\r\nHost: {host}:{port}")),
                ("connect", format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}")),
                (
                    "upgrade",
                    format!(
                        "GET http://{host}:{port}/status.json HTTP/1.1\r\nHost: {host}:{port}\r\n\
                         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
                    ),
                ),
                (
                    "pac proxy hop",
                    format!("GET http://hop.example.test/?hop=PROXY%20{host}:{port} HTTP/1.1\r\nHost: hop.example.test"),
                ),
                (
                    "pac socks hop",
                    format!("GET http://hop.example.test/?hop=SOCKS5%20{host}:{port} HTTP/1.1\r\nHost: hop.example.test"),
                ),
            ];
            for (path, head) in cases {
                asked += 1.0;
                let reply = ask(http, &head).await;
                if !refused_as_loop(&reply) {
                    failures.push(format!(
                        "{path} {host}:{port}: {}",
                        reply.lines().next().unwrap_or("(nothing)")
                    ));
                }
            }
            asked += 1.0;
            let code = socks_connect(socks, host, port).await;
            if code == 0 {
                failures.push(format!("socks {host}:{port}: the SOCKS listener connected"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "reached waypost itself:\n{}",
        failures.join("\n")
    );
    // each case cost its client's connection and nothing more: no self-connection was made
    let after = metric(&harness::registry_metrics(&proxy), connections);
    assert!(
        after - before <= asked,
        "{asked} cases opened {} connections to waypost",
        after - before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_waypost_itself_as_the_configured_upstream_is_a_loop() {
    for host in SPELLINGS {
        for scheme in ["http", "socks5"] {
            let (port, socks) = (free_port(), free_port());
            let target_port = if scheme == "http" { port } else { socks };
            let proxy = harness::start_proxy(|c| {
                c.listen = vec![format!("127.0.0.1:{port}")];
                c.socks_listen = vec![format!("127.0.0.1:{socks}")];
                c.route.upstream = format!("{scheme}://{host}:{target_port}");
                c.route.bypass_loopback = false;
            })
            .await;
            let reply = ask(
                proxy.addrs[0],
                "GET http://www.example.test/ HTTP/1.1\r\nHost: www.example.test",
            )
            .await;
            assert!(
                refused_as_loop(&reply),
                "upstream {scheme}://{host}:{target_port}: {reply}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_that_are_each_others_upstream_stop_a_connect_at_its_second_visit() {
    let (a_port, b_port) = (free_port(), free_port());
    let instance = |port: u16, upstream: u16| {
        harness::start_proxy(move |c| {
            c.listen = vec![format!("127.0.0.1:{port}")];
            c.route.upstream = format!("http://127.0.0.1:{upstream}");
            c.route.bypass_loopback = false;
        })
    };
    let a = instance(a_port, b_port).await;
    let b = instance(b_port, a_port).await;
    let connections = "waypost_client_connections_total";
    let count =
        |p: &waypost::listen::server::Running| metric(&harness::registry_metrics(p), connections);
    let (a0, b0) = (count(&a), count(&b));
    for head in [
        "CONNECT www.example.test:443 HTTP/1.1\r\nHost: www.example.test:443",
        "GET http://www.example.test/ HTTP/1.1\r\nHost: www.example.test",
    ] {
        let reply = ask(a.addrs[0], head).await;
        let status = reply.lines().next().unwrap_or("");
        assert!(
            status.starts_with("HTTP/1.1 508")
                || reply.to_ascii_lowercase().contains("x-waypost-error: loop")
                || status.starts_with("HTTP/1.1 5"),
            "{head}: {reply}"
        );
        assert!(!status.starts_with("HTTP/1.1 2"), "{head}: {reply}");
    }
    // A -> B -> A (refused there): per request one connection into B and two into A
    let (a1, b1) = (count(&a), count(&b));
    assert!(
        a1 - a0 <= 4.0 && b1 - b0 <= 2.0,
        "A accepted {} and B {} connections for two requests",
        a1 - a0,
        b1 - b0
    );
}
