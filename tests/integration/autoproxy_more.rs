//! Autoproxy, the parts `tests/integration/autoproxy.rs` leaves out: SOCKS4 and SOCKS4a entries in the PAC
//! list (Dante for SOCKS4, an in-process SOCKS4a server that records what it was sent), the
//! `waypost explain` command line against a running instance, and PAC downloads: redirects,
//! https -> http refused, the size cap, Latin-1 scripts.
//!
//! The in-process SOCKS4a server is a protocol fake on purpose: Dante speaks SOCKS4 but not
//! the 4a extension (the target's name after the user id), which is what `SOCKS` entries
//! send for names.

use crate::support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use support::harness::{self, Origin};
use support::peers::{free_port, Socks5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use waypost::body::{self, Body};
use waypost_testsupport::ca::{Files, Leaf, TestCa};

fn base(c: &mut waypost::config::raw::RawConfig, source: &str) {
    c.pac.source = source.into();
    c.pac.cache_file = "none".into();
    c.pac.first_load_wait = "3s".into();
    c.route.bypass_loopback = false;
}

fn pac_file(dir: &tempfile::TempDir, script: &str) -> String {
    let path = dir.path().join("proxy.pac");
    std::fs::write(&path, script).unwrap();
    path.display().to_string()
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

// ---------------------------------------------------------------------------------------------
// SOCKS4 / SOCKS4a

/// What a SOCKS4(a) client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Socks4Request {
    ip: [u8; 4],
    port: u16,
    user: String,
    /// The 4a name (sent when `ip` is 0.0.0.x, x != 0).
    host: Option<String>,
}

/// An in-process SOCKS4a server: records each CONNECT, connects to the target, relays.
struct Socks4aServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Socks4Request>>>,
}

async fn read_cstr(s: &mut TcpStream) -> std::io::Result<String> {
    let mut out = Vec::new();
    loop {
        let b = s.read_u8().await?;
        if b == 0 {
            return Ok(String::from_utf8_lossy(&out).into_owned());
        }
        out.push(b);
    }
}

impl Socks4aServer {
    async fn start() -> Socks4aServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut head = [0u8; 8];
                    if client.read_exact(&mut head).await.is_err() || head[0] != 4 || head[1] != 1 {
                        return;
                    }
                    let port = u16::from_be_bytes([head[2], head[3]]);
                    let ip = [head[4], head[5], head[6], head[7]];
                    let Ok(user) = read_cstr(&mut client).await else {
                        return;
                    };
                    let host = if ip[..3] == [0, 0, 0] && ip[3] != 0 {
                        let Ok(h) = read_cstr(&mut client).await else {
                            return;
                        };
                        Some(h)
                    } else {
                        None
                    };
                    log.lock().unwrap().push(Socks4Request {
                        ip,
                        port,
                        user,
                        host: host.clone(),
                    });
                    let target = match &host {
                        Some(h) => TcpStream::connect((h.as_str(), port)).await,
                        None => TcpStream::connect((std::net::Ipv4Addr::from(ip), port)).await,
                    };
                    let Ok(mut target) = target else {
                        let _ = client.write_all(&[0, 0x5b, 0, 0, 0, 0, 0, 0]).await;
                        return;
                    };
                    if client
                        .write_all(&[0, 0x5a, 0, 0, 0, 0, 0, 0])
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut target).await;
                });
            }
        });
        Socks4aServer { addr, seen }
    }

    fn seen(&self) -> Vec<Socks4Request> {
        self.seen.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socks_entry_sends_the_target_name_by_socks4a_for_http_and_connect() {
    let socks = Socks4aServer::start().await;
    let origin = Origin::echo().await;
    let dir = tempfile::tempdir().unwrap();
    // PAC `SOCKS` means SOCKS4 (as in Chrome and WinHTTP); names go as 4a
    let source = pac_file(
        &dir,
        &format!(
            "function FindProxyForURL(u, h) {{ return 'SOCKS 127.0.0.1:{}'; }}",
            socks.addr.port()
        ),
    );
    let proxy = harness::start_proxy(|c| base(c, &source)).await;
    let port = origin.addr.port();

    let (status, _, body) = harness::get(
        proxy.addrs[0],
        &format!("http://localhost:{port}/socks4a-http"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("GET /socks4a-http"), "{body}");

    let reply = harness::raw(
        proxy.addrs[0],
        format!("CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\nGET /socks4a-tunnel HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("GET /socks4a-tunnel"), "{reply}");

    let seen = socks.seen();
    assert_eq!(seen.len(), 2, "one SOCKS CONNECT per request: {seen:?}");
    for r in &seen {
        assert_eq!(
            r.host.as_deref(),
            Some("localhost"),
            "4a: the name is sent: {r:?}"
        );
        assert_eq!(r.ip[..3], [0, 0, 0], "{r:?}");
        assert_eq!(r.port, port, "{r:?}");
    }
    let report = explain(proxy.addrs[0], &format!("http://localhost:{port}/")).await;
    assert_eq!(
        report["decision"][0],
        format!("socks4://127.0.0.1:{}", socks.addr.port()),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socks4_entry_reaches_an_address_through_dante_for_http_and_connect() {
    let dante = tokio::task::spawn_blocking(Socks5::start).await.unwrap();
    let origin = Origin::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let source = pac_file(
        &dir,
        &format!(
            "function FindProxyForURL(u, h) {{ return 'SOCKS4 127.0.0.1:{}'; }}",
            dante.port
        ),
    );
    let proxy = harness::start_proxy(|c| base(c, &source)).await;
    let (status, _, body) = harness::get(proxy.addrs[0], &origin.url("/socks4-http")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("GET /socks4-http"), "{body}");
    let reply = harness::raw(
        proxy.addrs[0],
        format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\nGET /socks4-tunnel HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", origin.addr).as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("GET /socks4-tunnel"), "{reply}");
    let log = std::fs::read_to_string(dante.state_dir().join("log/danted.log")).unwrap_or_default();
    // "pass(1): tcp/connect [: CLIENT DANTE -> DANTE-OUT DESTINATION"
    let to_origin = format!(" 127.0.0.1.{}", origin.addr.port());
    let passed = log
        .lines()
        .filter(|l| l.contains("pass(1): tcp/connect") && l.trim_end().ends_with(&to_origin))
        .count();
    assert_eq!(
        passed, 2,
        "Dante relayed both requests to the origin:\n{log}"
    );
    let report = explain(proxy.addrs[0], &origin.url("/")).await;
    assert_eq!(
        report["decision"][0],
        format!("socks4://127.0.0.1:{}", dante.port),
        "{report}"
    );
}

// ---------------------------------------------------------------------------------------------
// explain on the command line

fn waypost_explain(args: Vec<String>) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_waypost"))
        .arg("explain")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run waypost explain");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn explain_cli(proxy: SocketAddr, url: &str, json: bool) -> String {
    let mut args = vec![url.to_string(), "--proxy".into(), proxy.to_string()];
    if json {
        args.push("--json".into());
    }
    let (ok, out, err) = tokio::task::spawn_blocking(move || waypost_explain(args))
        .await
        .unwrap();
    assert!(ok, "waypost explain failed: {err}{out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waypost_explain_prints_the_source_the_raw_answer_cache_hits_and_the_hop_it_would_use() {
    let origin = Origin::echo().await;
    let dead = free_port();
    let dir = tempfile::tempdir().unwrap();
    let source = pac_file(
        &dir,
        &format!(
            "function FindProxyForURL(u, h) {{ if (shExpMatch(u, '*/direct/*')) return 'DIRECT'; return 'PROXY 127.0.0.1:{dead}; DIRECT'; }}"
        ),
    );
    let proxy = harness::start_proxy(|c| base(c, &source)).await;
    let addr = proxy.addrs[0];
    let url = origin.url("/explained");

    let first = explain_cli(addr, &url, false).await;
    assert!(
        first.contains(&format!("pac:        {source} (via file, ")),
        "names the PAC source and how it was obtained:\n{first}"
    );
    assert!(
        first.contains(&format!(
            "pac result: PROXY 127.0.0.1:{dead}; DIRECT  (cache miss)"
        )),
        "{first}"
    );
    assert!(
        first.contains(&format!(
            "decision:   http://127.0.0.1:{dead} -> DIRECT [pac]"
        )),
        "{first}"
    );
    let second = explain_cli(addr, &url, false).await;
    assert!(second.contains("(cache hit)"), "{second}");

    // after a request fails over, the dead proxy is shown marked bad and DIRECT is the hop
    let (status, _, _) = harness::get(addr, &url).await;
    assert_eq!(status, 200);
    let after = explain_cli(addr, &url, false).await;
    assert!(
        after.contains(&format!(
            "marked bad: http://127.0.0.1:{dead} (retried first again in "
        )),
        "{after}"
    );
    assert!(
        after.contains(&format!(
            "decision:   DIRECT -> http://127.0.0.1:{dead} [pac]"
        )),
        "{after}"
    );

    let json = explain_cli(addr, &origin.url("/direct/x"), true).await;
    let v: serde_json::Value =
        serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("--json: {e}: {json}"));
    assert_eq!(v["pac"]["method"], "file", "{v}");
    assert_eq!(v["pac"]["source"], source.as_str(), "{v}");
    assert_eq!(v["raw"], "DIRECT", "{v}");
    assert_eq!(v["hop_now"], "DIRECT", "{v}");
}

#[tokio::test]
async fn waypost_explain_says_how_to_fix_it_when_nothing_listens() {
    let args = vec![
        "http://example.test/".to_string(),
        "--proxy".into(),
        format!("127.0.0.1:{}", free_port()),
    ];
    let (ok, _, err) = tokio::task::spawn_blocking(move || waypost_explain(args))
        .await
        .unwrap();
    assert!(!ok);
    assert!(err.contains("cannot reach the running waypost"), "{err}");
    assert!(err.contains("--proxy"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// PAC downloads

/// One canned answer: path, status, headers, body.
type Route = (String, u16, Vec<(&'static str, String)>, Vec<u8>);

/// A PAC server answering each path from `routes`; 404 else.
async fn pac_server(routes: Vec<Route>) -> Origin {
    let routes = Arc::new(routes);
    Origin::start(move |req: Request<Incoming>| {
        let routes = routes.clone();
        async move { answer(&routes, req.uri().path()) }
    })
    .await
}

fn answer(routes: &[Route], path: &str) -> Response<Body> {
    match routes.iter().find(|r| r.0 == path) {
        Some((_, status, headers, bytes)) => {
            let mut b = Response::builder().status(*status);
            for (k, v) in headers {
                b = b.header(*k, v);
            }
            b.body(body::full(bytes.clone())).unwrap()
        }
        None => Response::builder()
            .status(404)
            .body(body::full("not here"))
            .unwrap(),
    }
}

const PAC_TYPE: (&str, &str) = ("content-type", "application/x-ns-proxy-autoconfig");

fn script(proxy: &str) -> Vec<u8> {
    format!("function FindProxyForURL(u, h) {{ return '{proxy}'; }}\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pac_downloads_follow_absolute_and_relative_redirects() {
    let target = pac_server(vec![
        (
            "/dir/moved.pac".into(),
            301,
            vec![("location", "final.pac".into())],
            vec![],
        ),
        (
            "/dir/final.pac".into(),
            200,
            vec![(PAC_TYPE.0, PAC_TYPE.1.into())],
            script("PROXY 127.0.0.1:1111"),
        ),
    ])
    .await;
    let first = pac_server(vec![(
        "/wpad.dat".into(),
        302,
        vec![("location", target.url("/dir/moved.pac"))],
        vec![],
    )])
    .await;
    let source = first.url("/wpad.dat");
    let proxy = harness::start_proxy(|c| base(c, &source)).await;
    let r = explain(proxy.addrs[0], "http://example.test/").await;
    assert_eq!(r["pac_error"], serde_json::Value::Null, "{r}");
    assert_eq!(r["raw"], "PROXY 127.0.0.1:1111", "{r}");
    assert_eq!(r["pac"]["method"], "url", "{r}");
}

/// A CA, and an https server for `localhost` signed by it answering from `routes`.
struct TlsPacServer {
    addr: SocketAddr,
    ca_file: PathBuf,
    _files: Files,
}

async fn tls_pac_server(routes: Vec<Route>) -> TlsPacServer {
    let ca = TestCa::new("waypost test PAC CA");
    let files = Files::new();
    let ca_file = files.write("ca.pem", &ca.pem);
    let leaf = Leaf::server(&["localhost"]).signed_by(&ca);
    let acceptor = tokio_rustls::TlsAcceptor::from(leaf.server_config());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = Arc::new(routes);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let routes = routes.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let r = answer(&routes, req.uri().path());
                    async move { Ok::<_, Infallible>(r) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    TlsPacServer {
        addr,
        ca_file,
        _files: files,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_pac_url_loads_under_the_tls_policy_but_a_redirect_to_http_is_refused() {
    let plain = pac_server(vec![(
        "/plain.pac".into(),
        200,
        vec![(PAC_TYPE.0, PAC_TYPE.1.into())],
        script("PROXY 127.0.0.1:2222"),
    )])
    .await;
    let tls = tls_pac_server(vec![
        (
            "/good.pac".into(),
            200,
            vec![(PAC_TYPE.0, PAC_TYPE.1.into())],
            script("PROXY 127.0.0.1:3333"),
        ),
        (
            "/downgrade.pac".into(),
            302,
            vec![("location", plain.url("/plain.pac"))],
            vec![],
        ),
        (
            "/downgrade-upper.pac".into(),
            301,
            vec![(
                "location",
                format!("HTTP://127.0.0.1:{}/plain.pac", plain.addr.port()),
            )],
            vec![],
        ),
    ])
    .await;
    let ca = tls.ca_file.clone();
    let good = format!("https://localhost:{}/good.pac", tls.addr.port());
    let proxy = harness::start_proxy(|c| {
        base(c, &good);
        c.tls.ca_files = vec![ca.clone()];
    })
    .await;
    let r = explain(proxy.addrs[0], "http://example.test/").await;
    assert_eq!(r["raw"], "PROXY 127.0.0.1:3333", "{r}");

    for path in ["/downgrade.pac", "/downgrade-upper.pac"] {
        let downgrade = format!("https://localhost:{}{path}", tls.addr.port());
        let proxy = harness::start_proxy(|c| {
            base(c, &downgrade);
            c.tls.ca_files = vec![ca.clone()];
        })
        .await;
        let r = explain(proxy.addrs[0], "http://example.test/").await;
        assert_eq!(r["pac"], serde_json::Value::Null, "{r}");
        assert_eq!(r["raw"], serde_json::Value::Null, "{r}");
        let err = r["pac_error"].as_str().unwrap_or_default();
        assert!(
            err.contains("redirects from https to http") && err.contains("refused"),
            "{path}: {r}"
        );
        assert_eq!(
            plain.connections.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{path}: the http URL was never fetched"
        );
        assert_eq!(r["decision"], serde_json::json!(["DIRECT"]), "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pac_body_over_the_size_cap_is_refused() {
    let mut big = script("PROXY 127.0.0.1:4444");
    big.extend(std::iter::repeat_n(b' ', 5000));
    big.extend_from_slice(b"// end\n");
    let server = pac_server(vec![
        (
            "/big.pac".into(),
            200,
            vec![(PAC_TYPE.0, PAC_TYPE.1.into())],
            big,
        ),
        (
            "/small.pac".into(),
            200,
            vec![(PAC_TYPE.0, PAC_TYPE.1.into())],
            script("PROXY 127.0.0.1:5555"),
        ),
    ])
    .await;
    let big_url = server.url("/big.pac");
    let proxy = harness::start_proxy(|c| {
        base(c, &big_url);
        c.pac.max_script_size = 1000;
    })
    .await;
    let r = explain(proxy.addrs[0], "http://example.test/").await;
    assert_eq!(r["raw"], serde_json::Value::Null, "{r}");
    let err = r["pac_error"].as_str().unwrap_or_default();
    assert!(err.contains("over the 1000-byte limit"), "{r}");
    // the same cap lets a script under it through
    let small_url = server.url("/small.pac");
    let proxy = harness::start_proxy(|c| {
        base(c, &small_url);
        c.pac.max_script_size = 1000;
    })
    .await;
    let r = explain(proxy.addrs[0], "http://example.test/").await;
    assert_eq!(r["raw"], "PROXY 127.0.0.1:5555", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latin1_pac_script_is_decoded_byte_for_byte_and_runs() {
    // "caf\xe9" in ISO-8859-1: one byte 0xE9, not valid UTF-8
    let mut text = b"// Proxy f\xfcr das B\xfcro\nfunction FindProxyForURL(u, h) { var s = 'caf\xe9'; if (s.length == 4 && s.charCodeAt(3) == 233) return 'PROXY 127.0.0.1:6666'; return 'DIRECT'; }\n".to_vec();
    text.shrink_to_fit();
    assert!(std::str::from_utf8(&text).is_err());
    let server = pac_server(vec![(
        "/latin1.pac".into(),
        200,
        vec![(
            "content-type",
            "application/x-ns-proxy-autoconfig; charset=iso-8859-1".into(),
        )],
        text,
    )])
    .await;
    let url = server.url("/latin1.pac");
    let proxy = harness::start_proxy(|c| base(c, &url)).await;
    let r = explain(proxy.addrs[0], "http://example.test/").await;
    assert_eq!(r["pac_error"], serde_json::Value::Null, "{r}");
    assert_eq!(r["raw"], "PROXY 127.0.0.1:6666", "{r}");
}

// ---------------------------------------------------------------------------------------------
// start-up: waiting for the first script, the last good copy on disk

/// A PAC server that answers `script` after `delay`.
async fn slow_pac_server(script: Vec<u8>, delay: std::time::Duration) -> Origin {
    Origin::start(move |_req: Request<Incoming>| {
        let script = script.clone();
        async move {
            tokio::time::sleep(delay).await;
            Response::builder()
                .header(PAC_TYPE.0, PAC_TYPE.1)
                .body(body::full(script))
                .unwrap()
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_during_the_first_pac_load_wait_for_it_and_go_direct_only_after_the_bound() {
    let squid = tokio::task::spawn_blocking(|| support::peers::Squid::start("open"))
        .await
        .unwrap();
    let origin = Origin::echo().await;
    let via_squid = script(&format!("PROXY 127.0.0.1:{}", squid.port));
    // the script comes after 1 s; requests wait up to 5 s: they follow it
    let slow = slow_pac_server(via_squid.clone(), std::time::Duration::from_millis(1000)).await;
    let url = slow.url("/wpad.dat");
    let proxy = harness::start_proxy(|c| {
        base(c, &url);
        c.pac.first_load_wait = "5s".into();
    })
    .await;
    let started = std::time::Instant::now();
    let (status, _, body) = harness::get(proxy.addrs[0], &origin.url("/early")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.to_ascii_lowercase().contains("via:"),
        "waited for the script, then went through squid: {body}"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(800));

    // the script would come after 10 s; requests wait only 1 s, then go DIRECT
    let slower = slow_pac_server(via_squid, std::time::Duration::from_secs(10)).await;
    let url = slower.url("/wpad.dat");
    let proxy = harness::start_proxy(|c| {
        base(c, &url);
        c.pac.first_load_wait = "1s".into();
        c.pac.fetch_timeout = "20s".into();
    })
    .await;
    let started = std::time::Instant::now();
    let (status, _, body) = harness::get(proxy.addrs[0], &origin.url("/impatient")).await;
    let waited = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.to_ascii_lowercase().contains("via:"),
        "DIRECT: {body}"
    );
    assert!(
        waited >= std::time::Duration::from_millis(900)
            && waited < std::time::Duration::from_secs(5),
        "bounded by pac.first_load_wait: {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_off_network_the_last_good_script_from_disk_is_used() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("last-good.pac");
    let cache_str = cache.display().to_string();
    let online = Arc::new(AtomicBool::new(true));
    let up = online.clone();
    let server = Origin::start(move |_req: Request<Incoming>| {
        let up = up.load(Ordering::SeqCst);
        async move {
            if up {
                Response::builder()
                    .header(PAC_TYPE.0, PAC_TYPE.1)
                    .body(body::full(script("PROXY 127.0.0.1:7777")))
                    .unwrap()
            } else {
                Response::builder()
                    .status(503)
                    .body(body::full("off the corporate network"))
                    .unwrap()
            }
        }
    })
    .await;
    let url = server.url("/wpad.dat");
    let first = harness::start_proxy(|c| {
        base(c, &url);
        c.pac.cache_file = cache_str.clone();
    })
    .await;
    let r = explain(first.addrs[0], "http://example.test/").await;
    assert_eq!(r["raw"], "PROXY 127.0.0.1:7777", "{r}");
    first.shutdown();
    assert!(cache.exists(), "the script was kept on disk");

    // restart with the same configuration while the PAC server cannot be reached
    online.store(false, Ordering::SeqCst);
    let restarted = harness::start_proxy(|c| {
        base(c, &url);
        c.pac.cache_file = cache_str.clone();
    })
    .await;
    let r = explain(restarted.addrs[0], "http://example.test/").await;
    assert_eq!(r["pac"]["method"], "disk", "{r}");
    assert_eq!(r["pac"]["source"], cache_str.as_str(), "{r}");
    assert_eq!(r["raw"], "PROXY 127.0.0.1:7777", "{r}");
    assert_eq!(r["decision"][0], "http://127.0.0.1:7777", "{r}");

    // a copy kept for another PAC source is not used for this one
    let other = format!("http://127.0.0.1:{}/other.pac", free_port());
    let elsewhere = harness::start_proxy(|c| {
        base(c, &other);
        c.pac.cache_file = cache_str.clone();
    })
    .await;
    let r = explain(elsewhere.addrs[0], "http://example.test/").await;
    assert_eq!(r["raw"], serde_json::Value::Null, "{r}");
    assert_eq!(r["decision"], serde_json::json!(["DIRECT"]), "{r}");
}
