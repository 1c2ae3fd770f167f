//! The open-loop driver: dispatches sessions at the schedule's arrival times whatever the server
//! does, bounds how many run at once, prints a progress line, samples the server's CPU time, and
//! drains and reports when the schedule ends. It stops by itself.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spinegate_devpki::population::Population;
use tokio::task::JoinSet;

use crate::client::ClientBase;
use crate::mix::Picker;
use crate::options::RunOptions;
use crate::procstat;
use crate::report::{self, Report};
use crate::schedule::{Schedule, Shape};
use crate::session::{SessionContext, lock, run_session};
use crate::stats::Recorder;

/// Runs the load and returns its report.
pub async fn run(population: Arc<Population>, options: RunOptions) -> anyhow::Result<Report> {
    anyhow::ensure!(
        options.target.ip().is_loopback(),
        "the target {} is not a loopback address: spinegate-loadtest only loads servers on this machine",
        options.target
    );
    let client = ClientBase::new(&population, &options.server_ca, options.target, &options.server_name)?;
    let picker = Picker::build(&population, &options.mix, options.users, options.profile)?;
    for pid in &options.server_pids {
        procstat::cpu_ticks(&[*pid]).map_err(|e| anyhow::anyhow!("--server-pid {pid}: {e}"))?;
    }
    let start = Instant::now() + Duration::from_millis(100);
    let measure_from = start + options.warmup;
    let recorder = Arc::new(Mutex::new(Recorder::new(start, measure_from)));
    let ctx = Arc::new(SessionContext {
        population: Arc::clone(&population),
        client,
        picker,
        profile: options.profile,
        protocols: options.protocols.clone(),
        shape: options.shape,
        timeout: options.timeout,
        seed: options.seed,
        recorder: Arc::clone(&recorder),
    });
    let started_at = time::OffsetDateTime::now_utc();
    let ticks_per_second = procstat::ticks_per_second();
    let pids = options.server_pids.clone();
    let cpu_start = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        procstat::cpu_ticks(&pids).ok()
    });
    // The servers' memory every second, for the timeline and the per-minute table.
    let memory_sampler = (!options.server_pids.is_empty()).then(|| {
        let (recorder, pids) = (Arc::clone(&recorder), options.server_pids.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                if let Ok(memory) = procstat::memory(&pids) {
                    lock(&recorder).server_memory(Instant::now(), memory.vm_rss_kib);
                }
            }
        })
    });
    let progress = options.progress.then(|| {
        tokio::spawn(progress_line(
            Arc::clone(&recorder),
            options.schedule,
            start,
            options.warmup,
            options.server_pids.clone(),
            ticks_per_second,
        ))
    });

    let (sessions, dispatched, interrupted) = dispatch(&ctx, &options, start).await;
    // The measured window ends with the schedule; the drain after it is judged, not measured.
    let schedule_end = measure_from + Duration::from_secs_f64(options.schedule.duration());
    if !interrupted {
        tokio::time::sleep_until(schedule_end.into()).await;
    }
    let measured_until = Instant::now();
    lock(&recorder).end_measurement(measured_until);
    let mut cpu_ticks = None;
    if let (Ok(Some(begin)), Ok(end)) = (cpu_start.await, procstat::cpu_ticks(&options.server_pids)) {
        cpu_ticks = Some(end.saturating_sub(begin));
    }
    drain(&ctx, sessions, if interrupted { Duration::from_secs(2) } else { options.drain }).await;
    let memory = procstat::memory(&options.server_pids).ok();
    if let Some(sampler) = memory_sampler {
        sampler.abort();
    }
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let mut recorder = lock(&recorder);
    recorder.roll(Instant::now());
    let measured_seconds = measured_until.saturating_duration_since(measure_from).as_secs_f64();
    let server = (!options.server_pids.is_empty())
        .then(|| cpu_ticks.map(|t| (t as f64 / ticks_per_second as f64, memory.unwrap_or_default())))
        .flatten();
    Ok(report::build(report::Inputs {
        options: &options,
        population: &population,
        picker_users: ctx.picker.len(),
        recorder: &mut recorder,
        started_at,
        measured_seconds,
        dispatched,
        interrupted,
        server,
    }))
}

/// Dispatches every arrival. Returns the sessions still running, how many were dispatched, and
/// whether Ctrl-C cut the run short.
async fn dispatch(ctx: &Arc<SessionContext>, options: &RunOptions, start: Instant) -> (JoinSet<()>, u64, bool) {
    let warmup_secs = options.warmup.as_secs_f64();
    // The warm-up runs at the schedule's starting rate (at least one session a second).
    let warmup = Schedule::new(
        Shape::Constant { rate: options.schedule.rate_at(0.0).max(1.0) },
        options.warmup.max(Duration::from_secs(1)),
    )
    .ok()
    .filter(|_| warmup_secs > 0.0);
    let warmup_times = warmup.into_iter().flat_map(|w| w.arrivals(options.arrivals, options.seed ^ 0x5757));
    let times =
        warmup_times.chain(options.schedule.arrivals(options.arrivals, options.seed).map(move |t| t + warmup_secs));

    let mut sessions = JoinSet::new();
    let mut k = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    for offset in times {
        let at = start + Duration::from_secs_f64(offset);
        tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => {}
            _ = &mut ctrl_c => return (sessions, k, true),
        }
        while sessions.try_join_next().is_some() {}
        if sessions.len() >= options.max_sessions {
            lock(&ctx.recorder).dropped += 1;
            continue;
        }
        sessions.spawn(run_session(Arc::clone(ctx), k, at));
        k += 1;
    }
    (sessions, k, false)
}

/// Waits up to `limit` for the sessions to finish; the rest are stopped and counted unfinished.
async fn drain(ctx: &SessionContext, mut sessions: JoinSet<()>, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        tokio::select! {
            joined = sessions.join_next() => if joined.is_none() { return },
            _ = tokio::time::sleep_until(deadline.into()) => {
                lock(&ctx.recorder).unfinished += sessions.len() as u64;
                sessions.abort_all();
                return;
            }
        }
    }
}

/// Prints one line a second: where the run is, its rate, latency, mismatches and server CPU.
async fn progress_line(
    recorder: Arc<Mutex<Recorder>>,
    schedule: Schedule,
    start: Instant,
    warmup: Duration,
    pids: Vec<u32>,
    ticks_per_second: u64,
) {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let total = warmup.as_secs_f64() + schedule.duration();
    let mut last_ticks = procstat::cpu_ticks(&pids).ok();
    let mut interval = tokio::time::interval_at((start + Duration::from_secs(1)).into(), Duration::from_secs(1));
    loop {
        interval.tick().await;
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(start).as_secs_f64();
        let in_schedule = elapsed - warmup.as_secs_f64();
        let (second, started, finished, mismatches) = {
            let mut r = lock(&recorder);
            r.roll(now);
            let second = r.timeline().last().cloned().unwrap_or_default();
            (second, r.sessions_started, r.sessions_finished, r.mismatch_total())
        };
        let ticks = procstat::cpu_ticks(&pids).ok();
        let cpu = match (last_ticks, ticks) {
            (Some(a), Some(b)) if !pids.is_empty() => {
                format!("  server cpu {:.0}%", (b.saturating_sub(a)) as f64 / ticks_per_second as f64 * 100.0)
            }
            _ => String::new(),
        };
        last_ticks = ticks;
        let phase = if in_schedule < 0.0 {
            "warm-up".to_owned()
        } else {
            schedule.simulated_clock(in_schedule).unwrap_or_else(|| format!("{:.0}/s", schedule.rate_at(in_schedule)))
        };
        let line = format!(
            "{elapsed:>5.0}s/{total:.0}s  {phase:>7}  sessions {started} ({} in flight)  {} req/s  p50 {:.1}ms p99 {:.1}ms  mismatches {mismatches}{cpu}",
            started.saturating_sub(finished),
            second.requests,
            second.p50_ms,
            second.p99_ms,
        );
        if tty {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }
}
