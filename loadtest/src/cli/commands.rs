//! What each subcommand does, once its arguments are typed.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use spinegate_devpki::population::{
    Fractions, GatewaySettings, Population, PopulationSpec, Services, full_config, open_or_generate,
};

use super::{Cli, Command, ConfigArgs, IdleArgs, PopulationArgs, RunArgs, ServeArgs, ServerArgs};
use crate::idle::{IdleOptions, idle};
use crate::mix::{Protocol, parse_mix, parse_protocols};
use crate::options::RunOptions;
use crate::run::run;
use crate::schedule::{Schedule, Shape};
use crate::session::SessionShape;

/// Runs a command; `Ok(false)` when a run found mismatches.
pub async fn execute(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Population(args) => population(args).map(|()| true),
        Command::Serve(args) => serve(args).await.map(|()| true),
        Command::Config(args) => config(args).map(|()| true),
        Command::Run(args) => run_command(*args).await,
        Command::Idle(args) => idle_command(args).await,
    }
}

fn population(args: PopulationArgs) -> anyhow::Result<()> {
    let spec = PopulationSpec {
        users: NonZeroU32::new(args.users).context("--users must be at least 1")?,
        seed: args.seed,
        key_kind: args.key_kind,
        key_pool: NonZeroU32::new(args.key_pool).context("--key-pool must be at least 1")?,
        fractions: Fractions {
            token: args.token_fraction,
            revoked: args.revoked_fraction,
            expired: args.expired_fraction,
            expiring: args.expiring_fraction,
            no_role: args.no_role_fraction,
        }
        .validated()?,
        organisations: NonZeroU32::new(args.organisations).context("--organisations must be at least 1")?,
        services: Services { ocsp: args.ocsp, jwks: args.jwks, upstream: args.upstream },
    };
    let started = std::time::Instant::now();
    let last = std::sync::Mutex::new(std::time::Instant::now());
    let progress = |done: u32, total: u32| {
        let mut last = last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if done == total || last.elapsed() >= Duration::from_secs(2) {
            *last = std::time::Instant::now();
            eprintln!("  minted {done}/{total} users ({:.0}s)", started.elapsed().as_secs_f64());
        }
    };
    let (population, reused) = open_or_generate(&args.dir, &spec, args.regenerate, &progress)?;
    let verb = if reused { "reused" } else { "minted" };
    println!(
        "{verb} {} users in {} ({:.1}s)",
        population.len(),
        population.dir().display(),
        started.elapsed().as_secs_f64()
    );
    for class in &population.file().classes {
        println!("  {:>8}  {:<40} must get: {}", class.users, class.class, class.spinegate_must_answer);
    }
    println!("gateway configuration fragment: {}", population.path("spinegate-fragment.toml").display());
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let population = Arc::new(Population::open(&args.population)?);
    let addrs = population.file().services;
    let running = crate::serve::start(Arc::clone(&population), addrs).await?;
    println!(
        "serving {} users: OCSP http://{}/  JWKS http://{}/jwks  upstream http://{}",
        population.len(),
        running.addrs.ocsp,
        running.addrs.jwks,
        running.addrs.upstream
    );
    let bound = async {
        match args.r#for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = bound => {}
    }
    let requests = running.ocsp_requests.load(std::sync::atomic::Ordering::Relaxed);
    running.shutdown().await;
    println!("stopped ({requests} OCSP requests answered)");
    Ok(())
}

fn config(args: ConfigArgs) -> anyhow::Result<()> {
    let population = Population::open(&args.population)?;
    let audit_file = args.audit.unwrap_or_else(|| population.path("logs/audit.jsonl"));
    let parent = |p: &std::path::Path| {
        let dir = p.parent().unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        dir.canonicalize().with_context(|| format!("resolving {}", dir.display()))
    };
    let audit_dir = parent(&audit_file)?;
    // spinegate reloads on any change in the directories holding its configuration and the
    // certificates it names; an audit log there would reload it on every request.
    let mut watched = vec![population.path("pki")];
    if let Some(out) = &args.out {
        watched.push(parent(out)?);
    }
    anyhow::ensure!(
        !watched.contains(&audit_dir),
        "the audit log {} would be in a directory spinegate watches for changes ({}); put it elsewhere",
        audit_file.display(),
        audit_dir.display()
    );
    let settings = GatewaySettings { listen: args.listen, admin: args.admin, audit_file, log_level: args.log_level };
    let text = full_config(&population, &settings);
    match args.out {
        Some(path) => std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

async fn run_command(args: RunArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(args.duration <= Duration::from_secs(4 * 3600), "--duration is at most 4h");
    anyhow::ensure!(args.warmup <= Duration::from_secs(600), "--warmup is at most 10m");
    anyhow::ensure!(args.drain.is_none_or(|d| d <= Duration::from_secs(600)), "--drain is at most 10m");
    anyhow::ensure!(
        args.timeout >= Duration::from_millis(10) && args.timeout <= Duration::from_secs(300),
        "--timeout is between 10ms and 5m"
    );
    anyhow::ensure!(args.think <= Duration::from_secs(3600), "--think is at most 1h");
    anyhow::ensure!((0.0..=1.0).contains(&args.resumed), "--resumed is a fraction between 0 and 1");
    let shape = SessionShape {
        calls_min: args.calls.0,
        calls_max: args.calls.1,
        think: args.think,
        resumed_fraction: args.resumed,
    };
    let schedule = Schedule::new(Shape::parse(&args.schedule, shape.mean_requests())?, args.duration)?;
    let mix = parse_mix(&args.mix)?;
    let protocols = parse_protocols(&args.http)?;
    let (population, target, server_name, server_ca) = args.server.open()?;
    let options = RunOptions {
        target,
        server_name,
        server_ca,
        schedule,
        warmup: args.warmup,
        arrivals: args.arrivals,
        shape,
        mix,
        mix_text: args.mix,
        protocols,
        profile: args.expect,
        users: args.users,
        server_pids: args.server_pid,
        max_sessions: args.max_sessions as usize,
        timeout: args.timeout,
        drain: args.drain.unwrap_or_else(|| shape.longest(args.timeout).min(Duration::from_secs(600))),
        seed: args.seed,
        progress: !args.quiet,
        label: args.label.unwrap_or_else(|| args.schedule.clone()),
    };
    let report = run(population, options).await?;
    if let Some(dir) = &args.out {
        report.write(dir)?;
        eprintln!("report: {}/report.{{json,md,svg}}", dir.display());
    }
    println!("{}", report.markdown());
    Ok(report.passed)
}

async fn idle_command(args: IdleArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(args.hold <= Duration::from_secs(3600), "--hold is at most 1h");
    anyhow::ensure!(
        args.timeout >= Duration::from_millis(10) && args.timeout <= Duration::from_secs(300),
        "--timeout is between 10ms and 5m"
    );
    anyhow::ensure!(args.rate > 0.0 && args.rate <= 100_000.0, "--rate is between 0 and 100000 connections/s");
    let protocol = match parse_protocols(&args.http)?.as_slice() {
        [(protocol @ (Protocol::Http1 | Protocol::Http2), _)] => *protocol,
        _ => anyhow::bail!("--http {:?}: idle connections speak one of h1 or h2", args.http),
    };
    let (population, target, server_name, server_ca) = args.server.open()?;
    let options = IdleOptions {
        target,
        server_name,
        server_ca,
        connections: NonZeroU32::new(args.connections).context("--connections must be at least 1")?,
        rate: args.rate,
        in_flight: NonZeroU32::new(args.in_flight).context("--in-flight must be at least 1")?,
        hold: args.hold,
        protocol,
        profile: args.expect,
        server_pids: args.server_pid,
        timeout: args.timeout,
        seed: args.seed,
        progress: !args.quiet,
    };
    let report = idle(population, options).await?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("serialising the report")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    print!("{}", report.text());
    Ok(report.passed)
}

impl ServerArgs {
    /// The population opened, and the server's address, name and CA (by default the
    /// population's own TLS root).
    fn open(self) -> anyhow::Result<(Arc<Population>, SocketAddr, String, PathBuf)> {
        let population = Arc::new(Population::open(&self.population)?);
        let server_ca = self.server_ca.unwrap_or_else(|| population.path("pki/tls-root.pem"));
        Ok((population, self.target, self.server_name, server_ca))
    }
}
