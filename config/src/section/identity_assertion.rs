//! `[identity_assertion]`: the signed identity assertion (ES256 JWT) routes with
//! `identity_assertion = true` send their upstream, and the keys the admin listener publishes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::error::ConfigError;
use crate::syntax::{Ctx, HumanDuration, secs};

/// `[identity_assertion]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentityAssertion {
    /// `iss` of the assertions.
    pub issuer: String,
    /// PKCS#8 PEM private key (ECDSA P-256: ES256) the assertions are signed with.
    pub key: Spanned<String>,
    /// Keys no longer signing but still published (rotation).
    #[serde(default)]
    pub previous_keys: Vec<Spanned<String>>,
    /// How long an assertion is valid.
    #[serde(default = "default_assertion_lifetime")]
    pub lifetime: HumanDuration,
}

/// `[identity_assertion]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityAssertion {
    /// `iss`.
    pub issuer: String,
    /// Signing key (PKCS#8 PEM, P-256).
    pub key: PathBuf,
    /// Published, not signing.
    pub previous_keys: Vec<PathBuf>,
    /// Validity.
    pub lifetime: Duration,
}

impl IdentityAssertion {
    /// The files a reload depends on: the signing key, then the previous keys.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(self.key.as_path()).chain(self.previous_keys.iter().map(PathBuf::as_path))
    }
}

fn default_assertion_lifetime() -> HumanDuration {
    secs(60)
}

/// `[identity_assertion]`, validated; `None` when the file has no such section.
pub(crate) fn validate(
    ctx: &Ctx<'_>,
    raw: Option<&RawIdentityAssertion>,
) -> Result<Option<IdentityAssertion>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.issuer.trim().is_empty() {
        return Err(ctx.global("[identity_assertion] issuer is empty"));
    }
    let lifetime = raw.lifetime.0;
    if lifetime.is_zero() || lifetime > Duration::from_secs(3600) {
        return Err(ctx.global("[identity_assertion] lifetime must be between 1s and 1h"));
    }
    Ok(Some(IdentityAssertion {
        issuer: raw.issuer.clone(),
        key: ctx.path(&raw.key)?,
        previous_keys: ctx.paths(&raw.previous_keys)?,
        lifetime,
    }))
}

#[cfg(test)]
mod tests {
    use crate::testing::parse_with as parse;

    #[test]
    fn identity_assertion_settings() {
        let route = "[[route]]\nname = \"records\"\npath_prefix = \"/Records\"\nupstream = \"pds\"\nidentity_assertion = true\n";
        let err = parse(route).unwrap_err().to_string();
        assert!(err.contains("needs an [identity_assertion] section"), "{err}");
        let c = parse(&format!("[identity_assertion]\nissuer = \"https://gw\"\nkey = \"k.pem\"\n{route}")).unwrap();
        assert_eq!(c.identity_assertion.unwrap().lifetime.as_secs(), 60);
        for lifetime in ["0s", "2h"] {
            let text =
                format!("[identity_assertion]\nissuer = \"https://gw\"\nkey = \"k.pem\"\nlifetime = \"{lifetime}\"\n");
            assert!(parse(&text).unwrap_err().to_string().contains("between 1s and 1h"), "{lifetime}");
        }
    }
}
