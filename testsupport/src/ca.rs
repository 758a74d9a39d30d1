//! A test PKI: CAs minted with rcgen, leaves with chosen defects (expired, wrong usage, a CRL
//! distribution point), rustls server configs for them, and [`Files`] for the PEM files a test
//! hands to the code under test.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use time::OffsetDateTime;

/// The name a [`Leaf::default`] is for.
pub const HOST: &str = "origin.test";

/// A CA that signs leaves and CRLs.
pub struct TestCa {
    pub issuer: Issuer<'static, KeyPair>,
    pub der: CertificateDer<'static>,
    pub pem: String,
}

impl TestCa {
    /// A self-signed CA with common name `name` (may sign certificates and CRLs).
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("generate a CA key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        TestCa {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A DER CRL, valid from an hour ago for a day, revoking `revoked_serials`.
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
        params
            .signed_by(&self.issuer)
            .expect("sign the CRL")
            .der()
            .to_vec()
    }
}

/// What to put in a leaf; `Leaf { expired: true, ..Leaf::default() }.signed_by(&ca)`.
pub struct Leaf {
    /// Subject alternative names (DNS names or IP addresses).
    pub names: Vec<String>,
    /// Valid in 2020 only.
    pub expired: bool,
    /// `ServerAuth` for servers, `ClientAuth` for client certificates.
    pub eku: ExtendedKeyUsagePurpose,
    pub serial: u64,
    pub crl_url: Option<String>,
    pub cn: String,
}

impl Default for Leaf {
    /// A server leaf for [`HOST`], serial 1000, valid now.
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

/// A minted certificate with its key, as rustls and as PEM files want them.
pub struct Minted {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    /// A server leaf for `names` with the first name as common name.
    pub fn server(names: &[&str]) -> Leaf {
        Leaf {
            names: names.iter().map(|s| s.to_string()).collect(),
            cn: names.first().copied().unwrap_or("server").to_string(),
            ..Leaf::default()
        }
    }

    /// A client-certificate leaf with common name `cn`.
    pub fn client(cn: &str, names: &[&str]) -> Leaf {
        Leaf {
            names: names.iter().map(|s| s.to_string()).collect(),
            cn: cn.to_string(),
            eku: ExtendedKeyUsagePurpose::ClientAuth,
            ..Leaf::default()
        }
    }

    pub fn signed_by(&self, ca: &TestCa) -> Minted {
        let key = KeyPair::generate().expect("generate a leaf key");
        let mut params = CertificateParams::new(self.names.clone()).expect("valid leaf names");
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
        let cert = params.signed_by(&key, &ca.issuer).expect("sign the leaf");
        Minted {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A self-signed certificate for `names` (no CA: what an unknown issuer looks like).
pub fn self_signed(names: &[&str]) -> Minted {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let cert = rcgen::generate_simple_self_signed(names).expect("self-sign");
    Minted {
        chain: vec![cert.cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der())),
        cert_pem: cert.cert.pem(),
        key_pem: cert.signing_key.serialize_pem(),
    }
}

impl Minted {
    /// A server config for this certificate: rustls' default versions, no client auth.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        server_config(self, rustls::DEFAULT_VERSIONS)
    }
}

/// rustls' ring provider (the one waypost uses).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config for `m` speaking only `versions`, without client auth.
pub fn server_config(
    m: &Minted,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ServerConfig> {
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("the ring provider supports these versions")
        .with_no_client_auth()
        .with_single_cert(m.chain.clone(), m.key.clone_key())
        .expect("a usable server certificate");
    Arc::new(cfg)
}

/// A server config for `m` that refuses clients without a certificate from `client_ca`.
pub fn server_config_requiring_client_cert(m: &Minted, client_ca: &TestCa) -> Arc<ServerConfig> {
    Arc::new(with_client_verifier(m, client_ca, false))
}

/// A server config for `m` that asks for a certificate from `client_ca` but serves clients
/// without one too; offers `alpn` (e.g. `[b"h2", b"http/1.1"]`).
pub fn server_config_asking_client_cert(
    m: &Minted,
    client_ca: &TestCa,
    alpn: &[&[u8]],
) -> Arc<ServerConfig> {
    let mut cfg = with_client_verifier(m, client_ca, true);
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

fn with_client_verifier(m: &Minted, client_ca: &TestCa, optional: bool) -> ServerConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(client_ca.der.clone())
        .expect("the test CA is a valid root");
    let mut verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
    if optional {
        verifier = verifier.allow_unauthenticated();
    }
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions")
        .with_client_cert_verifier(verifier.build().expect("a client verifier"))
        .with_single_cert(m.chain.clone(), m.key.clone_key())
        .expect("a usable server certificate")
}

/// Files a test writes (CA bundles, keys, CRLs) in a temp dir removed at drop.
pub struct Files(pub tempfile::TempDir);

impl Files {
    pub fn new() -> Files {
        Files(tempfile::tempdir().expect("create a temp dir"))
    }

    /// Writes `bytes` to `name` in the dir; returns the path.
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// Where `name` is (or would be) in the dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

impl Default for Files {
    fn default() -> Self {
        Files::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_signed_by_the_ca_makes_server_configs() {
        let ca = TestCa::new("test ca");
        let leaf = Leaf::server(&["a.test", "127.0.0.1"]).signed_by(&ca);
        assert!(leaf.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let _ = leaf.server_config();
        let _ = server_config_requiring_client_cert(&leaf, &ca);
        let cfg = server_config_asking_client_cert(&leaf, &ca, &[b"h2"]);
        assert_eq!(cfg.alpn_protocols, [b"h2".to_vec()]);
        assert!(!ca.crl(&[7]).is_empty());
        let _ = self_signed(&["localhost"]).server_config();
    }
}
