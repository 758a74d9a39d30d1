//! Facts read out of a DER certificate or CRL with x509-parser: subject for logs, validity
//! for expiry gauges and date neutralisation, CRL distribution points, and the checks that
//! can be made on a leaf whose issuer was not presented. Pure functions, no I/O.

use rustls::pki_types::{CertificateDer, UnixTime};
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::{Defect, DefectSet};

/// The subject as `CN=..., O=...`, or `(unparsable certificate)`.
pub fn subject(der: &[u8]) -> String {
    match X509Certificate::from_der(der) {
        Ok((_, c)) => c.subject().to_string(),
        Err(_) => "(unparsable certificate)".to_string(),
    }
}

/// notBefore and notAfter as Unix seconds.
pub fn validity(der: &[u8]) -> Option<(i64, i64)> {
    let (_, c) = X509Certificate::from_der(der).ok()?;
    Some((
        c.validity().not_before.timestamp(),
        c.validity().not_after.timestamp(),
    ))
}

/// A moment in the middle of the certificate's validity period.
pub(crate) fn mid_validity(der: &CertificateDer<'_>) -> Option<UnixTime> {
    let (nb, na) = validity(der)?;
    let mid = nb + (na - nb) / 2;
    Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(mid).ok()?,
    )))
}

/// The `http://` URIs of the certificate's CRL distribution points.
pub fn crl_urls(der: &[u8]) -> Vec<String> {
    let Ok((_, c)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for ext in c.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            for p in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &p.distribution_point {
                    for n in names {
                        if let GeneralName::URI(u) = n {
                            if u.starts_with("http://") {
                                out.push(u.to_string());
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// The CRL's nextUpdate as Unix seconds, if it has one.
pub(crate) fn crl_next_update(der: &[u8]) -> Option<i64> {
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der).ok()?;
    crl.next_update().map(|t| t.timestamp())
}

/// Date, usage and CA checks on a leaf alone (used only when `unknown-ca` is accepted and
/// the issuer was not presented); the defects in `neutral` are skipped.
pub(crate) fn check_leaf_alone(
    der: &CertificateDer<'_>,
    time: UnixTime,
    neutral: &DefectSet,
) -> Result<(), webpki::Error> {
    let (_, c) = X509Certificate::from_der(der).map_err(|_| webpki::Error::BadDer)?;
    if !neutral.contains(&Defect::CertDateInvalid) {
        let now = i64::try_from(time.as_secs()).unwrap_or(i64::MAX);
        let v = c.validity();
        if now < v.not_before.timestamp() || now > v.not_after.timestamp() {
            return Err(webpki::Error::InvalidCertValidity);
        }
    }
    if !neutral.contains(&Defect::CertWrongUsage) {
        let is_ca = matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        let eku_ok = match c.extended_key_usage() {
            Ok(Some(eku)) => eku.value.server_auth || eku.value.any,
            Ok(None) => true,
            Err(_) => false,
        };
        if is_ca || !eku_ok {
            #[allow(deprecated)]
            return Err(webpki::Error::RequiredEkuNotFound);
        }
    }
    Ok(())
}
