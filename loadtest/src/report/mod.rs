//! The final report: one value, written as JSON (for scripts such as `bench/compare-peers`), as
//! Markdown (for people), and as an SVG plot of throughput and p50/p99 over time.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use spinegate_devpki::population::Population;

use crate::mix::UserFilter;
use crate::options::RunOptions;
use crate::procstat::{Machine, Memory};
use crate::schedule::{Arrivals, Shape};
use crate::stats::{ClassTally, Counts, Minute, Recorder, Second, Summary, per_core_second, round3};

mod markdown;

/// A run's results.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The run's name.
    pub label: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// No mismatch, no dropped or unfinished session, not interrupted.
    pub passed: bool,
    /// Whether Ctrl-C cut it short.
    pub interrupted: bool,
    /// Where it ran.
    pub machine: Machine,
    /// `host:port` loaded.
    pub target: String,
    /// Whose contract answers were judged by.
    pub profile: String,
    /// The population.
    pub population: PopulationInfo,
    /// What load was offered.
    pub load: Load,
    /// Session counts over the whole run.
    pub sessions: Sessions,
    /// Throughput over the measured window (after warm-up).
    pub measured: Measured,
    /// Latency per phase over the measured window.
    pub latency: Latencies,
    /// The server's CPU time and memory, with `--server-pid`.
    pub server: Option<Server>,
    /// Answers that were not what their user must get.
    pub mismatches: Mismatches,
    /// Failures by kind (transport errors, timeouts, unexpected alerts).
    pub failures: BTreeMap<String, u64>,
    /// Per user class: expected answer, sessions, outcomes.
    pub classes: BTreeMap<String, ClassTally>,
    /// One entry per second.
    pub timeline: Vec<Second>,
    /// One entry per minute: its own latency percentiles and the server's memory at its end.
    pub minutes: Vec<Minute>,
}

/// The population used.
#[derive(Clone, Debug, Serialize)]
pub struct PopulationInfo {
    /// Its directory.
    pub dir: String,
    /// Its users.
    pub users: u32,
    /// Users the run could pick (after `--users`).
    pub pickable: usize,
    /// Key algorithm.
    pub key_kind: String,
    /// Key pool size.
    pub key_pool: u32,
}

/// The offered load.
#[derive(Clone, Debug, Serialize)]
pub struct Load {
    /// The schedule in words.
    pub schedule: String,
    /// Scale factor of the national peak profile, if used.
    pub peak_factor: Option<f64>,
    /// Highest session rate.
    pub max_sessions_per_s: f64,
    /// Sessions the schedule expects.
    pub expected_sessions: f64,
    /// Seconds of schedule.
    pub duration_s: f64,
    /// Seconds of warm-up before it.
    pub warmup_s: f64,
    /// `poisson` or `uniform`.
    pub arrivals: String,
    /// Calls after the login, fewest.
    pub calls_min: u32,
    /// Calls after the login, most.
    pub calls_max: u32,
    /// Mean think time, ms.
    pub think_ms: f64,
    /// Share of later calls on a new, resumed connection.
    pub resumed_fraction: f64,
    /// The user mix as given.
    pub mix: String,
    /// HTTP versions and weights.
    pub http: String,
    /// `all` or `served`.
    pub users: String,
    /// Sessions in flight at most.
    pub max_sessions: usize,
    /// Per-step bound, ms.
    pub timeout_ms: u128,
    /// Seed.
    pub seed: u64,
}

/// Session counts.
#[derive(Clone, Debug, Serialize)]
pub struct Sessions {
    /// Dispatched by the schedule.
    pub dispatched: u64,
    /// Started.
    pub started: u64,
    /// Finished.
    pub finished: u64,
    /// Not started: too many in flight.
    pub dropped: u64,
    /// Cut off at the end of the drain.
    pub unfinished: u64,
}

/// Throughput over the measured window.
#[derive(Clone, Debug, Serialize)]
pub struct Measured {
    /// Its length in seconds: from the end of the warm-up to the end of the schedule (the drain
    /// after it is judged but not measured).
    pub seconds: f64,
    /// Events in it.
    pub counts: Counts,
    /// Sessions started per second.
    pub sessions_per_s: f64,
    /// Requests answered per second.
    pub requests_per_s: f64,
    /// Full handshakes per second.
    pub full_handshakes_per_s: f64,
    /// Resumed handshakes per second.
    pub resumed_handshakes_per_s: f64,
}

/// Latency per phase.
#[derive(Clone, Debug, Serialize)]
pub struct Latencies {
    /// Arrival to established TLS (full handshakes).
    pub handshake: Summary,
    /// Intended call time to established TLS (resumed handshakes).
    pub resumed_handshake: Summary,
    /// Arrival to the first response (the login as the user sees it).
    pub first_request: Summary,
    /// End of think time to the response (later calls).
    pub later_requests: Summary,
    /// First and later requests together.
    pub all_requests: Summary,
    /// How late the loader dispatched sessions (its own health: large values mean the loader,
    /// not the server, was the bottleneck; latencies include it either way).
    pub dispatch_lag: Summary,
}

/// The server's side.
#[derive(Clone, Debug, Serialize)]
pub struct Server {
    /// The processes read.
    pub pids: Vec<u32>,
    /// CPU seconds (user + system) they used in the measured window.
    pub cpu_seconds: f64,
    /// CPU seconds per second: cores kept busy.
    pub cores_busy: f64,
    /// Requests per server CPU second.
    pub requests_per_core_second: Option<f64>,
    /// Sessions (logins) per server CPU second.
    pub sessions_per_core_second: Option<f64>,
    /// Full handshakes per server CPU second.
    pub full_handshakes_per_core_second: Option<f64>,
    /// Resumed handshakes per server CPU second.
    pub resumed_handshakes_per_core_second: Option<f64>,
    /// Resident memory at the end (and peak).
    pub memory: Memory,
}

/// Mismatches.
#[derive(Clone, Debug, Serialize)]
pub struct Mismatches {
    /// All of them, dropped and unfinished sessions included.
    pub total: u64,
    /// By kind: `class: expected X, got Y`.
    pub by_kind: BTreeMap<String, u64>,
}

/// What [`build`] reads.
pub(crate) struct Inputs<'a> {
    pub(crate) options: &'a RunOptions,
    pub(crate) population: &'a Population,
    pub(crate) picker_users: usize,
    pub(crate) recorder: &'a mut Recorder,
    pub(crate) started_at: time::OffsetDateTime,
    pub(crate) measured_seconds: f64,
    pub(crate) dispatched: u64,
    pub(crate) interrupted: bool,
    pub(crate) server: Option<(f64, Memory)>,
}

/// Assembles the report.
pub(crate) fn build(inputs: Inputs<'_>) -> Report {
    let Inputs {
        options,
        population,
        picker_users,
        recorder,
        started_at,
        measured_seconds,
        dispatched,
        interrupted,
        server,
    } = inputs;
    let counts = recorder.counts.clone();
    let rate = |n: u64| if measured_seconds > 0.0 { round3(n as f64 / measured_seconds) } else { 0.0 };
    let mismatch_total = recorder.mismatch_total();
    let file = population.file();
    let schedule = options.schedule;
    let server = server.map(|(cpu_seconds, memory)| Server {
        pids: options.server_pids.clone(),
        cpu_seconds: round3(cpu_seconds),
        cores_busy: if measured_seconds > 0.0 { round3(cpu_seconds / measured_seconds) } else { 0.0 },
        requests_per_core_second: per_core_second(counts.requests, cpu_seconds),
        sessions_per_core_second: per_core_second(counts.sessions, cpu_seconds),
        full_handshakes_per_core_second: per_core_second(counts.full_handshakes, cpu_seconds),
        resumed_handshakes_per_core_second: per_core_second(counts.resumed_handshakes, cpu_seconds),
        memory,
    });
    let mut by_kind = recorder.mismatches.clone();
    if recorder.dropped > 0 {
        by_kind.insert("sessions dropped: too many in flight (--max-sessions)".into(), recorder.dropped);
    }
    if recorder.unfinished > 0 {
        by_kind.insert("sessions unfinished at the end of the drain".into(), recorder.unfinished);
    }
    Report {
        label: options.label.clone(),
        started_at: started_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        passed: mismatch_total == 0 && !interrupted,
        interrupted,
        machine: Machine::detect(),
        target: options.target.to_string(),
        profile: options.profile.name().to_owned(),
        population: PopulationInfo {
            dir: population.dir().display().to_string(),
            users: file.users,
            pickable: picker_users,
            key_kind: file.key_kind.clone(),
            key_pool: file.key_pool,
        },
        load: Load {
            schedule: schedule.to_string(),
            peak_factor: match schedule.shape() {
                Shape::Peak { factor, .. } => Some(factor),
                Shape::Constant { .. } | Shape::Ramp { .. } => None,
            },
            max_sessions_per_s: round3(schedule.max_rate()),
            expected_sessions: round3(schedule.expected_total()),
            duration_s: schedule.duration(),
            warmup_s: options.warmup.as_secs_f64(),
            arrivals: match options.arrivals {
                Arrivals::Poisson => "poisson",
                Arrivals::Uniform => "uniform",
            }
            .to_owned(),
            calls_min: options.shape.calls_min,
            calls_max: options.shape.calls_max,
            think_ms: options.shape.think.as_secs_f64() * 1000.0,
            resumed_fraction: options.shape.resumed_fraction,
            mix: options.mix_text.clone(),
            http: options.protocols.iter().map(|(p, w)| format!("{}={w}", p.name())).collect::<Vec<_>>().join(","),
            users: match options.users {
                UserFilter::All => "all",
                UserFilter::Served => "served",
            }
            .to_owned(),
            max_sessions: options.max_sessions,
            timeout_ms: options.timeout.as_millis(),
            seed: options.seed,
        },
        sessions: Sessions {
            dispatched,
            started: recorder.sessions_started,
            finished: recorder.sessions_finished,
            dropped: recorder.dropped,
            unfinished: recorder.unfinished,
        },
        measured: Measured {
            seconds: round3(measured_seconds),
            sessions_per_s: rate(counts.sessions),
            requests_per_s: rate(counts.requests),
            full_handshakes_per_s: rate(counts.full_handshakes),
            resumed_handshakes_per_s: rate(counts.resumed_handshakes),
            counts,
        },
        latency: Latencies {
            handshake: recorder.handshake.summary(),
            resumed_handshake: recorder.resumed_handshake.summary(),
            first_request: recorder.first_request.summary(),
            later_requests: recorder.later_request.summary(),
            all_requests: recorder.all_requests().summary(),
            dispatch_lag: recorder.dispatch_lag.summary(),
        },
        server,
        mismatches: Mismatches { total: mismatch_total, by_kind },
        failures: recorder.failures.clone(),
        classes: recorder.classes.clone(),
        timeline: recorder.finish_timeline(),
        minutes: recorder.finish_minutes(),
    }
}

impl Report {
    /// Writes `report.json`, `report.md` and `report.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        use anyhow::Context;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_string_pretty(self).context("serialising the report")?;
        for (name, text) in [
            ("report.json", json),
            ("report.md", self.markdown()),
            ("report.svg", crate::plot::svg(&self.timeline, self.load.warmup_s, &self.label)),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}
