//! What both transports do the same way with a connection: count its handshake, and close it
//! when the timers say so (see the table in [`crate::conn`]).

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::conn::{CLOSE_GRACE, CloseReason, Traffic, timer_tick};
use crate::metrics as m;

/// How a handshake went, for `spinegate_tls_handshakes_total`.
#[derive(Clone, Copy, Debug)]
pub struct Handshake<'a> {
    /// The listener's name.
    pub listener: &'a str,
    /// `ok`, `failed`, `timeout` or `refused`.
    pub outcome: &'static str,
    /// `1.3`, `1.2`, `other` or `none`.
    pub version: &'static str,
    /// `true`, `false` or `unknown` (QUIC does not say).
    pub resumed: &'static str,
    /// `tcp` or `quic`.
    pub transport: &'static str,
}

impl Handshake<'_> {
    /// Counts it.
    pub fn count(self) {
        metrics::counter!(
            m::TLS_HANDSHAKES,
            "listener" => self.listener.to_owned(),
            "outcome" => self.outcome,
            "version" => self.version,
            "resumed" => self.resumed,
            "transport" => self.transport,
        )
        .increment(1);
    }

    /// A handshake that did not complete (`failed`, `timeout`, `refused`).
    pub fn unfinished(listener: &str, outcome: &'static str, transport: &'static str) {
        Handshake { listener, outcome, version: "none", resumed: "false", transport }.count();
    }
}

/// What a connection's timers say now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do.
    Continue,
    /// Start closing gracefully (GOAWAY, `Connection: close`) for this reason.
    Begin(CloseReason),
    /// Drop the connection now: nothing is owed to the client (no request began), or it has had
    /// its grace to close.
    End(CloseReason),
}

/// The timers of one connection: the first request within `first_request`, no idleness longer
/// than `idle`, and a closing connection with nothing in flight gone after [`CLOSE_GRACE`].
#[derive(Debug)]
pub struct Timers {
    first_request: Duration,
    idle: Duration,
    ticks: Interval,
    closing: Option<(CloseReason, Instant)>,
}

impl Timers {
    /// Timers for a connection under these limits.
    pub fn new(first_request: Duration, idle: Duration) -> Self {
        let mut ticks = tokio::time::interval(timer_tick(first_request, idle));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { first_request, idle, ticks, closing: None }
    }

    /// Waits for the next look at the timers.
    pub async fn tick(&mut self) {
        self.ticks.tick().await;
    }

    /// What the timers say about a connection with this `traffic`.
    pub fn step(&self, traffic: &Traffic) -> Step {
        match self.closing {
            None => match traffic.expired(self.first_request, self.idle) {
                Some(CloseReason::FirstRequestTimeout) => Step::End(CloseReason::FirstRequestTimeout),
                Some(why) => Step::Begin(why),
                None => Step::Continue,
            },
            Some((why, since)) if traffic.in_flight() == 0 && since.elapsed() >= CLOSE_GRACE => Step::End(why),
            Some(_) => Step::Continue,
        }
    }

    /// Records that closing began, for `why`.
    pub fn closing_for(&mut self, why: CloseReason) {
        self.closing.get_or_insert((why, Instant::now()));
    }

    /// Why the connection is closing, if it is.
    pub fn closing(&self) -> Option<CloseReason> {
        self.closing.map(|(why, _)| why)
    }
}
