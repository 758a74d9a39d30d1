//! TLS that waypost originates: HTTPS upstream proxies (real squid https_port) and https://
//! origins under the TLS policy, with failures named in X-Waypost-Error.

mod support;

use std::time::Duration;

use support::harness::{self, Origin};
use support::peers::Squid;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use waypost_testsupport::eventually;

/// A TLS origin on 127.0.0.1 with a self-signed certificate for `localhost`, answering 200.
async fn self_signed_origin() -> std::net::SocketAddr {
    let config = waypost_testsupport::ca::self_signed(&["localhost"]).server_config();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    use tokio::io::AsyncReadExt;
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure")
                        .await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_origin_with_an_unknown_ca_is_refused_with_its_kind_unless_excepted() {
    let origin = self_signed_origin().await;
    let url = format!("https://localhost:{}/", origin.port());
    let strict = harness::start_proxy(|_| {}).await;
    let (status, headers, _) = harness::get(strict.addrs[0], &url).await;
    assert_eq!(status, 502);
    assert_eq!(headers["x-waypost-error"], "tls-unknown-ca");
    let lenient = harness::start_proxy(|c| {
        c.tls.exceptions = vec![waypost_tls::config::ExceptionConfig {
            hosts: vec!["localhost".into()],
            allow: vec!["unknown-ca".into()],
        }];
    })
    .await;
    let (status, _, body) = harness::get(lenient.addrs[0], &url).await;
    assert_eq!((status, body.as_str()), (200, "secure"));
    let m = harness::metrics(lenient.addrs[0]).await;
    assert!(m.contains("waypost_tls_"), "TLS metrics are exported: {m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_proxy_carries_http_and_connect_under_the_tls_policy() {
    let squid = tokio::task::spawn_blocking(|| Squid::start("https"))
        .await
        .unwrap();
    let ca = squid.ca_pem.clone().expect("https squid has a CA");
    let origin = Origin::echo().await;
    let upstream = format!("https://localhost:{}", squid.port);
    // without the proxy's CA: refused, and named
    let untrusting = harness::start_proxy(|c| {
        c.route.upstream = upstream.clone();
        c.route.bypass_loopback = false;
    })
    .await;
    let (status, headers, _) = harness::get(untrusting.addrs[0], &origin.url("/x")).await;
    assert_eq!(status, 502);
    assert_eq!(headers["x-waypost-error"], "tls-unknown-ca");
    // with it: HTTP and CONNECT through the TLS proxy
    let proxy = harness::start_proxy(|c| {
        c.route.upstream = upstream.clone();
        c.route.bypass_loopback = false;
        c.tls.ca_files = vec![ca.clone()];
    })
    .await;
    let (status, _, body) = harness::get(proxy.addrs[0], &origin.url("/over-tls")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("GET /over-tls"), "{body}");
    let reply = harness::raw(
        proxy.addrs[0],
        format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\nGET /in-tunnel HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", origin.addr).as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("GET /in-tunnel"), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_urls_through_an_http_proxy_are_tunnelled_with_waypost_s_own_tls_under_the_policy() {
    let squid = tokio::task::spawn_blocking(|| Squid::start("open"))
        .await
        .unwrap();
    let origin = self_signed_origin().await;
    let url = format!("https://localhost:{}/via-proxy", origin.port());
    let upstream = format!("http://127.0.0.1:{}", squid.port);
    let strict = harness::start_proxy(|c| {
        c.route.upstream = upstream.clone();
        c.route.bypass_loopback = false;
    })
    .await;
    let (status, headers, _) = harness::get(strict.addrs[0], &url).await;
    assert_eq!(status, 502);
    assert_eq!(
        headers["x-waypost-error"], "tls-unknown-ca",
        "waypost checked the origin itself"
    );
    let lenient = harness::start_proxy(|c| {
        c.route.upstream = upstream.clone();
        c.route.bypass_loopback = false;
        c.tls.exceptions = vec![waypost_tls::config::ExceptionConfig {
            hosts: vec!["localhost".into()],
            allow: vec!["unknown-ca".into()],
        }];
    })
    .await;
    let (status, _, body) = harness::get(lenient.addrs[0], &url).await;
    assert_eq!((status, body.as_str()), (200, "secure"));
    // a tunnel is logged when it closes
    eventually(
        Duration::from_secs(10),
        || async { squid.access_log() },
        |log| log.contains("CONNECT"),
    )
    .await;
}
