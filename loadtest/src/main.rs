//! `spinegate-loadtest`: the national login peak simulator. It speaks to a gateway over the wire
//! only (spinegate or any other TLS gateway on the same PKI), so it depends on `devpki` for
//! certificates and never on the gateway crate.
//!
//! This release carries the command-line surface only; scenarios arrive with the load-test work
//! (see ARCHITECTURE.md, "spinegate-loadtest").

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "spinegate-loadtest", version, about = "National login peak simulator for spinegate")]
struct Cli {
    /// A `spinegate dev` manifest describing the gateway and its users.
    #[arg(long)]
    manifest: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = cli.manifest;
    eprintln!("spinegate-loadtest: no scenarios are available in this release");
    ExitCode::from(2)
}
