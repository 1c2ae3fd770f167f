//! # spinegate-devpki
//!
//! Development and test PKI, in code. Tests and `spinegate dev` never read checked-in keys: every
//! CA, smartcard certificate and server certificate is minted here with rcgen, NHS-style —
//! a root, an issuing CA, and smartcard leaves with `CN=<user id>_<Surname>_<Forename>, OU=People,
//! O=nhs` and EKU clientAuth on RSA-2048 keys.
//!
//! It also holds the rest of the development world that is not the gateway: the demo
//! patient-data service that `spinegate dev`, the tests and the benchmarks put behind the gateway,
//! and the [`Manifest`] that describes a running dev world to its clients.
//!
//! ## Layout
//! - [`ca`]: [`Ca`] (root or intermediate) and the certificates it issues ([`Issued`]).
//! - [`leaf`]: [`LeafSpec`], what a leaf certificate should say (smartcard or server).
//! - [`world`]: [`DevWorld`], the dev PKI on disk, created or reused.
//! - [`manifest`]: [`Manifest`], `DIR/manifest.json`.
//! - [`demo_service`]: the demo patient-data service (FHIR-flavoured JSON).
//! - [`crl`]: CRLs (full, delta, partitioned) signed by a [`Ca`].
//! - [`ocsp`]: OCSP responses and a controllable OCSP responder.
//! - [`token`]: an OpenID token issuer with a JWK Set and discovery endpoint.
//! - [`nhs_number`]: NHS number check digits.
//! - [`corpus`]: what the public-corpus tests share: corpus location, exceptions files, tallies.
//! - [`population`]: a load-test population of smartcard and token users, minted to a directory.
//! - [`serve`]: the accept loop the dev OCSP responder and token issuer share.
//! - `asn1`: DER times, algorithm identifiers and signing for the CRL and OCSP builders.

mod asn1;
pub mod ca;
pub mod corpus;
pub mod crl;
pub mod demo_service;
pub mod leaf;
pub mod manifest;
pub mod nhs_number;
pub mod ocsp;
pub mod population;
pub mod serve;
pub mod token;
pub mod world;

pub use ca::{Ca, Issued, KeyKind};
pub use leaf::LeafSpec;
pub use manifest::{Manifest, ManifestRole, ManifestUser};
pub use world::{DemoRole, DevUser, DevWorld, UserState};

/// Errors from minting or storing development PKI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// rcgen refused the parameters or key.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A stored file is not what it should be.
    #[error("{}: {message}", path.display())]
    Corrupt {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A path as a TOML basic string (see [`toml_string`]).
pub fn toml_path(path: &std::path::Path) -> String {
    toml_string(&path.display().to_string())
}

/// A TOML basic string: `s` quoted, with quotes, backslashes and control characters escaped (for
/// configuration files generated from paths and URLs).
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
