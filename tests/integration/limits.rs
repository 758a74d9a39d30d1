//! Every timeout and limit, shown firing (WinHTTP names and defaults in config/default.toml).

use crate::support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::{Request, Response};
use support::harness::{self, metric, raw_origin, Client, Origin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use waypost::body;
use waypost_testsupport::eventually;

#[tokio::test]
async fn connect_timeout_gives_504_connect_timeout() {
    // a listener whose accept queue is full drops further SYNs: connects hang
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = sock.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
        {
            fillers.push(s);
        }
    }
    let proxy = harness::start_proxy(|c| c.timeouts.connect = "300ms".into()).await;
    let started = Instant::now();
    let (status, headers, _) = harness::get(proxy.addrs[0], &format!("http://{addr}/")).await;
    assert_eq!(status, 504);
    assert_eq!(headers["x-waypost-error"], "connect-timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop((listener, fillers));
}

#[tokio::test]
async fn resolve_timeout_gives_504_dns_timeout() {
    // a name server that never answers (UDP and TCP)
    let (udp, tcp, port) = loop {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = tcp.local_addr().unwrap().port();
        if let Ok(udp) = tokio::net::UdpSocket::bind(("127.0.0.1", port)).await {
            break (udp, tcp, port);
        }
    };
    let proxy = harness::start_proxy(|c| {
        c.dns.servers = vec![format!("127.0.0.1:{port}")];
        c.timeouts.resolve = "300ms".into();
    })
    .await;
    let started = Instant::now();
    let (status, headers, _) = harness::get(proxy.addrs[0], "http://slow.example.test/").await;
    assert_eq!(status, 504);
    assert_eq!(headers["x-waypost-error"], "dns-timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop((udp, tcp));
}

#[tokio::test]
async fn receive_response_timeout_gives_504_when_no_headers_come() {
    let origin = raw_origin(|s| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    })
    .await;
    let proxy = harness::start_proxy(|c| c.timeouts.receive_response = "300ms".into()).await;
    let (status, headers, _) = harness::get(proxy.addrs[0], &format!("http://{origin}/")).await;
    assert_eq!(status, 504);
    assert_eq!(headers["x-waypost-error"], "response-timeout");
}

#[tokio::test]
async fn relay_read_timeout_closes_a_stalled_body_instead_of_completing_it() {
    let origin = raw_origin(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let proxy = harness::start_proxy(|c| c.timeouts.relay_read = "300ms".into()).await;
    let mut client = Client::connect(proxy.addrs[0]).await;
    let resp = client
        .send(
            Request::get(format!("http://{origin}/"))
                .body(Default::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let body = tokio::time::timeout(
        Duration::from_secs(5),
        http_body_util::BodyExt::collect(resp.into_body()),
    )
    .await
    .expect("ended in time");
    assert!(body.is_err());
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn send_timeout_gives_504_when_the_upstream_stops_reading() {
    let origin = raw_origin(|s| async move {
        tokio::time::sleep(Duration::from_secs(30)).await; // never reads the body
        drop(s);
    })
    .await;
    let proxy = harness::start_proxy(|c| {
        c.timeouts.send = "300ms".into();
        c.timeouts.receive_response = "20s".into();
    })
    .await;
    let mut s = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    let size = 64 << 20;
    s.write_all(
        format!("POST http://{origin}/ HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let (mut r, mut w) = s.into_split();
    tokio::spawn(async move {
        let chunk = vec![b'x'; 1 << 16];
        for _ in 0..(size / chunk.len()) {
            if w.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), r.read(&mut out))
        .await
        .expect("answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&out[..n]).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 504"), "{text}");
    assert!(text.contains("x-waypost-error: send-timeout"), "{text}");
}

#[tokio::test]
async fn oversized_response_headers_give_502() {
    let origin = raw_origin(|mut s| async move {
        let big = "a".repeat(20_000);
        let _ = s
            .write_all(
                format!("HTTP/1.1 200 OK\r\nX-Big: {big}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
            )
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let proxy = harness::start_proxy(|c| c.limits.max_response_header_size = 8192).await;
    let (status, headers, _) = harness::get(proxy.addrs[0], &format!("http://{origin}/")).await;
    assert_eq!(status, 502);
    assert_eq!(headers["x-waypost-error"], "response-headers-too-large");
}

#[tokio::test]
async fn oversized_request_headers_get_431() {
    let origin = Origin::echo().await;
    let proxy = harness::start_proxy(|c| c.limits.max_request_header_size = 8192).await;
    let big = "b".repeat(20_000);
    let reply = harness::raw(
        proxy.addrs[0],
        format!(
            // (the head is read whole, so the connection may stay open: `close` ends the read)
            "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {big}\r\n\r\n",
            origin.url("/")
        )
        .as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    assert_eq!(origin.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn slow_request_headers_are_cut_off_by_the_client_header_timeout() {
    let proxy = harness::start_proxy(|c| c.timeouts.client_header = "300ms".into()).await;
    let mut s = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    s.write_all(b"GET http://example.test/ HTTP/1.1\r\nHost: exa")
        .await
        .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("closed by the proxy");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn client_connections_beyond_the_limit_get_503() {
    let proxy = harness::start_proxy(|c| c.max_client_connections = 2).await;
    let _a = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    let _b = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    // both taken by the proxy (read in-process: a request of our own would be a third client)
    eventually(
        Duration::from_secs(5),
        || async { harness::registry_metrics(&proxy) },
        |m| metric(m, "waypost_client_connections_active") == 2.0,
    )
    .await;
    let reply = harness::raw(proxy.addrs[0], b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(reply.contains("too-many-connections"), "{reply}");
    drop((_a, _b));
    // once the proxy has seen both close, their slots are free again
    let status = eventually(
        Duration::from_secs(5),
        || async { harness::get(proxy.addrs[0], "/healthz").await.0 },
        |status| *status != 503,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn max_conns_per_server_makes_requests_wait_for_a_slot() {
    let origin = Origin::start(|_req| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Response::new(body::full("slow"))
    })
    .await;
    let proxy = harness::start_proxy(|c| c.limits.max_conns_per_server = 1).await;
    let p = proxy.addrs[0];
    let url = origin.url("/");
    let (a, b) = tokio::join!(harness::get(p, &url), harness::get(p, &url));
    assert_eq!((a.0, b.0), (200, 200));
    assert_eq!(origin.connections.load(Ordering::SeqCst), 1);
    let m = harness::metrics(p).await;
    assert_eq!(
        metric(&m, "waypost_pool_slot_waits_total{upstream=\"direct\"}"),
        1.0,
        "{m}"
    );
}

async fn abandon_after_headers(proxy: SocketAddr, url: &str) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut b = [0u8; 64];
    let _ = s.read(&mut b).await.unwrap();
    drop(s);
}

#[tokio::test]
async fn unread_response_bodies_are_drained_up_to_the_limit_to_save_the_connection() {
    let origin = Origin::start(|_req| async {
        let (tx, rx) = tokio::sync::mpsc::channel::<
            Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>,
        >(4);
        tokio::spawn(async move {
            let _ = tx
                .send(Ok(http_body::Frame::data(bytes::Bytes::from(vec![
                    b'h';
                    1000
                ]))))
                .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = tx
                .send(Ok(http_body::Frame::data(bytes::Bytes::from(vec![
                    b'r';
                    99_000
                ]))))
                .await;
        });
        let stream = tokio_stream_from(rx);
        Response::builder()
            .header("content-length", "100000")
            .body(
                http_body_util::BodyExt::boxed(http_body_util::StreamBody::new(stream))
                    .map_err(|e: std::convert::Infallible| match e {})
                    .boxed(),
            )
            .unwrap()
    })
    .await;
    let proxy = harness::start_proxy(|_| {}).await;
    abandon_after_headers(proxy.addrs[0], &origin.url("/")).await;
    // the drain is counted when it has read the body to its end, just before the connection
    // goes back to the pool
    eventually(
        Duration::from_secs(5),
        || harness::metrics(proxy.addrs[0]),
        |m| metric(m, "waypost_pool_drained_bytes_total{upstream=\"direct\"}") > 0.0,
    )
    .await;
    assert_eq!(harness::get(proxy.addrs[0], &origin.url("/")).await.0, 200);
    assert_eq!(
        origin.connections.load(Ordering::SeqCst),
        1,
        "the drained connection was reused"
    );

    let strict = harness::start_proxy(|c| c.limits.max_response_drain_size = 10).await;
    let before = origin.connections.load(Ordering::SeqCst);
    abandon_after_headers(strict.addrs[0], &origin.url("/")).await;
    eventually(
        Duration::from_secs(5),
        || harness::metrics(strict.addrs[0]),
        |m| metric(m, "waypost_pool_closed_total{upstream=\"direct\"}") >= 1.0,
    )
    .await;
    assert_eq!(harness::get(strict.addrs[0], &origin.url("/")).await.0, 200);
    assert_eq!(
        origin.connections.load(Ordering::SeqCst),
        before + 2,
        "too large to drain: closed"
    );
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

use http_body_util::BodyExt as _;

#[tokio::test]
async fn connect_retries_bound_the_addresses_tried() {
    let origin = Origin::echo().await;
    let port = origin.addr.port();
    // 127.0.0.2 and 127.0.0.3 refuse (the origin listens on 127.0.0.1 only)
    let hosts = |c: &mut waypost::config::raw::RawConfig, retries: u32| {
        c.dns.hosts.insert(
            "multi.test".into(),
            vec!["127.0.0.2".into(), "127.0.0.3".into(), "127.0.0.1".into()],
        );
        c.limits.connect_retries = retries;
    };
    let three = harness::start_proxy(|c| hosts(c, 3)).await;
    assert_eq!(
        harness::get(three.addrs[0], &format!("http://multi.test:{port}/"))
            .await
            .0,
        200
    );
    let two = harness::start_proxy(|c| hosts(c, 2)).await;
    let (status, headers, _) =
        harness::get(two.addrs[0], &format!("http://multi.test:{port}/")).await;
    assert_eq!(status, 502);
    assert_eq!(headers["x-waypost-error"], "connect-refused");
}

/// A client that stops sending a body waypost holds for an authentication replay is cut after
/// `timeouts.receive`, and no upstream connection was taken meanwhile.
#[tokio::test]
async fn a_client_stalling_a_held_body_is_cut_after_the_receive_timeout_without_an_upstream_connection(
) {
    let upstream = harness::Origin::echo().await;
    let port = upstream.addr.port();
    let proxy = harness::start_proxy(|c| {
        // `localhost` is a plain host name: the default autologon policy sends credentials
        c.route.upstream = format!("http://localhost:{port}");
        c.route.bypass_loopback = false;
        c.auth.user = Some("user".into());
        c.auth.password = Some(waypost_auth::credentials::SecretString::new("pw"));
        c.timeouts.receive = "300ms".into();
    })
    .await;
    let started = Instant::now();
    let answer = harness::raw(
        proxy.addrs[0],
        b"POST http://origin.test/upload HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 100\r\n\r\n0123456789",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-waypost-error: bad-request"),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        upstream
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no upstream connection is held while the body is awaited"
    );
}

/// Sends `head` to the proxy, then trickles the body a byte every 50 ms (20 B/s) until the
/// proxy answers; returns what the proxy sent until it closed (or 10 s passed).
async fn trickle_body(proxy: SocketAddr, head: &str) -> String {
    let (mut r, mut w) = TcpStream::connect(proxy).await.unwrap().into_split();
    w.write_all(head.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        while w.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while let Ok(n @ 1..) = r.read(&mut buf).await {
            answer.extend_from_slice(&buf[..n]);
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
    writer.abort();
    String::from_utf8_lossy(&answer).to_ascii_lowercase()
}

/// A minimum rate far above [`trickle_body`]'s 20 B/s (1000 B/s after 300 ms): the body must
/// be cut with 408 `request-body-too-slow` (without the minimum, nothing would answer the
/// client before `receive_response`, 90 s).
fn slow_body_limits(c: &mut waypost::config::raw::RawConfig) {
    c.limits.min_request_body_rate = 1000;
    c.limits.min_request_body_grace = "300ms".into();
}

#[tokio::test]
async fn a_streamed_body_below_the_minimum_rate_gets_408_and_its_upstream_connection_is_closed() {
    let closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = closed.clone();
    // an origin that reads the body and never answers, noting when waypost closes on it
    let origin = raw_origin(move |mut s| {
        let seen = seen.clone();
        async move {
            let mut buf = [0u8; 256];
            while let Ok(1..) = s.read(&mut buf).await {}
            seen.store(true, Ordering::SeqCst);
        }
    })
    .await;
    let proxy = harness::start_proxy(slow_body_limits).await;
    let head = format!(
        "POST http://{origin}/upload HTTP/1.1\r\nHost: {origin}\r\nContent-Length: 1000\r\n\r\n"
    );
    let answer = trickle_body(proxy.addrs[0], &head).await;
    assert!(answer.starts_with("http/1.1 408"), "{answer}");
    assert!(
        answer.contains("x-waypost-error: request-body-too-slow"),
        "{answer}"
    );
    assert!(answer.contains("min_request_body_rate"), "{answer}");
    eventually(
        Duration::from_secs(5),
        || async { closed.load(Ordering::SeqCst) },
        |c| *c,
    )
    .await;
    let m = harness::registry_metrics(&proxy);
    let series = "waypost_request_bodies_too_slow_total{body=\"streamed\"}";
    assert_eq!(metric(&m, series), 1.0, "{m}");
}

#[tokio::test]
async fn a_held_body_below_the_minimum_rate_gets_408_without_an_upstream_connection() {
    let upstream = harness::Origin::echo().await;
    let port = upstream.addr.port();
    let proxy = harness::start_proxy(|c| {
        // credentials for the upstream proxy make waypost hold small bodies for a replay
        c.route.upstream = format!("http://localhost:{port}");
        c.route.bypass_loopback = false;
        c.auth.user = Some("user".into());
        c.auth.password = Some(waypost_auth::credentials::SecretString::new("pw"));
        slow_body_limits(c);
    })
    .await;
    let head = "POST http://origin.test/upload HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 1000\r\n\r\n";
    let answer = trickle_body(proxy.addrs[0], head).await;
    assert!(answer.starts_with("http/1.1 408"), "{answer}");
    assert!(
        answer.contains("x-waypost-error: request-body-too-slow"),
        "{answer}"
    );
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 0);
    let m = harness::registry_metrics(&proxy);
    let series = "waypost_request_bodies_too_slow_total{body=\"held\"}";
    assert_eq!(metric(&m, series), 1.0, "{m}");
}
