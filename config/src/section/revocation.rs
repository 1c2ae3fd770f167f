//! `[revocation]`: the revocation checker's caches and fetches, the emergency deny list and the
//! admin deny-list endpoint's token. Which sources each CA is checked with is
//! `[client_auth.revocation]`'s business.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

pub use spinegate_revocation::Options as RevocationOptions;

use crate::error::ConfigError;
use crate::syntax::{Ctx, HumanDuration, secs, unspanned};

/// `[revocation]`: caches, fetches and the deny list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRevocation {
    /// Most certificates with a cached OCSP answer.
    #[serde(default = "default_revocation_entries")]
    pub max_entries: Spanned<u64>,
    /// Longest an OCSP answer is used after fetching (and the life of answers without
    /// nextUpdate).
    #[serde(default = "default_revocation_max_age")]
    pub max_age: HumanDuration,
    /// Refresh recently used answers this long before they end.
    #[serde(default = "default_refresh_before")]
    pub refresh_before: HumanDuration,
    /// "Recently used".
    #[serde(default = "default_recently_seen")]
    pub recently_seen: HumanDuration,
    /// Deadline of one OCSP fetch (CRL fetches get at least 30 s).
    #[serde(default = "default_fetch_timeout")]
    pub fetch_timeout: HumanDuration,
    /// Largest OCSP response accepted, bytes.
    #[serde(default = "default_ocsp_bytes")]
    pub max_ocsp_response_bytes: u64,
    /// Largest CRL accepted, bytes.
    #[serde(default = "default_crl_bytes")]
    pub max_crl_bytes: u64,
    /// Tolerated clock difference with responders and CRL issuers.
    #[serde(default = "default_skew")]
    pub clock_skew: HumanDuration,
    /// After a failed fetch, do not ask the same source again for this long.
    #[serde(default = "default_retry_after_failure")]
    pub retry_after_failure: HumanDuration,
    /// Fetch a CRL this long before its nextUpdate.
    #[serde(default = "default_crl_refresh_before")]
    pub crl_refresh_before: HumanDuration,
    /// Emergency deny-list file, hot-reloaded.
    pub deny_list: Option<Spanned<String>>,
    /// File holding the bearer token for the admin deny-list endpoint; the endpoint is off
    /// without it.
    pub admin_token_file: Option<Spanned<String>>,
}

/// `[revocation]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// Cache and fetch tuning.
    pub options: RevocationOptions,
    /// The emergency deny-list file.
    pub deny_list: Option<PathBuf>,
    /// The admin endpoint's bearer-token file.
    pub admin_token_file: Option<PathBuf>,
}

impl Default for RawRevocation {
    fn default() -> Self {
        Self {
            max_entries: default_revocation_entries(),
            max_age: default_revocation_max_age(),
            refresh_before: default_refresh_before(),
            recently_seen: default_recently_seen(),
            fetch_timeout: default_fetch_timeout(),
            max_ocsp_response_bytes: default_ocsp_bytes(),
            max_crl_bytes: default_crl_bytes(),
            clock_skew: default_skew(),
            retry_after_failure: default_retry_after_failure(),
            crl_refresh_before: default_crl_refresh_before(),
            deny_list: None,
            admin_token_file: None,
        }
    }
}

fn default_revocation_entries() -> Spanned<u64> {
    unspanned(200_000)
}
fn default_revocation_max_age() -> HumanDuration {
    secs(3600)
}
fn default_refresh_before() -> HumanDuration {
    secs(300)
}
fn default_recently_seen() -> HumanDuration {
    secs(3600)
}
fn default_fetch_timeout() -> HumanDuration {
    secs(5)
}
fn default_ocsp_bytes() -> u64 {
    64 * 1024
}
fn default_crl_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_skew() -> HumanDuration {
    secs(300)
}
fn default_retry_after_failure() -> HumanDuration {
    secs(10)
}
fn default_crl_refresh_before() -> HumanDuration {
    secs(600)
}

/// `[revocation]`, validated.
pub(crate) fn validate(ctx: &Ctx<'_>, raw: &RawRevocation) -> Result<Revocation, ConfigError> {
    Ok(Revocation {
        options: RevocationOptions {
            max_entries: *raw.max_entries.get_ref(),
            max_age: raw.max_age.0,
            refresh_before: raw.refresh_before.0,
            recently_seen: raw.recently_seen.0,
            fetch_timeout: raw.fetch_timeout.0,
            max_ocsp_response_bytes: usize::try_from(raw.max_ocsp_response_bytes).unwrap_or(usize::MAX),
            max_crl_bytes: usize::try_from(raw.max_crl_bytes).unwrap_or(usize::MAX),
            clock_skew: raw.clock_skew.0,
            retry_after_failure: raw.retry_after_failure.0,
            crl_refresh_before: raw.crl_refresh_before.0,
            ..RevocationOptions::default()
        },
        deny_list: raw.deny_list.as_ref().map(|p| ctx.path(p)).transpose()?,
        admin_token_file: raw.admin_token_file.as_ref().map(|p| ctx.path(p)).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use crate::testing::parse_with;

    #[test]
    fn revocation_settings_compare_by_every_option() {
        let a = parse_with("[revocation]\nclock_skew = \"1m\"\n").unwrap().revocation;
        assert_eq!(a, parse_with("[revocation]\nclock_skew = \"60s\"\n").unwrap().revocation);
        assert_ne!(a, parse_with("[revocation]\nclock_skew = \"2m\"\n").unwrap().revocation);
        assert_ne!(a, parse_with("[revocation]\nclock_skew = \"1m\"\ndeny_list = \"deny.txt\"\n").unwrap().revocation);
        let mut polled = a.clone();
        polled.options.file_poll_interval *= 2;
        assert_ne!(a, polled, "options the file cannot set count too");
    }
}
