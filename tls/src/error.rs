//! TLS failures as a closed set of kinds, each with the exact name the proxy puts in the
//! `X-Waypost-Error` header of its 502, and `classify`, which finds the kind for any error
//! that wraps a rustls error (directly, inside an `io::Error`, or in a source chain).
//!
//! Revocation problems (revoked, status unknown, stale CRL) all report `tls-revoked`: the
//! header names the check that failed, the log line says which case it was.

use std::fmt;
use std::io;

use rustls::{AlertDescription, CertificateError};

/// What kind of TLS failure happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsErrorKind {
    /// The chain does not lead to a trusted root.
    UnknownCa,
    /// Expired or not yet valid.
    CertExpired,
    /// The certificate is not valid for the host name.
    NameMismatch,
    /// Not a server certificate (extended key usage, or a CA certificate as leaf).
    WrongUsage,
    /// Revoked, or the revocation status could not be established under a `fail` policy.
    Revoked,
    /// Protocol failure: no common version or cipher suite, bad messages, alerts.
    Protocol,
    /// The server wanted a client certificate (none, or one it refused).
    ClientCertRequired,
    /// Signed with an algorithm considered weak (SHA-1, MD5).
    WeakSignature,
    /// Anything else (I/O during the handshake, bad signature, malformed certificate).
    Other,
}

impl TlsErrorKind {
    /// Every kind.
    pub const ALL: [TlsErrorKind; 9] = [
        TlsErrorKind::UnknownCa,
        TlsErrorKind::CertExpired,
        TlsErrorKind::NameMismatch,
        TlsErrorKind::WrongUsage,
        TlsErrorKind::Revoked,
        TlsErrorKind::Protocol,
        TlsErrorKind::ClientCertRequired,
        TlsErrorKind::WeakSignature,
        TlsErrorKind::Other,
    ];

    /// The value for the `X-Waypost-Error` header.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsErrorKind::UnknownCa => "tls-unknown-ca",
            TlsErrorKind::CertExpired => "tls-cert-expired",
            TlsErrorKind::NameMismatch => "tls-name-mismatch",
            TlsErrorKind::WrongUsage => "tls-wrong-usage",
            TlsErrorKind::Revoked => "tls-revoked",
            TlsErrorKind::Protocol => "tls-protocol",
            TlsErrorKind::ClientCertRequired => "tls-client-cert-required",
            TlsErrorKind::WeakSignature => "tls-weak-signature",
            TlsErrorKind::Other => "tls-other",
        }
    }
}

impl fmt::Display for TlsErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies an error: a `rustls::Error`, an `io::Error` wrapping one, or any error whose
/// source chain contains one. Other I/O errors are `tls-other`.
pub fn classify(err: &(dyn std::error::Error + 'static)) -> TlsErrorKind {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return classify_rustls(r);
        }
        if let Some(t) = e.downcast_ref::<TlsError>() {
            return t.kind;
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if let Some(inner) = io.get_ref() {
                cur = Some(inner);
                continue;
            }
        }
        cur = e.source();
    }
    TlsErrorKind::Other
}

/// Classifies a rustls error.
pub fn classify_rustls(err: &rustls::Error) -> TlsErrorKind {
    use rustls::Error as R;
    match err {
        R::InvalidCertificate(ce) => classify_cert(ce),
        R::InvalidCertRevocationList(_) => TlsErrorKind::Revoked,
        R::AlertReceived(a) => classify_alert(*a),
        R::NoCertificatesPresented
        | R::InappropriateMessage { .. }
        | R::InappropriateHandshakeMessage { .. }
        | R::InvalidMessage(_)
        | R::PeerIncompatible(_)
        | R::PeerMisbehaved(_)
        | R::DecryptError
        | R::PeerSentOversizedRecord
        | R::NoApplicationProtocol
        | R::UnsupportedNameType => TlsErrorKind::Protocol,
        _ => TlsErrorKind::Other,
    }
}

#[allow(deprecated)]
fn classify_cert(ce: &CertificateError) -> TlsErrorKind {
    use CertificateError as C;
    match ce {
        C::UnknownIssuer => TlsErrorKind::UnknownCa,
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            TlsErrorKind::CertExpired
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => TlsErrorKind::NameMismatch,
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => TlsErrorKind::WrongUsage,
        C::Revoked
        | C::UnknownRevocationStatus
        | C::ExpiredRevocationList
        | C::ExpiredRevocationListContext { .. } => TlsErrorKind::Revoked,
        C::UnsupportedSignatureAlgorithm
        | C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => TlsErrorKind::WeakSignature,
        _ => TlsErrorKind::Other,
    }
}

/// An alert from the server. Certificate complaints from a server can only be about the
/// client certificate (missing, or one it refused).
fn classify_alert(a: AlertDescription) -> TlsErrorKind {
    use AlertDescription as A;
    match a {
        A::CertificateRequired
        | A::BadCertificate
        | A::UnsupportedCertificate
        | A::CertificateRevoked
        | A::CertificateExpired
        | A::CertificateUnknown
        | A::UnknownCA
        | A::AccessDenied => TlsErrorKind::ClientCertRequired,
        _ => TlsErrorKind::Protocol,
    }
}

/// A failed TLS connection attempt, classified, with what the log line needs.
#[derive(Debug, thiserror::Error)]
#[error("TLS with {host} failed: {kind}")]
pub struct TlsError {
    /// The classified kind.
    pub kind: TlsErrorKind,
    /// The host the connection was for.
    pub host: String,
    /// The peer certificate's subject, when one was received.
    pub subject: Option<String>,
    /// The underlying error.
    #[source]
    pub source: io::Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_the_exact_header_names() {
        let names: Vec<_> = TlsErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "tls-unknown-ca",
                "tls-cert-expired",
                "tls-name-mismatch",
                "tls-wrong-usage",
                "tls-revoked",
                "tls-protocol",
                "tls-client-cert-required",
                "tls-weak-signature",
                "tls-other"
            ]
        );
    }

    #[test]
    fn rustls_errors_inside_io_errors_are_classified() {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert_eq!(classify(&e), TlsErrorKind::UnknownCa);
        let e = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        assert_eq!(classify(&e), TlsErrorKind::ClientCertRequired);
        assert_eq!(
            classify(&io::Error::from(io::ErrorKind::UnexpectedEof)),
            TlsErrorKind::Other
        );
    }
}
