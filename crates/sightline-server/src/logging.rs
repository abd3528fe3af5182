//! The server's own logs: JSON lines (or text for terminals) on stdout.

use std::time::SystemTime;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

use crate::config::{LogConfig, LogFormat};

/// The variable whose `RUST_LOG`-syntax filter overrides `log.level`.
pub const LOG_ENV: &str = "SIGHTLINE_LOG";

/// RFC 3339 timestamps in UTC with microseconds: `2026-11-29T22:04:37.123456Z`.
#[derive(Debug, Clone, Copy)]
pub struct Rfc3339Micros;

impl FormatTime for Rfc3339Micros {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", humantime::format_rfc3339_micros(SystemTime::now()))
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The level filter does not parse.
    #[error(
        "invalid log filter {filter:?} (from {source_name}): {reason}; use RUST_LOG syntax such as `info` or `info,sightline_server=debug`"
    )]
    Filter { filter: String, source_name: &'static str, reason: String },
}

/// Installs the global subscriber. `env_filter` is the value of `SIGHTLINE_LOG`, if set.
pub fn init(config: &LogConfig, env_filter: Option<String>) -> Result<(), LoggingError> {
    let (filter, source_name) = match env_filter {
        Some(filter) => (filter, LOG_ENV),
        None => (config.level.clone(), "log.level"),
    };
    let env_filter = EnvFilter::builder().parse(&filter).map_err(|e| LoggingError::Filter {
        filter: filter.clone(),
        source_name,
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt().with_env_filter(env_filter).with_timer(Rfc3339Micros);
    // A second initialisation (tests) keeps the first subscriber; that is not an error worth failing on.
    let _ = match config.format {
        LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
        }
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())).try_init(),
    };
    Ok(())
}
