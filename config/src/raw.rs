//! The file as written: serde structs with `deny_unknown_fields`, defaults filled in, nothing
//! resolved yet. [`crate::model`] is what the rest of spinegate reads. Each struct lives with its
//! section (`src/section/`); this module gathers them under one name.

pub use crate::config::RawConfig;
pub use crate::section::admin::RawAdmin;
pub use crate::section::chain_cache::RawChainCache;
pub use crate::section::client_auth::revocation_policy::{
    RawHash, RawMethod, RawNonce, RawRevocationPolicy, RawUnknown,
};
pub use crate::section::client_auth::{RawClientAuth, RawIdentityRule, RawIssuer};
pub use crate::section::limits::RawLimits;
pub use crate::section::listener::{RawHttp3, RawListener, RawServerCertificate};
pub use crate::section::log::RawLog;
pub use crate::section::request_headers::RawRequestHeaders;
pub use crate::section::revocation::RawRevocation;
pub use crate::section::route::RawRoute;
pub use crate::section::tokens::{RawTokenIssuer, RawTokens};
pub use crate::section::upstream::{RawUpstream, RawUpstreamTls};
pub use crate::syntax::HumanDuration;
