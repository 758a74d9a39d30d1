//! TLS for connections waypost originates (HTTPS origins and HTTPS proxies).
//!
//! One rustls client configuration built from the system's trust store (webpki roots as a
//! fallback) and the connect helper that maps TLS failures to error kinds for `X-Waypost-Error`.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::{ErrorKind, ProxyError};
use crate::target::Host;

#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
}

impl TlsClient {
    pub fn new(extra_roots: &[rustls::pki_types::CertificateDer<'static>]) -> TlsClient {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for c in extra_roots {
            let _ = roots.add(c.clone());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            // The ring provider supports the default versions; this cannot fail.
            .expect("ring supports TLS 1.2 and 1.3");
        TlsClient { connector: TlsConnector::from(Arc::new(config)) }
    }

    pub async fn connect(&self, host: &Host, tcp: TcpStream) -> Result<TlsStream<TcpStream>, ProxyError> {
        let name = match host {
            Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
            Host::Name(n) => ServerName::try_from(n.clone())
                .map_err(|_| ProxyError::new(ErrorKind::Tls("tls-other"), format!("invalid TLS server name {n}")))?,
        };
        self.connector
            .connect(name, tcp)
            .await
            .map_err(|e| ProxyError::new(ErrorKind::Tls(classify(&e)), format!("TLS with {host} failed: {e}")))
    }
}

/// The `X-Waypost-Error` kind of a TLS failure.
pub fn classify(e: &std::io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    let Some(err) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) else {
        return "tls-other";
    };
    match err {
        Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => "tls-unknown-ca",
            CertificateError::Expired | CertificateError::NotValidYet => "tls-cert-expired",
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => "tls-name-mismatch",
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => "tls-wrong-usage",
            CertificateError::Revoked => "tls-revoked",
            CertificateError::ExpiredContext { .. } | CertificateError::NotValidYetContext { .. } => "tls-cert-expired",
            _ => "tls-other",
        },
        Error::PeerIncompatible(_) | Error::AlertReceived(rustls::AlertDescription::ProtocolVersion) => "tls-protocol",
        Error::AlertReceived(rustls::AlertDescription::CertificateRequired)
        | Error::AlertReceived(rustls::AlertDescription::HandshakeFailure) => "tls-client-cert-required",
        _ => "tls-other",
    }
}
