//! A clinical system with a smartcard certificate reaches the patient-data service through the
//! gateway: identity headers, header stripping, HTTP/1.1 and HTTP/2, TLS 1.2 and 1.3, resumed
//! sessions, the expiry warning, certificates that expire on an open connection, SNI.

mod support;

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body_util::Full;
use rustls::HandshakeKind;
use spinegate_devpki::{KeyKind, LeafSpec};
use spinegate_testkit::tls::ClientTls;
use support::{Client, Gw, Pki, client_config, tls_connect, toml, within};

#[tokio::test]
async fn valid_smartcard_gets_200_and_upstream_sees_verified_identity() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    let alice = pki.card("555000000001");
    let mut client = Client::connect(gw.addr, client_config(&pki, Some(&alice), &[b"http/1.1"])).await.unwrap();
    let r = within(10, client.get("/Patient/9000000009")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], "9000000009");
    assert_eq!(r.received("nhsd-identity-uuid").as_deref(), Some("555000000001"));
    assert_eq!(r.received("x-spinegate-auth-method").as_deref(), Some("smartcard"));
    assert_eq!(r.received("x-spinegate-assurance-level").as_deref(), Some("AAL3"));
    assert_eq!(r.received("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(r.received("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    let id = r.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(r.received("x-request-id"), Some(id.clone()));
    assert!(uuid_like(&id), "{id}");
    assert!(!r.headers.contains_key("x-certificate-expiry-warning"), "alice is far from expiry");
}

#[tokio::test]
async fn client_sent_identity_headers_never_reach_the_upstream() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    let alice = pki.card("555000000001");
    let mut client = Client::connect(gw.addr, client_config(&pki, Some(&alice), &[b"h2"])).await.unwrap();
    let request = Request::get("/Patient/9000000009")
        .header("NHSD-Identity-UUID", "999999999999")
        .header("NHSD-End-User-Organisation-ODS", "X26")
        .header("X-Spinegate-Auth-Method", "token")
        .header("X-Spinegate-Assurance-Level", "AAL3")
        .header("X-Forwarded-Client-Cert", "Hash=abc;Subject=\"CN=999999999999_EVIL_Eve\"")
        .header("X-Forwarded-For", "10.9.9.9")
        .header("X-Certificate-Expiry-Warning", "0 days")
        .header("X-Request-ID", "not-a-uuid")
        .header("X-Correlation-ID", "corr-42")
        .body(Full::default())
        .unwrap();
    let r = within(10, client.send(request)).await.unwrap();
    assert_eq!(r.status, 200);
    let headers = &r.json()["received_headers"];
    assert_eq!(headers["nhsd-identity-uuid"], "555000000001");
    for absent in [
        "nhsd-session-urid",
        "nhsd-end-user-organisation-ods",
        "x-forwarded-client-cert",
        "x-certificate-expiry-warning",
    ] {
        assert!(headers.get(absent).is_none(), "{absent} reached the upstream: {headers}");
    }
    assert_eq!(headers["x-spinegate-auth-method"], "smartcard");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-correlation-id"], "corr-42");
    assert_ne!(headers["x-request-id"], "not-a-uuid", "a non-UUID request id is replaced");
}

/// A client that picks its own request id must not choose the id of the audit record or the
/// identity assertion's `jti` (replaying another request's, say): the gateway always makes its
/// own and passes the client's on as the correlation id.
#[tokio::test]
async fn client_chosen_request_id_never_becomes_the_gateways() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    let alice = pki.card("555000000001");
    let mut client = Client::connect(gw.addr, client_config(&pki, Some(&alice), &[b"http/1.1"])).await.unwrap();
    let id = "0b7f6a2e-4a55-4d8a-9a61-1c1f7f1e2d3c";
    let request = Request::get("/metadata").header("X-Request-ID", id).body(Full::default()).unwrap();
    let r = client.send(request).await.unwrap();
    let ours = r.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(ours, id);
    assert!(uuid::Uuid::try_parse(&ours).is_ok());
    assert_eq!(r.received("x-request-id"), Some(ours));
    assert_eq!(r.received("x-correlation-id").as_deref(), Some(id), "the client's id travels as the correlation id");
}

#[tokio::test]
async fn http1_and_http2_clients_are_both_served() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    let alice = pki.card("555000000001");
    for (alpn, expect_h2) in [(&b"http/1.1"[..], false), (&b"h2"[..], true)] {
        let tls = tls_connect(gw.addr, client_config(&pki, Some(&alice), &[alpn])).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol() == Some(b"h2"), expect_h2);
        let mut client = Client::over(tls).await;
        for _ in 0..3 {
            let r = within(10, client.get("/Patient/9000000017")).await.unwrap();
            assert_eq!(r.status, 200, "alpn {:?}", String::from_utf8_lossy(alpn));
            assert_eq!(r.received("nhsd-identity-uuid").as_deref(), Some("555000000001"));
        }
    }
}

#[tokio::test]
async fn tls12_and_rsa_smartcards_are_accepted() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    let rsa_card = pki.issue(LeafSpec::smartcard("555000000009", "RSA", "Card").key(KeyKind::Rsa2048));
    let base = client_config(&pki, Some(&rsa_card), &[b"http/1.1"]);
    let tls12 = ClientTls::trusting_ca(pki.tls_root.cert().clone())
        .card(rsa_card.chain.clone(), rsa_card.private_key())
        .versions(&[&rustls::version::TLS12])
        .build();
    for config in [base, tls12] {
        let tls = tls_connect(gw.addr, config).await.unwrap();
        let version = tls.get_ref().1.protocol_version();
        let mut client = Client::over(tls).await;
        let r = client.get("/metadata").await.unwrap();
        assert_eq!(r.status, 200, "{version:?}");
        assert_eq!(r.received("nhsd-identity-uuid").as_deref(), Some("555000000009"));
    }
}

#[tokio::test]
async fn resumed_session_is_still_identified_and_rechecked() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    let alice = pki.card("555000000001");
    // One client config (one session store) for both connections, so the second resumes.
    let config = client_config(&pki, Some(&alice), &[b"http/1.1"]);
    let mut first = Client::connect(gw.addr, Arc::clone(&config)).await.unwrap();
    assert_eq!(first.get("/metadata").await.unwrap().status, 200);

    let tls = tls_connect(gw.addr, config).await.unwrap();
    assert_eq!(tls.get_ref().1.handshake_kind(), Some(HandshakeKind::Resumed));
    // The resumed session skips the handshake verifier; the per-request check must still apply:
    // empty the chain cache so the gateway has to verify the stored chain itself.
    gw.gateway.chain_cache().advance_trust_epoch();
    let mut resumed = Client::over(tls).await;
    let r = resumed.get("/Patient/9000000009").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.received("nhsd-identity-uuid").as_deref(), Some("555000000001"));
}

#[tokio::test]
async fn certificate_within_90_days_carries_the_expiry_warning_both_ways() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    let carol = pki.issue(
        LeafSpec::smartcard("555000000003", "CARTER", "Carol")
            .key(KeyKind::EcdsaP256)
            .expiring_in(time::Duration::days(30)),
    );
    let mut client = Client::connect(gw.addr, client_config(&pki, Some(&carol), &[b"h2"])).await.unwrap();
    let r = client.get("/Patient/9000000009").await.unwrap();
    assert_eq!(r.status, 200);
    let warning = r.headers["x-certificate-expiry-warning"].to_str().unwrap().to_owned();
    let (days, not_after) = warning.split_once(" days; not-after=").expect(&warning);
    let days: u64 = days.parse().unwrap();
    assert!((29..=30).contains(&days), "{warning}");
    assert!(
        time::OffsetDateTime::parse(not_after, &time::format_description::well_known::Rfc3339).is_ok(),
        "{warning}"
    );
    assert_eq!(r.received("x-certificate-expiry-warning"), Some(warning));
}

#[tokio::test]
async fn expiry_warning_window_is_configurable() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |s| s.client_auth_extra = "expiry_warning = \"7d\"".into()).await;
    let carol = pki.issue(
        LeafSpec::smartcard("555000000003", "CARTER", "Carol")
            .key(KeyKind::EcdsaP256)
            .expiring_in(time::Duration::days(30)),
    );
    let mut client = Client::connect(gw.addr, client_config(&pki, Some(&carol), &[b"h2"])).await.unwrap();
    let r = client.get("/metadata").await.unwrap();
    assert!(!r.headers.contains_key("x-certificate-expiry-warning"));
}

#[tokio::test]
async fn certificate_that_expires_on_an_open_connection_stops_working_on_it() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    let card = pki.issue(
        LeafSpec::smartcard("555000000005", "SHORT", "Lived")
            .key(KeyKind::EcdsaP256)
            .expiring_in(time::Duration::days(2)),
    );
    let mut client = Client::connect(gw.addr, client_config(&pki, Some(&card), &[b"http/1.1"])).await.unwrap();
    assert_eq!(client.get("/metadata").await.unwrap().status, 200);

    gw.clock.advance(Duration::from_secs(3 * 86_400));
    let r = client.get("/metadata").await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "certificate_expired");
    assert_eq!(r.headers["connection"], "close", "nothing more can succeed on this connection");
    assert!(client.get("/metadata").await.is_err(), "the gateway closed the connection");
}

/// A card that is itself valid for a year, under an intermediate CA that ends in two days: the
/// connection (and the verified-chain cache) must stop trusting the path when the CA ends, not
/// when the card does.
#[tokio::test]
async fn intermediate_that_expires_on_an_open_connection_stops_the_card() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    let now = time::OffsetDateTime::now_utc();
    let short_ca = pki
        .root
        .intermediate_valid_between(
            "Short-lived Issuing CA",
            KeyKind::EcdsaP256,
            now - time::Duration::days(1),
            now + time::Duration::days(2),
        )
        .unwrap();
    let card = short_ca.issue(&LeafSpec::smartcard("555000000005", "UNDER", "Short").key(KeyKind::EcdsaP256)).unwrap();
    let mut client = Client::connect(gw.addr, client_config(&pki, Some(&card), &[b"http/1.1"])).await.unwrap();
    assert_eq!(client.get("/metadata").await.unwrap().status, 200);

    gw.clock.advance(Duration::from_secs(3 * 86_400));
    let r = client.get("/metadata").await.unwrap();
    assert_eq!(r.status, 401, "served after the issuing CA expired");
    assert_eq!(r.json()["reason"], "certificate_expired");
}

#[tokio::test]
async fn no_certificate_on_a_listener_that_only_requests_one_gets_401() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |s| s.client_certificate = "request").await;
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let mut client = Client::connect(gw.addr, client_config(&pki, None, &[alpn])).await.unwrap();
        let r = client.get("/Patient/9000000009").await.unwrap();
        assert_eq!(r.status, 401);
        let body = r.json();
        assert_eq!(body["reason"], "client_certificate_required");
        assert_eq!(r.headers["content-type"], "application/problem+json");
        assert_eq!(body["request_id"], r.headers["x-request-id"].to_str().unwrap());
    }
}

#[tokio::test]
async fn no_certificate_on_a_listener_that_requires_one_fails_the_handshake() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    let alert = support::handshake_alert(gw.addr, client_config(&pki, None, &[b"http/1.1"])).await;
    assert_eq!(alert, Some(rustls::AlertDescription::CertificateRequired));
}

#[tokio::test]
async fn server_certificate_is_chosen_by_sni_and_by_client_algorithms() {
    let pki = Pki::new();
    let ecdsa = pki.tls_root.issue(&LeafSpec::server(&["spine.example"])).unwrap();
    let rsa = pki.tls_root.issue(&LeafSpec::server(&["spine.example"]).key(KeyKind::Rsa2048)).unwrap();
    let other = pki.tls_root.issue(&LeafSpec::server(&["other.example"])).unwrap();
    let mut certificates = String::new();
    for (name, issued, sni) in
        [("ecdsa", &ecdsa, "spine.example"), ("rsa", &rsa, "spine.example"), ("other", &other, "other.example")]
    {
        let cert = pki.write(&format!("{name}.pem"), &issued.chain_pem());
        let key = pki.write(&format!("{name}.key"), &issued.key_pem());
        certificates.push_str(&format!(
            "[[listener.certificate]]\ncert = {cert}\nkey = {key}\nserver_names = [\"{sni}\"]\n",
            cert = toml(&cert),
            key = toml(&key)
        ));
    }
    certificates.push_str(&format!(
        "[[listener.certificate]]\ncert = {}\nkey = {}\n",
        toml(&pki.path("server.pem")),
        toml(&pki.path("server.key"))
    ));
    let gw = Gw::start(&pki, |s| s.certificates = certificates).await;
    let alice = pki.card("555000000001");

    let leaf_for = |name: &'static str, schemes_rsa_only: bool| {
        let mut tls =
            ClientTls::trusting_ca(pki.tls_root.cert().clone()).card(alice.chain.clone(), alice.private_key());
        if schemes_rsa_only {
            // A client that can only verify RSA signatures must get the RSA certificate.
            let mut provider = rustls::crypto::aws_lc_rs::default_provider();
            provider.signature_verification_algorithms = rustls::crypto::WebPkiSupportedAlgorithms {
                all: provider.signature_verification_algorithms.all,
                mapping: RSA_PSS_ONLY,
            };
            tls = tls.provider(Arc::new(provider));
        }
        let config = tls.alpn(&[b"http/1.1"]).build();
        let addr = gw.addr;
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(rustls::pki_types::ServerName::try_from(name).unwrap(), tcp)
                .await
                .unwrap();
            tls.get_ref().1.peer_certificates().unwrap()[0].clone()
        }
    };
    assert_eq!(leaf_for("spine.example", false).await, ecdsa.cert);
    assert_eq!(leaf_for("spine.example", true).await, rsa.cert);
    assert_eq!(leaf_for("other.example", false).await, other.cert);
    assert_eq!(leaf_for("localhost", false).await.as_ref(), pki_server_leaf(&pki).as_ref());
}

/// A client that verifies only RSA-PSS signatures.
static RSA_PSS_ONLY: &[(rustls::SignatureScheme, &[&dyn rustls::pki_types::SignatureVerificationAlgorithm])] =
    &[(rustls::SignatureScheme::RSA_PSS_SHA256, &[webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY])];

fn pki_server_leaf(pki: &Pki) -> rustls::pki_types::CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(pki.path("server.pem")).unwrap().next().unwrap().unwrap()
}

#[tokio::test]
async fn identity_rule_is_chosen_per_issuing_ca() {
    let pki = Pki::new();
    // A second issuing CA whose cards carry the user id in the subject serialNumber.
    let partner = pki.root.intermediate("Partner Issuing CA", KeyKind::EcdsaP256).unwrap();
    let partner_path = pki.write("partner.pem", &partner.cert_pem());
    let gw = Gw::start(&pki, |s| {
        s.extra = format!(
            "[[client_auth.issuer]]\nname = \"partner\"\ncertificate = {partner_path}\n\
             [client_auth.issuer.identity]\nuser_id = \"subject_serial_number\"\nsubject_ou = \"\"\nsubject_o = \"partner\"\n", partner_path = toml(&partner_path));
    })
    .await;
    let subject = [
        (rcgen::DnType::OrganizationName, "partner"),
        (rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]), "555000000077"),
        (rcgen::DnType::CommonName, "Dr Partner"),
    ];
    let card = partner.issue(&LeafSpec::smartcard("0", "X", "Y").key(KeyKind::EcdsaP256).subject(&subject)).unwrap();
    let mut client = Client::connect(gw.addr, client_config(&pki, Some(&card), &[b"http/1.1"])).await.unwrap();
    let r = client.get("/metadata").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.received("nhsd-identity-uuid").as_deref(), Some("555000000077"));

    // The same subject shape from the default-rule CA carries no CN user id: refused.
    let nhs_subject = [
        (rcgen::DnType::OrganizationName, "nhs"),
        (rcgen::DnType::OrganizationalUnitName, "People"),
        (rcgen::DnType::CommonName, "Dr Partner"),
    ];
    let wrong = pki.issue(LeafSpec::smartcard("x", "y", "z").key(KeyKind::EcdsaP256).subject(&nhs_subject));
    let alert = support::handshake_alert(gw.addr, client_config(&pki, Some(&wrong), &[b"http/1.1"])).await;
    assert_eq!(alert, Some(rustls::AlertDescription::BadCertificate));
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

/// A TLS session resumed from a ticket issued while the listener only requested a card carries
/// no certificate; after a reload to "require" it must not be a way in without one (the
/// handshake's check never runs for a resumed session).
#[tokio::test]
async fn session_without_a_card_does_not_resume_past_a_reload_to_require() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |s| {
        s.client_certificate = "request";
        s.rules = "[[route.rule]]\nmethods = [\"GET\"]\npublic = true\n".into();
    })
    .await;
    let config = client_config(&pki, None, &[b"http/1.1"]);
    let mut client = Client::connect(gw.addr, Arc::clone(&config)).await.unwrap();
    assert_eq!(client.get("/metadata").await.unwrap().status, 200, "a public route, no card");
    drop(client);

    gw.reload(&pki, &gw.text.replace("client_certificate = \"request\"", "client_certificate = \"require\"")).await;
    let tls = tls_connect(gw.addr, Arc::clone(&config)).await.unwrap();
    assert_eq!(tls.get_ref().1.handshake_kind(), Some(HandshakeKind::Resumed), "the old ticket resumed");
    let mut resumed = Client::over(tls).await;
    let r = resumed.get("/metadata").await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "client_certificate_required");
}
