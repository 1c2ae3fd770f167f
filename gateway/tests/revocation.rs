//! A cancelled smartcard stops working: OCSP against an independent `openssl ocsp` responder
//! (good, revoked, unknown, down, too slow, revoked while a keep-alive connection is open), CRLs
//! from `openssl ca -gencrl` and from devpki (200,000 entries, a delta CRL, a distribution point,
//! a file that changes), the emergency deny list from its file and its admin endpoint, resumed
//! sessions, and one OCSP request for a thousand concurrent first handshakes.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::HandshakeKind;
use spinegate_devpki::crl::{CrlSpec, RevokedEntry};
use spinegate_devpki::ocsp::OcspResponder;
use spinegate_devpki::{Issued, KeyKind, LeafSpec};
use support::{Client, Gw, Pki, client_config, handshake_alert, plain_request, tls_connect, toml, within};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// A free loopback port (bound, then released for the child process to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn serial_hex(issued: &Issued) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(&issued.cert).unwrap();
    cert.raw_serial().iter().skip_while(|b| **b == 0).map(|b| format!("{b:02X}")).collect()
}

fn serial_bytes(issued: &Issued) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(&issued.cert).unwrap();
    cert.raw_serial().iter().copied().skip_while(|b| *b == 0).collect()
}

/// An `openssl ocsp` responder for the test PKI's issuing CA, signing with a delegated responder
/// certificate, answering from an openssl-ca index file.
struct OpensslOcsp {
    child: Child,
}

impl OpensslOcsp {
    /// Writes the index (`(certificate, revoked)` pairs) and starts the responder on `port`.
    fn start(pki: &Pki, port: u16, entries: &[(&Issued, bool)]) -> Self {
        let dir = pki.dir.path().to_path_buf();
        let responder = pki.issuing.issue(&LeafSpec::ocsp_responder("ocsp.test")).unwrap();
        std::fs::write(dir.join("ocsp-responder.pem"), responder.cert_pem()).unwrap();
        std::fs::write(dir.join("ocsp-responder.key"), responder.key_pem()).unwrap();
        std::fs::write(dir.join("issuing.pem"), pki.issuing.cert_pem()).unwrap();
        let index: String = entries
            .iter()
            .map(|(cert, revoked)| {
                let serial = serial_hex(cert);
                if *revoked {
                    format!("R\t301231235959Z\t261101000000Z,keyCompromise\t{serial}\tunknown\t/CN=test\n")
                } else {
                    format!("V\t301231235959Z\t\t{serial}\tunknown\t/CN=test\n")
                }
            })
            .collect();
        std::fs::write(dir.join("index.txt"), index).unwrap();
        let mut child = Command::new("openssl")
            .args(["ocsp", "-index"])
            .arg(dir.join("index.txt"))
            .args(["-port", &port.to_string(), "-rsigner"])
            .arg(dir.join("ocsp-responder.pem"))
            .arg("-rkey")
            .arg(dir.join("ocsp-responder.key"))
            .arg("-CA")
            .arg(dir.join("issuing.pem"))
            .args(["-nmin", "10", "-ignore_err"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl is installed (.ci/run installs it)");
        // openssl prints "ACCEPT …" once it listens. (Probing the port instead would wedge it:
        // its single-process responder never recovers from a connection closed without a
        // request.)
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        assert!(line.starts_with("ACCEPT"), "openssl ocsp did not start: {line:?}");
        Self { child }
    }
}

impl Drop for OpensslOcsp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A smartcard whose AIA names `ocsp_url`.
fn card_with_ocsp(pki: &Pki, user_id: &str, ocsp_url: &str) -> Issued {
    pki.issue(LeafSpec::smartcard(user_id, "TEST", "User").key(KeyKind::EcdsaP256).ocsp_url(ocsp_url))
}

async fn ocsp_gateway(pki: &Pki, fetch_timeout: &str) -> Gw {
    let fetch_timeout = fetch_timeout.to_owned();
    Gw::start(pki, |s| {
        // These tests pin the handshake's certificate_revoked alert; tests/guidance.rs the default.
        s.certificate_problems("alert");
        s.revocation_policy = "sources = [\"ocsp\"]".into();
        s.revocation = format!("fetch_timeout = \"{fetch_timeout}\"\nmax_age = \"60s\"\n");
    })
    .await
}

async fn get(gw: &Gw, pki: &Pki, card: &Issued) -> support::Resp {
    let mut client = Client::connect(gw.addr, client_config(pki, Some(card), &[b"http/1.1"])).await.unwrap();
    within(10, client.get("/metadata")).await.unwrap()
}

#[tokio::test]
async fn good_certificate_passes_with_an_independent_openssl_responder() {
    let pki = Pki::new();
    let port = free_port();
    let alice = card_with_ocsp(&pki, "555000000001", &format!("http://127.0.0.1:{port}/"));
    let _ocsp = OpensslOcsp::start(&pki, port, &[(&alice, false)]);
    let gw = ocsp_gateway(&pki, "1s").await;
    let r = get(&gw, &pki, &alice).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(gw.metric("spinegate_revocation_fetches_total{source=\"ocsp\",outcome=\"ok\"}").await >= 1.0);
}

#[tokio::test]
async fn revoked_certificate_is_refused_then_fails_the_next_handshake() {
    let pki = Pki::new();
    let port = free_port();
    let bob = card_with_ocsp(&pki, "555000000002", &format!("http://127.0.0.1:{port}/"));
    let _ocsp = OpensslOcsp::start(&pki, port, &[(&bob, true)]);
    let gw = ocsp_gateway(&pki, "1s").await;
    // First contact: the status is not known at the handshake, so the request waits for it.
    let r = get(&gw, &pki, &bob).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "certificate_revoked");
    // Now it is known: the next handshake fails with the certificate_revoked alert.
    let alert = handshake_alert(gw.addr, client_config(&pki, Some(&bob), &[b"http/1.1"])).await;
    assert_eq!(alert, Some(rustls::AlertDescription::CertificateRevoked));
}

#[tokio::test]
async fn certificate_unknown_to_the_responder_gets_503_with_retry_after() {
    let pki = Pki::new();
    let port = free_port();
    let stranger = card_with_ocsp(&pki, "555000000003", &format!("http://127.0.0.1:{port}/"));
    let listed = card_with_ocsp(&pki, "555000000001", &format!("http://127.0.0.1:{port}/"));
    let _ocsp = OpensslOcsp::start(&pki, port, &[(&listed, false)]);
    let gw = ocsp_gateway(&pki, "1s").await;
    let r = get(&gw, &pki, &stranger).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["reason"], "revocation_unavailable");
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn responder_down_gets_503_quickly() {
    let pki = Pki::new();
    let port = free_port(); // nothing listens there
    let alice = card_with_ocsp(&pki, "555000000001", &format!("http://127.0.0.1:{port}/"));
    let gw = ocsp_gateway(&pki, "1s").await;
    let started = Instant::now();
    let r = get(&gw, &pki, &alice).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["reason"], "revocation_unavailable");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn responder_too_slow_gets_503_within_the_fetch_timeout() {
    let pki = Pki::new();
    // Accepts and reads, never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = silent.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            held.push(s);
        }
    });
    let alice = card_with_ocsp(&pki, "555000000001", &format!("http://127.0.0.1:{port}/"));
    let gw = ocsp_gateway(&pki, "1s").await; // fetch_timeout 1s
    let started = Instant::now();
    let r = get(&gw, &pki, &alice).await;
    assert_eq!(r.status, 503);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "took {took:?}");
    assert!(gw.metric("spinegate_revocation_fetches_total{source=\"ocsp\",outcome=\"timeout\"}").await >= 1.0);
}

#[tokio::test]
async fn certificate_revoked_while_a_keepalive_connection_is_open_is_refused_on_that_connection() {
    let pki = Pki::new();
    let port = free_port();
    let alice = card_with_ocsp(&pki, "555000000001", &format!("http://127.0.0.1:{port}/"));
    let ocsp = OpensslOcsp::start(&pki, port, &[(&alice, false)]);
    let gw = ocsp_gateway(&pki, "1s").await; // answers live at most 60 s
    let mut client = Client::connect(gw.addr, client_config(&pki, Some(&alice), &[b"http/1.1"])).await.unwrap();
    assert_eq!(client.get("/metadata").await.unwrap().status, 200);
    assert_eq!(client.get("/metadata").await.unwrap().status, 200);

    // HR cancels the card: the responder now says revoked.
    drop(ocsp);
    let _ocsp = OpensslOcsp::start(&pki, port, &[(&alice, true)]);
    // Until the cached answer ends, the connection keeps working …
    assert_eq!(client.get("/metadata").await.unwrap().status, 200);
    // … and once it has (the freshness bound), the same connection is refused, no reconnect.
    gw.clock.advance(Duration::from_secs(61));
    let r = within(10, client.get("/metadata")).await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "certificate_revoked");
}

/// `openssl ca` files for the test PKI's issuing CA; returns the config path.
fn openssl_ca(pki: &Pki, revoked: &[&Issued], valid: &[&Issued]) -> PathBuf {
    let dir = pki.dir.path().join("openssl-ca");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), pki.issuing.cert_pem()).unwrap();
    std::fs::write(dir.join("ca.key"), pki.issuing.key_pem()).unwrap();
    let mut index = String::new();
    for cert in revoked {
        index.push_str(&format!(
            "R\t301231235959Z\t261101000000Z,keyCompromise\t{}\tunknown\t/CN=r\n",
            serial_hex(cert)
        ));
    }
    for cert in valid {
        index.push_str(&format!("V\t301231235959Z\t\t{}\tunknown\t/CN=v\n", serial_hex(cert)));
    }
    std::fs::write(dir.join("index.txt"), index).unwrap();
    std::fs::write(dir.join("crlnumber"), "1000\n").unwrap();
    let config = dir.join("ca.cnf");
    std::fs::write(
        &config,
        format!(
            "[ ca ]\ndefault_ca = test\n[ test ]\ndatabase = {d}/index.txt\ncrlnumber = {d}/crlnumber\n\
             certificate = {d}/ca.pem\nprivate_key = {d}/ca.key\ndefault_md = sha256\ndefault_crl_days = 7\n",
            d = dir.display()
        ),
    )
    .unwrap();
    config
}

fn gencrl(config: &Path, out: &Path) {
    let status = Command::new("openssl")
        .args(["ca", "-gencrl", "-config"])
        .arg(config)
        .arg("-out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success(), "openssl ca -gencrl failed");
}

async fn crl_gateway(pki: &Pki, crl_files: &[&Path]) -> Gw {
    let files = crl_files.iter().map(|p| toml(p)).collect::<Vec<_>>().join(", ");
    Gw::start(pki, |s| {
        s.certificate_problems("alert");
        s.revocation_policy = "sources = []".into();
        s.extra = format!(
            "[[client_auth.issuer]]\nname = \"crl-issuing\"\ncertificate = {}\n[client_auth.issuer.revocation]\nsources = [\"crl\"]\ncrl_files = [{files}]\n",
            toml(&pki.path("issuing.pem")));
    })
    .await
}

#[tokio::test]
async fn crl_made_by_openssl_ca_refuses_listed_certificates_at_the_handshake() {
    let pki = Pki::new();
    let alice = pki.card("555000000001");
    let bob = pki.card("555000000002");
    let config = openssl_ca(&pki, &[&bob], &[&alice]);
    let crl = pki.path("openssl.crl.pem");
    gencrl(&config, &crl);
    let gw = crl_gateway(&pki, &[&crl]).await;
    assert_eq!(get(&gw, &pki, &alice).await.status, 200);
    let alert = handshake_alert(gw.addr, client_config(&pki, Some(&bob), &[b"http/1.1"])).await;
    assert_eq!(alert, Some(rustls::AlertDescription::CertificateRevoked));
    assert!(gw.metric("spinegate_client_cert_verifications_total{result=\"revoked\"}").await >= 1.0);
}

#[tokio::test]
async fn crl_with_200000_entries_is_loaded_and_indexed() {
    let pki = Pki::new();
    let alice = pki.card("555000000001");
    let bob = pki.card("555000000002");
    let mut spec = CrlSpec::new(1);
    spec.revoked = (1..200_000u32).map(|n| RevokedEntry::now(&(0x4000_0000 + n).to_be_bytes())).collect();
    spec.revoked.push(RevokedEntry::now(&serial_bytes(&bob)));
    let crl = pki.path("big.crl");
    std::fs::write(&crl, pki.issuing.crl(&spec).unwrap()).unwrap();
    let gw = crl_gateway(&pki, &[&crl]).await;
    assert_eq!(get(&gw, &pki, &alice).await.status, 200);
    let alert = handshake_alert(gw.addr, client_config(&pki, Some(&bob), &[b"http/1.1"])).await;
    assert_eq!(alert, Some(rustls::AlertDescription::CertificateRevoked));
    let series = format!("spinegate_crl_entries{{source=\"{}\",kind=\"full\"}}", crl.display());
    assert_eq!(gw.metric(&series).await, 200_000.0);
}

#[tokio::test]
async fn delta_crl_revokes_a_certificate_its_base_does_not_list() {
    let pki = Pki::new();
    let alice = pki.card("555000000001");
    let carol = pki.card("555000000003");
    let base = pki.path("base.crl");
    std::fs::write(&base, pki.issuing.crl(&CrlSpec::new(20)).unwrap()).unwrap();
    let mut delta_spec = CrlSpec::new(21);
    delta_spec.delta_of = Some(20);
    delta_spec.revoked = vec![RevokedEntry::now(&serial_bytes(&carol))];
    let delta = pki.path("delta.crl");
    std::fs::write(&delta, pki.issuing.crl(&delta_spec).unwrap()).unwrap();

    let base_only = crl_gateway(&pki, &[&base]).await;
    assert_eq!(get(&base_only, &pki, &carol).await.status, 200, "the base alone does not list carol");

    let with_delta = crl_gateway(&pki, &[&base, &delta]).await;
    assert_eq!(get(&with_delta, &pki, &alice).await.status, 200);
    let alert = handshake_alert(with_delta.addr, client_config(&pki, Some(&carol), &[b"http/1.1"])).await;
    assert_eq!(alert, Some(rustls::AlertDescription::CertificateRevoked));
}

/// Serves `body` for every request (a CRL distribution point).
async fn serve_bytes(body: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Arc::new(body);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let body = Arc::clone(&body);
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn crl_is_fetched_from_the_certificates_distribution_point() {
    let pki = Pki::new();
    // bob's serial is fixed in advance so the CRL can list it before his certificate exists.
    let bob_serial = [0x42u8; 16];
    let mut spec = CrlSpec::new(6);
    spec.revoked = vec![RevokedEntry::now(&bob_serial)];
    let point = serve_bytes(pki.issuing.crl(&spec).unwrap()).await;
    let url = format!("http://{point}/issuing.crl");
    let alice = pki.issue(LeafSpec::smartcard("555000000001", "A", "A").key(KeyKind::EcdsaP256).crl_url(&url));
    let bob = pki
        .issue(LeafSpec::smartcard("555000000002", "B", "B").key(KeyKind::EcdsaP256).crl_url(&url).serial(&bob_serial));

    let gw = Gw::start(&pki, |s| {
        s.certificate_problems("alert");
        s.revocation_policy = "sources = [\"crl\"]".into();
    })
    .await;
    assert_eq!(get(&gw, &pki, &alice).await.status, 200);
    // alice's request fetched the CRL; bob is now known revoked at his handshake.
    let alert = handshake_alert(gw.addr, client_config(&pki, Some(&bob), &[b"http/1.1"])).await;
    assert_eq!(alert, Some(rustls::AlertDescription::CertificateRevoked));
    assert!(gw.metric("spinegate_revocation_fetches_total{source=\"crl\",outcome=\"ok\"}").await >= 1.0);
}

#[tokio::test]
async fn changed_crl_file_takes_effect_on_open_connections_within_a_second() {
    let pki = Pki::new();
    let alice = pki.card("555000000001");
    let crl = pki.path("changing.crl");
    std::fs::write(&crl, pki.issuing.crl(&CrlSpec::new(1)).unwrap()).unwrap();
    let gw = crl_gateway(&pki, &[&crl]).await;
    let mut client = Client::connect(gw.addr, client_config(&pki, Some(&alice), &[b"h2"])).await.unwrap();
    assert_eq!(client.get("/metadata").await.unwrap().status, 200);

    let mut spec = CrlSpec::new(2);
    spec.revoked = vec![RevokedEntry::now(&serial_bytes(&alice))];
    std::fs::write(&crl, pki.issuing.crl(&spec).unwrap()).unwrap();
    let changed = Instant::now();
    // Poll the open connection (bounded): the reload is the gateway's own background work.
    loop {
        let r = client.get("/metadata").await.unwrap();
        if r.status == 401 {
            assert_eq!(r.json()["reason"], "certificate_revoked");
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_millis(1500),
            "still served {:?} after the change",
            changed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn deny_list_file_and_admin_endpoint_take_effect_on_open_connections() {
    let pki = Pki::new();
    let alice = pki.card("555000000001");
    let deny = pki.path("deny.txt");
    std::fs::write(&deny, "# nobody yet\n").unwrap();
    let token_file = pki.write("admin-token", "correct-horse-battery-staple\n");
    let gw = Gw::start(&pki, |s| {
        s.revocation = format!(
            "deny_list = {deny}\nadmin_token_file = {token_file}\n",
            deny = toml(&deny),
            token_file = toml(&token_file)
        );
    })
    .await;
    let mut client = Client::connect(gw.addr, client_config(&pki, Some(&alice), &[b"h2"])).await.unwrap();
    assert_eq!(client.get("/metadata").await.unwrap().status, 200);

    // The file: effective within a second on the open connection.
    std::fs::write(&deny, "user 555000000001  # lost card\n").unwrap();
    let changed = Instant::now();
    loop {
        let r = client.get("/metadata").await.unwrap();
        if r.status == 401 {
            assert_eq!(r.json()["reason"], "certificate_revoked");
            break;
        }
        assert!(changed.elapsed() < Duration::from_millis(1500), "still served after {:?}", changed.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(&deny, "").unwrap();
    let lifted = Instant::now();
    let mut client = loop {
        let mut c = Client::connect(gw.addr, client_config(&pki, Some(&alice), &[b"h2"])).await.unwrap();
        if c.get("/metadata").await.map(|r| r.status == 200).unwrap_or(false) {
            break c;
        }
        assert!(lifted.elapsed() < Duration::from_millis(1500));
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // The admin endpoint: its own credential, immediate effect.
    let body = format!("serial {}\n", serial_hex(&alice));
    let (status, _) = plain_request(gw.admin, "POST", "/revocation/deny", &[], &body).await;
    assert_eq!(status, 401, "no token");
    let (status, _) =
        plain_request(gw.admin, "POST", "/revocation/deny", &[("authorization", "Bearer wrong-token-xxxxxxxx")], &body)
            .await;
    assert_eq!(status, 401, "wrong token");
    let auth = [("authorization", "Bearer correct-horse-battery-staple")];
    let (status, text) = plain_request(gw.admin, "POST", "/revocation/deny", &auth, &body).await;
    assert_eq!((status, text.as_str()), (200, "1 entries added\n"));
    let r = client.get("/metadata").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.json()["reason"].as_str().unwrap().to_owned()),
        (401, "certificate_revoked".to_owned())
    );
    let (status, listing) = plain_request(gw.admin, "GET", "/revocation/deny", &auth, "").await;
    assert_eq!(status, 200);
    assert!(listing.contains(&serial_hex(&alice).to_lowercase()), "{listing}");
    let (status, _) = plain_request(gw.admin, "POST", "/revocation/deny", &auth, "user 123\n").await;
    assert_eq!(status, 400, "a malformed entry is refused");
    let (status, _) = plain_request(gw.admin, "DELETE", "/revocation/deny", &auth, &body).await;
    assert_eq!(status, 200);
    let mut again = Client::connect(gw.addr, client_config(&pki, Some(&alice), &[b"h2"])).await.unwrap();
    assert_eq!(again.get("/metadata").await.unwrap().status, 200);
}

#[tokio::test]
async fn resumed_session_of_a_revoked_certificate_is_refused() {
    let pki = Pki::new();
    let alice = pki.card("555000000001");
    let token_file = pki.write("admin-token", "correct-horse-battery-staple");
    let gw = Gw::start(&pki, |s| {
        s.revocation = format!("admin_token_file = {token_file}\n", token_file = toml(&token_file))
    })
    .await;
    let config = client_config(&pki, Some(&alice), &[b"http/1.1"]);
    let mut first = Client::connect(gw.addr, Arc::clone(&config)).await.unwrap();
    assert_eq!(first.get("/metadata").await.unwrap().status, 200);

    let auth = [("authorization", "Bearer correct-horse-battery-staple")];
    let (status, _) = plain_request(gw.admin, "POST", "/revocation/deny", &auth, "user 555000000001\n").await;
    assert_eq!(status, 200);
    // A resumed session skips the handshake verifier: the request path still refuses it.
    let tls = tls_connect(gw.addr, config).await.unwrap();
    assert_eq!(tls.get_ref().1.handshake_kind(), Some(HandshakeKind::Resumed));
    let mut resumed = Client::over(tls).await;
    let r = resumed.get("/metadata").await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "certificate_revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_first_handshakes_cause_one_ocsp_request() {
    let pki = Pki::new();
    let issuing = Arc::new(
        spinegate_devpki::Ca::from_der(
            pki.issuing.cert().clone(),
            rcgen::KeyPair::from_pem(&pki.issuing.key_pem()).unwrap(),
            &[],
            false,
        )
        .unwrap(),
    );
    let responder = OcspResponder::spawn("127.0.0.1:0".parse().unwrap(), Arc::clone(&issuing), []).await.unwrap();
    // Slow enough that every handshake arrives while the first fetch is still out.
    responder.set_delay(Duration::from_millis(500));
    let alice = card_with_ocsp(&pki, "555000000001", &responder.url());
    responder.set(&serial_bytes(&alice), spinegate_devpki::ocsp::CertState::Good);
    let gw = ocsp_gateway(&pki, "10s").await;
    let config = client_config(&pki, Some(&alice), &[b"http/1.1"]);
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let config = Arc::clone(&config);
            let addr = gw.addr;
            tokio::spawn(async move {
                let mut client = Client::connect(addr, config).await.unwrap();
                client.get("/metadata").await.unwrap().status
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(within(60, task).await.unwrap(), 200);
    }
    assert_eq!(responder.requests(), 1, "one OCSP request for one certificate");
}
