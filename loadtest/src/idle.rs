//! Idle connections: what a server keeps per kept-alive TLS connection. Opens N mutual-TLS
//! connections with cards at a steady rate (each a full handshake, as users logging in), sends one
//! request on each so every connection is past its handshake with HTTP state on the server, holds
//! them all open and idle, and reports. With the server's pids, its resident memory is read
//! before the first connection and at the end of the hold, while every connection is still open.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use spinegate_devpki::population::Population;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::client::{ClientBase, Connection, connect};
use crate::expect::{Outcome, Profile, expected};
use crate::fdlimit;
use crate::mix::{Mix, MixKey, Picker, Protocol, UserFilter};
use crate::procstat::{self, Memory};
use crate::rng::Rng;
use crate::session::prepare;
use crate::stats::{Latency, Summary, round3};

/// Open files the loader needs besides the connections (runtime, population files, stdio).
const SPARE_FILES: u64 = 256;

/// What an idle run is asked to do.
#[derive(Clone, Debug)]
pub struct IdleOptions {
    /// The server, on a loopback address.
    pub target: SocketAddr,
    /// The name the server certificate must carry (SNI).
    pub server_name: String,
    /// PEM CA certificates the server certificate chains to.
    pub server_ca: PathBuf,
    /// Connections to open and hold.
    pub connections: NonZeroU32,
    /// Connections opened per second (evenly spaced).
    pub rate: f64,
    /// Handshakes in flight at most; the schedule waits beyond (a server slower than the rate
    /// slows the opening instead of piling up connections).
    pub in_flight: NonZeroU32,
    /// How long every connection is held idle once the last is open.
    pub hold: Duration,
    /// The HTTP version spoken (HTTP/1.1 or HTTP/2; HTTP/3 is not over TCP).
    pub protocol: Protocol,
    /// Whose contract the one request per connection is judged by.
    pub profile: Profile,
    /// Server processes whose memory is read.
    pub server_pids: Vec<u32>,
    /// Bound on each connect and each request.
    pub timeout: Duration,
    /// Seed of who each connection is for.
    pub seed: u64,
    /// Whether to print progress while opening (to stderr).
    pub progress: bool,
}

/// An idle run's results.
#[derive(Clone, Debug, Serialize)]
pub struct IdleReport {
    /// `host:port` loaded.
    pub target: String,
    /// Whose contract answers were judged by.
    pub profile: String,
    /// `h1` or `h2`.
    pub http: String,
    /// Connections asked for.
    pub connections: u32,
    /// Connections opened, answered as their user must be, and held.
    pub opened: u64,
    /// Connections that failed or were answered otherwise, by outcome (`error:timeout`, `403`).
    pub failures: BTreeMap<String, u64>,
    /// From the first connection to the last answer.
    pub opening_seconds: f64,
    /// Intended start to answer of each connection's handshake and request.
    pub handshake_and_request: Summary,
    /// How long they were held once all were open.
    pub held_seconds: f64,
    /// Held connections the loader still saw open at the end of the hold.
    pub still_open: u64,
    /// The loader's open-file limit.
    pub open_files_limit: u64,
    /// The loader's own resident memory at the end of the hold, KiB.
    pub loader_rss_kib: u64,
    /// The server's memory, with `--server-pid`.
    pub server: Option<IdleServer>,
    /// Every connection opened and still open at the end.
    pub passed: bool,
}

/// The server's memory around an idle run.
#[derive(Clone, Debug, Serialize)]
pub struct IdleServer {
    /// The processes read.
    pub pids: Vec<u32>,
    /// Before the first connection.
    pub before: Memory,
    /// At the end of the hold, every connection still open.
    pub open: Memory,
    /// (resident at the end of the hold - resident before) / connections still open, KiB.
    pub rss_per_connection_kib: Option<f64>,
}

/// Opens, holds and reports.
pub async fn idle(population: Arc<Population>, options: IdleOptions) -> anyhow::Result<IdleReport> {
    anyhow::ensure!(
        options.target.ip().is_loopback(),
        "the target {} is not a loopback address: spinegate-loadtest only loads servers on this machine",
        options.target
    );
    anyhow::ensure!(options.protocol != Protocol::Http3, "idle connections are TCP: --http h1 or h2");
    anyhow::ensure!(options.rate > 0.0 && options.rate.is_finite(), "--rate must be a positive number");
    let limit = fdlimit::ensure_open_files(u64::from(options.connections.get()) + SPARE_FILES)?;
    let client = ClientBase::new(&population, &options.server_ca, options.target, &options.server_name)?;
    // Card users the contract serves: each connection is a login that must succeed.
    let picker = Picker::build(
        &population,
        &Mix::Weighted(vec![(MixKey::Smartcard, 1.0)]),
        UserFilter::Served,
        options.profile,
    )?;
    let before = procstat::memory(&options.server_pids).map_err(|e| anyhow::anyhow!("--server-pid: {e}"))?;
    let opener = Arc::new(Opener { population, client, picker, options: options.clone() });

    let opening_started = Instant::now();
    let opened = open_all(&opener).await;
    let opening_seconds = opening_started.elapsed().as_secs_f64();
    if options.progress {
        eprintln!(
            "{} of {} connections open in {opening_seconds:.1}s; holding them {:?}",
            opened.held.len(),
            options.connections,
            options.hold
        );
    }
    let hold = hold(&opened.held, &options).await;
    let held = opened.held.len() as u64;
    drop(opened.held);
    Ok(IdleReport {
        target: options.target.to_string(),
        profile: options.profile.name().to_owned(),
        http: options.protocol.name().to_owned(),
        connections: options.connections.get(),
        opened: held,
        failures: opened.failures,
        opening_seconds: round3(opening_seconds),
        handshake_and_request: opened.latency.summary(),
        held_seconds: round3(hold.seconds),
        still_open: hold.still_open,
        open_files_limit: limit.soft,
        loader_rss_kib: hold.loader_rss_kib,
        server: (!options.server_pids.is_empty())
            .then(|| IdleServer::between(&options.server_pids, before, hold.server, hold.still_open)),
        passed: held == u64::from(options.connections.get()) && hold.still_open == held,
    })
}

impl IdleReport {
    /// A few lines for people.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} of {} {} connections to {} opened in {:.1}s (handshake + request p50 {:.1} ms, p99 {:.1} ms); \
             held {:.1}s, {} still open at the end\n",
            self.opened,
            self.connections,
            self.http,
            self.target,
            self.opening_seconds,
            self.handshake_and_request.p50_ms,
            self.handshake_and_request.p99_ms,
            self.held_seconds,
            self.still_open,
        );
        for (outcome, count) in &self.failures {
            out.push_str(&format!("  not held: {count} × {outcome}\n"));
        }
        if let Some(server) = &self.server {
            out.push_str(&format!(
                "server resident memory: {:.1} MiB before, {:.1} MiB with them open: {} KiB per connection\n",
                server.before.vm_rss_kib as f64 / 1024.0,
                server.open.vm_rss_kib as f64 / 1024.0,
                server.rss_per_connection_kib.map_or_else(|| "n/a".to_owned(), |k| format!("{k:.1}")),
            ));
        }
        out
    }
}

impl IdleServer {
    /// The server's memory `before` the connections and while `still_open` of them were `open`.
    fn between(pids: &[u32], before: Memory, open: Memory, still_open: u64) -> Self {
        let grown = open.vm_rss_kib as f64 - before.vm_rss_kib as f64;
        Self {
            pids: pids.to_vec(),
            before,
            open,
            rss_per_connection_kib: (still_open > 0).then(|| round3(grown / still_open as f64)),
        }
    }
}

/// What the end of the hold found.
struct Hold {
    seconds: f64,
    still_open: u64,
    /// The server's memory (zero if it could not be read).
    server: Memory,
    loader_rss_kib: u64,
}

/// Holds `connections` idle for the hold, then reads memory and counts those still open.
async fn hold(connections: &[Connection], options: &IdleOptions) -> Hold {
    let started = Instant::now();
    tokio::time::sleep(options.hold).await;
    Hold {
        server: procstat::memory(&options.server_pids).unwrap_or_default(),
        still_open: connections.iter().filter(|c| c.is_open()).count() as u64,
        seconds: started.elapsed().as_secs_f64(),
        loader_rss_kib: procstat::memory(&[std::process::id()]).map(|m| m.vm_rss_kib).unwrap_or(0),
    }
}

/// What every opening task shares.
struct Opener {
    population: Arc<Population>,
    client: ClientBase,
    picker: Picker,
    options: IdleOptions,
}

/// The connections held, and what happened to the others.
struct Opened {
    held: Vec<Connection>,
    failures: BTreeMap<String, u64>,
    latency: Latency,
}

/// Starts connection `k` at `start + k / rate`, at most `in_flight` at once, and collects them.
async fn open_all(opener: &Arc<Opener>) -> Opened {
    let options = &opener.options;
    let total = options.connections.get();
    let spacing = Duration::from_secs_f64(1.0 / options.rate);
    let slots = Arc::new(Semaphore::new(options.in_flight.get() as usize));
    let mut tasks = JoinSet::new();
    let mut opened =
        Opened { held: Vec::with_capacity(total as usize), failures: BTreeMap::new(), latency: Latency::new() };
    let start = Instant::now();
    let mut last_progress = start;
    for k in 0..total {
        let intended = start + spacing * k;
        tokio::time::sleep_until(intended.into()).await;
        // Never closed, so acquiring fails only if it were: then the connection is not opened.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { break };
        tasks.spawn(open_one(Arc::clone(opener), k, intended, slot));
        while let Some(done) = tasks.try_join_next() {
            collect(&mut opened, done);
        }
        if options.progress && last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            eprintln!("  {} of {total} open", opened.held.len());
        }
    }
    while let Some(done) = tasks.join_next().await {
        collect(&mut opened, done);
    }
    opened
}

fn collect(opened: &mut Opened, done: Result<(Result<Connection, String>, Duration), tokio::task::JoinError>) {
    match done {
        Ok((Ok(connection), took)) => {
            opened.latency.record(took);
            opened.held.push(connection);
        }
        Ok((Err(outcome), took)) => {
            opened.latency.record(took);
            *opened.failures.entry(outcome).or_default() += 1;
        }
        Err(_) => *opened.failures.entry("error:task_panicked".to_owned()).or_default() += 1,
    }
}

/// One login: a user the contract serves, a full handshake with their card, one request judged
/// against what they must get. The connection when it was, else the outcome's label; and how
/// long it took from `intended`.
async fn open_one(
    opener: Arc<Opener>,
    k: u32,
    intended: Instant,
    _slot: OwnedSemaphorePermit,
) -> (Result<Connection, String>, Duration) {
    let options = &opener.options;
    let mut rng = Rng::stream(options.seed, u64::from(k));
    let user = opener.population.user(opener.picker.pick(&mut rng));
    let must = expected(options.profile, &user);
    let result = async {
        let (tls, spec) = prepare(&opener.population, &opener.client, &user, options.protocol, &mut rng)
            .map_err(|kind| Outcome::Failed(kind).label())?;
        let mut connection = connect(&opener.client, &tls, options.timeout).await.map_err(|o| o.label())?;
        let outcome = connection.request(&spec, options.timeout).await;
        if must.matches(&outcome) { Ok(connection) } else { Err(outcome.label()) }
    }
    .await;
    (result, intended.elapsed())
}
