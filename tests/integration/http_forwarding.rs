//! Plain HTTP through waypost: forwarding, streaming, keep-alive and pooling, header hygiene,
//! the admin surface, and the errors a user can act on.

use crate::support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use support::harness::{self, metric, Client, Origin};
use waypost::body;

#[tokio::test]
async fn absolute_form_get_reaches_the_origin_in_origin_form_with_host() {
    let origin = Origin::echo().await;
    let proxy = harness::start_proxy(|_| {}).await;
    let (status, _, body) = harness::get(proxy.addrs[0], &origin.url("/a/b?c=d")).await;
    assert_eq!(status, 200);
    assert!(body.starts_with("GET /a/b?c=d\n"), "{body}");
    assert!(body.contains(&format!("host: {}", origin.addr)), "{body}");
}

#[tokio::test]
async fn keep_alive_requests_reuse_one_pooled_upstream_connection() {
    let origin = Origin::echo().await;
    let proxy = harness::start_proxy(|_| {}).await;
    let mut client = Client::connect(proxy.addrs[0]).await;
    for _ in 0..5 {
        assert_eq!(client.get(&origin.url("/")).await.0, 200);
    }
    // a second client connection still shares the pooled upstream connection
    assert_eq!(harness::get(proxy.addrs[0], &origin.url("/")).await.0, 200);
    assert_eq!(origin.connections.load(Ordering::SeqCst), 1);
    let m = harness::metrics(proxy.addrs[0]).await;
    assert_eq!(
        metric(&m, "waypost_pool_opened_total{upstream=\"direct\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "waypost_pool_reused_total{upstream=\"direct\"}"),
        5.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "waypost_pool_connections{state=\"idle\",upstream=\"direct\"}"
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways_and_via_only_when_configured() {
    let origin = Origin::start(|req: Request<hyper::body::Incoming>| async move {
        let seen: Vec<String> = req.headers().keys().map(|k| k.to_string()).collect();
        Response::builder()
            .header("connection", "x-origin-hop")
            .header("x-origin-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-authenticate", "Basic realm=x")
            .header("x-seen", seen.join(","))
            .body(body::empty())
            .unwrap()
    })
    .await;
    let proxy = harness::start_proxy(|c| c.via = true).await;
    let mut client = Client::connect(proxy.addrs[0]).await;
    let req = Request::get(origin.url("/"))
        .header("host", "ignored.example")
        .header("connection", "x-client-hop")
        .header("x-client-hop", "1")
        .header("proxy-connection", "keep-alive")
        .header("proxy-authorization", "Basic c2VjcmV0OnNlY3JldA==")
        .header("te", "trailers")
        .header("x-end-to-end", "1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let seen = resp.headers()["x-seen"].to_str().unwrap().to_string();
    for hop in [
        "x-client-hop",
        "proxy-connection",
        "proxy-authorization",
        "te",
    ] {
        assert!(
            !seen.split(',').any(|h| h == hop),
            "{hop} leaked upstream: {seen}"
        );
    }
    assert!(
        seen.contains("x-end-to-end") && seen.contains("via"),
        "{seen}"
    );
    assert!(resp.headers().get("x-origin-hop").is_none());
    assert!(resp.headers().get("keep-alive").is_none());
    assert!(resp.headers().get("proxy-authenticate").is_none());
    // waypost's pseudonym is its per-instance token (loop detection)
    let via = resp.headers()["via"].to_str().unwrap();
    assert!(via.starts_with("1.1 waypost-"), "{via}");

    let plain = harness::start_proxy(|_| {}).await;
    let (_, headers, _) = harness::get(plain.addrs[0], &origin.url("/")).await;
    assert!(headers.get("via").is_none());
    assert!(!headers["x-seen"].to_str().unwrap().contains("via"));
}

#[tokio::test]
async fn chunked_request_and_response_bodies_stream_through() {
    let origin = Origin::start(|req: Request<hyper::body::Incoming>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        // echo back, chunked (no content-length), in two frames
        let half = body.len() / 2;
        let frames = vec![
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(body.slice(..half))),
            Ok(http_body::Frame::data(body.slice(half..))),
        ];
        Response::new(
            StreamBody::new(futures_util::stream::iter(frames))
                .map_err(|e| match e {})
                .boxed(),
        )
    })
    .await;
    let proxy = harness::start_proxy(|_| {}).await;
    let payload = "x".repeat(300_000);
    let reply = harness::raw(
        proxy.addrs[0],
        format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
            origin.url("/up"),
            payload.len(),
            payload
        )
        .as_bytes(),
    )
    .await;
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "{}",
        &reply[..200.min(reply.len())]
    );
    assert!(reply
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked"));
    let (_, body) = reply.split_once("\r\n\r\n").expect("a response head");
    assert_eq!(body.matches('x').count(), 300_000);
}

#[tokio::test]
async fn response_bodies_are_streamed_not_buffered() {
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let origin = Origin::start(move |_req| {
        let mut rx = release_rx.clone();
        async move {
            let first = futures_util::stream::once(async {
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from_static(
                    b"first-part;",
                )))
            });
            let rest = futures_util::stream::once(async move {
                let _ = rx.wait_for(|v| *v).await;
                Ok(http_body::Frame::data(Bytes::from_static(b"second-part")))
            });
            use futures_util::StreamExt;
            Response::new(
                StreamBody::new(first.chain(rest))
                    .map_err(|e| match e {})
                    .boxed(),
            )
        }
    })
    .await;
    let proxy = harness::start_proxy(|_| {}).await;
    let mut client = Client::connect(proxy.addrs[0]).await;
    let req = Request::get(origin.url("/stream"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let mut body = resp.into_body();
    // the first chunk arrives while the origin is still holding back the rest
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first chunk streamed")
        .unwrap()
        .unwrap();
    assert_eq!(
        frame.into_data().unwrap(),
        Bytes::from_static(b"first-part;")
    );
    release_tx.send(true).unwrap();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, Bytes::from_static(b"second-part"));
}

#[tokio::test]
async fn head_204_and_304_responses_carry_no_body_and_keep_the_connection() {
    let origin = Origin::start(|req: Request<hyper::body::Incoming>| async move {
        let status = match req.uri().path() {
            "/204" => StatusCode::NO_CONTENT,
            "/304" => StatusCode::NOT_MODIFIED,
            _ => StatusCode::OK,
        };
        Response::builder()
            .status(status)
            .header(
                "content-length",
                if status == StatusCode::OK { "5" } else { "0" },
            )
            .body(body::full(if status == StatusCode::OK {
                "hello"
            } else {
                ""
            }))
            .unwrap()
    })
    .await;
    let proxy = harness::start_proxy(|_| {}).await;
    let mut client = Client::connect(proxy.addrs[0]).await;
    let head = Request::head(origin.url("/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.send(head).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "5");
    assert!(resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .is_empty());
    assert_eq!(client.get(&origin.url("/204")).await.0, 204);
    assert_eq!(client.get(&origin.url("/304")).await.0, 304);
    assert_eq!(client.get(&origin.url("/")).await.2, "hello");
    assert_eq!(origin.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn expect_100_continue_is_answered_and_the_body_forwarded() {
    let origin = Origin::echo().await;
    let proxy = harness::start_proxy(|_| {}).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(proxy.addrs[0])
        .await
        .unwrap();
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        origin.url("/put")
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("100 Continue in time")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"));
    s.write_all(b"hello").await.unwrap();
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("body-len: 5"), "{text}");
    assert!(
        !text.contains("expect:"),
        "Expect must not reach the origin: {text}"
    );
}

#[tokio::test]
async fn ipv6_literal_urls_are_forwarded() {
    let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback on this machine");
        return;
    };
    drop(listener);
    let origin = Origin::start(|req: Request<hyper::body::Incoming>| async move {
        Response::new(body::full(format!(
            "host={}",
            req.headers()["host"].to_str().unwrap()
        )))
    })
    .await;
    // the in-process origin listens on 127.0.0.1; map an IPv6 literal through a second origin on ::1
    let v6 = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let v6_addr = v6.local_addr().unwrap();
    let target = origin.addr;
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = v6.accept().await {
            tokio::spawn(async move {
                let mut out = tokio::net::TcpStream::connect(target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
            });
        }
    });
    let proxy = harness::start_proxy(|_| {}).await;
    let (status, _, body) =
        harness::get(proxy.addrs[0], &format!("http://[::1]:{}/", v6_addr.port())).await;
    assert_eq!(status, 200);
    assert_eq!(body, format!("host=[::1]:{}", v6_addr.port()));
}

#[tokio::test]
async fn origin_form_requests_get_the_admin_surface() {
    let proxy = harness::start_proxy(|_| {}).await;
    let (status, _, body) = harness::get(proxy.addrs[0], "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _, body) = harness::get(proxy.addrs[0], "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("waypost_client_connections_total"));
    let (status, _, body) = harness::get(proxy.addrs[0], "/index.html").await;
    assert_eq!(status, 400);
    assert!(body.contains("forward proxy"), "{body}");
}

#[tokio::test]
async fn malformed_requests_get_400_with_a_reason() {
    let proxy = harness::start_proxy(|_| {}).await;
    let reply = harness::raw(
        proxy.addrs[0],
        b"GET ftp://example.com/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("unsupported URL scheme"), "{reply}");
    let reply = harness::raw(
        proxy.addrs[0],
        b"CONNECT example.com HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("missing port"), "{reply}");
    let reply = harness::raw(proxy.addrs[0], b"GARBAGE\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
}

#[tokio::test]
async fn unknown_hosts_give_502_with_the_dns_error_kind() {
    let proxy = harness::start_proxy(|_| {}).await;
    let (status, headers, body) =
        harness::get(proxy.addrs[0], "http://no-such-host.invalid/").await;
    assert_eq!(status, 502);
    assert_eq!(headers["x-waypost-error"], "dns");
    assert!(body.contains("no-such-host.invalid"), "{body}");
}

#[tokio::test]
async fn refused_connections_give_502_connect_refused() {
    let port = support::peers::free_port();
    let proxy = harness::start_proxy(|_| {}).await;
    let (status, headers, _) =
        harness::get(proxy.addrs[0], &format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(status, 502);
    assert_eq!(headers["x-waypost-error"], "connect-refused");
}

#[tokio::test]
async fn credentials_in_urls_are_refused_when_reject_userpwd_in_url_is_on() {
    let origin = Origin::echo().await;
    let proxy = harness::start_proxy(|c| c.reject_userpwd_in_url = true).await;
    let url = format!("http://user:pw@{}/", origin.addr);
    let (status, headers, body) = harness::get(proxy.addrs[0], &url).await;
    assert_eq!(status, 400);
    assert_eq!(headers["x-waypost-error"], "userpwd-in-url");
    assert!(!body.contains("user:pw"), "{body}");
    let open = harness::start_proxy(|_| {}).await;
    assert_eq!(harness::get(open.addrs[0], &url).await.0, 200);
}

#[tokio::test]
async fn upstream_closing_mid_response_closes_the_client_connection() {
    // an origin that promises 100 bytes, sends 10 and closes
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                .await;
        }
    });
    let proxy = harness::start_proxy(|_| {}).await;
    let mut client = Client::connect(proxy.addrs[0]).await;
    let resp = client
        .send(
            Request::get(format!("http://{addr}/"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await;
    assert!(body.is_err(), "a truncated body must not look complete");
}
