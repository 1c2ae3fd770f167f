//! The signed identity assertion: a short-lived ES256 JWT the gateway signs with its own key and
//! sends to upstreams on routes that ask for it (`X-Spinegate-Identity-Assertion`), so a service
//! can check who the request acts for cryptographically instead of trusting the network. The
//! public keys — the signing key and any previous ones still inside their assertions' lifetime —
//! are published as a JWK Set on the admin listener (`/.well-known/jwks.json`).
//!
//! Every replica signs with the configured key (a Kubernetes Secret), so one key set serves the
//! whole cluster; `kid` is the key's RFC 7638 thumbprint.

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use spinegate_config::IdentityAssertion;

use crate::auth::{AuthMethod, Principal};
use crate::material::MaterialError;
use spinegate_authz::RoleProfile;
use spinegate_token::jose::b64_encode;

/// Signs assertions and knows the key set to publish.
#[derive(Debug)]
pub struct AssertionSigner {
    issuer: String,
    lifetime_secs: u64,
    key: EcdsaKeyPair,
    kid: String,
    header_b64: String,
    jwks: String,
}

/// What an assertion says about one request.
#[derive(Debug)]
pub struct Subject<'a> {
    /// Who.
    pub principal: &'a Principal,
    /// Acting in which role, if one was selected.
    pub role: Option<&'a RoleProfile>,
    /// For which organisation (the requested one when it was named, else the role's).
    pub organisation: Option<&'a str>,
    /// The upstream it is for (`aud`).
    pub audience: &'a str,
    /// The request id (`jti`).
    pub request_id: &'a str,
    /// SHA-256 of the connection's client certificate, when there is one (`cnf.x5t#S256`).
    pub certificate_sha256: Option<&'a [u8; 32]>,
}

impl AssertionSigner {
    /// Loads the signing key and the previous keys (PKCS#8 PEM, P-256).
    pub fn load(config: &IdentityAssertion) -> Result<Self, MaterialError> {
        let key = load_key(&config.key)?;
        let kid = thumbprint(&key);
        let mut published = vec![jwk(&key)];
        for path in &config.previous_keys {
            let previous = load_key(path)?;
            if thumbprint(&previous) != kid {
                published.push(jwk(&previous));
            }
        }
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
        Ok(Self {
            issuer: config.issuer.clone(),
            lifetime_secs: config.lifetime.as_secs().max(1),
            header_b64: b64_encode(header.to_string().as_bytes()),
            jwks: json!({ "keys": published }).to_string(),
            key,
            kid,
        })
    }

    /// The JWK Set document (public keys only).
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// The signing key's `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A compact JWS for `subject`, issued at `now` (seconds).
    pub fn sign(&self, subject: &Subject<'_>, now: u64) -> String {
        let p = subject.principal;
        let (method, authenticator) = match p.method {
            AuthMethod::Smartcard => ("smartcard", "smartcard"),
            AuthMethod::Token { authenticator } => ("token", authenticator.as_str()),
        };
        let mut claims = json!({
            "iss": self.issuer,
            "aud": subject.audience,
            "sub": p.user_id.as_str(),
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime_secs,
            "jti": subject.request_id,
            "auth_method": method,
            "authenticator": authenticator,
            "aal": p.assurance.number(),
        });
        if let Some(role) = subject.role {
            claims["role_profile"] = json!({
                "id": &*role.data.id,
                "org": &*role.data.org,
                "role_code": &*role.data.role_code,
                "activities": role.data.activity_codes.iter().map(|c| &**c).collect::<Vec<_>>(),
            });
        }
        if let Some(org) = subject.organisation {
            claims["organisation"] = Value::from(org);
        }
        if let Some(thumbprint) = subject.certificate_sha256 {
            claims["cnf"] = json!({ "x5t#S256": b64_encode(thumbprint) });
        }
        if let Some(token) = &p.token {
            claims["idp"] = Value::from(&*token.claims.issuer);
        }
        let input = format!("{}.{}", self.header_b64, b64_encode(claims.to_string().as_bytes()));
        let signature =
            self.key.sign(&SystemRandom::new(), input.as_bytes()).expect("ECDSA P-256 signing does not fail");
        format!("{input}.{}", b64_encode(signature.as_ref()))
    }
}

fn load_key(path: &Path) -> Result<EcdsaKeyPair, MaterialError> {
    let bad = |reason: String| MaterialError::BadKey { path: path.to_path_buf(), reason };
    let der = match PrivateKeyDer::from_pem_file(path) {
        Ok(PrivateKeyDer::Pkcs8(der)) => der,
        Ok(_) => return Err(bad("the identity assertion key must be PKCS#8 (BEGIN PRIVATE KEY)".into())),
        Err(e) => return Err(bad(format!("cannot read the identity assertion key: {e}"))),
    };
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.secret_pkcs8_der())
        .map_err(|e| bad(format!("not an ECDSA P-256 key: {e}")))
}

/// `x` and `y` of the uncompressed public point.
fn coordinates(key: &EcdsaKeyPair) -> (String, String) {
    let point = key.public_key().as_ref();
    (b64_encode(&point[1..33]), b64_encode(&point[33..65]))
}

/// RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order.
fn thumbprint(key: &EcdsaKeyPair) -> String {
    let (x, y) = coordinates(key);
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    b64_encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

fn jwk(key: &EcdsaKeyPair) -> Value {
    let (x, y) = coordinates(key);
    json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "use": "sig", "alg": "ES256", "kid": thumbprint(key)})
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::AssuranceLevel;
    use crate::identity::UserId;
    use spinegate_token::jose::{Alg, KeySet, Limits, decode};

    fn key_file(dir: &Path, name: &str) -> std::path::PathBuf {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, key.serialize_pem()).unwrap();
        path
    }

    #[test]
    fn assertions_verify_against_the_published_key_set() {
        let dir = tempfile::tempdir().unwrap();
        let current = key_file(dir.path(), "current.pem");
        let previous = key_file(dir.path(), "previous.pem");
        let signer = AssertionSigner::load(&IdentityAssertion {
            issuer: "https://spinegate.example".into(),
            key: current,
            previous_keys: vec![previous],
            lifetime: Duration::from_secs(60),
        })
        .unwrap();
        let principal = Principal {
            user_id: UserId::parse("555000000001").unwrap(),
            method: AuthMethod::Smartcard,
            assurance: AssuranceLevel::Aal3,
            certificate: None,
            token: None,
        };
        let subject = Subject {
            principal: &principal,
            role: None,
            organisation: Some("A81001"),
            audience: "pds",
            request_id: "req-1",
            certificate_sha256: Some(&[7; 32]),
        };
        let jwt = signer.sign(&subject, 1_000);
        let keys = KeySet::parse(signer.jwks().as_bytes(), &[Alg::Es256]).unwrap();
        assert_eq!(keys.len(), 2, "current and previous keys are published");
        let unverified = decode(&jwt, &[Alg::Es256], Limits::default()).unwrap();
        let payload: Value = serde_json::from_slice(&unverified.verify(&keys).unwrap()).unwrap();
        assert_eq!(payload["sub"], "555000000001");
        assert_eq!(payload["aud"], "pds");
        assert_eq!(payload["exp"], 1_060);
        assert_eq!(payload["organisation"], "A81001");
        assert_eq!(payload["auth_method"], "smartcard");
        assert_eq!(payload["aal"], 3);
        assert_eq!(payload["cnf"]["x5t#S256"], b64_encode(&[7; 32]));
    }

    #[test]
    fn keys_of_the_wrong_kind_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ed25519 = dir.path().join("ed25519.pem");
        std::fs::write(&ed25519, rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap().serialize_pem()).unwrap();
        let config = |key| IdentityAssertion {
            issuer: "x".into(),
            key,
            previous_keys: vec![],
            lifetime: Duration::from_secs(60),
        };
        let err = AssertionSigner::load(&config(ed25519)).unwrap_err().to_string();
        assert!(err.contains("not an ECDSA P-256 key"), "{err}");
        assert!(AssertionSigner::load(&config(dir.path().join("missing.pem"))).is_err());
    }
}
