//! One file per section of the configuration file. Each holds the section as written (serde
//! structs with `deny_unknown_fields`, defaults filled in), its validated form, the validation
//! between them, and its unit tests. Sections import `crate::syntax` and `crate::error`, and
//! never each other in a cycle: what one needs of another (routes need the upstreams and the
//! authorization catalogue) is validated first and passed in by `crate::config`, which orders
//! the sections.
//!
//! The only imports between sections: `route` names `upstream`, `rule` and `authorization`
//! types; `rule` reads activity codes as `authorization` does; `listener`'s HTTP/3 connection
//! cap defaults as `limits`' does.

pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod authorization;
pub(crate) mod chain_cache;
pub(crate) mod client_auth;
pub(crate) mod guidance;
pub(crate) mod identity_assertion;
pub(crate) mod limits;
pub(crate) mod listener;
pub(crate) mod log;
pub(crate) mod request_headers;
pub(crate) mod revocation;
pub(crate) mod role_directory;
pub(crate) mod route;
pub(crate) mod rule;
pub(crate) mod tokens;
pub(crate) mod upstream;
