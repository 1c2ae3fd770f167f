//! What is asked ([`CertId`]) and what is answered ([`Status`]).

use std::fmt;

use rustls_pki_types::UnixTime;

/// A certificate serial number as its DER INTEGER content bytes, in minimal two's-complement form
/// (redundant leading `00` octets removed, sign preserved), so the same serial from a
/// certificate, a CRL or an OCSP response compares equal while +128 (`00 80`) and -128 (`80`)
/// stay distinct.
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
        let mut start = 0;
        // A leading 00 is redundant only when the next octet's top bit is clear.
        while start + 1 < bytes.len() && bytes[start] == 0 && bytes[start + 1] & 0x80 == 0 {
            start += 1;
        }
        Ok(Self(bytes[start..].into()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redundant_leading_zeros_are_removed_but_sign_is_kept() {
        let s = |b: &[u8]| Serial::from_der_bytes(b).unwrap();
        assert_eq!(s(&[0, 0, 0x12]), s(&[0x12]));
        assert_eq!(s(&[0, 0x80]).as_bytes(), &[0, 0x80]);
        assert_ne!(s(&[0, 0x80]), s(&[0x80]), "+128 is not -128");
        assert_eq!(s(&[0, 0, 0x80]), s(&[0, 0x80]));
        assert_eq!(s(&[0]).as_bytes(), &[0]);
    }

    #[test]
    fn empty_and_oversized_serials_are_refused() {
        assert_eq!(Serial::from_der_bytes(&[]), Err(SerialError::Empty));
        assert!(matches!(Serial::from_der_bytes(&[1; 22]), Err(SerialError::TooLong { len: 22 })));
    }
}
