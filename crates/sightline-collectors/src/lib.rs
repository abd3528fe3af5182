//! Host, process and runtime metrics for any Rust service, collected in the background, plus execution
//! tracking for units of work.
//!
//! # One line
//!
//! ```no_run
//! let registry = sightline_core::Registry::builder().install()?;
//! let _collectors = sightline_collectors::Collectors::with_defaults(&registry).start();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Concepts
//!
//! - A [`Collector`] reads one source (/proc for the host or the process, the tokio runtime) and updates
//!   metrics in a [`sightline_core::Registry`].
//! - [`Collectors`] runs each collector on its own interval (15 s by default) on a background thread. A
//!   scrape reads the last values from the registry and never waits on /proc. Each run is timed in
//!   `sightline_collector_duration_seconds{collector}`; failures are counted in
//!   `sightline_collector_errors_total{collector}` and logged, and never stop the other collectors.
//!
//! # Platforms
//!
//! Host and process metrics read /proc and exist on Linux only. Elsewhere the collectors report that they
//! are unavailable (an error count and one log line) rather than exporting zeros.

mod schedule;

pub mod execution;
pub mod host;
pub mod process;
#[cfg(feature = "tokio")]
pub mod runtime;

pub use execution::{ExecutionGuard, Outcome, Tracker};
pub use host::{HostCollector, HostConfig, HostConfigError};
pub use schedule::{Collectors, Running};

/// Something that reads a source and updates metrics.
pub trait Collector: Send + 'static {
    /// A short name, used as the `collector` label: `host`, `process`, `runtime`.
    fn name(&self) -> &'static str;

    /// Reads the source and updates the metrics. Update what can be read, and report what could not:
    /// an error means "fewer metrics than usual", not "nothing changed".
    fn collect(&mut self) -> Result<(), CollectError>;
}

/// Why a collection was incomplete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// A source could not be read (a missing /proc file in a container, a permission).
    #[error("cannot read {what}: {source}")]
    Read {
        /// What was being read, such as `/proc/stat`.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The source does not exist on this platform or in this context.
    #[error("{0}")]
    Unavailable(String),
    /// A metric could not be registered (a name clash with another part of the program).
    #[error("cannot register a metric: {0}; rename the clashing metric")]
    Metric(#[from] sightline_core::MetricError),
}

#[cfg(target_os = "linux")]
impl CollectError {
    pub(crate) fn procfs(what: impl Into<String>, err: procfs::ProcError) -> Self {
        let what = what.into();
        match err {
            procfs::ProcError::Io(source, _) => CollectError::Read { what, source },
            other => CollectError::Read { what, source: std::io::Error::other(other.to_string()) },
        }
    }
}
