//! Test PKI and peers: a CA minted with rcgen, leaves with chosen defects, real
//! tokio-rustls servers on 127.0.0.1:0, and a fake CRL downloader.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use waypost_tls::{CrlDownload, CrlFetch, TlsConfig, TlsErrorKind, TlsPolicy};

pub const HOST: &str = "origin.test";

pub struct TestCa {
    pub issuer: Issuer<'static, KeyPair>,
    pub der: CertificateDer<'static>,
    pub pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    pub fn crl(&self, revoked_serials: &[u64]) -> Vec<u8> {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked_serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: now - time::Duration::hours(1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).unwrap().der().to_vec()
    }
}

/// What to put in a leaf.
pub struct Leaf {
    pub names: Vec<String>,
    pub expired: bool,
    pub eku: ExtendedKeyUsagePurpose,
    pub serial: u64,
    pub crl_url: Option<String>,
    pub cn: String,
}

impl Default for Leaf {
    fn default() -> Self {
        Leaf {
            names: vec![HOST.into()],
            expired: false,
            eku: ExtendedKeyUsagePurpose::ServerAuth,
            serial: 1000,
            crl_url: None,
            cn: "origin".into(),
        }
    }
}

pub struct Minted {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    pub fn signed_by(&self, ca: &TestCa) -> Minted {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(self.names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, self.cn.clone());
        params.extended_key_usages = vec![self.eku.clone()];
        params.serial_number = Some(SerialNumber::from(self.serial));
        params.use_authority_key_identifier_extension = true;
        if self.expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        if let Some(u) = &self.crl_url {
            params.crl_distribution_points = vec![CrlDistributionPoint {
                uris: vec![u.clone()],
            }];
        }
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        Minted {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn server_config(
    m: &Minted,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ServerConfig> {
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(m.chain.clone(), m.key.clone_key())
        .unwrap();
    Arc::new(cfg)
}

pub fn server_config_requiring_client_cert(m: &Minted, client_ca: &TestCa) -> Arc<ServerConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(client_ca.der.clone()).unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(m.chain.clone(), m.key.clone_key())
        .unwrap();
    Arc::new(cfg)
}

/// A TLS server that answers one line per connection: `client=<subject of client cert or none>`.
pub async fn serve(cfg: Arc<ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let who = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| waypost_tls::certinfo::subject(&c[0]))
                    .unwrap_or_else(|| "none".into());
                let mut buf = [0u8; 64];
                let _ = tls.read(&mut buf).await;
                let _ = tls.write_all(format!("client={who}\n").as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

/// Connects through `waypost_tls::connect`, says hello and returns the server's line, or the
/// classified error from whichever step failed.
pub async fn exchange(policy: &TlsPolicy, addr: SocketAddr) -> Result<String, TlsErrorKind> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = waypost_tls::connect(policy, HOST, tcp, &[])
        .await
        .map_err(|e| e.kind)?;
    tls.write_all(b"hi\n")
        .await
        .map_err(|e| waypost_tls::classify(&e))?;
    let mut out = String::new();
    tls.read_to_string(&mut out)
        .await
        .map_err(|e| waypost_tls::classify(&e))?;
    Ok(out)
}

/// Files a test writes (CA bundles, client keys, CRLs), removed at drop.
pub struct Files(pub tempfile::TempDir);

impl Files {
    pub fn new() -> Files {
        Files(tempfile::tempdir().unwrap())
    }
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

/// A config trusting only `ca` (no system roots).
pub fn config_trusting(files: &Files, ca: &TestCa) -> TlsConfig {
    TlsConfig {
        use_system_roots: false,
        ca_files: vec![files.write("ca.pem", ca.pem.as_bytes())],
        ..TlsConfig::default()
    }
}

pub fn exception(hosts: &[&str], allow: &[&str]) -> waypost_tls::config::ExceptionConfig {
    waypost_tls::config::ExceptionConfig {
        hosts: hosts.iter().map(|s| s.to_string()).collect(),
        allow: allow.iter().map(|s| s.to_string()).collect(),
    }
}

/// A CRL downloader for tests: serves fixed bodies by URL (any other URL fails as a refused
/// connection would), or never answers; counts the downloads asked of it.
#[derive(Default)]
pub struct FakeCrlFetch {
    pub bodies: HashMap<String, Vec<u8>>,
    pub hang: bool,
    pub hits: AtomicUsize,
}

impl FakeCrlFetch {
    pub fn serving(url: &str, body: Vec<u8>) -> Arc<FakeCrlFetch> {
        Arc::new(FakeCrlFetch {
            bodies: HashMap::from([(url.to_string(), body)]),
            ..FakeCrlFetch::default()
        })
    }
}

impl CrlFetch for FakeCrlFetch {
    fn get(&self, url: String, _max: usize) -> CrlDownload {
        self.hits.fetch_add(1, Ordering::SeqCst);
        if self.hang {
            return Box::pin(std::future::pending());
        }
        let answer = self
            .bodies
            .get(&url)
            .cloned()
            .ok_or_else(|| format!("connect to {url}: connection refused"));
        Box::pin(async move { answer })
    }
}
