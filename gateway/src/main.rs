//! The `spinegate` command: parse arguments, load configuration, set up logging, run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use spinegate::dev::{DevOptions, start as start_dev};
use spinegate::log_output;
use spinegate::serve::Hangup;
use spinegate::{Gateway, Options};
use spinegate_config::LogFormat;

#[derive(Parser)]
#[command(name = "spinegate", version, about = "Authentication gateway for patient-data services")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a configuration file.
    Run {
        /// The TOML configuration.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file and the material it names, without starting.
    CheckConfig {
        /// The TOML configuration.
        config: PathBuf,
    },
    /// Run the embedded development world: dev PKI, demo patient-data service and the gateway.
    Dev {
        /// Directory for the dev PKI, configuration and manifest (created or reused).
        #[arg(long, default_value = "spinegate-dev")]
        dir: PathBuf,
        /// Client-facing listener.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Admin listener.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime can be built");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spinegate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::CheckConfig { config } => {
            let parsed = spinegate_config::load(&config)?;
            for warning in spinegate::runtime::check_material(&parsed)? {
                println!("warning: {warning}");
            }
            println!("{}: configuration is valid", config.display());
            Ok(())
        }
        Command::Run { config } => {
            // Before anything else, so a SIGHUP during start-up reloads instead of ending the process.
            let hangup = Hangup::listen();
            let parsed = spinegate_config::load(&config)?;
            let _log = init_tracing(&parsed.log.level, parsed.log.format)?;
            let gateway = Gateway::start(parsed, Options::default()).await?;
            // SIGHUP, or a change to the file or the material it names, reloads.
            gateway.watch(config, hangup);
            shutdown_signal().await;
            gateway.shutdown(Duration::from_secs(30)).await;
            Ok(())
        }
        Command::Dev { dir, listen, admin } => {
            let log = init_tracing("info", LogFormat::Text)?;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let dir = dir.canonicalize()?;
            let world = start_dev(&DevOptions { dir, listen, admin }, Options::default()).await?;
            log.flush(); // start-up lines first, then the walkthrough
            print_walkthrough(&world.manifest, &world.manifest_path);
            shutdown_signal().await;
            world.shutdown(Duration::from_secs(5)).await;
            Ok(())
        }
    }
}

fn print_walkthrough(m: &spinegate_devpki::Manifest, manifest_path: &std::path::Path) {
    let curl = |user: &str, path: &str| -> String {
        let u = m.user(user).expect("demo users exist");
        format!(
            "curl --cacert {} --cert {} --key {} {}{}",
            m.server_ca.display(),
            u.cert.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            u.key.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            m.gateway_url,
            path
        )
    };
    println!();
    println!("spinegate dev is running: gateway {}, admin {}", m.gateway_url, m.admin_url);
    println!("manifest: {}", manifest_path.display());
    println!();
    println!("alice (valid smartcard) reads a patient:");
    println!("  {}", curl("alice", "/Patient/9000000009"));
    println!("carol (certificate ends within 90 days) gets X-Certificate-Expiry-Warning:");
    println!("  {} -i", curl("carol", "/Patient/9000000017"));
    println!("dave (expired certificate) is told what to do: 401 certificate_expired, an HTML page for a browser:");
    println!("  {} -H 'Accept: text/html'", curl("dave", "/Patient/9000000009"));
    println!("bob (card reported lost: certificate revoked) gets 401 certificate_revoked, never the service:");
    println!("  {}", curl("bob", "/Patient/9000000009"));
    println!("carol's identity, roles and days left on her card (JSON; HTML for a browser):");
    println!("  {}", curl("carol", "/.spinegate/whoami"));
    println!("grace (no smartcard; signed in with a security key) presents her Care Identity token:");
    let tokens = manifest_path.parent().unwrap_or(std::path::Path::new(".")).join("tokens");
    println!(
        "  curl --cacert {} -H \"Authorization: Bearer $(cat {})\" {}/Patient/9000000009",
        m.server_ca.display(),
        tokens.join("grace.jwt").display(),
        m.gateway_url
    );
    println!("erin (admin clerk) is authenticated but her role may not view records: 403 activity_not_permitted:");
    println!("  {}", curl("erin", "/Patient/9000000009"));
    if let Some(frank) = m.user("frank")
        && let Some(second) = frank.role_profiles.get(1)
    {
        println!("frank holds roles in two organisations and picks one ({}):", second.org);
        println!("  {} -H 'NHSD-Session-URID: {}'", curl("frank", "/Patient/9000000009"), second.id);
    }
    if let Some(audit) = &m.audit_log {
        println!("every decision, allowed or refused, is a JSON line in the audit log:");
        println!("  tail -f {}", audit.display());
    }
    if let Some(roles) = &m.role_directory {
        println!("move a user to another organisation by editing {} (picked up within a second)", roles.display());
    }
    println!("no certificate and no token:");
    println!("  curl --cacert {} {}/Patient/9000000009", m.server_ca.display(), m.gateway_url);
    if m.h3 {
        println!("HTTP/3 (QUIC) on the same port number over UDP, with a curl built with HTTP/3:");
        println!("  {} --http3-only", curl("alice", "/Patient/9000000009"));
    }
    println!();
    println!("Press Ctrl-C to stop.");
}

/// Logs to standard output through [`log_output`]'s batching writer; the guard writes out the
/// last lines when `run` ends.
fn init_tracing(level: &str, format: LogFormat) -> anyhow::Result<log_output::LogGuard> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let (writer, guard) = log_output::stdout().context("starting the log writer thread")?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
    Ok(guard)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM can be handled");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
