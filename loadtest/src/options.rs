//! What a run is asked to do: the target, the schedule, who sessions are for, and its bounds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::expect::Profile;
use crate::mix::{Mix, Protocol, UserFilter};
use crate::schedule::{Arrivals, Schedule};
use crate::session::SessionShape;

/// Everything a run needs besides the population.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The gateway, on a loopback address.
    pub target: SocketAddr,
    /// The name the server certificate must carry (SNI).
    pub server_name: String,
    /// PEM CA certificates the server certificate chains to.
    pub server_ca: PathBuf,
    /// Session arrival rate over the run.
    pub schedule: Schedule,
    /// Time before the schedule at its starting rate, run but not measured.
    pub warmup: Duration,
    /// Poisson or evenly spaced arrivals.
    pub arrivals: Arrivals,
    /// Calls, think time, resumption.
    pub shape: SessionShape,
    /// Who sessions are for.
    pub mix: Mix,
    /// The mix as given, for the report.
    pub mix_text: String,
    /// HTTP versions.
    pub protocols: Vec<(Protocol, f64)>,
    /// Whose contract answers are judged by.
    pub profile: Profile,
    /// Which users may be picked.
    pub users: UserFilter,
    /// Server processes whose CPU time and memory are read.
    pub server_pids: Vec<u32>,
    /// Sessions in flight at most; arrivals beyond are dropped and fail the run.
    pub max_sessions: usize,
    /// Bound on each connect and each request.
    pub timeout: Duration,
    /// How long sessions may take to finish after the schedule ends.
    pub drain: Duration,
    /// Seed of arrivals and choices.
    pub seed: u64,
    /// Whether to print a progress line every second (to stderr).
    pub progress: bool,
    /// A name for the report.
    pub label: String,
}
