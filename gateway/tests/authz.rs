//! Role-based access per organisation, end to end: role profiles from the role directory file
//! (smartcard users) and from the token (authenticator users), the selected role, every rule type
//! allowing and refusing, the organisation scope with its relations, the headers and signed
//! identity assertion the upstream receives, the audit log field by field, a user moving
//! organisation without a restart, and a policy reload under continuous load.

mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Request;
use http_body_util::Full;
use serde_json::Value;
use spinegate_devpki::Issued;
use spinegate_devpki::token::{KeyEndpoint, RoleSpec, TokenIssuer};
use spinegate_token::jose::{Alg, KeySet, Limits, decode};
use support::{
    ALICE, AUDIENCE, CLINICIAN_AND_CLERK_ROLES, Client, ERIN, Gw, ISSUER, Pki, Resp, SCOPED_ROUTES, care_identity,
    client_config, toml, within,
};

const FRANK: &str = "555000000006";
const GRACE: &str = "555000000007";

/// alice: a clinician at RX1; erin: an admin clerk at RX1; frank: clinician at RX1 and RX2.
fn roles() -> String {
    format!("{CLINICIAN_AND_CLERK_ROLES}{}", support::frank(&["B0825"]))
}

fn routes() -> String {
    [
        r#"
[authorization]
activities = { B0360 = "View patient medical record", B0370 = "View Summary Care Record", B0572 = "Manage appointments", B0820 = "View patient demographics", B0825 = "Amend patient demographics" }
[[authorization.baseline]]
role = "R8000"
activities = ["B0820"]
[[authorization.organisation]]
parent = "RX1"
children = ["RX101"]

[[route]]
name = "patient"
path_prefix = "/Patient"
upstream = "demo"
identity_assertion = true
[[route.rule]]
methods = ["GET", "HEAD"]
activities_any = ["B0820", "B0370"]
[[route.rule]]
methods = ["POST", "PUT", "PATCH", "DELETE"]
activities_all = ["B0825", "B0360"]

"#,
        SCOPED_ROUTES,
        r#"

[[route]]
name = "security-keys"
path_prefix = "/keys"
upstream = "demo"
[[route.rule]]
methods = ["*"]
authenticators = ["security_key"]
organisation_scope = false
"#,
    ]
    .concat()
}

struct World {
    pki: Pki,
    gw: Gw,
    keys: KeyEndpoint,
    roles: PathBuf,
    audit: PathBuf,
}

impl World {
    async fn start() -> Self {
        let pki = Pki::new();
        let roles = pki.write("roles.toml", &roles());
        let audit = pki.path("audit.jsonl");
        let assertion_key = pki.write(
            "assertion.pem",
            &rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap().serialize_pem(),
        );
        let issuer = Arc::new(Mutex::new(TokenIssuer::new(ISSUER).unwrap()));
        let keys = KeyEndpoint::spawn("127.0.0.1:0".parse().unwrap(), issuer).await.unwrap();
        let extra = format!(
            "{}\
             [role_directory]\nfile = {roles}\npoll_interval = \"50ms\"\n\
             [audit]\nfile = {audit}\n\
             [identity_assertion]\nissuer = \"https://spinegate.test\"\nkey = {assertion_key}\n{}",
            care_identity(&keys.jwks_url()),
            routes(),
            roles = toml(&roles),
            audit = toml(&audit),
            assertion_key = toml(&assertion_key)
        );
        let gw = Gw::start(&pki, |s| {
            s.client_certificate = "request";
            // The catch-all route has no rule: whatever no other route matches is refused.
            s.rules = String::new();
            s.extra = extra;
        })
        .await;
        Self { pki, gw, keys, roles, audit }
    }

    /// A token for `user` with role profiles (id, org, activities), all as clinicians (R8000)
    /// unless an id ends in 5 (an admin clerk, R8008).
    fn token(&self, user: &str, amr: &str, aal: u8, roles: &[(&str, &str, &[&str])]) -> String {
        let roles: Vec<RoleSpec> = roles
            .iter()
            .map(|(id, org, activities)| RoleSpec {
                person_roleid: (*id).into(),
                org_code: (*org).into(),
                role_code: if id.ends_with('5') { "S8001:G8005:R8008" } else { "S8000:G8000:R8000" }.into(),
                role_name: "Clinical Practitioner".into(),
                activity_codes: activities.iter().map(|a| (*a).to_owned()).collect(),
            })
            .collect();
        let issuer = self.keys.issuer().lock().unwrap();
        issuer.token(&issuer.care_identity_claims(AUDIENCE, user, amr, aal, &roles, 3600))
    }

    async fn client(&self, card: Option<&Issued>) -> Client {
        Client::connect(self.gw.addr, client_config(&self.pki, card, &[b"h2"])).await.unwrap()
    }

    /// One request on a fresh connection.
    async fn send(
        &self,
        card: Option<&Issued>,
        token: Option<&str>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut client = self.client(card).await;
        within(10, client.send(request(method, path, token, headers))).await.unwrap()
    }

    async fn audit_lines(&self) -> Vec<Value> {
        self.gw.audit_lines(&self.audit)
    }
}

fn request(method: &str, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Request<Full<bytes::Bytes>> {
    let mut r = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Full::default()).unwrap()
}

fn allowed(r: &Resp) {
    assert!(r.status != 401 && r.status != 403, "refused: {} {}", r.status, String::from_utf8_lossy(&r.body));
    assert!(r.json()["received_headers"].is_object(), "the upstream answered: {}", String::from_utf8_lossy(&r.body));
}

fn refused(r: &Resp, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["reason"], reason);
}

#[tokio::test]
async fn activities_any_of_and_all_of_with_the_job_role_baseline() {
    let w = World::start().await;
    let (alice, erin, frank) = (w.pki.card(ALICE), w.pki.card(ERIN), w.pki.card(FRANK));
    // alice holds B0360 directly and B0820 by her job role's baseline: viewing is "any of".
    allowed(&w.send(Some(&alice), None, "GET", "/Patient/9000000009", &[]).await);
    // Amending needs B0825 and B0360: alice lacks B0825.
    refused(&w.send(Some(&alice), None, "POST", "/Patient", &[]).await, 403, "activity_not_permitted");
    // erin's admin role has neither viewing activity.
    refused(&w.send(Some(&erin), None, "GET", "/Patient/9000000009", &[]).await, 403, "activity_not_permitted");
    // frank's RX2 role holds both.
    let r = w.send(Some(&frank), None, "POST", "/Patient", &[("NHSD-Session-URID", "555254242107")]).await;
    allowed(&r);
    // A token user's activities come from the token.
    let token = w.token(GRACE, "FIDO2", 3, &[("555254242108", "RX1", &["B0370"])]);
    allowed(&w.send(None, Some(&token), "GET", "/Patient/9000000009", &[]).await);
    let token = w.token(GRACE, "FIDO2", 3, &[("555254242105", "RX1", &["B0572"])]);
    refused(&w.send(None, Some(&token), "GET", "/Patient/9000000009", &[]).await, 403, "activity_not_permitted");
}

#[tokio::test]
async fn the_selected_role_must_be_held_and_chosen() {
    let w = World::start().await;
    let (alice, frank) = (w.pki.card(ALICE), w.pki.card(FRANK));
    // frank holds two roles and names none.
    refused(&w.send(Some(&frank), None, "GET", "/Patient/9000000009", &[]).await, 403, "role_not_selected");
    let r = w.send(Some(&frank), None, "GET", "/Patient/9000000009", &[("NHSD-Session-URID", "555254242106")]).await;
    allowed(&r);
    assert_eq!(r.received("nhsd-session-urid").as_deref(), Some("555254242106"));
    // A spoofed URID, and another user's, are not held.
    for urid in ["999999999999", "555254242101"] {
        let r = w.send(Some(&frank), None, "GET", "/Patient/9000000009", &[("NHSD-Session-URID", urid)]).await;
        refused(&r, 403, "role_not_held");
    }
    // alice's only role is chosen for her; naming it works too.
    allowed(&w.send(Some(&alice), None, "GET", "/Patient/9000000009", &[]).await);
    allowed(&w.send(Some(&alice), None, "GET", "/Patient/9000000009", &[("NHSD-Session-URID", "555254242101")]).await);
    // A token's selected_roleid is used when no header names a role.
    let token = w.token(GRACE, "FIDO2", 3, &[("555254242108", "RX1", &["B0360"]), ("555254242109", "RX2", &["B0360"])]);
    let r = w.send(None, Some(&token), "GET", "/Patient/9000000009", &[]).await;
    allowed(&r);
    assert_eq!(r.received("nhsd-session-urid").as_deref(), Some("555254242108"), "the token's selected role");
    let r = w.send(None, Some(&token), "GET", "/Patient/9000000009", &[("NHSD-Session-URID", "555254242109")]).await;
    assert_eq!(r.received("nhsd-session-urid").as_deref(), Some("555254242109"), "the header overrides");
}

#[tokio::test]
async fn organisation_scope_by_header_and_by_path_with_relations() {
    let w = World::start().await;
    let alice = w.pki.card(ALICE);
    let ods = |org| [("NHSD-End-User-Organisation-ODS", org)];
    let r = w.send(Some(&alice), None, "GET", "/Patient/9000000009", &ods("RX1")).await;
    allowed(&r);
    assert_eq!(r.received("nhsd-end-user-organisation-ods").as_deref(), Some("RX1"));
    // RX101 is a child of RX1: alice may act for it.
    let r = w.send(Some(&alice), None, "GET", "/Patient/9000000009", &ods("rx101")).await;
    allowed(&r);
    assert_eq!(r.received("nhsd-end-user-organisation-ods").as_deref(), Some("RX101"));
    refused(&w.send(Some(&alice), None, "GET", "/Patient/9000000009", &ods("RX2")).await, 403, "organisation_mismatch");
    refused(
        &w.send(Some(&alice), None, "GET", "/Patient/9000000009", &ods("not ods!")).await,
        403,
        "organisation_mismatch",
    );
    // The organisation in the path.
    allowed(&w.send(Some(&alice), None, "GET", "/Organization/RX1/Patient", &[]).await);
    allowed(&w.send(Some(&alice), None, "GET", "/Organization/RX101/Patient", &[]).await);
    refused(&w.send(Some(&alice), None, "GET", "/Organization/RX2/Patient", &[]).await, 403, "organisation_mismatch");
    // Path and header disagreeing.
    let r = w.send(Some(&alice), None, "GET", "/Organization/RX1/Patient", &ods("RX101")).await;
    refused(&r, 403, "organisation_mismatch");
}

#[tokio::test]
async fn assurance_methods_and_authenticators() {
    let w = World::start().await;
    let alice = w.pki.card(ALICE);
    let aal3 = w.token(GRACE, "FIDO2", 3, &[]);
    let aal2 = w.token(GRACE, "FIDO2", 2, &[]);
    let hello = w.token(GRACE, "WINDOWS_HELLO", 3, &[]);
    // An AAL2 token on an AAL3 route.
    refused(&w.send(None, Some(&aal2), "GET", "/scr", &[]).await, 403, "assurance_too_low");
    allowed(&w.send(None, Some(&aal3), "GET", "/scr", &[]).await);
    allowed(&w.send(Some(&alice), None, "GET", "/scr", &[]).await);
    // Smartcard-only.
    allowed(&w.send(Some(&alice), None, "GET", "/cards", &[]).await);
    refused(&w.send(None, Some(&aal3), "GET", "/cards", &[]).await, 403, "authenticator_not_allowed");
    // Security keys only.
    allowed(&w.send(None, Some(&aal3), "GET", "/keys", &[]).await);
    refused(&w.send(None, Some(&hello), "GET", "/keys", &[]).await, 403, "authenticator_not_allowed");
    refused(&w.send(Some(&alice), None, "GET", "/keys", &[]).await, 403, "authenticator_not_allowed");
}

#[tokio::test]
async fn public_rules_need_no_credentials_and_unmatched_requests_are_refused() {
    let w = World::start().await;
    let r = w.send(None, None, "GET", "/metadata", &[("NHSD-Identity-UUID", "555000000001")]).await;
    allowed(&r);
    assert_eq!(r.received("nhsd-identity-uuid"), None, "nobody is asserted on a public route");
    // The public rule covers GET only: a POST needs credentials, and has no rule.
    refused(&w.send(None, None, "POST", "/metadata", &[]).await, 401, "client_certificate_required");
    let alice = w.pki.card(ALICE);
    refused(&w.send(Some(&alice), None, "POST", "/metadata", &[]).await, 403, "activity_not_permitted");
    // The catch-all route has no rules at all.
    refused(&w.send(Some(&alice), None, "GET", "/elsewhere", &[]).await, 403, "activity_not_permitted");
}

#[tokio::test]
async fn the_upstream_gets_validated_role_headers_and_a_verifiable_assertion() {
    let w = World::start().await;
    let alice = w.pki.card(ALICE);
    let r =
        w.send(Some(&alice), None, "GET", "/Patient/9000000009", &[("X-Spinegate-Identity-Assertion", "forged")]).await;
    allowed(&r);
    assert_eq!(r.received("nhsd-session-urid").as_deref(), Some("555254242101"));
    assert_eq!(r.received("nhsd-end-user-organisation-ods").as_deref(), Some("RX1"));
    assert_eq!(r.received("x-spinegate-role-code").as_deref(), Some("S8000:G8000:R8000"));
    let jwt = r.received("x-spinegate-identity-assertion").expect("an assertion on this route");
    assert_ne!(jwt, "forged");
    let (status, jwks) = support::plain_get(w.gw.admin, "/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    let keys = KeySet::parse(jwks.as_bytes(), &[Alg::Es256]).unwrap();
    let payload = decode(&jwt, &[Alg::Es256], Limits::default()).unwrap().verify(&keys).unwrap();
    let claims: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(claims["iss"], "https://spinegate.test");
    assert_eq!(claims["aud"], "demo");
    assert_eq!(claims["sub"], ALICE);
    assert_eq!(claims["role_profile"]["id"], "555254242101");
    assert_eq!(claims["role_profile"]["org"], "RX1");
    assert_eq!(claims["organisation"], "RX1");
    assert_eq!(claims["auth_method"], "smartcard");
    assert_eq!(claims["jti"], r.headers["x-request-id"].to_str().unwrap());
    assert!(claims["cnf"]["x5t#S256"].is_string());
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 60);
    // Routes without identity_assertion send none.
    let r = w.send(Some(&alice), None, "GET", "/scr", &[]).await;
    assert_eq!(r.received("x-spinegate-identity-assertion"), None);
}

#[tokio::test]
async fn every_decision_is_audited_field_by_field() {
    let w = World::start().await;
    let (alice, erin) = (w.pki.card(ALICE), w.pki.card(ERIN));
    let token = w.token(GRACE, "FIDO2", 3, &[("555254242108", "RX1", &["B0370"])]);
    let allow =
        w.send(Some(&alice), None, "GET", "/Patient/9000000009", &[("NHSD-End-User-Organisation-ODS", "RX101")]).await;
    let deny = w
        .send(Some(&erin), None, "GET", "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number%7C9000000017", &[])
        .await;
    let by_token = w.send(None, Some(&token), "GET", "/Patient/9000000025", &[]).await;
    let anonymous = w.send(None, None, "GET", "/Patient/9000000009", &[]).await;
    let lines = w.audit_lines().await;
    let line = |r: &Resp| {
        let id = r.headers["x-request-id"].to_str().unwrap();
        lines
            .iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("no audit line for {id}: {lines:?}"))
            .clone()
    };

    let a = line(&allow);
    assert_eq!(a["decision"], "allow");
    assert_eq!(a["reason"], "ok");
    assert_eq!(a["user_id"], ALICE);
    assert_eq!(a["role_profile"], "555254242101");
    assert_eq!(a["role_code"], "S8000:G8000:R8000");
    assert_eq!(a["organisation"], "RX1");
    assert_eq!(a["requested_organisation"], "RX101");
    assert_eq!(a["auth_method"], "smartcard");
    assert_eq!(a["authenticator"], "smartcard");
    assert_eq!(a["assurance"], "AAL3");
    assert_eq!(a["route"], "patient");
    assert_eq!(a["method"], "GET");
    assert_eq!(a["patient"], "9000000009");
    assert_eq!(a["client"], "127.0.0.1");
    assert!(
        time::OffsetDateTime::parse(a["time"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .is_ok()
    );

    let d = line(&deny);
    assert_eq!((d["decision"].as_str(), d["reason"].as_str()), (Some("deny"), Some("activity_not_permitted")));
    assert_eq!(d["user_id"], ERIN);
    assert_eq!(d["role_profile"], "555254242105");
    assert_eq!(d["patient"], "9000000017", "from the identifier query");

    let t = line(&by_token);
    assert_eq!((t["auth_method"].as_str(), t["authenticator"].as_str()), (Some("token"), Some("security_key")));
    assert_eq!(t["user_id"], GRACE);
    assert_eq!(t["patient"], "9000000025");

    let n = line(&anonymous);
    assert_eq!((n["decision"].as_str(), n["reason"].as_str()), (Some("deny"), Some("client_certificate_required")));
    assert_eq!(n["user_id"], Value::Null);
    assert_eq!(n["route"], Value::Null, "an unauthenticated request does not learn the route");
}

#[tokio::test]
async fn a_user_moves_organisation_without_a_restart_or_a_new_certificate() {
    let w = World::start().await;
    let alice = w.pki.card(ALICE);
    // One connection throughout: the card and the TLS session stay the same.
    let mut client = w.client(Some(&alice)).await;
    let mut get = async |headers: &[(&str, &str)]| {
        within(10, client.send(request("GET", "/Patient/9000000009", None, headers))).await.unwrap()
    };
    allowed(&get(&[("NHSD-End-User-Organisation-ODS", "RX1")]).await);

    // The Registration Authority moves alice from RX1 to RX2 with a new role profile.
    let moved = roles().replacen("id = \"555254242101\"\norg = \"RX1\"", "id = \"555254242201\"\norg = \"RX2\"", 1);
    assert_ne!(moved, roles());
    std::fs::write(&w.roles, moved).unwrap();
    let mut reloaded = false;
    for _ in 0..100 {
        if get(&[]).await.received("nhsd-session-urid").as_deref() == Some("555254242201") {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "the directory change was not picked up within 5 s");
    // Old access goes, new access applies.
    refused(&get(&[("NHSD-End-User-Organisation-ODS", "RX1")]).await, 403, "organisation_mismatch");
    refused(&get(&[("NHSD-Session-URID", "555254242101")]).await, 403, "role_not_held");
    let r = get(&[("NHSD-End-User-Organisation-ODS", "RX2")]).await;
    allowed(&r);
    assert_eq!(r.received("nhsd-end-user-organisation-ods").as_deref(), Some("RX2"));
}

#[tokio::test]
async fn a_policy_reload_under_continuous_load_loses_no_request() {
    let w = Arc::new(World::start().await);
    let alice = Arc::new(w.pki.card(ALICE));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (w, alice, stop) = (Arc::clone(&w), Arc::clone(&alice), Arc::clone(&stop));
        workers.push(tokio::spawn(async move {
            let mut client = w.client(Some(&alice)).await;
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = within(10, client.send(request("GET", "/Patient/9000000009", None, &[]))).await;
                statuses.push(r.map(|r| r.status).map_err(|e| e.to_string()));
            }
            statuses
        }));
    }
    // Ten reloads, alternating two policies that both allow alice to view.
    for i in 0..10 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let text = if i % 2 == 0 {
            w.gw.text.replace(
                "activities_any = [\"B0820\", \"B0370\"]",
                "activities_any = [\"B0370\", \"B0820\", \"B0360\"]",
            )
        } else {
            w.gw.text.clone()
        };
        w.gw.reload(&w.pki, &text).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for worker in workers {
        for status in within(20, worker).await.unwrap() {
            assert_eq!(status, Ok(http::StatusCode::OK));
            total += 1;
        }
    }
    assert!(total >= 40, "only {total} requests were made during the reloads");
}
