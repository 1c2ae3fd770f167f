//! `spinegate dev` end to end: the generated world serves its demo users as the manifest says,
//! is reused across restarts, and the `spinegate` command runs it, checks configurations, and
//! stops cleanly on Ctrl-C.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use spinegate::dev::{DevOptions, start};
use spinegate_devpki::Manifest;
use spinegate_testkit::tls::{ClientTls, card_from_pem_files, roots_from_pem_file};
use support::{Client, within};

fn client_for(manifest: &Manifest, user: Option<&str>) -> Arc<rustls::ClientConfig> {
    let tls = ClientTls::trusting(roots_from_pem_file(&manifest.server_ca).unwrap()).alpn(&[b"h2", b"http/1.1"]);
    match user.and_then(|name| manifest.user(name)) {
        Some(u) => {
            let (chain, key) = card_from_pem_files(u.cert.as_ref().unwrap(), u.key.as_ref().unwrap()).unwrap();
            tls.card(chain, key)
        }
        None => tls,
    }
    .build()
}

async fn connect(manifest: &Manifest, user: &str) -> std::io::Result<Client> {
    connect_as(manifest, Some(user)).await
}

async fn connect_as(manifest: &Manifest, user: Option<&str>) -> std::io::Result<Client> {
    let port: u16 = manifest.gateway_url.rsplit(':').next().unwrap().parse().unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let tls = tokio_rustls::TlsConnector::from(client_for(manifest, user))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    Ok(Client::over(tls).await)
}

fn options(dir: &Path) -> DevOptions {
    DevOptions { dir: dir.to_path_buf(), listen: "127.0.0.1:0".parse().unwrap(), admin: "127.0.0.1:0".parse().unwrap() }
}

#[tokio::test]
async fn dev_world_serves_its_demo_users_as_the_manifest_describes() {
    let dir = tempfile::tempdir().unwrap();
    let world = within(60, start(&options(dir.path()), spinegate::Options::default())).await.unwrap();
    let manifest = Manifest::read(&dir.path().join("manifest.json")).unwrap();
    assert_eq!(manifest, world.manifest);
    assert!(manifest.gateway_url.starts_with("https://localhost:"));
    assert!(manifest.admin_url.starts_with("http://127.0.0.1:"));
    assert!(manifest.h3, "the dev world serves HTTP/3");
    assert!(manifest.server_ca.exists());
    for name in ["alice", "bob", "carol", "dave"] {
        let u = manifest.user(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(u.user_id.len(), 12);
        assert!(u.cert.as_ref().unwrap().exists() && u.key.as_ref().unwrap().exists());
    }

    let mut alice = connect(&manifest, "alice").await.unwrap();
    let r = alice.get("/Patient/9000000009").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["resourceType"], "Patient");
    assert_eq!(r.received("nhsd-identity-uuid").as_deref(), Some(manifest.user("alice").unwrap().user_id.as_str()));

    // bob's card is revoked: the dev CRL, loaded before the gateway serves, knows it at the
    // handshake; the dev listener explains rather than alerts, so every request on his
    // connection is refused with what to do. The manifest says so too.
    assert!(manifest.user("bob").unwrap().revoked);
    assert!(!manifest.user("alice").unwrap().revoked);
    assert!(manifest.ocsp_url.starts_with("http://127.0.0.1:"));
    let mut bob = connect(&manifest, "bob").await.unwrap();
    let r = bob.get("/metadata").await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "certificate_revoked");
    assert!(r.json()["detail"].as_str().unwrap().contains("cancelled"), "{:?}", r.body);
    assert!(world.ocsp.requests() >= 1, "alice's status came from the dev OCSP responder");

    let mut carol = connect(&manifest, "carol").await.unwrap();
    let r = carol.get("/Patient/9000000017").await.unwrap();
    assert_eq!(r.status, 200);
    let warning = r.headers["x-certificate-expiry-warning"].to_str().unwrap();
    // carol's certificate ends 30 days after it was issued, moments ago: 30 days in the same
    // second, 29 (whole days left) after it.
    assert!(warning.starts_with("29 days;") || warning.starts_with("30 days;"), "{warning}");

    // dave's certificate has expired: explained too, never proxied.
    let mut dave = connect(&manifest, "dave").await.unwrap();
    let r = dave.get("/Patient/9000000009").await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "certificate_expired");
    assert!(r.json()["received_headers"].is_null(), "nothing reached the service");

    // grace has no smartcard: her security-key token from the dev issuer lets her in, as
    // herself, with the authenticator named; without it the request is refused.
    let grace = manifest.user("grace").unwrap();
    assert!(grace.cert.is_none() && grace.certificate_state == "none");
    assert_eq!(grace.authenticator.as_deref(), Some("security_key"));
    let token = grace.token.clone().unwrap();
    assert_eq!(std::fs::read_to_string(dir.path().join("tokens/grace.jwt")).unwrap(), token);
    let mut anonymous = connect_as(&manifest, None).await.unwrap();
    let bearer = |token: &str| {
        http::Request::get("/Patient/9000000009")
            .header("authorization", format!("Bearer {token}"))
            .body(http_body_util::Full::default())
            .unwrap()
    };
    let r = anonymous.send(bearer(&token)).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.received("nhsd-identity-uuid").as_deref(), Some(grace.user_id.as_str()));
    assert_eq!(r.received("x-spinegate-auth-method").as_deref(), Some("token:security_key"));
    assert!(r.received("authorization").is_none(), "the bearer token must not reach the service");
    let r = anonymous.get("/Patient/9000000009").await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "client_certificate_required");
    // alice's card session token, presented with her card, is hers: accepted.
    let r = alice.send(bearer(manifest.user("alice").unwrap().token.as_ref().unwrap())).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);

    // The walkthrough's emergency stop: grace on the deny list named in the manifest is refused
    // on her open connection, token and all; taken off, she is back.
    let deny_list = dir.path().join(manifest.deny_list.as_ref().expect("the manifest names the deny list"));
    assert!(manifest.deny_list.as_ref().unwrap().is_relative(), "relative to the dev directory");
    let original = std::fs::read_to_string(&deny_list).unwrap();
    std::fs::write(&deny_list, format!("{original}user {}\n", grace.user_id)).unwrap();
    let suspended = within(5, async {
        loop {
            let r = anonymous.send(bearer(&token)).await.unwrap();
            if r.status == 403 {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(suspended.json()["reason"], "user_suspended");
    std::fs::write(&deny_list, original).unwrap();
    within(5, async {
        while anonymous.send(bearer(&token)).await.unwrap().status != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    // Roles: erin's admin-clerk role lacks the viewing activities; frank holds two roles and
    // must say which; every decision is in the audit log.
    for name in ["alice", "erin", "frank", "grace"] {
        assert!(!manifest.user(name).unwrap().role_profiles.is_empty(), "{name} has role profiles");
    }
    assert_eq!(manifest.user("frank").unwrap().role_profiles.len(), 2);
    let mut erin = connect(&manifest, "erin").await.unwrap();
    let r = erin.get("/Patient/9000000009").await.unwrap();
    assert_eq!((r.status.as_u16(), r.json()["reason"].as_str()), (403, Some("activity_not_permitted")));
    assert_eq!(erin.get("/metadata").await.unwrap().status, 200, "any authenticated user reads metadata");
    let mut frank = connect(&manifest, "frank").await.unwrap();
    let r = frank.get("/Patient/9000000009").await.unwrap();
    assert_eq!((r.status.as_u16(), r.json()["reason"].as_str()), (403, Some("role_not_selected")));
    let second = &manifest.user("frank").unwrap().role_profiles[1];
    let r = frank
        .send(
            http::Request::get("/Patient/9000000009")
                .header("NHSD-Session-URID", second.id.as_str())
                .body(http_body_util::Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.received("nhsd-end-user-organisation-ods").as_deref(), Some(second.org.as_str()));
    assert!(r.received("x-spinegate-identity-assertion").is_some());
    let jwks = manifest.assertion_jwks_url.as_deref().unwrap().trim_start_matches("http://");
    let (addr, path) = jwks.split_once('/').unwrap();
    let (status, body) = support::plain_get(addr.parse().unwrap(), &format!("/{path}")).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"kty\":\"EC\""), "{body}");
    assert!(world.gateway.audit().flush(Duration::from_secs(5)));
    let audit = std::fs::read_to_string(manifest.audit_log.as_ref().unwrap()).unwrap();
    assert!(
        audit.lines().any(|l| l.contains("\"reason\":\"activity_not_permitted\"") && l.contains("555000000005")),
        "{audit}"
    );

    let (status, body) =
        support::plain_get(manifest.admin_url.trim_start_matches("http://").parse().unwrap(), "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    world.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn dev_world_reuses_its_pki_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first = within(60, start(&options(dir.path()), spinegate::Options::default())).await.unwrap();
    let root = std::fs::read(dir.path().join("pki/smartcard-root.pem")).unwrap();
    let alice = std::fs::read(first.manifest.user("alice").unwrap().cert.as_ref().unwrap()).unwrap();
    first.shutdown(Duration::from_secs(5)).await;

    let second = within(60, start(&options(dir.path()), spinegate::Options::default())).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("pki/smartcard-root.pem")).unwrap(), root);
    assert_eq!(std::fs::read(second.manifest.user("alice").unwrap().cert.as_ref().unwrap()).unwrap(), alice);
    let mut client = connect(&second.manifest, "alice").await.unwrap();
    assert_eq!(client.get("/metadata").await.unwrap().status, 200);
    second.shutdown(Duration::from_secs(5)).await;
}

#[test]
fn spinegate_dev_command_runs_the_world_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_spinegate"))
        .args(["dev", "--dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Read stdout until the walkthrough says the world is running (bounded by the child's own
    // start-up; the test harness timeout is the backstop).
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    assert!(printed.contains("spinegate dev is running"), "{printed}");
    assert!(printed.contains("curl --cacert"), "the walkthrough prints curl commands: {printed}");
    let manifest = Manifest::read(&dir.path().join("manifest.json")).unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut alice = connect(&manifest, "alice").await.unwrap();
        assert_eq!(alice.get("/Patient/9000000009").await.unwrap().status, 200);
    });

    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "spinegate dev exited with {exit:?} after Ctrl-C");
}

#[test]
fn check_config_accepts_a_good_file_and_points_at_errors() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let world = runtime.block_on(start(&options(dir.path()), spinegate::Options::default())).unwrap();
    let config = world.manifest.config.clone();
    runtime.block_on(world.shutdown(Duration::from_secs(5)));

    let ok = Command::new(env!("CARGO_BIN_EXE_spinegate")).arg("check-config").arg(&config).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("configuration is valid"));

    let text =
        std::fs::read_to_string(&config).unwrap().replace("response_timeout = \"15s\"", "response_timeout = \"soon\"");
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, &text).unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_spinegate")).arg("check-config").arg(&broken).output().unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    let line = text.lines().position(|l| l.contains("\"soon\"")).unwrap() + 1;
    assert!(stderr.contains(&format!("broken.toml:{line}:")), "{stderr}");
    assert!(stderr.contains("invalid duration"), "{stderr}");

    // A file that parses but names a missing certificate fails the material check.
    let text = std::fs::read_to_string(&config).unwrap().replace("server.key", "missing.key");
    let missing = dir.path().join("missing.toml");
    std::fs::write(&missing, text).unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_spinegate")).arg("check-config").arg(&missing).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("missing.key"));
}
