//! Reading the files the TLS config names: trust anchors (system store, extra PEM bundles,
//! webpki-roots as the fallback), CRL files and client certificate/key pairs. Each failure is
//! added to the problem list under the key that named the file, so one run reports all.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::TrustAnchor;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use webpki::OwnedCertRevocationList;

use crate::config::{Problems, TlsConfig};
use crate::revocation::parse_crl;

/// A client certificate ready for rustls, with its notAfter for the expiry gauge.
#[derive(Clone, Debug)]
pub(crate) struct ClientCert {
    pub key: Arc<CertifiedKey>,
    pub not_after: Option<i64>,
}

fn io_msg(path: &Path, e: &std::io::Error) -> String {
    format!("cannot read {}: {e}", path.display())
}

fn pem_err(path: &Path, e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io_msg(path, &io),
        other => format!("{} is not valid PEM: {other}", path.display()),
    }
}

/// Loads certificates from one PEM file.
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| pem_err(path, e))?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(path, e))?;
    if certs.is_empty() {
        return Err(format!("{} holds no CERTIFICATE block", path.display()));
    }
    Ok(certs)
}

/// Loads a private key from one PEM file.
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            format!(
                "{} holds no PRIVATE KEY block (PKCS#8, PKCS#1 or SEC1)",
                path.display()
            )
        }
        other => pem_err(path, other),
    })
}

/// Trust anchors per config; the count of system roots is returned for the log.
pub(crate) fn trust_anchors(cfg: &TlsConfig, problems: &mut Problems) -> Vec<TrustAnchor<'static>> {
    let mut anchors = Vec::new();
    if cfg.use_system_roots {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "skipping part of the system certificate store");
        }
        for c in &found.certs {
            if let Ok(a) = webpki::anchor_from_trusted_cert(c) {
                anchors.push(a.to_owned());
            }
        }
        if anchors.is_empty() {
            tracing::warn!("system certificate store is empty; using the bundled Mozilla roots");
            anchors.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
    }
    for (i, path) in cfg.ca_files.iter().enumerate() {
        match read_certs(path) {
            Ok(certs) => {
                for (j, c) in certs.iter().enumerate() {
                    match webpki::anchor_from_trusted_cert(c) {
                        Ok(a) => anchors.push(a.to_owned()),
                        Err(e) => problems.push(
                            format!("tls.ca_files[{i}]"),
                            format!(
                                "certificate #{} in {} is unusable as a trust anchor: {e}",
                                j + 1,
                                path.display()
                            ),
                        ),
                    }
                }
            }
            Err(m) => problems.push(format!("tls.ca_files[{i}]"), m),
        }
    }
    if anchors.is_empty() && problems.0.is_empty() {
        problems.push(
            "tls.use_system_roots",
            "no trust anchors: enable use_system_roots or list ca_files",
        );
    }
    anchors
}

/// CRLs from `tls.crl_files`.
pub(crate) fn crl_files(cfg: &TlsConfig, problems: &mut Problems) -> Vec<OwnedCertRevocationList> {
    let mut out = Vec::new();
    for (i, path) in cfg.crl_files.iter().enumerate() {
        match std::fs::read(path) {
            Ok(bytes) => match parse_crl(&bytes) {
                Ok(c) => out.push(c),
                Err(m) => problems.push(
                    format!("tls.crl_files[{i}]"),
                    format!("{}: {m}", path.display()),
                ),
            },
            Err(e) => problems.push(format!("tls.crl_files[{i}]"), io_msg(path, &e)),
        }
    }
    out
}

/// Client certificates from `tls.client_certs`, then those of the scopes (each under its own
/// key path), `None` for entries that failed.
pub(crate) fn client_certs(cfg: &TlsConfig, problems: &mut Problems) -> Vec<Option<ClientCert>> {
    let provider = rustls::crypto::ring::default_provider();
    let mut out = Vec::new();
    let legacy = cfg
        .client_certs
        .iter()
        .enumerate()
        .map(|(i, cc)| (format!("tls.client_certs[{i}]"), cc));
    let scoped = cfg.scope_client_certs.iter().map(|(p, cc)| (p.clone(), cc));
    for (path, cc) in legacy.chain(scoped) {
        let certs = read_certs(&cc.cert)
            .map_err(|m| problems.push(format!("{path}.cert"), m))
            .ok();
        let key = read_key(&cc.key)
            .map_err(|m| problems.push(format!("{path}.key"), m))
            .ok();
        let (Some(certs), Some(key)) = (certs, key) else {
            out.push(None);
            continue;
        };
        // read_certs never returns an empty list, so the leaf is there.
        let not_after = crate::certinfo::validity(&certs[0]).map(|(_, na)| na);
        match CertifiedKey::from_der(certs, key, &provider) {
            Ok(k) => out.push(Some(ClientCert {
                key: Arc::new(k),
                not_after,
            })),
            Err(e) => {
                problems.push(
                    format!("{path}.key"),
                    format!("{} does not fit the certificate: {e}", cc.key.display()),
                );
                out.push(None);
            }
        }
    }
    out
}
