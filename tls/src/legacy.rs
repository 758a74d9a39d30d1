//! Signature algorithms that webpki refuses as weak, offered only while verifying a host
//! whose exception allows `weak-signature`: RSA PKCS#1 with SHA-1 (and RSA keys from 1024
//! bits). *ring* has no SHA-1 ECDSA or MD5, so those stay refused even then.

use rustls::pki_types::{
    alg_id, AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm,
};

/// `sha1WithRSAEncryption` (1.2.840.113549.1.1.5) with NULL parameters, without the outer SEQUENCE.
const SHA1_WITH_RSA: AlgorithmIdentifier = AlgorithmIdentifier::from_slice(&[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00,
]);

#[derive(Debug)]
struct LegacyRsa {
    sig: AlgorithmIdentifier,
    ring: &'static ring::signature::RsaParameters,
}

impl SignatureVerificationAlgorithm for LegacyRsa {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        ring::signature::UnparsedPublicKey::new(self.ring, public_key)
            .verify(message, signature)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.sig
    }
}

static RSA_SHA1: LegacyRsa = LegacyRsa {
    sig: SHA1_WITH_RSA,
    ring: &ring::signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
};

/// The extra algorithms, appended after the provider's own.
pub(crate) static LEGACY_ALGS: &[&dyn SignatureVerificationAlgorithm] = &[&RSA_SHA1];
