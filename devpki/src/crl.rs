//! CRLs for tests and `spinegate dev`: complete or delta, partitioned by an
//! IssuingDistributionPoint, with FreshestCRL pointers, any number of entries.

use der::Encode;
use der::asn1::{BitString, Ia5String, OctetString, Uint};
use time::OffsetDateTime;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::dp::{DistributionPoint, IssuingDistributionPoint};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{BaseCrlNumber, CrlNumber, CrlReason, FreshestCrl};
use x509_cert::serial_number::SerialNumber;

use crate::asn1::{sign, signature_algorithm, x509_time};
use crate::{Ca, Error};

/// One revoked certificate.
#[derive(Clone, Debug)]
pub struct RevokedEntry {
    /// Serial, big-endian.
    pub serial: Vec<u8>,
    /// When.
    pub at: OffsetDateTime,
    /// CRL reason code (1 keyCompromise, 8 removeFromCRL …).
    pub reason: Option<u8>,
}

impl RevokedEntry {
    /// Revoked now, no reason.
    pub fn now(serial: &[u8]) -> Self {
        Self { serial: serial.to_vec(), at: OffsetDateTime::now_utc(), reason: None }
    }
}

/// What a CRL should say.
#[derive(Clone, Debug)]
pub struct CrlSpec {
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate (omitted when `None`).
    pub next_update: Option<OffsetDateTime>,
    /// cRLNumber.
    pub number: u64,
    /// For a delta CRL, the base CRL number it applies to.
    pub delta_of: Option<u64>,
    /// IssuingDistributionPoint URIs (a partition); empty for a full CRL.
    pub scope_urls: Vec<String>,
    /// FreshestCRL URLs (where deltas are).
    pub freshest_urls: Vec<String>,
    /// Entries.
    pub revoked: Vec<RevokedEntry>,
}

impl CrlSpec {
    /// A full CRL valid from a minute ago for a day.
    pub fn new(number: u64) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            this_update: now - time::Duration::minutes(1),
            next_update: Some(now + time::Duration::days(1)),
            number,
            delta_of: None,
            scope_urls: Vec::new(),
            freshest_urls: Vec::new(),
            revoked: Vec::new(),
        }
    }
}

impl Ca {
    /// Signs a CRL. DER out.
    pub fn crl(&self, spec: &CrlSpec) -> Result<Vec<u8>, Error> {
        let issuer = <x509_cert::Certificate as der::Decode>::from_der(self.cert())
            .map_err(|e| Error::Corrupt { path: "<ca certificate>".into(), message: e.to_string() })?
            .tbs_certificate
            .subject;
        let mut extensions = vec![ext("2.5.29.20", false, &CrlNumber(uint(spec.number)))];
        if let Some(base) = spec.delta_of {
            extensions.push(ext("2.5.29.27", true, &BaseCrlNumber(uint(base))));
        }
        if !spec.scope_urls.is_empty() {
            let idp = IssuingDistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(uris(&spec.scope_urls))),
                only_contains_user_certs: false,
                only_contains_ca_certs: false,
                only_some_reasons: None,
                indirect_crl: false,
                only_contains_attribute_certs: false,
            };
            extensions.push(ext("2.5.29.28", true, &idp));
        }
        if !spec.freshest_urls.is_empty() {
            let points = vec![DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(uris(&spec.freshest_urls))),
                reasons: None,
                crl_issuer: None,
            }];
            extensions.push(ext("2.5.29.46", false, &FreshestCrl(points)));
        }
        let revoked: Vec<RevokedCert> = spec
            .revoked
            .iter()
            .map(|r| RevokedCert {
                serial_number: SerialNumber::new(&r.serial).expect("test serials are valid"),
                revocation_date: x509_time(r.at),
                crl_entry_extensions: r.reason.map(|code| vec![ext("2.5.29.21", false, &reason(code))]),
            })
            .collect();
        let tbs = TbsCertList {
            version: x509_cert::Version::V2,
            signature: signature_algorithm(self.key()),
            issuer,
            this_update: x509_time(spec.this_update),
            next_update: spec.next_update.map(x509_time),
            revoked_certificates: (!revoked.is_empty()).then_some(revoked),
            crl_extensions: Some(extensions),
        };
        let tbs_der = tbs.to_der().expect("a CRL body encodes");
        let signature = sign(self.key(), &tbs_der)?;
        let list = CertificateList {
            signature_algorithm: tbs.signature.clone(),
            tbs_cert_list: tbs,
            signature: BitString::from_bytes(&signature).expect("a signature fits a BIT STRING"),
        };
        Ok(list.to_der().expect("a CRL encodes"))
    }
}

fn uint(n: u64) -> Uint {
    Uint::new(&n.to_be_bytes()).expect("a u64 is a valid INTEGER")
}

fn uris(urls: &[String]) -> Vec<GeneralName> {
    urls.iter()
        .map(|u| GeneralName::UniformResourceIdentifier(Ia5String::new(u).expect("test URLs are ASCII")))
        .collect()
}

fn reason(code: u8) -> CrlReason {
    match code {
        1 => CrlReason::KeyCompromise,
        2 => CrlReason::CaCompromise,
        3 => CrlReason::AffiliationChanged,
        4 => CrlReason::Superseded,
        5 => CrlReason::CessationOfOperation,
        6 => CrlReason::CertificateHold,
        8 => CrlReason::RemoveFromCRL,
        9 => CrlReason::PrivilegeWithdrawn,
        10 => CrlReason::AaCompromise,
        _ => CrlReason::Unspecified,
    }
}

fn ext(oid: &str, critical: bool, value: &impl Encode) -> Extension {
    Extension {
        extn_id: der::asn1::ObjectIdentifier::new_unwrap(oid),
        critical,
        extn_value: OctetString::new(value.to_der().expect("extension values encode")).expect("fits"),
    }
}
