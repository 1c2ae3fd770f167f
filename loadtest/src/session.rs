//! One user's session: a login (a full TLS handshake with the user's certificate, or a token on
//! a connection without one, and the first request), then patient-data calls spaced by think
//! time, each on the kept-alive connection or on a new connection that resumes the session.
//! Every answer is judged against what the user must get.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spinegate_devpki::demo_service::PATIENTS;
use spinegate_devpki::population::{Credential, PopUser, Population, class_label};

use crate::client::{ClientBase, Connection, RequestSpec, SessionTls, connect};
use crate::expect::{Expected, Outcome, Profile, expected};
use crate::mix::{Picker, Protocol, pick_weighted};
use crate::rng::Rng;
use crate::stats::{Phase, Recorder};

/// The shape of a session after its login.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SessionShape {
    /// Fewest calls after the login.
    pub calls_min: u32,
    /// Most calls after the login (inclusive).
    pub calls_max: u32,
    /// Mean think time before each call (exponentially distributed, cut at
    /// [`MAX_THINK_FACTOR`] times the mean so a session's length is bounded; zero for
    /// back-to-back).
    pub think: Duration,
    /// Share of later calls made on a new connection that resumes the TLS session; the rest
    /// reuse the kept-alive connection.
    pub resumed_fraction: f64,
}

/// The longest think time, as a multiple of the mean (an exponential passes it 0.7% of the time).
pub const MAX_THINK_FACTOR: f64 = 5.0;

impl SessionShape {
    /// The longest a session can take when every step takes `timeout`: the bound on draining.
    pub fn longest(&self, timeout: Duration) -> Duration {
        let thinking = self.think.mul_f64(MAX_THINK_FACTOR) * self.calls_max;
        // A login is two steps (connect, request); each call at most two more.
        thinking + timeout * (2 + 2 * self.calls_max) + Duration::from_secs(1)
    }

    /// A think time: exponential with the shape's mean, cut at [`MAX_THINK_FACTOR`] means.
    pub fn think_time(&self, rng: &mut Rng) -> Duration {
        let mean = self.think.as_secs_f64();
        Duration::from_secs_f64(rng.exponential(mean).min(mean * MAX_THINK_FACTOR))
    }

    /// Requests per session on average: the login's and the calls'.
    pub fn mean_requests(&self) -> f64 {
        1.0 + (f64::from(self.calls_min) + f64::from(self.calls_max)) / 2.0
    }
}

/// What every session shares.
#[derive(Debug)]
pub struct SessionContext {
    /// The population.
    pub population: Arc<Population>,
    /// Client settings.
    pub client: ClientBase,
    /// Who sessions are for.
    pub picker: Picker,
    /// Whose contract answers are judged by.
    pub profile: Profile,
    /// HTTP versions, weighted.
    pub protocols: Vec<(Protocol, f64)>,
    /// Calls, think time, resumption.
    pub shape: SessionShape,
    /// Bound on each connect and each request.
    pub timeout: Duration,
    /// Seed of the per-session generators.
    pub seed: u64,
    /// Where results go.
    pub recorder: Arc<Mutex<Recorder>>,
}

/// Runs session `k`, intended to start at `intended`.
pub async fn run_session(ctx: Arc<SessionContext>, k: u64, intended: Instant) {
    let mut rng = Rng::stream(ctx.seed, k);
    let index = ctx.picker.pick(&mut rng);
    let user = ctx.population.user(index);
    let judge = Judge {
        ctx: &ctx,
        class: class_label(user.credential, user.lacks_role),
        expected: expected(ctx.profile, &user),
    };
    {
        let mut r = lock(&ctx.recorder);
        let now = Instant::now();
        r.session_started(now, now.saturating_duration_since(intended));
        r.class_session(&judge.class);
    }
    let protocol = pick_weighted(&ctx.protocols, &mut rng);
    match prepare(&ctx.population, &ctx.client, &user, protocol, &mut rng) {
        Ok((config, spec)) => {
            if let Some(conn) = login(&judge, &config, &spec, intended).await {
                calls(&judge, &config, &spec, conn, &mut rng).await;
            }
        }
        Err(kind) => {
            judge.outcome(&Outcome::Failed(kind));
        }
    }
    lock(&ctx.recorder).sessions_finished += 1;
}

/// The login: a full handshake and the first request. Returns the connection when the user is
/// served and the session goes on.
async fn login(judge: &Judge<'_>, config: &SessionTls, spec: &RequestSpec, intended: Instant) -> Option<Connection> {
    let ctx = judge.ctx;
    let mut conn = match connect(&ctx.client, config, ctx.timeout).await {
        Ok(conn) => conn,
        Err(outcome) => {
            judge.outcome(&outcome);
            return None;
        }
    };
    judge.timed(Phase::Handshake, intended);
    let outcome = conn.request(spec, ctx.timeout).await;
    if matches!(outcome, Outcome::Status { .. }) {
        judge.timed(Phase::FirstRequest, intended);
    }
    (judge.outcome(&outcome) && judge.expected.is_served()).then_some(conn)
}

/// The calls after the login, each after think time, on the kept-alive connection or a new one
/// that resumes the session; the session ends at the first answer that is not the expected one.
async fn calls(judge: &Judge<'_>, config: &SessionTls, spec: &RequestSpec, mut conn: Connection, rng: &mut Rng) {
    let ctx = judge.ctx;
    let shape = ctx.shape;
    let calls = shape.calls_min + rng.below(u64::from(shape.calls_max - shape.calls_min) + 1) as u32;
    let mut last = Instant::now();
    for _ in 0..calls {
        let call_intended = last + shape.think_time(rng);
        tokio::time::sleep_until(call_intended.into()).await;
        if rng.chance(shape.resumed_fraction) || !conn.is_open() {
            drop(conn);
            conn = match connect(&ctx.client, config, ctx.timeout).await {
                Ok(conn) => conn,
                Err(outcome) => {
                    judge.outcome(&outcome);
                    return;
                }
            };
            if conn.resumed {
                judge.timed(Phase::ResumedHandshake, call_intended);
            } else {
                // Counted as the full handshake it was, and as a resumption that did not happen.
                let now = Instant::now();
                let mut r = lock(&ctx.recorder);
                r.resumption_missed(now);
                r.phase(Phase::Handshake, now, now.saturating_duration_since(call_intended));
            }
        } else {
            lock(&ctx.recorder).keepalive_request(Instant::now());
        }
        let outcome = conn.request(spec, ctx.timeout).await;
        if matches!(outcome, Outcome::Status { .. }) {
            judge.timed(Phase::LaterRequest, call_intended);
        }
        if !judge.outcome(&outcome) {
            return;
        }
        last = Instant::now();
    }
}

/// Client settings and the request for `user`: the card (or token) and the role headers a
/// clinical system sends. A failure kind when the population cannot be read.
pub fn prepare(
    population: &Population,
    client: &ClientBase,
    user: &PopUser,
    protocol: Protocol,
    rng: &mut Rng,
) -> Result<(SessionTls, RequestSpec), &'static str> {
    let mut headers = Vec::with_capacity(3);
    let card = match user.credential {
        Credential::Smartcard(_) => {
            let chain = population.chain(user.index).ok().flatten().ok_or("population_read")?;
            Some((chain, population.key_slot(user.index)))
        }
        Credential::Token(_) => {
            let token = population.token(user.index).ok().flatten().ok_or("population_read")?;
            headers.push(("authorization", format!("Bearer {token}")));
            None
        }
    };
    // A user with several role profiles names the one they act in, as a clinical system does.
    let role = &user.roles[rng.below(user.roles.len() as u64) as usize];
    headers.push(("nhsd-session-urid", role.id.clone()));
    headers.push(("nhsd-end-user-organisation-ods", role.org.clone()));
    let patient = PATIENTS[rng.below(PATIENTS.len() as u64) as usize].0;
    let spec = RequestSpec { path: format!("/Patient/{patient}"), headers };
    Ok((client.session_config(card, protocol), spec))
}

/// Judges and times one session's steps.
struct Judge<'a> {
    ctx: &'a SessionContext,
    class: String,
    expected: Expected,
}

impl Judge<'_> {
    /// Records an outcome; returns whether it was the expected one.
    fn outcome(&self, outcome: &Outcome) -> bool {
        let matched = self.expected.matches(outcome);
        let mut r = lock(&self.ctx.recorder);
        r.judged(Instant::now(), &self.class, &self.expected.describe(), &outcome.label(), matched);
        match outcome {
            Outcome::Failed(kind) if !matched => r.failure(kind),
            Outcome::Alert(_) if !matched => r.failure(&outcome.label()),
            Outcome::Status { .. } | Outcome::Alert(_) | Outcome::Failed(_) => {}
        }
        matched
    }

    /// Records that `phase` ended now, intended to start at `intended`.
    fn timed(&self, phase: Phase, intended: Instant) {
        let now = Instant::now();
        lock(&self.ctx.recorder).phase(phase, now, now.saturating_duration_since(intended));
    }
}

/// The recorder's lock; a panic while holding it cannot leave it half-updated in a way that
/// matters more than losing the run, so poisoning is ignored.
pub fn lock(recorder: &Mutex<Recorder>) -> std::sync::MutexGuard<'_, Recorder> {
    recorder.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn think_times_are_bounded_and_sessions_have_a_longest_length() {
        let shape = SessionShape { calls_min: 2, calls_max: 4, think: Duration::from_secs(2), resumed_fraction: 0.0 };
        let mut rng = Rng::new(3);
        let longest = (0..100_000).map(|_| shape.think_time(&mut rng)).max().unwrap();
        assert!(longest <= Duration::from_secs(10) && longest > Duration::from_secs(9), "{longest:?}");
        // 4 calls × 10 s thinking + 10 steps × 1 s + 1 s.
        assert_eq!(shape.longest(Duration::from_secs(1)), Duration::from_secs(51));
        assert_eq!(shape.mean_requests(), 4.0);
    }
}
