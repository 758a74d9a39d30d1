//! The server-certificate verifier: full webpki verification, then, when it fails, the
//! failure is classified into exactly one [`Defect`] and accepted only if the host's
//! exception names that defect. Acceptance re-runs verification with that one defect
//! neutralised, so a certificate with two defects needs both allowed; anything that is not a
//! nameable defect (revoked, bad signature, malformed) is never accepted.
//!
//! Neutralising a defect: `cert-date-invalid` verifies at a moment inside the leaf's validity;
//! `unknown-ca` trusts the certificates the server presented (or, when the issuer was not
//! sent, checks the leaf alone); `cert-wrong-usage` accepts any extended key usage;
//! `cert-cn-invalid` skips the name check; `weak-signature` adds RSA with SHA-1. No I/O here:
//! CRLs come from [`CrlStore`], which only starts background fetches.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::TrustAnchor;
use rustls::pki_types::{CertificateDer, ServerName, SignatureVerificationAlgorithm, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeIdIter, KeyUsage};

use crate::certinfo;
use crate::config::{Defect, DefectSet};
use crate::legacy::LEGACY_ALGS;
use crate::metrics::Metrics;
use crate::revocation::CrlStore;

/// How revocation is checked when a distribution point's CRL is not cached yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CrlMode {
    /// Check now with what is cached (unknown status per policy); start a background fetch.
    Inline,
    /// Skip a certificate whose CRL is not cached: the caller (`connect`) fetches it and
    /// checks again before the stream is handed out.
    Deferred,
}

/// Everything shared by all verifiers of one policy.
pub(crate) struct VerifyCore {
    pub roots: Vec<TrustAnchor<'static>>,
    pub crls: Arc<CrlStore>,
    pub check_revocation: bool,
    pub unknown_passes: bool,
    pub metrics: Metrics,
    pub provider: Arc<CryptoProvider>,
}

/// The verifier installed in every client config: one per set of allowed defects.
#[derive(Debug)]
pub(crate) struct PolicyVerifier {
    core: Arc<VerifyCore>,
    allow: DefectSet,
    /// Check CRLs (the connection's setting; `core.check_revocation` is the global one).
    revocation: bool,
    mode: CrlMode,
}

impl std::fmt::Debug for VerifyCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyCore")
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

/// Maps a webpki failure to the one defect an exception could accept, if any.
pub(crate) fn defect_of(e: &webpki::Error) -> Option<Defect> {
    use webpki::Error as E;
    #[allow(deprecated)]
    match e {
        E::UnknownIssuer => Some(Defect::UnknownCa),
        E::CertExpired { .. } | E::CertNotValidYet { .. } | E::InvalidCertValidity => {
            Some(Defect::CertDateInvalid)
        }
        E::CertNotValidForName(_) => Some(Defect::CertCnInvalid),
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) | E::CaUsedAsEndEntity => {
            Some(Defect::CertWrongUsage)
        }
        E::UnsupportedSignatureAlgorithm
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKey
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => Some(Defect::WeakSignature),
        _ => None,
    }
}

/// Converts a webpki failure into the rustls error sent to the peer as an alert.
pub(crate) fn to_rustls(e: webpki::Error) -> rustls::Error {
    use webpki::Error as E;
    #[allow(deprecated)]
    let ce = match e {
        E::BadDer | E::BadDerTime | E::TrailingData(_) => CertificateError::BadEncoding,
        E::CertNotValidYet { .. } => CertificateError::NotValidYet,
        E::CertExpired { .. } | E::InvalidCertValidity => CertificateError::Expired,
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::CertNotValidForName(_) => CertificateError::NotValidForName,
        E::CertRevoked => CertificateError::Revoked,
        E::UnknownRevocationStatus => CertificateError::UnknownRevocationStatus,
        E::CrlExpired { .. } => CertificateError::ExpiredRevocationList,
        E::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) | E::CaUsedAsEndEntity => {
            CertificateError::InvalidPurpose
        }
        other if defect_of(&other) == Some(Defect::WeakSignature) => {
            CertificateError::UnsupportedSignatureAlgorithm
        }
        other => CertificateError::Other(rustls::OtherError(Arc::new(other))),
    };
    rustls::Error::InvalidCertificate(ce)
}

/// Server-auth EKU check, or none at all when `cert-wrong-usage` is neutralised.
struct Eku(bool);

impl ExtendedKeyUsageValidator for Eku {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        match self.0 {
            true => KeyUsage::server_auth().validate(iter),
            false => Ok(()),
        }
    }
}

impl PolicyVerifier {
    pub(crate) fn new(
        core: Arc<VerifyCore>,
        allow: DefectSet,
        revocation: bool,
        mode: CrlMode,
    ) -> Self {
        PolicyVerifier {
            core,
            allow,
            revocation,
            mode,
        }
    }

    /// Verifies and returns the defects that were accepted, or the first refused failure.
    pub(crate) fn evaluate(
        &self,
        ee: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        now: UnixTime,
        mode: CrlMode,
    ) -> Result<DefectSet, webpki::Error> {
        let cert = EndEntityCert::try_from(ee)?;
        let mut neutral = DefectSet::new();
        // Each pass either succeeds, refuses, or neutralises one more defect: at most six.
        loop {
            match self.check(&cert, ee, intermediates, name, now, &neutral, mode) {
                Ok(()) => return Ok(neutral),
                Err(e) => match defect_of(&e) {
                    Some(d) if self.allow.contains(&d) && !neutral.contains(&d) => {
                        neutral.insert(d);
                    }
                    _ => return Err(e),
                },
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        cert: &EndEntityCert<'_>,
        ee: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        now: UnixTime,
        neutral: &DefectSet,
        mode: CrlMode,
    ) -> Result<(), webpki::Error> {
        let core = &self.core;
        let time = match neutral.contains(&Defect::CertDateInvalid) {
            true => certinfo::mid_validity(ee).unwrap_or(now),
            false => now,
        };
        let base = core.provider.signature_verification_algorithms.all;
        let with_legacy: Vec<&dyn SignatureVerificationAlgorithm>;
        let algs = if neutral.contains(&Defect::WeakSignature) {
            with_legacy = base
                .iter()
                .copied()
                .chain(LEGACY_ALGS.iter().copied())
                .collect();
            &with_legacy[..]
        } else {
            base
        };
        let presented: Vec<TrustAnchor<'_>>;
        let anchors = if neutral.contains(&Defect::UnknownCa) {
            let chain = std::iter::once(ee).chain(intermediates);
            presented = chain
                .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
                .collect();
            &presented[..]
        } else {
            &core.roots[..]
        };
        let crls = match self.revocation {
            true => core.crls.for_cert(ee, mode == CrlMode::Deferred),
            false => None,
        };
        let crl_refs: Vec<&webpki::CertRevocationList<'_>> =
            crls.iter().flatten().map(|c| &**c).collect();
        let revocation = match webpki::RevocationOptionsBuilder::new(&crl_refs) {
            Ok(b) => Some(
                b.with_depth(webpki::RevocationCheckDepth::EndEntity)
                    .with_status_policy(match core.unknown_passes {
                        true => webpki::UnknownStatusPolicy::Allow,
                        false => webpki::UnknownStatusPolicy::Deny,
                    })
                    .build(),
            ),
            Err(_) => None,
        };
        let eku = Eku(!neutral.contains(&Defect::CertWrongUsage));
        let chain =
            cert.verify_for_usage(algs, anchors, intermediates, time, &eku, revocation, None);
        match chain {
            Ok(_) => {}
            Err(webpki::Error::UnknownIssuer | webpki::Error::CaUsedAsEndEntity)
                if neutral.contains(&Defect::UnknownCa) =>
            {
                // The issuer was not presented: nothing can check the signature, so check
                // what the leaf alone can show.
                certinfo::check_leaf_alone(ee, time, neutral)?;
                if self.revocation && !core.unknown_passes {
                    // No issuer key means no CRL signature can be checked.
                    return Err(webpki::Error::UnknownRevocationStatus);
                }
            }
            Err(e) => return Err(e),
        }
        // No CRL at all while the policy wants one: the status is unknown.
        let deferred_skip = mode == CrlMode::Deferred && crls.is_none();
        if self.revocation && crl_refs.is_empty() && !core.unknown_passes && !deferred_skip {
            return Err(webpki::Error::UnknownRevocationStatus);
        }
        if !neutral.contains(&Defect::CertCnInvalid) {
            cert.verify_is_valid_for_subject_name(name)?;
        }
        Ok(())
    }
}

impl ServerCertVerifier for PolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let host = server_name.to_str();
        match self.evaluate(end_entity, intermediates, server_name, now, self.mode) {
            Ok(accepted) => {
                if !accepted.is_empty() {
                    let subject = certinfo::subject(end_entity);
                    for d in &accepted {
                        tracing::warn!(host = %host, subject = %subject, exception = %d,
                            "TLS certificate defect accepted by configured exception");
                        self.core.metrics.exception_used(*d);
                    }
                }
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => {
                let err = to_rustls(e);
                self.core
                    .metrics
                    .cert_error(crate::error::classify_rustls(&err));
                Err(err)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.core.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.core.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.core
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Days from now until `not_after_unix` (negative once past), for expiry gauges.
pub(crate) fn days_until(not_after_unix: i64) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64;
    (not_after_unix - now) as f64 / 86_400.0
}
