//! Signature checks on revocation data (CRLs, OCSP responses, OCSP responder certificates), with
//! aws-lc-rs. SHA-1 signatures and RSA keys under 2048 bits are refused: revocation data signed
//! that way could be forged, and a forged "good" is the one answer that must never be believed.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_NIST_EC_P384, OID_NIST_HASH_SHA256, OID_NIST_HASH_SHA384, OID_NIST_HASH_SHA512,
    OID_PKCS1_RSASSAPSS, OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::signature_algorithm::RsaSsaPssParams;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

/// A signature that was not verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The algorithm is unknown, or refused (SHA-1, small RSA keys).
    #[error("unsupported or refused signature algorithm")]
    Unsupported,
    /// The signature does not verify with the key.
    #[error("signature does not verify")]
    Invalid,
    /// The key or algorithm identifier does not parse.
    #[error("malformed key or algorithm identifier")]
    Malformed,
}

/// Verifies `signature` over `message` with the key in `spki_der` by the algorithm in
/// `algorithm_der` (a complete AlgorithmIdentifier).
pub fn verify(spki_der: &[u8], algorithm_der: &[u8], message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der).map_err(|_| SignatureError::Malformed)?;
    let (_, algorithm) = AlgorithmIdentifier::from_der(algorithm_der).map_err(|_| SignatureError::Malformed)?;
    verify_parsed(&spki, &algorithm, message, signature)
}

/// [`verify`] on parsed structures.
pub fn verify_parsed(
    spki: &SubjectPublicKeyInfo<'_>,
    algorithm: &AlgorithmIdentifier<'_>,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let alg = algorithm_for(spki, algorithm)?;
    UnparsedPublicKey::new(alg, spki.subject_public_key.data.as_ref())
        .verify(message, signature)
        .map_err(|_| SignatureError::Invalid)
}

fn algorithm_for(
    spki: &SubjectPublicKeyInfo<'_>,
    algorithm: &AlgorithmIdentifier<'_>,
) -> Result<&'static dyn VerificationAlgorithm, SignatureError> {
    let oid = &algorithm.algorithm;
    if *oid == OID_PKCS1_SHA256WITHRSA {
        Ok(&signature::RSA_PKCS1_2048_8192_SHA256)
    } else if *oid == OID_PKCS1_SHA384WITHRSA {
        Ok(&signature::RSA_PKCS1_2048_8192_SHA384)
    } else if *oid == OID_PKCS1_SHA512WITHRSA {
        Ok(&signature::RSA_PKCS1_2048_8192_SHA512)
    } else if *oid == OID_PKCS1_RSASSAPSS {
        let params = algorithm.parameters.as_ref().ok_or(SignatureError::Malformed)?;
        let params = RsaSsaPssParams::try_from(params).map_err(|_| SignatureError::Malformed)?;
        let hash = params.hash_algorithm_oid();
        if *hash == OID_NIST_HASH_SHA256 {
            Ok(&signature::RSA_PSS_2048_8192_SHA256)
        } else if *hash == OID_NIST_HASH_SHA384 {
            Ok(&signature::RSA_PSS_2048_8192_SHA384)
        } else if *hash == OID_NIST_HASH_SHA512 {
            Ok(&signature::RSA_PSS_2048_8192_SHA512)
        } else {
            Err(SignatureError::Unsupported)
        }
    } else if *oid == OID_SIG_ECDSA_WITH_SHA256 || *oid == OID_SIG_ECDSA_WITH_SHA384 {
        let curve =
            spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).ok_or(SignatureError::Malformed)?;
        let sha256 = *oid == OID_SIG_ECDSA_WITH_SHA256;
        match (curve == OID_EC_P256, curve == OID_NIST_EC_P384, sha256) {
            (true, _, true) => Ok(&signature::ECDSA_P256_SHA256_ASN1),
            (true, _, false) => Ok(&signature::ECDSA_P256_SHA384_ASN1),
            (_, true, true) => Ok(&signature::ECDSA_P384_SHA256_ASN1),
            (_, true, false) => Ok(&signature::ECDSA_P384_SHA384_ASN1),
            _ => Err(SignatureError::Unsupported),
        }
    } else if *oid == OID_SIG_ED25519 {
        Ok(&signature::ED25519)
    } else {
        Err(SignatureError::Unsupported)
    }
}
