//! Per-issuing-CA revocation policy.

use std::time::Duration;

/// A place a revocation answer can come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// RFC 6960 OCSP.
    Ocsp,
    /// RFC 5280 certificate revocation lists.
    Crl,
}

/// What an `Unknown` answer means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownStatus {
    /// Refuse the request (503 `revocation_unavailable`). The default: fail closed.
    Refuse,
    /// Keep serving the last good answer for at most this long after it went stale.
    ServeStaleFor(Duration),
}

/// How one issuing CA's certificates are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Sources in the order they are asked. Empty means revocation is not checked for this CA,
    /// which must be said explicitly in configuration.
    pub sources: Vec<Source>,
    /// What to do without an answer.
    pub unknown: UnknownStatus,
}

impl Default for Policy {
    fn default() -> Self {
        Self { sources: vec![Source::Ocsp, Source::Crl], unknown: UnknownStatus::Refuse }
    }
}
