//! What a run measures: HDR latency histograms per phase, counters, outcomes per user class,
//! mismatches, failures by kind, and a per-second timeline. Latencies are microseconds from the
//! intended time of the step (its scheduled arrival, or the end of the user's think time), so a
//! stalled server shows up as latency, not as fewer samples.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

mod latency;

pub use latency::{Latency, Summary};

/// The steps of a session that are timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Login: arrival to an established TLS session (TCP connect and full handshake).
    Handshake,
    /// A later call's new connection: intended time to a resumed TLS session.
    ResumedHandshake,
    /// Login: arrival to the first response, complete (what the user waits for).
    FirstRequest,
    /// A later call: end of think time to its response, complete.
    LaterRequest,
}

/// Events counted once the warm-up is over.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Sessions started.
    pub sessions: u64,
    /// Requests answered (any status).
    pub requests: u64,
    /// Of those, on a kept-alive connection.
    pub keepalive_requests: u64,
    /// Full handshakes completed.
    pub full_handshakes: u64,
    /// Resumed handshakes completed.
    pub resumed_handshakes: u64,
    /// Connections that asked to resume but got a full handshake.
    pub resumption_missed: u64,
}

/// Sessions of one user class.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClassTally {
    /// What the class must get.
    pub expected: String,
    /// Sessions.
    pub sessions: u64,
    /// Requests judged (logins and later calls).
    pub judged: u64,
    /// Of those, not what was expected.
    pub mismatched: u64,
    /// What they got: outcome label → count.
    pub outcomes: BTreeMap<String, u64>,
}

/// One second of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Second {
    /// Seconds since the start.
    pub t: u64,
    /// Sessions started.
    pub sessions: u64,
    /// Requests answered.
    pub requests: u64,
    /// Requests not answered as expected.
    pub mismatches: u64,
    /// Median request latency (first and later requests), ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// The servers' resident memory at the end of the second (`--server-pid`), KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_kib: Option<u64>,
}

/// One minute of the run: what a soak is judged by (is p99 flat once warm, is memory flat?).
/// Percentiles are of the minute's own requests, not of its seconds' percentiles.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Minute {
    /// Minutes since the start (the last one may be partial).
    pub minute: u64,
    /// Requests answered.
    pub requests: u64,
    /// Median request latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// The servers' resident memory at the end of the minute, KiB.
    pub server_rss_kib: Option<u64>,
}

/// Everything recorded during a run.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    measure_from: Instant,
    measure_until: Option<Instant>,
    /// Per-phase latency, after warm-up.
    pub handshake: Latency,
    /// Resumed handshakes.
    pub resumed_handshake: Latency,
    /// First requests.
    pub first_request: Latency,
    /// Later requests.
    pub later_request: Latency,
    /// How late sessions were dispatched against their schedule (the loader's own lag).
    pub dispatch_lag: Latency,
    /// Counted after warm-up.
    pub counts: Counts,
    /// Per class, whole run.
    pub classes: BTreeMap<String, ClassTally>,
    /// Mismatches by kind (`class: expected → got`), whole run.
    pub mismatches: BTreeMap<String, u64>,
    /// Failures (transport errors, timeouts, unexpected alerts) by kind, whole run.
    pub failures: BTreeMap<String, u64>,
    /// Sessions the loader could not start (too many in flight).
    pub dropped: u64,
    /// Sessions still running when the run had to stop.
    pub unfinished: u64,
    /// Sessions started, whole run.
    pub sessions_started: u64,
    /// Sessions finished, whole run.
    pub sessions_finished: u64,
    timeline: Vec<Second>,
    current: Second,
    current_latency: Latency,
    minutes: Vec<Minute>,
    minute: Minute,
    minute_latency: Latency,
}

impl Recorder {
    /// A recorder for a run starting at `start` whose measurements begin at `measure_from`.
    pub fn new(start: Instant, measure_from: Instant) -> Self {
        Self {
            start,
            measure_from,
            measure_until: None,
            handshake: Latency::new(),
            resumed_handshake: Latency::new(),
            first_request: Latency::new(),
            later_request: Latency::new(),
            dispatch_lag: Latency::new(),
            counts: Counts::default(),
            classes: BTreeMap::new(),
            mismatches: BTreeMap::new(),
            failures: BTreeMap::new(),
            dropped: 0,
            unfinished: 0,
            sessions_started: 0,
            sessions_finished: 0,
            timeline: Vec::new(),
            current: Second::default(),
            current_latency: Latency::with_precision(2),
            minutes: Vec::new(),
            minute: Minute::default(),
            minute_latency: Latency::with_precision(2),
        }
    }

    /// Whether `at` is inside the measured window (after the warm-up, before the schedule's end).
    pub fn measuring(&self, at: Instant) -> bool {
        at >= self.measure_from && self.measure_until.is_none_or(|until| at < until)
    }

    /// Ends the measured window at `at` (the end of the schedule): what the drain after it does
    /// is judged, not measured.
    pub fn end_measurement(&mut self, at: Instant) {
        self.measure_until = Some(at);
    }

    /// A session started at `at`, `lag` after its intended time.
    pub fn session_started(&mut self, at: Instant, lag: Duration) {
        self.roll(at);
        self.sessions_started += 1;
        self.current.sessions += 1;
        if self.measuring(at) {
            self.counts.sessions += 1;
            self.dispatch_lag.record(lag);
        }
    }

    /// A timed step finished at `at`, `latency` after its intended time.
    pub fn phase(&mut self, phase: Phase, at: Instant, latency: Duration) {
        self.roll(at);
        if matches!(phase, Phase::FirstRequest | Phase::LaterRequest) {
            self.current.requests += 1;
            self.current_latency.record(latency);
            self.minute.requests += 1;
            self.minute_latency.record(latency);
        }
        if !self.measuring(at) {
            return;
        }
        match phase {
            Phase::Handshake => {
                self.counts.full_handshakes += 1;
                self.handshake.record(latency);
            }
            Phase::ResumedHandshake => {
                self.counts.resumed_handshakes += 1;
                self.resumed_handshake.record(latency);
            }
            Phase::FirstRequest => {
                self.counts.requests += 1;
                self.first_request.record(latency);
            }
            Phase::LaterRequest => {
                self.counts.requests += 1;
                self.later_request.record(latency);
            }
        }
    }

    /// A later request went over a kept-alive connection.
    pub fn keepalive_request(&mut self, at: Instant) {
        if self.measuring(at) {
            self.counts.keepalive_requests += 1;
        }
    }

    /// A connection meant to resume did a full handshake.
    pub fn resumption_missed(&mut self, at: Instant) {
        if self.measuring(at) {
            self.counts.resumption_missed += 1;
        }
    }

    /// A request of a user in `class` was judged.
    pub fn judged(&mut self, at: Instant, class: &str, expected: &str, outcome: &str, matched: bool) {
        self.roll(at);
        let tally = self.classes.entry(class.to_owned()).or_default();
        if tally.expected.is_empty() {
            tally.expected = expected.to_owned();
        }
        tally.judged += 1;
        *tally.outcomes.entry(outcome.to_owned()).or_default() += 1;
        if !matched {
            tally.mismatched += 1;
            self.current.mismatches += 1;
            *self.mismatches.entry(format!("{class}: expected {expected}, got {outcome}")).or_default() += 1;
        }
    }

    /// A session of `class` began (counted per class).
    pub fn class_session(&mut self, class: &str) {
        self.classes.entry(class.to_owned()).or_default().sessions += 1;
    }

    /// A failure of some kind (also judged as a mismatch where it was one).
    pub fn failure(&mut self, kind: &str) {
        *self.failures.entry(kind.to_owned()).or_default() += 1;
    }

    /// Total mismatches, including sessions dropped or unfinished.
    pub fn mismatch_total(&self) -> u64 {
        self.mismatches.values().sum::<u64>() + self.dropped + self.unfinished
    }

    /// Closes the seconds before `now`'s second.
    pub fn roll(&mut self, now: Instant) {
        let second = now.saturating_duration_since(self.start).as_secs();
        while self.current.t < second {
            self.close_second();
        }
    }

    fn close_second(&mut self) {
        self.current.p50_ms = round3(self.current_latency.quantile_ms(0.5));
        self.current.p99_ms = round3(self.current_latency.quantile_ms(0.99));
        let next = Second { t: self.current.t + 1, ..Second::default() };
        self.timeline.push(std::mem::replace(&mut self.current, next));
        self.current_latency.reset();
        if self.current.t.is_multiple_of(60) {
            self.close_minute();
        }
    }

    fn close_minute(&mut self) {
        self.minute.p50_ms = round3(self.minute_latency.quantile_ms(0.5));
        self.minute.p99_ms = round3(self.minute_latency.quantile_ms(0.99));
        self.minute.p999_ms = round3(self.minute_latency.quantile_ms(0.999));
        self.minute.server_rss_kib = self.timeline.iter().rev().find_map(|s| s.server_rss_kib);
        let next = Minute { minute: self.minute.minute + 1, ..Minute::default() };
        self.minutes.push(std::mem::replace(&mut self.minute, next));
        self.minute_latency.reset();
    }

    /// The servers' resident memory now: recorded on the last closed second.
    pub fn server_memory(&mut self, now: Instant, rss_kib: u64) {
        self.roll(now);
        if let Some(second) = self.timeline.last_mut() {
            second.server_rss_kib = Some(rss_kib);
        }
    }

    /// The closed seconds so far.
    pub fn timeline(&self) -> &[Second] {
        &self.timeline
    }

    /// Closes the current second and returns the whole timeline.
    pub fn finish_timeline(&mut self) -> Vec<Second> {
        self.close_second();
        std::mem::take(&mut self.timeline)
    }

    /// Closes the current (partial) minute, unless it has just begun empty, and returns the
    /// minutes. Call after [`Recorder::finish_timeline`]'s last second is known: before it.
    pub fn finish_minutes(&mut self) -> Vec<Minute> {
        if self.minute.requests > 0 {
            self.close_minute();
        }
        std::mem::take(&mut self.minutes)
    }

    /// Request latency (first and later) over the measured window.
    pub fn all_requests(&self) -> Latency {
        let mut all = self.first_request.clone();
        all.merge(&self.later_request);
        all
    }
}

/// `count` events per second of server CPU time; `None` without CPU time.
pub fn per_core_second(count: u64, cpu_seconds: f64) -> Option<f64> {
    (cpu_seconds > 0.0).then(|| round3(count as f64 / cpu_seconds))
}

/// Rounds to three decimals (reports carry no false precision).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_core_second_divides_by_cpu_time() {
        assert_eq!(per_core_second(5_000, 2.5), Some(2000.0));
        assert_eq!(per_core_second(5_000, 0.0), None);
        assert_eq!(per_core_second(1, 3.0), Some(0.333));
    }

    #[test]
    fn warm_up_is_judged_but_not_measured() {
        let start = Instant::now();
        let mut r = Recorder::new(start, start + Duration::from_secs(2));
        r.phase(Phase::FirstRequest, start + Duration::from_secs(1), Duration::from_millis(5));
        r.judged(start + Duration::from_secs(1), "smartcard/valid", "200", "502", false);
        r.phase(Phase::FirstRequest, start + Duration::from_secs(3), Duration::from_millis(7));
        r.phase(Phase::Handshake, start + Duration::from_secs(3), Duration::from_millis(2));
        assert_eq!(r.counts.requests, 1);
        assert_eq!(r.counts.full_handshakes, 1);
        assert_eq!(r.first_request.count(), 1);
        assert_eq!(r.mismatch_total(), 1);
        assert_eq!(r.classes["smartcard/valid"].outcomes["502"], 1);
        r.end_measurement(start + Duration::from_secs(4));
        r.phase(Phase::FirstRequest, start + Duration::from_secs(5), Duration::from_millis(7));
        assert_eq!(r.counts.requests, 1, "the drain after the schedule is not measured");
    }

    #[test]
    fn timeline_closes_quiet_seconds_too() {
        let start = Instant::now();
        let mut r = Recorder::new(start, start);
        r.phase(Phase::FirstRequest, start + Duration::from_millis(100), Duration::from_millis(4));
        r.phase(Phase::LaterRequest, start + Duration::from_millis(3500), Duration::from_millis(8));
        let timeline = r.finish_timeline();
        let requests: Vec<u64> = timeline.iter().map(|s| s.requests).collect();
        assert_eq!(requests, vec![1, 0, 0, 1]);
        assert!((timeline[0].p50_ms - 4.0).abs() < 0.05, "{:?}", timeline[0]);
        assert!((timeline[3].p99_ms - 8.0).abs() < 0.1, "{:?}", timeline[3]);
        assert_eq!(timeline.iter().map(|s| s.t).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn minutes_hold_their_own_percentiles_and_the_last_memory_reading() {
        let start = Instant::now();
        let mut r = Recorder::new(start, start);
        // Minute 0: 99 fast requests and one slow; minute 1: one request, partial.
        for i in 0..99 {
            r.phase(Phase::LaterRequest, start + Duration::from_millis(100 + i * 10), Duration::from_millis(2));
        }
        r.phase(Phase::LaterRequest, start + Duration::from_secs(30), Duration::from_millis(500));
        r.server_memory(start + Duration::from_secs(41), 1000);
        r.server_memory(start + Duration::from_secs(59), 2000);
        r.phase(Phase::LaterRequest, start + Duration::from_secs(61), Duration::from_millis(7));
        let timeline = r.finish_timeline();
        assert_eq!(timeline.len(), 62);
        let minutes = r.finish_minutes();
        assert_eq!(minutes.len(), 2, "{minutes:?}");
        assert_eq!((minutes[0].minute, minutes[0].requests), (0, 100));
        assert!((minutes[0].p50_ms - 2.0).abs() < 0.05, "{:?}", minutes[0]);
        assert!(minutes[0].p999_ms > 400.0, "the slow request is the minute's tail: {:?}", minutes[0]);
        assert_eq!(minutes[0].server_rss_kib, Some(2000), "the last reading of the minute");
        assert_eq!((minutes[1].minute, minutes[1].requests), (1, 1));
    }
}
