//! CONNECT tunnels and protocol upgrades (WebSocket) through waypost.

use crate::support;

use std::time::Duration;

use support::harness::{self, metric};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte))
            .await
            .expect("head in time")
            .unwrap();
        assert!(
            n > 0,
            "closed before the response head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn connect_tunnels_relay_bytes_both_ways() {
    let echo = harness::echo_server().await;
    let proxy = harness::start_proxy(|_| {}).await;
    let mut s = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    s.write_all(format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let payload = vec![7u8; 1 << 20];
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        w.write_all(&payload).await.unwrap();
        w
    });
    let mut got = vec![0u8; 1 << 20];
    r.read_exact(&mut got).await.unwrap();
    assert!(got.iter().all(|b| *b == 7));
    let w = writer.await.unwrap();
    let m = harness::metrics(proxy.addrs[0]).await;
    assert_eq!(metric(&m, "waypost_tunnels_active"), 1.0, "{m}");
    drop((r, w));
}

#[tokio::test]
async fn plain_tunnels_are_relayed_socket_to_socket_and_quiet_ones_hold_no_pipe() {
    let echo = harness::echo_server().await;
    let proxy = harness::start_proxy(|_| {}).await;
    let mut tunnels = Vec::new();
    for i in 0..40u8 {
        let mut s = TcpStream::connect(proxy.addrs[0]).await.unwrap();
        // the first bytes of the tunnel come in the same packet as the CONNECT head
        let mut hello = format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n\r\n").into_bytes();
        hello.extend_from_slice(b"early");
        s.write_all(&hello).await.unwrap();
        assert!(read_head(&mut s).await.starts_with("HTTP/1.1 200"));
        let payload = vec![i; 256 * 1024];
        let (mut r, mut w) = s.into_split();
        let writer = tokio::spawn(async move {
            w.write_all(&payload).await.unwrap();
            w
        });
        let mut got = vec![0u8; 5 + 256 * 1024];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(
            &got[..5],
            b"early",
            "bytes sent with the CONNECT head come first"
        );
        assert!(
            got[5..].iter().all(|b| *b == i),
            "tunnel {i} mixed bytes up"
        );
        tunnels.push((r, writer.await.unwrap()));
    }
    let m = harness::metrics(proxy.addrs[0]).await;
    assert_eq!(
        metric(&m, "waypost_tunnel_relays_total{way=\"splice\"}"),
        40.0,
        "{m}"
    );
    // every relay direction went back to waiting on its socket and gave its pipe back
    waypost_testsupport::eventually(
        Duration::from_secs(10),
        || async { proxy.app.pipes.in_use() },
        |n| *n == 0,
    )
    .await;
    // and a quiet tunnel still carries bytes
    let (r, w) = &mut tunnels[17];
    w.write_all(b"later").await.unwrap();
    let mut got = [0u8; 5];
    r.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"later");
}

#[tokio::test]
async fn connect_to_a_closed_port_gives_502_before_any_200() {
    let port = support::peers::free_port();
    let proxy = harness::start_proxy(|_| {}).await;
    let reply = harness::raw(
        proxy.addrs[0],
        format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 502"), "{reply}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("x-waypost-error: connect-refused"),
        "{reply}"
    );
}

#[tokio::test]
async fn idle_tunnels_are_closed_after_the_tunnel_idle_timeout() {
    let echo = harness::echo_server().await;
    let proxy = harness::start_proxy(|c| c.timeouts.tunnel_idle = "1s".into()).await;
    let mut s = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    s.write_all(format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    assert!(read_head(&mut s).await.starts_with("HTTP/1.1 200"));
    // activity keeps it open past the idle timeout (8 x 200 ms > 1 s)
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.write_all(b"ping").await.unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).await.unwrap();
    }
    // silence closes it
    let started = std::time::Instant::now();
    let mut b = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
        .await
        .expect("closed by the proxy")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn websocket_upgrades_are_forwarded_and_relayed() {
    // an origin that accepts `Upgrade: websocket` with 101 and then echoes raw bytes
    let origin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let oaddr = origin.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = origin.accept().await {
            tokio::spawn(async move {
                let head = read_head(&mut s).await.to_ascii_lowercase();
                assert!(head.starts_with("get /ws http/1.1"), "{head}");
                assert!(
                    head.contains("upgrade: websocket") && head.contains("connection: upgrade"),
                    "{head}"
                );
                assert!(
                    head.contains("sec-websocket-key: dghlihnhbxbszsbub25jzq=="),
                    "{head}"
                );
                s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n").await.unwrap();
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let proxy = harness::start_proxy(|_| {}).await;
    let mut s = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    s.write_all(
        format!(
            "GET http://{oaddr}/ws HTTP/1.1\r\nHost: {oaddr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    // a masked websocket text frame "hi" travels through and back unchanged
    let frame = [0x81u8, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
    s.write_all(&frame).await.unwrap();
    let mut back = [0u8; 8];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, frame);
}
