//! Errors returned by the typed registration API.

use crate::MetricKind;

/// Why a metric could not be described or registered.
///
/// Only the typed API ([`Registry::counter`](crate::Registry::counter) and friends) can return these. The
/// `metrics` facade cannot report errors, so there an invalid series is dropped, counted in
/// `sightline_invalid_metrics_total` and logged once instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricError {
    /// The metric name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name {name:?}: {reason}; metric names must match [a-zA-Z_:][a-zA-Z0-9_:]*")]
    InvalidMetricName { name: String, reason: &'static str },

    /// A label name does not match `[a-zA-Z_][a-zA-Z0-9_]*` or uses the reserved `__` prefix.
    #[error(
        "invalid label name {label:?} on metric {metric:?}: {reason}; label names must match \
         [a-zA-Z_][a-zA-Z0-9_]* and must not start with \"__\""
    )]
    InvalidLabelName { metric: String, label: String, reason: &'static str },

    /// The same label name appears twice in one label set.
    #[error("duplicate label {label:?} on metric {metric:?}; give each label name once")]
    DuplicateLabel { metric: String, label: String },

    /// A counter whose name does not end in `_total`.
    #[error(
        "counter {name:?} must end in \"_total\" (Prometheus naming rule); rename it to \"{name}_total\""
    )]
    CounterWithoutTotal { name: String },

    /// A non-counter whose name ends in `_total`, `_bucket`, `_count`, `_sum` or `_created`, which would
    /// collide with the sample names of counters, histograms and summaries.
    #[error("{kind} {name:?} must not end in {suffix:?}: that suffix is reserved for {reserved_for}")]
    ReservedSuffix { name: String, kind: MetricKind, suffix: &'static str, reserved_for: &'static str },

    /// The metric has a unit but its name does not carry it as a suffix.
    #[error("metric {name:?} has unit {unit:?}, so its name must end in \"_{unit}\"{total}")]
    MissingUnitSuffix { name: String, unit: &'static str, total: &'static str },

    /// The name is already registered as another kind of metric.
    #[error("metric {name:?} is already registered as a {existing}; it cannot also be a {requested}")]
    KindConflict { name: String, existing: MetricKind, requested: MetricKind },

    /// Histogram buckets that are empty, unsorted, duplicated or not finite.
    #[error("invalid buckets for histogram {name:?}: {reason}")]
    InvalidBuckets { name: String, reason: &'static str },

    /// Summary quantiles outside `0..=1`.
    #[error("invalid quantile {quantile} for summary {name:?}: quantiles must lie in 0..=1")]
    InvalidQuantile { name: String, quantile: f64 },

    /// A float counter requested where an integer counter of the same name exists, or the reverse.
    #[error(
        "counter {name:?} already exists with {existing} values; use one counter type per metric name \
         (Registry::counter for integers, Registry::float_counter for fractions)"
    )]
    CounterTypeConflict { name: String, existing: &'static str },
}
