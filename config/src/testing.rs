//! What the unit tests of every section share: a minimal valid file to extend, and parsing as if
//! it were `/etc/spinegate/spinegate.toml`.

use std::path::Path;

use crate::{Config, ConfigError};

/// A valid configuration with one route (`patient`, no rules), for tests to extend.
pub(crate) const MINIMAL: &str = r#"
[[listener]]
name = "clinical"
listen = "127.0.0.1:8443"
[[listener.certificate]]
cert = "server.pem"
key = "server.key"

[client_auth]
trust_anchors = ["root.pem"]

[[upstream]]
name = "pds"
endpoints = ["http://127.0.0.1:9000"]

[[route]]
name = "patient"
path_prefix = "/Patient/"
upstream = "pds"
"#;

/// `text`, as if read from `/etc/spinegate/spinegate.toml`.
pub(crate) fn parse(text: &str) -> Result<Config, ConfigError> {
    crate::parse(text, Some(Path::new("/etc/spinegate/spinegate.toml")), Path::new("/etc/spinegate"))
}

/// [`MINIMAL`] followed by `extra`, as if read from `/etc/spinegate/spinegate.toml`.
pub(crate) fn parse_with(extra: &str) -> Result<Config, ConfigError> {
    parse(&format!("{MINIMAL}\n{extra}"))
}
