//! The cache key: SHA-256 of a certificate chain exactly as the client presented it.

use std::fmt;

use aws_lc_rs::digest;
use rustls_pki_types::CertificateDer;

/// SHA-256 over the presented chain (leaf first), each certificate prefixed by its length so that
/// two different chains can never concatenate to the same byte string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainFingerprint([u8; 32]);

impl ChainFingerprint {
    /// Fingerprints a chain given as its leaf and the intermediates that followed it.
    pub fn of_chain(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> Self {
        Self::of(std::iter::once(end_entity.as_ref()).chain(intermediates.iter().map(|c| c.as_ref())))
    }

    /// Fingerprints a sequence of DER certificates, leaf first.
    pub fn of<'a>(certs: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        for cert in certs {
            // Certificates are far below 4 GiB (the gateway caps the chain size before this point);
            // saturating keeps the prefix well-defined even if that cap were removed.
            let len = u32::try_from(cert.len()).unwrap_or(u32::MAX);
            ctx.update(&len.to_be_bytes());
            ctx.update(cert);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Self(out)
    }

    /// Wraps a precomputed digest.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ChainFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainFingerprint(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl fmt::Display for ChainFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefix_separates_chains_that_concatenate_equally() {
        let a = ChainFingerprint::of([b"ab".as_slice(), b"c".as_slice()]);
        let b = ChainFingerprint::of([b"a".as_slice(), b"bc".as_slice()]);
        assert_ne!(a, b);
    }

    #[test]
    fn order_of_certificates_matters() {
        let a = ChainFingerprint::of([b"leaf".as_slice(), b"ca".as_slice()]);
        let b = ChainFingerprint::of([b"ca".as_slice(), b"leaf".as_slice()]);
        assert_ne!(a, b);
    }

    #[test]
    fn of_chain_matches_of() {
        let leaf = CertificateDer::from(b"leaf".to_vec());
        let ca = CertificateDer::from(b"ca".to_vec());
        assert_eq!(
            ChainFingerprint::of_chain(&leaf, std::slice::from_ref(&ca)),
            ChainFingerprint::of([b"leaf".as_slice(), b"ca".as_slice()])
        );
    }
}
