//! Prometheus data-model naming rules.
//!
//! The rules follow <https://prometheus.io/docs/concepts/data_model/> and the naming best practices at
//! <https://prometheus.io/docs/practices/naming/>: metric names match `[a-zA-Z_:][a-zA-Z0-9_:]*`, label
//! names match `[a-zA-Z_][a-zA-Z0-9_]*` and do not start with `__` (reserved for Prometheus itself),
//! counters end in `_total`, and a metric with a unit carries the base unit as a suffix.

use crate::{MetricError, MetricKind};

/// Checks a metric name against `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn validate_metric_name(name: &str) -> Result<(), MetricError> {
    let reason = if name.is_empty() {
        Some("the name is empty")
    } else if name.as_bytes()[0].is_ascii_digit() {
        Some("the name starts with a digit")
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
        Some("the name contains a character other than ASCII letters, digits, '_' and ':'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(MetricError::InvalidMetricName { name: name.to_owned(), reason }),
        None => Ok(()),
    }
}

/// Checks a label name against `[a-zA-Z_][a-zA-Z0-9_]*` and the reserved `__` prefix.
pub fn validate_label_name(metric: &str, label: &str) -> Result<(), MetricError> {
    let reason = if label.is_empty() {
        Some("the label name is empty")
    } else if label.as_bytes()[0].is_ascii_digit() {
        Some("the label name starts with a digit")
    } else if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Some("the label name contains a character other than ASCII letters, digits and '_'")
    } else if label.starts_with("__") {
        Some("names starting with \"__\" are reserved for Prometheus")
    } else if label == "le" || label == "quantile" {
        // These are written by the exposition of histograms and summaries; a user label of the same name
        // would produce duplicate labels on the bucket and quantile lines.
        Some("\"le\" and \"quantile\" are reserved for histogram buckets and summary quantiles")
    } else {
        None
    };
    match reason {
        Some(reason) => {
            Err(MetricError::InvalidLabelName { metric: metric.to_owned(), label: label.to_owned(), reason })
        }
        None => Ok(()),
    }
}

/// Checks a label set: valid, unique names.
pub fn validate_labels<'a>(
    metric: &str,
    labels: impl IntoIterator<Item = &'a str>,
) -> Result<(), MetricError> {
    // Label sets are small (rarely more than a handful), so a quadratic duplicate scan beats hashing.
    let mut seen: Vec<&str> = Vec::new();
    for label in labels {
        validate_label_name(metric, label)?;
        if seen.contains(&label) {
            return Err(MetricError::DuplicateLabel { metric: metric.to_owned(), label: label.to_owned() });
        }
        seen.push(label);
    }
    Ok(())
}

/// The suffixes that exposition appends to sample names, and which kinds own them.
const RESERVED_SUFFIXES: [(&str, &str); 5] = [
    ("_total", "counters"),
    ("_bucket", "histogram buckets"),
    ("_count", "histogram and summary counts"),
    ("_sum", "histogram and summary sums"),
    ("_created", "OpenMetrics created timestamps"),
];

/// Checks the naming conventions that depend on the kind: `_total` on counters and no reserved suffix on
/// other kinds.
pub fn validate_kind_suffix(name: &str, kind: MetricKind) -> Result<(), MetricError> {
    if kind == MetricKind::Counter {
        if !name.ends_with("_total") {
            return Err(MetricError::CounterWithoutTotal { name: name.to_owned() });
        }
        return Ok(());
    }
    for (suffix, reserved_for) in RESERVED_SUFFIXES {
        if name.ends_with(suffix) {
            return Err(MetricError::ReservedSuffix { name: name.to_owned(), kind, suffix, reserved_for });
        }
    }
    Ok(())
}

/// A Prometheus base unit, as written in metric names and in the OpenMetrics `# UNIT` line.
///
/// Prometheus asks for base units only: seconds rather than milliseconds, bytes rather than kibibytes,
/// ratios (0..1) rather than percentages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BaseUnit {
    /// `seconds`.
    Seconds,
    /// `bytes`.
    Bytes,
    /// `ratio`: a dimensionless value in 0..=1.
    Ratio,
    /// `celsius`.
    Celsius,
    /// `volts`.
    Volts,
    /// `amperes`.
    Amperes,
    /// `joules`.
    Joules,
    /// `grams`.
    Grams,
    /// `meters`.
    Meters,
}

impl BaseUnit {
    /// The suffix and `# UNIT` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            BaseUnit::Seconds => "seconds",
            BaseUnit::Bytes => "bytes",
            BaseUnit::Ratio => "ratio",
            BaseUnit::Celsius => "celsius",
            BaseUnit::Volts => "volts",
            BaseUnit::Amperes => "amperes",
            BaseUnit::Joules => "joules",
            BaseUnit::Grams => "grams",
            BaseUnit::Meters => "meters",
        }
    }

    /// Maps a `metrics` facade unit to a base unit.
    ///
    /// Returns `Ok(None)` for `Count` (no unit), and `Err(base)` with the base unit to use instead for
    /// scaled units such as milliseconds or kibibytes.
    pub fn from_facade(unit: metrics::Unit) -> Result<Option<BaseUnit>, &'static str> {
        use metrics::Unit;
        match unit {
            Unit::Count => Ok(None),
            Unit::Seconds => Ok(Some(BaseUnit::Seconds)),
            Unit::Bytes => Ok(Some(BaseUnit::Bytes)),
            Unit::Percent => Err("ratio"),
            Unit::Milliseconds | Unit::Microseconds | Unit::Nanoseconds => Err("seconds"),
            Unit::Kibibytes | Unit::Mebibytes | Unit::Gibibytes | Unit::Tebibytes => Err("bytes"),
            Unit::BitsPerSecond
            | Unit::KilobitsPerSecond
            | Unit::MegabitsPerSecond
            | Unit::GigabitsPerSecond
            | Unit::TerabitsPerSecond
            | Unit::CountPerSecond => Err("a counter of bytes or events, and rate() over it"),
        }
    }
}

impl std::fmt::Display for BaseUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks that a metric with `unit` carries it as its name's suffix (before `_total` for counters).
pub fn validate_unit_suffix(name: &str, kind: MetricKind, unit: BaseUnit) -> Result<(), MetricError> {
    if has_unit_suffix(name, kind, unit) {
        Ok(())
    } else {
        Err(MetricError::MissingUnitSuffix {
            name: name.to_owned(),
            unit: unit.as_str(),
            total: if kind == MetricKind::Counter { " before \"_total\"" } else { "" },
        })
    }
}

/// Whether `name` ends in `_<unit>` (or `_<unit>_total` for counters).
pub fn has_unit_suffix(name: &str, kind: MetricKind, unit: BaseUnit) -> bool {
    let stem = if kind == MetricKind::Counter { name.strip_suffix("_total").unwrap_or(name) } else { name };
    stem.strip_suffix(unit.as_str()).is_some_and(|rest| rest.ends_with('_'))
}

/// Checks histogram bucket bounds: non-empty, finite, strictly increasing.
///
/// A trailing `+Inf` is accepted and ignored: the `+Inf` bucket is always present.
pub fn validate_buckets(name: &str, bounds: &[f64]) -> Result<Vec<f64>, MetricError> {
    let err = |reason| MetricError::InvalidBuckets { name: name.to_owned(), reason };
    let mut bounds = bounds.to_vec();
    if bounds.last() == Some(&f64::INFINITY) {
        bounds.pop();
    }
    if bounds.is_empty() {
        return Err(err("give at least one finite upper bound"));
    }
    if bounds.iter().any(|b| !b.is_finite()) {
        return Err(err("bounds must be finite numbers (+Inf is added automatically)"));
    }
    if bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err(err("bounds must be strictly increasing"));
    }
    Ok(bounds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        for ok in ["a", "_a", "a:b", "http_requests_total", "A9_:x"] {
            assert_eq!(validate_metric_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "9a", "a-b", "a b", "ä", "a.b", "a{b}"] {
            assert!(validate_metric_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_names() {
        for ok in ["a", "_a", "method", "A9_"] {
            assert_eq!(validate_label_name("m", ok), Ok(()), "{ok}");
        }
        for bad in ["", "9a", "a:b", "a-b", "__name__", "__x", "le", "quantile", "é"] {
            assert!(validate_label_name("m", bad).is_err(), "{bad}");
        }
        assert!(matches!(validate_labels("m", ["a", "b", "a"]), Err(MetricError::DuplicateLabel { .. })));
    }

    #[test]
    fn kind_suffixes() {
        assert!(validate_kind_suffix("requests_total", MetricKind::Counter).is_ok());
        let err = validate_kind_suffix("requests", MetricKind::Counter).unwrap_err();
        assert!(err.to_string().contains("rename it to \"requests_total\""), "{err}");
        assert!(validate_kind_suffix("temperature_celsius", MetricKind::Gauge).is_ok());
        assert!(validate_kind_suffix("queue_total", MetricKind::Gauge).is_err());
        assert!(validate_kind_suffix("latency_bucket", MetricKind::Histogram).is_err());
        assert!(validate_kind_suffix("latency_count", MetricKind::Summary).is_err());
    }

    #[test]
    fn unit_suffixes() {
        assert!(validate_unit_suffix("busy_seconds_total", MetricKind::Counter, BaseUnit::Seconds).is_ok());
        assert!(validate_unit_suffix("latency_seconds", MetricKind::Histogram, BaseUnit::Seconds).is_ok());
        assert!(validate_unit_suffix("latencyseconds", MetricKind::Histogram, BaseUnit::Seconds).is_err());
        assert!(validate_unit_suffix("size", MetricKind::Gauge, BaseUnit::Bytes).is_err());
        assert_eq!(BaseUnit::from_facade(metrics::Unit::Milliseconds), Err("seconds"));
        assert_eq!(BaseUnit::from_facade(metrics::Unit::Bytes), Ok(Some(BaseUnit::Bytes)));
    }

    #[test]
    fn buckets() {
        assert_eq!(validate_buckets("h", &[1.0, 2.0, f64::INFINITY]), Ok(vec![1.0, 2.0]));
        assert!(validate_buckets("h", &[]).is_err());
        assert!(validate_buckets("h", &[2.0, 1.0]).is_err());
        assert!(validate_buckets("h", &[1.0, 1.0]).is_err());
        assert!(validate_buckets("h", &[f64::NAN]).is_err());
    }
}
