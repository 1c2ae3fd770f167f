//! `[chain_cache]`: how many verified client certificate chains are remembered, and for how long.

use std::num::NonZeroU64;

use serde::Deserialize;
use toml::Spanned;

pub use spinegate_cert_cache::Options as ChainCacheOptions;

use crate::error::ConfigError;
use crate::syntax::{Ctx, HumanDuration, secs, unspanned};

/// `[chain_cache]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChainCache {
    /// Most verified chains remembered.
    #[serde(default = "default_cache_entries")]
    pub max_entries: Spanned<u64>,
    /// Longest a verification is reused.
    #[serde(default = "default_cache_ttl")]
    pub max_ttl: HumanDuration,
}

impl Default for RawChainCache {
    fn default() -> Self {
        Self { max_entries: default_cache_entries(), max_ttl: default_cache_ttl() }
    }
}

fn default_cache_entries() -> Spanned<u64> {
    unspanned(100_000)
}
fn default_cache_ttl() -> HumanDuration {
    secs(3600)
}

/// `[chain_cache]`, validated: the cache's own options.
pub(crate) fn validate(ctx: &Ctx<'_>, raw: &RawChainCache) -> Result<ChainCacheOptions, ConfigError> {
    Ok(ChainCacheOptions {
        max_entries: NonZeroU64::new(*raw.max_entries.get_ref())
            .ok_or_else(|| ctx.invalid(raw.max_entries.span(), "max_entries must be at least 1"))?,
        max_ttl: raw.max_ttl.0,
    })
}
