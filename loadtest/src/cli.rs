//! The command line: `population`, `serve`, `config`, `run` and `idle`. Arguments become typed,
//! bounded values here, with a clear error for anything else; `commands` does the work.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use spinegate_devpki::KeyKind;

use crate::expect::Profile;
use crate::mix::UserFilter;
use crate::schedule::Arrivals;

mod commands;

pub use commands::execute;

/// `spinegate-loadtest`.
#[derive(Debug, Parser)]
#[command(name = "spinegate-loadtest", version, about = "National login peak simulator for spinegate")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mint (or reuse) a population of users into a directory, with the gateway configuration
    /// fragment that serves them.
    Population(PopulationArgs),
    /// Serve the population's OCSP responder, token key set and demo upstream until stopped.
    Serve(ServeArgs),
    /// Write a complete gateway configuration for the population.
    Config(ConfigArgs),
    /// Run a load scenario against a gateway on this machine and report.
    Run(Box<RunArgs>),
    /// Open many mutual-TLS connections with cards, one request each, hold them idle, and report
    /// the server's memory per connection.
    Idle(IdleArgs),
}

/// `population`.
#[derive(Debug, Args)]
pub struct PopulationArgs {
    /// The population directory (created or reused).
    #[arg(long)]
    pub dir: PathBuf,
    /// Users.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub users: u32,
    /// Seed of who is who.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Users' key algorithm: rsa2048 (smartcards) or ecdsa-p256 (quick tests).
    #[arg(long, default_value = "rsa2048", value_parser = parse_key_kind)]
    pub key_kind: KeyKind,
    /// Distinct key pairs, shared round-robin by the users.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub key_pool: u32,
    /// Share of users without a smartcard who bring a token.
    #[arg(long, default_value_t = 0.20)]
    pub token_fraction: f64,
    /// Share of users whose card is revoked.
    #[arg(long, default_value_t = 0.02)]
    pub revoked_fraction: f64,
    /// Share of users whose card has expired.
    #[arg(long, default_value_t = 0.02)]
    pub expired_fraction: f64,
    /// Share of users whose card ends inside the 90-day window.
    #[arg(long, default_value_t = 0.05)]
    pub expiring_fraction: f64,
    /// Share of users whose role lacks the patient route's activity.
    #[arg(long, default_value_t = 0.03)]
    pub no_role_fraction: f64,
    /// Organisations role profiles are spread across.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub organisations: u32,
    /// Where `serve` answers OCSP (written into the gateway configuration).
    #[arg(long, default_value = "127.0.0.1:29080")]
    pub ocsp: SocketAddr,
    /// Where `serve` publishes the token key set.
    #[arg(long, default_value = "127.0.0.1:29081")]
    pub jwks: SocketAddr,
    /// Where `serve` runs the demo upstream.
    #[arg(long, default_value = "127.0.0.1:29082")]
    pub upstream: SocketAddr,
    /// Replace a different or outdated population in the directory.
    #[arg(long)]
    pub regenerate: bool,
}

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The population directory.
    #[arg(long)]
    pub population: PathBuf,
    /// Stop after this long (default: at Ctrl-C or SIGTERM).
    #[arg(long, value_parser = parse_duration)]
    pub r#for: Option<Duration>,
}

/// `config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The population directory.
    #[arg(long)]
    pub population: PathBuf,
    /// The gateway's client-facing listener.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// The gateway's admin listener.
    #[arg(long, default_value = "127.0.0.1:9901")]
    pub admin: SocketAddr,
    /// The audit log (default: DIR/logs/audit.jsonl). Keep it out of the configuration's
    /// directory: spinegate reloads on any change there.
    #[arg(long)]
    pub audit: Option<PathBuf>,
    /// The gateway's log level (`info` logs a line per request, as in production).
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Where to write it (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// What `run` and `idle` share: the population, and the server it is run against.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The population directory.
    #[arg(long)]
    pub population: PathBuf,
    /// The server's address (loopback only).
    #[arg(long, default_value = "127.0.0.1:8443", value_parser = parse_loopback)]
    pub target: SocketAddr,
    /// The name the server certificate is checked for (and SNI).
    #[arg(long, default_value = "localhost")]
    pub server_name: String,
    /// PEM CA of the server certificate (default: the population's pki/tls-root.pem).
    #[arg(long)]
    pub server_ca: Option<PathBuf>,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The population and the server it is run against.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Session arrivals: constant:RATE, ramp:FROM:TO (sessions per second) or peak:FACTOR (the
    /// national morning peak, 1.0 = 3,500 requests/s at 09:00).
    #[arg(long, default_value = "constant:20")]
    pub schedule: String,
    /// Length of the schedule (1s to 4h).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured time before it, at its starting rate (up to 10m).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// poisson (independent users) or uniform (evenly spaced).
    #[arg(long, default_value = "poisson", value_parser = parse_arrivals)]
    pub arrivals: Arrivals,
    /// Calls after the login: N or MIN..MAX.
    #[arg(long, default_value = "3..8", value_parser = parse_calls)]
    pub calls: (u32, u32),
    /// Mean think time before each call (exponential; 0s for back-to-back).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub think: Duration,
    /// Share of later calls on a new connection resuming the TLS session (0 to 1).
    #[arg(long, default_value_t = 0.3)]
    pub resumed: f64,
    /// Who sessions are for: population, or e.g. smartcard=80,token=20 or
    /// smartcard=70,security_key=10,windows_hello=10,ipad=5,nhsmail=5.
    #[arg(long, default_value = "population")]
    pub mix: String,
    /// HTTP versions: h1, h2, h3, or weights such as h1=1,h2=1,h3=1 (h3: QUIC to the same port).
    #[arg(long, default_value = "h1=1,h2=1")]
    pub http: String,
    /// Whose contract answers are judged by: spinegate or mtls-proxy (nginx, HAProxy).
    #[arg(long, default_value = "spinegate", value_parser = parse_profile)]
    pub expect: Profile,
    /// Which users: all, or served (only those the contract serves).
    #[arg(long, default_value = "all", value_parser = parse_users)]
    pub users: UserFilter,
    /// A server process whose CPU time and memory to report (repeat for several).
    #[arg(long)]
    pub server_pid: Vec<u32>,
    /// Sessions in flight at most; arrivals beyond fail the run.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_sessions: u32,
    /// Bound on each connect and each request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How long sessions may take to finish after the schedule (up to 10m; default: the longest
    /// a session can take — every call at its longest think time and every step at its timeout).
    #[arg(long, value_parser = parse_duration)]
    pub drain: Option<Duration>,
    /// Seed of arrivals and choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory for report.json, report.md and report.svg.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A name for the report.
    #[arg(long)]
    pub label: Option<String>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

/// `idle`.
#[derive(Debug, Args)]
pub struct IdleArgs {
    /// The population and the server it is run against.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub connections: u32,
    /// Connections opened per second, evenly spaced (each a full handshake with a card).
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Handshakes in flight at most; the opening waits beyond.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub in_flight: u32,
    /// How long to hold them idle once all are open (up to 1h).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub hold: Duration,
    /// HTTP version: h1 or h2.
    #[arg(long, default_value = "h1")]
    pub http: String,
    /// Whose contract the request on each connection is judged by: spinegate or mtls-proxy.
    #[arg(long, default_value = "spinegate", value_parser = parse_profile)]
    pub expect: Profile,
    /// A server process whose memory to read (repeat for several, e.g. nginx's master and worker).
    #[arg(long)]
    pub server_pid: Vec<u32>,
    /// Bound on each connect and each request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Seed of who each connection is for.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the report here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration such as 30s or 5m: {e}"))
}

fn parse_loopback(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s.parse().map_err(|_| format!("{s:?} is not an address such as 127.0.0.1:8443"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not a loopback address: the loader only loads servers on this machine"));
    }
    Ok(addr)
}

fn parse_key_kind(s: &str) -> Result<KeyKind, String> {
    match s {
        "rsa2048" | "rsa" => Ok(KeyKind::Rsa2048),
        "ecdsa-p256" | "ecdsa" => Ok(KeyKind::EcdsaP256),
        _ => Err(format!("{s:?}: expected rsa2048 or ecdsa-p256")),
    }
}

fn parse_arrivals(s: &str) -> Result<Arrivals, String> {
    match s {
        "poisson" => Ok(Arrivals::Poisson),
        "uniform" => Ok(Arrivals::Uniform),
        _ => Err(format!("{s:?}: expected poisson or uniform")),
    }
}

fn parse_profile(s: &str) -> Result<Profile, String> {
    Profile::parse(s).ok_or_else(|| format!("{s:?}: expected spinegate or mtls-proxy"))
}

fn parse_users(s: &str) -> Result<UserFilter, String> {
    match s {
        "all" => Ok(UserFilter::All),
        "served" => Ok(UserFilter::Served),
        _ => Err(format!("{s:?}: expected all or served")),
    }
}

/// `N` or `MIN..MAX`, at most 10,000 calls.
fn parse_calls(s: &str) -> Result<(u32, u32), String> {
    let number = |t: &str| t.trim().parse::<u32>().map_err(|_| format!("{s:?}: expected N or MIN..MAX calls"));
    let (min, max) = match s.split_once("..") {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let n = number(s)?;
            (n, n)
        }
    };
    if min > max || max > 10_000 {
        return Err(format!("{s:?}: calls must be MIN..MAX with MIN ≤ MAX ≤ 10000"));
    }
    Ok((min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_parse() {
        assert_eq!(parse_calls("5"), Ok((5, 5)));
        assert_eq!(parse_calls("3..8"), Ok((3, 8)));
        assert!(parse_calls("8..3").is_err());
        assert!(parse_calls("x").is_err());
        assert!(parse_calls("1..20000").is_err());
    }

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(parse_loopback("127.0.0.1:8443").is_ok());
        assert!(parse_loopback("127.1.2.3:1").is_ok());
        assert!(parse_loopback("[::1]:8443").is_ok());
        assert!(parse_loopback("10.0.0.1:8443").unwrap_err().contains("loopback"));
        assert!(parse_loopback("example.org:443").is_err());
    }

    #[test]
    fn bad_arguments_are_errors_not_panics() {
        for args in [
            vec!["spinegate-loadtest", "run", "--population", "p", "--target", "192.168.1.1:443"],
            vec!["spinegate-loadtest", "run", "--population", "p", "--duration", "soon"],
            vec!["spinegate-loadtest", "run", "--population", "p", "--calls", "-1"],
            vec!["spinegate-loadtest", "population", "--dir", "p", "--users", "0"],
            vec!["spinegate-loadtest", "population", "--dir", "p", "--key-kind", "dsa"],
        ] {
            assert!(Cli::try_parse_from(&args).is_err(), "{args:?}");
        }
        assert!(Cli::try_parse_from(["spinegate-loadtest", "run", "--population", "p"]).is_ok());
    }

    #[test]
    fn idle_takes_bounded_arguments_and_loopback_targets() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["spinegate-loadtest", "idle", "--population", "p"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args)
        };
        assert!(parse(&["--connections", "10000", "--hold", "10s", "--server-pid", "1", "--server-pid", "2"]).is_ok());
        assert!(parse(&["--connections", "0"]).is_err());
        assert!(parse(&["--target", "10.0.0.1:443"]).is_err());
        assert!(parse(&["--hold", "a while"]).is_err());
    }
}
