//! Channel bindings for a TLS proxy hop (RFC 5929 `tls-server-end-point`): the hash of
//! the proxy's end-entity certificate, prefixed with the binding type. NTLM puts the MD5
//! of the gss_channel_bindings_struct into MsvAvChannelBindings; Kerberos into the
//! authenticator checksum. Plain-HTTP proxy hops have no bindings.

use sha2::{Digest, Sha256, Sha384, Sha512};

/// DER encodings of signature-algorithm OIDs that use SHA-384 / SHA-512 (RSA, ECDSA, RSA-PSS
/// parameters are not inspected: PSS with SHA-256 is the common case and falls to the default).
const SHA384_OIDS: &[&[u8]] = &[
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], // sha384WithRSAEncryption
    &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],       // ecdsa-with-SHA384
];
const SHA512_OIDS: &[&[u8]] = &[
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], // sha512WithRSAEncryption
    &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],       // ecdsa-with-SHA512
];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `tls-server-end-point:` ‖ hash(cert): SHA-256 unless the certificate is signed with
/// SHA-384/512, in which case that hash (RFC 5929 §4.1; MD5/SHA-1 also map to SHA-256).
pub fn tls_server_end_point(cert_der: &[u8]) -> Vec<u8> {
    let mut out = b"tls-server-end-point:".to_vec();
    if SHA512_OIDS.iter().any(|o| contains(cert_der, o)) {
        out.extend_from_slice(&Sha512::digest(cert_der));
    } else if SHA384_OIDS.iter().any(|o| contains(cert_der, o)) {
        out.extend_from_slice(&Sha384::digest(cert_der));
    } else {
        out.extend_from_slice(&Sha256::digest(cert_der));
    }
    out
}

/// A SEC_CHANNEL_BINDINGS structure (32-byte header, then the application data) with
/// only application data, as sspi reads it from a `ChannelBindings` buffer.
pub fn sec_channel_bindings(application_data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + application_data.len());
    for v in [0u32, 0, 0, 0, 0, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    // Proof: application data is a prefix plus a hash, far below u32::MAX.
    let len = u32::try_from(application_data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&32u32.to_le_bytes());
    out.extend_from_slice(application_data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sha256_signed_certificate_binds_with_sha256() {
        let cb = tls_server_end_point(b"not really a certificate");
        assert!(cb.starts_with(b"tls-server-end-point:"));
        assert_eq!(cb.len(), 21 + 32);
    }

    #[test]
    fn an_sha384_signed_certificate_binds_with_sha384() {
        let mut der = vec![0x30, 0x0a, 0x06, 0x08];
        der.extend_from_slice(SHA384_OIDS[1]);
        assert_eq!(tls_server_end_point(&der).len(), 21 + 48);
    }

    #[test]
    fn the_bindings_struct_is_read_back_by_sspi() {
        let data = tls_server_end_point(b"cert");
        let parsed =
            sspi::channel_bindings::ChannelBindings::from_bytes(sec_channel_bindings(&data))
                .unwrap();
        assert_eq!(parsed.application_data, data);
        assert!(parsed.initiator.is_empty() && parsed.acceptor.is_empty());
    }
}
