//! Authenticator tokens: Care Identity OIDC JWTs verified on every request against the issuer's
//! JWK Set — each attack refused on its own, keys rotated, unknown `kid` storms, the key endpoint
//! down inside and beyond the staleness bound, certificate-bound tokens (RFC 8705), back-channel
//! logout, and the RFC 6750 challenge on every refusal.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};
use spinegate_devpki::Issued;
use spinegate_devpki::token::{KeyEndpoint, KeyEndpointMode, RoleSpec, TokenIssuer};
use support::{Client, Gw, Pki, Resp, care_identity, client_config, within};

const ISSUER: &str = "https://ci.test/realms/Healthcare";
const AUDIENCE: &str = "spinegate-test";

struct World {
    pki: Pki,
    gw: Gw,
    keys: KeyEndpoint,
}

impl World {
    async fn start(issuer_extra: &str, route_extra: &str) -> Self {
        let pki = Pki::new();
        let issuer = Arc::new(Mutex::new(TokenIssuer::new(ISSUER).unwrap()));
        let keys = KeyEndpoint::spawn("127.0.0.1:0".parse().unwrap(), issuer).await.unwrap();
        let issuer_block = format!("{}{issuer_extra}\n", care_identity(&keys.jwks_url()));
        let route_extra = route_extra.to_owned();
        let gw = Gw::start(&pki, |s| {
            s.client_certificate = "request";
            s.extra = format!("{issuer_block}\n{route_extra}");
        })
        .await;
        Self { pki, gw, keys }
    }

    fn issuer(&self) -> std::sync::MutexGuard<'_, TokenIssuer> {
        self.keys.issuer().lock().unwrap()
    }

    fn claims(&self, user: &str) -> Value {
        let roles = [RoleSpec {
            person_roleid: "555254242106".into(),
            org_code: "RX1".into(),
            role_code: "S8000:G8000:R8000".into(),
            role_name: "Clinical Practitioner".into(),
            activity_codes: vec!["B0370".into(), "B0360".into()],
        }];
        self.issuer().care_identity_claims(AUDIENCE, user, "FIDO2", 3, &roles, 3600)
    }

    fn token(&self, claims: &Value) -> String {
        self.issuer().token(claims)
    }

    async fn call(&self, card: Option<&Issued>, token: &str) -> Resp {
        call_at(&self.gw, &self.pki, card, token, "/metadata").await
    }
}

async fn call_at(gw: &Gw, pki: &Pki, card: Option<&Issued>, token: &str, path: &str) -> Resp {
    let mut client = Client::connect(gw.addr, client_config(pki, card, &[b"h2"])).await.unwrap();
    let request = Request::get(path).header("authorization", format!("Bearer {token}")).body(Full::default()).unwrap();
    within(10, client.send(request)).await.unwrap()
}

fn b64(bytes: &[u8]) -> String {
    spinegate_token::jose::b64_encode(bytes)
}

/// A token with an arbitrary header and claims and a junk signature (for checks that must fail
/// before any key is touched).
fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()), b64(&[7u8; 256]))
}

fn assert_refused(r: &Resp, reason: &str) {
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["reason"], reason);
    let challenge = r.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("error_description="), "{challenge}");
}

#[tokio::test]
async fn valid_token_reaches_the_upstream_as_verified_identity() {
    let w = World::start("", "").await;
    let token = w.token(&w.claims("555000000021"));
    let r = w.call(None, &token).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.received("nhsd-identity-uuid").as_deref(), Some("555000000021"));
    assert_eq!(r.received("nhsd-identity-idp").as_deref(), Some(ISSUER));
    assert_eq!(r.received("x-spinegate-auth-method").as_deref(), Some("token:security_key"));
    assert_eq!(r.received("x-spinegate-assurance-level").as_deref(), Some("AAL3"));
    assert_eq!(r.received("authorization"), None, "the bearer token is never forwarded");
}

#[tokio::test]
async fn verified_token_is_served_from_the_cache() {
    let w = World::start("", "").await;
    let token = w.token(&w.claims("555000000021"));
    let series = "spinegate_token_verifications_total{issuer=\"care-identity\",result=\"ok\"}";
    for _ in 0..3 {
        assert_eq!(w.call(None, &token).await.status, 200);
    }
    assert!(w.gw.metric(series).await >= 3.0);
    assert_eq!(w.keys.requests(), 1, "keys fetched once");
}

#[tokio::test]
async fn expired_token_gets_token_expired() {
    let w = World::start("", "").await;
    let mut claims = w.claims("555000000021");
    let now = claims["iat"].as_u64().unwrap();
    claims["iat"] = json!(now - 7200);
    claims["exp"] = json!(now - 3600);
    assert_refused(&w.call(None, &w.token(&claims)).await, "token_expired");
    // A cached token expires too: valid now, then the clock moves past exp (+ skew).
    let token = w.token(&w.claims("555000000021"));
    assert_eq!(w.call(None, &token).await.status, 200);
    w.gw.clock.advance(Duration::from_secs(3600 + 61));
    assert_refused(&w.call(None, &token).await, "token_expired");
}

#[tokio::test]
async fn alg_none_is_refused() {
    let w = World::start("", "").await;
    let claims = w.claims("555000000021");
    let token = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(claims.to_string().as_bytes()));
    assert_refused(&w.call(None, &token).await, "invalid_token");
    let token = unsigned(&json!({"alg": "none"}), &claims);
    assert_refused(&w.call(None, &token).await, "invalid_token");
}

#[tokio::test]
async fn hmac_signed_with_the_public_key_is_refused() {
    let w = World::start("", "").await;
    let claims = w.claims("555000000021");
    // The classic confusion attack: HS256 keyed with the issuer's public key (as published).
    let secret = w.issuer().jwks_json();
    let input = format!("{}.{}", b64(br#"{"alg":"HS256","kid":"key-1"}"#), b64(claims.to_string().as_bytes()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    let token = format!("{input}.{}", b64(tag.as_ref()));
    assert_refused(&w.call(None, &token).await, "invalid_token");
}

#[tokio::test]
async fn algorithm_outside_the_issuers_allow_list_is_refused() {
    // The issuer allows RS256 only; a validly RS256-signed token whose header claims RS512 never
    // reaches a key.
    let w = World::start("algorithms = [\"RS256\"]", "").await;
    let claims = w.claims("555000000021");
    let kid = w.issuer().current_kid().to_owned();
    let token = w.issuer().sign_raw(&json!({"alg": "RS512", "kid": kid}), &claims);
    assert_refused(&w.call(None, &token).await, "invalid_token");
    assert_eq!(w.call(None, &w.token(&claims)).await.status, 200);
}

#[tokio::test]
async fn headers_that_bring_their_own_keys_are_refused() {
    let w = World::start("", "").await;
    let claims = w.claims("555000000021");
    let kid = w.issuer().current_kid().to_owned();
    for (name, value) in [
        ("jku", json!("http://127.0.0.1:1/evil-jwks")),
        ("x5u", json!("http://127.0.0.1:1/evil.pem")),
        ("jwk", json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})),
        ("x5c", json!(["MIIB"])),
    ] {
        // Validly signed by the real issuer: the header alone must make it unacceptable.
        let mut header = json!({"alg": "RS256", "kid": kid});
        header[name] = value;
        let token = w.issuer().sign_raw(&header, &claims);
        assert_refused(&w.call(None, &token).await, "invalid_token");
    }
}

#[tokio::test]
async fn unknown_critical_header_extension_is_refused() {
    let w = World::start("", "").await;
    let kid = w.issuer().current_kid().to_owned();
    let claims = w.claims("555000000021");
    let token = w.issuer().sign_raw(&json!({"alg": "RS256", "kid": kid, "crit": ["exp"], "exp": 1}), &claims);
    assert_refused(&w.call(None, &token).await, "invalid_token");
}

#[tokio::test]
async fn duplicate_json_members_are_refused() {
    let w = World::start("", "").await;
    let kid = w.issuer().current_kid().to_owned();
    // Two parsers could disagree on which "sub" wins; the token is refused outright.
    let claims = w.claims("555000000021").to_string().replacen("\"sub\":", "\"sub\":\"555000000099\",\"sub\":", 1);
    let header = format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#);
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let token = format!("{input}.{}", b64(&[1u8; 256]));
    assert_refused(&w.call(None, &token).await, "invalid_token");
    let dup_header = format!(r#"{{"alg":"RS256","alg":"none","kid":"{kid}"}}"#);
    let token = format!("{}.{}.{}", b64(dup_header.as_bytes()), b64(b"{}"), b64(&[1u8; 256]));
    assert_refused(&w.call(None, &token).await, "invalid_token");
}

#[tokio::test]
async fn oversized_token_is_refused_before_decoding() {
    let w = World::start("", "").await;
    let mut claims = w.claims("555000000021");
    claims["padding"] = json!("x".repeat(20_000));
    let r = w.call(None, &w.token(&claims)).await;
    assert_refused(&r, "invalid_token");
    assert!(w.gw.metric("spinegate_token_verifications_total{issuer=\"unknown\",result=\"too_large\"}").await >= 1.0);
}

#[tokio::test]
async fn wrong_issuer_audience_or_times_are_refused() {
    let w = World::start("max_token_age = \"1h\"", "").await;
    let base = w.claims("555000000021");
    let now = base["iat"].as_u64().unwrap();
    let mut cases = Vec::new();
    let mut c = base.clone();
    c["iss"] = json!("https://evil.test");
    cases.push(("unknown issuer", c));
    let mut c = base.clone();
    c["aud"] = json!("someone-else");
    cases.push(("audience", c));
    let mut c = base.clone();
    c["nbf"] = json!(now + 600);
    cases.push(("nbf in the future", c));
    let mut c = base.clone();
    c["iat"] = json!(now - 7200);
    cases.push(("iat older than max_token_age", c));
    let mut c = base.clone();
    c["sub"] = json!("alice");
    c.as_object_mut().unwrap().remove("nhsid_useruid");
    cases.push(("no user id", c));
    for (what, claims) in cases {
        let r = w.call(None, &w.token(&claims)).await;
        assert_eq!(r.status, 401, "{what}");
        assert_eq!(r.json()["reason"], "invalid_token", "{what}");
    }
}

#[tokio::test]
async fn malformed_authorization_header_is_an_invalid_token() {
    let w = World::start("", "").await;
    let mut client = Client::connect(w.gw.addr, client_config(&w.pki, None, &[b"h2"])).await.unwrap();
    for value in ["Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "garbage"] {
        let request = Request::get("/metadata").header("authorization", value).body(Full::default()).unwrap();
        let r = client.send(request).await.unwrap();
        assert_refused(&r, "invalid_token");
    }
    // No credential at all on a listener that accepts tokens: certificate required.
    let r = client.get("/metadata").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.json()["reason"].as_str().unwrap().to_owned()),
        (401, "client_certificate_required".into())
    );
}

#[tokio::test]
async fn rotated_keys_are_picked_up_and_retired_keys_stop_working() {
    let w = World::start("", "").await;
    let old = w.token(&w.claims("555000000021"));
    assert_eq!(w.call(None, &old).await.status, 200);
    // Minted with the first key, not presented yet (so not cached).
    let unseen_old = w.token(&w.claims("555000000029"));
    // The issuer rotates: a token with the new kid triggers one refetch and is accepted.
    w.issuer().rotate().unwrap();
    let new = w.token(&w.claims("555000000022"));
    assert_eq!(w.call(None, &new).await.status, 200);
    assert_eq!(w.keys.requests(), 2);
    // The old key is retired; once the keys are refreshed (TTL 10 min), uncached old tokens fail.
    w.issuer().retire("key-1");
    w.gw.clock.advance(Duration::from_secs(601));
    let _ = w.call(None, &new).await; // the refresh happens in the background
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while w.keys.requests() < 3 {
        assert!(std::time::Instant::now() < deadline, "keys were not refreshed after their TTL");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = w.call(None, &unseen_old).await;
    assert_refused(&r, "invalid_token");
    // A token verified (and cached) under the withdrawn key is checked again and refused too.
    assert_refused(&w.call(None, &old).await, "invalid_token");
}

#[tokio::test]
async fn random_kids_cause_at_most_one_refetch_per_interval() {
    let w = World::start("jwks_refetch_interval = \"30s\"", "").await;
    assert_eq!(w.call(None, &w.token(&w.claims("555000000021"))).await.status, 200);
    let claims = w.claims("555000000021");
    for i in 0..50 {
        let token = w.issuer().sign_raw(&json!({"alg": "RS256", "kid": format!("random-{i}")}), &claims);
        assert_refused(&w.call(None, &token).await, "invalid_token");
    }
    assert!(w.keys.requests() <= 2, "{} key fetches for 50 random kids", w.keys.requests());
    assert!(w.gw.metric("spinegate_jwks_refetches_suppressed_total{issuer=\"care-identity\"}").await >= 48.0);
}

#[tokio::test]
async fn key_endpoint_down_serves_last_keys_until_the_staleness_bound() {
    let w = World::start("jwks_ttl = \"10m\"\njwks_max_staleness = \"1h\"", "").await;
    assert_eq!(w.call(None, &w.token(&w.claims("555000000021"))).await.status, 200);
    w.keys.set_mode(KeyEndpointMode::Fail);
    // Past the TTL, inside the staleness bound: new tokens still verify with the last good keys.
    w.gw.clock.advance(Duration::from_secs(30 * 60));
    assert_eq!(w.call(None, &w.token(&w.claims("555000000022"))).await.status, 200);
    // Beyond it: refused.
    w.gw.clock.advance(Duration::from_secs(31 * 60));
    let r = w.call(None, &w.token(&w.claims("555000000023"))).await;
    assert_refused(&r, "invalid_token");
    assert!(w.gw.metric("spinegate_token_verifications_total{issuer=\"unknown\",result=\"keys_stale\"}").await >= 1.0);
}

#[tokio::test]
async fn keys_are_found_through_openid_discovery() {
    let pki = Pki::new();
    let issuer = Arc::new(Mutex::new(TokenIssuer::new(ISSUER).unwrap()));
    let keys = KeyEndpoint::spawn("127.0.0.1:0".parse().unwrap(), Arc::clone(&issuer)).await.unwrap();
    let block = format!(
        "[[token_issuer]]\nname = \"care-identity\"\nissuer = \"{ISSUER}\"\ndiscovery_url = \"{}\"\naudiences = [\"{AUDIENCE}\"]\n",
        keys.discovery_url()
    );
    let gw = Gw::start(&pki, |s| {
        s.client_certificate = "request";
        s.extra = block;
    })
    .await;
    let token = {
        let i = issuer.lock().unwrap();
        i.token(&i.care_identity_claims(AUDIENCE, "555000000021", "FIDO2", 3, &[], 3600))
    };
    assert_eq!(call_at(&gw, &pki, None, &token, "/metadata").await.status, 200);
    assert_eq!(keys.requests(), 2, "discovery document, then the key set");
}

fn thumbprint(card: &Issued) -> String {
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &card.cert).as_ref())
}

#[tokio::test]
async fn certificate_bound_token_is_accepted_only_with_that_certificate() {
    let w = World::start("", "").await;
    let card = w.pki.card("555000000021");
    let other = w.pki.card("555000000021");
    let mut claims = w.claims("555000000021");
    claims["cnf"] = json!({"x5t#S256": thumbprint(&card)});
    let bound = w.token(&claims);
    assert_eq!(w.call(Some(&card), &bound).await.status, 200, "matching certificate");
    assert_refused(&w.call(Some(&other), &bound).await, "token_binding_mismatch");
    assert_refused(&w.call(None, &bound).await, "token_binding_mismatch");
}

#[tokio::test]
async fn route_requiring_binding_refuses_unbound_tokens() {
    let route = "[[route]]\nname = \"bound-only\"\npath_prefix = \"/Patient\"\nupstream = \"demo\"\ntoken_binding = \"required\"\n[[route.rule]]\nmethods = [\"*\"]\norganisation_scope = false\n";
    let w = World::start("", route).await;
    let card = w.pki.card("555000000021");
    let unbound = w.token(&w.claims("555000000021"));
    assert_refused(
        &call_at(&w.gw, &w.pki, Some(&card), &unbound, "/Patient/9000000009").await,
        "token_binding_mismatch",
    );
    assert_eq!(
        call_at(&w.gw, &w.pki, Some(&card), &unbound, "/metadata").await.status,
        200,
        "other routes do not require it"
    );
    let mut claims = w.claims("555000000021");
    claims["cnf"] = json!({"x5t#S256": thumbprint(&card)});
    let bound = w.token(&claims);
    assert_eq!(call_at(&w.gw, &w.pki, Some(&card), &bound, "/Patient/9000000009").await.status, 200);
}

#[tokio::test]
async fn unbound_token_of_another_user_on_a_smartcard_connection_is_refused() {
    let w = World::start("", "").await;
    let alice_card = w.pki.card("555000000001");
    let mallory_token = w.token(&w.claims("555000000666"));
    assert_refused(&w.call(Some(&alice_card), &mallory_token).await, "token_binding_mismatch");
    let alice_token = w.token(&w.claims("555000000001"));
    let r = w.call(Some(&alice_card), &alice_token).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.received("x-spinegate-auth-method").as_deref(), Some("token:security_key"));
}

#[tokio::test]
async fn back_channel_logout_refuses_the_sessions_tokens_until_they_expire() {
    let w = World::start("", "").await;
    let claims = w.claims("555000000021");
    let token = w.token(&claims);
    assert_eq!(w.call(None, &token).await.status, 200);

    let sid = claims["sid"].as_str().unwrap().to_owned();
    let logout = w.issuer().logout_token(AUDIENCE, Some(&sid), None);
    let post = |body: String| {
        let gw_addr = w.gw.addr;
        let config = client_config(&w.pki, None, &[b"http/1.1"]);
        async move {
            let mut client = Client::connect(gw_addr, config).await.unwrap();
            let request = Request::post("/.spinegate/backchannel-logout")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(bytes::Bytes::from(body)))
                .unwrap();
            client.send(request).await.unwrap()
        }
    };
    let r = post(format!("logout_token={logout}")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.headers["cache-control"], "no-store");
    // The cached, still unexpired token is now refused.
    assert_refused(&w.call(None, &token).await, "invalid_token");
    // A replayed logout token is refused; so is a forged one.
    assert_eq!(post(format!("logout_token={logout}")).await.status, 400);
    let forged = unsigned(&json!({"alg": "RS256", "kid": "key-1"}), &json!({"iss": ISSUER}));
    assert_eq!(post(format!("logout_token={forged}")).await.status, 400);
    // Another session of the same user is unaffected.
    let mut other = w.claims("555000000021");
    other["sid"] = json!("another-session");
    assert_eq!(w.call(None, &w.token(&other)).await.status, 200);
}

#[tokio::test]
async fn a_cached_token_is_refused_once_older_than_the_maximum_age() {
    let w = World::start("max_token_age = \"1h\"", "").await;
    // Issued now, valid for three hours: the age limit, not exp, must end it.
    let mut claims = w.claims("555000000021");
    claims["exp"] = json!(claims["iat"].as_u64().unwrap() + 3 * 3600);
    let token = w.token(&claims);
    assert_eq!(w.call(None, &token).await.status, 200);
    assert_eq!(w.call(None, &token).await.status, 200, "served from the cache");
    w.gw.clock.advance(Duration::from_secs(3600 + 60 + 5));
    assert_refused(&w.call(None, &token).await, "invalid_token");
    assert!(w.gw.metric("spinegate_token_verifications_total{issuer=\"unknown\",result=\"too_old\"}").await >= 1.0);
}

#[tokio::test]
async fn a_logout_token_is_not_accepted_as_a_bearer_token() {
    let w = World::start("", "").await;
    let claims = w.claims("555000000021");
    // Signed by the issuer, but typed (and shaped) as a logout token.
    let logout = w.issuer().logout_token(AUDIENCE, claims["sid"].as_str(), Some("555000000021"));
    assert_refused(&w.call(None, &logout).await, "invalid_token");
    // Its type alone is enough: an access token's claims under typ logout+jwt.
    let kid = w.issuer().current_kid().to_owned();
    let retyped = w.issuer().sign_raw(&json!({"alg": "RS256", "kid": kid, "typ": "logout+jwt"}), &claims);
    assert_refused(&w.call(None, &retyped).await, "invalid_token");
    assert!(w.gw.metric("spinegate_token_verifications_total{issuer=\"unknown\",result=\"wrong_type\"}").await >= 1.0);
    // The types an access token may carry.
    for typ in ["JWT", "at+jwt", "application/at+JWT"] {
        let token = w.issuer().sign_raw(&json!({"alg": "RS256", "kid": kid, "typ": typ}), &claims);
        assert_eq!(w.call(None, &token).await.status, 200, "{typ}");
    }
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused_whoever_requested_it() {
    let w = World::start("", "").await;
    let mut claims = w.claims("555000000021");
    claims["aud"] = json!("another-service");
    claims["azp"] = json!(AUDIENCE);
    assert_refused(&w.call(None, &w.token(&claims)).await, "invalid_token");
}

#[tokio::test]
async fn key_endpoint_down_does_not_pile_up_refreshes() {
    let w = World::start("jwks_ttl = \"10m\"\njwks_max_staleness = \"1h\"\njwks_refetch_interval = \"30s\"", "").await;
    assert_eq!(w.call(None, &w.token(&w.claims("555000000021"))).await.status, 200);
    let fetched = w.keys.requests();
    w.keys.set_mode(KeyEndpointMode::Fail);
    w.gw.clock.advance(Duration::from_secs(30 * 60));
    // Fifty new tokens past the TTL: the last good keys serve them, and the failing endpoint is
    // asked once, not once per token.
    for i in 0..50 {
        let r = w.call(None, &w.token(&w.claims(&format!("5550000001{i:02}")))).await;
        assert_eq!(r.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.keys.requests() - fetched <= 2, "{} fetches while the endpoint was down", w.keys.requests() - fetched);
}
