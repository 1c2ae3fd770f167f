//! `[admin]`: the listener for `/healthz`, `/readyz`, `/metrics` and the deny-list endpoint.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::error::ConfigError;
use crate::syntax::{Ctx, HumanDuration, secs, unspanned};

/// `[admin]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Address of the admin listener (`/healthz`, `/readyz`, `/metrics`).
    #[serde(default = "default_admin_listen")]
    pub listen: Spanned<String>,
    /// Most concurrent admin connections; more are closed at once.
    #[serde(default = "default_admin_connections")]
    pub max_connections: Spanned<u64>,
    /// Time allowed for an admin request head (and idle keep-alive).
    #[serde(default = "default_admin_header_timeout")]
    pub header_read_timeout: HumanDuration,
}

/// `[admin]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admin {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub listen: SocketAddr,
    /// Most concurrent admin connections.
    pub max_connections: NonZeroUsize,
    /// Time allowed for an admin request head.
    pub header_read_timeout: Duration,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            max_connections: default_admin_connections(),
            header_read_timeout: default_admin_header_timeout(),
        }
    }
}

fn default_admin_listen() -> Spanned<String> {
    unspanned("127.0.0.1:9901".to_owned())
}
fn default_admin_connections() -> Spanned<u64> {
    unspanned(64)
}
fn default_admin_header_timeout() -> HumanDuration {
    secs(10)
}

/// `[admin]`, validated.
pub(crate) fn validate(ctx: &Ctx<'_>, raw: &RawAdmin) -> Result<Admin, ConfigError> {
    Ok(Admin {
        listen: ctx.addr(&raw.listen)?,
        max_connections: ctx.nonzero(&raw.max_connections, "max_connections")?,
        header_read_timeout: ctx.positive(&raw.header_read_timeout, "[admin] header_read_timeout")?,
    })
}
