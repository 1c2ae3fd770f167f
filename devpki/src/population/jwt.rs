//! The population's token issuer: one RSA-2048 key kept in the population directory (unlike
//! [`crate::token::TokenIssuer`], whose keys live and die with the process), Care-Identity-shaped
//! RS256 tokens, and the JWK Set a loader's `serve` publishes.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use serde_json::{Value, json};

use super::derive::{ADMIN_CLERK_ROLE_CODE, PopUser, TokenAuthenticator};

/// The `kid` of the population's signing key.
pub const TOKEN_KID: &str = "loadtest-1";

/// Signs population tokens.
pub struct TokenSigner {
    key: KeyPair,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A new key. Returns the signer and its PKCS#8 DER, for storing.
    pub(crate) fn generate(issuer: &str, audience: &str) -> Option<(Self, Vec<u8>)> {
        let key = KeyPair::generate(KeySize::Rsa2048).ok()?;
        let der = key.as_der().ok()?.as_ref().to_vec();
        Some((Self { key, issuer: issuer.to_owned(), audience: audience.to_owned() }, der))
    }

    /// From a stored PKCS#8 DER key.
    pub(crate) fn from_pkcs8(der: &[u8], issuer: &str, audience: &str) -> Option<Self> {
        let key = KeyPair::from_pkcs8(der).ok()?;
        Some(Self { key, issuer: issuer.to_owned(), audience: audience.to_owned() })
    }

    /// The JWK Set with the one public key.
    pub fn jwks_json(&self) -> String {
        let components = PublicKeyComponents::<Vec<u8>>::from(self.key.public_key());
        json!({"keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": TOKEN_KID,
            "n": b64(&components.n), "e": b64(&components.e),
        }]})
        .to_string()
    }

    /// A token for `user`, who signed in with `authenticator` at `iat`, valid until `exp` (Unix
    /// seconds).
    pub(crate) fn token(
        &self,
        user: &PopUser,
        authenticator: TokenAuthenticator,
        iat: i64,
        exp: i64,
    ) -> Option<String> {
        let roles: Vec<Value> = user
            .roles
            .iter()
            .map(|r| {
                let role_name = if r.role_code == ADMIN_CLERK_ROLE_CODE {
                    "\"Admin & Clerical\":\"Admin & Clerical\":\"Admin/Clinical Support Access Role\""
                } else {
                    "\"Clinical\":\"Clinical Provision\":\"Clinical Practitioner Access Role\""
                };
                json!({
                    "person_roleid": r.id, "org_code": r.org, "role_code": r.role_code, "role_name": role_name,
                    "activity_codes": r.activities, "activities": [], "workgroups": [], "workgroups_codes": [],
                })
            })
            .collect();
        let aal = authenticator.assurance_level();
        let claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user.user_id,
            "nhsid_useruid": user.user_id,
            "iat": iat,
            "exp": exp,
            "jti": format!("loadtest-{}-{iat}", user.user_id),
            "sid": format!("sid-{}", user.user_id),
            "authentication_assurance_level": aal.to_string(),
            "id_assurance_level": "3",
            "acr": format!("AAL{aal}_ANY"),
            "amr": [authenticator.amr()],
            "nhsid_nrbac_roles": roles,
            "selected_roleid": user.roles.first().map(|r| r.id.clone()),
        });
        let header = json!({"alg": "RS256", "kid": TOKEN_KID, "typ": "JWT"});
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut signature).ok()?;
        Some(format!("{input}.{}", b64(&signature)))
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
