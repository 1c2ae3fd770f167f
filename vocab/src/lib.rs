//! # spinegate-vocab
//!
//! The vocabulary of DESIGN §3 and §4 that several crates share — the token verifier, the
//! authorisation policy, the configuration and the gateway — so that each names a user, an
//! organisation, an authenticator or a refusal the same way, and cannot drift. Like
//! `rustls-pki-types` for the rustls family: small types, no I/O, no dependencies.
//!
//! ## Layout
//! - [`reason`]: [`Reason`] and its [`Disposition`], generated from one table (codes, statuses,
//!   `Retry-After`, challenges, FHIR issue types, whether audited).
//! - [`identity`]: [`UserId`], [`is_ods_code`], [`is_activity_code`], [`job_role`].
//! - [`auth`]: [`Authenticator`] (from `amr`), [`AuthMethod`], [`AssuranceLevel`].

pub mod auth;
pub mod identity;
pub mod reason;

pub use auth::{AssuranceLevel, AuthMethod, Authenticator};
pub use identity::{UserId, is_activity_code, is_ods_code, job_role};
pub use reason::{Disposition, Reason};
