//! Interception of CONNECT tunnels and the rules for tunnels not intercepted, driven by real
//! curl: a local waypost CA minting leaves, HTTPS origins with certificates from a separate test
//! CA (one expired), client certificates added by waypost, SNI deny rules and the CONNECT port
//! list.

use crate::support;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::ExtendedKeyUsagePurpose;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::ServerConfig;
use support::harness;
use tokio::net::TcpListener;
use waypost::config::raw::RawConfig;
use waypost_testsupport::ca::{self, Files, Leaf, Minted, TestCa};
use waypost_testsupport::curl::Curl;
use waypost_testsupport::eventually;
use waypost_tls::config::{ClientCertConfig, InterceptConfig, SniRulesConfig};

/// The test PKI: one CA for origins and client certificates, its certificate and every leaf
/// written to a temp dir.
struct Pki {
    ca: TestCa,
    files: Files,
    ca_file: PathBuf,
    next_serial: Cell<u64>,
}

const ORIGIN_CA: &str = "waypost test origin CA";
const CLIENT_CN: &str = "waypost test client";

impl Pki {
    fn new() -> Pki {
        let ca = TestCa::new(ORIGIN_CA);
        let files = Files::new();
        let ca_file = files.write("origin-ca.pem", &ca.pem);
        Pki {
            ca,
            files,
            ca_file,
            next_serial: Cell::new(1000),
        }
    }

    /// A leaf for `names` (server or client usage), optionally long expired; also written to
    /// `<file>.pem` / `<file>.key`.
    fn leaf(&self, file: &str, cn: &str, names: &[&str], client: bool, expired: bool) -> Minted {
        let serial = self.next_serial.get();
        self.next_serial.set(serial + 1);
        let leaf = Leaf {
            names: names.iter().map(|s| s.to_string()).collect(),
            cn: cn.to_string(),
            eku: if client {
                ExtendedKeyUsagePurpose::ClientAuth
            } else {
                ExtendedKeyUsagePurpose::ServerAuth
            },
            expired,
            serial,
            ..Leaf::default()
        }
        .signed_by(&self.ca);
        self.files.write(&format!("{file}.pem"), &leaf.cert_pem);
        self.files.write(&format!("{file}.key"), &leaf.key_pem);
        leaf
    }

    fn path(&self, name: &str) -> PathBuf {
        self.files.path(name)
    }

    /// A server config for `leaf`, offering h2 and http/1.1, asking for (not requiring) a
    /// client certificate from this PKI so tunnels without one still reach it.
    fn server_config(&self, leaf: &Minted) -> Arc<ServerConfig> {
        ca::server_config_asking_client_cert(leaf, &self.ca, &[b"h2", b"http/1.1"])
    }
}

/// An HTTPS origin (HTTP/1.1 or h2 by ALPN) that answers with what it saw, including the
/// subject of the client certificate, and counts connections that sent data or none.
struct HttpsOrigin {
    addr: SocketAddr,
    with_data: Arc<AtomicUsize>,
    without_data: Arc<AtomicUsize>,
    clients: Arc<Mutex<Vec<String>>>,
}

impl HttpsOrigin {
    async fn start(cfg: Arc<ServerConfig>) -> HttpsOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let with_data = Arc::new(AtomicUsize::new(0));
        let without_data = Arc::new(AtomicUsize::new(0));
        let clients = Arc::new(Mutex::new(Vec::new()));
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        let (wd, wod, cl) = (with_data.clone(), without_data.clone(), clients.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, wd, wod, cl) =
                    (acceptor.clone(), wd.clone(), wod.clone(), cl.clone());
                tokio::spawn(async move {
                    let mut first = [0u8; 1];
                    match tcp.peek(&mut first).await {
                        Ok(n) if n > 0 => wd.fetch_add(1, Ordering::SeqCst),
                        _ => return wod.fetch_add(1, Ordering::SeqCst),
                    };
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return 0;
                    };
                    let conn = tls.get_ref().1;
                    let who = conn
                        .peer_certificates()
                        .map(|c| waypost_tls::certinfo::subject(&c[0]))
                        .unwrap_or_else(|| "none".into());
                    cl.lock().unwrap().push(who.clone());
                    let h2 = conn.alpn_protocol() == Some(b"h2");
                    let svc = hyper::service::service_fn(move |req| {
                        let who = who.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(req, &who).await) }
                    });
                    let io = TokioIo::new(tls);
                    if h2 {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, svc)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .await;
                    }
                    0
                });
            }
        });
        HttpsOrigin {
            addr,
            with_data,
            without_data,
            clients,
        }
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.addr.port())
    }
}

async fn answer(req: Request<Incoming>, who: &str) -> Response<waypost::body::Body> {
    let head = format!(
        "{} {} {:?} host={} client={who}",
        req.method(),
        req.uri(),
        req.version(),
        req.headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("-"),
    );
    let body = req.into_body().collect().await.unwrap().to_bytes();
    Response::new(waypost::body::full(format!("{head} body={}\n", body.len())))
}

/// curl's exit code and stdout (stderr appended, for messages).
async fn curl(args: &[&str]) -> (i32, String) {
    let out = Curl::new().args(args).run_async().await;
    (out.exit, out.text())
}

fn resolve_to_loopback(raw: &mut RawConfig, names: &[&str]) {
    let hosts: &mut BTreeMap<String, Vec<String>> = &mut raw.dns.hosts;
    for n in names {
        hosts.insert(n.to_string(), vec!["127.0.0.1".into()]);
    }
}

/// A waypost CA in its own temp dir (kept alive by the returned guard).
fn waypost_ca() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    waypost_tls::Ca::init(&ca_dir).unwrap();
    (dir, ca_dir)
}

fn intercepting(raw: &mut RawConfig, pki: &Pki, ca_dir: &Path, hosts: &[&str]) {
    raw.tls.use_system_roots = false;
    raw.tls.ca_files = vec![pki.ca_file.clone()];
    raw.tls.intercept = InterceptConfig {
        enabled: true,
        hosts: hosts.iter().map(|s| s.to_string()).collect(),
        ca_dir: ca_dir.to_path_buf(),
        ..InterceptConfig::default()
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_trusting_the_waypost_ca_reaches_an_origin_over_http1_and_http2_with_the_added_client_cert(
) {
    let pki = Pki::new();
    let server = pki.leaf("origin", "origin", &["origin.test"], false, false);
    pki.leaf("client", CLIENT_CN, &["client.test"], true, false);
    let origin = HttpsOrigin::start(pki.server_config(&server)).await;
    let (_guard, ca_dir) = waypost_ca();
    let proxy = harness::start_proxy(|c| {
        resolve_to_loopback(c, &["origin.test"]);
        intercepting(c, &pki, &ca_dir, &["origin.test"]);
        c.tls.client_certs = vec![ClientCertConfig {
            hosts: vec!["origin.test".into()],
            cert: pki.path("client.pem"),
            key: pki.path("client.key"),
        }];
    })
    .await;
    let proxy_url = format!("http://{}", proxy.addrs[0]);
    let cacert = ca_dir.join("ca.pem");
    let cacert = cacert.to_str().unwrap();

    let (code, out) = curl(&[
        "--cacert",
        cacert,
        "-x",
        &proxy_url,
        "--http1.1",
        "-w",
        "version=%{http_version}\n%{certs}",
        &origin.url("origin.test", "/over-h1?q=1"),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("GET /over-h1?q=1 HTTP/1.1 host=origin.test:"),
        "{out}"
    );
    assert!(out.contains(&format!("client=CN={CLIENT_CN}")), "{out}");
    assert!(out.contains("version=1.1\n"), "{out}");
    assert!(
        out.contains("waypost local interception CA"),
        "curl saw the minted leaf: {out}"
    );

    let (code, out) = curl(&[
        "--cacert",
        cacert,
        "-x",
        &proxy_url,
        "--http2",
        "-d",
        "hello",
        "-w",
        "version=%{http_version}\n",
        &origin.url("origin.test", "/over-h2"),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("POST /over-h2 HTTP/1.1 host=origin.test:"),
        "{out}"
    );
    assert!(out.contains("body=5\n"), "{out}");
    assert!(out.contains(&format!("client=CN={CLIENT_CN}")), "{out}");
    assert!(
        out.contains("version=2\n"),
        "curl spoke HTTP/2 to waypost: {out}"
    );

    let m = harness::metrics(proxy.addrs[0]).await;
    assert_eq!(
        harness::metric(&m, "waypost_tls_intercept_certs_minted_total"),
        1.0,
        "{m}"
    );
    assert!(
        harness::metric(&m, "waypost_tls_intercept_cert_cache_hits_total") >= 1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intercepted_origin_with_an_expired_certificate_is_refused_even_when_curl_does_not_check(
) {
    let pki = Pki::new();
    let server = pki.leaf("expired", "expired", &["expired.test"], false, true);
    let origin = HttpsOrigin::start(pki.server_config(&server)).await;
    let (_guard, ca_dir) = waypost_ca();
    let proxy = harness::start_proxy(|c| {
        resolve_to_loopback(c, &["expired.test"]);
        intercepting(c, &pki, &ca_dir, &["*.test"]);
    })
    .await;
    let (code, out) = curl(&[
        "-k",
        "-x",
        &format!("http://{}", proxy.addrs[0]),
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-w",
        "status=%{http_code}\n",
        &origin.url("expired.test", "/"),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("status=502"), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("x-waypost-error: tls-cert-expired"),
        "{out}"
    );
    assert!(
        origin.clients.lock().unwrap().is_empty(),
        "no request reached the origin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_not_intercepted_is_tunnelled_with_the_origins_own_certificate() {
    let pki = Pki::new();
    let server = pki.leaf("plain", "plain", &["plain.test"], false, false);
    let origin = HttpsOrigin::start(pki.server_config(&server)).await;
    let (_guard, ca_dir) = waypost_ca();
    let proxy = harness::start_proxy(|c| {
        resolve_to_loopback(c, &["plain.test"]);
        intercepting(c, &pki, &ca_dir, &["origin.test"]);
    })
    .await;
    let proxy_url = format!("http://{}", proxy.addrs[0]);
    let url = origin.url("plain.test", "/untouched");
    let (code, out) = curl(&[
        "--cacert",
        pki.ca_file.to_str().unwrap(),
        "-x",
        &proxy_url,
        "-w",
        "%{certs}",
        &url,
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("GET https://plain.test:"), "{out}");
    assert!(
        out.contains("/untouched HTTP/2.0"),
        "curl spoke h2 to the origin itself: {out}"
    );
    assert!(out.contains("client=none"), "waypost added nothing: {out}");
    assert!(
        out.contains(ORIGIN_CA),
        "curl saw the origin's issuer: {out}"
    );
    assert!(!out.contains("waypost local interception CA"), "{out}");
    let m = harness::metrics(proxy.addrs[0]).await;
    assert_eq!(
        harness::metric(&m, "waypost_tls_intercept_certs_minted_total"),
        0.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_sni_closes_the_tunnel_before_any_byte_reaches_the_origin() {
    let pki = Pki::new();
    let server = pki.leaf(
        "multi",
        "multi",
        &["allowed.test", "blocked.test"],
        false,
        false,
    );
    let origin = HttpsOrigin::start(pki.server_config(&server)).await;
    let proxy = harness::start_proxy(|c| {
        resolve_to_loopback(c, &["allowed.test", "blocked.test"]);
        c.tls.sni_rules = SniRulesConfig {
            deny: vec!["blocked.test".into()],
            ..SniRulesConfig::default()
        };
    })
    .await;
    let proxy_url = format!("http://{}", proxy.addrs[0]);
    let cacert = pki.ca_file.to_str().unwrap().to_string();

    // CONNECT to the allowed name, SNI of the denied one (the CONNECT host alone is judged
    // too: tests/integration/hardening.rs)
    let port = origin.addr.port();
    let connect_to = format!("blocked.test:{port}:allowed.test:{port}");
    let (code, out) = curl(&[
        "--cacert",
        &cacert,
        "-x",
        &proxy_url,
        "--connect-to",
        &connect_to,
        &origin.url("blocked.test", "/"),
    ])
    .await;
    assert_ne!(code, 0, "the denied tunnel must fail: {out}");
    let closed_without_data = eventually(
        Duration::from_secs(5),
        || async { origin.without_data.load(Ordering::SeqCst) },
        |n| *n > 0,
    )
    .await;
    assert_eq!(
        closed_without_data, 1,
        "the upstream was dialled and closed"
    );
    assert_eq!(
        origin.with_data.load(Ordering::SeqCst),
        0,
        "no byte reached the origin"
    );

    let (code, out) = curl(&[
        "--cacert",
        &cacert,
        "-x",
        &proxy_url,
        &origin.url("allowed.test", "/fine"),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("GET https://allowed.test:"), "{out}");
    assert_eq!(origin.with_data.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_list_refuses_a_tunnel_that_is_not_tls() {
    let pki = Pki::new();
    let server = pki.leaf("a", "a", &["allowed.test"], false, false);
    let origin = HttpsOrigin::start(pki.server_config(&server)).await;
    let proxy = harness::start_proxy(|c| {
        resolve_to_loopback(c, &["allowed.test"]);
        c.tls.sni_rules = SniRulesConfig {
            allow: vec!["allowed.test".into()],
            ..SniRulesConfig::default()
        };
    })
    .await;
    let reply = harness::raw(
        proxy.addrs[0],
        format!(
            "CONNECT allowed.test:{0} HTTP/1.1\r\nHost: allowed.test:{0}\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
            origin.addr.port()
        )
        .as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(!reply.contains("GET /"), "nothing was relayed: {reply}");
    assert_eq!(origin.with_data.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn connect_to_a_port_outside_connect_ports_is_refused_with_403() {
    let proxy = harness::start_proxy(|c| {
        c.tls.connect_ports = vec![443];
    })
    .await;
    let reply = harness::raw(
        proxy.addrs[0],
        b"CONNECT 127.0.0.1:8443 HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("x-waypost-error: target-not-allowed"),
        "{reply}"
    );
}

/// Opens an intercepted tunnel by hand: CONNECT, then TLS trusting `ca_pem` with `alpn`.
async fn intercepted_tls(
    proxy: SocketAddr,
    authority: &str,
    ca_pem: &Path,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(proxy).await.unwrap();
    tcp.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tcp.read(&mut byte).await.unwrap(), 1, "CONNECT answered");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca_pem).unwrap())
        .unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let host = authority.rsplit_once(':').unwrap().0.to_string();
    let name = rustls::pki_types::ServerName::try_from(host).unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_intercepted_http2_tunnel_is_closed_after_tunnel_idle() {
    let pki = Pki::new();
    let server = pki.leaf("origin", "origin", &["origin.test"], false, false);
    let origin = HttpsOrigin::start(pki.server_config(&server)).await;
    let (_guard, ca_dir) = waypost_ca();
    let proxy = harness::start_proxy(|c| {
        resolve_to_loopback(c, &["origin.test"]);
        intercepting(c, &pki, &ca_dir, &["origin.test"]);
        c.timeouts.tunnel_idle = "1s".into();
    })
    .await;
    let authority = format!("origin.test:{}", origin.addr.port());
    let tls = intercepted_tls(proxy.addrs[0], &authority, &ca_dir.join("ca.pem"), b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = Request::get(format!("https://{authority}/in-h2"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.starts_with("GET /in-h2 HTTP/1.1 host=origin.test:"),
        "{body}"
    );
    let started = tokio::time::Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), conn).await;
    assert!(ended.is_ok(), "the idle tunnel was closed by waypost");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "not before it was idle"
    );
}
