//! SOCKS upstreams (real Dante and microsocks servers) for CONNECT and plain HTTP requests.

use crate::support;

use support::harness::{self, Origin};
use support::peers::Socks5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_connect_go_through_a_socks5_server_with_remote_resolution() {
    let socks = tokio::task::spawn_blocking(Socks5::start).await.unwrap();
    let origin = Origin::echo().await;
    let upstream = format!("socks5://127.0.0.1:{}", socks.port);
    let proxy = harness::start_proxy(|c| {
        c.route.upstream = upstream.clone();
        c.route.bypass_loopback = false;
    })
    .await;
    // a name only the SOCKS server resolves (localhost -> 127.0.0.1 on its side)
    let (status, _, body) = harness::get(
        proxy.addrs[0],
        &format!("http://localhost:{}/via-socks", origin.addr.port()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("GET /via-socks"), "{body}");
    let reply = harness::raw(
        proxy.addrs[0],
        format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\nGET /socks-tunnel HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", origin.addr).as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("GET /socks-tunnel"), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_with_a_password_uses_the_configured_credentials() {
    let socks = tokio::task::spawn_blocking(Socks5::start_with_auth)
        .await
        .unwrap();
    let (user, password) = socks.credentials.clone().unwrap();
    let origin = Origin::echo().await;
    let upstream = format!("socks5://127.0.0.1:{}", socks.port);
    let without = harness::start_proxy(|c| {
        c.route.upstream = upstream.clone();
        c.route.bypass_loopback = false;
    })
    .await;
    let (status, headers, _) = harness::get(without.addrs[0], &origin.url("/")).await;
    assert_eq!(status, 502);
    assert_eq!(headers["x-waypost-error"], "proxy-connect-refused");
    let with = harness::start_proxy(|c| {
        c.route.upstream = upstream.clone();
        c.route.bypass_loopback = false;
        c.socks.username = user.clone();
        c.socks.password = password.clone();
        // an IP is never intranet: the autologon policy must name the SOCKS proxy
        c.auth.allow_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let (status, _, body) = harness::get(with.addrs[0], &origin.url("/authed")).await;
    assert_eq!(status, 200, "{body}");
}
