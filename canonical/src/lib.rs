//! # spinegate-canonical
//!
//! Every part of the request target a client controls, in the one canonical form the gateway
//! judges and forwards: the path ([`path`]) and the authority ([`authority`]), and where a
//! browser says the request came from ([`origin`]). Nothing later in the gateway's pipeline reads
//! the raw target. Pure functions over `http` types: no I/O, no configuration, no clock. A
//! target that cannot be made canonical is a [`TargetError`], which is the refusal reason
//! `invalid_path` or `invalid_host` (400).
//!
//! ## Layout
//! - [`path`]: [`CanonicalPath`] — escapes decoded or kept, dot segments and repeated slashes
//!   resolved, and what cannot be made unambiguous refused.
//! - [`authority`]: [`CanonicalAuthority`] — from `:authority`, the absolute-form target or
//!   `Host`, which must agree; lower case, no trailing dot.
//! - [`origin`]: whether `Sec-Fetch-Site` or `Origin` says a request is cross-site.
//! - [`RequestTarget`]: the path, query and authority together, as routing, rules, the audit
//!   record and the upstream see them.

pub mod authority;
pub mod origin;
pub mod path;

pub use authority::{AuthorityError, CanonicalAuthority};
pub use path::{CanonicalPath, PathError};
use spinegate_vocab::Reason;

/// A request's target, canonical: what routing, rules, the audit record and the upstream see.
#[derive(Clone, Debug)]
pub struct RequestTarget {
    /// The canonical path.
    pub path: CanonicalPath,
    /// The query as sent (not judged by any rule), without the `?`.
    pub query: Option<String>,
    /// The authority the request names, if any.
    pub authority: Option<CanonicalAuthority>,
}

/// Why a request target is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The path (400 `invalid_path`).
    #[error(transparent)]
    Path(#[from] PathError),
    /// The authority (400 `invalid_host`).
    #[error(transparent)]
    Authority(#[from] AuthorityError),
}

/// The refusal for a request target that cannot be made canonical: 400 `invalid_path` or
/// `invalid_host`.
impl From<TargetError> for Reason {
    fn from(e: TargetError) -> Self {
        match e {
            TargetError::Path(_) => Reason::InvalidPath,
            TargetError::Authority(_) => Reason::InvalidHost,
        }
    }
}

impl TargetError {
    /// A stable label for logs.
    pub fn label(self) -> &'static str {
        match self {
            TargetError::Path(e) => e.label(),
            TargetError::Authority(e) => e.label(),
        }
    }
}

impl RequestTarget {
    /// The canonical target of a request with `uri` and `headers`.
    pub fn of(uri: &http::Uri, headers: &http::HeaderMap) -> Result<Self, TargetError> {
        let authority = CanonicalAuthority::of_request(uri.authority(), headers)?;
        let path = CanonicalPath::parse(uri.path())?;
        Ok(Self { path, query: uri.query().map(str::to_owned), authority })
    }

    /// The canonical path followed by the query as sent: the upstream's request target.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path.as_str()),
            None => self.path.as_str().to_owned(),
        }
    }
}
