//! The ways around the gateway's decisions a security review found, each as the attack itself
//! sent over real TLS: path confusion (dot segments, encodings, merged slashes, path parameters,
//! letter case) that moved a request onto another route's rules or another organisation; the
//! emergency deny list that stopped cards but not tokens; identity headers spelt with `_`; a
//! `Host` that disagreed with the target or hid behind a trailing dot. Each test fails on the
//! code before the fix and names the attack it stops.

mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Request;
use http_body_util::Full;
use serde_json::Value;
use spinegate_devpki::Issued;
use spinegate_devpki::token::{KeyEndpoint, RoleSpec, TokenIssuer};
use support::{
    ALICE, AUDIENCE, CLINICIAN_AND_CLERK_ROLES, Client, ERIN, Gw, ISSUER, Pki, RawResp, Resp, SCOPED_ROUTES,
    care_identity, client_config, raw_http1, toml, within,
};

/// alice may read patient records (B0360) at RX1; erin, an admin clerk at RX1, may not. With
/// [`SCOPED_ROUTES`] (`/Organization/{ods}`, and the public `/metadata` that path-confusion
/// attacks aim for).
const ROUTES: &str = r#"
[[route]]
name = "patient"
path_prefix = "/Patient"
upstream = "demo"
[[route.rule]]
methods = ["GET", "HEAD", "POST"]
activities_any = ["B0360"]
organisation_scope = false

[[route]]
name = "legacy"
path_prefix = "/legacy"
upstream = "demo"
path_parameters = "allow"
[[route.rule]]
methods = ["GET", "POST"]
organisation_scope = false

[[route]]
name = "spine-host"
host = "spine.test"
path_prefix = "/Patient"
upstream = "demo"
[[route.rule]]
methods = ["GET"]
activities_any = ["B0360"]
organisation_scope = false
"#;

struct World {
    pki: Pki,
    gw: Gw,
    keys: KeyEndpoint,
    audit: PathBuf,
    deny: PathBuf,
}

impl World {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut support::Settings)) -> Self {
        let pki = Pki::new();
        let roles = pki.write("roles.toml", CLINICIAN_AND_CLERK_ROLES);
        let audit = pki.path("audit.jsonl");
        let deny = pki.write("deny.txt", "# nobody yet\n");
        let issuer = Arc::new(Mutex::new(TokenIssuer::new(ISSUER).unwrap()));
        let keys = KeyEndpoint::spawn("127.0.0.1:0".parse().unwrap(), issuer).await.unwrap();
        let extra = format!(
            "{}\
             [role_directory]\nfile = {roles}\n[audit]\nfile = {audit}\n{ROUTES}{SCOPED_ROUTES}",
            care_identity(&keys.jwks_url()),
            roles = toml(&roles),
            audit = toml(&audit)
        );
        let gw = Gw::start(&pki, |s| {
            s.client_certificate = "request";
            // The catch-all route has no rule: whatever no other route matches is refused.
            s.rules = String::new();
            s.revocation = format!("deny_list = {deny}\n", deny = toml(&deny));
            s.extra = extra;
            adjust(s);
        })
        .await;
        Self { pki, gw, keys, audit, deny }
    }

    /// A clinician's token (B0360 at RX1) for `user`, signed in with a security key.
    fn token(&self, user: &str) -> String {
        let roles = [RoleSpec {
            person_roleid: "555254242121".into(),
            org_code: "RX1".into(),
            role_code: "S8000:G8000:R8000".into(),
            role_name: "Clinical Practitioner".into(),
            activity_codes: vec!["B0360".into()],
        }];
        let issuer = self.keys.issuer().lock().unwrap();
        issuer.token(&issuer.care_identity_claims(AUDIENCE, user, "FIDO2", 3, &roles, 3600))
    }

    /// `head` sent byte for byte over HTTP/1.1 with `card`.
    async fn raw(&self, card: Option<&Issued>, head: &str) -> RawResp {
        raw_http1(self.gw.addr, client_config(&self.pki, card, &[b"http/1.1"]), head).await
    }

    /// `GET path` sent byte for byte with `Host: localhost`.
    async fn get_raw(&self, card: Option<&Issued>, path: &str) -> RawResp {
        self.raw(card, &format!("GET {path} HTTP/1.1\r\nhost: localhost")).await
    }

    async fn audit_of(&self, request_id: &str) -> Value {
        let lines = self.gw.audit_lines(&self.audit);
        lines
            .iter()
            .find(|l| l["request_id"] == request_id)
            .unwrap_or_else(|| panic!("no audit line for {request_id}: {lines:?}"))
            .clone()
    }
}

fn refused(r: &RawResp, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.reason().as_deref(), Some(reason), "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json().get("received_headers").is_none(), "the upstream was reached");
}

/// The request target the upstream (the demo service, which echoes it) received.
fn upstream_target(r: &RawResp) -> String {
    let body = r.json();
    body["received_target"].as_str().unwrap_or_else(|| panic!("the upstream was not reached: {body}")).to_owned()
}

#[tokio::test]
async fn dot_segments_cannot_move_a_request_onto_the_public_route() {
    let w = World::start().await;
    let erin = w.pki.card(ERIN);
    for path in [
        "/metadata/../Patient/9000000009",
        "/metadata/%2e%2e/Patient/9000000009",
        "/metadata/%2E%2e/Patient/9000000009",
        "/metadata/./../Patient/9000000009",
        "/metadata//..//Patient/9000000009",
    ] {
        let r = w.get_raw(Some(&erin), path).await;
        refused(&r, 403, "activity_not_permitted");
        let line = w.audit_of(r.header("x-request-id").unwrap()).await;
        assert_eq!(line["route"], "patient", "{path}: judged by the route it lands on");
        assert_eq!(line["path"], "/Patient/9000000009", "{path}");
        assert_eq!(line["patient"], "9000000009");
        assert_eq!(line["decision"], "deny");
    }
    // No card, no token: the public route's prefix does not carry the request to a patient.
    refused(&w.get_raw(None, "/metadata/../Patient/9000000009").await, 401, "client_certificate_required");
    // HTTP/2 sends the same bytes as :path.
    let mut h2 = Client::connect(w.gw.addr, client_config(&w.pki, Some(&erin), &[b"h2"])).await.unwrap();
    let r = within(10, h2.get("/metadata/../Patient/9000000009")).await.unwrap();
    assert_eq!((r.status.as_u16(), r.json()["reason"].as_str()), (403, Some("activity_not_permitted")));
}

#[tokio::test]
async fn the_upstream_receives_the_canonical_path_that_was_judged() {
    let w = World::start().await;
    let alice = w.pki.card(ALICE);
    for (sent, forwarded) in [
        ("/metadata/../Patient/9000000009", "/Patient/9000000009"),
        ("//Patient///9000000009", "/Patient/9000000009"),
        ("/%50atient/%39000000009?_format=json", "/Patient/9000000009?_format=json"),
        ("/Patient/./9000000009/", "/Patient/9000000009/"),
    ] {
        let r = w.get_raw(Some(&alice), sent).await;
        assert_eq!(upstream_target(&r), forwarded, "{sent}");
    }
}

#[tokio::test]
async fn dot_segments_cannot_move_the_organisation_segment() {
    let w = World::start().await;
    let alice = w.pki.card(ALICE);
    // alice acts for RX1: the path's RX1 must not be what is judged when the path says RX999.
    let r = w.get_raw(Some(&alice), "/Organization/RX1/../RX999").await;
    refused(&r, 403, "organisation_mismatch");
    let line = w.audit_of(r.header("x-request-id").unwrap()).await;
    assert_eq!(line["requested_organisation"], "RX999");
    assert_eq!(line["path"], "/Organization/RX999");
}

#[tokio::test]
async fn ambiguous_paths_are_refused_and_audited() {
    let w = World::start().await;
    let alice = w.pki.card(ALICE);
    for path in [
        "/metadata/..%2FPatient/9000000009",
        "/metadata/..%2fPatient/9000000009",
        "/metadata/..%5CPatient/9000000009",
        "/metadata/..\\Patient/9000000009",
        "/metadata/../../Patient/9000000009",
        "/../Patient/9000000009",
        "/metadata%00/../Patient/9000000009",
        "/metadata/..;/Patient/9000000009",
        "/Patient;jsessionid=0/9000000009",
        "/metadata/%C3%A9",
        "/metadata/%252e%252e/Patient/9000000009",
        "/patient/9000000009",
        "/PATIENT/9000000009",
        "*",
    ] {
        let r = w.get_raw(Some(&alice), path).await;
        refused(&r, 400, "invalid_path");
        let line = w.audit_of(r.header("x-request-id").unwrap()).await;
        assert_eq!(
            (line["decision"].as_str(), line["reason"].as_str()),
            (Some("deny"), Some("invalid_path")),
            "{path}"
        );
        assert_eq!(line["path"], path, "the attempt is audited as sent");
    }
}

#[tokio::test]
async fn path_parameters_reach_only_routes_that_allow_them() {
    let w = World::start().await;
    let alice = w.pki.card(ALICE);
    let r = w.get_raw(Some(&alice), "/legacy;jsessionid=abc/page").await;
    assert_eq!(upstream_target(&r), "/legacy;jsessionid=abc/page");
    refused(&w.get_raw(Some(&alice), "/metadata;x=1").await, 400, "invalid_path");
}

#[tokio::test]
async fn deny_list_refuses_a_token_user_on_an_open_connection() {
    let w = World::start().await;
    const USER: &str = "555000000021";
    let token = w.token(USER);
    let mut client = Client::connect(w.gw.addr, client_config(&w.pki, None, &[b"h2"])).await.unwrap();
    let get = |path: &'static str| {
        Request::get(path).header("authorization", format!("Bearer {token}")).body(Full::default()).unwrap()
    };
    assert_eq!(within(10, client.send(get("/Patient/9000000009"))).await.unwrap().status, 200);

    std::fs::write(&w.deny, format!("user {USER}  # card reported stolen\n")).unwrap();
    let changed = Instant::now();
    let r: Resp = loop {
        let r = within(10, client.send(get("/Patient/9000000009"))).await.unwrap();
        if r.status != 200 {
            break r;
        }
        assert!(changed.elapsed() < Duration::from_millis(1500), "token still served after {:?}", changed.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((r.status.as_u16(), r.json()["reason"].as_str()), (403, Some("user_suspended")));
    let line = w.audit_of(r.headers["x-request-id"].to_str().unwrap()).await;
    assert_eq!((line["reason"].as_str(), line["user_id"].as_str()), (Some("user_suspended"), Some(USER)));
    // The identity page is no way in either.
    let r = within(10, client.send(get("/.spinegate/whoami"))).await.unwrap();
    assert_eq!(r.json()["reason"], "user_suspended");
    // A card and a token of the same user: the card's check refuses first.
    let alice = w.pki.card(ALICE);
    std::fs::write(&w.deny, format!("user {ALICE}\n")).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut both = Client::connect(w.gw.addr, client_config(&w.pki, Some(&alice), &[b"h2"])).await.unwrap();
    let alice_token = w.token(ALICE);
    let request = Request::get("/Patient/9000000009")
        .header("authorization", format!("Bearer {alice_token}"))
        .body(Full::default());
    let r = within(10, both.send(request.unwrap())).await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "certificate_revoked");
    // Lifted: access returns without a new token.
    std::fs::write(&w.deny, "").unwrap();
    let lifted = Instant::now();
    while within(10, client.send(get("/Patient/9000000009"))).await.unwrap().status != 200 {
        assert!(lifted.elapsed() < Duration::from_millis(1500));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn underscore_spelt_identity_headers_do_not_reach_the_upstream() {
    let w = World::start().await;
    let alice = w.pki.card(ALICE);
    let r = w
        .raw(
            Some(&alice),
            "GET /Patient/9000000009 HTTP/1.1\r\nhost: localhost\r\nnhsd_identity_uuid: 999999999999\r\n\
             x_forwarded_for: 10.0.0.1\r\nssl_client_cert: forged\r\nX-Original-URL: /admin\r\n\
             X-HTTP-Method-Override: DELETE\r\nClient-Cert: :Zm9yZ2Vk:\r\nTrue-Client-IP: 10.0.0.2\r\nX-Real-IP: 10.0.0.3",
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let received = &r.json()["received_headers"];
    for name in [
        "nhsd_identity_uuid",
        "x_forwarded_for",
        "ssl_client_cert",
        "x-original-url",
        "x-http-method-override",
        "client-cert",
        "true-client-ip",
        "x-real-ip",
    ] {
        assert!(received.get(name).is_none(), "{name} reached the upstream: {received}");
    }
    assert_eq!(received["nhsd-identity-uuid"], ALICE);
}

#[tokio::test]
async fn trailing_dot_in_host_cannot_skip_a_host_specific_route() {
    let w = World::start().await;
    let erin = w.pki.card(ERIN);
    for host in ["spine.test.", "SPINE.test", "spine.test.:443"] {
        let r = w.raw(Some(&erin), &format!("GET /Patient/9000000009 HTTP/1.1\r\nhost: {host}")).await;
        refused(&r, 403, "activity_not_permitted");
        assert_eq!(w.audit_of(r.header("x-request-id").unwrap()).await["route"], "spine-host", "{host}");
    }
}

#[tokio::test]
async fn host_that_disagrees_with_the_target_is_refused() {
    let w = World::start().await;
    let alice = w.pki.card(ALICE);
    let absolute = w.raw(Some(&alice), "GET https://spine.test/Patient/9000000009 HTTP/1.1\r\nhost: localhost").await;
    refused(&absolute, 400, "invalid_host");
    let twice = w.raw(Some(&alice), "GET /metadata HTTP/1.1\r\nhost: localhost\r\nhost: spine.test").await;
    refused(&twice, 400, "invalid_host");
    let userinfo = w.raw(Some(&alice), "GET /metadata HTTP/1.1\r\nhost: evil@localhost").await;
    refused(&userinfo, 400, "invalid_host");
    let line = w.audit_of(twice.header("x-request-id").unwrap()).await;
    assert_eq!(line["reason"], "invalid_host");
    // Agreeing spellings are one authority.
    let agree = w.raw(Some(&alice), "GET https://LOCALHOST/Patient/9000000009 HTTP/1.1\r\nhost: localhost.").await;
    assert_eq!(agree.status, 200, "{}", String::from_utf8_lossy(&agree.body));
}

#[tokio::test]
async fn preserved_host_is_the_canonical_authority_that_was_routed() {
    let w = World::start_with(|s| s.upstream_extra = "host_header = \"preserve\"\n".into()).await;
    let alice = w.pki.card(ALICE);
    let r = w.raw(Some(&alice), "GET /Patient/9000000009 HTTP/1.1\r\nhost: LocalHost.:8443").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["received_headers"]["host"], "localhost:8443");
    assert_eq!(r.json()["received_headers"]["x-forwarded-host"], "localhost");
}

#[tokio::test]
async fn cross_site_posts_riding_on_a_smartcard_are_refused() {
    let w = World::start().await;
    let alice = w.pki.card(ALICE);
    let port = w.gw.addr.port();
    let post = |extra: &str| {
        format!("POST /Patient/9000000009 HTTP/1.1\r\nhost: localhost:{port}\r\ncontent-length: 0{extra}")
    };
    // A page on another site making alice's browser post with her card.
    for extra in [
        "\r\nsec-fetch-site: cross-site",
        "\r\nsec-fetch-site: same-site",
        "\r\norigin: https://evil.example",
        "\r\norigin: null",
    ] {
        let r = w.raw(Some(&alice), &post(extra)).await;
        refused(&r, 403, "cross_site_request");
        let line = w.audit_of(r.header("x-request-id").unwrap()).await;
        assert_eq!((line["reason"].as_str(), line["user_id"].as_str()), (Some("cross_site_request"), Some(ALICE)));
    }
    // Her own pages, and clinical systems (no browser headers), are served.
    for extra in
        [String::new(), "\r\nsec-fetch-site: same-origin".into(), format!("\r\norigin: https://localhost:{port}")]
    {
        let r = w.raw(Some(&alice), &post(&extra)).await;
        assert!(r.json()["received_target"].is_string(), "{extra:?}: {}", String::from_utf8_lossy(&r.body));
    }
    // Reading is not changing: a cross-site GET is judged only by the route's rules.
    let r =
        w.raw(Some(&alice), "GET /Patient/9000000009 HTTP/1.1\r\nhost: localhost\r\nsec-fetch-site: cross-site").await;
    assert_eq!(r.status, 200);
    // A bearer token is not ambient: a page cannot attach one it does not have.
    let token = w.token("555000000021");
    let r = w.raw(None, &format!("{}\r\nauthorization: Bearer {token}", post("\r\nsec-fetch-site: cross-site"))).await;
    assert!(r.json()["received_target"].is_string(), "{}", String::from_utf8_lossy(&r.body));
}

#[tokio::test]
async fn a_route_may_accept_cross_site_requests_on_purpose() {
    let w = World::start_with(|s| {
        s.extra =
            s.extra.replace("path_prefix = \"/legacy\"", "path_prefix = \"/legacy\"\ncross_site_requests = \"allow\"");
    })
    .await;
    let alice = w.pki.card(ALICE);
    let r = w
        .raw(
            Some(&alice),
            "POST /legacy/form HTTP/1.1\r\nhost: localhost\r\ncontent-length: 0\r\norigin: https://evil.example",
        )
        .await;
    assert!(r.json()["received_target"].is_string(), "{}", String::from_utf8_lossy(&r.body));
}
