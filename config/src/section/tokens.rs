//! `[tokens]` and `[[token_issuer]]`: bearer tokens — settings common to every issuer, and each
//! OpenID provider whose tokens are accepted.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

pub use spinegate_token::jose::Alg as TokenAlgorithm;
pub use spinegate_token::{IssuerOptions as TokenIssuerOptions, JwksOptions, KeySource, Options as TokenOptions};

use crate::error::ConfigError;
use crate::syntax::{Ctx, HumanDuration, secs, unspanned};

/// `[tokens]`: bearer-token handling common to every issuer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokens {
    /// Most verified tokens remembered.
    #[serde(default = "default_token_cache")]
    pub cache_entries: u64,
    /// Largest token accepted, bytes (checked before decoding).
    #[serde(default = "default_token_bytes")]
    pub max_token_bytes: Spanned<u64>,
    /// Path of the OpenID Connect back-channel logout endpoint on the client listeners.
    #[serde(default = "default_logout_path")]
    pub backchannel_logout_path: Spanned<String>,
}

/// `[[token_issuer]]`: an OpenID provider whose tokens are accepted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokenIssuer {
    /// Name in logs and metrics.
    pub name: Spanned<String>,
    /// The exact `iss` value.
    pub issuer: Spanned<String>,
    /// Where the signing keys are (JWK Set).
    pub jwks_url: Option<Spanned<String>>,
    /// OpenID discovery document naming `jwks_uri` (instead of `jwks_url`).
    pub discovery_url: Option<Spanned<String>>,
    /// Accepted `aud` values: a token's `aud` must hold one (`azp` is not an audience).
    pub audiences: Spanned<Vec<String>>,
    /// Accepted algorithms.
    #[serde(default = "default_algorithms")]
    pub algorithms: Spanned<Vec<Spanned<String>>>,
    /// Tolerated clock difference.
    #[serde(default = "default_token_skew")]
    pub clock_skew: HumanDuration,
    /// Oldest acceptable `iat`.
    #[serde(default = "default_token_age")]
    pub max_token_age: HumanDuration,
    /// Claims that must be present.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// How long fetched keys are used before refreshing.
    #[serde(default = "default_jwks_ttl")]
    pub jwks_ttl: HumanDuration,
    /// How long the last good keys serve while the endpoint fails.
    #[serde(default = "default_jwks_staleness")]
    pub jwks_max_staleness: HumanDuration,
    /// Least time between refetches triggered by unknown `kid`s.
    #[serde(default = "default_jwks_refetch")]
    pub jwks_refetch_interval: HumanDuration,
    /// PEM files of CAs for an `https` JWKS or discovery URL.
    #[serde(default)]
    pub jwks_ca: Vec<Spanned<String>>,
}

/// `[tokens]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    /// The verifier's settings common to every issuer.
    pub options: TokenOptions,
    /// Back-channel logout endpoint path.
    pub backchannel_logout_path: String,
}

/// `[[token_issuer]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenIssuer {
    /// The issuer as the verifier takes it.
    pub options: TokenIssuerOptions,
    /// CAs for https key URLs (the gateway's key fetcher reads them).
    pub jwks_ca: Vec<PathBuf>,
}

impl Default for RawTokens {
    fn default() -> Self {
        Self {
            cache_entries: default_token_cache(),
            max_token_bytes: default_token_bytes(),
            backchannel_logout_path: default_logout_path(),
        }
    }
}

fn default_token_cache() -> u64 {
    100_000
}
fn default_token_bytes() -> Spanned<u64> {
    unspanned(16 * 1024)
}
fn default_logout_path() -> Spanned<String> {
    unspanned("/.spinegate/backchannel-logout".into())
}
fn default_algorithms() -> Spanned<Vec<Spanned<String>>> {
    unspanned(vec![unspanned("RS256".into()), unspanned("RS512".into())])
}
fn default_token_skew() -> HumanDuration {
    secs(60)
}
fn default_token_age() -> HumanDuration {
    secs(12 * 3600)
}
fn default_jwks_ttl() -> HumanDuration {
    secs(600)
}
fn default_jwks_staleness() -> HumanDuration {
    secs(24 * 3600)
}
fn default_jwks_refetch() -> HumanDuration {
    secs(30)
}

/// `[tokens]`, validated.
pub(crate) fn validate(ctx: &Ctx<'_>, raw: &RawTokens) -> Result<Tokens, ConfigError> {
    let path = raw.backchannel_logout_path.get_ref();
    if !path.starts_with('/') || path.contains(['?', '#']) {
        return Err(
            ctx.invalid(raw.backchannel_logout_path.span(), "backchannel_logout_path must be a path starting with /")
        );
    }
    Ok(Tokens {
        options: TokenOptions {
            cache_entries: raw.cache_entries,
            max_token_bytes: ctx.nonzero(&raw.max_token_bytes, "max_token_bytes")?.get(),
        },
        backchannel_logout_path: path.clone(),
    })
}

/// Every `[[token_issuer]]`, validated: names and `iss` values distinct, keys from one place
/// over https, asymmetric algorithms only.
pub(crate) fn issuers(ctx: &Ctx<'_>, raw: &[Spanned<RawTokenIssuer>]) -> Result<Vec<TokenIssuer>, ConfigError> {
    let mut names = HashSet::new();
    let mut issuers = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for spanned in raw {
        let t = spanned.get_ref();
        if !names.insert(t.name.get_ref().clone()) {
            return Err(ctx.invalid(t.name.span(), format!("token issuer name {:?} is used twice", t.name.get_ref())));
        }
        if !issuers.insert(t.issuer.get_ref().clone()) {
            return Err(ctx.invalid(t.issuer.span(), "another [[token_issuer]] has the same issuer"));
        }
        let keys = match (&t.jwks_url, &t.discovery_url) {
            (Some(url), None) => KeySource::Jwks(key_url(ctx, url)?),
            (None, Some(url)) => KeySource::Discovery(key_url(ctx, url)?),
            _ => return Err(ctx.invalid(spanned.span(), "give exactly one of jwks_url and discovery_url")),
        };
        if t.audiences.get_ref().is_empty() {
            return Err(ctx.invalid(t.audiences.span(), "audiences is empty: no token could be accepted"));
        }
        let mut algorithms = Vec::new();
        for alg in t.algorithms.get_ref() {
            let name = alg.get_ref();
            // Only asymmetric algorithms exist to be named: no HMAC, no `none`.
            let parsed = TokenAlgorithm::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = TokenAlgorithm::ALL.iter().map(|a| a.name()).collect();
                ctx.invalid(
                    alg.span(),
                    format!("algorithm {name:?} is not accepted; use asymmetric algorithms: {}", known.join(", ")),
                )
            })?;
            algorithms.push(parsed);
        }
        if algorithms.is_empty() {
            return Err(ctx.invalid(t.algorithms.span(), "algorithms is empty"));
        }
        out.push(TokenIssuer {
            options: TokenIssuerOptions {
                name: t.name.get_ref().clone(),
                issuer: t.issuer.get_ref().clone(),
                keys,
                audiences: t.audiences.get_ref().clone(),
                algorithms,
                clock_skew: t.clock_skew.0,
                max_token_age: t.max_token_age.0,
                required_claims: t.required_claims.clone(),
                jwks: JwksOptions {
                    ttl: t.jwks_ttl.0,
                    max_staleness: t.jwks_max_staleness.0,
                    refetch_interval: t.jwks_refetch_interval.0,
                },
            },
            jwks_ca: ctx.paths(&t.jwks_ca)?,
        });
    }
    Ok(out)
}

/// Key material travels over https, or plain http only to this machine (development).
fn key_url(ctx: &Ctx<'_>, url: &Spanned<String>) -> Result<String, ConfigError> {
    let parsed: Option<http::Uri> = url.get_ref().parse().ok();
    let loopback = |host: &str| {
        host == "localhost"
            || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    };
    let ok = parsed.as_ref().is_some_and(|u| match (u.scheme_str(), u.host()) {
        (Some("https"), Some(_)) => true,
        (Some("http"), Some(host)) => loopback(host),
        _ => false,
    });
    if ok {
        Ok(url.get_ref().clone())
    } else {
        Err(ctx.invalid(
            url.span(),
            format!("{:?}: signing keys must come over https (plain http only from localhost)", url.get_ref()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenBinding;
    use crate::testing::{MINIMAL, parse};

    #[test]
    fn token_issuers_refuse_hmac_none_and_plain_http_keys() {
        let issuer = |alg: &str, url: &str| {
            format!(
                "{MINIMAL}\n[[token_issuer]]\nname = \"ci\"\nissuer = \"https://ci.example\"\naudiences = [\"spinegate\"]\nalgorithms = [\"{alg}\"]\njwks_url = \"{url}\"\n"
            )
        };
        assert!(parse(&issuer("RS256", "https://ci.example/jwks")).is_ok());
        assert!(parse(&issuer("RS256", "http://127.0.0.1:9/jwks")).is_ok(), "loopback http for development");
        assert!(parse(&issuer("HS256", "https://ci.example/jwks")).unwrap_err().to_string().contains("not accepted"));
        assert!(parse(&issuer("none", "https://ci.example/jwks")).unwrap_err().to_string().contains("not accepted"));
        assert!(
            parse(&issuer("RS256", "http://ci.example/jwks")).unwrap_err().to_string().contains("must come over https")
        );
        let c = parse(&issuer("PS256", "https://ci.example/jwks")).unwrap();
        assert_eq!(c.token_issuers[0].options.keys, KeySource::Jwks("https://ci.example/jwks".into()));
        assert_eq!(c.routes[0].token_binding, TokenBinding::IfPresent);
    }
}
