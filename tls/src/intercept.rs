//! The local interception CA: created once by `waypost ca init` (key file mode 0600, never
//! overwritten), loaded at start, and used to mint short-lived leaf certificates per host
//! for intercepted CONNECT tunnels, cached per host in a bounded map.
//!
//! This module owns the CA files and the leaf cache; it decides nothing about which hosts
//! are intercepted (that is `TlsPolicy::intercepts`).

use std::collections::{HashMap, VecDeque};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::metrics::Metrics;

/// File name of the CA private key inside the CA directory.
pub const KEY_FILE: &str = "ca.key";
/// File name of the CA certificate inside the CA directory.
pub const CERT_FILE: &str = "ca.pem";

/// What can go wrong with the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// `init` found an existing file and will not overwrite it.
    #[error(
        "{0} already exists; refusing to overwrite an existing CA (delete it first to start over)"
    )]
    Exists(PathBuf),
    /// A file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation or parsing failed.
    #[error("certificate generation failed")]
    Cert(#[from] rcgen::Error),
    /// rustls refused the minted certificate.
    #[error("TLS setup failed")]
    Tls(#[from] rustls::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The local CA and its leaf cache.
pub struct Ca {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    not_after: i64,
    ttl: Duration,
    capacity: usize,
    cache: Mutex<LeafCache>,
    metrics: Metrics,
}

#[derive(Default)]
struct LeafCache {
    map: HashMap<String, (Arc<ServerConfig>, Instant)>,
    order: VecDeque<String>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("not_after", &self.not_after)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => CaError::Exists(path.to_path_buf()),
        _ => CaError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io_err(path))
}

impl Ca {
    /// Creates a CA in `dir` (created if missing): `ca.key` (mode 0600) and `ca.pem`.
    /// Refuses if either file exists. Returns the certificate path.
    pub fn init(dir: &Path) -> Result<PathBuf, CaError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let (key_path, cert_path) = (dir.join(KEY_FILE), dir.join(CERT_FILE));
        for p in [&key_path, &cert_path] {
            if p.exists() {
                return Err(CaError::Exists(p.clone()));
            }
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "waypost local interception CA");
        dn.push(DnType::OrganizationName, "waypost");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key)?;
        write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_new(&cert_path, cert.pem().as_bytes(), 0o644)?;
        Ok(cert_path)
    }

    /// Loads the CA from `dir`, with leaves living 24h and up to 1000 cached.
    pub fn load(dir: &Path) -> Result<Ca, CaError> {
        Ca::load_with(
            dir,
            Duration::from_secs(24 * 3600),
            1000,
            Metrics::detached(),
        )
    }

    pub(crate) fn load_with(
        dir: &Path,
        ttl: Duration,
        capacity: usize,
        metrics: Metrics,
    ) -> Result<Ca, CaError> {
        let (key_path, cert_path) = (dir.join(KEY_FILE), dir.join(CERT_FILE));
        let key_pem = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
        let key = KeyPair::from_pem(&key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
        let cert_der = crate::material::read_certs(&cert_path)
            .map_err(|m| CaError::Io {
                path: cert_path.clone(),
                source: std::io::Error::other(m),
            })?
            .swap_remove(0); // read_certs never returns an empty list
        let not_after = crate::certinfo::validity(&cert_der).map_or(0, |(_, na)| na);
        metrics.ca_expiry(crate::verifier::days_until(not_after));
        Ok(Ca {
            cert_pem,
            cert_der,
            issuer,
            not_after,
            ttl,
            capacity: capacity.max(1),
            cache: Mutex::default(),
            metrics,
        })
    }

    /// The CA certificate in PEM, to install in client trust stores.
    pub fn export_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate in DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// A server config presenting a leaf for `host` signed by this CA (ALPN h2, http/1.1),
    /// from the cache while the leaf has more than a tenth of its life left.
    pub fn server_config_for(&self, host: &str) -> Result<Arc<ServerConfig>, CaError> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let now = Instant::now();
        if let Some((cfg, fresh_until)) = self.lock().map.get(&host) {
            if *fresh_until > now {
                self.metrics.cache_hit();
                return Ok(cfg.clone());
            }
        }
        let cfg = Arc::new(self.mint(&host)?);
        self.metrics.minted();
        let mut cache = self.lock();
        if !cache.map.contains_key(&host) {
            cache.order.push_back(host.clone());
        }
        cache
            .map
            .insert(host, (cfg.clone(), now + self.ttl - self.ttl / 10));
        while cache.map.len() > self.capacity {
            let Some(old) = cache.order.pop_front() else {
                break;
            };
            cache.map.remove(&old);
        }
        Ok(cfg)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LeafCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mint(&self, host: &str) -> Result<ServerConfig, CaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![host.to_string()])?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        let ttl = time::Duration::try_from(self.ttl).unwrap_or(time::Duration::days(1));
        params.not_after = now + ttl;
        let leaf = params.signed_by(&key, &self.issuer)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), self.cert_der.clone()], key_der)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(cfg)
    }
}
