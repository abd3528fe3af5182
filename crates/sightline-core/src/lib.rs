//! Sightline's metric model: counters, gauges, histograms and summaries in a lock-free registry that
//! sits behind the [`metrics`] facade.
//!
//! # Concepts
//!
//! - A **family** is a metric name with a [`MetricKind`], help text and an optional [`BaseUnit`].
//! - A **series** is a family plus one label set; it owns one atomic cell.
//! - The [`Registry`] holds every series. It is a [`metrics::Recorder`], so any library that records with
//!   `metrics::counter!`, `gauge!` or `histogram!` records into it; the handles those macros return are
//!   cached hot-path handles that touch one atomic per update.
//! - A [`Snapshot`] is a read of every series, for exporters and the time-series store. Taking one never
//!   blocks writers.
//!
//! The Prometheus naming rules are enforced: the typed API ([`Registry::counter`], [`Registry::describe`],
//! ...) returns a [`MetricError`] that says what to change; the facade, which cannot return errors, drops
//! an invalid series, counts it in `sightline_invalid_metrics_total` and logs it once. Facade counters
//! named without `_total` get the suffix. Each metric name holds at most a configurable number of label
//! sets (10,000 by default); further label sets fold into one series labelled
//! `otel_metric_overflow="true"` and are counted in `sightline_cardinality_overflow_total{metric}`.
//!
//! # In libraries
//!
//! Record with the `metrics` macros and depend only on `metrics`; the application chooses the recorder.
//!
//! # In executables
//!
//! ```
//! use sightline_core::{BaseUnit, Descriptor, Registry};
//!
//! let registry = Registry::builder().with_cardinality_limit(5_000).build();
//! // In `main`, call `.install()` instead of `.build()` to make it the global recorder; tests use `scoped`.
//! registry.scoped(|| {
//!     metrics::counter!("jobs_total", "queue" => "default").increment(1);
//! });
//!
//! registry.describe(
//!     &Descriptor::histogram("job_duration_seconds", "Time spent running a job.")
//!         .with_unit(BaseUnit::Seconds)
//!         .with_buckets(&[0.1, 1.0, 10.0])?,
//! )?;
//! registry.histogram("job_duration_seconds", &[("queue", "default")])?.record(0.3);
//!
//! let snapshot = registry.snapshot();
//! let jobs = snapshot.family("jobs_total").unwrap();
//! assert_eq!(jobs.series[0].value, sightline_core::Value::Counter(1));
//! # Ok::<(), sightline_core::MetricError>(())
//! ```
//!
//! # Feature flags
//!
//! - `redact` (off by default): the `redact` module, which masks secrets and personal data (emails,
//!   phone and card numbers, JWTs, bearer credentials, access keys, denied field names) in logs, traces
//!   and audit events. It adds the `regex` dependency.
//!
//! # Supported Rust versions
//!
//! The workspace's `rust-version` (currently 1.85) and newer.

mod cells;
pub mod duration;
mod error;
pub mod naming;
#[cfg(feature = "redact")]
pub mod redact;
mod registry;
mod snapshot;

pub use cells::{FloatCounter, SummaryConfig};
pub use error::MetricError;
pub use metrics;
pub use naming::BaseUnit;
pub use registry::{
    CARDINALITY_OVERFLOW_METRIC, DEFAULT_BUCKETS, DEFAULT_CARDINALITY_LIMIT, Descriptor,
    INVALID_METRICS_METRIC, InstallError, Matcher, OVERFLOW_LABEL, Registry, RegistryBuilder,
};
pub use snapshot::{FamilySnapshot, HistogramValue, SeriesSnapshot, Snapshot, SummaryValue, Value};

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A monotonic total.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Observations counted into fixed buckets, with their sum and count.
    Histogram,
    /// Quantiles of observations over a sliding window, with their sum and count.
    Summary,
}

impl MetricKind {
    /// The lowercase name, as in the `# TYPE` line.
    pub const fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::Summary => "summary",
        }
    }
}

impl std::fmt::Display for MetricKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
