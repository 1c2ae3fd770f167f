//! What a leaf certificate should say.

use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose, SanType,
    SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::ca::random_serial;
use crate::{Error, KeyKind};

/// A private-arc OID for the padding extension that oversized-chain tests use.
const PADDING_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 55555, 1, 1];

/// Parameters of one leaf certificate. Start from [`LeafSpec::smartcard`] or
/// [`LeafSpec::server`], then adjust.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    subject: DistinguishedName,
    sans: Vec<SanType>,
    eku: Vec<ExtendedKeyUsagePurpose>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    key_kind: KeyKind,
    reuse_key: Option<String>,
    padding: usize,
    serial: Option<SerialNumber>,
    ocsp_urls: Vec<String>,
    crl_urls: Vec<String>,
}

impl LeafSpec {
    /// An NHS-style smartcard certificate: `CN=<user id>_<Surname>_<Forename>, OU=People, O=nhs`,
    /// EKU clientAuth, RSA-2048, valid from a day ago for two years.
    pub fn smartcard(user_id: &str, surname: &str, forename: &str) -> Self {
        let mut subject = DistinguishedName::new();
        subject.push(DnType::OrganizationName, "nhs");
        subject.push(DnType::OrganizationalUnitName, "People");
        subject.push(DnType::CommonName, format!("{user_id}_{surname}_{forename}"));
        let now = OffsetDateTime::now_utc();
        Self {
            subject,
            sans: Vec::new(),
            eku: vec![ExtendedKeyUsagePurpose::ClientAuth],
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(730),
            key_kind: KeyKind::Rsa2048,
            reuse_key: None,
            padding: 0,
            serial: None,
            ocsp_urls: Vec::new(),
            crl_urls: Vec::new(),
        }
    }

    /// A TLS server certificate for DNS names and IP literals, EKU serverAuth, ECDSA P-256,
    /// valid from a day ago for a year.
    pub fn server(names: &[&str]) -> Self {
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, names.first().copied().unwrap_or("spinegate"));
        let sans = names
            .iter()
            .map(|n| match n.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    (*n).to_owned().try_into().expect("server names given to devpki are ASCII DNS names"),
                ),
            })
            .collect();
        let now = OffsetDateTime::now_utc();
        Self {
            subject,
            sans,
            eku: vec![ExtendedKeyUsagePurpose::ServerAuth],
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(365),
            key_kind: KeyKind::EcdsaP256,
            reuse_key: None,
            padding: 0,
            serial: None,
            ocsp_urls: Vec::new(),
            crl_urls: Vec::new(),
        }
    }

    /// Replaces the subject with the given (attribute, value) pairs, in DER order.
    pub fn subject(mut self, rdns: &[(DnType, &str)]) -> Self {
        let mut subject = DistinguishedName::new();
        for (ty, value) in rdns {
            subject.push(ty.clone(), *value);
        }
        self.subject = subject;
        self
    }

    /// Uses a new key of this kind.
    pub fn key(mut self, kind: KeyKind) -> Self {
        self.key_kind = kind;
        self
    }

    /// Uses this existing PKCS#8 PEM key instead of generating one.
    pub fn reuse_key_pem(mut self, pem: impl Into<String>) -> Self {
        self.reuse_key = Some(pem.into());
        self
    }

    /// Sets the validity window.
    pub fn valid_between(mut self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    /// Ends `remaining` from now (started a year ago).
    pub fn expiring_in(self, remaining: Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        self.valid_between(now - Duration::days(365), now + remaining)
    }

    /// Ended `ago` (after three years of validity).
    pub fn expired_since(self, ago: Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        self.valid_between(now - ago - Duration::days(3 * 365), now - ago)
    }

    /// Starts `wait` from now.
    pub fn not_yet_valid_for(self, wait: Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        self.valid_between(now + wait, now + wait + Duration::days(730))
    }

    /// Replaces the extended key usages (an empty list omits the extension).
    pub fn eku(mut self, eku: Vec<ExtendedKeyUsagePurpose>) -> Self {
        self.eku = eku;
        self
    }

    /// Adds a non-critical private extension of `bytes` bytes, to make the certificate large.
    pub fn padding(mut self, bytes: usize) -> Self {
        self.padding = bytes;
        self
    }

    /// Uses this serial (big-endian, positive) instead of a random one.
    pub fn serial(mut self, serial: &[u8]) -> Self {
        self.serial = Some(SerialNumber::from_slice(serial));
        self
    }

    /// Adds an OCSP responder to the Authority Information Access extension.
    pub fn ocsp_url(mut self, url: impl Into<String>) -> Self {
        self.ocsp_urls.push(url.into());
        self
    }

    /// Adds a CRL distribution point.
    pub fn crl_url(mut self, url: impl Into<String>) -> Self {
        self.crl_urls.push(url.into());
        self
    }

    /// A delegated OCSP responder certificate (EKU id-kp-OCSPSigning), ECDSA P-256.
    pub fn ocsp_responder(name: &str) -> Self {
        Self::server(&[name]).eku(vec![ExtendedKeyUsagePurpose::OcspSigning])
    }

    /// The start of validity.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// The end of validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    pub(crate) fn key_kind(&self) -> KeyKind {
        self.key_kind
    }

    pub(crate) fn reuse_key(&self) -> Option<&str> {
        self.reuse_key.as_deref()
    }

    pub(crate) fn params(&self) -> Result<CertificateParams, Error> {
        let mut params = CertificateParams::default();
        params.distinguished_name = self.subject.clone();
        params.subject_alt_names = self.sans.clone();
        params.extended_key_usages = self.eku.clone();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.not_before = self.not_before;
        params.not_after = self.not_after;
        params.serial_number = Some(self.serial.clone().unwrap_or_else(random_serial));
        params.use_authority_key_identifier_extension = true;
        if !self.crl_urls.is_empty() {
            params.crl_distribution_points = vec![rcgen::CrlDistributionPoint { uris: self.crl_urls.clone() }];
        }
        if !self.ocsp_urls.is_empty() {
            params.custom_extensions.push(CustomExtension::from_oid_content(AIA_OID, aia(&self.ocsp_urls)));
        }
        if self.padding > 0 {
            // An OCTET STRING wrapping zeros: well-formed DER, meaningless content.
            let mut content = der_length_prefixed(0x04, self.padding);
            content.resize(content.len() + self.padding, 0);
            params.custom_extensions.push(CustomExtension::from_oid_content(PADDING_OID, content));
        }
        Ok(params)
    }
}

/// id-pe-authorityInfoAccess.
const AIA_OID: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];

/// AuthorityInfoAccessSyntax with one id-ad-ocsp access description per URL.
fn aia(urls: &[String]) -> Vec<u8> {
    use der::Encode;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};
    let descriptions = urls
        .iter()
        .map(|u| AccessDescription {
            access_method: der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1"),
            access_location: GeneralName::UniformResourceIdentifier(
                der::asn1::Ia5String::new(u).expect("test URLs are ASCII"),
            ),
        })
        .collect();
    AuthorityInfoAccessSyntax(descriptions).to_der().expect("AIA encodes")
}

/// DER tag and length header for `len` content bytes.
fn der_length_prefixed(tag: u8, len: usize) -> Vec<u8> {
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out
}
