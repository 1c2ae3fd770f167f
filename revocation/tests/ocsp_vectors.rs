//! Public OCSP vectors (RustCrypto x509-ocsp, pyca/cryptography, real responder output gathered by
//! certval) against [`evaluate`], the judgement every OCSP answer of the gateway passes.
//! Responses whose issuer ships with them are judged in full at a fixed time inside their
//! validity and must give the status the responder signed — and be refused for a serial they do
//! not list, and again at the wall clock once nextUpdate (or the delegated responder's
//! certificate) has passed. Error and empty responses must be refused with their label whoever
//! asks. Responses whose issuer is not shipped cannot be verified; they must be refused for an
//! unrelated certificate, and for an impostor CA that has the response's names but not its keys,
//! so neither parsing nor names alone ever yield an answer. Requests are decoded with x509-ocsp,
//! and where their issuer ships, [`OcspRequest::new`] must build the same CertID. Every file of
//! the corpus is accounted for: a vector with its expectation, or supporting material. Outcomes
//! that knowingly differ from a vector's expectation are listed in
//! `ocsp-vectors-exceptions.toml` with the reason; a listed outcome that no longer differs fails
//! the test. The corpus is read from `$SPINEGATE_TESTDATA/ocsp`, else from `../shared/testdata`
//! beside the workspace; without it the test says so and checks nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use der::{Decode, Encode};
use rustls_pki_types::UnixTime;
use spinegate_devpki::corpus::{self, Exceptions, Tally};
use spinegate_devpki::{Ca, KeyKind, LeafSpec};
use spinegate_revocation::issuer::{IssuingCa, Subject};
use spinegate_revocation::ocsp::{CertIdHash, OcspAnswer, OcspCertStatus, OcspError, OcspRequest, evaluate};
use spinegate_revocation::{CertId, Serial};
use time::OffsetDateTime;
use time::macros::datetime;
use x509_ocsp::{OcspResponse, ResponderId};

/// The tolerance the gateway runs with (`Options::default().clock_skew`).
const SKEW: Duration = Duration::from_secs(300);

/// How an impostor's refusal is counted: either label means no signature by its key verified.
const SIGNER: &str = "bad_signature or unauthorised_responder";
const SIGNER_REFUSALS: [&str; 2] = ["bad_signature", "unauthorised_responder"];

/// A serial no vector lists.
const UNLISTED_SERIAL: &[u8] = &[0x7f, 0x5a, 0x17, 0xa5, 0x3c];

/// What a check must come to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Good,
    Revoked,
    /// Refused with this [`OcspError::label`].
    Refused(&'static str),
    /// A request x509-ocsp decodes.
    Decoded,
    /// A request holding the CertID this crate builds.
    SameCertId,
}

/// The certificate a response is judged for.
#[derive(Clone, Copy)]
enum Who {
    /// The certificate in this corpus file.
    Cert(&'static str),
    /// A certificate of the vector's issuer known only by its serial (DER INTEGER content).
    Serial(&'static [u8]),
}

/// One corpus file and what it must give. Paths are relative to the `ocsp` folder.
enum Vector {
    /// A response with no answer in it (an error status, no or unknown responseBytes): refused
    /// with `label` whoever asks.
    Bare { file: &'static str, label: &'static str },
    /// A response whose issuing CA ships beside it, judged at `at` for each certificate of
    /// `checks`; once nextUpdate has passed it is refused with `expired` (`stale`, or
    /// `unauthorised_responder` when the delegated responder's certificate ended first).
    Verified {
        file: &'static str,
        issuer: &'static str,
        hash: CertIdHash,
        at: OffsetDateTime,
        checks: &'static [(Who, Expect)],
        expired: &'static str,
    },
    /// A response whose issuer is not shipped: refused with `label` for an unrelated certificate.
    Foreign { file: &'static str, label: &'static str },
    /// A request: whether x509-ocsp decodes it, and where its issuer ships, the certificate and
    /// hash whose CertID this crate must build identically.
    Request { file: &'static str, decodes: bool, cert_id: Option<(&'static str, Who, CertIdHash)> },
}

/// Certificates, keys and a CRL that vectors use; not vectors themselves.
const SUPPORTING: &[&str] = &[
    "certval-real-world/amazon.com/0-ta.der",
    "certval-real-world/amazon.com/1.der",
    "certval-real-world/amazon.com/2-target.der",
    "certval-real-world/amazon.com/2-target.pem",
    "certval-real-world/ocsp_direct_ca/ca.der",
    "certval-real-world/ocsp_direct_ca/ee.der",
    "certval-real-world/ocsp_dod/47.der",
    "certval-real-world/ocsp_dod/ca63.der",
    "certval-real-world/ocsp_dod/root_ca3.der",
    "certval-real-world/ocsp_tests/1.der",
    "certval-real-world/ocsp_tests/2.der",
    "rustcrypto-x509-ocsp/rsa-2048-sha256-ca-crl.der",
    "rustcrypto-x509-ocsp/rsa-2048-sha256-ca-key.der",
    "rustcrypto-x509-ocsp/rsa-2048-sha256-ca.der",
    "rustcrypto-x509-ocsp/rsa-2048-sha256-crt-key.der",
    "rustcrypto-x509-ocsp/rsa-2048-sha256-crt.der",
    "rustcrypto-x509-ocsp/rsa-2048-sha256-ocsp-crt-key.der",
    "rustcrypto-x509-ocsp/rsa-2048-sha256-ocsp-crt.der",
];

const RC_CA: &str = "rustcrypto-x509-ocsp/rsa-2048-sha256-ca.der";
const DOD_CA63: &str = "certval-real-world/ocsp_dod/ca63.der";
/// The serial (65537) of RustCrypto's synthetic responses; no certificate with it ships.
const RC_SERIAL: Who = Who::Serial(&[0x01, 0x00, 0x01]);
/// RustCrypto's synthetic responses are all dated this instant (thisUpdate = nextUpdate).
const RC_SYNTHETIC_TIME: OffsetDateTime = datetime!(2020-01-01 00:00 UTC);
/// Their delegated responder (CN=rsa-2048-sha256-ocsp-crt) is named but its certificate is not
/// in the response (at most the CA's is), so no signer the CA authorised can be found.
const NO_RESPONDER_CERT: &[(Who, Expect)] = &[(RC_SERIAL, Expect::Refused("unauthorised_responder"))];

/// One of RustCrypto's synthetic responses: all are about [`RC_SERIAL`] of [`RC_CA`], dated
/// [`RC_SYNTHETIC_TIME`], and refused for want of their responder's certificate
/// ([`NO_RESPONDER_CERT`]); they differ in file and CertID hash.
const fn rc_synthetic_response(file: &'static str, hash: CertIdHash) -> Vector {
    Vector::Verified {
        file,
        issuer: RC_CA,
        hash,
        at: RC_SYNTHETIC_TIME,
        checks: NO_RESPONDER_CERT,
        expired: "unauthorised_responder",
    }
}

/// One of RustCrypto's requests about [`RC_SERIAL`] of [`RC_CA`], which must decode and hold the
/// CertID this crate builds with `hash`.
const fn rc_request(file: &'static str, hash: CertIdHash) -> Vector {
    Vector::Request { file, decodes: true, cert_id: Some((RC_CA, RC_SERIAL, hash)) }
}

const VECTORS: &[Vector] = &[
    // --- Error statuses and responses with nothing to read ---
    Vector::Bare { file: "rustcrypto-x509-ocsp/ocsp-try-later.der", label: "try_later" },
    Vector::Bare { file: "rustcrypto-x509-ocsp/ocsp-unauthorized.der", label: "unauthorized" },
    Vector::Bare { file: "rustcrypto-x509-ocsp/ocsp-malformed.der", label: "malformed_request" },
    Vector::Bare { file: "rustcrypto-x509-ocsp/ocsp-internal-error.der", label: "internal_error" },
    Vector::Bare { file: "rustcrypto-x509-ocsp/ocsp-sig-required.der", label: "sig_required" },
    Vector::Bare { file: "pyca-cryptography/resp-unauthorized.der", label: "unauthorized" },
    // responseStatus 2 is not an OCSPResponseStatus at all.
    Vector::Bare { file: "pyca-cryptography/resp-unknown-response-status.der", label: "malformed" },
    Vector::Bare { file: "pyca-cryptography/resp-successful-no-response-bytes.der", label: "malformed" },
    Vector::Bare { file: "pyca-cryptography/resp-response-type-unknown-oid.der", label: "unsupported_type" },
    // --- Issuer shipped: judged in full ---
    // Signed by the issuing root itself, responder by key hash.
    Vector::Verified {
        file: "certval-real-world/amazon.com/1-ocsp.ocspResp",
        issuer: "certval-real-world/amazon.com/0-ta.der",
        hash: CertIdHash::Sha1,
        at: datetime!(2022-03-05 12:00 UTC),
        checks: &[(Who::Cert("certval-real-world/amazon.com/1.der"), Expect::Good)],
        expired: "stale",
    },
    Vector::Verified {
        file: "certval-real-world/amazon.com/2-ocsp.ocspResp",
        issuer: "certval-real-world/amazon.com/1.der",
        hash: CertIdHash::Sha1,
        at: datetime!(2022-03-05 12:00 UTC),
        checks: &[(Who::Cert("certval-real-world/amazon.com/2-target.der"), Expect::Good)],
        expired: "stale",
    },
    // Signed by the CA, responder by name, nextUpdate in 2036.
    Vector::Verified {
        file: "certval-real-world/ocsp_direct_ca/resp.der",
        issuer: "certval-real-world/ocsp_direct_ca/ca.der",
        hash: CertIdHash::Sha1,
        at: datetime!(2026-07-16 00:00 UTC),
        checks: &[(Who::Cert("certval-real-world/ocsp_direct_ca/ee.der"), Expect::Good)],
        expired: "stale",
    },
    // Delegated responder (DOD NIPRNET OCSP 15T 2, certificate to 2026-08-18), nonce in the
    // response; the request here carries none, so none is demanded.
    Vector::Verified {
        file: "certval-real-world/ocsp_dod/47-ocsp-resp.der",
        issuer: DOD_CA63,
        hash: CertIdHash::Sha1,
        at: datetime!(2026-07-16 00:00 UTC),
        checks: &[(Who::Cert("certval-real-world/ocsp_dod/47.der"), Expect::Good)],
        expired: "unauthorised_responder",
    },
    // The same CA's responder (OCSP 11D 3, certificate to 2023-12-15) answering for 20 serials.
    Vector::Verified {
        file: "rustcrypto-x509-ocsp/DODEMAILCA_63-resp.der",
        issuer: DOD_CA63,
        hash: CertIdHash::Sha1,
        at: datetime!(2023-11-08 00:00 UTC),
        checks: &[
            (Who::Serial(&[0x07, 0xab, 0x85]), Expect::Good),
            (Who::Serial(&[0x07, 0xab, 0x86]), Expect::Revoked),
            (Who::Serial(&[0x07, 0xab, 0x87]), Expect::Revoked),
            (Who::Serial(&[0x07, 0xab, 0x88]), Expect::Good),
            (Who::Serial(&[0x07, 0xab, 0x89]), Expect::Good),
            (Who::Serial(&[0x07, 0xab, 0x8a]), Expect::Good),
            (Who::Serial(&[0x07, 0xab, 0x8b]), Expect::Good),
            (Who::Serial(&[0x07, 0xab, 0x8c]), Expect::Revoked),
            (Who::Serial(&[0x07, 0xab, 0x8d]), Expect::Revoked),
            (Who::Serial(&[0x07, 0xab, 0x8e]), Expect::Good),
            (Who::Serial(&[0x07, 0xab, 0x8f]), Expect::Good),
            (Who::Serial(&[0x07, 0xab, 0x90]), Expect::Good),
            (Who::Serial(&[0x07, 0xab, 0x91]), Expect::Revoked),
            (Who::Serial(&[0x07, 0xab, 0x92]), Expect::Revoked),
            (Who::Serial(&[0x07, 0xab, 0x93]), Expect::Revoked),
            (Who::Serial(&[0x07, 0xab, 0x94]), Expect::Good),
            (Who::Serial(&[0x07, 0xab, 0x95]), Expect::Revoked),
            (Who::Serial(&[0x07, 0xab, 0x96]), Expect::Good),
            (Who::Serial(&[0x07, 0xab, 0x97]), Expect::Good),
            (Who::Serial(&[0x07, 0xab, 0x98]), Expect::Good),
        ],
        expired: "unauthorised_responder",
    },
    // Delegated responder with its certificate (to 2024-11-04); the response is about serial 3,
    // not the shipped end entity (serial 2), which must find no answer in it.
    Vector::Verified {
        file: "rustcrypto-x509-ocsp/rsa-2048-sha256-revoked-ocsp-res.der",
        issuer: RC_CA,
        hash: CertIdHash::Sha1,
        at: datetime!(2024-01-01 00:00 UTC),
        checks: &[
            (Who::Serial(&[0x03]), Expect::Revoked),
            (Who::Cert("rustcrypto-x509-ocsp/rsa-2048-sha256-crt.der"), Expect::Refused("no_matching_response")),
        ],
        expired: "unauthorised_responder",
    },
    rc_synthetic_response("rustcrypto-x509-ocsp/sha1-certid-ocsp-res.der", CertIdHash::Sha1),
    rc_synthetic_response("rustcrypto-x509-ocsp/sha256-certid-ocsp-res.der", CertIdHash::Sha256),
    rc_synthetic_response("rustcrypto-x509-ocsp/sha512-certid-ocsp-res.der", CertIdHash::Sha256),
    rc_synthetic_response("rustcrypto-x509-ocsp/ocsp-multiple-exts-res.der", CertIdHash::Sha1),
    rc_synthetic_response("rustcrypto-x509-ocsp/ocsp-multiple-responses-res.der", CertIdHash::Sha1),
    // Responder by key hash of the delegated responder, whose certificate is not included.
    rc_synthetic_response("rustcrypto-x509-ocsp/ocsp-by-key-res.der", CertIdHash::Sha1),
    // Signed by the delegated responder (openssl verifies it given that certificate out of band),
    // which the response does not carry.
    rc_synthetic_response("rustcrypto-x509-ocsp/ocsp-dtm-no-chain-res.der", CertIdHash::Sha1),
    // --- Issuer not shipped: refused for an unrelated certificate ---
    Vector::Foreign { file: "pyca-cryptography/ocsp-army.deps.mil-resp.der", label: "unauthorised_responder" },
    Vector::Foreign { file: "pyca-cryptography/resp-delegate-unknown-cert.der", label: "unauthorised_responder" },
    Vector::Foreign { file: "pyca-cryptography/resp-invalid-signature-oid.der", label: "unauthorised_responder" },
    // ResponseData version 2 (only v1 exists): x509-ocsp does not decode it.
    Vector::Foreign { file: "pyca-cryptography/resp-invalid-version.der", label: "malformed" },
    Vector::Foreign { file: "pyca-cryptography/resp-responder-key-hash.der", label: "unauthorised_responder" },
    Vector::Foreign { file: "pyca-cryptography/resp-revoked-no-next-update.der", label: "unauthorised_responder" },
    Vector::Foreign { file: "pyca-cryptography/resp-revoked-reason.der", label: "unauthorised_responder" },
    Vector::Foreign { file: "pyca-cryptography/resp-revoked.der", label: "unauthorised_responder" },
    Vector::Foreign { file: "pyca-cryptography/resp-sct-extension.der", label: "unauthorised_responder" },
    Vector::Foreign { file: "pyca-cryptography/resp-sha256.der", label: "unauthorised_responder" },
    Vector::Foreign { file: "pyca-cryptography/resp-single-extension-reason.der", label: "unauthorised_responder" },
    Vector::Foreign { file: "pyca-cryptography/resp-unknown-extension.der", label: "unauthorised_responder" },
    Vector::Foreign { file: "pyca-cryptography/resp-unknown-hash-alg.der", label: "unauthorised_responder" },
    // --- Requests ---
    Vector::Request {
        file: "certval-real-world/ocsp_dod/47-ocsp-req.der",
        decodes: true,
        cert_id: Some((DOD_CA63, Who::Cert("certval-real-world/ocsp_dod/47.der"), CertIdHash::Sha1)),
    },
    Vector::Request {
        file: "certval-real-world/ocsp_tests/2-ocsp.ocspReq",
        decodes: true,
        cert_id: Some((
            "certval-real-world/ocsp_tests/1.der",
            Who::Cert("certval-real-world/ocsp_tests/2.der"),
            CertIdHash::Sha1,
        )),
    },
    rc_request("rustcrypto-x509-ocsp/sha1-certid-ocsp-req.der", CertIdHash::Sha1),
    rc_request("rustcrypto-x509-ocsp/sha256-certid-ocsp-req.der", CertIdHash::Sha256),
    rc_request("rustcrypto-x509-ocsp/ocsp-multiple-exts-clean-req.der", CertIdHash::Sha1),
    rc_request("rustcrypto-x509-ocsp/ocsp-multiple-requests-req.der", CertIdHash::Sha1),
    rc_request("rustcrypto-x509-ocsp/ocsp-multiple-requests-nonce-req.der", CertIdHash::Sha1),
    rc_request("rustcrypto-x509-ocsp/ocsp-signed-req.der", CertIdHash::Sha1),
    // This crate builds SHA-1 and SHA-256 CertIDs only.
    Vector::Request { file: "rustcrypto-x509-ocsp/sha224-certid-ocsp-req.der", decodes: true, cert_id: None },
    Vector::Request { file: "rustcrypto-x509-ocsp/sha384-certid-ocsp-req.der", decodes: true, cert_id: None },
    Vector::Request { file: "rustcrypto-x509-ocsp/sha512-certid-ocsp-req.der", decodes: true, cert_id: None },
    Vector::Request { file: "pyca-cryptography/ocsp-army.inapplicable-req.der", decodes: true, cert_id: None },
    Vector::Request { file: "pyca-cryptography/ocsp-army.revoked-req.der", decodes: true, cert_id: None },
    Vector::Request { file: "pyca-cryptography/ocsp-army.valid-req.der", decodes: true, cert_id: None },
    Vector::Request { file: "pyca-cryptography/req-acceptable-responses.der", decodes: true, cert_id: None },
    Vector::Request { file: "pyca-cryptography/req-duplicate-ext.der", decodes: true, cert_id: None },
    Vector::Request { file: "pyca-cryptography/req-ext-nonce.der", decodes: true, cert_id: None },
    Vector::Request { file: "pyca-cryptography/req-ext-unknown-oid.der", decodes: true, cert_id: None },
    Vector::Request { file: "pyca-cryptography/req-invalid-hash-alg.der", decodes: true, cert_id: None },
    // TBSRequest version encoded wrongly: x509-ocsp does not decode it.
    Vector::Request { file: "pyca-cryptography/req-invalid-version.der", decodes: false, cert_id: None },
    Vector::Request { file: "pyca-cryptography/req-multi-sha1.der", decodes: true, cert_id: None },
    Vector::Request { file: "pyca-cryptography/req-sha1.der", decodes: true, cert_id: None },
];

/// What a check came to, in the same terms as [`Expect`].
type Got = Result<Expect, String>;

/// The checks run so far: their outcomes, their count by kind, every check's id (each runs
/// once), and the exceptions they are held to.
#[derive(Default)]
struct Run {
    exceptions: Exceptions,
    tally: Tally,
    by_kind: BTreeMap<&'static str, usize>,
    seen: BTreeSet<String>,
}

/// A devpki end entity, of a devpki CA, that no vector was made for.
static UNRELATED: LazyLock<Subject> = LazyLock::new(|| {
    let ca = Ca::root("Unrelated OCSP Vector CA", KeyKind::EcdsaP256).expect("devpki makes a CA");
    let leaf = ca.issue(&LeafSpec::smartcard("555000000001", "Vector", "Nobody")).expect("devpki issues");
    let issuer = Arc::new(IssuingCa::from_cert_der(ca.cert()).expect("a devpki CA describes an issuer"));
    Subject::from_cert_der(&leaf.cert, issuer).expect("a devpki certificate is a subject")
});

#[test]
fn ocsp_vectors_are_judged_refused_or_decoded_as_expected() {
    let dir = corpus::dir("ocsp");
    if !dir.join("INDEX.md").is_file() {
        corpus::announce_missing(&dir, "OCSP vector");
        return;
    }
    let exceptions = Exceptions::parse("ocsp-vectors-exceptions.toml", include_str!("ocsp-vectors-exceptions.toml"));
    let mut run = Run { exceptions, ..Run::default() };
    account_for_files(&dir, &mut run.tally);
    for vector in VECTORS {
        match vector {
            Vector::Bare { file, label } | Vector::Foreign { file, label } => {
                let kind = if matches!(vector, Vector::Bare { .. }) { "bare" } else { "foreign" };
                let got = judge(&read(&dir, file), &UNRELATED, UnixTime::now(), CertIdHash::Sha1);
                run.record(kind, format!("{file} (unrelated certificate)"), Expect::Refused(label), got);
                if kind == "foreign" {
                    impostors(&dir, file, &mut run);
                }
            }
            Vector::Verified { file, issuer, hash, at, checks, expired } => {
                verified(&dir, file, issuer, *hash, unix(*at), checks, expired, &mut run);
            }
            Vector::Request { file, decodes, cert_id } => {
                request(&dir, file, *decodes, cert_id.as_ref(), &mut run);
            }
        }
    }
    run.tally.stale_unless_seen(&run.exceptions, &run.seen, "no such check");
    run.report();
    run.tally.assert_clean("OCSP vector outcomes");
}

/// A response whose issuer ships: each listed certificate at `at`, a serial it does not list, and
/// each certificate again at the wall clock.
#[allow(clippy::too_many_arguments)] // one vector's fields, spelled out
fn verified(
    dir: &Path,
    file: &str,
    issuer_file: &str,
    hash: CertIdHash,
    at: UnixTime,
    checks: &[(Who, Expect)],
    expired: &'static str,
    run: &mut Run,
) {
    let response = read(dir, file);
    let issuer = issuer(dir, issuer_file);
    let now = UnixTime::now();
    let mut believed = false;
    for (who, expect) in checks {
        let subject = subject(dir, &issuer, *who);
        let answer = judged(&response, &subject, at, hash);
        believed |= matches!(answer, Ok(Ok(_)));
        let name = who.name();
        run.record("verified", format!("{file} for {name} at {}", at.as_secs()), *expect, got(&answer));
        // At the wall clock: the same answer while it is fresh, a refusal once it is not.
        let later = match &answer {
            Ok(Ok(a)) if a.next_update.is_some_and(|n| now.as_secs() > n.saturating_add(SKEW.as_secs())) => {
                Expect::Refused(expired)
            }
            _ => *expect,
        };
        let now_got = match (got(&judged(&response, &subject, now, hash)), later) {
            // Refused then, refused now: by then an earlier check (the responder certificate's
            // validity) may be the one that refuses.
            (Ok(Expect::Refused(_)), Expect::Refused(_)) if matches!(expect, Expect::Refused(_)) => Ok(later),
            (other, _) => other,
        };
        run.record("verified", format!("{file} for {name} now"), later, now_got);
    }
    if believed {
        let subject = subject(dir, &issuer, Who::Serial(UNLISTED_SERIAL));
        let got = got(&judged(&response, &subject, at, hash));
        run.record("verified", format!("{file} for an unlisted serial"), Expect::Refused("no_matching_response"), got);
    }
}

/// A foreign response judged for CAs that carry its names (the responder's, and the issuer of
/// each certificate it includes) with an unrelated key and its first serial: never believed.
fn impostors(dir: &Path, file: &str, run: &mut Run) {
    let response = read(dir, file);
    let Some((names, serial)) = names_and_serial(&response) else { return };
    let key = Ca::root("Impostor", KeyKind::EcdsaP256).expect("devpki makes a CA");
    let (_, key_cert) = x509_parser::parse_x509_certificate(key.cert()).expect("devpki certificates parse");
    for (index, name) in names.iter().enumerate() {
        let Ok(impostor) = IssuingCa::new(name, key_cert.public_key().raw) else { continue };
        let issuer = Arc::new(impostor);
        let subject = serial_subject(issuer, serial.clone());
        let got = match judged(&response, &subject, UnixTime::now(), CertIdHash::Sha1) {
            // The impostor's key signed nothing here: the response signature (when the impostor
            // is the named responder) or the responder certificate's (when it is that
            // certificate's issuer) fails.
            Ok(Err(e)) if SIGNER_REFUSALS.contains(&e.label()) => Ok(Expect::Refused(SIGNER)),
            other => got(&other),
        };
        let id = format!("{file} (impostor CA named by the response, name {index})");
        run.record("impostor", id, Expect::Refused(SIGNER), got);
    }
}

/// The names an impostor would borrow: a by-name responder's, and every included certificate's
/// issuer; with the first single response's serial.
fn names_and_serial(response: &[u8]) -> Option<(Vec<Vec<u8>>, Serial)> {
    let outer = OcspResponse::from_der(response).ok()?;
    let bytes = outer.response_bytes?;
    let basic = x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes()).ok()?;
    let data = &basic.tbs_response_data;
    let mut names = Vec::new();
    if let ResponderId::ByName(name) = &data.responder_id {
        names.push(name.to_der().ok()?);
    }
    for cert in basic.certs.iter().flatten() {
        names.push(cert.tbs_certificate.issuer.to_der().ok()?);
    }
    let serial = Serial::from_der_bytes(data.responses.first()?.cert_id.serial_number.as_bytes()).ok()?;
    Some((names, serial))
}

/// A request: decoded by x509-ocsp, and, where its issuer ships, holding the CertID this crate
/// builds for that certificate.
fn request(dir: &Path, file: &str, decodes: bool, cert_id: Option<&(&str, Who, CertIdHash)>, run: &mut Run) {
    let der = read(dir, file);
    let decoded = x509_ocsp::OcspRequest::from_der(&der);
    let expect = if decodes { Expect::Decoded } else { Expect::Refused("malformed") };
    let got = match (&decoded, decodes) {
        (Ok(_), _) => Ok(Expect::Decoded),
        (Err(_), false) => Ok(Expect::Refused("malformed")),
        (Err(e), true) => Err(format!("x509-ocsp: {e}")),
    };
    run.record("request", format!("{file} decodes"), expect, got);
    let (Ok(theirs), Some((issuer_file, who, hash))) = (decoded, cert_id) else { return };
    let issuer = issuer(dir, issuer_file);
    let subject = subject(dir, &issuer, *who);
    let ours = x509_ocsp::OcspRequest::from_der(OcspRequest::new(&subject, *hash, false).der())
        .expect("this crate's requests decode");
    let ours = &ours.tbs_request.request_list[0].req_cert;
    let same = theirs.tbs_request.request_list.iter().any(|r| same_cert_id(&r.req_cert, ours));
    let got = if same { Ok(Expect::SameCertId) } else { Err(format!("no CertID equal to ours ({ours:?})")) };
    run.record("request", format!("{file} CertID for {}", who.name()), Expect::SameCertId, got);
}

/// CertIDs are equal when algorithm, both hashes and the serial are; the algorithm's NULL
/// parameters may be present or absent.
fn same_cert_id(a: &x509_ocsp::CertId, b: &x509_ocsp::CertId) -> bool {
    let serial = |id: &x509_ocsp::CertId| Serial::from_der_bytes(id.serial_number.as_bytes()).ok();
    a.hash_algorithm.oid == b.hash_algorithm.oid
        && a.issuer_name_hash == b.issuer_name_hash
        && a.issuer_key_hash == b.issuer_key_hash
        && serial(a).is_some_and(|s| serial(b) == Some(s))
}

/// Every corpus file is a vector or supporting material; every listed file exists.
fn account_for_files(dir: &Path, tally: &mut Tally) {
    let mut listed: BTreeSet<&str> = VECTORS.iter().map(Vector::file).collect();
    assert_eq!(listed.len(), VECTORS.len(), "a vector is listed twice");
    for file in SUPPORTING {
        assert!(listed.insert(file), "{file} is both a vector and supporting material");
    }
    let mut found = BTreeSet::new();
    walk(dir, dir, &mut found);
    found.remove("INDEX.md");
    for file in &found {
        if !listed.contains(file.as_str()) {
            tally.fail(format_args!("{file}: in the corpus, but neither a vector nor supporting material"));
        }
    }
    for file in &listed {
        if !found.contains(*file) {
            tally.fail(format_args!("{file}: listed, but not in the corpus"));
        } else if SUPPORTING.contains(file) {
            tally.count_skipped("supporting material", 1);
        }
    }
}

fn walk(root: &Path, dir: &Path, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path();
        if path.is_dir() {
            walk(root, &path, found);
        } else {
            let relative = path.strip_prefix(root).expect("walked below the root");
            found.insert(relative.to_str().expect("corpus paths are UTF-8").replace('\\', "/"));
        }
    }
}

impl Vector {
    fn file(&self) -> &'static str {
        match self {
            Vector::Bare { file, .. }
            | Vector::Verified { file, .. }
            | Vector::Foreign { file, .. }
            | Vector::Request { file, .. } => file,
        }
    }
}

impl Who {
    fn name(&self) -> String {
        match self {
            Who::Cert(file) => (*file).to_owned(),
            Who::Serial(bytes) => {
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                format!("serial {hex}")
            }
        }
    }
}

impl Run {
    /// Counts check `id` of `kind`, which must come to `expect`.
    fn record(&mut self, kind: &'static str, id: String, expect: Expect, got: Got) {
        assert!(self.seen.insert(id.clone()), "check {id} runs twice");
        *self.by_kind.entry(kind).or_default() += 1;
        let excepted = self.exceptions.contains(&id);
        let shown = match &got {
            Ok(e) => format!("{e:?}"),
            Err(why) => why.clone(),
        };
        let agrees = got.as_ref().ok() == Some(&expect);
        self.tally.record(&id, format_args!("{expect:?}"), shown, agrees, excepted);
    }

    fn report(&self) {
        self.tally.print_findings();
        println!("{}; checks by kind: {}", self.tally.summary("OCSP vectors"), corpus::counts(&self.by_kind));
    }
}

/// [`evaluate`] for `subject` with a nonce-less request, a panic caught and reported.
fn judged(
    response: &[u8],
    subject: &Subject,
    now: UnixTime,
    hash: CertIdHash,
) -> Result<Result<OcspAnswer, OcspError>, String> {
    let request = OcspRequest::new(subject, hash, false);
    corpus::guarded(|| evaluate(response, &request, subject, now, SKEW))
        .map_err(|message| format!("PANIC in evaluate: {message}"))
}

fn judge(response: &[u8], subject: &Subject, now: UnixTime, hash: CertIdHash) -> Got {
    got(&judged(response, subject, now, hash))
}

fn got(judged: &Result<Result<OcspAnswer, OcspError>, String>) -> Got {
    match judged {
        Ok(Ok(answer)) => match answer.status {
            OcspCertStatus::Good => Ok(Expect::Good),
            OcspCertStatus::Revoked { .. } => Ok(Expect::Revoked),
            OcspCertStatus::Unknown => Err("answered: certificate unknown to the responder".to_owned()),
        },
        Ok(Err(e)) => Ok(Expect::Refused(e.label())),
        Err(panic) => Err(panic.clone()),
    }
}

fn issuer(dir: &Path, file: &str) -> Arc<IssuingCa> {
    Arc::new(IssuingCa::from_cert_der(&read(dir, file)).unwrap_or_else(|e| panic!("{file}: {e}")))
}

fn subject(dir: &Path, issuer: &Arc<IssuingCa>, who: Who) -> Subject {
    match who {
        Who::Cert(file) => {
            Subject::from_cert_der(&read(dir, file), Arc::clone(issuer)).unwrap_or_else(|e| panic!("{file}: {e}"))
        }
        Who::Serial(bytes) => {
            serial_subject(Arc::clone(issuer), Serial::from_der_bytes(bytes).expect("vector serials are valid"))
        }
    }
}

/// A certificate of `issuer` known by its serial alone; OCSP reads nothing else of a subject.
fn serial_subject(issuer: Arc<IssuingCa>, serial: Serial) -> Subject {
    Subject { cert: CertId { issuer: issuer.id(), serial }, issuer, ..UNRELATED.clone() }
}

fn unix(at: OffsetDateTime) -> UnixTime {
    let secs = u64::try_from(at.unix_timestamp()).expect("vector times are after 1970");
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}
