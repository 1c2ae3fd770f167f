//! # spinegate-config
//!
//! The only crate that knows the configuration file format. A TOML file is read once into raw
//! serde structs ([`raw`], `deny_unknown_fields` everywhere), then validated into the typed
//! [`Config`] ([`model`]): durations parsed, names resolved to indices, relative paths made
//! absolute against the file's directory, and cross-references checked. Every error says file,
//! line and column.
//!
//! Material the file points at (certificates, keys) is loaded by the gateway, not here, so this
//! crate stays free of cryptography; `spinegate check-config` runs both steps.
//!
//! ## Layout
//! - [`error`]: [`ConfigError`] with its location.
//! - [`raw`]: the file as written.
//! - [`model`]: the validated configuration.
//! - [`authz`]: authorisation settings (rules, role directory, audit, identity assertion).
//! - [`guidance`]: what refusal pages and the identity page tell people.
//! - `validate`: raw -> model.
//! - [`lint`]: warnings about settings that load but deserve a second look.

pub mod authz;
pub mod error;
pub mod guidance;
pub mod lint;
pub mod model;
pub mod raw;
mod validate;

pub use authz::{Audit, Authorization, IdentityAssertion, Ldap, MethodSet, RoleDirectory, Rule};
pub use error::{ConfigError, Location};
pub use guidance::{Contact, ContactKind, Guidance, PageText};
pub use lint::lint;
pub use model::*;

use std::path::Path;

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, Some(path), base)
}

/// Validates configuration text. `origin` names the file in errors; relative paths in the text are
/// resolved against `base`.
pub fn parse(text: &str, origin: Option<&Path>, base: &Path) -> Result<Config, ConfigError> {
    validate::validate(text, origin, base)
}
