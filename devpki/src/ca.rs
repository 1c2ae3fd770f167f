//! Certificate authorities and what they issue.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, RsaKeySize, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::{Error, LeafSpec};

/// Key algorithm of a new key pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA-2048 with PKCS#1 v1.5 SHA-256 signatures: what smartcards carry. Slow to generate.
    Rsa2048,
    /// ECDSA P-256 with SHA-256: fast, for tests that do not care about the algorithm.
    EcdsaP256,
}

impl KeyKind {
    /// Generates a key pair of this kind.
    pub fn generate(self) -> Result<KeyPair, Error> {
        Ok(match self {
            KeyKind::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)?,
            KeyKind::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?,
        })
    }
}

/// A random positive 16-byte serial. Keys may be reused across certificates (key pools), so the
/// serial must not be derived from the key, which is rcgen's default.
pub fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).expect("the system RNG is available");
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // never a leading zero octet, so the DER length is always 16
    SerialNumber::from_slice(&bytes)
}

/// A certificate authority that can issue certificates.
pub struct Ca {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    /// This CA's certificate and its parents, up to but excluding the root.
    chain: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("chain_len", &self.chain.len()).finish_non_exhaustive()
    }
}

fn ca_params(
    common_name: &str,
    path_len: Option<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "nhs");
    dn.push(DnType::OrganizationalUnitName, "CA");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial());
    params.use_authority_key_identifier_extension = true;
    params
}

impl Ca {
    /// A self-signed root valid from a day ago for 20 years.
    pub fn root(common_name: &str, key: KeyKind) -> Result<Self, Error> {
        let now = OffsetDateTime::now_utc();
        let params = ca_params(common_name, None, now - Duration::days(1), now + Duration::days(365 * 20));
        let key = key.generate()?;
        let cert = params.self_signed(&key)?.der().clone();
        Ok(Self { cert, issuer: Issuer::new(params, key), chain: Vec::new() })
    }

    /// An intermediate CA signed by this one, valid from a day ago for 10 years (never beyond
    /// this CA).
    pub fn intermediate(&self, common_name: &str, key: KeyKind) -> Result<Self, Error> {
        let now = OffsetDateTime::now_utc();
        self.intermediate_valid_between(common_name, key, now - Duration::days(1), now + Duration::days(365 * 10))
    }

    /// An intermediate CA signed by this one with the given validity (a CA that ends before the
    /// certificates it issued, for tests of what happens when it does).
    pub fn intermediate_valid_between(
        &self,
        common_name: &str,
        key: KeyKind,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Self, Error> {
        let params = ca_params(common_name, None, not_before, not_after);
        let key = key.generate()?;
        let cert = params.signed_by(&key, &self.issuer)?.der().clone();
        let mut chain = vec![cert.clone()];
        chain.extend(self.chain.iter().cloned());
        Ok(Self { cert, issuer: Issuer::new(params, key), chain })
    }

    /// Rebuilds a CA from its stored certificate and key. `parents` are the CA certificates above
    /// it, excluding the root (empty for a root or a CA directly under a root).
    pub fn from_der(
        cert: CertificateDer<'static>,
        key: KeyPair,
        parents: &[CertificateDer<'static>],
        is_root: bool,
    ) -> Result<Self, Error> {
        let issuer = Issuer::from_ca_cert_der(&cert, key)?;
        let chain =
            if is_root { Vec::new() } else { std::iter::once(cert.clone()).chain(parents.iter().cloned()).collect() };
        Ok(Self { cert, issuer, chain })
    }

    /// Issues a leaf certificate.
    pub fn issue(&self, spec: &LeafSpec) -> Result<Issued, Error> {
        let key = match spec.reuse_key() {
            Some(pem) => KeyPair::from_pem(pem)?,
            None => spec.key_kind().generate()?,
        };
        self.issue_with_key(spec, key)
    }

    /// Issues a leaf certificate for an existing key pair.
    pub fn issue_with_key(&self, spec: &LeafSpec, key: KeyPair) -> Result<Issued, Error> {
        let cert = spec.params()?.signed_by(&key, &self.issuer)?.der().clone();
        let mut chain = vec![cert.clone()];
        chain.extend(self.chain.iter().cloned());
        Ok(Issued { cert, key, chain })
    }

    /// Issues a leaf certificate for a public key alone (`SubjectPublicKeyInfo` DER), for keys
    /// whose private half is not at hand — known-weak keys a verifier must refuse.
    pub fn issue_for_public_key(&self, spec: &LeafSpec, spki_der: &[u8]) -> Result<CertificateDer<'static>, Error> {
        let key = rcgen::SubjectPublicKeyInfo::from_der(spki_der)?;
        Ok(spec.params()?.signed_by(&key, &self.issuer)?.der().clone())
    }

    /// This CA's certificate.
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// This CA's certificate as PEM.
    pub fn cert_pem(&self) -> String {
        pem_cert(&self.cert)
    }

    /// This CA's private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// This CA's signing key.
    pub fn key(&self) -> &KeyPair {
        self.issuer.key()
    }

    /// The rcgen issuer, for CRLs and other signed objects.
    pub fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// This CA's certificate and its parents, excluding the root; empty for a root.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}

/// A leaf certificate with its key.
pub struct Issued {
    /// The leaf.
    pub cert: CertificateDer<'static>,
    /// Its key pair.
    pub key: KeyPair,
    /// The leaf followed by the issuing CAs, excluding the root: what a client sends.
    pub chain: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("chain_len", &self.chain.len()).finish_non_exhaustive()
    }
}

impl Issued {
    /// The chain as concatenated PEM.
    pub fn chain_pem(&self) -> String {
        self.chain.iter().map(pem_cert).collect()
    }

    /// The leaf alone as PEM.
    pub fn cert_pem(&self) -> String {
        pem_cert(&self.cert)
    }

    /// The private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The private key in rustls form.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }
}

/// PEM-encodes one certificate.
pub fn pem_cert(cert: &CertificateDer<'_>) -> String {
    pem_block("CERTIFICATE", cert.as_ref())
}

/// PEM-encodes DER bytes under a label.
pub fn pem_block(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}
