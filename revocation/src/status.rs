//! What is asked ([`CertId`]) and what is answered ([`Status`]).

use std::fmt;

use rustls_pki_types::UnixTime;

/// A certificate serial number as its DER INTEGER content bytes, without redundant leading zero
/// octets, so that the same serial from a certificate, a CRL or an OCSP response compares equal.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Box<[u8]>);

/// A serial number that cannot be one (RFC 5280 §4.1.2.2 allows at most 20 octets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerialError {
    /// No bytes at all.
    #[error("serial number is empty")]
    Empty,
    /// Longer than the 20 octets conforming CAs may use (with one sign octet of slack).
    #[error("serial number is {len} octets; at most 21 are accepted")]
    TooLong {
        /// Octets given.
        len: usize,
    },
}

impl Serial {
    /// Normalises DER INTEGER content bytes.
    pub fn from_der_bytes(bytes: &[u8]) -> Result<Self, SerialError> {
        if bytes.is_empty() {
            return Err(SerialError::Empty);
        }
        if bytes.len() > 21 {
            return Err(SerialError::TooLong { len: bytes.len() });
        }
        let first_significant = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len() - 1);
        Ok(Self(bytes[first_significant..].into()))
    }

    /// The normalised bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.iter() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The issuing CA of a certificate: SHA-256 of the issuer's SubjectPublicKeyInfo. Two CAs with one
/// name but different keys are different issuers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IssuerId(pub [u8; 32]);

impl fmt::Debug for IssuerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IssuerId(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// One certificate, as revocation sources know it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CertId {
    /// Who issued it.
    pub issuer: IssuerId,
    /// Its serial under that issuer.
    pub serial: Serial,
}

/// Why no answer could be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownCause {
    /// No source has answered yet for this certificate.
    NotYetFetched,
    /// Every configured source failed.
    SourcesFailed,
    /// The last answer is older than its freshness bound and policy allows no stale window.
    Stale,
}

/// The answer for one certificate at one time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// A source vouched for the certificate.
    Good,
    /// A source said it is revoked (or it is on the deny list).
    Revoked {
        /// When it was revoked, where the source said.
        revoked_at: Option<UnixTime>,
    },
    /// No usable answer. Refused unless the issuer's policy grants a stale window.
    Unknown(UnknownCause),
    /// The issuer's policy names no sources: revocation is not checked for it.
    NotChecked,
}
