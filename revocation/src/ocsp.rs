//! RFC 6960 OCSP, as a pure function of bytes and time: build a request for a [`Subject`], then
//! judge the response — responder status, signature by the issuing CA or a delegated responder it
//! certified (id-kp-OCSPSigning, valid now), the CertID (SHA-1 or SHA-256), the nonce when one
//! was sent, and thisUpdate/nextUpdate with a bounded clock skew.

use std::time::Duration;

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use rustls_pki_types::UnixTime;
use spki::AlgorithmIdentifierOwned;
use x509_ocsp::{CertStatus, OcspResponse, OcspResponseStatus, Request, ResponderId, ResponseData, TbsRequest};
use x509_parser::prelude::FromDer;

use crate::issuer::Subject;
use crate::signature::{self, SignatureError};
use crate::{Serial, tlv};

const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const OID_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const EKU_OCSP_SIGNING: &str = "1.3.6.1.5.5.7.3.9";

/// The hash of an OCSP CertID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertIdHash {
    /// SHA-1: what RFC 5019 lightweight responders require.
    Sha1,
    /// SHA-256.
    Sha256,
}

/// An encoded OCSP request and what its response must echo.
#[derive(Clone, Debug)]
pub struct OcspRequest {
    der: Vec<u8>,
    nonce: Option<[u8; 16]>,
}

impl OcspRequest {
    /// A request for one certificate, with a fresh 16-byte nonce when `nonce` is set.
    pub fn new(subject: &Subject, hash: CertIdHash, nonce: bool) -> Self {
        let (oid, (name_hash, key_hash)) = match hash {
            CertIdHash::Sha1 => (OID_SHA1, subject.issuer.sha1_hashes()),
            CertIdHash::Sha256 => (OID_SHA256, subject.issuer.sha256_hashes()),
        };
        let nonce = nonce.then(|| {
            let mut bytes = [0u8; 16];
            SystemRandom::new().fill(&mut bytes).expect("the system RNG is available");
            bytes
        });
        let cert_id = x509_ocsp::CertId {
            hash_algorithm: AlgorithmIdentifierOwned { oid, parameters: Some(der::asn1::Null.into()) },
            issuer_name_hash: OctetString::new(name_hash).expect("a digest fits an OCTET STRING"),
            issuer_key_hash: OctetString::new(key_hash).expect("a digest fits an OCTET STRING"),
            serial_number: x509_cert::serial_number::SerialNumber::new(subject.cert.serial.as_bytes())
                .expect("serials are at most 21 octets"),
        };
        let request_extensions = nonce.map(|n| {
            let value = OctetString::new(n.to_vec()).expect("16 bytes fit").to_der().expect("encodes");
            vec![x509_cert::ext::Extension {
                extn_id: OID_NONCE,
                critical: false,
                extn_value: OctetString::new(value).expect("fits"),
            }]
        });
        let request = x509_ocsp::OcspRequest {
            tbs_request: TbsRequest {
                version: x509_ocsp::Version::V1,
                requestor_name: None,
                request_list: vec![Request { req_cert: cert_id, single_request_extensions: None }],
                request_extensions,
            },
            optional_signature: None,
        };
        Self { der: request.to_der().expect("an OCSP request always encodes"), nonce }
    }

    /// The DER request, for POST.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The nonce sent, if any.
    pub fn nonce(&self) -> Option<&[u8]> {
        self.nonce.as_ref().map(|n| n.as_slice())
    }

    /// The GET URL for `responder` (RFC 6960 appendix A.1: base64, then URL-encoded).
    pub fn get_url(&self, responder: &str) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.der);
        let mut url = String::with_capacity(responder.len() + b64.len() + 16);
        url.push_str(responder);
        if !responder.ends_with('/') {
            url.push('/');
        }
        for c in b64.chars() {
            match c {
                '+' => url.push_str("%2B"),
                '/' => url.push_str("%2F"),
                '=' => url.push_str("%3D"),
                c => url.push(c),
            }
        }
        url
    }
}

/// What the responder said about the certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OcspCertStatus {
    /// Not revoked.
    Good,
    /// Revoked at this time (seconds since the epoch), with an optional CRL reason code.
    Revoked {
        /// revocationTime.
        at: u64,
        /// revocationReason.
        reason: Option<u8>,
    },
    /// The responder does not know the certificate.
    Unknown,
}

/// A response that passed every check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OcspAnswer {
    /// The certificate's status.
    pub status: OcspCertStatus,
    /// thisUpdate, seconds since the epoch.
    pub this_update: u64,
    /// nextUpdate, when given.
    pub next_update: Option<u64>,
}

/// Why a response was not believed. Every variant means "Unknown" to the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OcspError {
    /// The responder answered with an error status (`tryLater`, `unauthorized` …).
    #[error("responder status {0:?}")]
    Responder(OcspResponseStatus),
    /// Not an OCSP response, or a malformed one.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// A successful response of a type other than id-pkix-ocsp-basic.
    #[error("unsupported response type {0}")]
    UnsupportedType(String),
    /// The signature does not verify, or uses a refused algorithm.
    #[error("response signature: {0}")]
    Signature(SignatureError),
    /// Signed by someone the issuing CA did not authorise.
    #[error("responder not authorised: {0}")]
    UnauthorisedResponder(&'static str),
    /// No single response for this certificate (another serial, issuer or hash algorithm).
    #[error("no response for this certificate")]
    NoMatchingResponse,
    /// A nonce was sent and the response carries another (or none).
    #[error("nonce {0}")]
    Nonce(&'static str),
    /// thisUpdate is in the future beyond the allowed skew.
    #[error("response is not yet valid (thisUpdate {this_update})")]
    NotYetValid {
        /// thisUpdate.
        this_update: u64,
    },
    /// nextUpdate has passed beyond the allowed skew.
    #[error("response is stale (nextUpdate {next_update})")]
    Stale {
        /// nextUpdate.
        next_update: u64,
    },
    /// A critical extension this implementation does not know.
    #[error("unsupported critical extension {0}")]
    UnsupportedCriticalExtension(String),
}

impl OcspError {
    /// A stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            OcspError::Responder(OcspResponseStatus::TryLater) => "try_later",
            OcspError::Responder(OcspResponseStatus::Unauthorized) => "unauthorized",
            OcspError::Responder(OcspResponseStatus::MalformedRequest) => "malformed_request",
            OcspError::Responder(OcspResponseStatus::InternalError) => "internal_error",
            OcspError::Responder(OcspResponseStatus::SigRequired) => "sig_required",
            OcspError::Responder(OcspResponseStatus::Successful) => "successful",
            OcspError::Malformed(_) => "malformed",
            OcspError::UnsupportedType(_) => "unsupported_type",
            OcspError::Signature(_) => "bad_signature",
            OcspError::UnauthorisedResponder(_) => "unauthorised_responder",
            OcspError::NoMatchingResponse => "no_matching_response",
            OcspError::Nonce(_) => "nonce",
            OcspError::NotYetValid { .. } => "not_yet_valid",
            OcspError::Stale { .. } => "stale",
            OcspError::UnsupportedCriticalExtension(_) => "critical_extension",
        }
    }
}

/// Judges `response` to `request` about `subject` at `now`.
pub fn evaluate(
    response: &[u8],
    request: &OcspRequest,
    subject: &Subject,
    now: UnixTime,
    skew: Duration,
) -> Result<OcspAnswer, OcspError> {
    let outer = OcspResponse::from_der(response).map_err(|e| OcspError::Malformed(e.to_string()))?;
    if outer.response_status != OcspResponseStatus::Successful {
        return Err(OcspError::Responder(outer.response_status));
    }
    let bytes =
        outer.response_bytes.ok_or_else(|| OcspError::Malformed("successful response without responseBytes".into()))?;
    if bytes.response_type != OID_BASIC {
        return Err(OcspError::UnsupportedType(bytes.response_type.to_string()));
    }
    let basic = RawBasic::split(bytes.response.as_bytes())?;
    let data = ResponseData::from_der(basic.tbs).map_err(|e| OcspError::Malformed(e.to_string()))?;

    let signer_spki = authorised_signer(&data.responder_id, &basic.certs, subject, now, skew)?;
    signature::verify(&signer_spki, basic.signature_algorithm, basic.tbs, basic.signature)
        .map_err(OcspError::Signature)?;

    if let Some(extensions) = &data.response_extensions {
        refuse_unknown_critical(extensions.iter())?;
    }
    if let Some(sent) = request.nonce() {
        match data.nonce() {
            Some(got) if got.0.as_bytes() == sent => {}
            Some(_) => return Err(OcspError::Nonce("does not match the request")),
            None => return Err(OcspError::Nonce("missing from the response")),
        }
    }

    let single = data
        .responses
        .iter()
        .find(|single| matches_subject(&single.cert_id, subject))
        .ok_or(OcspError::NoMatchingResponse)?;
    if let Some(extensions) = &single.single_extensions {
        refuse_unknown_critical(extensions.iter())?;
    }
    let this_update = secs(&single.this_update);
    let next_update = single.next_update.as_ref().map(secs);
    let now_s = now.as_secs();
    if this_update > now_s.saturating_add(skew.as_secs()) {
        return Err(OcspError::NotYetValid { this_update });
    }
    if let Some(next_update) = next_update
        && now_s > next_update.saturating_add(skew.as_secs())
    {
        return Err(OcspError::Stale { next_update });
    }
    let status = match &single.cert_status {
        CertStatus::Good(_) => OcspCertStatus::Good,
        CertStatus::Revoked(info) => {
            OcspCertStatus::Revoked { at: secs(&info.revocation_time), reason: info.revocation_reason.map(|r| r as u8) }
        }
        CertStatus::Unknown(_) => OcspCertStatus::Unknown,
    };
    Ok(OcspAnswer { status, this_update, next_update })
}

/// BasicOCSPResponse split into raw parts, so the signature is checked over the bytes received.
struct RawBasic<'a> {
    tbs: &'a [u8],
    signature_algorithm: &'a [u8],
    signature: &'a [u8],
    certs: Vec<&'a [u8]>,
}

impl<'a> RawBasic<'a> {
    fn split(der: &'a [u8]) -> Result<Self, OcspError> {
        let bad = |what: &str| OcspError::Malformed(format!("BasicOCSPResponse: {what}"));
        let (_, body, rest) = tlv::expect(der, 0x30).ok_or_else(|| bad("not a SEQUENCE"))?;
        if !rest.is_empty() {
            return Err(bad("trailing data"));
        }
        let (tbs, _, body) = tlv::expect(body, 0x30).ok_or_else(|| bad("tbsResponseData"))?;
        let (signature_algorithm, _, body) = tlv::expect(body, 0x30).ok_or_else(|| bad("signatureAlgorithm"))?;
        let (_, bits, body) = tlv::expect(body, 0x03).ok_or_else(|| bad("signature"))?;
        // BIT STRING: first octet counts unused bits, which a signature never has.
        let signature = match bits.split_first() {
            Some((0, sig)) => sig,
            _ => return Err(bad("signature bit string")),
        };
        let mut certs = Vec::new();
        if !body.is_empty() {
            let (_, explicit, rest) = tlv::expect(body, 0xa0).ok_or_else(|| bad("certs"))?;
            if !rest.is_empty() {
                return Err(bad("trailing data after certs"));
            }
            let (_, mut list, _) = tlv::expect(explicit, 0x30).ok_or_else(|| bad("certs sequence"))?;
            while !list.is_empty() {
                let (cert, _, rest) = tlv::expect(list, 0x30).ok_or_else(|| bad("certificate"))?;
                certs.push(cert);
                list = rest;
            }
        }
        Ok(Self { tbs, signature_algorithm, signature, certs })
    }
}

/// The SPKI that must have signed the response: the issuing CA's, or that of a responder
/// certificate the CA issued for OCSP signing (RFC 6960 §4.2.2.2).
fn authorised_signer(
    responder: &ResponderId,
    certs: &[&[u8]],
    subject: &Subject,
    now: UnixTime,
    skew: Duration,
) -> Result<Vec<u8>, OcspError> {
    let issuer = &subject.issuer;
    let is_issuer = match responder {
        ResponderId::ByName(name) => name.to_der().is_ok_and(|n| n == issuer.subject_der()),
        ResponderId::ByKey(hash) => hash.as_bytes() == issuer.sha1_hashes().1,
    };
    if is_issuer {
        return Ok(issuer.spki_der().to_vec());
    }
    let delegate = certs
        .iter()
        .filter_map(|der| x509_parser::parse_x509_certificate(der).ok().map(|(_, c)| c))
        .find(|cert| match responder {
            ResponderId::ByName(name) => name.to_der().is_ok_and(|n| n == cert.subject().as_raw()),
            ResponderId::ByKey(hash) => {
                digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, cert.public_key().subject_public_key.data.as_ref())
                    .as_ref()
                    == hash.as_bytes()
            }
        })
        .ok_or(OcspError::UnauthorisedResponder("the signer is neither the issuing CA nor a certificate it sent"))?;
    if delegate.issuer().as_raw() != issuer.subject_der() {
        return Err(OcspError::UnauthorisedResponder("responder certificate is not issued by the certificate's CA"));
    }
    let (_, issuer_spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(issuer.spki_der())
        .map_err(|_| OcspError::Malformed("issuer key".into()))?;
    signature::verify_parsed(
        &issuer_spki,
        &delegate.signature_algorithm,
        delegate.tbs_certificate.as_ref(),
        delegate.signature_value.data.as_ref(),
    )
    .map_err(|_| OcspError::UnauthorisedResponder("responder certificate is not signed by the certificate's CA"))?;
    let ocsp_signing = delegate.extended_key_usage().ok().flatten().is_some_and(|eku| {
        eku.value.ocsp_signing || eku.value.other.iter().any(|o| o.to_id_string() == EKU_OCSP_SIGNING)
    });
    if !ocsp_signing {
        return Err(OcspError::UnauthorisedResponder("responder certificate lacks id-kp-OCSPSigning"));
    }
    let validity = delegate.validity();
    let (nb, na) = (validity.not_before.timestamp(), validity.not_after.timestamp());
    let now_s = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let skew = i64::try_from(skew.as_secs()).unwrap_or(0);
    if now_s + skew < nb || now_s - skew > na {
        return Err(OcspError::UnauthorisedResponder("responder certificate is outside its validity"));
    }
    Ok(delegate.public_key().raw.to_vec())
}

fn matches_subject(id: &x509_ocsp::CertId, subject: &Subject) -> bool {
    let (name, key) = if id.hash_algorithm.oid == OID_SHA1 {
        subject.issuer.sha1_hashes()
    } else if id.hash_algorithm.oid == OID_SHA256 {
        subject.issuer.sha256_hashes()
    } else {
        return false;
    };
    id.issuer_name_hash.as_bytes() == name
        && id.issuer_key_hash.as_bytes() == key
        && Serial::from_der_bytes(id.serial_number.as_bytes()).is_ok_and(|s| s == subject.cert.serial)
}

fn refuse_unknown_critical<'a>(
    extensions: impl Iterator<Item = &'a x509_cert::ext::Extension>,
) -> Result<(), OcspError> {
    for ext in extensions {
        if ext.critical && ext.extn_id != OID_NONCE {
            return Err(OcspError::UnsupportedCriticalExtension(ext.extn_id.to_string()));
        }
    }
    Ok(())
}

fn secs(t: &x509_ocsp::OcspGeneralizedTime) -> u64 {
    t.0.to_unix_duration().as_secs()
}
