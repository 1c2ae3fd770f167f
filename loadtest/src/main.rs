//! `spinegate-loadtest`: parse arguments, start the runtime, run the subcommand. Exit status 0
//! when everything matched, 1 when a run found mismatches, 2 on an error.

use std::process::ExitCode;

use clap::Parser;
use spinegate_loadtest::cli::{Cli, execute};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("spinegate-loadtest: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("spinegate-loadtest: {e:#}");
            ExitCode::from(2)
        }
    }
}
