//! The command line: `sightline serve`, `check-config`, `health`, `traces`, `audit`, `query` and `rules test`.

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
    /// Show a running server's recent traces, or one trace as a Gantt chart with its critical path
    /// highlighted. Exit code: 0 shown, 1 not found or refused, 3 unreachable.
    Traces(TracesArgs),
    /// Search, export, import or verify a running server's audit trail.
    Audit(audit::AuditArgs),
    /// Evaluate a PromQL expression on a running server and print the result as a table.
    /// Exit code: 0 answered, 1 the query failed, 3 unreachable.
    Query(query::QueryArgs),
    /// Rule files: `sightline rules test FILE...` runs promtool-format unit tests.
    Rules(rules::RulesArgs),
    /// List a running server's alerts (pending and firing), with fingerprints for `sightline ack`.
    Alerts(alerts::AlertsArgs),
    /// Add, list or expire silences on a running server.
    Silence(alerts::SilenceArgs),
    /// Acknowledge a firing alert: it stops reminders and escalation, and the history records who and when.
    Ack(alerts::AckArgs),
    /// Receivers: `sightline notify test RECEIVER --config FILE` sends a test notification.
    Notify(notify::NotifyArgs),
}

mod alerts;
mod audit;
mod notify;
mod query;
mod rules;

#[derive(Debug, clap::Args)]
struct TracesArgs {
    /// A trace id (32 hex digits): show that trace as a Gantt chart.
    trace_id: Option<String>,
    /// The server's base URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9750")]
    server: String,
    /// Only traces with a span recorded by this service.
    #[arg(long)]
    service: Option<String>,
    /// Only traces with a span of exactly this name.
    #[arg(long)]
    name: Option<String>,
    /// Only traces at least this long (Prometheus duration: 250ms, 2s).
    #[arg(long, value_name = "DURATION")]
    min_duration: Option<String>,
    /// Only traces with (true) or without (false) an errored span.
    #[arg(long, value_name = "BOOL")]
    error: Option<bool>,
    /// At most this many traces.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print the server's JSON instead of a table or chart.
    #[arg(long)]
    json: bool,
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
        Command::Traces(args) => traces(&args),
        Command::Audit(args) => audit::run(&args),
        Command::Query(args) => query::run(&args),
        Command::Rules(args) => rules::run(&args),
        Command::Alerts(args) => alerts::alerts(&args),
        Command::Silence(args) => alerts::silence(&args),
        Command::Ack(args) => alerts::ack(&args),
        Command::Notify(args) => notify::run(&args),
    }
}

/// Fetches `url` and parses the JSON answer, whatever its HTTP status (errors are JSON too).
fn fetch_json_blocking(url: &str) -> Result<(u16, serde_json::Value), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
        .and_then(|runtime| runtime.block_on(fetch_json(url)))
}

/// An HTTP client for the CLI's calls to a server, with `timeout` per request.
fn http_client(timeout: std::time::Duration) -> Result<reqwest::Client, String> {
    // reqwest is built without a bundled crypto provider; ring is the small one. Already installed is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

async fn fetch_json(url: &str) -> Result<(u16, serde_json::Value), String> {
    let client = http_client(std::time::Duration::from_secs(10))?;
    let response = client.get(url).send().await.map_err(|e| format!("cannot connect: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| format!("cannot read the answer: {e}"))?;
    let body = serde_json::from_str(&text).map_err(|e| format!("HTTP {status}, not JSON ({e})"))?;
    Ok((status.as_u16(), body))
}

fn traces(args: &TracesArgs) -> ExitCode {
    let base = args.server.trim_end_matches('/');
    let url = match &args.trace_id {
        Some(id) => format!("{base}/api/v1/traces/{id}"),
        None => {
            let mut url = match reqwest::Url::parse(&format!("{base}/api/v1/traces")) {
                Ok(url) => url,
                Err(err) => {
                    eprintln!("error: invalid --server {:?}: {err}", args.server);
                    return ExitCode::from(UNREACHABLE);
                }
            };
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("limit", &args.limit.to_string());
                for (key, value) in [
                    ("service", args.service.clone()),
                    ("name", args.name.clone()),
                    ("min_duration", args.min_duration.clone()),
                    ("error", args.error.map(|e| e.to_string())),
                ] {
                    if let Some(value) = value {
                        query.append_pair(key, &value);
                    }
                }
            }
            url.to_string()
        }
    };
    let (status, body) = match fetch_json_blocking(&url) {
        Ok(answer) => answer,
        Err(err) => {
            eprintln!("error: {url}: {err}");
            return ExitCode::from(UNREACHABLE);
        }
    };
    if body["status"] != "success" {
        eprintln!(
            "error: HTTP {status}: {}",
            body["error"].as_str().unwrap_or("the server refused the request")
        );
        return ExitCode::FAILURE;
    }
    if args.json {
        println!("{body}");
        return ExitCode::SUCCESS;
    }
    let color = std::io::IsTerminal::is_terminal(&std::io::stdout());
    match &args.trace_id {
        Some(id) => {
            let chart = id
                .parse::<sightline_trace::TraceId>()
                .map_err(|e| e.to_string())
                .and_then(|trace_id| crate::traces::spans_from_json(trace_id, &body["data"]));
            match chart {
                Ok(spans) => {
                    let critical = sightline_trace::critical_span_ids(&spans);
                    print!("{}", sightline_trace::render_gantt(&spans, &critical, terminal_width(), color));
                }
                Err(err) => {
                    eprintln!("error: unexpected answer from {url}: {err}");
                    return ExitCode::FAILURE;
                }
            }
        }
        None => print!("{}", traces_table(&body["data"])),
    }
    ExitCode::SUCCESS
}

/// The terminal's width from `COLUMNS`, or 100.
fn terminal_width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).filter(|w| *w >= 40).unwrap_or(100)
}

fn traces_table(data: &serde_json::Value) -> String {
    let rows = data.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "no traces match\n".to_owned();
    }
    let mut out = format!(
        "{:<32}  {:<27}  {:>10}  {:>5}  {:>6}  {}\n",
        "TRACE", "START", "DURATION", "SPANS", "ERRORS", "ROOT"
    );
    for row in &rows {
        let duration = row["durationMs"].as_f64().unwrap_or(0.0);
        out.push_str(&format!(
            "{:<32}  {:<27}  {:>10}  {:>5}  {:>6}  {} ({})\n",
            row["traceID"].as_str().unwrap_or("?"),
            row["start"].as_str().unwrap_or("?"),
            sightline_trace::format_duration(std::time::Duration::from_secs_f64(duration.max(0.0) / 1000.0)),
            row["spanCount"].as_u64().unwrap_or(0),
            row["errorCount"].as_u64().unwrap_or(0),
            row["rootName"].as_str().unwrap_or("?"),
            row["service"].as_str().unwrap_or("?"),
        ));
    }
    out
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
    // 503 is an answer too: it carries the unhealthy report.
    fetch_json(url).await.map(|(_, body)| body).map_err(|e| e.replace("not JSON", "not a health report"))
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
        Ok(config) => {
            // The rule files it names must load too, as `serve` needs them.
            let rules = config.alerting.rule_paths().and_then(|paths| {
                sightline_alert::rules::file::load_files(&paths).map(|_| paths.len()).map_err(|diagnostics| {
                    diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
                })
            });
            if let Err(err) = rules {
                eprintln!("error: {}: {err}", file.display());
                return ExitCode::FAILURE;
            }
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// A client for the server's JSON API, for the commands that talk to a running server.
pub(crate) struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl ApiClient {
    /// A client for `server` (a base URL), sending `token` as a bearer token when given.
    pub(crate) fn new(server: &str, token: Option<String>) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        let http = http_client(std::time::Duration::from_secs(60))?;
        Ok(Self { base: server.trim_end_matches('/').to_owned(), token, http, runtime })
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request` and parses the JSON answer; `Err((exit code, message))`.
    pub(crate) fn json(&self, request: reqwest::RequestBuilder) -> Result<serde_json::Value, (u8, String)> {
        self.runtime.block_on(async {
            let response = request
                .send()
                .await
                .map_err(|e| (UNREACHABLE, format!("cannot reach {}: {e}", self.base)))?;
            let status = response.status();
            let text =
                response.text().await.map_err(|e| (UNREACHABLE, format!("cannot read the answer: {e}")))?;
            let body: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| (1, format!("HTTP {status}, not JSON ({e}): {text}")))?;
            if body["status"] == "success" {
                Ok(body)
            } else {
                Err((1, format!("HTTP {status}: {}", body["error"].as_str().unwrap_or(&text))))
            }
        })
    }
}
