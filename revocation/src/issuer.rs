//! Who issued a certificate, and what revocation sources need to know about the certificate
//! itself: its id, where its OCSP responder and CRLs are.

use std::sync::Arc;

use aws_lc_rs::digest;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::{CertId, IssuerId, Serial};

/// An issuing CA as OCSP and CRL checks need it: its name and key, and their hashes for OCSP
/// CertIDs, computed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuingCa {
    id: IssuerId,
    subject_der: Box<[u8]>,
    spki_der: Box<[u8]>,
    name_sha1: [u8; 20],
    name_sha256: [u8; 32],
    key_sha1: [u8; 20],
    key_sha256: [u8; 32],
}

/// Material that is not an issuer's name and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    /// The certificate or key does not parse.
    #[error("cannot parse the issuer: {0}")]
    Malformed(String),
}

impl IssuingCa {
    /// From the issuer's subject Name and SubjectPublicKeyInfo, both as complete DER.
    pub fn new(subject_der: &[u8], spki_der: &[u8]) -> Result<Self, IssuerError> {
        let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der).map_err(|e| IssuerError::Malformed(e.to_string()))?;
        // RFC 6960 §4.1.1: the key hash covers the subjectPublicKey BIT STRING value, not the
        // whole SPKI.
        let key = spki.subject_public_key.data.as_ref();
        Ok(Self {
            id: IssuerId(sha256(spki_der)),
            subject_der: subject_der.into(),
            spki_der: spki_der.into(),
            name_sha1: sha1(subject_der),
            name_sha256: sha256(subject_der),
            key_sha1: sha1(key),
            key_sha256: sha256(key),
        })
    }

    /// From the issuer's certificate.
    pub fn from_cert_der(der: &[u8]) -> Result<Self, IssuerError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| IssuerError::Malformed(e.to_string()))?;
        Self::new(cert.subject().as_raw(), cert.public_key().raw)
    }

    /// SHA-256 of the SPKI.
    pub fn id(&self) -> IssuerId {
        self.id
    }

    /// The issuer's Name, DER.
    pub fn subject_der(&self) -> &[u8] {
        &self.subject_der
    }

    /// The issuer's SubjectPublicKeyInfo, DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// (name hash, key hash) for an OCSP CertID with SHA-1.
    pub fn sha1_hashes(&self) -> (&[u8], &[u8]) {
        (&self.name_sha1, &self.key_sha1)
    }

    /// (name hash, key hash) for an OCSP CertID with SHA-256.
    pub fn sha256_hashes(&self) -> (&[u8], &[u8]) {
        (&self.name_sha256, &self.key_sha256)
    }
}

/// A certificate whose revocation status is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Issuing CA and serial.
    pub cert: CertId,
    /// Its issuer.
    pub issuer: Arc<IssuingCa>,
    /// OCSP responders from the Authority Information Access extension (`http:` only).
    pub ocsp_urls: Vec<String>,
    /// CRL distribution points to fetch (`http:` full names only).
    pub crl_urls: Vec<String>,
    /// Every distribution point name of the certificate, in any form (`uri:…`, `dn:<hex>` with
    /// relative names expanded, `other:…`): what a partitioned CRL's IssuingDistributionPoint must
    /// name to cover it.
    pub distribution_points: Vec<String>,
    /// Whether the certificate is a CA (basicConstraints cA), for CRL scopes.
    pub is_ca: bool,
}

/// A certificate that cannot be a [`Subject`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// The certificate does not parse.
    #[error("cannot parse the certificate: {0}")]
    Malformed(String),
    /// Its serial number is unusable.
    #[error(transparent)]
    Serial(#[from] crate::SerialError),
}

impl Subject {
    /// Reads serial, AIA and CDP from a certificate issued by `issuer`.
    pub fn from_cert_der(der: &[u8], issuer: Arc<IssuingCa>) -> Result<Self, SubjectError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| SubjectError::Malformed(e.to_string()))?;
        Self::from_parsed(&cert, issuer)
    }

    /// [`Subject::from_cert_der`] for a certificate the caller has already parsed.
    pub fn from_parsed(
        cert: &x509_parser::certificate::X509Certificate<'_>,
        issuer: Arc<IssuingCa>,
    ) -> Result<Self, SubjectError> {
        let serial = Serial::from_der_bytes(cert.raw_serial())?;
        let mut ocsp_urls = Vec::new();
        let mut crl_urls = Vec::new();
        let mut distribution_points = Vec::new();
        for ext in cert.extensions() {
            // Matched by OID on the raw value: a CDP the general parser cannot read must still
            // keep its names, or the certificate would look covered by full CRLs only.
            if ext.oid.to_id_string() == "2.5.29.31" {
                distribution_points.extend(crate::dp::cdp_names(ext.value, issuer.subject_der()));
            }
            match ext.parsed_extension() {
                ParsedExtension::AuthorityInfoAccess(aia) => {
                    for desc in aia.iter() {
                        // id-ad-ocsp 1.3.6.1.5.5.7.48.1
                        if desc.access_method.to_id_string() == "1.3.6.1.5.5.7.48.1"
                            && let GeneralName::URI(uri) = &desc.access_location
                            && is_http(uri)
                        {
                            ocsp_urls.push((*uri).to_owned());
                        }
                    }
                }
                ParsedExtension::CRLDistributionPoints(cdp) => crl_urls.extend(distribution_point_urls(cdp.iter())),
                _ => {}
            }
        }
        let is_ca = cert.is_ca();
        Ok(Self {
            cert: CertId { issuer: issuer.id(), serial },
            issuer,
            ocsp_urls,
            crl_urls,
            distribution_points,
            is_ca,
        })
    }
}

/// `http:` full-name URIs of distribution points (CDP, FreshestCRL).
pub(crate) fn distribution_point_urls<'a>(
    points: impl Iterator<Item = &'a x509_parser::extensions::CRLDistributionPoint<'a>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for point in points {
        if let Some(DistributionPointName::FullName(names)) = &point.distribution_point {
            for name in names {
                if let GeneralName::URI(uri) = name
                    && is_http(uri)
                {
                    out.push((*uri).to_owned());
                }
            }
        }
    }
    out
}

fn is_http(uri: &str) -> bool {
    uri.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("http://"))
}

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut out = [0u8; 20];
    out.copy_from_slice(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref());
    out
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}
