//! The validated configuration: what the gateway reads. Every value here has been checked; paths
//! are absolute (or relative to the working directory when the text had no file). Each type
//! lives with its section (`src/section/`); this module gathers them under one name.

pub use crate::config::Config;
pub use crate::section::admin::Admin;
pub use crate::section::chain_cache::ChainCacheOptions;
pub use crate::section::client_auth::revocation_policy::{
    CertIdHash, NoncePolicy, OcspMethod, OcspSettings, RevocationPolicy, Source, UnknownStatus,
};
pub use crate::section::client_auth::{
    ClientAuth, EkuPolicy, IdentityRule, Issuer, RevocationDepth, UserIdField, UserIdSource,
};
pub use crate::section::limits::Limits;
pub use crate::section::listener::{
    Alpn, CertificateProblems, ClientCertificatePolicy, Http3, Listener, ServerCertificate, SessionResumption,
    TlsVersion,
};
pub use crate::section::log::{Log, LogFormat};
pub use crate::section::request_headers::RequestHeaders;
pub use crate::section::revocation::{Revocation, RevocationOptions};
pub use crate::section::route::{CrossSite, PathParameters, Route, TokenBinding};
pub use crate::section::tokens::{
    JwksOptions, KeySource, TokenAlgorithm, TokenIssuer, TokenIssuerOptions, TokenOptions, Tokens,
};
pub use crate::section::upstream::{Endpoint, HostHeader, Upstream, UpstreamProtocol, UpstreamTls};
