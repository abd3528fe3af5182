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
    /// Ask a running server how healthy it is. Exit code: 0 healthy, 1 degraded, 2 unhealthy,
    /// 3 unreachable; so a container HEALTHCHECK needs no curl.
    Health(HealthArgs),
}

#[derive(Debug, clap::Args)]
struct HealthArgs {
    /// The server's base URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9750")]
    server: String,
    /// Print nothing; only the exit code tells.
    #[arg(long, short)]
    quiet: bool,
    /// Print the server's JSON instead of a table.
    #[arg(long, conflicts_with = "quiet")]
    json: bool,
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
        Command::Health(args) => health(&args),
    }
}

/// Exit codes of `sightline health`.
const UNREACHABLE: u8 = 3;

fn health(args: &HealthArgs) -> ExitCode {
    let url = format!("{}/health", args.server.trim_end_matches('/'));
    let fetched = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
        .and_then(|runtime| runtime.block_on(fetch_health(&url)));
    let body = match fetched {
        Ok(body) => body,
        Err(err) => {
            if !args.quiet {
                eprintln!("error: {url}: {err}");
            }
            return ExitCode::from(UNREACHABLE);
        }
    };
    let code = match body["status"].as_str() {
        Some("healthy") => 0,
        Some("degraded") => 1,
        Some(_) => 2,
        None => {
            if !args.quiet {
                eprintln!("error: {url} answered without a `status` field");
            }
            return ExitCode::from(UNREACHABLE);
        }
    };
    if args.json {
        println!("{body}");
    } else if !args.quiet {
        print!("{}", health_table(&body, std::io::IsTerminal::is_terminal(&std::io::stdout())));
    }
    ExitCode::from(code)
}

async fn fetch_health(url: &str) -> Result<serde_json::Value, String> {
    // reqwest is built without a bundled crypto provider; ring is the small one. Already installed is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let response = client.get(url).send().await.map_err(|e| format!("cannot connect: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| format!("cannot read the answer: {e}"))?;
    // 503 is an answer too: it carries the unhealthy report.
    serde_json::from_str(&text).map_err(|e| format!("HTTP {status}, not a health report ({e})"))
}

/// A table of the checks, colored when `color` (a terminal).
fn health_table(body: &serde_json::Value, color: bool) -> String {
    let paint = |status: &str| -> String {
        let code = match status {
            "healthy" => "32",
            "degraded" => "33",
            "unhealthy" => "31",
            _ => "90",
        };
        if color { format!("\x1b[{code}m{status:<9}\x1b[0m") } else { format!("{status:<9}") }
    };
    let mut out = String::new();
    let overall = body["status"].as_str().unwrap_or("unknown");
    out.push_str(&format!("overall  {}\n\n", paint(overall)));
    let checks = body["checks"].as_array().cloned().unwrap_or_default();
    let width = checks.iter().filter_map(|c| c["name"].as_str()).map(str::len).max().unwrap_or(5).max(5);
    out.push_str(&format!("{:<width$}  {:<9}  {:>10}  {}\n", "CHECK", "STATUS", "OBSERVED", "MESSAGE"));
    for check in &checks {
        let observed = match (check["observed_value"].as_f64(), check["observed_unit"].as_str()) {
            (Some(value), Some("ratio")) => format!("{:.1}%", value * 100.0),
            (Some(value), Some(unit)) => format!("{value:.1} {unit}"),
            _ => String::new(),
        };
        let mut message = check["message"].as_str().unwrap_or("").replace('\n', " ");
        if message.chars().count() > 80 {
            message = message.chars().take(77).collect::<String>() + "...";
        }
        out.push_str(&format!(
            "{:<width$}  {}  {:>10}  {}\n",
            check["name"].as_str().unwrap_or("?"),
            paint(check["status"].as_str().unwrap_or("unknown")),
            observed,
            message
        ));
    }
    out
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
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::serve(config, log_filter)) {
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
