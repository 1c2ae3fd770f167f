//! Proxying to the patient-data service: upstream down (502) and too slow (504), bodies streamed
//! both ways, body and header limits, HTTP/2 and TLS (with the gateway's client certificate)
//! towards the upstream, routing, Host policy and round-robin.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use spinegate_devpki::demo_service::DemoService;
use spinegate_devpki::{Ca, Issued, KeyKind, LeafSpec};
use support::{Client, Gw, Pki, client_config, toml, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn alice_client(gw: &Gw, pki: &Pki, alpn: &[u8]) -> Client {
    let alice = pki.card("555000000001");
    Client::connect(gw.addr, client_config(pki, Some(&alice), &[alpn])).await.unwrap()
}

#[tokio::test]
async fn upstream_down_gives_502_quickly() {
    let pki = Pki::new();
    // A port that was just free: nothing listens there now.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let gw = Gw::start(&pki, |s| s.upstream_endpoints = vec![format!("http://{closed}")]).await;
    let mut client = alice_client(&gw, &pki, b"h2").await;
    let started = Instant::now();
    let r = within(10, client.get("/Patient/9000000009")).await.unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["reason"], "upstream_unavailable");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    let series = "spinegate_upstream_errors_total{upstream=\"demo\",kind=\"unavailable\"}";
    assert!(gw.metric(series).await >= 1.0);
}

#[tokio::test]
async fn upstream_too_slow_gives_504() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |s| s.upstream_extra = "response_timeout = \"300ms\"".into()).await;
    let mut client = alice_client(&gw, &pki, b"http/1.1").await;
    let started = Instant::now();
    let r = within(10, client.get("/_demo/slow?ms=5000")).await.unwrap();
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["reason"], "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    // The connection stays usable after a timeout.
    assert_eq!(client.get("/metadata").await.unwrap().status, 200);
}

#[tokio::test]
async fn large_bodies_stream_through_both_ways() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let mut client = alice_client(&gw, &pki, alpn).await;
        let body: Vec<u8> = (0..8_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let expected = sha256_hex(&body);
        let request = Request::post("/_demo/echo").body(Full::new(Bytes::from(body))).unwrap();
        let r = within(30, client.send(request)).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["bytes"], 8_000_000);
        assert_eq!(r.json()["sha256"], expected);

        let r = within(30, client.get("/_demo/bytes?n=20000000")).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 20_000_000);
    }
}

#[tokio::test]
async fn body_over_the_limit_gets_413_whether_declared_or_streamed() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |s| s.limits = "max_request_body_bytes = 1000000".into()).await;

    let mut client = alice_client(&gw, &pki, b"h2").await;
    let declared = Request::post("/_demo/echo").body(Full::new(Bytes::from(vec![7u8; 1_500_000]))).unwrap();
    let r = within(10, client.send(declared)).await.unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["reason"], "request_too_large");

    // Chunked, so the size is only known while streaming.
    let alice = pki.card("555000000001");
    let mut tls = support::tls_connect(gw.addr, client_config(&pki, Some(&alice), &[b"http/1.1"])).await.unwrap();
    tls.write_all(b"POST /_demo/echo HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n").await.unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let writer = async {
        for _ in 0..24 {
            let head = format!("{:x}\r\n", chunk.len());
            if tls.write_all(head.as_bytes()).await.is_err()
                || tls.write_all(&chunk).await.is_err()
                || tls.write_all(b"\r\n").await.is_err()
            {
                break;
            }
        }
        let _ = tls.write_all(b"0\r\n\r\n").await;
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response).await;
        String::from_utf8_lossy(&response).into_owned()
    };
    let response = within(20, writer).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{}", &response[..response.len().min(200)]);
    assert!(response.contains("request_too_large"));
}

#[tokio::test]
async fn headers_over_the_limit_get_431() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |s| s.limits = "max_request_header_bytes = 8192".into()).await;
    let mut client = alice_client(&gw, &pki, b"http/1.1").await;
    let request = Request::get("/metadata").header("x-big", "y".repeat(10_000)).body(Full::default()).unwrap();
    let r = within(10, client.send(request)).await.unwrap();
    assert_eq!(r.status, 431);
    assert_eq!(r.json()["reason"], "headers_too_large");
}

#[tokio::test]
async fn host_specific_route_wins_for_its_host() {
    let pki = Pki::new();
    let other = DemoService::spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let gw = Gw::start(&pki, |s| {
        s.extra = format!(
            "[[upstream]]\nname = \"other\"\nendpoints = [\"http://{}\"]\n\
             [[route]]\nname = \"spine-host\"\nhost = \"spine.example\"\npath_prefix = \"/Patient\"\nupstream = \"other\"\n{}",
            other.addr(),
            support::ANY_AUTHENTICATED
        );
    })
    .await;
    let mut client = alice_client(&gw, &pki, b"http/1.1").await;
    let to = |host: &str| Request::get("/Patient/9000000009").header("host", host).body(Full::default()).unwrap();
    let r = client.send(to("SPINE.example:8443")).await.unwrap();
    assert_eq!(
        r.received("host"),
        Some(other.addr().to_string()),
        "host route, matched case-insensitively without port"
    );
    let r = client.send(to("elsewhere.example")).await.unwrap();
    assert_eq!(r.received("host"), Some(gw.demo.addr().to_string()), "catch-all route");
}

#[tokio::test]
async fn path_outside_every_route_gets_404() {
    let pki = Pki::new();
    let demo = DemoService::spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let text = format!(
        r#"
[admin]
listen = "127.0.0.1:0"
[[listener]]
name = "test"
listen = "127.0.0.1:0"
[[listener.certificate]]
cert = {}
key = {}
[client_auth]
trust_anchors = [{}]
[client_auth.revocation]
sources = []
[[upstream]]
name = "demo"
endpoints = ["http://{}"]
[[route]]
name = "patient"
path_prefix = "/Patient"
upstream = "demo"
[[route.rule]]
methods = ["*"]
organisation_scope = false
"#,
        toml(&pki.path("server.pem")),
        toml(&pki.path("server.key")),
        toml(&pki.path("root.pem")),
        demo.addr()
    );
    let config = spinegate_config::parse(&text, None, pki.dir.path()).unwrap();
    let gateway = spinegate::Gateway::start(config, spinegate::Options::default()).await.unwrap();
    let alice = pki.card("555000000001");
    let mut client =
        Client::connect(gateway.listener_addrs()[0], client_config(&pki, Some(&alice), &[b"h2"])).await.unwrap();
    assert_eq!(client.get("/Patient/9000000009").await.unwrap().status, 200);
    let r = client.get("/PatientRecords").await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["reason"], "no_route");
}

#[tokio::test]
async fn http2_prior_knowledge_to_the_upstream() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |s| s.upstream_extra = "protocol = \"http2\"".into()).await;
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let mut client = alice_client(&gw, &pki, alpn).await;
        let r = client.get("/Patient/9000000009").await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["received_version"], "HTTP/2.0");
    }
}

#[tokio::test]
async fn upstream_sees_pooled_keepalive_http11_by_default() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    let mut client = alice_client(&gw, &pki, b"h2").await;
    let r = client.get("/metadata").await.unwrap();
    assert_eq!(r.json()["received_version"], "HTTP/1.1");
}

/// A TLS upstream that requires a client certificate from `client_ca` and reports the client
/// certificate's subject and the HTTP version it saw.
async fn spawn_tls_upstream(server: &Issued, client_ca: &Ca) -> SocketAddr {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(client_ca.cert().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
        .build()
        .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(server.chain.clone(), server.private_key())
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let subject = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| x509_parser::parse_x509_certificate(c).unwrap().1.subject().to_string())
                    .unwrap_or_default();
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let body = serde_json::json!({
                        "client_subject": subject,
                        "version": format!("{:?}", req.version()),
                        "identity": req.headers().get("nhsd-identity-uuid").and_then(|v| v.to_str().ok()),
                    });
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body.to_string())))) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn tls_upstream_gets_the_gateways_client_certificate() {
    let pki = Pki::new();
    let upstream_ca = Ca::root("Spine Internal CA", KeyKind::EcdsaP256).unwrap();
    let upstream_cert = upstream_ca.issue(&LeafSpec::server(&["spine-core.internal"])).unwrap();
    let gateway_client = upstream_ca
        .issue(
            &LeafSpec::server(&["spinegate.internal"])
                .eku(vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth])
                .subject(&[(rcgen::DnType::CommonName, "spinegate.internal")]),
        )
        .unwrap();
    let addr = spawn_tls_upstream(&upstream_cert, &upstream_ca).await;
    let ca = pki.write("upstream-ca.pem", &upstream_ca.cert_pem());
    let cert = pki.write("gateway-client.pem", &gateway_client.chain_pem());
    let key = pki.write("gateway-client.key", &gateway_client.key_pem());

    for (protocol, version) in [("http1", "HTTP/1.1"), ("negotiate", "HTTP/2.0"), ("http2", "HTTP/2.0")] {
        let gw = Gw::start(&pki, |s| {
            s.upstream_endpoints = vec![format!("https://127.0.0.1:{}", addr.port())];
            s.upstream_extra = format!(
                "protocol = \"{protocol}\"\n[upstream.tls]\nca = [{ca}]\nclient_certificate = {cert}\nclient_key = {key}\nserver_name = \"spine-core.internal\"\n", ca = toml(&ca), cert = toml(&cert), key = toml(&key));
        })
        .await;
        let mut client = alice_client(&gw, &pki, b"h2").await;
        let r = within(10, client.get("/Patient/9000000009")).await.unwrap();
        assert_eq!(r.status, 200, "{protocol}: {}", String::from_utf8_lossy(&r.body));
        let body = r.json();
        assert_eq!(body["client_subject"], "CN=spinegate.internal", "{protocol}");
        assert_eq!(body["version"], version, "{protocol}");
        assert_eq!(body["identity"], "555000000001");
    }

    // Without the gateway's client certificate the upstream refuses the connection: 502.
    let gw = Gw::start(&pki, |s| {
        s.upstream_endpoints = vec![format!("https://127.0.0.1:{}", addr.port())];
        s.upstream_extra =
            format!("[upstream.tls]\nca = [{ca}]\nserver_name = \"spine-core.internal\"\n", ca = toml(&ca));
    })
    .await;
    let mut client = alice_client(&gw, &pki, b"h2").await;
    assert_eq!(within(10, client.get("/Patient/9000000009")).await.unwrap().status, 502);
}

#[tokio::test]
async fn upstream_host_header_follows_policy() {
    let pki = Pki::new();
    let upstream = Gw::start(&pki, |_| {}).await;
    let demo = upstream.demo.addr();
    let mut client = alice_client(&upstream, &pki, b"http/1.1").await;
    let r = client.get("/metadata").await.unwrap();
    assert_eq!(r.received("host"), Some(demo.to_string()), "default: the endpoint's authority");
    assert_eq!(r.received("x-forwarded-host").as_deref(), Some("localhost"));

    let preserving = Gw::start(&pki, |s| s.upstream_extra = "host_header = \"preserve\"".into()).await;
    let mut client = alice_client(&preserving, &pki, b"http/1.1").await;
    let r = client.get("/metadata").await.unwrap();
    assert_eq!(r.received("host").as_deref(), Some("localhost"));
}

#[tokio::test]
async fn requests_are_spread_round_robin_over_endpoints() {
    let pki = Pki::new();
    let a = DemoService::spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let b = DemoService::spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let gw = Gw::start(&pki, |s| {
        s.upstream_endpoints = vec![format!("http://{}", a.addr()), format!("http://{}", b.addr())]
    })
    .await;
    let mut client = alice_client(&gw, &pki, b"h2").await;
    let mut hosts = Vec::new();
    for _ in 0..4 {
        hosts.push(client.get("/metadata").await.unwrap().received("host").unwrap());
    }
    let a_count = hosts.iter().filter(|h| **h == a.addr().to_string()).count();
    let b_count = hosts.iter().filter(|h| **h == b.addr().to_string()).count();
    assert_eq!((a_count, b_count), (2, 2), "{hosts:?}");
}

fn sha256_hex(data: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
