//! `connect`: one TLS handshake under the policy, over any byte stream (a TCP socket, or a
//! tunnel through an upstream proxy). It captures the peer certificate's subject for the
//! caller's log line, classifies failures, counts handshakes, and, when revocation checking
//! is on, fetches CRLs the handshake could not find cached and checks again before the
//! stream is handed out (nothing has been sent on it yet).

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, ProtocolVersion, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::certinfo;
use crate::error::{classify, TlsError, TlsErrorKind};
use crate::policy::TlsPolicy;
use crate::settings::ConnSettings;
use crate::verifier::{to_rustls, CrlMode, PolicyVerifier};

/// Delegates to the policy verifier and remembers the subject it saw.
#[derive(Debug)]
struct Capturing {
    inner: PolicyVerifier,
    subject: Arc<Mutex<Option<String>>>,
}

impl ServerCertVerifier for Capturing {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.subject.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(certinfo::subject(end_entity));
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn version_label(v: Option<ProtocolVersion>) -> &'static str {
    match v {
        Some(ProtocolVersion::TLSv1_3) => "1.3",
        Some(ProtocolVersion::TLSv1_2) => "1.2",
        Some(_) => "other",
        None => "none",
    }
}

/// Opens TLS to `host` over `io`, offering `alpn`, under `policy` with the settings of its
/// `[tls]` lists ([`TlsPolicy::settings_for`]).
pub async fn connect<IO>(
    policy: &TlsPolicy,
    host: &str,
    io: IO,
    alpn: &[&[u8]],
) -> Result<TlsStream<IO>, TlsError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    connect_with(policy, host, io, alpn, &policy.settings_for(host)).await
}

/// Opens TLS to `host` over `io`, offering `alpn`, under `policy` with `settings` (the
/// caller's for this destination).
pub async fn connect_with<IO>(
    policy: &TlsPolicy,
    host: &str,
    io: IO,
    alpn: &[&[u8]],
    settings: &ConnSettings,
) -> Result<TlsStream<IO>, TlsError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let fail = |kind: TlsErrorKind, subject: Option<String>, source: io::Error| {
        policy.metrics().handshake(kind.as_str(), "none");
        TlsError {
            kind,
            host: host.to_string(),
            subject,
            source,
        }
    };
    let name = ServerName::try_from(bare.to_string()).map_err(|e| {
        fail(
            TlsErrorKind::Other,
            None,
            io::Error::new(io::ErrorKind::InvalidInput, e),
        )
    })?;
    let subject = Arc::new(Mutex::new(None));
    let mut cfg = (*policy.config_for(settings, alpn, CrlMode::Inline)).clone();
    let verifier = policy.verifier(settings, CrlMode::Deferred);
    cfg.dangerous()
        .set_certificate_verifier(Arc::new(Capturing {
            inner: verifier,
            subject: subject.clone(),
        }));
    let taken =
        |s: &Arc<Mutex<Option<String>>>| s.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let stream = match TlsConnector::from(Arc::new(cfg))
        .connect(name.clone(), io)
        .await
    {
        Ok(s) => s,
        Err(e) => return Err(fail(classify(&e), taken(&subject), e)),
    };
    if settings.check_revocation {
        let conn = stream.get_ref().1;
        if let Some((ee, rest)) = conn.peer_certificates().and_then(|c| c.split_first()) {
            let (ee, rest) = (ee.clone().into_owned(), rest.to_vec());
            policy.prefetch_crls(&ee).await;
            if let Err(e) = policy.verifier(settings, CrlMode::Inline).evaluate(
                &ee,
                &rest,
                &name,
                UnixTime::now(),
                CrlMode::Inline,
            ) {
                let err = to_rustls(e);
                let kind = crate::error::classify_rustls(&err);
                return Err(fail(
                    kind,
                    Some(certinfo::subject(&ee)),
                    io::Error::new(io::ErrorKind::InvalidData, err),
                ));
            }
        }
    }
    policy
        .metrics()
        .handshake("ok", version_label(stream.get_ref().1.protocol_version()));
    Ok(stream)
}
