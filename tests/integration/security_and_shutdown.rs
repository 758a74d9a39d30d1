//! Security defaults (client allow list, client credentials) and graceful shutdown.

use crate::support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use support::harness::{self, Client, Origin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use waypost::body;
use waypost_testsupport::eventually;

#[tokio::test]
async fn clients_outside_the_allow_list_get_403() {
    let origin = Origin::echo().await;
    let proxy = harness::start_proxy(|c| c.allow = vec!["10.0.0.0/8".into()]).await;
    let reply = harness::raw(
        proxy.addrs[0],
        format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/")).as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(reply.contains("client-not-allowed"), "{reply}");
    let allowed = harness::start_proxy(|c| c.allow = vec!["127.0.0.0/8".into()]).await;
    assert_eq!(
        harness::get(allowed.addrs[0], &origin.url("/")).await.0,
        200
    );
}

#[tokio::test]
async fn client_credentials_are_required_when_configured() {
    let origin = Origin::echo().await;
    let proxy = harness::start_proxy(|c| {
        c.client_auth.username = "app".into();
        c.client_auth.password = "s3cret-pw".into();
    })
    .await;
    let (status, headers, _) = harness::get(proxy.addrs[0], &origin.url("/")).await;
    assert_eq!(status, 407);
    assert_eq!(headers["proxy-authenticate"], "Basic realm=\"waypost\"");
    let mut client = Client::connect(proxy.addrs[0]).await;
    let creds = |u: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(u)
        )
    };
    let wrong = Request::get(origin.url("/"))
        .header("proxy-authorization", creds("app:wrong"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(client.send(wrong).await.unwrap().status(), 407);
    let right = Request::get(origin.url("/"))
        .header("proxy-authorization", creds("app:s3cret-pw"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.send(right).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(
        !String::from_utf8_lossy(&body).contains("proxy-authorization"),
        "the client's credentials must not travel on"
    );
    // the health endpoint stays reachable for probes
    assert_eq!(harness::get(proxy.addrs[0], "/healthz").await.0, 200);
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_and_tunnels_finish_and_refuses_new_connections() {
    let origin = Origin::start(|_req| async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Response::new(body::full("finished"))
    })
    .await;
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let proxy = harness::start_proxy(|c| c.shutdown_grace = "5s".into()).await;
    let addr = proxy.addrs[0];
    // an open tunnel
    let mut tunnel = TcpStream::connect(addr).await.unwrap();
    tunnel
        .write_all(format!("CONNECT {echo_addr} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 19];
    tunnel.read_exact(&mut head).await.unwrap();
    assert!(head.starts_with(b"HTTP/1.1 200"));
    let mut rest = Vec::new();
    while !rest.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tunnel.read_exact(&mut b).await.unwrap();
        rest.push(b[0]);
    }
    // a slow request in flight
    let url = origin.url("/slow");
    let inflight = tokio::spawn(async move { harness::get(addr, &url).await });
    // in flight = the proxy has dialled the origin, which now takes 500 ms to answer
    eventually(
        Duration::from_secs(5),
        || async { origin.connections.load(Ordering::SeqCst) },
        |n| *n == 1,
    )
    .await;
    proxy.shutdown();
    // no new connections after shutdown began (once the accept loops have seen it)
    let _refused = eventually(
        Duration::from_secs(5),
        || TcpStream::connect(addr),
        |connected| connected.is_err(),
    )
    .await;
    // the tunnel still works during the grace period, then the client closes it
    tunnel.write_all(b"still-open").await.unwrap();
    let mut b = [0u8; 10];
    tunnel.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"still-open");
    let (status, _, body) = inflight.await.unwrap();
    assert_eq!((status, body.as_str()), (200, "finished"));
    drop(tunnel);
    let drained = tokio::time::timeout(Duration::from_secs(10), proxy.wait())
        .await
        .expect("shutdown completes");
    assert!(drained, "everything drained within the grace period");
}

#[tokio::test]
async fn the_admin_port_serves_metrics_but_never_proxies() {
    let origin = Origin::echo().await;
    let proxy = harness::start_proxy(|c| c.admin_listen = vec!["127.0.0.1:0".into()]).await;
    let admin = proxy.admin_addrs[0];
    let (status, _, body) = harness::get(admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("waypost_requests_total")
            || body.contains("waypost_client_connections_total")
    );
    let (status, headers, _) = harness::get(admin, &origin.url("/")).await;
    assert_eq!(status, 403);
    assert_eq!(headers["x-waypost-error"], "client-not-allowed");
    assert_eq!(
        origin.connections.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}
