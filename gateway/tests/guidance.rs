//! Refusals for people, end to end on real TLS in front of the demo service: each reason a request
//! can meet, in each format (`Accept: text/html` → an HTML page, `application/fhir+json` → an
//! `OperationOutcome`, anything else → problem+json) with the same status and reason code and
//! the wording that says what to do; HTML escaping of every value that came from the request
//! (headers, token claims); `certificate_problems = "explain"` (the default) for expired, not yet
//! valid and revoked cards, with unknown CAs still failing the handshake; `/.spinegate/whoami` for
//! a smartcard and a token user; and the expiry warning that never touches an upstream page.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Request;
use http_body_util::Full;
use spinegate_devpki::token::{KeyEndpoint, RoleSpec, TokenIssuer};
use spinegate_devpki::{Ca, Issued, KeyKind, LeafSpec};
use support::{
    AUDIENCE, CLINICIAN_AND_CLERK_ROLES, Client, Gw, ISSUER, Pki, Resp, SCOPED_ROUTES, client_config, handshake_alert,
    toml, within,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ALICE: &str = "555000000001";
const BOB: &str = "555000000002";
const CAROL: &str = "555000000003";
const ERIN: &str = "555000000005";
const FRANK: &str = "555000000006";
const GRACE: &str = "555000000007";

/// What a browser sends.
const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

/// alice, carol and bob: clinicians at RX1; erin: an admin clerk at RX1; frank: clinician at RX1
/// and RX2.
fn roles() -> String {
    format!(
        "{CLINICIAN_AND_CLERK_ROLES}{}{}{}",
        support::clinician(BOB, "555254242102", "RX1"),
        support::clinician(CAROL, "555254242103", "RX1"),
        support::frank(&[])
    )
}

/// The page an HTML upstream serves on `/html`.
const UPSTREAM_PAGE: &str = "<!DOCTYPE html><html lang=\"en\"><body><p>The service's own page.</p></body></html>";

fn config(jwks: &str, roles: &std::path::Path, down: SocketAddr, html: SocketAddr) -> String {
    format!(
        r#"
[[token_issuer]]
name = "care-identity"
issuer = "{ISSUER}"
jwks_url = "{jwks}"
audiences = ["{AUDIENCE}"]

[role_directory]
file = {roles}
poll_interval = "50ms"

[authorization]
activities = {{ B0360 = "View patient medical record", B0572 = "Manage appointments", B0820 = "View patient demographics", B0825 = "Amend patient demographics" }}
[[authorization.baseline]]
role = "R8000"
activities = ["B0820"]

[guidance]
organisation = "Test Hospitals NHS Trust"

[guidance.registration_authority]
name = "the Test Hospitals Registration Authority"
phone = "0113 496 0000"
email = "ra.test@nhs.net"
hours = "Monday to Friday, 9am to 4pm"
location = "Room 2, Trust HQ"

[guidance.hr]
name = "Test Hospitals HR"
email = "hr.test@nhs.net"

[guidance.service_desk]
name = "the Test Hospitals service desk"
phone = "0113 496 0002"

[[guidance.page]]
reason = "assurance_too_low"
what_to_do = ["Sign in with your smartcard at {{organisation}}."]

[[upstream]]
name = "down"
endpoints = ["http://{down}"]
connect_timeout = "2s"

[[upstream]]
name = "html"
endpoints = ["http://{html}"]

[[route]]
name = "patient"
path_prefix = "/Patient"
upstream = "demo"
[[route.rule]]
methods = ["GET", "HEAD"]
activities_any = ["B0820"]

{SCOPED_ROUTES}

[[route]]
name = "down"
path_prefix = "/down"
upstream = "down"
[[route.rule]]
methods = ["*"]
organisation_scope = false

[[route]]
name = "html"
path_prefix = "/html"
upstream = "html"
[[route.rule]]
methods = ["*"]
organisation_scope = false
"#,
        roles = toml(roles)
    )
}

struct World {
    pki: Pki,
    gw: Gw,
    keys: KeyEndpoint,
}

impl World {
    async fn start() -> Self {
        let pki = Pki::new();
        let roles = pki.write("roles.toml", &roles());
        let deny = pki.write("deny.txt", &format!("user {BOB}\n"));
        let issuer = Arc::new(Mutex::new(TokenIssuer::new(ISSUER).unwrap()));
        let keys = KeyEndpoint::spawn("127.0.0.1:0".parse().unwrap(), issuer).await.unwrap();
        let audit = pki.path("audit.jsonl");
        let extra = format!(
            "{}\n[audit]\nfile = {audit}\n",
            config(&keys.jwks_url(), &roles, closed_port().await, html_upstream().await),
            audit = toml(&audit)
        );
        let gw = Gw::start(&pki, |s| {
            s.client_certificate = "request";
            s.rules = String::new();
            s.revocation = format!("deny_list = {deny}\n", deny = toml(&deny));
            s.extra = extra;
        })
        .await;
        Self { pki, gw, keys }
    }

    /// A token for `user` (authenticator `amr`, assurance `aal`) with role profiles (id, org,
    /// activities) as clinicians; `select` keeps the token's `selected_roleid`.
    fn token(&self, user: &str, amr: &str, aal: u8, roles: &[(&str, &str, &str)], select: bool) -> String {
        let roles: Vec<RoleSpec> = roles
            .iter()
            .map(|(id, org, role_code)| RoleSpec {
                person_roleid: (*id).into(),
                org_code: (*org).into(),
                role_code: (*role_code).into(),
                role_name: "Clinical Practitioner".into(),
                activity_codes: vec!["B0360".into()],
            })
            .collect();
        let issuer = self.keys.issuer().lock().unwrap();
        let mut claims = issuer.care_identity_claims(AUDIENCE, user, amr, aal, &roles, 3600);
        if !select {
            claims.as_object_mut().unwrap().remove("selected_roleid");
        }
        issuer.token(&claims)
    }

    /// One request on a fresh connection (certificate refusals close theirs).
    async fn send(&self, card: Option<&Issued>, token: Option<&str>, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut client = Client::connect(self.gw.addr, client_config(&self.pki, card, &[b"h2"])).await.unwrap();
        let mut r = Request::get(path);
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        within(10, client.send(r.body(Full::default()).unwrap())).await.unwrap()
    }

    fn card(&self, user: &str) -> Issued {
        self.pki.card(user)
    }

    fn expired(&self) -> Issued {
        // An hour ago: well after the test CAs' start, so the chain was valid when the card was.
        self.pki.issue(
            LeafSpec::smartcard("555000000004", "DAVIES", "Dave")
                .key(KeyKind::EcdsaP256)
                .expired_since(time::Duration::hours(1)),
        )
    }

    fn not_yet_valid(&self) -> Issued {
        self.pki.issue(
            LeafSpec::smartcard("555000000010", "EARLY", "Ed")
                .key(KeyKind::EcdsaP256)
                .not_yet_valid_for(time::Duration::days(2)),
        )
    }
}

/// A port nothing listens on: the upstream there is down.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// An upstream that answers every request with [`UPSTREAM_PAGE`].
async fn html_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    UPSTREAM_PAGE.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(UPSTREAM_PAGE.as_bytes()).await;
            });
        }
    });
    addr
}

#[derive(Clone, Copy, Debug)]
enum Asks {
    Html,
    Fhir,
    Problem,
}

const EVERY_FORMAT: [Asks; 3] = [Asks::Html, Asks::Fhir, Asks::Problem];

impl Asks {
    fn accept(self) -> Option<&'static str> {
        match self {
            Asks::Html => Some(BROWSER),
            Asks::Fhir => Some("application/fhir+json"),
            Asks::Problem => None,
        }
    }
}

fn body(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn header<'r>(r: &'r Resp, name: &str) -> &'r str {
    r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Checks a refusal in the format asked for: status, reason code, content type, the sentence
/// that says what happened, and the request id to quote.
fn refused_as(r: &Resp, asks: Asks, status: u16, reason: &str, sentence: &str) {
    let text = body(r);
    assert_eq!(r.status, status, "{asks:?} {reason}: {text}");
    let request_id = header(r, "x-request-id");
    assert_eq!(request_id.len(), 36, "{asks:?} {reason}");
    assert_eq!(header(r, "vary"), "accept");
    assert_eq!(header(r, "cache-control"), "no-store");
    assert!(text.contains(sentence), "{asks:?} {reason}: {sentence:?} not in {text}");
    match asks {
        Asks::Html => {
            assert_eq!(header(r, "content-type"), "text/html; charset=utf-8");
            assert!(header(r, "content-security-policy").starts_with("default-src 'none'"));
            assert!(text.starts_with("<!DOCTYPE html>\n<html lang=\"en-GB\">"), "{text}");
            assert!(text.contains(&format!("Error code: {reason} (HTTP {status})")), "{text}");
            assert!(text.contains(request_id), "the reference to quote");
            assert!(text.contains("<h1>") && text.contains("<main id=\"main\">") && text.contains("What to do now"));
            assert!(!text.contains("<script") && !text.contains("http://127.0.0.1"), "{text}");
        }
        Asks::Fhir => {
            assert_eq!(header(r, "content-type"), "application/fhir+json");
            let v = r.json();
            assert_eq!(v["resourceType"], "OperationOutcome");
            assert_eq!(v["id"], request_id);
            assert_eq!(v["issue"][0]["severity"], "error");
            assert_eq!(v["issue"][0]["details"]["coding"][0]["system"], "urn:spinegate:refusal-reason");
            assert_eq!(v["issue"][0]["details"]["coding"][0]["code"], reason);
            assert!(v["issue"][0]["details"]["text"].as_str().unwrap().contains(sentence));
            assert!(v["issue"][1]["severity"] == "information", "what to do follows: {v}");
        }
        Asks::Problem => {
            assert_eq!(header(r, "content-type"), "application/problem+json");
            let v = r.json();
            assert_eq!(v["reason"], reason);
            assert_eq!(v["status"], status);
            assert_eq!(v["request_id"], request_id);
            assert_eq!(v["type"], format!("urn:spinegate:problem:{reason}"));
            assert!(v["detail"].as_str().unwrap().contains(sentence));
        }
    }
    assert!(!text.contains("received_headers"), "a refusal never comes from the upstream");
}

/// Sends the same request once per format and checks each refusal.
#[allow(clippy::too_many_arguments)]
async fn refused_in_every_format(
    w: &World,
    card: Option<&Issued>,
    token: Option<&str>,
    path: &str,
    headers: &[(&str, &str)],
    status: u16,
    reason: &str,
    sentence: &str,
) -> [Resp; 3] {
    let mut out = Vec::new();
    for asks in EVERY_FORMAT {
        let mut h = headers.to_vec();
        if let Some(accept) = asks.accept() {
            h.push(("accept", accept));
        }
        let r = w.send(card, token, path, &h).await;
        refused_as(&r, asks, status, reason, sentence);
        out.push(r);
    }
    out.try_into().expect("three formats")
}

#[tokio::test]
async fn certificate_refusals_in_every_format() {
    let w = World::start().await;
    let [html, _, _] = refused_in_every_format(
        &w,
        Some(&w.expired()),
        None,
        "/Patient/9000000009",
        &[],
        401,
        "certificate_expired",
        "has expired, so the card cannot be used to sign in",
    )
    .await;
    let text = body(&html);
    assert!(text.contains("Go in person to the Test Hospitals Registration Authority"), "{text}");
    assert!(text.contains("<a href=\"tel:01134960000\">0113 496 0000</a>"), "contact details: {text}");
    assert!(text.contains("In person: Room 2, Trust HQ"));
    let [html, ..] = refused_in_every_format(
        &w,
        Some(&w.not_yet_valid()),
        None,
        "/Patient/9000000009",
        &[],
        401,
        "certificate_not_yet_valid",
        "has a start date in the future",
    )
    .await;
    assert!(body(&html).contains("It becomes valid on "), "{}", body(&html));
    let [html, ..] = refused_in_every_format(
        &w,
        Some(&w.card(BOB)),
        None,
        "/Patient/9000000009",
        &[],
        401,
        "certificate_revoked",
        "has been cancelled, so the card cannot be used to sign in",
    )
    .await;
    assert!(body(&html).contains("report it to Test Hospitals HR straight away"), "{}", body(&html));
    let [html, ..] = refused_in_every_format(
        &w,
        None,
        None,
        "/Patient/9000000009",
        &[],
        401,
        "client_certificate_required",
        "We could not find a smartcard",
    )
    .await;
    let text = body(&html);
    assert!(text.contains("go in person to the Test Hospitals Registration Authority to have it unlocked"), "{text}");
}

#[tokio::test]
async fn sign_in_and_role_refusals_in_every_format() {
    let w = World::start().await;
    let (alice, erin, frank) = (w.card(ALICE), w.card(ERIN), w.card(FRANK));
    let key_token = w.token(GRACE, "FIDO2", 3, &[("555254242108", "RX1", "S8000:G8000:R8000")], true);
    refused_in_every_format(
        &w,
        None,
        Some(&key_token),
        "/cards/x",
        &[],
        403,
        "authenticator_not_allowed",
        "does not accept the way you signed in",
    )
    .await;
    let [html, fhir, problem] = refused_in_every_format(
        &w,
        Some(&frank),
        None,
        "/Patient/9000000009",
        &[("NHSD-Session-URID", "555254242199")],
        403,
        "role_not_held",
        "is not one of your role profiles",
    )
    .await;
    assert!(body(&html).contains("The role profile asked for was 555254242199."));
    assert!(fhir.json()["issue"][0]["details"]["text"].as_str().unwrap().contains("555254242199"));
    assert_eq!(problem.json()["role_profiles"].as_array().unwrap().len(), 2);
    let [html, _, problem] = refused_in_every_format(
        &w,
        Some(&frank),
        None,
        "/Patient/9000000009",
        &[],
        403,
        "role_not_selected",
        "more than one role profile",
    )
    .await;
    let text = body(&html);
    // Both of frank's roles, and how to send one.
    assert!(text.contains("<td><code>555254242106</code></td><td>RX1</td>"), "{text}");
    assert!(text.contains("<td><code>555254242107</code></td><td>RX2</td>"), "{text}");
    assert!(text.contains("<code>NHSD-Session-URID: 555254242106</code>"), "{text}");
    let listed = problem.json();
    let ids: Vec<&str> =
        listed["role_profiles"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["555254242106", "555254242107"]);
    let [html, ..] = refused_in_every_format(
        &w,
        Some(&erin),
        None,
        "/Patient/9000000009",
        &[],
        403,
        "activity_not_permitted",
        "does not include permission to do this",
    )
    .await;
    assert!(body(&html).contains("You are working in role profile 555254242105 (S8001:G8005:R8008) at RX1."));
    let [html, ..] = refused_in_every_format(
        &w,
        Some(&alice),
        None,
        "/Organization/RX2/x",
        &[],
        403,
        "organisation_mismatch",
        "that your selected role does not cover",
    )
    .await;
    assert!(body(&html).contains("You asked to act for RX2; your selected role is at RX1."), "{}", body(&html));
    let hello = w.token(GRACE, "WINDOWS_HELLO", 2, &[("555254242108", "RX1", "S8000:G8000:R8000")], true);
    let [html, fhir, _] = refused_in_every_format(
        &w,
        None,
        Some(&hello),
        "/scr/x",
        &[],
        403,
        "assurance_too_low",
        "more secure way of signing in",
    )
    .await;
    // [[guidance.page]] replaced the steps, with the organisation filled in.
    assert!(
        body(&html).contains("<li>Sign in with your smartcard at Test Hospitals NHS Trust.</li>"),
        "{}",
        body(&html)
    );
    assert_eq!(fhir.json()["issue"][1]["details"]["text"], "Sign in with your smartcard at Test Hospitals NHS Trust.");
    assert!(fhir.json()["issue"][2].is_null(), "only the configured step");
    refused_in_every_format(
        &w,
        Some(&alice),
        None,
        "/down/x",
        &[],
        502,
        "upstream_unavailable",
        "could not be reached",
    )
    .await;
}

#[tokio::test]
async fn an_expired_token_is_explained_in_every_format() {
    let w = World::start().await;
    let token = w.token(GRACE, "FIDO2", 3, &[("555254242108", "RX1", "S8000:G8000:R8000")], true);
    w.gw.clock.advance(Duration::from_secs(2 * 3600));
    let [html, ..] = refused_in_every_format(
        &w,
        None,
        Some(&token),
        "/Patient/9000000009",
        &[],
        401,
        "token_expired",
        "Your Care Identity sign-in has expired",
    )
    .await;
    assert!(header(&html, "www-authenticate").starts_with("Bearer "), "the challenge stays");
}

#[tokio::test]
async fn values_from_the_request_are_escaped_in_pages_and_json() {
    let w = World::start().await;
    let frank = w.card(FRANK);
    let hostile = "\"><script>alert(1)</script>&'";
    let escaped = "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;&#39;";
    let r =
        w.send(Some(&frank), None, "/Patient/9000000009", &[("NHSD-Session-URID", hostile), ("accept", BROWSER)]).await;
    refused_as(&r, Asks::Html, 403, "role_not_held", "is not one of your role profiles");
    assert!(body(&r).contains(&format!("The role profile asked for was {escaped}.")), "{}", body(&r));
    let r = w.send(Some(&frank), None, "/Patient/9000000009", &[("NHSD-Session-URID", hostile)]).await;
    assert!(r.json()["detail"].as_str().unwrap().contains(hostile), "JSON carries it as data, escaped by JSON");

    // Role profiles in a token are the client's too: listed on the page, escaped.
    let roles =
        [("<img src=x onerror=alert(2)>", "RX1", "S8000:G8000:R8000"), ("555254242109", "\"RX<2>", "S&G:'R8000'")];
    let token = w.token(GRACE, "FIDO2", 3, &roles, false);
    let r = w.send(None, Some(&token), "/Patient/9000000009", &[("accept", BROWSER)]).await;
    refused_as(&r, Asks::Html, 403, "role_not_selected", "more than one role profile");
    let text = body(&r);
    for raw in ["<img", "\"RX<2>", "S&G:'R8000'"] {
        assert!(!text.contains(raw), "{raw} unescaped in {text}");
    }
    assert!(text.contains("<code>&lt;img src=x onerror=alert(2)&gt;</code>"), "{text}");
    assert!(text.contains("<td>&quot;RX&lt;2&gt;</td><td>S&amp;G:&#39;R8000&#39;</td>"), "{text}");
    assert!(text.contains("NHSD-Session-URID: &lt;img src=x onerror=alert(2)&gt;"), "{text}");
    let r = w.send(None, Some(&token), "/Patient/9000000009", &[]).await;
    assert_eq!(r.json()["role_profiles"][1]["organisation"], "\"RX<2>");
    let r = w.send(None, Some(&token), "/Patient/9000000009", &[("accept", "application/fhir+json")]).await;
    assert_eq!(r.json()["issue"][0]["details"]["coding"][0]["code"], "role_not_selected");

    // The identity page lists the same roles, escaped.
    let r = w.send(None, Some(&token), "/.spinegate/whoami", &[("accept", BROWSER)]).await;
    assert_eq!(r.status, 200);
    let text = body(&r);
    assert!(!text.contains("<img") && text.contains("&lt;img src=x onerror=alert(2)&gt;"), "{text}");
    let r = w.send(None, Some(&token), "/.spinegate/whoami", &[]).await;
    assert_eq!(r.json()["role_profiles"][0]["id"], "<img src=x onerror=alert(2)>");
}

#[tokio::test]
async fn expired_and_revoked_cards_complete_the_handshake_and_every_request_is_refused() {
    let w = World::start().await;
    let gw = &w.gw;
    let expired_count = "spinegate_client_cert_verifications_total{result=\"expired\"}";
    let revoked_count = "spinegate_client_cert_verifications_total{result=\"revoked\"}";
    let (expired_before, revoked_before) = (gw.metric(expired_count).await, gw.metric(revoked_count).await);
    gw.gateway.chain_cache().sync();
    let cached_before = gw.gateway.chain_cache().len();

    let dave = w.expired();
    let alice_token = w.token(ALICE, "N3_SMARTCARD", 3, &[("555254242101", "RX1", "S8000:G8000:R8000")], true);
    // A public route, a patient route, a route with no rule, the identity page, and a valid token
    // alongside: nothing on the connection is proxied.
    for (path, token) in [
        ("/metadata", None),
        ("/Patient/9000000009", None),
        ("/nowhere", None),
        ("/.spinegate/whoami", None),
        ("/metadata", Some(alice_token.as_str())),
    ] {
        let r = w.send(Some(&dave), token, path, &[("accept", BROWSER)]).await;
        refused_as(&r, Asks::Html, 401, "certificate_expired", "has expired, so the card cannot be used to sign in");
        let expired_on = dave_not_after(&dave);
        assert!(body(&r).contains(&format!("It expired on {expired_on}.")), "{}", body(&r));
    }
    let bob = w.card(BOB);
    for path in ["/metadata", "/Patient/9000000009"] {
        let r = w.send(Some(&bob), None, path, &[]).await;
        refused_as(&r, Asks::Problem, 401, "certificate_revoked", "has been cancelled");
    }
    // Counted as refused at the handshake, and never cached as a good chain.
    assert!(gw.metric(expired_count).await >= expired_before + 1.0);
    assert!(gw.metric(revoked_count).await >= revoked_before + 1.0);
    gw.gateway.chain_cache().sync();
    assert_eq!(gw.gateway.chain_cache().len(), cached_before + 1, "only bob's (validated, then refused) chain");
    // The refusals are in the request metrics by reason.
    let (_, metrics) = support::plain_get(gw.admin, "/metrics").await;
    assert!(
        metrics.lines().any(|l| l.starts_with("spinegate_requests_total{")
            && l.contains("status=\"401\"")
            && l.contains("reason=\"certificate_expired\"")),
        "no certificate_expired refusal in the request metrics"
    );

    // The audit log says whose cards they were.
    assert!(gw.gateway.audit().flush(Duration::from_secs(5)));
    let audit = std::fs::read_to_string(w.pki.path("audit.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let who = |reason: &str| {
        records
            .iter()
            .filter(|r| r["reason"] == reason)
            .map(|r| r["user_id"].as_str().unwrap_or(""))
            .collect::<Vec<_>>()
    };
    assert_eq!(who("certificate_expired"), ["555000000004"; 5]);
    assert_eq!(who("certificate_revoked"), [BOB; 2]);

    // A valid card on the same gateway is served as ever.
    let r = w.send(Some(&w.card(ALICE)), None, "/Patient/9000000009", &[("accept", BROWSER)]).await;
    assert_eq!(r.status, 200, "{}", body(&r));
    assert!(r.json()["received_headers"].is_object());
}

fn dave_not_after(card: &Issued) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(&card.cert).unwrap();
    let t = cert.validity().not_after.to_datetime();
    format!("{} {} {}", t.day(), t.month(), t.year())
}

#[tokio::test]
async fn unknown_cas_wrong_purposes_and_untrusted_expired_cards_still_fail_the_handshake() {
    let w = World::start().await;
    let rogue =
        Ca::root("Rogue Root", KeyKind::EcdsaP256).unwrap().intermediate("Rogue CA", KeyKind::EcdsaP256).unwrap();
    let eve = rogue.issue(&LeafSpec::smartcard("555000000666", "EVE", "Eve").key(KeyKind::EcdsaP256)).unwrap();
    let alert = within(10, handshake_alert(w.gw.addr, client_config(&w.pki, Some(&eve), &[b"http/1.1"]))).await;
    assert_eq!(alert, Some(rustls::AlertDescription::UnknownCA));
    // Expired as well as untrusted: the chain never validated, so there is nothing to explain.
    let old_eve = rogue
        .issue(
            &LeafSpec::smartcard("555000000667", "EVE", "Old")
                .key(KeyKind::EcdsaP256)
                .expired_since(time::Duration::hours(1)),
        )
        .unwrap();
    let alert = within(10, handshake_alert(w.gw.addr, client_config(&w.pki, Some(&old_eve), &[b"http/1.1"]))).await;
    assert!(alert.is_some(), "an untrusted expired card gets an alert");
    let server_only = w.pki.issue(
        LeafSpec::smartcard("555000000011", "WRONG", "Eku")
            .key(KeyKind::EcdsaP256)
            .eku(vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth]),
    );
    let alert = within(10, handshake_alert(w.gw.addr, client_config(&w.pki, Some(&server_only), &[b"http/1.1"]))).await;
    assert_eq!(alert, Some(rustls::AlertDescription::UnsupportedCertificate));
}

#[tokio::test]
async fn alert_mode_keeps_the_tls_alerts() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |s| s.certificate_problems("alert")).await;
    let dave = pki.issue(
        LeafSpec::smartcard("555000000004", "DAVIES", "Dave")
            .key(KeyKind::EcdsaP256)
            .expired_since(time::Duration::hours(1)),
    );
    let alert = within(10, handshake_alert(gw.addr, client_config(&pki, Some(&dave), &[b"http/1.1"]))).await;
    assert_eq!(alert, Some(rustls::AlertDescription::CertificateExpired));
}

#[tokio::test]
async fn whoami_shows_a_smartcard_user_their_identity_roles_and_renewal() {
    let w = World::start().await;
    let carol = w.pki.issue(
        LeafSpec::smartcard(CAROL, "CARTER", "Carol").key(KeyKind::EcdsaP256).expiring_in(time::Duration::days(30)),
    );
    let r = w.send(Some(&carol), None, "/.spinegate/whoami", &[("accept", BROWSER)]).await;
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert!(header(&r, "x-certificate-expiry-warning").contains("days; not-after="));
    let text = body(&r);
    assert!(text.contains("<h1>Your sign-in</h1>"), "{text}");
    assert!(text.contains(&format!("<code>{CAROL}</code>")) && text.contains("<td>Smartcard</td>"), "{text}");
    assert!(text.contains("<td>AAL3</td>"));
    assert!(text.contains("<code>555254242103</code>, S8000:G8000:R8000, at RX1"), "the only role is selected: {text}");
    assert!(text.contains("Renew your smartcard certificate before"), "{text}");
    assert!(text.contains("29 days left") || text.contains("30 days left"), "{text}");
    assert!(text.contains("go in person to the Test Hospitals Registration Authority"));
    let r = w.send(Some(&carol), None, "/.spinegate/whoami", &[]).await;
    assert_eq!(header(&r, "content-type"), "application/json");
    let v = r.json();
    assert_eq!(v["user_id"], CAROL);
    assert_eq!(v["auth_method"], "smartcard");
    assert_eq!(v["assurance"], "AAL3");
    assert_eq!(v["selected_role"]["id"], "555254242103");
    assert_eq!(v["role_profiles"].as_array().unwrap().len(), 1);
    assert!(matches!(v["certificate"]["days_left"].as_u64(), Some(29 | 30)), "{v}");
    assert_eq!(v["certificate"]["renewal_due"], true);
    assert!(v["token"].is_null());

    // Far from expiry: no renewal box. frank's two roles: none selected until he names one.
    let frank = w.card(FRANK);
    let text = body(&w.send(Some(&frank), None, "/.spinegate/whoami", &[("accept", BROWSER)]).await);
    assert!(text.contains("is valid until") && !text.contains("Renew your smartcard"), "{text}");
    assert!(text.contains("None selected"), "{text}");
    let v = w.send(Some(&frank), None, "/.spinegate/whoami", &[("NHSD-Session-URID", "555254242107")]).await.json();
    assert_eq!(v["selected_role"]["organisation"], "RX2");
    assert_eq!(v["certificate"]["renewal_due"], false);

    // Not proxied, not subject to routes, but it needs a signed-in user.
    let r = w.send(None, None, "/.spinegate/whoami", &[("accept", BROWSER)]).await;
    refused_as(&r, Asks::Html, 401, "client_certificate_required", "We could not find a smartcard");
    let mut client = Client::connect(w.gw.addr, client_config(&w.pki, Some(&frank), &[b"h2"])).await.unwrap();
    let r = client.send(Request::post("/.spinegate/whoami").body(Full::default()).unwrap()).await.unwrap();
    assert_eq!((r.status.as_u16(), r.json()["reason"].as_str()), (404, Some("no_route")));
}

#[tokio::test]
async fn whoami_shows_a_token_user_their_method_session_and_roles() {
    let w = World::start().await;
    let token = w.token(
        GRACE,
        "FIDO2",
        3,
        &[("555254242108", "RX1", "S8000:G8000:R8000"), ("555254242109", "RX2", "S8000:G8000:R8000")],
        true,
    );
    let r = w.send(None, Some(&token), "/.spinegate/whoami", &[("accept", BROWSER)]).await;
    assert_eq!(r.status, 200, "{}", body(&r));
    let text = body(&r);
    assert!(text.contains("<td>Care Identity, with a security key</td>"), "{text}");
    assert!(text.contains("Your Care Identity sign-in ends at "), "{text}");
    assert!(!text.contains("Your smartcard certificate"), "no card, no certificate section");
    assert!(text.contains("<td><code>555254242109</code></td><td>RX2</td>"), "{text}");
    let v = w.send(None, Some(&token), "/.spinegate/whoami", &[("accept", "application/json")]).await.json();
    assert_eq!(v["user_id"], GRACE);
    assert_eq!((v["auth_method"].as_str(), v["authenticator"].as_str()), (Some("token"), Some("security_key")));
    assert_eq!(v["selected_role"]["id"], "555254242108", "the token's selected role");
    assert!(v["certificate"].is_null());
    assert!(v["token"]["expires"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["role_profiles"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn expiry_warning_is_a_header_and_never_changes_an_upstream_page() {
    let w = World::start().await;
    let carol = w.pki.issue(
        LeafSpec::smartcard(CAROL, "CARTER", "Carol").key(KeyKind::EcdsaP256).expiring_in(time::Duration::days(30)),
    );
    let r = w.send(Some(&carol), None, "/html/page", &[("accept", BROWSER)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    assert!(header(&r, "x-certificate-expiry-warning").contains(" days; not-after="));
    assert_eq!(body(&r), UPSTREAM_PAGE, "the upstream's page, byte for byte");
}

#[tokio::test]
async fn text_plain_and_wildcards_get_problem_json_and_fhir_clients_their_outcome() {
    let w = World::start().await;
    for (accept, expected) in [
        ("*/*", "application/problem+json"),
        ("text/plain", "application/problem+json"),
        ("application/json", "application/problem+json"),
        ("text/html;q=0.9, application/json", "application/problem+json"),
        ("application/json;q=0.5, text/html", "text/html; charset=utf-8"),
        ("application/fhir+json, application/json", "application/fhir+json"),
    ] {
        let r = w.send(None, None, "/Patient/9000000009", &[("accept", accept)]).await;
        assert_eq!(r.status, 401);
        assert_eq!(header(&r, "content-type"), expected, "{accept}");
    }
}

#[tokio::test]
async fn a_deployments_template_replaces_the_page_and_a_broken_one_is_refused_at_reload() {
    let pki = Pki::new();
    let dir = pki.path("guidance");
    std::fs::create_dir(&dir).unwrap();
    let page = "<!DOCTYPE html>\n<html lang=\"{{lang}}\"><title>{{title}}</title><main><h1>{{title}}</h1>\
                {{#what_to_do}}<p class=\"step\">{{text}}</p>{{/what_to_do}}<p>Ref {{request_id}}</p></main></html>";
    std::fs::write(dir.join("page.html"), page).unwrap();
    let gw = Gw::start(&pki, |s| {
        s.client_certificate = "request";
        s.extra = format!("[guidance]\ntemplate_dir = {dir}\nlanguage = \"cy\"\n", dir = toml(&dir));
    })
    .await;
    let ask = || async {
        let mut client = Client::connect(gw.addr, client_config(&pki, None, &[b"http/1.1"])).await.unwrap();
        let request = Request::get("/Patient/9000000009").header("accept", BROWSER).body(Full::default()).unwrap();
        within(10, client.send(request)).await.unwrap()
    };
    let r = ask().await;
    assert_eq!(r.status, 401);
    let text = body(&r);
    assert!(
        text.starts_with("<!DOCTYPE html>\n<html lang=\"cy\"><title>Insert your smartcard to continue</title>"),
        "{text}"
    );
    assert!(text.contains("<p class=\"step\">Check your smartcard is in the card reader"), "{text}");
    assert!(text.contains(&format!("<p>Ref {}</p>", header(&r, "x-request-id"))));

    // A template with a name the gateway does not fill is refused whole; the last good one serves.
    std::fs::write(dir.join("page.html"), "<p>{{titel}}</p>").unwrap();
    let config = spinegate_config::parse(&gw.text, None, pki.dir.path()).unwrap();
    let err = gw.gateway.reload(&config).await.unwrap_err().to_string();
    assert!(err.contains("page.html") && err.contains("line 1") && err.contains("\"titel\""), "{err}");
    assert!(body(&ask().await).contains("<p class=\"step\">"), "the previous template still serves");
}
