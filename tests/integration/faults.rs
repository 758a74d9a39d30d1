//! Faults, seen from the client: peers that die, stall, lie or flood, and a process that runs
//! out of file descriptors or is told to stop under load. Each test builds the fault with an
//! in-process fake (a peer that misbehaves on purpose) or a spawned `waypost` binary, and
//! asserts what the client gets: a closed connection, never a complete-looking truncated body;
//! a 502/504 with `X-Waypost-Error` within the configured timeout; bounded retries.
//!
//! Faults covered elsewhere (not repeated here): a Content-Length body cut short, seen through
//! hyper (`http_forwarding::upstream_closing_mid_response_closes_the_client_connection`); an
//! upstream that accepts but never answers
//! (`limits::receive_response_timeout_gives_504_when_no_headers_come`); DNS timeouts
//! (`limits::resolve_timeout_gives_504_dns_timeout`); a 20 KB response header
//! (`limits::oversized_response_headers_give_502`); a slow PAC server
//! (`autoproxy_more::requests_during_the_first_pac_load_wait_for_it_and_go_direct_only_after_the_bound`);
//! a wrong password against a real squid
//! (`proxy_auth::a_wrong_password_relays_one_407_and_then_locks_out_instead_of_retrying`); an
//! in-process shutdown drain
//! (`security_and_shutdown::shutdown_lets_in_flight_requests_and_tunnels_finish_and_refuses_new_connections`).

use crate::support;

use std::net::SocketAddr;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use http::Response;
use support::harness::{self, metric, raw_origin, Origin};
use support::process::{spawn_waypost, Lines};
use support::wire::{header_of, read_head, status_of};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use waypost::body;
use waypost_testsupport::eventually;

const WAIT: Duration = Duration::from_secs(15);

/// Sends one GET through the proxy on a raw socket and reads until the proxy closes (or
/// `within` passes): the exact bytes the client got, and whether it saw EOF.
async fn raw_get(proxy: SocketAddr, origin: SocketAddr, within: Duration) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(format!("GET http://{origin}/ HTTP/1.1\r\nHost: {origin}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    let eof = tokio::time::timeout(within, s.read_to_end(&mut out))
        .await
        .is_ok();
    (out, eof)
}

fn split_head(raw: &[u8]) -> (String, &[u8]) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    (
        String::from_utf8_lossy(&raw[..end + 4]).into_owned(),
        &raw[end + 4..],
    )
}

// ---------------------------------------------------------------------------------------------
// Upstream dies mid-response

#[tokio::test]
async fn an_origin_dying_mid_body_leaves_the_client_fewer_bytes_than_content_length_and_eof() {
    let origin = raw_origin(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            .await;
        // dies: the socket is dropped here
    })
    .await;
    let proxy = harness::start_proxy(|_| {}).await;
    let (raw, eof) = raw_get(proxy.addrs[0], origin, WAIT).await;
    assert!(eof, "the proxy closes the client connection");
    let (head, body) = split_head(&raw);
    assert_eq!(status_of(&head), 200, "{head}");
    match header_of(&head, "content-length") {
        Some(len) => {
            let len: usize = len.parse().unwrap();
            assert!(body.len() < len, "{} of {len} bytes: {head}", body.len());
        }
        None => {
            assert_eq!(
                header_of(&head, "transfer-encoding"),
                Some("chunked"),
                "{head}"
            );
            assert!(!body.ends_with(b"0\r\n\r\n"), "no last chunk: {body:?}");
        }
    }
    assert!(
        !String::from_utf8_lossy(body).contains("0123456789X"),
        "nothing invented"
    );
}

#[tokio::test]
async fn an_origin_dying_mid_chunked_body_never_gets_the_terminating_chunk_to_the_client() {
    let origin = raw_origin(|mut s| async move {
        let _ = s
            .write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n5\r\nab",
            )
            .await;
    })
    .await;
    let proxy = harness::start_proxy(|_| {}).await;
    let (raw, eof) = raw_get(proxy.addrs[0], origin, WAIT).await;
    assert!(eof, "the proxy closes the client connection");
    let (head, body) = split_head(&raw);
    assert_eq!(status_of(&head), 200, "{head}");
    assert_eq!(
        header_of(&head, "transfer-encoding"),
        Some("chunked"),
        "{head}"
    );
    let text = String::from_utf8_lossy(body);
    assert!(
        text.contains("0123456789"),
        "what came is relayed: {text:?}"
    );
    assert!(
        !body.ends_with(b"0\r\n\r\n"),
        "a cut chunked body must not end with the last chunk: {text:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Origins that do not speak HTTP, or never finish their head

#[tokio::test]
async fn an_origin_answering_garbage_gives_502_with_the_reason() {
    let origin = raw_origin(|mut s| async move {
        let _ = s
            .write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02 not http at all\r\n\r\n")
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let proxy = harness::start_proxy(|c| c.timeouts.receive_response = "5s".into()).await;
    let started = Instant::now();
    let (status, headers, body) = harness::get(proxy.addrs[0], &format!("http://{origin}/")).await;
    assert_eq!(status, 502, "{body}");
    assert!(headers.contains_key("x-waypost-error"), "{headers:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_origin_streaming_an_endless_header_gives_502_once_the_header_limit_is_passed() {
    let origin = raw_origin(|mut s| async move {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nX-Endless: ").await;
        let chunk = [b'a'; 1024];
        // never ends: 1 KiB every millisecond until the proxy hangs up
        while s.write_all(&chunk).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let proxy = harness::start_proxy(|c| {
        c.limits.max_response_header_size = 16 * 1024;
        c.timeouts.receive_response = "10s".into();
    })
    .await;
    let started = Instant::now();
    let (status, headers, _) = harness::get(proxy.addrs[0], &format!("http://{origin}/")).await;
    assert_eq!(status, 502);
    assert_eq!(headers["x-waypost-error"], "response-headers-too-large");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_origin_dripping_header_lines_forever_gives_504_after_the_receive_timeout() {
    let origin = raw_origin(|mut s| async move {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n").await;
        // small lines, slowly: never over the size limit, never the end of the head
        let mut n = 0u64;
        while s
            .write_all(format!("X-Drip-{n}: 1\r\n").as_bytes())
            .await
            .is_ok()
        {
            n += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let proxy = harness::start_proxy(|c| c.timeouts.receive_response = "700ms".into()).await;
    let started = Instant::now();
    let (status, headers, _) = harness::get(proxy.addrs[0], &format!("http://{origin}/")).await;
    assert_eq!(status, 504);
    assert_eq!(headers["x-waypost-error"], "response-timeout");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// PAC servers that hang or flood

fn pac_at(c: &mut waypost::config::raw::RawConfig, url: &str) {
    c.pac.source = url.to_string().into();
    c.pac.cache_file = "none".into();
    c.pac.first_load_wait = "5s".into();
    c.pac.fetch_timeout = "1s".into();
    c.route.bypass_loopback = false;
}

async fn explain(proxy: SocketAddr, url: &str) -> serde_json::Value {
    let (status, _, body) = harness::get(
        proxy,
        &format!("/explain?url={}", waypost::ops::admin::percent_encode(url)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// A PAC server that accepts, reads the request and never answers; it counts connections.
async fn hanging_pac_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    let addr = raw_origin(move |s| {
        let count = count.clone();
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(s);
        }
    })
    .await;
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pac_server_that_never_answers_costs_one_fetch_timeout_then_the_failure_policy_applies() {
    let origin = Origin::echo().await;
    let (pac, asked) = hanging_pac_server().await;
    let url = format!("http://{pac}/wpad.dat");

    // not mandatory: the first request waits for the fetch bound only, then goes DIRECT
    let proxy = harness::start_proxy(|c| pac_at(c, &url)).await;
    let started = Instant::now();
    let (status, _, body) = harness::get(proxy.addrs[0], &origin.url("/direct")).await;
    let waited = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("GET /direct"),
        "DIRECT to the origin: {body}"
    );
    assert!(
        waited < Duration::from_secs(4),
        "bounded by pac.fetch_timeout: {waited:?}"
    );
    assert!(asked.load(Ordering::SeqCst) >= 1);
    let r = explain(proxy.addrs[0], &origin.url("/")).await;
    let err = r["pac_error"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(err.contains("took longer than 1s"), "{r}");

    // mandatory: the same failure refuses the request with a reason, as quickly
    let proxy = harness::start_proxy(|c| {
        pac_at(c, &url);
        c.pac.mandatory = true;
    })
    .await;
    let started = Instant::now();
    let (status, headers, _) = harness::get(proxy.addrs[0], &origin.url("/refused")).await;
    assert_eq!(status, 502);
    assert_eq!(headers["x-waypost-error"], "pac-unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pac_server_streaming_10_mb_is_cut_at_the_size_cap_without_reading_it_all() {
    let origin = Origin::echo().await;
    let sent = Arc::new(AtomicUsize::new(0));
    let count = sent.clone();
    let pac = raw_origin(move |mut s| {
        let count = count.clone();
        async move {
            // no length: the body ends when the server closes, so only a cap on what is
            // read can stop it
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-ns-proxy-autoconfig\r\n\
                        Connection: close\r\n\r\n";
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut chunk = b"// padding ".repeat(6000);
            chunk.truncate(64 * 1024);
            // up to 256 MiB: far more than the cap plus every socket buffer between the two
            for _ in 0..4096 {
                if s.write_all(&chunk).await.is_err() {
                    return;
                }
                count.fetch_add(chunk.len(), Ordering::SeqCst);
            }
        }
    })
    .await;
    let url = format!("http://{pac}/huge.pac");
    let proxy = harness::start_proxy(|c| {
        pac_at(c, &url);
        c.pac.fetch_timeout = "10s".into();
    })
    .await;
    let started = Instant::now();
    let (status, _, body) = harness::get(proxy.addrs[0], &origin.url("/after-huge")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("GET /after-huge"), "DIRECT: {body}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let r = explain(proxy.addrs[0], &origin.url("/")).await;
    let err = r["pac_error"].as_str().unwrap_or_default();
    assert!(err.contains("limit"), "the size cap is named: {r}");
    // the download stopped near the cap (1 MiB by default), not at the end of the body; the
    // socket buffers between the two may hold tens of MB on loopback (tcp_wmem and tcp_rmem
    // autotune up to 4 + 32 MB here), so the bound leaves room for them
    let read = sent.load(Ordering::SeqCst);
    assert!(read < 64 << 20, "{read} bytes sent before waypost hung up");
}

// ---------------------------------------------------------------------------------------------
// Authenticating proxies that cannot be satisfied

/// MS-NLMP 4.2.4.3 CHALLENGE_MESSAGE.
const NTLM_CHALLENGE: &str = "4e544c4d53535000020000000c000c003800000033828ae20123456789abcdef00000000000000002400240044000000060070170000000f53006500720076006500720002000c0044006f006d00610069006e0001000c0053006500720076006500720000000000";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn ntlm_challenge_b64() -> String {
    let bytes: Vec<u8> = (0..NTLM_CHALLENGE.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&NTLM_CHALLENGE[i..i + 2], 16).unwrap())
        .collect();
    b64(&bytes)
}

#[derive(Clone, Copy, PartialEq)]
enum FakeAuth {
    /// Offers Negotiate and NTLM; accepts any NTLM AUTHENTICATE.
    NegotiateOrNtlm,
    /// Answers every request with a 407 carrying a fresh NTLM challenge, forever.
    Forever,
}

/// An HTTP proxy that wants authentication. `seen` records the scheme and NTLM message type
/// of every request's `Proxy-Authorization` (`"-"` when there was none), in order.
async fn fake_auth_proxy(mode: FakeAuth) -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                loop {
                    let mut auth = None;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            if k.eq_ignore_ascii_case("proxy-authorization") {
                                auth = Some(v.trim().to_string());
                            }
                        }
                    }
                    let what = match auth.as_deref().and_then(|a| a.split_once(' ')) {
                        None => "-".to_string(),
                        Some(("NTLM", token)) => {
                            let raw = base64::engine::general_purpose::STANDARD
                                .decode(token)
                                .unwrap_or_default();
                            format!("NTLM/{}", raw.get(8).copied().unwrap_or(0))
                        }
                        Some((scheme, _)) => scheme.to_string(),
                    };
                    log.lock().unwrap().push(what.clone());
                    let challenge = match (mode, what.as_str()) {
                        (FakeAuth::NegotiateOrNtlm, "NTLM/3") => None,
                        (_, "NTLM/1") | (FakeAuth::Forever, _) => Some(format!(
                            "Proxy-Authenticate: NTLM {}\r\n",
                            ntlm_challenge_b64()
                        )),
                        _ => Some(
                            "Proxy-Authenticate: Negotiate\r\nProxy-Authenticate: NTLM\r\n"
                                .to_string(),
                        ),
                    };
                    let reply = match challenge {
                        Some(c) => format!(
                            "HTTP/1.1 407 Proxy Authentication Required\r\n{c}Content-Length: 0\r\n\r\n"
                        ),
                        None => "HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\nvia fake proxy\r\n"
                            .to_string(),
                    };
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_kdc_makes_negotiate_fall_back_to_ntlm_within_the_kdc_timeout() {
    // a KDC that swallows UDP and accepts TCP without ever answering
    let (udp, tcp, kdc_port) = loop {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = tcp.local_addr().unwrap().port();
        if let Ok(udp) = tokio::net::UdpSocket::bind(("127.0.0.1", port)).await {
            break (udp, tcp, port);
        }
    };
    let held = Arc::new(Mutex::new(Vec::new()));
    let hold = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = tcp.accept().await {
            hold.lock().unwrap().push(s);
        }
    });
    let (port, seen) = fake_auth_proxy(FakeAuth::NegotiateOrNtlm).await;
    let proxy = harness::start_proxy(|c| {
        c.route.upstream = format!("http://localhost:{port}");
        c.route.bypass_loopback = false;
        c.auth.user = Some("alice@EXAMPLE.TEST".into());
        c.auth.password = Some(waypost_auth::credentials::SecretString::new("secret"));
        c.auth.kdc = Some(format!("127.0.0.1:{kdc_port}"));
    })
    .await;
    let started = Instant::now();
    let (status, _, body) = tokio::time::timeout(
        Duration::from_secs(30),
        harness::get(proxy.addrs[0], "http://origin.example.test/"),
    )
    .await
    .expect("no hang on a dead KDC");
    let took = started.elapsed();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        (status, body.as_str()),
        (200, "via fake proxy\r\n"),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|s| s == "NTLM/3"),
        "NTLM finished the handshake: {seen:?}"
    );
    assert!(
        !seen.iter().any(|s| s == "Negotiate"),
        "no Kerberos token without a KDC: {seen:?}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
    drop(udp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_answering_407_forever_gets_a_bounded_number_of_tries_and_the_client_its_407() {
    let (port, seen) = fake_auth_proxy(FakeAuth::Forever).await;
    let proxy = harness::start_proxy(|c| {
        c.route.upstream = format!("http://localhost:{port}");
        c.route.bypass_loopback = false;
        c.auth.user = Some("alice".into());
        c.auth.password = Some(waypost_auth::credentials::SecretString::new("secret"));
    })
    .await;
    let started = Instant::now();
    let (status, _, _) = tokio::time::timeout(
        Duration::from_secs(20),
        harness::get(proxy.addrs[0], "http://origin.example.test/"),
    )
    .await
    .expect("no endless 407 loop");
    assert_eq!(status, 407, "the proxy's refusal is relayed");
    let tries = seen.lock().unwrap().len();
    assert!(
        (2..=8).contains(&tries),
        "{tries} requests: {:?}",
        seen.lock().unwrap()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // a second request is not a new storm either
    let before = seen.lock().unwrap().len();
    let (status, _, _) = harness::get(proxy.addrs[0], "http://origin.example.test/again").await;
    assert_eq!(status, 407);
    let more = seen.lock().unwrap().len() - before;
    assert!(more <= 8, "{more} more requests");
}

// ---------------------------------------------------------------------------------------------
// A client that gives up mid-upload

#[tokio::test]
async fn a_client_vanishing_mid_upload_frees_its_slot_and_the_next_request_gets_a_clean_connection()
{
    // an origin that reads every body whole and says how long it was
    let origin = Origin::start(|req: http::Request<hyper::body::Incoming>| async move {
        use http_body_util::BodyExt;
        match req.into_body().collect().await {
            Ok(b) => Response::new(body::full(format!("got {}", b.to_bytes().len()))),
            Err(_) => Response::new(body::full("broken body")),
        }
    })
    .await;
    let proxy = harness::start_proxy(|_| {}).await;
    let active = |proxy: &waypost::listen::server::Running| {
        metric(
            &harness::registry_metrics(proxy),
            "waypost_client_connections_active",
        )
    };
    for _ in 0..3 {
        let mut s = TcpStream::connect(proxy.addrs[0]).await.unwrap();
        s.write_all(
            format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 10000000\r\n\r\n",
                origin.url("/upload"),
                origin.addr
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        s.write_all(&vec![b'u'; 256 * 1024]).await.unwrap();
        // the upload reached the origin before the client vanishes
        eventually(
            WAIT,
            || async { origin.connections.load(Ordering::SeqCst) },
            |n| *n >= 1,
        )
        .await;
        drop(s);
    }
    eventually(WAIT, || async { active(&proxy) }, |n| *n == 0.0).await;
    // the next request through the same proxy to the same origin is answered whole: no
    // upstream connection left mid-body was reused for it
    let mut s = TcpStream::connect(proxy.addrs[0]).await.unwrap();
    s.write_all(
        format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            origin.url("/after"),
            origin.addr
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let head = read_head(&mut s, WAIT).await;
    assert_eq!(status_of(&head), 200, "{head}");
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&rest).ends_with("got 5"),
        "{rest:?}"
    );
    drop(s);
    eventually(WAIT, || async { active(&proxy) }, |n| *n == 0.0).await;
    let m = harness::registry_metrics(&proxy);
    assert_eq!(
        metric(
            &m,
            "waypost_pool_connections{state=\"active\",upstream=\"direct\"}"
        ),
        0.0,
        "{m}"
    );
}

// ---------------------------------------------------------------------------------------------
// The waypost process: out of file descriptors, and told to stop under load

fn count(lines: &Lines, needle: &str) -> usize {
    lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_logs_once_and_accept_resumes_when_they_free_up() {
    let origin = Origin::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("waypost.toml");
    std::fs::write(
        &config,
        "listen = [\"127.0.0.1:0\"]\nmax_client_connections = 10000\n\
         [timeouts]\nclient_header = \"60s\"\n[route]\nbypass_loopback = false\n",
    )
    .unwrap();
    let (_child, addr, lines) = spawn_waypost(&config, Some(64)).await;
    assert_eq!(harness::get(addr, &origin.url("/before")).await.0, 200);

    // idle clients take one descriptor each until accept() fails with EMFILE (64 minus the
    // dozen waypost holds at rest); later ones wait in the listen queue (128 deep)
    let mut holders = Vec::new();
    while count(&lines, "accept failed") == 0 && holders.len() < 60 {
        holders.push(TcpStream::connect(addr).await.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eventually(
        WAIT,
        || async { count(&lines, "accept failed") },
        |n| *n >= 1,
    )
    .await;
    // ten more queue up first: a descriptor freed meanwhile (an idle pooled upstream
    // connection timing out) lets one of them in, never the client below
    for _ in 0..10 {
        holders.push(TcpStream::connect(addr).await.unwrap());
    }
    // a client arriving now waits in the listen queue behind them
    let url = origin.url("/during");
    let waiting = tokio::spawn(async move { harness::get(addr, &url).await });
    // the shortage lasts a while (the old loop logged 20 lines a second)
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!waiting.is_finished(), "no descriptor, no answer yet");
    drop(holders);
    let (status, _, body) = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("the queued client is served once descriptors free up")
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(harness::get(addr, &origin.url("/after")).await.0, 200);
    let failed = count(&lines, "accept failed");
    assert_eq!(
        failed,
        1,
        "one line per shortage, not a flood: {:?}",
        lines.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_lets_every_in_flight_request_finish_and_exits_0() {
    let origin = Origin::start(|_req| async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        Response::new(body::full("x".repeat(100_000)))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("waypost.toml");
    std::fs::write(
        &config,
        "listen = [\"127.0.0.1:0\"]\nshutdown_grace = \"20s\"\n[route]\nbypass_loopback = false\n",
    )
    .unwrap();
    let (mut child, addr, lines) = spawn_waypost(&config, None).await;
    const N: usize = 20;
    let mut inflight = Vec::new();
    for i in 0..N {
        let url = origin.url(&format!("/load/{i}"));
        inflight.push(tokio::spawn(async move { harness::get(addr, &url).await }));
    }
    eventually(
        WAIT,
        || async { origin.connections.load(Ordering::SeqCst) },
        |n| *n == N,
    )
    .await;
    let pid = child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    for (i, request) in inflight.into_iter().enumerate() {
        let (status, _, body) = request.await.unwrap();
        assert_eq!(status, 200, "request {i}");
        assert_eq!(body.len(), 100_000, "request {i} complete");
    }
    let exit = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("waypost exits after the drain")
        .unwrap();
    assert_eq!(exit.code(), Some(0), "{:?}", lines.lock().unwrap());
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "nothing listens after the exit"
    );
}
