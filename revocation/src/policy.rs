//! Per-issuing-CA revocation policy: enums with verb variants, never booleans.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::IssuerId;
use crate::issuer::IssuingCa;
use crate::ocsp::CertIdHash;

/// A place a revocation answer can come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// RFC 6960 OCSP.
    Ocsp,
    /// RFC 5280 certificate revocation lists.
    Crl,
}

impl Source {
    /// A stable label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Source::Ocsp => "ocsp",
            Source::Crl => "crl",
        }
    }
}

/// What an `Unknown` answer means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownStatus {
    /// Refuse the request (503 `revocation_unavailable`). The default: fail closed.
    Refuse,
    /// Keep serving the last good answer for at most this long after it went stale.
    ServeStaleFor(Duration),
}

/// Whether OCSP requests carry a nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoncePolicy {
    /// Send a nonce and require the response to echo it.
    Send,
    /// Send none (RFC 5019 responders serve pre-signed answers and ignore nonces).
    Omit,
}

/// How OCSP requests travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OcspMethod {
    /// GET when the URL stays within 255 bytes (RFC 5019, cacheable), POST otherwise.
    Auto,
    /// Always GET.
    Get,
    /// Always POST.
    Post,
}

/// OCSP settings of one CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcspSettings {
    /// Responder URL, overriding the certificate's AIA.
    pub responder: Option<String>,
    /// Nonce policy.
    pub nonce: NoncePolicy,
    /// CertID hash.
    pub hash: CertIdHash,
    /// HTTP method.
    pub method: OcspMethod,
}

impl Default for OcspSettings {
    fn default() -> Self {
        Self { responder: None, nonce: NoncePolicy::Omit, hash: CertIdHash::Sha256, method: OcspMethod::Auto }
    }
}

/// How one issuing CA's certificates are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Sources in the order they are asked. Empty means revocation is not checked for this CA
    /// (the deny list still applies), which configuration must say explicitly.
    pub sources: Vec<Source>,
    /// What to do without an answer.
    pub unknown: UnknownStatus,
    /// OCSP settings.
    pub ocsp: OcspSettings,
    /// CRL files to load (and reload on change).
    pub crl_files: Vec<PathBuf>,
    /// CRL URLs to fetch, besides the certificates' distribution points.
    pub crl_urls: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            sources: vec![Source::Ocsp, Source::Crl],
            unknown: UnknownStatus::Refuse,
            ocsp: OcspSettings::default(),
            crl_files: Vec::new(),
            crl_urls: Vec::new(),
        }
    }
}

/// Every CA's policy.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    /// For CAs without their own.
    pub default: Arc<Policy>,
    /// Per configured issuing CA, with the CA itself (CRL files and URLs are checked against it).
    pub issuers: HashMap<IssuerId, (Arc<IssuingCa>, Arc<Policy>)>,
}

impl Policies {
    /// The policy for `issuer`.
    pub fn for_issuer(&self, issuer: IssuerId) -> &Arc<Policy> {
        self.issuers.get(&issuer).map_or(&self.default, |(_, p)| p)
    }
}
