//! `[client_auth.revocation]` and `[client_auth.issuer.revocation]`: how a CA's certificates are
//! checked for revocation. The `[client_auth]` table's policy is every issuer's fallback, key by
//! key, so both are read here by one function.

use serde::Deserialize;
use toml::Spanned;

pub use spinegate_revocation::{
    NoncePolicy, OcspMethod, OcspSettings, Policy as RevocationPolicy, Source, UnknownStatus, ocsp::CertIdHash,
};

use crate::error::ConfigError;
use crate::syntax::{Ctx, HumanDuration};

/// `[client_auth.revocation]` and `[client_auth.issuer.revocation]`. Every key is optional: an
/// issuer's unset keys come from `[client_auth.revocation]`, whose unset keys have the defaults.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawRevocationPolicy {
    /// Subset of `"ocsp"`, `"crl"`, in the order asked; `[]` turns checking off for the CA.
    pub sources: Option<Spanned<Vec<Spanned<String>>>>,
    /// `"refuse"` or `{ serve_stale_for = "4h" }`.
    pub unknown: Option<RawUnknown>,
    /// OCSP responder URL overriding the certificates' AIA.
    pub ocsp_responder: Option<Spanned<String>>,
    /// `"send"` or `"omit"`.
    pub ocsp_nonce: Option<RawNonce>,
    /// `"sha256"` or `"sha1"`.
    pub ocsp_hash: Option<RawHash>,
    /// `"auto"`, `"get"` or `"post"`.
    pub ocsp_method: Option<RawMethod>,
    /// CRL files (issuer entries only).
    pub crl_files: Option<Spanned<Vec<Spanned<String>>>>,
    /// CRL URLs besides the certificates' distribution points (issuer entries only).
    pub crl_urls: Option<Spanned<Vec<Spanned<String>>>>,
}

/// What `Unknown` means.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawUnknown {
    /// Refuse (503).
    Refuse,
    /// Serve the last good answer this long after it went stale.
    ServeStaleFor(HumanDuration),
}

/// OCSP nonce policy.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum RawNonce {
    /// Send and check.
    Send,
    /// Send none.
    Omit,
}

/// OCSP CertID hash.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum RawHash {
    /// SHA-256.
    Sha256,
    /// SHA-1.
    Sha1,
}

/// OCSP HTTP method.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum RawMethod {
    /// GET when short enough, else POST.
    Auto,
    /// GET.
    Get,
    /// POST.
    Post,
}

/// A policy from `own`, with unset keys taken from `fallback`, then from the defaults.
pub(crate) fn validate(
    ctx: &Ctx<'_>,
    own: &RawRevocationPolicy,
    fallback: &RawRevocationPolicy,
) -> Result<RevocationPolicy, ConfigError> {
    let defaults = RevocationPolicy::default();
    let sources = match own.sources.as_ref().or(fallback.sources.as_ref()) {
        None => defaults.sources,
        Some(list) => {
            let mut out = Vec::new();
            for s in list.get_ref() {
                let source = match s.get_ref().as_str() {
                    "ocsp" => Source::Ocsp,
                    "crl" => Source::Crl,
                    other => {
                        return Err(ctx.invalid(
                            s.span(),
                            format!("unknown revocation source {other:?}; use \"ocsp\" and/or \"crl\""),
                        ));
                    }
                };
                if out.contains(&source) {
                    return Err(ctx.invalid(s.span(), format!("source {:?} is listed twice", s.get_ref())));
                }
                out.push(source);
            }
            out
        }
    };
    let unknown = match own.unknown.or(fallback.unknown) {
        None | Some(RawUnknown::Refuse) => UnknownStatus::Refuse,
        Some(RawUnknown::ServeStaleFor(d)) => UnknownStatus::ServeStaleFor(d.0),
    };
    let responder = match own.ocsp_responder.as_ref().or(fallback.ocsp_responder.as_ref()) {
        Some(url) => Some(http_url(ctx, url)?),
        None => None,
    };
    let ocsp = OcspSettings {
        responder,
        nonce: match own.ocsp_nonce.or(fallback.ocsp_nonce) {
            Some(RawNonce::Send) => NoncePolicy::Send,
            Some(RawNonce::Omit) | None => NoncePolicy::Omit,
        },
        hash: match own.ocsp_hash.or(fallback.ocsp_hash) {
            Some(RawHash::Sha1) => CertIdHash::Sha1,
            Some(RawHash::Sha256) | None => CertIdHash::Sha256,
        },
        method: match own.ocsp_method.or(fallback.ocsp_method) {
            Some(RawMethod::Get) => OcspMethod::Get,
            Some(RawMethod::Post) => OcspMethod::Post,
            Some(RawMethod::Auto) | None => OcspMethod::Auto,
        },
    };
    let crl_files = match &own.crl_files {
        Some(files) => ctx.paths(files.get_ref())?,
        None => Vec::new(),
    };
    let crl_urls = match &own.crl_urls {
        Some(urls) => urls.get_ref().iter().map(|u| http_url(ctx, u)).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    Ok(RevocationPolicy { sources, unknown, ocsp, crl_files, crl_urls })
}

fn http_url(ctx: &Ctx<'_>, url: &Spanned<String>) -> Result<String, ConfigError> {
    let ok = url.get_ref().parse::<http::Uri>().is_ok_and(|u| u.scheme_str() == Some("http") && u.host().is_some());
    if ok {
        Ok(url.get_ref().clone())
    } else {
        Err(ctx.invalid(
            url.span(),
            format!(
                "{:?} is not an http:// URL (OCSP and CRL fetches are plain HTTP: the data is signed)",
                url.get_ref()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::testing::{MINIMAL, parse};

    #[test]
    fn revocation_policy_defaults_fail_closed_and_issuers_inherit_unset_keys() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.client_auth.revocation.sources, vec![Source::Ocsp, Source::Crl]);
        assert_eq!(c.client_auth.revocation.unknown, UnknownStatus::Refuse);

        let text = MINIMAL.replace(
            "trust_anchors = [\"root.pem\"]",
            "trust_anchors = [\"root.pem\"]\n[client_auth.revocation]\nsources = [\"crl\"]\nunknown = { serve_stale_for = \"4h\" }\n\
             [[client_auth.issuer]]\nname = \"ca\"\ncertificate = \"ca.pem\"\n[client_auth.issuer.revocation]\n\
             ocsp_nonce = \"send\"\ncrl_files = [\"ca.crl\"]\n",
        );
        let c = parse(&text).unwrap();
        let issuer = &c.client_auth.issuers[0].revocation;
        assert_eq!(issuer.sources, vec![Source::Crl], "inherited from [client_auth.revocation]");
        assert_eq!(issuer.unknown, UnknownStatus::ServeStaleFor(std::time::Duration::from_secs(4 * 3600)));
        assert_eq!(issuer.ocsp.nonce, NoncePolicy::Send);
        assert_eq!(issuer.crl_files, vec![Path::new("/etc/spinegate/ca.crl").to_path_buf()]);
    }

    #[test]
    fn crl_files_without_an_issuer_and_non_http_urls_are_refused() {
        let text = MINIMAL.replace(
            "trust_anchors = [\"root.pem\"]",
            "trust_anchors = [\"root.pem\"]\n[client_auth.revocation]\ncrl_files = [\"x.crl\"]",
        );
        assert!(parse(&text).unwrap_err().to_string().contains("belong under a [[client_auth.issuer]]"));
        let text = MINIMAL.replace(
            "trust_anchors = [\"root.pem\"]",
            "trust_anchors = [\"root.pem\"]\n[client_auth.revocation]\nocsp_responder = \"https://ocsp.example\"",
        );
        assert!(parse(&text).unwrap_err().to_string().contains("not an http:// URL"));
        let text = MINIMAL.replace(
            "trust_anchors = [\"root.pem\"]",
            "trust_anchors = [\"root.pem\"]\n[client_auth.revocation]\nsources = [\"ocsp\", \"ldap\"]",
        );
        assert!(parse(&text).unwrap_err().to_string().contains("unknown revocation source"));
    }
}
