//! Certificates that must not get through the TLS handshake, each with the matching alert and a
//! counted reason: untrusted CA, expired, not yet valid (under `certificate_problems = "alert"`;
//! the default explains those, `tests/guidance.rs`), wrong EKU, chain too deep or too large, a
//! forged issuer, a subject with no user identity.

mod support;

use rustls::AlertDescription;
use spinegate_devpki::{Ca, Issued, KeyKind, LeafSpec};
use support::{Gw, Pki, client_config, client_config_with_chain, handshake_alert, within};

/// Asserts the handshake fails with `alert` and `reason` is counted once more than before.
async fn refused(gw: &Gw, pki: &Pki, card: &Issued, alert: AlertDescription, reason: &str) {
    refused_with(gw, client_config(pki, Some(card), &[b"http/1.1"]), alert, reason).await;
}

async fn refused_with(gw: &Gw, config: std::sync::Arc<rustls::ClientConfig>, alert: AlertDescription, reason: &str) {
    let series = format!("spinegate_client_cert_verifications_total{{result=\"{reason}\"}}");
    let before = gw.metric(&series).await;
    let got = within(10, handshake_alert(gw.addr, config)).await;
    assert_eq!(got, Some(alert), "expected {alert:?} for {reason}");
    let after = gw.metric(&series).await;
    assert!(after >= before + 1.0, "{series} went from {before} to {after}");
}

fn card(ca: &Ca, spec: LeafSpec) -> Issued {
    ca.issue(&spec.key(KeyKind::EcdsaP256)).unwrap()
}

#[tokio::test]
async fn certificate_from_an_untrusted_ca_fails_with_unknown_ca() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    let rogue_root = Ca::root("Rogue Root", KeyKind::EcdsaP256).unwrap();
    let rogue = rogue_root.intermediate("Rogue Issuing CA", KeyKind::EcdsaP256).unwrap();
    let eve = card(&rogue, LeafSpec::smartcard("555000000666", "EVE", "Eve"));
    refused(&gw, &pki, &eve, AlertDescription::UnknownCA, "unknown_ca").await;
}

/// A gateway whose listener alerts rather than explains (`certificate_problems = "alert"`), for
/// the certificates the default would let through to explain (`tests/guidance.rs`).
async fn alerting(pki: &Pki) -> Gw {
    Gw::start(pki, |s| s.certificate_problems("alert")).await
}

#[tokio::test]
async fn expired_certificate_fails_with_certificate_expired() {
    let pki = Pki::new();
    let gw = alerting(&pki).await;
    let dave = card(
        &pki.issuing,
        LeafSpec::smartcard("555000000004", "DAVIES", "Dave").expired_since(time::Duration::days(1)),
    );
    refused(&gw, &pki, &dave, AlertDescription::CertificateExpired, "expired").await;
}

#[tokio::test]
async fn not_yet_valid_certificate_fails_with_certificate_expired() {
    let pki = Pki::new();
    let gw = alerting(&pki).await;
    let early = card(
        &pki.issuing,
        LeafSpec::smartcard("555000000010", "EARLY", "Ed").not_yet_valid_for(time::Duration::days(2)),
    );
    refused(&gw, &pki, &early, AlertDescription::CertificateExpired, "not_yet_valid").await;
}

#[tokio::test]
async fn server_auth_only_certificate_fails_with_unsupported_certificate() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    let wrong = card(
        &pki.issuing,
        LeafSpec::smartcard("555000000011", "WRONG", "Eku").eku(vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth]),
    );
    refused(&gw, &pki, &wrong, AlertDescription::UnsupportedCertificate, "wrong_purpose").await;
}

#[tokio::test]
async fn certificate_without_eku_fails_unless_policy_allows_it() {
    let pki = Pki::new();
    let no_eku = card(&pki.issuing, LeafSpec::smartcard("555000000012", "NO", "Eku").eku(vec![]));
    let strict = Gw::start(&pki, |_| {}).await;
    refused(&strict, &pki, &no_eku, AlertDescription::UnsupportedCertificate, "wrong_purpose").await;

    let lenient = Gw::start(&pki, |s| s.client_auth_extra = "client_auth_eku = \"require_if_present\"".into()).await;
    let mut client =
        support::Client::connect(lenient.addr, client_config(&pki, Some(&no_eku), &[b"http/1.1"])).await.unwrap();
    assert_eq!(client.get("/metadata").await.unwrap().status, 200);
}

#[tokio::test]
async fn chain_deeper_than_the_maximum_fails_with_bad_certificate() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await; // max_chain_length 4: leaf, two CAs, root
    let i2 = pki.issuing.intermediate("Sub CA 2", KeyKind::EcdsaP256).unwrap();
    let i3 = i2.intermediate("Sub CA 3", KeyKind::EcdsaP256).unwrap();
    let deep = card(&i3, LeafSpec::smartcard("555000000013", "DEEP", "Chain"));
    // Presents leaf, i3, i2, issuing: four certificates (within the presented cap); the path to
    // the root has five, which the path check refuses.
    assert_eq!(deep.chain.len(), 4);
    refused(&gw, &pki, &deep, AlertDescription::BadCertificate, "chain_too_long").await;

    // Presenting more certificates than the maximum is refused before parsing.
    let mut padded = deep.chain.clone();
    padded.push(pki.root.cert().clone());
    refused_with(
        &gw,
        client_config_with_chain(&pki, padded, &deep),
        AlertDescription::BadCertificate,
        "chain_too_long",
    )
    .await;
}

#[tokio::test]
async fn chain_larger_than_the_byte_cap_fails_with_bad_certificate() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await; // max_chain_bytes 16384
    let big = card(&pki.issuing, LeafSpec::smartcard("555000000014", "BIG", "Cert").padding(20_000));
    assert!(big.cert.len() > 16_384);
    refused(&gw, &pki, &big, AlertDescription::BadCertificate, "chain_too_large").await;
}

#[tokio::test]
async fn certificate_signed_by_a_forged_issuer_fails_with_bad_certificate() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    // Same name as the real issuing CA, different key: the signature cannot verify.
    let forger = pki.root.intermediate("Test Smartcard Issuing CA", KeyKind::EcdsaP256).unwrap();
    let forged = card(&forger, LeafSpec::smartcard("555000000001", "ABLE", "Alice"));
    let leaf_only = vec![forged.cert.clone()];
    refused_with(
        &gw,
        client_config_with_chain(&pki, leaf_only, &forged),
        AlertDescription::BadCertificate,
        "bad_signature",
    )
    .await;
}

#[tokio::test]
async fn certificate_without_a_user_id_fails_with_bad_certificate() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    let nameless = card(&pki.issuing, LeafSpec::smartcard("not-a-user-id", "X", "Y"));
    refused(&gw, &pki, &nameless, AlertDescription::BadCertificate, "no_user_identity").await;

    let outsider = [
        (rcgen::DnType::OrganizationName, "nhs"),
        (rcgen::DnType::OrganizationalUnitName, "Devices"),
        (rcgen::DnType::CommonName, "555000000015_DEVICE_Kiosk"),
    ];
    let device = card(&pki.issuing, LeafSpec::smartcard("x", "y", "z").subject(&outsider));
    refused(&gw, &pki, &device, AlertDescription::BadCertificate, "no_user_identity").await;
}

#[tokio::test]
async fn refused_handshakes_are_counted_by_outcome() {
    let pki = Pki::new();
    let gw = alerting(&pki).await;
    let series = "spinegate_tls_handshakes_total{listener=\"test\",outcome=\"failed\",version=\"none\",resumed=\"false\",transport=\"tcp\"}";
    let before = gw.metric(series).await;
    let dave = card(
        &pki.issuing,
        LeafSpec::smartcard("555000000004", "DAVIES", "Dave").expired_since(time::Duration::days(1)),
    );
    let _ = handshake_alert(gw.addr, client_config(&pki, Some(&dave), &[b"http/1.1"])).await;
    assert!(gw.metric(series).await >= before + 1.0);
}
