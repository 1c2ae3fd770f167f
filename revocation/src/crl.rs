//! RFC 5280 CRLs: parsed, signature-checked against the issuing CA, and indexed by serial so a
//! lookup never scans. Delta CRLs (DeltaCRLIndicator) are recognised and applied on their base
//! ([`Partition`]); the IssuingDistributionPoint scope says which certificates a CRL covers, so
//! several partitioned CRLs per CA work side by side.
//!
//! The revoked-certificate list is walked with a TLV splitter rather than a general parser, so a
//! 200,000-entry CRL costs one small map entry per serial and no intermediate structures.

use std::collections::HashMap;
use std::time::Duration;

use x509_parser::extensions::X509Extension;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::issuer::{IssuingCa, distribution_point_urls};
use crate::signature::{self, SignatureError};
use crate::{IssuerId, Serial, tlv};

const OID_CRL_NUMBER: &str = "2.5.29.20";
const OID_DELTA_INDICATOR: &str = "2.5.29.27";
const OID_IDP: &str = "2.5.29.28";
const OID_AKI: &str = "2.5.29.35";
const OID_FRESHEST: &str = "2.5.29.46";
const OID_ISSUER_ALT_NAME: &str = "2.5.29.18";
const OID_REASON: &str = "2.5.29.21";
const OID_INVALIDITY_DATE: &str = "2.5.29.24";

/// CRL reason code `removeFromCRL`: in a delta CRL, "no longer revoked".
pub const REASON_REMOVE_FROM_CRL: u8 = 8;

/// A CRL number (or a delta's base CRL number): a non-negative INTEGER up to 20 octets, ordered
/// numerically.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CrlNumber(Box<[u8]>);

impl CrlNumber {
    fn from_integer_value(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() || bytes.len() > 21 || bytes[0] & 0x80 != 0 {
            return None;
        }
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len() - 1);
        Some(Self(bytes[start..].into()))
    }
}

impl PartialOrd for CrlNumber {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CrlNumber {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.len().cmp(&other.0.len()).then_with(|| self.0.cmp(&other.0))
    }
}

/// One revoked certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revoked {
    /// revocationDate, seconds since the epoch.
    pub at: u64,
    /// CRL reason code, when given.
    pub reason: Option<u8>,
}

/// Which certificates a CRL speaks for (its IssuingDistributionPoint).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// Distribution point names (spelled as `Subject::distribution_points`); `None` for a full
    /// CRL, whose IDP (if any) names no distribution point.
    pub names: Option<Vec<String>>,
    /// Only end-entity certificates.
    pub only_user: bool,
    /// Only CA certificates.
    pub only_ca: bool,
}

/// A parsed, verified CRL.
#[derive(Debug)]
pub struct Crl {
    issuer: IssuerId,
    number: Option<CrlNumber>,
    delta_base: Option<CrlNumber>,
    this_update: u64,
    next_update: Option<u64>,
    scope: Scope,
    freshest_urls: Vec<String>,
    revoked: HashMap<Serial, Revoked>,
}

/// A CRL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    /// Not DER, or not a CRL.
    #[error("malformed CRL: {0}")]
    Malformed(String),
    /// Issued by another CA than the one it was loaded for.
    #[error("CRL issuer is not the certificate's issuer")]
    WrongIssuer,
    /// The signature does not verify.
    #[error("CRL signature: {0}")]
    Signature(SignatureError),
    /// A critical extension this implementation does not process.
    #[error("unsupported critical extension {0}")]
    UnsupportedCriticalExtension(String),
    /// Indirect CRLs, attribute-certificate CRLs and reason-partitioned CRLs are not supported.
    #[error("unsupported CRL scope: {0}")]
    UnsupportedScope(&'static str),
}

impl CrlError {
    /// A stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            CrlError::Malformed(_) => "malformed",
            CrlError::WrongIssuer => "wrong_issuer",
            CrlError::Signature(_) => "bad_signature",
            CrlError::UnsupportedCriticalExtension(_) => "critical_extension",
            CrlError::UnsupportedScope(_) => "unsupported_scope",
        }
    }
}

fn malformed(what: &str) -> CrlError {
    CrlError::Malformed(what.to_owned())
}

impl Crl {
    /// Parses `der`, checks it was issued and signed by `issuer`, and indexes its entries.
    pub fn parse(der: &[u8], issuer: &IssuingCa) -> Result<Self, CrlError> {
        let (_, list, rest) = tlv::expect(der, 0x30).ok_or_else(|| malformed("not a SEQUENCE"))?;
        if !rest.is_empty() {
            return Err(malformed("trailing data"));
        }
        let (tbs, tbs_body, list) = tlv::expect(list, 0x30).ok_or_else(|| malformed("tbsCertList"))?;
        let (alg, _, list) = tlv::expect(list, 0x30).ok_or_else(|| malformed("signatureAlgorithm"))?;
        let (_, bits, _) = tlv::expect(list, 0x03).ok_or_else(|| malformed("signatureValue"))?;
        let signature = match bits.split_first() {
            Some((0, sig)) => sig,
            _ => return Err(malformed("signature bit string")),
        };

        let mut body = tbs_body;
        if body.first() == Some(&0x02) {
            let (_, _, rest) = tlv::split(body).ok_or_else(|| malformed("version"))?;
            body = rest;
        }
        let (_, _, rest) = tlv::expect(body, 0x30).ok_or_else(|| malformed("signature"))?;
        let (name, _, rest) = tlv::expect(rest, 0x30).ok_or_else(|| malformed("issuer"))?;
        if name != issuer.subject_der() {
            return Err(CrlError::WrongIssuer);
        }
        let (this_update, rest) = time(rest).ok_or_else(|| malformed("thisUpdate"))?;
        let (next_update, mut rest) = match rest.first() {
            Some(0x17 | 0x18) => {
                let (t, r) = time(rest).ok_or_else(|| malformed("nextUpdate"))?;
                (Some(t), r)
            }
            _ => (None, rest),
        };
        let mut entries: &[u8] = &[];
        if rest.first() == Some(&0x30) {
            let (_, value, r) = tlv::split(rest).ok_or_else(|| malformed("revokedCertificates"))?;
            entries = value;
            rest = r;
        }
        let extensions = if rest.first() == Some(&0xa0) {
            let (_, explicit, r) = tlv::split(rest).ok_or_else(|| malformed("crlExtensions"))?;
            if !r.is_empty() {
                return Err(malformed("trailing data in tbsCertList"));
            }
            let (_, list, _) = tlv::expect(explicit, 0x30).ok_or_else(|| malformed("extensions"))?;
            list
        } else if rest.is_empty() {
            &[]
        } else {
            return Err(malformed("unexpected field in tbsCertList"));
        };

        // Signature before anything else is believed.
        let (_, spki) = SubjectPublicKeyInfo::from_der(issuer.spki_der()).map_err(|_| malformed("issuer key"))?;
        let (_, alg) = x509_parser::x509::AlgorithmIdentifier::from_der(alg).map_err(|_| malformed("algorithm"))?;
        signature::verify_parsed(&spki, &alg, tbs, signature).map_err(CrlError::Signature)?;

        let mut crl = Crl {
            issuer: issuer.id(),
            number: None,
            delta_base: None,
            this_update,
            next_update,
            scope: Scope::default(),
            freshest_urls: Vec::new(),
            revoked: HashMap::new(),
        };
        crl.read_extensions(extensions, issuer.subject_der())?;
        crl.read_entries(entries)?;
        Ok(crl)
    }

    fn read_extensions(&mut self, mut list: &[u8], issuer_name: &[u8]) -> Result<(), CrlError> {
        while !list.is_empty() {
            let (ext_der, _, rest) = tlv::expect(list, 0x30).ok_or_else(|| malformed("extension"))?;
            list = rest;
            let (_, ext) = X509Extension::from_der(ext_der).map_err(|e| CrlError::Malformed(e.to_string()))?;
            match ext.oid.to_id_string().as_str() {
                OID_CRL_NUMBER => {
                    let (_, value, _) = tlv::expect(ext.value, 0x02).ok_or_else(|| malformed("CRLNumber"))?;
                    self.number = Some(CrlNumber::from_integer_value(value).ok_or_else(|| malformed("CRLNumber"))?);
                }
                OID_DELTA_INDICATOR => {
                    let (_, value, _) = tlv::expect(ext.value, 0x02).ok_or_else(|| malformed("BaseCRLNumber"))?;
                    self.delta_base =
                        Some(CrlNumber::from_integer_value(value).ok_or_else(|| malformed("BaseCRLNumber"))?);
                }
                OID_IDP => {
                    let idp =
                        crate::dp::idp(ext.value, issuer_name).ok_or_else(|| malformed("IssuingDistributionPoint"))?;
                    if idp.indirect {
                        return Err(CrlError::UnsupportedScope("indirect CRL"));
                    }
                    if idp.only_attribute_certs {
                        return Err(CrlError::UnsupportedScope("attribute certificates only"));
                    }
                    if idp.only_some_reasons {
                        return Err(CrlError::UnsupportedScope("reason-partitioned CRL"));
                    }
                    self.scope = Scope { names: idp.names, only_user: idp.only_user, only_ca: idp.only_ca };
                }
                OID_FRESHEST => {
                    let (_, points) = x509_parser::extensions::CRLDistributionPoints::from_der(ext.value)
                        .map_err(|_| malformed("FreshestCRL"))?;
                    self.freshest_urls = distribution_point_urls(points.iter());
                }
                OID_AKI | OID_ISSUER_ALT_NAME => {}
                other if ext.critical => return Err(CrlError::UnsupportedCriticalExtension(other.to_owned())),
                _ => {}
            }
        }
        Ok(())
    }

    fn read_entries(&mut self, mut list: &[u8]) -> Result<(), CrlError> {
        // Roughly 40 bytes per entry: reserve once instead of growing through rehashes.
        self.revoked.reserve(list.len() / 40);
        while !list.is_empty() {
            let (_, entry, rest) = tlv::expect(list, 0x30).ok_or_else(|| malformed("revoked entry"))?;
            list = rest;
            let (_, serial, entry) = tlv::expect(entry, 0x02).ok_or_else(|| malformed("userCertificate"))?;
            let serial = Serial::from_der_bytes(serial).map_err(|e| CrlError::Malformed(e.to_string()))?;
            let (at, entry) = time(entry).ok_or_else(|| malformed("revocationDate"))?;
            let reason = if entry.is_empty() { None } else { entry_reason(entry)? };
            self.revoked.insert(serial, Revoked { at, reason });
        }
        Ok(())
    }

    /// The issuing CA.
    pub fn issuer(&self) -> IssuerId {
        self.issuer
    }

    /// cRLNumber.
    pub fn number(&self) -> Option<&CrlNumber> {
        self.number.as_ref()
    }

    /// For a delta CRL, the base CRL number it applies to.
    pub fn delta_base(&self) -> Option<&CrlNumber> {
        self.delta_base.as_ref()
    }

    /// Whether this is a delta CRL.
    pub fn is_delta(&self) -> bool {
        self.delta_base.is_some()
    }

    /// thisUpdate.
    pub fn this_update(&self) -> u64 {
        self.this_update
    }

    /// nextUpdate.
    pub fn next_update(&self) -> Option<u64> {
        self.next_update
    }

    /// The IssuingDistributionPoint scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// FreshestCRL URLs: where delta CRLs for this base are.
    pub fn freshest_urls(&self) -> &[String] {
        &self.freshest_urls
    }

    /// The entry for `serial`.
    pub fn lookup(&self, serial: &Serial) -> Option<&Revoked> {
        self.revoked.get(serial)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    /// Whether it lists nothing.
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }

    /// Until when this CRL may be used at all: nextUpdate plus `skew`, or thisUpdate plus
    /// `max_age` for a CRL without nextUpdate.
    pub fn usable_until(&self, skew: Duration, max_age: Duration) -> u64 {
        match self.next_update {
            Some(next) => next.saturating_add(skew.as_secs()),
            None => self.this_update.saturating_add(max_age.as_secs()),
        }
    }

    /// Whether this CRL speaks for an end-entity certificate with these distribution point names
    /// (`Subject::distribution_points`).
    pub fn covers_leaf(&self, distribution_points: &[String]) -> bool {
        self.covers(distribution_points, false)
    }

    /// Whether this CRL speaks for a certificate with these distribution point names; `is_ca`
    /// for CA certificates (RFC 5280 §6.3.3 (b)).
    pub fn covers(&self, distribution_points: &[String], is_ca: bool) -> bool {
        if (self.scope.only_ca && !is_ca) || (self.scope.only_user && is_ca) {
            return false;
        }
        // A full CRL covers every certificate of the CA; a partitioned one only certificates whose
        // distribution points name one of its names.
        match &self.scope.names {
            None => true,
            Some(names) => names.iter().any(|n| distribution_points.contains(n)),
        }
    }
}

fn time(input: &[u8]) -> Option<(u64, &[u8])> {
    let (tlv, _, rest) = tlv::split(input)?;
    if !matches!(tlv.first(), Some(0x17 | 0x18)) {
        return None;
    }
    let (_, t) = ASN1Time::from_der(tlv).ok()?;
    Some((u64::try_from(t.timestamp()).unwrap_or(0), rest))
}

/// The reason code from an entry's extensions; refuses unknown critical entry extensions
/// (notably certificateIssuer, which would make the CRL indirect).
fn entry_reason(extensions: &[u8]) -> Result<Option<u8>, CrlError> {
    let (_, mut list, _) = tlv::expect(extensions, 0x30).ok_or_else(|| malformed("crlEntryExtensions"))?;
    let mut reason = None;
    while !list.is_empty() {
        let (ext_der, _, rest) = tlv::expect(list, 0x30).ok_or_else(|| malformed("entry extension"))?;
        list = rest;
        let (_, ext) = X509Extension::from_der(ext_der).map_err(|e| CrlError::Malformed(e.to_string()))?;
        match ext.oid.to_id_string().as_str() {
            OID_REASON => {
                let (_, value, _) = tlv::expect(ext.value, 0x0a).ok_or_else(|| malformed("reasonCode"))?;
                reason = value.first().copied();
            }
            OID_INVALIDITY_DATE => {}
            other if ext.critical => return Err(CrlError::UnsupportedCriticalExtension(other.to_owned())),
            _ => {}
        }
    }
    Ok(reason)
}

/// A CRL and, when one applies, its delta.
#[derive(Debug, Clone)]
pub struct Partition {
    /// The complete CRL.
    pub base: std::sync::Arc<Crl>,
    /// A delta CRL whose base number the base satisfies.
    pub delta: Option<std::sync::Arc<Crl>>,
}

/// What a partition says about one serial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrlVerdict {
    /// Listed (and not removed by the delta). Believed even from a stale CRL: revocation is
    /// permanent.
    Revoked(Revoked),
    /// Not listed, and the base is current; usable until this time (seconds since the epoch).
    NotListed {
        /// The base's usable-until, or the delta's when a current delta applies (sooner).
        until: u64,
    },
    /// Not listed, but the base is past its nextUpdate: no answer.
    Stale,
}

impl Partition {
    /// Whether `delta` may be applied to `base` (RFC 5280 §5.2.4: same scope, and the base's
    /// number is at least the delta's BaseCRLNumber).
    pub fn delta_applies(base: &Crl, delta: &Crl) -> bool {
        match (base.number(), delta.delta_base()) {
            (Some(number), Some(wanted)) => number >= wanted && base.scope == delta.scope,
            _ => false,
        }
    }

    /// The verdict for `serial` at `now`.
    pub fn verdict(&self, serial: &Serial, now: u64, skew: Duration, max_age: Duration) -> CrlVerdict {
        if let Some(delta) = &self.delta
            && let Some(entry) = delta.lookup(serial)
        {
            if entry.reason != Some(REASON_REMOVE_FROM_CRL) {
                return CrlVerdict::Revoked(*entry);
            }
        } else if let Some(entry) = self.base.lookup(serial) {
            return CrlVerdict::Revoked(*entry);
        }
        let base_until = self.base.usable_until(skew, max_age);
        if now > base_until {
            return CrlVerdict::Stale;
        }
        // A current delta is the fresher word: ask again when it ends. A stale delta adds its
        // listings (above) but not its freshness.
        let until = match &self.delta {
            Some(delta) if now <= delta.usable_until(skew, max_age) => {
                base_until.min(delta.usable_until(skew, max_age))
            }
            _ => base_until,
        };
        CrlVerdict::NotListed { until }
    }
}
