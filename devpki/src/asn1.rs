//! Small DER helpers shared by the CRL and OCSP builders: times, signature algorithm
//! identifiers for devpki keys, and signing with them.

use der::asn1::{GeneralizedTime, ObjectIdentifier, UtcTime};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, SigningKey};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::time::Time;

use crate::Error;

/// An X.509 Time: UTCTime before 2050, GeneralizedTime from then on (RFC 5280 §4.1.2.5).
pub(crate) fn x509_time(t: OffsetDateTime) -> Time {
    let secs = u64::try_from(t.unix_timestamp()).unwrap_or(0);
    let d = std::time::Duration::from_secs(secs);
    if t.year() < 2050 {
        Time::UtcTime(UtcTime::from_unix_duration(d).expect("times before 2050 fit UTCTime"))
    } else {
        Time::GeneralTime(GeneralizedTime::from_unix_duration(d).expect("times fit GeneralizedTime"))
    }
}

/// A GeneralizedTime (OCSP uses only these).
pub(crate) fn generalized_time(t: OffsetDateTime) -> GeneralizedTime {
    let secs = u64::try_from(t.unix_timestamp()).unwrap_or(0);
    GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs)).expect("times fit GeneralizedTime")
}

/// The signature AlgorithmIdentifier for what `key` signs with.
pub(crate) fn signature_algorithm(key: &KeyPair) -> AlgorithmIdentifierOwned {
    if key.algorithm() == &PKCS_RSA_SHA256 {
        AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11"),
            parameters: Some(der::asn1::Null.into()),
        }
    } else if key.algorithm() == &PKCS_ECDSA_P256_SHA256 {
        AlgorithmIdentifierOwned { oid: ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"), parameters: None }
    } else {
        panic!("devpki only makes RSA-2048 and ECDSA P-256 keys")
    }
}

/// Signs `message` with `key` (PKCS#1 v1.5 SHA-256 or ECDSA P-256 SHA-256, DER).
pub(crate) fn sign(key: &KeyPair, message: &[u8]) -> Result<Vec<u8>, Error> {
    Ok(key.sign(message)?)
}
