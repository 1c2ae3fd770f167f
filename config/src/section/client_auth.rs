//! `[client_auth]`: how client certificates are validated and read — trust anchors and
//! intermediates, chain limits, the identity rule (`[client_auth.identity]`), the revocation policy
//! (`[client_auth.revocation]`, read by the child module `revocation_policy`) and per-CA overrides
//! of both (`[[client_auth.issuer]]`).

pub(crate) mod revocation_policy;

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use self::revocation_policy::{RawRevocationPolicy, RevocationPolicy};
use crate::error::ConfigError;
use crate::syntax::{Ctx, HumanDuration, secs, unspanned};

/// `[client_auth]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientAuth {
    /// PEM files of trusted root certificates.
    #[serde(default)]
    pub trust_anchors: Vec<Spanned<String>>,
    /// PEM files of intermediate CA certificates to build paths with, besides those the client sends.
    #[serde(default)]
    pub intermediates: Vec<Spanned<String>>,
    /// Most certificates in a path, counting leaf and trust anchor.
    #[serde(default = "default_max_chain_length")]
    pub max_chain_length: Spanned<u64>,
    /// Most bytes the client may present in its certificate chain.
    #[serde(default = "default_max_chain_bytes")]
    pub max_chain_bytes: Spanned<u64>,
    /// `"require"` or `"require_if_present"`.
    #[serde(default = "default_client_auth_eku")]
    pub client_auth_eku: EkuPolicy,
    /// `"leaf"` or `"chain"`: which certificates of the path are checked for revocation.
    #[serde(default = "default_revocation_depth")]
    pub revocation_depth: RevocationDepth,
    /// How long before notAfter users are warned.
    #[serde(default = "default_expiry_warning")]
    pub expiry_warning: HumanDuration,
    /// The identity rule for issuers without their own.
    #[serde(default)]
    pub identity: RawIdentityRule,
    /// The revocation policy for issuers without their own.
    #[serde(default)]
    pub revocation: RawRevocationPolicy,
    /// `[[client_auth.issuer]]`.
    #[serde(default)]
    pub issuer: Vec<Spanned<RawIssuer>>,
}

/// How the user id is read from a certificate.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentityRule {
    /// `"subject_cn_prefix"`, `"subject_serial_number"` or `"subject_uid"`.
    #[serde(default = "default_user_id")]
    pub user_id: UserIdField,
    /// Separator after the user id in the CN (for `subject_cn_prefix`).
    #[serde(default = "default_separator")]
    pub separator: Spanned<String>,
    /// The subject must contain `OU=<this>`; empty string: no requirement.
    #[serde(default = "default_ou")]
    pub subject_ou: String,
    /// The subject must contain `O=<this>`; empty string: no requirement.
    #[serde(default = "default_o")]
    pub subject_o: String,
}

/// `[[client_auth.issuer]]`: settings for the certificates one CA issues.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuer {
    /// Name in logs and metrics.
    pub name: Spanned<String>,
    /// PEM file with the issuing CA's certificate.
    pub certificate: Spanned<String>,
    /// Identity rule for this CA's certificates; the `[client_auth.identity]` rule when absent.
    pub identity: Option<RawIdentityRule>,
    /// Revocation policy for this CA's certificates; unset keys come from
    /// `[client_auth.revocation]`.
    pub revocation: Option<RawRevocationPolicy>,
}

/// `[client_auth]`: how client certificates are validated and read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAuth {
    /// PEM files of trust anchors. None: every client certificate is refused.
    pub trust_anchors: Vec<PathBuf>,
    /// PEM files of intermediates to build paths with.
    pub intermediates: Vec<PathBuf>,
    /// Most certificates in a path, leaf and anchor included (at least 2).
    pub max_chain_length: NonZeroUsize,
    /// Most bytes of certificates a client may present.
    pub max_chain_bytes: NonZeroUsize,
    /// EKU requirement on the leaf.
    pub client_auth_eku: EkuPolicy,
    /// Which certificates of the path are checked for revocation.
    pub revocation_depth: RevocationDepth,
    /// Warn users this long before their certificate ends.
    pub expiry_warning: Duration,
    /// Identity rule for certificates from CAs without their own.
    pub identity: IdentityRule,
    /// Revocation policy for certificates from CAs without their own.
    pub revocation: RevocationPolicy,
    /// Per-issuing-CA settings.
    pub issuers: Vec<Issuer>,
}

/// Extended key usage policy for client certificates.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EkuPolicy {
    /// The leaf must carry EKU clientAuth.
    Require,
    /// A leaf without an EKU extension is accepted; one with it must list clientAuth.
    RequireIfPresent,
}

/// Which certificates of a client's path are checked for revocation.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RevocationDepth {
    /// The client certificate only (as nginx's `ssl_ocsp leaf`).
    Leaf,
    /// The client certificate and every intermediate CA, each under its issuer's policy.
    Chain,
}

/// Which subject attribute carries the user id.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UserIdField {
    /// The CN up to the separator: `CN=<user id>_<Surname>_<Forename>`.
    SubjectCnPrefix,
    /// The subject serialNumber attribute (2.5.4.5).
    SubjectSerialNumber,
    /// The subject UID attribute (0.9.2342.19200300.100.1.1).
    SubjectUid,
}

/// Where the user id comes from, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserIdSource {
    /// The CN up to `separator`.
    SubjectCnPrefix {
        /// The separator (one character).
        separator: char,
    },
    /// The subject serialNumber attribute.
    SubjectSerialNumber,
    /// The subject UID attribute.
    SubjectUid,
}

/// How to read a user's identity from a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityRule {
    /// Where the 12-digit user id is.
    pub user_id: UserIdSource,
    /// The subject must contain this OU.
    pub require_ou: Option<String>,
    /// The subject must contain this O.
    pub require_o: Option<String>,
}

/// Settings for one issuing CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issuer {
    /// Name in logs and metrics.
    pub name: String,
    /// PEM file of the CA certificate (also used to build paths).
    pub certificate: PathBuf,
    /// How its certificates carry identity.
    pub identity: IdentityRule,
    /// How its certificates are checked for revocation.
    pub revocation: RevocationPolicy,
}

impl ClientAuth {
    /// The files a reload depends on: trust anchors, intermediates, then each issuer's
    /// certificate. CRL files are not among them: the revocation checker polls those itself.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        let certificates = self.trust_anchors.iter().chain(&self.intermediates).map(PathBuf::as_path);
        certificates.chain(self.issuers.iter().map(|i| i.certificate.as_path()))
    }
}

impl Default for RawClientAuth {
    fn default() -> Self {
        Self {
            trust_anchors: Vec::new(),
            intermediates: Vec::new(),
            max_chain_length: default_max_chain_length(),
            max_chain_bytes: default_max_chain_bytes(),
            client_auth_eku: default_client_auth_eku(),
            revocation_depth: default_revocation_depth(),
            expiry_warning: default_expiry_warning(),
            identity: RawIdentityRule::default(),
            revocation: RawRevocationPolicy::default(),
            issuer: Vec::new(),
        }
    }
}

impl Default for RawIdentityRule {
    fn default() -> Self {
        Self {
            user_id: default_user_id(),
            separator: default_separator(),
            subject_ou: default_ou(),
            subject_o: default_o(),
        }
    }
}

fn default_max_chain_length() -> Spanned<u64> {
    unspanned(4)
}
fn default_max_chain_bytes() -> Spanned<u64> {
    unspanned(16 * 1024)
}
fn default_revocation_depth() -> RevocationDepth {
    RevocationDepth::Leaf
}
fn default_client_auth_eku() -> EkuPolicy {
    EkuPolicy::Require
}
fn default_expiry_warning() -> HumanDuration {
    secs(90 * 86_400)
}
fn default_user_id() -> UserIdField {
    UserIdField::SubjectCnPrefix
}
fn default_separator() -> Spanned<String> {
    unspanned("_".to_owned())
}
fn default_ou() -> String {
    "People".to_owned()
}
fn default_o() -> String {
    "nhs".to_owned()
}

/// `[client_auth]`, validated.
pub(crate) fn validate(ctx: &Ctx<'_>, raw: &RawClientAuth) -> Result<ClientAuth, ConfigError> {
    let max_chain_length = ctx.nonzero(&raw.max_chain_length, "max_chain_length")?;
    // webpki builds paths of at most six intermediates plus leaf and anchor.
    if !(2..=8).contains(&max_chain_length.get()) {
        return Err(ctx.invalid(
            raw.max_chain_length.span(),
            "max_chain_length counts the leaf and the trust anchor: it must be between 2 and 8",
        ));
    }
    let default_identity = identity_rule(ctx, &raw.identity)?;
    if let Some(files) = &raw.revocation.crl_files {
        return Err(ctx.invalid(
            files.span(),
            "crl_files belong under a [[client_auth.issuer]]: a CRL is checked against its issuer's certificate",
        ));
    }
    if let Some(urls) = &raw.revocation.crl_urls {
        return Err(ctx.invalid(
            urls.span(),
            "crl_urls belong under a [[client_auth.issuer]]: a CRL is checked against its issuer's certificate",
        ));
    }
    let default_revocation = revocation_policy::validate(ctx, &raw.revocation, &RawRevocationPolicy::default())?;
    let mut names = HashSet::new();
    let mut issuers = Vec::with_capacity(raw.issuer.len());
    for i in &raw.issuer {
        let i = i.get_ref();
        if !names.insert(i.name.get_ref().clone()) {
            return Err(ctx.invalid(i.name.span(), format!("issuer name {:?} is used twice", i.name.get_ref())));
        }
        issuers.push(Issuer {
            name: i.name.get_ref().clone(),
            certificate: ctx.path(&i.certificate)?,
            identity: match &i.identity {
                Some(rule) => identity_rule(ctx, rule)?,
                None => default_identity.clone(),
            },
            revocation: match &i.revocation {
                Some(own) => revocation_policy::validate(ctx, own, &raw.revocation)?,
                None => default_revocation.clone(),
            },
        });
    }
    Ok(ClientAuth {
        trust_anchors: ctx.paths(&raw.trust_anchors)?,
        intermediates: ctx.paths(&raw.intermediates)?,
        max_chain_length,
        max_chain_bytes: ctx.nonzero(&raw.max_chain_bytes, "max_chain_bytes")?,
        client_auth_eku: raw.client_auth_eku,
        revocation_depth: raw.revocation_depth,
        expiry_warning: raw.expiry_warning.0,
        identity: default_identity,
        revocation: default_revocation,
        issuers,
    })
}

fn identity_rule(ctx: &Ctx<'_>, raw: &RawIdentityRule) -> Result<IdentityRule, ConfigError> {
    let user_id = match raw.user_id {
        UserIdField::SubjectCnPrefix => {
            let mut chars = raw.separator.get_ref().chars();
            match (chars.next(), chars.next()) {
                (Some(separator), None) if !separator.is_ascii_digit() => UserIdSource::SubjectCnPrefix { separator },
                _ => {
                    return Err(
                        ctx.invalid(raw.separator.span(), "separator must be exactly one character, and not a digit")
                    );
                }
            }
        }
        UserIdField::SubjectSerialNumber => UserIdSource::SubjectSerialNumber,
        UserIdField::SubjectUid => UserIdSource::SubjectUid,
    };
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(IdentityRule { user_id, require_ou: non_empty(&raw.subject_ou), require_o: non_empty(&raw.subject_o) })
}

#[cfg(test)]
mod tests {
    use crate::testing::{MINIMAL, parse};

    #[test]
    fn chain_length_below_two_is_refused() {
        let text =
            MINIMAL.replace("trust_anchors = [\"root.pem\"]", "trust_anchors = [\"root.pem\"]\nmax_chain_length = 1");
        assert!(parse(&text).unwrap_err().to_string().contains("between 2 and 8"));
    }
}
