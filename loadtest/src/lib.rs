//! # spinegate-loadtest
//!
//! The national login peak simulator. It mints a population of users (smartcard certificates
//! with NHS-style subjects, tokens for users of other authenticators, revoked, expired,
//! expiring and role-less users among them), serves what a gateway needs to judge them (OCSP,
//! the token key set, the demo upstream), and runs open-loop load against a gateway on this
//! machine: sessions arrive on a schedule (constant, ramp, or the national morning peak) whatever
//! the server does, each a login and patient-data calls spaced by think time. Every answer is
//! checked against what its user must get; latency is measured from the intended time, per
//! phase, in HDR histograms; with the server's pid, results are also given per server
//! core-second.
//!
//! It speaks to a gateway over the wire only (spinegate, or nginx or HAProxy on the same PKI), so it
//! depends on `devpki` for certificates and never on the gateway crate.
//!
//! ## Layout
//! - [`cli`]: the command line (`population`, `serve`, `config`, `run`, `idle`).
//! - [`schedule`]: rates over time, the morning-peak curve, arrival times.
//! - [`mix`]: who sessions are for, HTTP versions, user filters.
//! - [`expect`]: what each user must get, and judging it.
//! - [`client`]: rustls client settings per session, connections, requests.
//! - [`session`]: one session, login to last call.
//! - [`options`]: what a run is asked to do.
//! - [`mod@run`]: the open-loop driver, progress line, CPU sampling.
//! - [`mod@idle`]: many connections opened, held idle, and the server's memory per connection.
//! - [`fdlimit`]: the loader's open-file limit, raised when it must hold many connections.
//! - [`stats`]: histograms, counters, the timeline.
//! - [`procstat`]: server CPU time and memory from `/proc`.
//! - [`report`], [`plot`]: JSON, Markdown and SVG.
//! - [`serve`]: OCSP responder, JWK Set and demo upstream for a population.
//! - [`rng`]: a small seedable generator.

pub mod cli;
pub mod client;
pub mod expect;
pub mod fdlimit;
pub mod idle;
pub mod mix;
pub mod options;
pub mod plot;
pub mod procstat;
pub mod report;
pub mod rng;
pub mod run;
pub mod schedule;
pub mod serve;
pub mod session;
pub mod stats;

pub use idle::{IdleOptions, IdleReport, idle};
pub use options::RunOptions;
pub use report::Report;
pub use run::run;
