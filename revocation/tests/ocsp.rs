//! OCSP response validation against devpki-signed responses: statuses, CertID hashes, nonces,
//! delegated responders, freshness, and every way a response is refused.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::UnixTime;
use spinegate_devpki::ocsp::{CertState, error_response, respond};
use spinegate_devpki::{Ca, Issued, KeyKind, LeafSpec};
use spinegate_revocation::issuer::{IssuingCa, Subject};
use spinegate_revocation::ocsp::{CertIdHash, OcspCertStatus, OcspError, OcspRequest, evaluate};
use time::OffsetDateTime;

struct World {
    ca: Ca,
    leaf: Issued,
    subject: Subject,
}

fn world() -> World {
    let root = Ca::root("OCSP Test Root", KeyKind::EcdsaP256).unwrap();
    let ca = root.intermediate("OCSP Test Issuing", KeyKind::EcdsaP256).unwrap();
    let leaf = ca.issue(&LeafSpec::smartcard("555000000001", "A", "B").key(KeyKind::EcdsaP256)).unwrap();
    let issuer = Arc::new(IssuingCa::from_cert_der(ca.cert()).unwrap());
    let subject = Subject::from_cert_der(&leaf.cert, issuer).unwrap();
    World { ca, leaf, subject }
}

fn serial_of(issued: &Issued) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(&issued.cert).unwrap();
    cert.raw_serial().to_vec()
}

const SKEW: Duration = Duration::from_secs(300);

fn now() -> UnixTime {
    UnixTime::now()
}

fn answer(w: &World, state: Option<CertState>, hash: CertIdHash, nonce: bool) -> Result<OcspCertStatus, OcspError> {
    let request = OcspRequest::new(&w.subject, hash, nonce);
    let der =
        respond(&w.ca, None, request.der(), |_| state, OffsetDateTime::now_utc(), Duration::from_secs(3600)).unwrap();
    evaluate(&der, &request, &w.subject, now(), SKEW).map(|a| a.status)
}

#[test]
fn good_revoked_and_unknown_are_read_with_either_certid_hash() {
    let w = world();
    for hash in [CertIdHash::Sha1, CertIdHash::Sha256] {
        assert_eq!(answer(&w, Some(CertState::Good), hash, false), Ok(OcspCertStatus::Good));
        let revoked =
            answer(&w, Some(CertState::Revoked { at: OffsetDateTime::now_utc(), reason: Some(1) }), hash, false);
        assert!(matches!(revoked, Ok(OcspCertStatus::Revoked { reason: Some(1), .. })), "{revoked:?}");
        assert_eq!(answer(&w, None, hash, false), Ok(OcspCertStatus::Unknown));
    }
}

#[test]
fn nonce_is_checked_when_sent() {
    let w = world();
    assert_eq!(answer(&w, Some(CertState::Good), CertIdHash::Sha256, true), Ok(OcspCertStatus::Good));
    // A response made for another request (another nonce) is refused.
    let ours = OcspRequest::new(&w.subject, CertIdHash::Sha256, true);
    let theirs = OcspRequest::new(&w.subject, CertIdHash::Sha256, true);
    let der = respond(
        &w.ca,
        None,
        theirs.der(),
        |_| Some(CertState::Good),
        OffsetDateTime::now_utc(),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(
        evaluate(&der, &ours, &w.subject, now(), SKEW).unwrap_err(),
        OcspError::Nonce("does not match the request")
    );
    // A response without a nonce to a request with one is refused.
    let plain = OcspRequest::new(&w.subject, CertIdHash::Sha256, false);
    let der = respond(
        &w.ca,
        None,
        plain.der(),
        |_| Some(CertState::Good),
        OffsetDateTime::now_utc(),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(
        evaluate(&der, &ours, &w.subject, now(), SKEW).unwrap_err(),
        OcspError::Nonce("missing from the response")
    );
}

#[test]
fn delegated_responder_certified_by_the_ca_is_accepted() {
    let w = world();
    let delegate = w.ca.issue(&LeafSpec::ocsp_responder("ocsp.example")).unwrap();
    let request = OcspRequest::new(&w.subject, CertIdHash::Sha1, false);
    let der = respond(
        &w.ca,
        Some(&delegate),
        request.der(),
        |_| Some(CertState::Good),
        OffsetDateTime::now_utc(),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(evaluate(&der, &request, &w.subject, now(), SKEW).unwrap().status, OcspCertStatus::Good);
}

#[test]
fn delegated_responder_without_ocsp_signing_or_from_another_ca_is_refused() {
    let w = world();
    let request = OcspRequest::new(&w.subject, CertIdHash::Sha1, false);
    let no_eku = w.ca.issue(&LeafSpec::server(&["ocsp.example"])).unwrap();
    let der = respond(
        &w.ca,
        Some(&no_eku),
        request.der(),
        |_| Some(CertState::Good),
        OffsetDateTime::now_utc(),
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(matches!(evaluate(&der, &request, &w.subject, now(), SKEW), Err(OcspError::UnauthorisedResponder(_))));

    let other = Ca::root("Other CA", KeyKind::EcdsaP256).unwrap();
    let stranger = other.issue(&LeafSpec::ocsp_responder("ocsp.example")).unwrap();
    let der = respond(
        &w.ca,
        Some(&stranger),
        request.der(),
        |_| Some(CertState::Good),
        OffsetDateTime::now_utc(),
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(matches!(evaluate(&der, &request, &w.subject, now(), SKEW), Err(OcspError::UnauthorisedResponder(_))));

    let expired = w.ca.issue(&LeafSpec::ocsp_responder("ocsp.example").expired_since(time::Duration::days(1))).unwrap();
    let der = respond(
        &w.ca,
        Some(&expired),
        request.der(),
        |_| Some(CertState::Good),
        OffsetDateTime::now_utc(),
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(matches!(evaluate(&der, &request, &w.subject, now(), SKEW), Err(OcspError::UnauthorisedResponder(_))));
}

#[test]
fn response_signed_by_another_key_is_refused() {
    let w = world();
    let impostor = Ca::root("OCSP Test Issuing", KeyKind::EcdsaP256).unwrap();
    let request = OcspRequest::new(&w.subject, CertIdHash::Sha1, false);
    // The impostor's CertID hashes differ, so it answers "unknown"; either way it must not pass
    // as an answer about our certificate.
    let der = respond(
        &impostor,
        None,
        request.der(),
        |_| Some(CertState::Good),
        OffsetDateTime::now_utc(),
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(evaluate(&der, &request, &w.subject, now(), SKEW).is_err());
}

#[test]
fn tampered_response_fails_its_signature() {
    let w = world();
    let request = OcspRequest::new(&w.subject, CertIdHash::Sha256, false);
    let mut der = respond(
        &w.ca,
        None,
        request.der(),
        |_| Some(CertState::Good),
        OffsetDateTime::now_utc(),
        Duration::from_secs(60),
    )
    .unwrap();
    // Flip a bit inside producedAt (well inside tbsResponseData).
    let pos = der.windows(2).position(|w| w == [0x18, 0x0f]).unwrap() + 5;
    der[pos] ^= 0x01;
    assert!(matches!(
        evaluate(&der, &request, &w.subject, now(), SKEW),
        Err(OcspError::Signature(_) | OcspError::Malformed(_))
    ));
}

#[test]
fn response_about_another_serial_is_refused() {
    let w = world();
    let other_leaf = w.ca.issue(&LeafSpec::smartcard("555000000002", "C", "D").key(KeyKind::EcdsaP256)).unwrap();
    let other = Subject::from_cert_der(&other_leaf.cert, Arc::clone(&w.subject.issuer)).unwrap();
    let request = OcspRequest::new(&other, CertIdHash::Sha1, false);
    let der = respond(
        &w.ca,
        None,
        request.der(),
        |_| Some(CertState::Good),
        OffsetDateTime::now_utc(),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(evaluate(&der, &request, &w.subject, now(), SKEW).unwrap_err(), OcspError::NoMatchingResponse);
    assert_ne!(serial_of(&other_leaf), serial_of(&w.leaf));
}

#[test]
fn stale_and_future_responses_are_refused_beyond_the_skew() {
    let w = world();
    let request = OcspRequest::new(&w.subject, CertIdHash::Sha1, false);
    let produced = OffsetDateTime::now_utc();
    let der =
        respond(&w.ca, None, request.der(), |_| Some(CertState::Good), produced, Duration::from_secs(600)).unwrap();
    let at = |offset: i64| UnixTime::since_unix_epoch(Duration::from_secs((produced.unix_timestamp() + offset) as u64));
    assert!(evaluate(&der, &request, &w.subject, at(600 + 299), SKEW).is_ok(), "within skew after nextUpdate");
    assert!(matches!(evaluate(&der, &request, &w.subject, at(600 + 301), SKEW), Err(OcspError::Stale { .. })));
    assert!(evaluate(&der, &request, &w.subject, at(-299), SKEW).is_ok(), "within skew before thisUpdate");
    assert!(matches!(evaluate(&der, &request, &w.subject, at(-301), SKEW), Err(OcspError::NotYetValid { .. })));
}

#[test]
fn responder_errors_and_garbage_are_refused_with_their_labels() {
    let w = world();
    let request = OcspRequest::new(&w.subject, CertIdHash::Sha1, false);
    use x509_ocsp::OcspResponseStatus as S;
    for (status, label) in [
        (S::TryLater, "try_later"),
        (S::Unauthorized, "unauthorized"),
        (S::MalformedRequest, "malformed_request"),
        (S::InternalError, "internal_error"),
        (S::SigRequired, "sig_required"),
    ] {
        let err = evaluate(&error_response(status), &request, &w.subject, now(), SKEW).unwrap_err();
        assert_eq!(err.label(), label);
    }
    assert_eq!(evaluate(b"<html>", &request, &w.subject, now(), SKEW).unwrap_err().label(), "malformed");
    assert_eq!(evaluate(&[], &request, &w.subject, now(), SKEW).unwrap_err().label(), "malformed");
}

#[test]
fn get_url_is_base64_then_url_encoded() {
    let w = world();
    let request = OcspRequest::new(&w.subject, CertIdHash::Sha1, false);
    let url = request.get_url("http://ocsp.example");
    assert!(url.starts_with("http://ocsp.example/"));
    let tail = &url["http://ocsp.example/".len()..];
    assert!(!tail.contains(['+', '/', '=']), "{tail}");
}
