//! # spinegate
//!
//! A TLS-terminating authentication gateway for patient-data services. A clinical system connects
//! with a smartcard certificate or a Care Identity token; spinegate validates the chain to the
//! configured NHS-style roots (remembering verified chains), re-checks the certificate on every
//! request — expiry, trust, revocation — authorises the user's role for the route and
//! organisation, and proxies to the patient-data service with verified identity headers in place
//! of anything the client sent. The leaf crates do the judging (`spinegate-token`,
//! `spinegate-authz`, `spinegate-revocation`, `spinegate-cert-cache`, `spinegate-canonical`, with
//! the shared words in `spinegate-vocab`) and `spinegate-guidance` words refusals for people; this
//! crate wires them to sockets, files and the clock.
//!
//! ## Layout, from the edge inwards
//! - [`serve`]: [`Gateway`] — the lifecycle, and connections over TCP and QUIC.
//! - [`conn`]: a client connection: who is on it, what it is doing, the timers bounding it.
//! - `pipeline`: one request as named phases (admission, endpoints, route, authenticate,
//!   authorise, audit, forward, respond).
//! - `auth`: who a request acts as, and the gateway's side of bearer tokens.
//! - [`directory`]: smartcard users' role profiles (file, LDAP).
//! - `routing`, `proxy`: the route table, upstream clusters, the header contract, request bodies.
//! - `reason`: every failure as a refusal reason.
//! - [`tls`], [`trust`], [`peer`], [`identity`]: TLS configuration, path validation, a
//!   connection's certificate and whose it is.
//! - [`runtime`]: the state requests read, built from a configuration; `reload` replaces it.
//! - `admin`, [`metrics`]: `/healthz`, `/readyz`, `/metrics`, the deny-list endpoint.
//! - `revocation`, `audit`, `assertion`: revocation wired in, the audit log, identity assertions.
//! - [`material`], [`clock`], `body`: PEM loading, time as a parameter, body types.
//! - [`dev`]: `spinegate dev`, the embedded development world.
//! - [`log_output`]: log lines batched to standard output by a thread of their own.

mod admin;
mod assertion;
mod audit;
mod auth;
mod body;
pub mod clock;
pub mod conn;
pub mod dev;
pub mod directory;
pub mod identity;
pub mod log_output;
pub mod material;
pub mod metrics;
pub mod peer;
mod pipeline;
mod proxy;
mod reason;
mod reload;
mod revocation;
mod routing;
pub mod runtime;
pub mod serve;
pub mod tls;
pub mod trust;

pub use reason::Reason;
pub use reload::ReloadError;
pub use serve::{Gateway, Options, StartError};
