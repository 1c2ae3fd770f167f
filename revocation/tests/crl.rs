//! CRL parsing, verification and lookup: full, delta and partitioned CRLs made by devpki.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spinegate_devpki::crl::{CrlSpec, RevokedEntry};
use spinegate_devpki::{Ca, KeyKind, LeafSpec};
use spinegate_revocation::Serial;
use spinegate_revocation::crl::{Crl, CrlError, CrlVerdict, Partition};
use spinegate_revocation::issuer::{IssuingCa, Subject};

const SKEW: Duration = Duration::from_secs(300);
const MAX_AGE: Duration = Duration::from_secs(3600);

fn ca() -> (Ca, Arc<IssuingCa>) {
    let ca = Ca::root("CRL Test CA", KeyKind::EcdsaP256).unwrap();
    let issuer = Arc::new(IssuingCa::from_cert_der(ca.cert()).unwrap());
    (ca, issuer)
}

fn serial(n: u32) -> Serial {
    Serial::from_der_bytes(&n.to_be_bytes()).unwrap()
}

fn now() -> u64 {
    time::OffsetDateTime::now_utc().unix_timestamp() as u64
}

#[test]
fn full_crl_lists_its_serials_only() {
    let (ca, issuer) = ca();
    let mut spec = CrlSpec::new(1);
    spec.revoked = vec![
        RevokedEntry::now(&7u32.to_be_bytes()),
        RevokedEntry { reason: Some(1), ..RevokedEntry::now(&9u32.to_be_bytes()) },
    ];
    let crl = Crl::parse(&ca.crl(&spec).unwrap(), &issuer).unwrap();
    assert_eq!(crl.len(), 2);
    assert!(crl.lookup(&serial(7)).is_some());
    assert_eq!(crl.lookup(&serial(9)).unwrap().reason, Some(1));
    assert!(crl.lookup(&serial(8)).is_none());
    assert!(!crl.is_delta());
}

#[test]
fn crl_from_another_issuer_or_with_a_bad_signature_is_refused() {
    let (ca, issuer) = ca();
    let other = Ca::root("Other CA", KeyKind::EcdsaP256).unwrap();
    assert_eq!(Crl::parse(&other.crl(&CrlSpec::new(1)).unwrap(), &issuer).unwrap_err(), CrlError::WrongIssuer);
    // Same name, different key: only the signature tells them apart.
    let (namesake, _) = self::ca();
    assert!(matches!(Crl::parse(&namesake.crl(&CrlSpec::new(1)).unwrap(), &issuer), Err(CrlError::Signature(_))));

    let mut der = ca.crl(&CrlSpec::new(1)).unwrap();
    let last = der.len() - 3;
    der[last] ^= 0x40;
    assert!(matches!(Crl::parse(&der, &issuer), Err(CrlError::Signature(_))));
    assert!(matches!(Crl::parse(b"not a crl", &issuer), Err(CrlError::Malformed(_))));
}

#[test]
fn delta_crl_revokes_a_certificate_its_base_does_not_list_and_can_unrevoke() {
    let (ca, issuer) = ca();
    let mut base = CrlSpec::new(10);
    base.revoked = vec![RevokedEntry { reason: Some(6), ..RevokedEntry::now(&3u32.to_be_bytes()) }];
    let base = Arc::new(Crl::parse(&ca.crl(&base).unwrap(), &issuer).unwrap());
    let mut delta = CrlSpec::new(11);
    delta.delta_of = Some(10);
    delta.revoked = vec![
        RevokedEntry::now(&5u32.to_be_bytes()),
        // certificateHold on 3 lifted.
        RevokedEntry { reason: Some(8), ..RevokedEntry::now(&3u32.to_be_bytes()) },
    ];
    let delta = Arc::new(Crl::parse(&ca.crl(&delta).unwrap(), &issuer).unwrap());
    assert!(delta.is_delta());
    assert!(Partition::delta_applies(&base, &delta));

    let without = Partition { base: Arc::clone(&base), delta: None };
    assert!(matches!(without.verdict(&serial(5), now(), SKEW, MAX_AGE), CrlVerdict::NotListed { .. }));
    assert!(matches!(without.verdict(&serial(3), now(), SKEW, MAX_AGE), CrlVerdict::Revoked(_)));

    let with = Partition { base, delta: Some(delta) };
    assert!(matches!(with.verdict(&serial(5), now(), SKEW, MAX_AGE), CrlVerdict::Revoked(_)));
    assert!(matches!(with.verdict(&serial(3), now(), SKEW, MAX_AGE), CrlVerdict::NotListed { .. }));
}

#[test]
fn delta_for_a_newer_base_does_not_apply() {
    let (ca, issuer) = ca();
    let base = Crl::parse(&ca.crl(&CrlSpec::new(10)).unwrap(), &issuer).unwrap();
    let mut delta = CrlSpec::new(13);
    delta.delta_of = Some(12);
    let delta = Crl::parse(&ca.crl(&delta).unwrap(), &issuer).unwrap();
    assert!(!Partition::delta_applies(&base, &delta));
}

#[test]
fn stale_crl_still_revokes_but_no_longer_vouches() {
    let (ca, issuer) = ca();
    let mut spec = CrlSpec::new(1);
    spec.revoked = vec![RevokedEntry::now(&7u32.to_be_bytes())];
    let crl = Arc::new(Crl::parse(&ca.crl(&spec).unwrap(), &issuer).unwrap());
    let later = now() + 2 * 86_400;
    let p = Partition { base: crl, delta: None };
    assert!(matches!(p.verdict(&serial(7), later, SKEW, MAX_AGE), CrlVerdict::Revoked(_)));
    assert_eq!(p.verdict(&serial(8), later, SKEW, MAX_AGE), CrlVerdict::Stale);
}

#[test]
fn partitioned_crl_covers_only_certificates_that_name_it() {
    let (ca, issuer) = ca();
    let mut spec = CrlSpec::new(1);
    spec.scope_urls = vec!["http://crl.example/part1.crl".into()];
    let crl = Crl::parse(&ca.crl(&spec).unwrap(), &issuer).unwrap();
    let leaf = |url: &str| {
        let cert =
            ca.issue(&LeafSpec::smartcard("555000000001", "A", "B").key(KeyKind::EcdsaP256).crl_url(url)).unwrap();
        Subject::from_cert_der(&cert.cert, Arc::clone(&issuer)).unwrap()
    };
    assert!(crl.covers_leaf(&leaf("http://crl.example/part1.crl").distribution_points));
    assert!(!crl.covers_leaf(&leaf("http://crl.example/part2.crl").distribution_points));
    assert!(!crl.covers_leaf(&[]), "a partition never covers a certificate naming no distribution point");
    let full = Crl::parse(&ca.crl(&CrlSpec::new(2)).unwrap(), &issuer).unwrap();
    assert!(full.covers_leaf(&[]) && full.covers_leaf(&leaf("http://crl.example/part2.crl").distribution_points));
}

#[test]
fn distribution_point_names_are_compared_in_every_form() {
    // A directoryName distribution point in the IDP is not a full CRL: it covers only
    // certificates naming that directoryName (PKITS 4.14.3).
    let (ca, issuer) = ca();
    let mut spec = CrlSpec::new(1);
    spec.scope_urls = vec!["http://crl.example/a.crl".into()];
    let crl = Crl::parse(&ca.crl(&spec).unwrap(), &issuer).unwrap();
    assert!(!crl.covers_leaf(&["dn:3000".into()]));
    assert!(crl.covers_leaf(&["dn:3000".into(), "uri:http://crl.example/a.crl".into()]));
}

#[test]
fn crl_with_200000_entries_parses_and_indexes() {
    let (ca, issuer) = ca();
    let mut spec = CrlSpec::new(1);
    spec.revoked = (1..=200_000u32).map(|n| RevokedEntry::now(&(n * 3).to_be_bytes())).collect();
    let der = ca.crl(&spec).unwrap();
    let started = Instant::now();
    let crl = Crl::parse(&der, &issuer).unwrap();
    eprintln!(
        "200,000-entry CRL ({} bytes) parsed in {:?} (debug build; see benches for release)",
        der.len(),
        started.elapsed()
    );
    assert_eq!(crl.len(), 200_000);
    assert!(crl.lookup(&serial(3 * 123_456)).is_some());
    assert!(crl.lookup(&serial(3 * 123_456 + 1)).is_none());
}
