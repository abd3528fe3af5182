//! The command line: `sightline serve`, `sightline check-config`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::logging;

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SIGHTLINE_REVISION"), ")");

/// Sightline: a single-binary monitoring server for Rust services.
#[derive(Debug, Parser)]
#[command(name = "sightline", version = VERSION, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: /metrics, /health/live and the /api/v1 API.
    Serve(ServeArgs),
    /// Check a configuration file and name the file, line and reason of the first error.
    CheckConfig {
        /// The YAML file to check.
        file: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The address to listen on [default: 127.0.0.1:9750, or `server.listen`].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// A YAML configuration file; every setting has a default, and SIGHTLINE_<SECTION>__<KEY> variables
    /// override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where to keep data [default: ./sightline-data, or `server.data_dir`].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve(args),
        Command::CheckConfig { file } => check_config(&file),
    }
}

/// The process environment, leaving out variables that are not valid UTF-8 (they cannot be settings).
fn environment() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

fn serve(args: ServeArgs) -> ExitCode {
    let mut config = match Config::load(args.config.as_deref(), environment()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(data_dir) = args.data_dir {
        config.server.data_dir = data_dir;
    }
    let log_filter = std::env::var(logging::LOG_ENV).ok();
    if let Err(err) = logging::init(&config.log, log_filter) {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "sightline failed");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &Path) -> ExitCode {
    match Config::load(Some(file), std::iter::empty()) {
        Ok(_) => {
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
