//! A token issuer for tests and `spinegate dev`: RSA-2048 signing keys with rotation, a JWK Set
//! and OpenID discovery endpoint it controls (serve, fail, count requests), Care-Identity-shaped
//! tokens, and back-channel logout tokens. Signing is raw so tests can also make the tokens an
//! attacker would: any header, any claims.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Error;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

struct SigningKey {
    kid: String,
    key: KeyPair,
}

/// An OpenID provider's signing side.
pub struct TokenIssuer {
    issuer: String,
    keys: Vec<SigningKey>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

/// One demo role profile for Care-Identity claims.
#[derive(Clone, Debug)]
pub struct RoleSpec {
    /// `person_roleid`.
    pub person_roleid: String,
    /// `org_code`.
    pub org_code: String,
    /// `role_code`.
    pub role_code: String,
    /// `role_name`.
    pub role_name: String,
    /// `activity_codes`.
    pub activity_codes: Vec<String>,
}

impl TokenIssuer {
    /// An issuer named `issuer` with one fresh RSA-2048 key.
    pub fn new(issuer: impl Into<String>) -> Result<Self, Error> {
        let mut this = Self { issuer: issuer.into(), keys: Vec::new() };
        this.rotate()?;
        Ok(this)
    }

    /// The `iss` value.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Adds a new key and signs with it from now on; returns its `kid`. Older keys stay in the
    /// JWK Set until retired.
    pub fn rotate(&mut self) -> Result<String, Error> {
        let key = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| Error::Corrupt { path: "<token key>".into(), message: "RSA key generation failed".into() })?;
        let kid = format!("key-{}", self.keys.len() + 1);
        self.keys.push(SigningKey { kid: kid.clone(), key });
        Ok(kid)
    }

    /// Removes a key from the JWK Set.
    pub fn retire(&mut self, kid: &str) {
        self.keys.retain(|k| k.kid != kid);
    }

    /// The `kid` tokens are signed with.
    pub fn current_kid(&self) -> &str {
        &self.keys.last().expect("an issuer always has a key").kid
    }

    /// The JWK Set document.
    pub fn jwks_json(&self) -> String {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|k| {
                let components = PublicKeyComponents::<Vec<u8>>::from(k.key.public_key());
                json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": k.kid, "n": b64(&components.n), "e": b64(&components.e)})
            })
            .collect();
        json!({ "keys": keys }).to_string()
    }

    /// Signs `header` and `claims` as given (RS256 with the current key), for attack tests.
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let key = &self.keys.last().expect("an issuer always has a key").key;
        let mut signature = vec![0u8; key.public_modulus_len()];
        key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut signature)
            .expect("RSA signing succeeds");
        format!("{input}.{}", b64(&signature))
    }

    /// A token with the standard header (`RS256`, current `kid`, `typ` JWT).
    pub fn token(&self, claims: &Value) -> String {
        self.sign_raw(&json!({"alg": "RS256", "kid": self.current_kid(), "typ": "JWT"}), claims)
    }

    /// Care-Identity-shaped claims for a user, valid from now for `lifetime_secs`, with the
    /// authenticator in `amr` and the assurance level as Care Identity gives it (a string).
    pub fn care_identity_claims(
        &self,
        audience: &str,
        user_id: &str,
        amr: &str,
        aal: u8,
        roles: &[RoleSpec],
        lifetime_secs: u64,
    ) -> Value {
        let now = time::OffsetDateTime::now_utc().unix_timestamp().unsigned_abs();
        let roles: Vec<Value> = roles
            .iter()
            .map(|r| {
                json!({
                    "person_roleid": r.person_roleid,
                    "org_code": r.org_code,
                    "role_code": r.role_code,
                    "role_name": r.role_name,
                    "activity_codes": r.activity_codes,
                    "activities": [],
                    "workgroups": [],
                    "workgroups_codes": [],
                })
            })
            .collect();
        json!({
            "iss": self.issuer,
            "aud": audience,
            "sub": user_id,
            "nhsid_useruid": user_id,
            "iat": now,
            "exp": now + lifetime_secs,
            "jti": format!("jti-{user_id}-{now}-{}", rand_suffix()),
            "sid": format!("sid-{user_id}"),
            "authentication_assurance_level": aal.to_string(),
            "id_assurance_level": "3",
            "acr": format!("AAL{aal}_ANY"),
            "amr": [amr],
            "nhsid_nrbac_roles": roles,
            "selected_roleid": roles.first().and_then(|r| r.get("person_roleid")).cloned().unwrap_or(Value::Null),
        })
    }

    /// A back-channel logout token for a session and/or user.
    pub fn logout_token(&self, audience: &str, sid: Option<&str>, sub: Option<&str>) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp().unsigned_abs();
        let mut claims = json!({
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "jti": format!("logout-{now}-{}", rand_suffix()),
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        });
        if let Some(sid) = sid {
            claims["sid"] = json!(sid);
        }
        if let Some(sub) = sub {
            claims["sub"] = json!(sub);
        }
        self.sign_raw(&json!({"alg": "RS256", "kid": self.current_kid(), "typ": "logout+jwt"}), &claims)
    }
}

fn rand_suffix() -> u64 {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::SecureRandom::fill(&SystemRandom::new(), &mut b).expect("the system RNG is available");
    u64::from_le_bytes(b)
}

/// How the key endpoint answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyEndpointMode {
    /// Serves the JWK Set and discovery document.
    Serve,
    /// Answers 503.
    Fail,
}

/// A running JWK Set (`/jwks`) and discovery (`/.well-known/openid-configuration`) endpoint.
pub struct KeyEndpoint {
    addr: SocketAddr,
    issuer: Arc<Mutex<TokenIssuer>>,
    mode: Arc<Mutex<KeyEndpointMode>>,
    requests: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for KeyEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEndpoint").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl KeyEndpoint {
    /// Serves `issuer`'s keys on `addr`.
    pub async fn spawn(addr: SocketAddr, issuer: Arc<Mutex<TokenIssuer>>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let mode = Arc::new(Mutex::new(KeyEndpointMode::Serve));
        let requests = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = watch::channel(false);
        let (iss, md, rq) = (Arc::clone(&issuer), Arc::clone(&mode), Arc::clone(&requests));
        crate::serve::spawn(listener, stopped, move |req| {
            answer(req, addr, Arc::clone(&iss), Arc::clone(&md), Arc::clone(&rq))
        });
        Ok(Self { addr, issuer, mode, requests, stop })
    }

    /// The JWK Set URL.
    pub fn jwks_url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    /// The discovery document URL.
    pub fn discovery_url(&self) -> String {
        format!("http://{}/.well-known/openid-configuration", self.addr)
    }

    /// The issuer it serves.
    pub fn issuer(&self) -> &Arc<Mutex<TokenIssuer>> {
        &self.issuer
    }

    /// Changes how it answers.
    pub fn set_mode(&self, mode: KeyEndpointMode) {
        *self.mode.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = mode;
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for KeyEndpoint {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn answer(
    req: Request<Incoming>,
    addr: SocketAddr,
    issuer: Arc<Mutex<TokenIssuer>>,
    mode: Arc<Mutex<KeyEndpointMode>>,
    requests: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    requests.fetch_add(1, Ordering::SeqCst);
    let mode = *mode.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (status, body) = match (mode, req.uri().path()) {
        (KeyEndpointMode::Fail, _) => (StatusCode::SERVICE_UNAVAILABLE, String::new()),
        (KeyEndpointMode::Serve, "/jwks") => {
            (StatusCode::OK, issuer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).jwks_json())
        }
        (KeyEndpointMode::Serve, "/.well-known/openid-configuration") => {
            let iss = issuer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).issuer().to_owned();
            (StatusCode::OK, json!({"issuer": iss, "jwks_uri": format!("http://{addr}/jwks")}).to_string())
        }
        _ => (StatusCode::NOT_FOUND, String::new()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    Ok(response)
}
