//! Admission is judged for every request and every new tunnel under the configuration in use
//! now, not once at accept: a reload that narrows `allow` (or `admin_allow`) cuts a revoked
//! client's keep-alive connection at its next request (403 `client-not-allowed`, then the
//! connection closes) and refuses its next CONNECT and SOCKS CONNECT, while tunnels opened
//! before the reload run on; a reload that adds `client_auth` asks the next request for it.
//!
//! Each test holds one raw connection across a reload (`Live::reload`, which returns once the
//! new generation is in use), so what the connection sees next is decided, not raced.

use crate::support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use http::Request;
use hyper::body::Incoming;
use support::harness::{self, Origin};
use support::wire::{header_of, read_head, status_of};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use waypost::body;
use waypost::config::raw::RawConfig;
use waypost::config::Config;
use waypost::listen::server::Running;

const WAIT: Duration = Duration::from_secs(20);

/// waypost started with `first`, and the config its next reload loads.
async fn start(first: Config) -> (Running, Arc<Mutex<Config>>) {
    let next = Arc::new(Mutex::new(first.clone()));
    let n = next.clone();
    let loader: waypost::ops::reload::Loader = Box::new(move || Ok(n.lock().unwrap().clone()));
    let proxy = waypost::listen::server::start_reloadable(first, Some(loader), None)
        .await
        .expect("proxy starts");
    (proxy, next)
}

/// Reloads into `cfg`; returns once new requests get it.
async fn reload(proxy: &Running, next: &Mutex<Config>, cfg: Config) {
    *next.lock().unwrap() = cfg;
    proxy
        .live
        .reload("sighup")
        .await
        .expect("the reload applies");
}

/// Only 10.0.0.0/8 (loopback, where the tests' clients are, is no longer in it).
fn narrowed(c: &mut RawConfig) {
    c.allow = vec!["10.0.0.0/8".into()];
}

/// An origin answering "ok", and how many requests reached it.
async fn counting_origin() -> (Origin, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let origin = Origin::start(move |_req: Request<Incoming>| {
        s.fetch_add(1, Ordering::SeqCst);
        async { http::Response::new(body::full("ok\n")) }
    })
    .await;
    (origin, seen)
}

async fn origin() -> Origin {
    counting_origin().await.0
}

/// Sends `head` (a complete request without a body) on `s`; returns the response head and body.
async fn exchange(s: &mut TcpStream, head: &str) -> (String, String) {
    s.write_all(head.as_bytes()).await.unwrap();
    let head = read_head(s, WAIT).await;
    let len = header_of(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    tokio::time::timeout(WAIT, s.read_exact(&mut body))
        .await
        .expect("the body within the deadline")
        .expect("the whole body");
    (head, String::from_utf8_lossy(&body).into_owned())
}

fn get(url: &str, extra: &str) -> String {
    format!(
        "GET {url} HTTP/1.1\r\nHost: {}\r\n{extra}\r\n",
        harness::host_of(url)
    )
}

/// Whether the peer closed `s` (EOF or reset) within the deadline; false if it stays open.
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    match tokio::time::timeout(WAIT, s.read(&mut b)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => panic!("unexpected bytes after the response"),
        Err(_) => false,
    }
}

fn assert_revoked(head: &str, body: &str) {
    assert_eq!(status_of(head), 403, "{head}{body}");
    assert_eq!(
        header_of(head, "x-waypost-error"),
        Some("client-not-allowed"),
        "{head}"
    );
    assert!(body.contains("allow"), "the refusal names the list: {body}");
}

#[tokio::test]
async fn a_reload_that_narrows_allow_cuts_a_keep_alive_client_at_its_next_request() {
    let (origin, requests) = counting_origin().await;
    let (proxy, next) = start(harness::config(|_| {})).await;
    let mut s = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    let (head, body) = exchange(&mut s, &get(&origin.url("/before"), "")).await;
    assert_eq!(status_of(&head), 200, "{head}{body}");

    reload(&proxy, &next, harness::config(narrowed)).await;
    let (head, body) = exchange(&mut s, &get(&origin.url("/after"), "")).await;
    assert_revoked(&head, &body);
    assert!(
        closed(&mut s).await,
        "the revoked client's connection is closed"
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "nothing after the reload reached the origin"
    );
    let m = harness::registry_metrics(&proxy);
    assert_eq!(
        harness::metric(
            &m,
            "waypost_client_connections_rejected_total{reason=\"not-allowed\"}"
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test]
async fn a_connect_after_a_reload_that_narrows_allow_is_refused_and_open_tunnels_run_on() {
    let echo = harness::echo_server().await;
    let origin = origin().await;
    let (proxy, next) = start(harness::config(|_| {})).await;
    let connect = format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n\r\n");
    let mut tunnel = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    tunnel.write_all(connect.as_bytes()).await.unwrap();
    assert_eq!(status_of(&read_head(&mut tunnel, WAIT).await), 200);
    let mut s = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    let (head, _) = exchange(&mut s, &get(&origin.url("/before"), "")).await;
    assert_eq!(status_of(&head), 200, "{head}");

    reload(&proxy, &next, harness::config(narrowed)).await;
    // a CONNECT on the connection that was admitted before the reload
    let (head, body) = exchange(&mut s, &connect).await;
    assert_revoked(&head, &body);
    assert!(
        closed(&mut s).await,
        "the revoked client's connection is closed"
    );
    // a new connection is refused before anything is read, as before
    let reply = harness::raw(proxy.addrs[0], connect.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(reply.contains("client-not-allowed"), "{reply}");
    // the tunnel opened before the reload is not a request: it runs until it ends
    tunnel.write_all(b"still here").await.unwrap();
    let mut back = [0u8; 10];
    tokio::time::timeout(WAIT, tunnel.read_exact(&mut back))
        .await
        .expect("the open tunnel answers")
        .expect("the open tunnel is up");
    assert_eq!(&back, b"still here");
}

#[tokio::test]
async fn an_admin_listener_cuts_a_client_a_reload_took_out_of_admin_allow() {
    let admin = |c: &mut RawConfig| c.admin_listen = vec!["127.0.0.1:0".into()];
    let (proxy, next) = start(harness::config(admin)).await;
    let mut s = TcpStream::connect(proxy.admin_addrs[0]).await.unwrap();
    let healthz = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let (head, body) = exchange(&mut s, healthz).await;
    assert_eq!((status_of(&head), body.as_str()), (200, "ok\n"), "{head}");

    reload(
        &proxy,
        &next,
        harness::config(|c| {
            admin(c);
            c.admin_allow = vec!["10.0.0.0/8".into()];
        }),
    )
    .await;
    let (head, body) = exchange(&mut s, healthz).await;
    assert_revoked(&head, &body);
    assert!(body.contains("admin_allow"), "{body}");
    assert!(
        closed(&mut s).await,
        "the revoked client's connection is closed"
    );
}

fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

#[tokio::test]
async fn a_reload_that_adds_client_auth_asks_the_next_request_on_an_open_connection() {
    let origin = origin().await;
    let (proxy, next) = start(harness::config(|_| {})).await;
    let mut s = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    let (head, _) = exchange(&mut s, &get(&origin.url("/before"), "")).await;
    assert_eq!(status_of(&head), 200, "{head}");

    reload(
        &proxy,
        &next,
        harness::config(|c| {
            c.client_auth.username = "app".into();
            c.client_auth.password = "s3cret-pw".into();
        }),
    )
    .await;
    let (head, _) = exchange(&mut s, &get(&origin.url("/bare"), "")).await;
    assert_eq!(status_of(&head), 407, "{head}");
    assert_eq!(
        header_of(&head, "x-waypost-error"),
        Some("client-auth-required")
    );
    // the 407 keeps the connection for the retry with credentials
    let creds = format!("Proxy-Authorization: {}\r\n", basic("app:s3cret-pw"));
    let (head, body) = exchange(&mut s, &get(&origin.url("/authed"), &creds)).await;
    assert_eq!((status_of(&head), body.as_str()), (200, "ok\n"), "{head}");
}

/// The SOCKS5 greeting without a login, answered "no authentication".
async fn socks_greet(proxy: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut method = [0u8; 2];
    tokio::time::timeout(WAIT, s.read_exact(&mut method))
        .await
        .expect("the method within the deadline")
        .expect("the method");
    assert_eq!(method, [5, 0]);
    s
}

/// Sends a SOCKS5 CONNECT to `target` (IPv4); returns the reply code.
async fn socks_connect(s: &mut TcpStream, target: SocketAddr) -> u8 {
    let SocketAddr::V4(v4) = target else {
        panic!("an IPv4 target")
    };
    let mut req = vec![5, 1, 0, 1];
    req.extend_from_slice(&v4.ip().octets());
    req.extend_from_slice(&v4.port().to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut reply = [0u8; 10];
    tokio::time::timeout(WAIT, s.read_exact(&mut reply))
        .await
        .expect("the reply within the deadline")
        .expect("the reply");
    reply[1]
}

#[tokio::test]
async fn a_socks_connect_is_judged_under_the_config_in_use_when_it_arrives() {
    let echo = harness::echo_server().await;
    let socks = |c: &mut RawConfig| c.socks_listen = vec!["127.0.0.1:0".into()];
    let (proxy, next) = start(harness::config(socks)).await;
    let addr = proxy.socks_addrs[0];
    let mut open = socks_greet(addr).await;
    assert_eq!(
        socks_connect(&mut open, echo).await,
        0,
        "admitted before any reload"
    );

    // greeted under the old config, CONNECT under one that revokes the client
    let mut s = socks_greet(addr).await;
    reload(
        &proxy,
        &next,
        harness::config(|c| {
            socks(c);
            narrowed(c);
        }),
    )
    .await;
    assert_eq!(
        socks_connect(&mut s, echo).await,
        2,
        "connection not allowed by ruleset"
    );
    assert!(closed(&mut s).await);

    // greeted without a login, CONNECT under a config that wants one
    reload(&proxy, &next, harness::config(socks)).await;
    let mut s = socks_greet(addr).await;
    reload(
        &proxy,
        &next,
        harness::config(|c| {
            socks(c);
            c.client_auth.username = "app".into();
            c.client_auth.password = "s3cret-pw".into();
        }),
    )
    .await;
    assert_eq!(socks_connect(&mut s, echo).await, 2);
    assert!(closed(&mut s).await);

    // the tunnel opened first runs on
    open.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    tokio::time::timeout(WAIT, open.read_exact(&mut back))
        .await
        .expect("the open tunnel answers")
        .expect("the open tunnel is up");
    assert_eq!(&back, b"ping");
}
