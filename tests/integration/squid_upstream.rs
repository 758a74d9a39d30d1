//! waypost chained to a real squid (Debian package, started on loopback by tests/peers/).

use crate::support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::harness::{self, metric, Client};
use support::scenario::BehindSquid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use waypost_testsupport::eventually;

/// A CONNECT tunnel to `target` through waypost at `proxy`, its 200 head read.
async fn tunnel(proxy: std::net::SocketAddr, target: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut b).await.unwrap();
        assert_eq!(
            n,
            1,
            "closed in the head: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_go_through_squid_on_pooled_keep_alive_connections() {
    let BehindSquid {
        squid,
        origin,
        proxy,
    } = BehindSquid::open(|_, _| {}).await;
    let mut client = Client::connect(proxy.addrs[0]).await;
    for i in 0..5 {
        let (status, _, body) = client.get(&origin.url(&format!("/via-squid/{i}"))).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with(&format!("GET /via-squid/{i}")), "{body}");
        assert!(
            body.to_ascii_lowercase().contains("via: 1.1"),
            "squid adds Via: {body}"
        );
    }
    let m = harness::metrics(proxy.addrs[0]).await;
    let label = format!("upstream=\"127.0.0.1:{}\"", squid.port);
    assert_eq!(
        metric(&m, &format!("waypost_pool_opened_total{{{label}}}")),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, &format!("waypost_pool_reused_total{{{label}}}")),
        4.0,
        "{m}"
    );
    // squid logs each request when its transaction ends, the last maybe after our response
    eventually(
        Duration::from_secs(10),
        || async { squid.access_log() },
        |log| log.matches("/via-squid/").count() == 5,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tunnels_go_through_squid() {
    let BehindSquid {
        squid,
        origin,
        proxy,
    } = BehindSquid::open(|_, _| {}).await;
    let mut s = tunnel(proxy.addrs[0], origin.addr).await;
    // speak HTTP to the origin inside the tunnel
    s.write_all(b"GET /inside-tunnel HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(out.contains("GET /inside-tunnel"), "{out}");
    // a tunnel is logged when it closes
    eventually(
        Duration::from_secs(10),
        || async { squid.access_log() },
        |log| log.contains("CONNECT"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_through_an_authenticating_squid_is_spliced_and_carries_every_byte_in_order() {
    let echo = harness::echo_server().await;
    let BehindSquid {
        squid: _squid,
        origin: _origin,
        proxy,
    } = BehindSquid::start("basic", |c, _| {
        c.auth.scheme = waypost_auth::SchemeChoice::Basic;
    })
    .await;
    let s = tunnel(proxy.addrs[0], echo).await;
    // a pattern that shows a lost, doubled or reordered chunk, both ways at once
    let payload: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = s.into_split();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w
    });
    // read to the length, not to the end: squid closes both ways at a client's half-close
    let mut got = vec![0u8; payload.len()];
    tokio::time::timeout(Duration::from_secs(20), r.read_exact(&mut got))
        .await
        .expect("the echo comes back in time")
        .unwrap();
    drop(writer.await.unwrap());
    assert!(got == payload, "the chained tunnel changed the bytes");
    let m = harness::metrics(proxy.addrs[0]).await;
    assert_eq!(
        metric(&m, "waypost_tunnel_relays_total{way=\"splice\"}"),
        1.0,
        "after the upstream's 200 the tunnel is relayed socket to socket: {m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bypassed_hosts_skip_squid() {
    let BehindSquid {
        squid,
        origin,
        proxy,
    } = BehindSquid::open(|c, _| {
        c.route.bypass = vec!["127.0.0.0/8".into()];
    })
    .await;
    let (status, _, body) = harness::get(proxy.addrs[0], &origin.url("/direct")).await;
    assert_eq!(status, 200);
    assert!(!body.to_ascii_lowercase().contains("via:"), "{body}");
    assert!(!squid.access_log().contains("/direct"));
    assert_eq!(origin.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unreachable_upstream_proxy_gives_502_connect_refused() {
    let port = support::peers::free_port();
    let proxy = harness::start_proxy(|c| {
        c.route.upstream = format!("http://127.0.0.1:{port}");
        c.route.bypass_loopback = false;
    })
    .await;
    let (status, headers, body) = harness::get(proxy.addrs[0], "http://example.test/").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(headers["x-waypost-error"], "connect-refused");
}
