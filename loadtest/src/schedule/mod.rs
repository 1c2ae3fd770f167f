//! When sessions arrive: a rate over the run (constant, a ramp, or the national morning-peak
//! profile) and the arrival times it gives (Poisson or evenly spaced). Arrival times are fixed
//! by the schedule alone — an open loop — so a slow server never slows the arrivals, and every
//! latency is measured from the arrival's intended time (no coordinated omission).

use std::fmt;
use std::time::Duration;

use crate::rng::Rng;

mod peak;

pub use peak::{MORNING_PEAK, peak_level};
use peak::{PEAK_END, PEAK_START};

/// Spine's busiest observed rate, messages (requests) per second: the national morning peak's
/// top at scale 1.0.
pub const NATIONAL_PEAK_REQUESTS_PER_SECOND: f64 = 3_500.0;

/// How the session rate changes over the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// The same rate throughout (sessions per second).
    Constant {
        /// Sessions per second.
        rate: f64,
    },
    /// Linear from one rate to another.
    Ramp {
        /// At the start.
        from: f64,
        /// At the end.
        to: f64,
    },
    /// [`MORNING_PEAK`], 07:00–19:00 compressed into the run, its 09:00 top at `top` sessions
    /// per second.
    Peak {
        /// Sessions per second at 09:00.
        top: f64,
        /// The scale factor it came from (1.0 = national), for reports.
        factor: f64,
    },
}

/// How arrivals are placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrivals {
    /// A Poisson process with the schedule's rate: independent users.
    Poisson,
    /// Evenly spaced by the schedule's rate: reproducible counts.
    Uniform,
}

/// A shape over a run of a given length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    shape: Shape,
    duration: f64,
}

/// Why a schedule cannot be used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// Not `constant:RATE`, `ramp:FROM:TO` or `peak:FACTOR`.
    #[error("schedule {0:?}: expected constant:RATE, ramp:FROM:TO or peak:FACTOR (rates in sessions per second)")]
    Syntax(String),
    /// A rate or factor that is negative, not a number, or beyond the loader's bound.
    #[error("schedule {spec:?}: {value} is not between 0 and {max}")]
    OutOfRange {
        /// The schedule text.
        spec: String,
        /// The value.
        value: f64,
        /// The largest allowed.
        max: f64,
    },
    /// A zero-length run.
    #[error("the run must last at least one second")]
    TooShort,
    /// A schedule with no arrivals at all.
    #[error("schedule {0:?} has no arrivals")]
    Empty(String),
}

/// The highest session rate the loader accepts (a bound on what one run can send).
pub const MAX_RATE: f64 = 100_000.0;
/// The largest peak scale factor.
pub const MAX_FACTOR: f64 = 100.0;

impl Shape {
    /// Parses `constant:RATE`, `ramp:FROM:TO` or `peak:FACTOR`. A peak's factor becomes a session
    /// rate through `requests_per_session` (the login plus the calls after it).
    pub fn parse(spec: &str, requests_per_session: f64) -> Result<Self, ScheduleError> {
        let syntax = || ScheduleError::Syntax(spec.to_owned());
        let number = |s: &str, max: f64| -> Result<f64, ScheduleError> {
            let value: f64 = s.trim().parse().map_err(|_| syntax())?;
            if !(0.0..=max).contains(&value) {
                return Err(ScheduleError::OutOfRange { spec: spec.to_owned(), value, max });
            }
            Ok(value)
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let shape = match parts.as_slice() {
            ["constant", rate] => Shape::Constant { rate: number(rate, MAX_RATE)? },
            ["ramp", from, to] => Shape::Ramp { from: number(from, MAX_RATE)?, to: number(to, MAX_RATE)? },
            ["peak", factor] => {
                let factor = number(factor, MAX_FACTOR)?;
                let top = factor * NATIONAL_PEAK_REQUESTS_PER_SECOND / requests_per_session.max(1.0);
                if top > MAX_RATE {
                    return Err(ScheduleError::OutOfRange { spec: spec.to_owned(), value: top, max: MAX_RATE });
                }
                Shape::Peak { top, factor }
            }
            _ => return Err(syntax()),
        };
        Ok(shape)
    }
}

impl Schedule {
    /// `shape` over `duration`.
    pub fn new(shape: Shape, duration: Duration) -> Result<Self, ScheduleError> {
        let duration = duration.as_secs_f64();
        if duration < 1.0 {
            return Err(ScheduleError::TooShort);
        }
        let this = Self { shape, duration };
        if this.expected_total() < 1.0 {
            return Err(ScheduleError::Empty(this.to_string()));
        }
        Ok(this)
    }

    /// The shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The run's length in seconds.
    pub fn duration(&self) -> f64 {
        self.duration
    }

    /// Sessions per second at `t` seconds into the run (0 outside it).
    pub fn rate_at(&self, t: f64) -> f64 {
        if !(0.0..=self.duration).contains(&t) {
            return 0.0;
        }
        match self.shape {
            Shape::Constant { rate } => rate,
            Shape::Ramp { from, to } => from + (to - from) * t / self.duration,
            Shape::Peak { top, .. } => top * peak_level(self.hour_at(t)),
        }
    }

    /// Expected arrivals in `[0, t]`: the integral of the rate.
    pub fn cumulative(&self, t: f64) -> f64 {
        let t = t.clamp(0.0, self.duration);
        match self.shape {
            Shape::Constant { rate } => rate * t,
            Shape::Ramp { from, .. } => (from + self.rate_at(t)) / 2.0 * t,
            Shape::Peak { top, .. } => {
                // Trapezoids over the curve's segments, in hours, scaled back to seconds.
                let seconds_per_hour = self.duration / (PEAK_END - PEAK_START);
                let end = self.hour_at(t);
                let mut area = 0.0;
                for pair in MORNING_PEAK.windows(2) {
                    let (h0, l0) = pair[0];
                    let (h1, _) = pair[1];
                    if end <= h0 {
                        break;
                    }
                    let h_end = end.min(h1);
                    area += (l0 + peak_level(h_end)) / 2.0 * (h_end - h0);
                }
                top * area * seconds_per_hour
            }
        }
    }

    /// Expected arrivals over the whole run.
    pub fn expected_total(&self) -> f64 {
        self.cumulative(self.duration)
    }

    /// The highest rate anywhere in the run.
    pub fn max_rate(&self) -> f64 {
        match self.shape {
            Shape::Constant { rate } => rate,
            Shape::Ramp { from, to } => from.max(to),
            Shape::Peak { top, .. } => top,
        }
    }

    /// For the peak profile, the simulated time of day at `t` (`08:47`).
    pub fn simulated_clock(&self, t: f64) -> Option<String> {
        match self.shape {
            Shape::Peak { .. } => {
                let minutes = (self.hour_at(t) * 60.0).round() as u32;
                Some(format!("{:02}:{:02}", minutes / 60, minutes % 60))
            }
            Shape::Constant { .. } | Shape::Ramp { .. } => None,
        }
    }

    /// Arrival times, seconds from the start, in order.
    pub fn arrivals(&self, kind: Arrivals, seed: u64) -> ArrivalTimes {
        ArrivalTimes { schedule: *self, kind, rng: Rng::stream(seed, u64::MAX), t: 0.0, target: 0.0 }
    }

    fn hour_at(&self, t: f64) -> f64 {
        PEAK_START + (PEAK_END - PEAK_START) * (t / self.duration).clamp(0.0, 1.0)
    }

    /// The earliest time at which `cumulative` reaches `target` (searching from `from`), or
    /// `None` past the end.
    fn time_of(&self, target: f64, from: f64) -> Option<f64> {
        if target > self.expected_total() {
            return None;
        }
        let (mut lo, mut hi) = (from, self.duration);
        for _ in 0..60 {
            let mid = (lo + hi) / 2.0;
            if self.cumulative(mid) < target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(hi)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.shape {
            Shape::Constant { rate } => write!(f, "constant {rate} sessions/s for {}s", self.duration),
            Shape::Ramp { from, to } => write!(f, "ramp {from}→{to} sessions/s over {}s", self.duration),
            Shape::Peak { top, factor } => write!(
                f,
                "national morning peak ×{factor} (07:00–19:00 in {}s, 09:00 top {top:.1} sessions/s)",
                self.duration
            ),
        }
    }
}

/// The arrival times of a schedule.
#[derive(Clone, Debug)]
pub struct ArrivalTimes {
    schedule: Schedule,
    kind: Arrivals,
    rng: Rng,
    t: f64,
    target: f64,
}

impl Iterator for ArrivalTimes {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        // Arrival k comes when the expected count reaches its target: k + 1 for even spacing,
        // a running sum of unit exponentials for a Poisson process (time-varying rates included).
        self.target += match self.kind {
            Arrivals::Uniform => 1.0,
            Arrivals::Poisson => self.rng.exponential(1.0),
        };
        let t = self.schedule.time_of(self.target, self.t)?;
        self.t = t;
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(shape: Shape, secs: u64) -> Schedule {
        Schedule::new(shape, Duration::from_secs(secs)).unwrap()
    }

    #[test]
    fn constant_rate_integrates_to_rate_times_time() {
        let s = schedule(Shape::Constant { rate: 40.0 }, 10);
        assert_eq!(s.rate_at(3.0), 40.0);
        assert_eq!(s.rate_at(11.0), 0.0);
        assert!((s.cumulative(2.5) - 100.0).abs() < 1e-9);
        assert!((s.expected_total() - 400.0).abs() < 1e-9);
    }

    #[test]
    fn ramp_is_linear_and_integrates_to_its_mean() {
        let s = schedule(Shape::Ramp { from: 10.0, to: 30.0 }, 20);
        assert!((s.rate_at(10.0) - 20.0).abs() < 1e-9);
        assert!((s.expected_total() - 400.0).abs() < 1e-9);
        assert!((s.cumulative(10.0) - 150.0).abs() < 1e-9);
    }

    #[test]
    fn peak_tops_at_nine_and_has_a_lunchtime_peak() {
        let s = schedule(Shape::Peak { top: 100.0, factor: 1.0 }, 1200);
        let at = |hour: f64| s.rate_at((hour - 7.0) / 12.0 * 1200.0);
        assert!((at(9.0) - 100.0).abs() < 1e-9);
        let max = (0..=1200).map(|t| s.rate_at(f64::from(t))).fold(0.0, f64::max);
        assert!((max - 100.0).abs() < 1e-9, "the 09:00 top is the maximum");
        assert!(at(8.75) > at(8.0) && at(9.25) > at(10.5), "08:30–09:30 surge");
        assert!(at(13.0) > at(11.0) && at(13.0) > at(14.5), "lunchtime peak");
        assert_eq!(s.simulated_clock(0.0).as_deref(), Some("07:00"));
        assert_eq!(s.simulated_clock(200.0).as_deref(), Some("09:00"));
    }

    #[test]
    fn peak_cumulative_matches_a_numeric_integral() {
        let s = schedule(Shape::Peak { top: 50.0, factor: 1.0 }, 600);
        let steps = 600_000;
        let dt = 600.0 / f64::from(steps);
        let numeric: f64 = (0..steps).map(|i| s.rate_at((f64::from(i) + 0.5) * dt) * dt).sum();
        assert!((s.expected_total() - numeric).abs() / numeric < 1e-6, "{} vs {numeric}", s.expected_total());
        assert!((s.cumulative(300.0) - s.cumulative(299.0) - s.rate_at(299.5)).abs() < 0.01);
    }

    #[test]
    fn peak_factor_is_national_requests_shared_by_the_requests_of_a_session() {
        let Shape::Peak { top, factor } = Shape::parse("peak:0.1", 5.0).unwrap() else { panic!() };
        assert_eq!(factor, 0.1);
        assert!((top - 70.0).abs() < 1e-9, "0.1 × 3500 requests/s ÷ 5 requests per session");
    }

    #[test]
    fn uniform_arrivals_are_exact_and_ordered() {
        let s = schedule(Shape::Ramp { from: 0.0, to: 20.0 }, 10);
        let times: Vec<f64> = s.arrivals(Arrivals::Uniform, 1).collect();
        assert_eq!(times.len(), 100);
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert!(times.iter().all(|t| (0.0..=10.0).contains(t)));
        // The ramp puts three quarters of its arrivals in the second half.
        assert_eq!(times.iter().filter(|t| **t > 5.0).count(), 75);
    }

    #[test]
    fn poisson_arrivals_count_near_the_expected_total() {
        let s = schedule(Shape::Constant { rate: 200.0 }, 50);
        let n = s.arrivals(Arrivals::Poisson, 3).count() as f64;
        // 10,000 expected; five standard deviations is 500.
        assert!((n - 10_000.0).abs() < 500.0, "{n}");
        let again = s.arrivals(Arrivals::Poisson, 3).count() as f64;
        assert_eq!(n, again, "same seed, same arrivals");
    }

    #[test]
    fn bad_schedules_are_refused_with_a_reason() {
        assert!(matches!(Shape::parse("constant", 1.0), Err(ScheduleError::Syntax(_))));
        assert!(matches!(Shape::parse("constant:x", 1.0), Err(ScheduleError::Syntax(_))));
        assert!(matches!(Shape::parse("constant:-1", 1.0), Err(ScheduleError::OutOfRange { .. })));
        assert!(matches!(Shape::parse("constant:NaN", 1.0), Err(ScheduleError::OutOfRange { .. })));
        assert!(matches!(Shape::parse("peak:1000", 1.0), Err(ScheduleError::OutOfRange { .. })));
        assert!(matches!(Shape::parse("wave:1", 1.0), Err(ScheduleError::Syntax(_))));
        let zero = Shape::parse("constant:0", 1.0).unwrap();
        assert!(matches!(Schedule::new(zero, Duration::from_secs(10)), Err(ScheduleError::Empty(_))));
        let one = Shape::parse("constant:1", 1.0).unwrap();
        assert!(matches!(Schedule::new(one, Duration::from_millis(10)), Err(ScheduleError::TooShort)));
    }
}
