//! HTTP/3: a real quinn + h3 client with a smartcard certificate against a gateway's QUIC
//! endpoint on loopback — the same pipeline as TCP (identity headers, refusals, the per-request
//! revocation re-check on open and resumed connections), `Alt-Svc` on TCP, and the drain.

#![allow(missing_docs)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use spinegate_devpki::Issued;
use spinegate_testkit::h3::H3;
use spinegate_testkit::tls::{ClientTls, quic};
use support::{Client, Gw, Pki, client_config, plain_request, toml, within};

const ADMIN_TOKEN: &str = "correct-horse-battery-staple";

/// A gateway whose listener also serves HTTP/3, with the deny-list admin endpoint on.
async fn gateway(pki: &Pki, client_certificate: &'static str) -> Gw {
    let token = pki.write("admin-token", &format!("{ADMIN_TOKEN}\n"));
    Gw::start(pki, |s| {
        s.client_certificate = client_certificate;
        s.revocation = format!("admin_token_file = {token}\n", token = toml(&token));
        s.extra = "[listener.http3]\nmax_concurrent_streams = 16\n".to_owned();
    })
    .await
}

fn quic_client(pki: &Pki, card: Option<&Issued>) -> quinn::ClientConfig {
    quic(client_config(pki, card, &[b"h3"]))
}

async fn deny(gw: &Gw, user: &str) {
    let auth = [("authorization", "Bearer correct-horse-battery-staple")];
    let (status, text) = plain_request(gw.admin, "POST", "/revocation/deny", &auth, &format!("user {user}\n")).await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn a_smartcard_user_is_served_over_http3_with_the_identity_headers() {
    let pki = Pki::new();
    let gw = gateway(&pki, "require").await;
    let alice = pki.card("555000000001");
    let before =
        gw.metric(r#"spinegate_requests_total{route="all",method="GET",status="200",reason="ok",protocol="h3"}"#).await;

    let mut h3 = within(10, H3::connect(gw.addr, quic_client(&pki, Some(&alice)))).await.unwrap();
    let mut request = Request::get("https://localhost/Patient/9000000009").body(()).unwrap();
    // Spoofed identity headers are dropped here as on TCP.
    request.headers_mut().insert("nhsd-identity-uuid", "999999999999".parse().unwrap());
    let r = within(10, h3.request(request, None)).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.received("nhsd-identity-uuid").as_deref(), Some("555000000001"));
    assert_eq!(r.received("x-spinegate-auth-method").as_deref(), Some("smartcard"));
    assert_eq!(r.received("x-forwarded-proto").as_deref(), Some("https"));
    assert!(r.headers.contains_key("x-request-id"));
    assert!(!r.headers.contains_key("alt-svc"), "HTTP/3 responses do not advertise HTTP/3");

    // A request body reaches the upstream whole (the demo service reports length and SHA-256),
    // and a large response body comes back whole.
    let body = Bytes::from(vec![b'x'; 300_000]);
    let post = Request::post("https://localhost/_demo/echo").body(()).unwrap();
    let r = within(10, h3.request(post, Some(body.clone()))).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["bytes"], 300_000);
    let sha: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(r.json()["sha256"], sha);
    let r = within(10, h3.get("/_demo/bytes?n=1000000")).await.unwrap();
    assert_eq!((r.status.as_u16(), r.body.len()), (200, 1_000_000));

    let after =
        gw.metric(r#"spinegate_requests_total{route="all",method="GET",status="200",reason="ok",protocol="h3"}"#).await;
    assert_eq!(after - before, 2.0, "the patient read and the bytes download, counted as h3");
    assert!(gw.metric(r#"spinegate_tls_handshakes_total{listener="test",outcome="ok",version="1.3",resumed="unknown",transport="quic"}"#).await >= 1.0);

    // TCP responses advertise HTTP/3 on the same port number.
    let mut tcp = Client::connect(gw.addr, client_config(&pki, Some(&alice), &[b"h2"])).await.unwrap();
    let r = tcp.get("/metadata").await.unwrap();
    let alt_svc = r.headers.get("alt-svc").expect("Alt-Svc on TCP responses").to_str().unwrap().to_owned();
    assert_eq!(alt_svc, format!("h3=\":{}\"; ma=86400", gw.addr.port()));
}

#[tokio::test]
async fn no_certificate_is_refused_at_the_handshake_or_with_401() {
    let pki = Pki::new();
    let requiring = gateway(&pki, "require").await;
    let refused = within(10, H3::connect(requiring.addr, quic_client(&pki, None))).await;
    let refused = match refused {
        Err(e) => e,
        // In TLS 1.3 the client may finish before the server judges it; the first request fails.
        Ok(mut h3) => within(10, h3.get("/metadata")).await.err().expect("served without a certificate"),
    };
    assert!(!refused.is_empty());

    let requesting = gateway(&pki, "request").await;
    let mut h3 = within(10, H3::connect(requesting.addr, quic_client(&pki, None))).await.unwrap();
    let r = within(10, h3.get("/Patient/9000000009")).await.unwrap();
    assert_eq!((r.status.as_u16(), r.reason()), (401, "client_certificate_required".to_owned()));
    assert_eq!(r.headers.get("content-type").unwrap(), "application/problem+json");
}

#[tokio::test]
async fn a_revoked_certificate_is_refused() {
    let pki = Pki::new();
    let gw = gateway(&pki, "require").await;
    let bob = pki.card("555000000002");
    deny(&gw, "555000000002").await;
    let outcome = match within(10, H3::connect(gw.addr, quic_client(&pki, Some(&bob)))).await {
        Err(e) => e,
        Ok(mut h3) => match within(10, h3.get("/Patient/9000000009")).await {
            Ok(r) => {
                assert_eq!((r.status.as_u16(), r.reason()), (401, "certificate_revoked".to_owned()));
                return;
            }
            Err(e) => e,
        },
    };
    assert!(outcome.contains("handshake") || outcome.contains("closed"), "{outcome}");
    assert!(
        gw.metric(r#"spinegate_client_cert_verifications_total{result="revoked"}"#).await >= 1.0,
        "refused as revoked"
    );
}

#[tokio::test]
async fn a_revocation_refuses_the_next_request_on_an_open_and_on_a_resumed_connection() {
    let pki = Pki::new();
    let gw = gateway(&pki, "require").await;
    let alice = pki.card("555000000001");
    // One client configuration for every connection, so later ones resume the first's session;
    // the session store counts the tickets it hands out.
    let mut tls = Arc::unwrap_or_clone(client_config(&pki, Some(&alice), &[b"h3"]));
    let store = Arc::new(spinegate_testkit::tickets::TicketCounter::new(32));
    tls.resumption = rustls::client::Resumption::store(Arc::clone(&store) as _);
    let tls = Arc::new(tls);

    let mut first = within(10, H3::connect(gw.addr, quic(Arc::clone(&tls)))).await.unwrap();
    assert_eq!(within(10, first.get("/metadata")).await.unwrap().status, 200);
    // Let the client receive its session ticket, then open the second connection while alice
    // is still good.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut resumed = within(10, H3::connect(gw.addr, quic(Arc::clone(&tls)))).await.unwrap();
    assert_eq!(store.offered(), 1, "the second connection offers the first one's session ticket");
    assert_eq!(within(10, resumed.get("/metadata")).await.unwrap().status, 200);

    // HR cancels the card: the next request on each open connection is refused.
    deny(&gw, "555000000001").await;
    for (name, h3) in [("open", &mut first), ("resumed", &mut resumed)] {
        let r = within(10, h3.get("/Patient/9000000009")).await.unwrap();
        assert_eq!((r.status.as_u16(), r.reason()), (401, "certificate_revoked".to_owned()), "{name} connection");
    }
    // A new connection that resumes the old session is refused too, at the handshake or at its
    // first request; it never reaches the upstream.
    match within(10, H3::connect(gw.addr, quic(Arc::clone(&tls)))).await {
        Err(e) => assert!(!e.is_empty()),
        Ok(mut h3) => match within(10, h3.get("/Patient/9000000009")).await {
            Ok(r) => assert_eq!((r.status.as_u16(), r.reason()), (401, "certificate_revoked".to_owned())),
            Err(e) => assert!(!e.is_empty()),
        },
    }
}

#[tokio::test]
async fn shutdown_finishes_in_flight_http3_requests_and_closes_the_connection() {
    let pki = Pki::new();
    let gw = gateway(&pki, "require").await;
    let alice = pki.card("555000000001");
    let mut h3 = within(10, H3::connect(gw.addr, quic_client(&pki, Some(&alice)))).await.unwrap();
    assert_eq!(within(10, h3.get("/metadata")).await.unwrap().status, 200);

    let slow = {
        let mut send = h3.sender();
        tokio::spawn(async move {
            let request = Request::get("https://localhost/_demo/slow?ms=700").body(()).unwrap();
            let mut stream = send.send_request(request).await.map_err(|e| e.to_string())?;
            stream.finish().await.map_err(|e| e.to_string())?;
            let response = stream.recv_response().await.map_err(|e| e.to_string())?;
            while stream.recv_data().await.map_err(|e| e.to_string())?.is_some() {}
            Ok::<_, String>(response.status())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let Gw { gateway, .. } = gw;
    within(10, gateway.shutdown(Duration::from_secs(10))).await;
    assert_eq!(within(10, slow).await.unwrap(), Ok(StatusCode::OK), "the in-flight request completed");
    assert!(started.elapsed() < Duration::from_secs(5), "the drain waited for the deadline");
    // The connection was closed by the server after its GOAWAY.
    let closed = within(10, h3.connection.closed()).await;
    assert!(matches!(closed, quinn::ConnectionError::ApplicationClosed(_)), "{closed:?}");
}

#[tokio::test]
async fn the_dev_world_serves_http3_on_its_gateway_port() {
    let dir = tempfile::tempdir().unwrap();
    let options = spinegate::dev::DevOptions {
        dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: "127.0.0.1:0".parse().unwrap(),
    };
    let world = within(60, spinegate::dev::start(&options, spinegate::Options::default())).await.unwrap();
    let manifest = &world.manifest;
    assert!(manifest.h3);
    let port: u16 = manifest.gateway_url.rsplit(':').next().unwrap().parse().unwrap();
    let alice = manifest.user("alice").unwrap();
    let roots = spinegate_testkit::tls::roots_from_pem_file(&manifest.server_ca).unwrap();
    let (chain, key) =
        spinegate_testkit::tls::card_from_pem_files(alice.cert.as_ref().unwrap(), alice.key.as_ref().unwrap()).unwrap();
    let tls = ClientTls::trusting(roots).card(chain, key).alpn(&[b"h3"]).versions(&[&rustls::version::TLS13]).build();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut h3 = within(10, H3::connect(addr, quic(tls))).await.unwrap();
    let r = within(10, h3.get("/Patient/9000000009")).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.received("nhsd-identity-uuid").as_deref(), Some(alice.user_id.as_str()));
}

/// A request stream that starts a HEADERS frame and never finishes it would hold a stream slot
/// and the connection's drain for ever: it is dropped after the header read timeout, and a
/// QUIC connection that never sends a request is closed after it too.
#[tokio::test]
async fn http3_streams_and_connections_without_requests_are_dropped() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |s| {
        s.limits = "header_read_timeout = \"1s\"\n".into();
        s.extra = "[listener.http3]\nmax_concurrent_streams = 16\n".to_owned();
    })
    .await;
    let alice = pki.card("555000000001");
    let mut h3 = within(10, H3::connect(gw.addr, quic_client(&pki, Some(&alice)))).await.unwrap();
    assert_eq!(within(10, h3.get("/metadata")).await.unwrap().status, 200);
    // A bidirectional stream with one byte of a HEADERS frame (its type) and no more.
    let (mut send, mut recv) = h3.connection.open_bi().await.unwrap();
    send.write_all(&[0x01]).await.unwrap();
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1024)).await;
    assert!(ended.is_ok(), "the half-sent request stream was kept open");
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    // The connection itself still serves requests…
    assert_eq!(within(10, h3.get("/metadata")).await.unwrap().status, 200);

    // …but one that never sends any request is closed.
    let silent = within(10, H3::connect(gw.addr, quic_client(&pki, Some(&alice)))).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.connection.closed()).await;
    assert!(closed.is_ok(), "a QUIC connection without requests was kept open");
    let series =
        r#"spinegate_connections_closed_total{listener="test",transport="quic",reason="first_request_timeout"}"#;
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.metric(series).await < 1.0 {
        assert!(Instant::now() < deadline, "the close was not counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
