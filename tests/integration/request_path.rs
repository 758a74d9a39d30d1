//! Acceptance tests of the request path: what one pipeline for plain requests, CONNECT and
//! upgrades must do end to end, against real peers (squid in each authentication mode, a KDC,
//! the python origin) and in-process ones.
//!
//! - WebSocket upgrades and large request bodies (5 MiB, with Content-Length and chunked)
//!   through an authenticating squid, the client sending no credentials, on a cold pool;
//! - a server-sent event stream with 40 s pauses under the default timeouts;
//! - a squid's own refusal of a CONNECT reaches the client as squid sent it;
//! - `max_client_connections` counts tunnels, and the admin port stays reachable;
//! - a PAC that points waypost at itself is a loop (508), not a connection storm.
//!
//! Every test starts its own waypost (cold pool) and its own peers.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;
use waypost_testsupport::eventually;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use support::harness::{self, metric, Client};
use support::peers::{free_port, Origin, Squid, PASSWORD, REALM, USER};
use support::wire;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use waypost::config::raw::RawConfig;
use waypost::listen::server::Running;

// ---- upstream authentication: the three schemes ------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Scheme {
    Ntlm,
    Negotiate,
    Basic,
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scheme::Ntlm => "NTLM",
            Scheme::Negotiate => "Negotiate",
            Scheme::Basic => "Basic",
        })
    }
}

/// A squid demanding `scheme` (real verifiers: NTLMv2 recomputed from the password, Kerberos
/// tickets of its own KDC, bcrypt htpasswd). Blocking: call before awaiting anything else.
fn auth_squid(scheme: Scheme) -> Squid {
    Squid::start(match scheme {
        Scheme::Ntlm => "ntlm",
        Scheme::Negotiate => "negotiate",
        Scheme::Basic => "basic",
    })
}

/// waypost chained to `squid` with the user's credentials in `[auth]`; clients send none.
fn upstream_with_credentials(c: &mut RawConfig, squid: &Squid, scheme: Scheme) {
    // `localhost`: a plain host name the default (medium) autologon policy allows, and the
    // name of a principal in the KDC's keytab (HTTP/localhost)
    c.route.upstream = format!("http://localhost:{}", squid.port);
    c.route.bypass_loopback = false;
    c.auth.password = Some(waypost_auth::credentials::SecretString::new(PASSWORD));
    if matches!(scheme, Scheme::Basic) {
        // Basic to a plain-HTTP proxy is an explicit choice (auth.scheme = "auto" refuses it)
        c.auth.scheme = waypost_auth::SchemeChoice::Basic;
    }
    match scheme {
        Scheme::Ntlm | Scheme::Basic => c.auth.user = Some(USER.to_string()),
        Scheme::Negotiate => {
            // Kerberos from the password: user@REALM and the squid's own KDC
            let kdc = squid.kdc().expect("a negotiate squid starts its own KDC");
            c.auth.user = Some(format!("{USER}@{REALM}"));
            c.auth.kdc = Some(format!("127.0.0.1:{}", kdc.port));
        }
    }
}

/// A body short enough for a failure message: a squid page's title and error id, or the start.
fn brief(body: &str) -> String {
    let between = |a: &str, b: &str| {
        let start = body.find(a)? + a.len();
        let len = body[start..].find(b)?;
        Some(body[start..start + len].trim().to_string())
    };
    match (between("<title>", "</title>"), between("<!-- ERR_", "-->")) {
        (Some(title), Some(err)) => format!("squid page {title:?} (ERR_{err})"),
        _ => body.chars().take(300).collect(),
    }
}

async fn start_with_auth_squid(scheme: Scheme) -> (Squid, Origin, Running) {
    let (squid, origin) =
        tokio::task::spawn_blocking(move || (auth_squid(scheme), Origin::start()))
            .await
            .unwrap();
    let proxy = harness::start_proxy(|c| upstream_with_credentials(c, &squid, scheme)).await;
    (squid, origin, proxy)
}

/// `ws://` to the origin's `/ws` through `proxy`: 101 with the right accept key, then a text
/// frame comes back from the origin's echo.
async fn assert_websocket_echo(what: &str, proxy: SocketAddr, origin_url: &str) {
    let url = format!("{origin_url}/ws");
    let (mut ws, head) = wire::websocket_upgrade(proxy, &url).await;
    assert_eq!(
        wire::status_of(&head),
        101,
        "{what}: the WebSocket upgrade must switch protocols (an authenticating proxy's 407 is \
         waypost's to answer); got:\n{head}"
    );
    assert_eq!(
        wire::header_of(&head, "sec-websocket-accept"),
        Some(wire::WS_ACCEPT),
        "{what}: {head}"
    );
    let text = format!("hello {what}");
    ws.write_all(&wire::ws_client_frame(0x1, text.as_bytes()))
        .await
        .unwrap();
    let (first, payload) = wire::ws_read_frame(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(first, 0x81, "{what}: a final text frame");
    assert_eq!(String::from_utf8_lossy(&payload), text, "{what}");
}

/// A 5 MiB POST to the origin's `/sha256` through `proxy` arrives whole (count and digest).
async fn assert_post_arrives_intact(
    what: &str,
    proxy: SocketAddr,
    origin_url: &str,
    chunked: bool,
) {
    let data = wire::patterned_body(5 << 20);
    let expected = format!("bytes={} sha256={}\n", data.len(), wire::sha256_hex(&data));
    let url = format!("{origin_url}/sha256");
    let framing = if chunked { "chunked" } else { "Content-Length" };
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        wire::post(proxy, &url, data, chunked),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}, {framing} body: no answer within 60 s"));
    let (status, headers, body) = result.unwrap_or_else(|e| panic!("{what}, {framing} body: {e}"));
    assert!(
        status == 200 && body == expected,
        "{what}, {framing} body: the origin must receive all 5 MiB ({}); got {status} {} \
         (X-Waypost-Error {:?})",
        expected.trim(),
        brief(&body),
        headers.get("x-waypost-error")
    );
}

async fn websocket_echo_round_trip(scheme: Scheme) {
    let (squid, origin, proxy) = start_with_auth_squid(scheme).await;
    let what = format!("through the {scheme} squid");
    assert_websocket_echo(&what, proxy.addrs[0], &origin.url()).await;
    drop(squid);
}

async fn five_mib_post_arrives_intact(scheme: Scheme, chunked: bool) {
    let (squid, origin, proxy) = start_with_auth_squid(scheme).await;
    let what = format!("through the {scheme} squid, cold pool");
    assert_post_arrives_intact(&what, proxy.addrs[0], &origin.url(), chunked).await;
    drop(squid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_echo_works_through_an_ntlm_proxy_without_client_credentials() {
    websocket_echo_round_trip(Scheme::Ntlm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_echo_works_through_a_negotiate_proxy_without_client_credentials() {
    websocket_echo_round_trip(Scheme::Negotiate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_echo_works_through_a_basic_proxy_without_client_credentials() {
    websocket_echo_round_trip(Scheme::Basic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mib_post_with_content_length_arrives_intact_through_an_ntlm_proxy_on_a_cold_pool() {
    five_mib_post_arrives_intact(Scheme::Ntlm, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mib_chunked_post_arrives_intact_through_an_ntlm_proxy_on_a_cold_pool() {
    five_mib_post_arrives_intact(Scheme::Ntlm, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mib_post_with_content_length_arrives_intact_through_a_negotiate_proxy_on_a_cold_pool()
{
    five_mib_post_arrives_intact(Scheme::Negotiate, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mib_chunked_post_arrives_intact_through_a_negotiate_proxy_on_a_cold_pool() {
    five_mib_post_arrives_intact(Scheme::Negotiate, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mib_post_with_content_length_arrives_intact_through_a_basic_proxy_on_a_cold_pool() {
    five_mib_post_arrives_intact(Scheme::Basic, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mib_chunked_post_arrives_intact_through_a_basic_proxy_on_a_cold_pool() {
    five_mib_post_arrives_intact(Scheme::Basic, true).await;
}

// ---- controls: these pass today; they prove the peers and the client code above --------

/// Control for the tests above: credentials as configured there authenticate a plain GET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_get_authenticates_to_ntlm_negotiate_and_basic_squids_with_the_configured_credentials(
) {
    for scheme in [Scheme::Ntlm, Scheme::Negotiate, Scheme::Basic] {
        let (squid, origin, proxy) = start_with_auth_squid(scheme).await;
        let (status, _, body) =
            harness::get(proxy.addrs[0], &format!("{}/small", origin.url())).await;
        assert_eq!(status, 200, "{scheme}: {}", brief(&body));
        let squid = &squid;
        // squid logs the request as the configured user
        eventually(
            Duration::from_secs(10),
            || async move { squid.access_log() },
            |log| log.contains("/small 200") && log.contains(&format!("user={USER}")),
        )
        .await;
    }
}

/// Control: the WebSocket echo and the 5 MiB bodies work where no authentication is involved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_and_5_mib_posts_work_direct_and_through_an_open_squid() {
    let (squid, origin) = tokio::task::spawn_blocking(|| (Squid::start("open"), Origin::start()))
        .await
        .unwrap();
    let direct = harness::start_proxy(|_| {}).await;
    let squid_url = squid.url();
    let chained = harness::start_proxy(|c| {
        c.route.upstream = squid_url.clone();
        c.route.bypass_loopback = false;
    })
    .await;
    for (what, proxy) in [
        ("direct", direct.addrs[0]),
        ("through an open squid", chained.addrs[0]),
    ] {
        assert_websocket_echo(what, proxy, &origin.url()).await;
        for chunked in [false, true] {
            assert_post_arrives_intact(what, proxy, &origin.url(), chunked).await;
        }
    }
    let squid = &squid;
    // both POSTs went through squid
    eventually(
        Duration::from_secs(10),
        || async move { squid.access_log() },
        |log| log.matches("POST ").count() == 2,
    )
    .await;
}

// ---- long-lived responses under the default timeouts ---------------------------------------

/// Two events 40 s apart: longer than WinHTTP's 30 s receive timeout between body pieces.
const SSE_GAP_SECS: u64 = 40;

/// GETs `/sse?events=2&gap=40` through `proxy`; Ok(()) when the first event arrives at once
/// (streamed, not buffered) and the whole stream ends cleanly; Err(what went wrong) otherwise.
async fn event_stream_arrives_whole(proxy: SocketAddr, origin_url: &str) -> Result<(), String> {
    let url = format!("{origin_url}/sse?events=2&gap={SSE_GAP_SECS}");
    let mut client = Client::connect(proxy).await;
    let req = Request::get(&url)
        .header("host", harness::host_of(&url))
        .header("accept", "text/event-stream")
        .body(Default::default())
        .unwrap();
    let resp = client
        .send(req)
        .await
        .map_err(|e| format!("no response head: {e}"))?;
    if resp.status() != 200 {
        return Err(format!("status {}", resp.status()));
    }
    let started = tokio::time::Instant::now();
    let mut body = resp.into_body();
    let mut got = Vec::new();
    let mut first_event_after = None;
    let deadline = Duration::from_secs(SSE_GAP_SECS + 30);
    loop {
        let frame = match tokio::time::timeout(deadline, body.frame()).await {
            Err(_) => return Err(format!("stalled; had {:?}", String::from_utf8_lossy(&got))),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(format!(
                    "body broke after {:?} with {:?}: {e}",
                    started.elapsed(),
                    String::from_utf8_lossy(&got)
                ))
            }
            Ok(Some(Ok(f))) => f,
        };
        if let Some(data) = frame.data_ref() {
            got.extend_from_slice(data);
            if first_event_after.is_none() && got.starts_with(b"data: 0\n\n") {
                first_event_after = Some(started.elapsed());
            }
        }
    }
    if got != b"data: 0\n\ndata: 1\n\n" {
        return Err(format!(
            "ended after {:?} with {:?}",
            started.elapsed(),
            String::from_utf8_lossy(&got)
        ));
    }
    match first_event_after {
        Some(t) if t < Duration::from_secs(10) => {}
        t => {
            return Err(format!(
                "the first event was held back, not streamed (came after {t:?})"
            ))
        }
    }
    Ok(())
}

/// Slow by design (40 s): both paths run at once, so it holds one test thread for one pause,
/// and its name sorts first, so libtest starts it first and the other tests run beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_40_s_pause_between_server_sent_events_survives_the_default_timeouts_direct_and_through_squid(
) {
    let (squid, origin) = tokio::task::spawn_blocking(|| (Squid::start("open"), Origin::start()))
        .await
        .unwrap();
    // default timeouts in both: only the route differs
    let direct = harness::start_proxy(|_| {}).await;
    let squid_url = squid.url();
    let chained = harness::start_proxy(|c| {
        c.route.upstream = squid_url.clone();
        c.route.bypass_loopback = false;
    })
    .await;
    let origin_url = origin.url();
    let (d, s) = tokio::join!(
        event_stream_arrives_whole(direct.addrs[0], &origin_url),
        event_stream_arrives_whole(chained.addrs[0], &origin_url),
    );
    assert!(
        d.is_ok() && s.is_ok(),
        "an event stream with {SSE_GAP_SECS} s pauses must reach the client whole with the \
         default timeouts; direct: {d:?}; through squid: {s:?}"
    );
}

// ---- a proxy's refusal of CONNECT -------------------------------------------------------

/// CONNECT `authority` through `proxy`: status, headers, body.
async fn connect_refusal(proxy: SocketAddr, authority: &str) -> (u16, http::HeaderMap, String) {
    let req = Request::builder()
        .method(Method::CONNECT)
        .uri(authority)
        .header("host", authority)
        .body(Empty::<Bytes>::new().boxed())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), wire::send(proxy, req))
        .await
        .expect("an answer to CONNECT within 30 s")
        .expect("an answer to CONNECT");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("the refusal's body within 10 s")
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn assert_squid_refusal(
    what: &str,
    (status, headers, body): (u16, http::HeaderMap, String),
    squid_status: u16,
    squid_page: &str,
) {
    assert_eq!(
        status,
        squid_status,
        "{what}: the client must get squid's own status, not waypost's; body: {}",
        brief(&body)
    );
    assert!(
        body.contains(squid_page),
        "{what}: the body must be squid's error page ({squid_page}); got: {}",
        brief(&body)
    );
    assert!(
        headers.contains_key("x-waypost-error"),
        "{what}: X-Waypost-Error tells that the refusal came through waypost: {headers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squid_refusing_a_connect_port_is_answered_with_its_own_403_page() {
    let squid = tokio::task::spawn_blocking(|| Squid::start("open"))
        .await
        .unwrap();
    let squid_url = squid.url();
    let proxy = harness::start_proxy(|c| {
        c.route.upstream = squid_url.clone();
        c.route.bypass_loopback = false;
    })
    .await;
    let target = format!("127.0.0.1:{}", squid.denied_connect_port());
    let refusal = connect_refusal(proxy.addrs[0], &target).await;
    assert_squid_refusal(
        "CONNECT to a denied port",
        refusal,
        403,
        "ERR_ACCESS_DENIED",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ntlm_squid_refusing_a_connect_port_after_authentication_is_answered_with_its_own_403_page(
) {
    let squid = tokio::task::spawn_blocking(|| auth_squid(Scheme::Ntlm))
        .await
        .unwrap();
    let proxy = harness::start_proxy(|c| upstream_with_credentials(c, &squid, Scheme::Ntlm)).await;
    let target = format!("127.0.0.1:{}", squid.denied_connect_port());
    let refusal = connect_refusal(proxy.addrs[0], &target).await;
    assert_squid_refusal(
        "CONNECT to a denied port after NTLM",
        refusal,
        403,
        "ERR_ACCESS_DENIED",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squid_that_cannot_reach_the_connect_target_is_answered_with_its_own_503_page() {
    let squid = tokio::task::spawn_blocking(|| Squid::start("open"))
        .await
        .unwrap();
    let squid_url = squid.url();
    let proxy = harness::start_proxy(|c| {
        c.route.upstream = squid_url.clone();
        c.route.bypass_loopback = false;
    })
    .await;
    let closed = free_port(); // bound a moment ago, closed now: connecting is refused
    let refusal = connect_refusal(proxy.addrs[0], &format!("127.0.0.1:{closed}")).await;
    assert_squid_refusal("CONNECT to a closed port", refusal, 503, "ERR_CONNECT_FAIL");
}

// ---- the client connection cap and the admin port ------------------------------------------

/// `waypost_client_connections_active` read from the admin port.
async fn active_client_connections(admin: SocketAddr) -> Result<f64, String> {
    let (status, _, body) = harness::get(admin, "/metrics").await;
    if status != 200 {
        return Err(format!("/metrics answered {status}: {body}"));
    }
    Ok(metric(&body, "waypost_client_connections_active"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tunnels_beyond_max_client_connections_get_503_and_the_active_gauge_returns_to_0() {
    const N: usize = 4;
    let echo = harness::echo_server().await;
    let proxy = harness::start_proxy(|c| {
        c.max_client_connections = N;
        c.admin_listen = vec!["127.0.0.1:0".into()];
    })
    .await;
    let mut statuses = Vec::new();
    let mut conns = Vec::new();
    for i in 0..N + 2 {
        let mut s = TcpStream::connect(proxy.addrs[0]).await.unwrap();
        s.write_all(format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let head = wire::read_head(&mut s, Duration::from_secs(10)).await;
        let status = wire::status_of(&head);
        if status == 200 {
            // the tunnel is up: bytes go through and come back
            let ping = format!("ping {i}");
            s.write_all(ping.as_bytes()).await.unwrap();
            let mut back = vec![0u8; ping.len()];
            tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back))
                .await
                .expect("echo through the tunnel")
                .unwrap();
            assert_eq!(back, ping.as_bytes());
        } else {
            assert_eq!(
                wire::header_of(&head, "x-waypost-error"),
                Some("too-many-connections"),
                "{head}"
            );
        }
        statuses.push(status);
        conns.push(s); // every tunnel stays open while the next one is asked for
    }
    let mut expected = vec![200; N];
    expected.extend([503, 503]);
    assert_eq!(
        statuses, expected,
        "with max_client_connections = {N}, {N} open tunnels fill every slot: \
         the 5th and 6th CONNECT must be refused"
    );
    drop(conns);
    let admin = proxy.admin_addrs[0];
    // waypost_client_connections_active returns to 0 after every tunnel closed (the admin
    // port's own connection must not count)
    let _ = eventually(
        Duration::from_secs(5),
        || active_client_connections(admin),
        |active| matches!(active, Ok(a) if *a == 0.0),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_answers_healthz_while_the_proxy_port_is_saturated() {
    const N: usize = 3;
    let proxy = harness::start_proxy(|c| {
        c.max_client_connections = N;
        c.admin_listen = vec!["127.0.0.1:0".into()];
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..N {
        idle.push(TcpStream::connect(proxy.addrs[0]).await.unwrap());
    }
    // saturated: one more client on the proxy port is refused
    let p = proxy.addrs[0];
    // the proxy port refuses a client beyond max_client_connections
    eventually(
        Duration::from_secs(5),
        || harness::raw(p, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
        |reply| reply.starts_with("HTTP/1.1 503"),
    )
    .await;
    let reply = harness::raw(
        proxy.admin_addrs[0],
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "the admin port must not share the proxy port's connection slots; got:\n{reply}"
    );
    drop(idle);
}

// ---- a PAC that routes waypost to itself --------------------------------------------------

/// Starts waypost on a port known before start (the PAC written by `tweak` must name it),
/// trying another port if the one picked was taken meanwhile.
async fn start_on_known_port(tweak: impl Fn(&mut RawConfig, u16)) -> Running {
    let mut last = None;
    for _ in 0..5 {
        let port = free_port();
        let cfg = harness::config(|c| {
            c.listen = vec![format!("127.0.0.1:{port}")];
            tweak(c, port);
        });
        match waypost::listen::server::start(cfg).await {
            Ok(running) => return running,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => panic!("waypost does not start: {e}"),
        }
    }
    panic!("no free port for waypost after 5 attempts: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pac_naming_waypost_itself_gets_508_loop_instead_of_a_connection_storm() {
    let dir = tempfile::tempdir().unwrap();
    let pac_path = dir.path().join("self.pac");
    let proxy = start_on_known_port(|c, port| {
        std::fs::write(
            &pac_path,
            format!("function FindProxyForURL(url, host) {{ return 'PROXY 127.0.0.1:{port}'; }}"),
        )
        .unwrap();
        c.pac.source = pac_path.display().to_string().into();
        c.pac.cache_file = "none".into();
        // bounds the storm while loops go undetected; a detected loop never comes near it
        c.max_client_connections = 16;
    })
    .await;
    let total = "waypost_client_connections_total";
    let mut reader = Client::connect(proxy.addrs[0]).await; // one connection, counted once, now
    let before = metric(&reader.get("/metrics").await.2, total);
    let (status, headers, body) = tokio::time::timeout(
        Duration::from_secs(30),
        harness::get(proxy.addrs[0], "http://loop.example.test/"),
    )
    .await
    .expect("an answer within 30 s");
    let after = metric(&reader.get("/metrics").await.2, total);
    assert_eq!(
        (status, headers.get("x-waypost-error").and_then(|v| v.to_str().ok())),
        (508, Some("loop")),
        "a request that would come back to waypost itself is a loop; got {status} {headers:?}\n{body}"
    );
    assert!(
        after - before <= 2.0,
        "at most the client's connection and one self-connection; {total} grew by {}",
        after - before
    );
}
