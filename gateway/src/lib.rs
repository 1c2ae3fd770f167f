//! # spinegate
//!
//! A TLS-terminating authentication gateway for patient-data services. A clinical system connects
//! with a smartcard certificate; spinegate validates the chain to the configured NHS-style roots
//! (remembering verified chains), re-checks the certificate on every request — expiry, trust,
//! revocation — routes by host and path, and proxies to the patient-data service with verified
//! identity headers in place of anything the client sent.
//!
//! ## Layout
//! - [`server`]: [`Gateway`]: listeners, connections, TLS handshakes, drain.
//! - [`tls`]: rustls server configuration, SNI selection, the client-certificate verifier.
//! - [`trust`]: path validation and identity extraction ([`trust::TrustStore`]).
//! - [`identity`]: user ids and the identity rules per issuing CA.
//! - [`peer`]: a connection's certificate, resolved once and re-checked per request.
//! - [`canonical`]: the request target (path, authority) in the one form it is judged in.
//! - [`conn`]: a client connection: who is on it, what it is doing, the timers bounding it.
//! - [`pipeline`]: the per-request steps; [`auth`] is who a request acts as.
//! - [`routing`], [`proxy`]: route table, upstream clusters and the header contract.
//! - [`error`]: the one mapping from refusal [`Reason`] to response; [`guidance`] words it for
//!   people (HTML page, FHIR `OperationOutcome`, problem+json) and serves the identity page.
//! - [`admin`], [`metrics`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`runtime`]: the snapshot requests read, built from a configuration.
//! - [`revocation`]: the revocation state wired in: policies, fetcher, metrics.
//! - [`material`]: loading PEM certificates and keys.
//! - [`clock`]: time as a parameter.
//! - [`dev`]: `spinegate dev`, the embedded development world.

pub mod admin;
pub mod assertion;
pub mod audit;
pub mod auth;
pub mod canonical;
pub mod clock;
pub mod conn;
pub mod dev;
pub mod directory;
pub mod error;
pub mod guidance;
pub mod http3;
pub mod identity;
pub mod material;
pub mod metrics;
pub mod peer;
pub mod pipeline;
pub mod proxy;
pub mod reload;
pub mod revocation;
pub mod routing;
pub mod runtime;
pub mod server;
pub mod tls;
pub mod trust;

pub use error::Reason;
pub use reload::ReloadError;
pub use server::{Gateway, Options, StartError};
