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
//! - `section/`: one file per section of the file (`admin`, `listener`, `client_auth`, …), each
//!   with the section as written, validated, the validation between them, and its tests.
//! - `syntax`: what every section's parsing shares (the error context, [`raw::HumanDuration`]).
//! - `config`: the whole file, composed of the sections; [`load`] and [`parse`] order their
//!   validation.
//! - [`error`]: [`ConfigError`] with its location.
//! - [`raw`]: the file as written, every section's raw structs under one name.
//! - [`model`]: the validated configuration, every section's types under one name.
//! - [`authz`]: authorisation settings (rules, role directory, audit, identity assertion).
//! - [`guidance`]: what refusal pages and the identity page tell people.
//! - [`lint`]: warnings about settings that load but deserve a second look.

pub mod authz;
mod config;
pub mod error;
pub mod guidance;
pub mod lint;
pub mod model;
pub mod raw;
mod section;
mod syntax;

pub use authz::{Audit, Authorization, IdentityAssertion, Ldap, MethodSet, RoleDirectory, Rule};
pub use config::{load, parse};
pub use error::{ConfigError, Location};
pub use guidance::{Contact, ContactKind, Guidance, PageText};
pub use lint::lint;
pub use model::*;

// What the sections' unit tests share: a minimal file and parsing it as if installed.
#[cfg(test)]
mod testing;
