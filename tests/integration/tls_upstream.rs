//! TLS that waypost originates: HTTPS upstream proxies (real squid https_port) and https://
//! origins under the TLS policy, with failures named in X-Waypost-Error.

use crate::support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    DnType, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::harness::{self, Origin};
use support::peers::Squid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use waypost_testsupport::eventually;

/// A TLS origin on 127.0.0.1 with a self-signed certificate for `localhost`, answering 200.
async fn self_signed_origin() -> SocketAddr {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    tls_origin(vec![cert.cert.der().clone()], key).await
}

/// A TLS origin on 127.0.0.1 presenting `chain`, answering 200 "secure" to one request.
async fn tls_origin(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> SocketAddr {
    harness::tls_origin(chain, key, rustls::DEFAULT_VERSIONS).await
}

/// A CA that signs `localhost` leaves naming one CRL distribution point, and signs that CRL.
struct CrlCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl CrlCa {
    fn new() -> CrlCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "crl test ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).unwrap().pem();
        CrlCa {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A TLS origin for `localhost` whose leaf has `serial` and names `crl_url`.
    async fn origin(&self, serial: u64, crl_url: &str) -> SocketAddr {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.serial_number = Some(SerialNumber::from(serial));
        params.use_authority_key_identifier_extension = true;
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![crl_url.to_string()],
        }];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        tls_origin(vec![cert.der().clone()], key).await
    }

    /// The DER CRL listing `revoked`, valid from 2020 to 2099.
    fn crl(&self, revoked: u64) -> Vec<u8> {
        let params = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2020, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(revoked),
                revocation_time: rcgen::date_time_ymd(2021, 1, 1),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).unwrap().der().to_vec()
    }
}

/// An HTTP/1.1 server answering every GET with `body` in two chunks (`Transfer-Encoding:
/// chunked`, no Content-Length), counting requests.
async fn chunked_server(body: Vec<u8>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (body, counter) = (body.clone(), counter.clone());
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                for chunk in body.chunks(body.len().div_ceil(2)) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
                let _ = sock.write_all(&out).await;
            });
        }
    });
    (addr, hits)
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

#[tokio::test]
async fn crls_are_downloaded_by_the_proxy_s_own_http_client_and_refuse_a_revoked_origin() {
    let ca = CrlCa::new();
    // Chunked: the hand-written HTTP/1.0 reader this replaced kept the chunk framing in the body.
    let (crl_server, hits) = chunked_server(ca.crl(7)).await;
    let crl_url = format!("http://{crl_server}/ca.crl");
    let revoked = ca.origin(7, &crl_url).await;
    let good = ca.origin(8, &crl_url).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let proxy = harness::start_proxy(|c| {
        c.tls.use_system_roots = false;
        c.tls.ca_files = vec![ca_file.clone()];
        c.tls.check_revocation = true;
    })
    .await;
    let (status, headers, _) = harness::get(
        proxy.addrs[0],
        &format!("https://localhost:{}/", revoked.port()),
    )
    .await;
    assert_eq!(status, 502);
    assert_eq!(headers["x-waypost-error"], "tls-revoked");
    let (status, _, body) = harness::get(
        proxy.addrs[0],
        &format!("https://localhost:{}/", good.port()),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "secure"));
    let m = harness::metrics(proxy.addrs[0]).await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "one download serves both");
    assert_eq!(
        harness::metric(&m, r#"waypost_tls_crl_fetches_total{outcome="ok"}"#),
        1.0,
        "{m}"
    );
    assert_eq!(
        harness::metric(
            &m,
            r#"waypost_upstream_connect_attempts_total{outcome="ok"}"#
        ),
        3.0,
        "the dialer made the CRL download's connection besides the two origins':\n{m}"
    );
}
