//! `[audit]`: where the authorisation decisions are recorded, one JSON line each.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::error::ConfigError;
use crate::syntax::{Ctx, unspanned};

/// `[audit]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// File the records are appended to; standard output when absent.
    pub file: Option<Spanned<String>>,
    /// Records waiting to be written before new ones are dropped (and counted).
    #[serde(default = "default_audit_queue")]
    pub queue: Spanned<u64>,
}

/// `[audit]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit {
    /// Output file; standard output when `None`.
    pub file: Option<PathBuf>,
    /// Queue bound.
    pub queue: NonZeroUsize,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self { file: None, queue: default_audit_queue() }
    }
}

fn default_audit_queue() -> Spanned<u64> {
    unspanned(65_536)
}

/// `[audit]`, validated.
pub(crate) fn validate(ctx: &Ctx<'_>, raw: &RawAudit) -> Result<Audit, ConfigError> {
    Ok(Audit { file: raw.file.as_ref().map(|p| ctx.path(p)).transpose()?, queue: ctx.nonzero(&raw.queue, "queue")? })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::testing::parse_with as parse;

    #[test]
    fn audit_file_is_resolved_against_the_configuration() {
        let c = parse("[audit]\nfile = \"audit/decisions.jsonl\"\n").unwrap();
        assert_eq!(c.audit.file.as_deref(), Some(Path::new("/etc/spinegate/audit/decisions.jsonl")));
    }
}
