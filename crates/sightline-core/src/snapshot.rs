//! Point-in-time reads of every series in a [`Registry`](crate::Registry).

use std::sync::Arc;

use metrics::Label;

use crate::cells::Series;

use crate::{BaseUnit, MetricKind};

/// A read of every series in a registry, grouped into families.
///
/// Families are sorted by name; series within a family keep the order in which they were first
/// registered, so consecutive snapshots list them in the same order. Taking a snapshot never blocks a
/// writer: each value is read with atomic loads while writers carry on.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The metric families, sorted by name.
    pub families: Vec<FamilySnapshot>,
}

impl Snapshot {
    /// The family called `name`, if it has any series.
    pub fn family(&self, name: &str) -> Option<&FamilySnapshot> {
        self.families.binary_search_by(|f| f.name.as_str().cmp(name)).ok().map(|i| &self.families[i])
    }

    /// The number of series across all families.
    pub fn series_count(&self) -> usize {
        self.families.iter().map(|f| f.series.len()).sum()
    }
}

/// One metric family: a name, its kind and metadata, and its series.
#[derive(Debug, Clone)]
pub struct FamilySnapshot {
    /// The metric name, after normalisation (counters always end in `_total`).
    pub name: String,
    /// What kind of metric the family is.
    pub kind: MetricKind,
    /// The help text, if the metric was described.
    pub help: Option<String>,
    /// The base unit, if the metric was described with one and its name carries it as a suffix.
    pub unit: Option<BaseUnit>,
    /// The family's series in registration order.
    pub series: Vec<SeriesSnapshot>,
}

impl FamilySnapshot {
    /// The first series whose labels include every `(name, value)` pair given.
    pub fn series_with(&self, labels: &[(&str, &str)]) -> Option<&SeriesSnapshot> {
        self.series.iter().find(|s| labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
    }
}

/// One series: a label set and its value.
#[derive(Debug, Clone)]
pub struct SeriesSnapshot {
    pub(crate) series: Arc<Series>,
    /// The value read.
    pub value: Value,
}

impl SeriesSnapshot {
    /// The series' labels, in the order they were registered with.
    pub fn labels(&self) -> &[Label] {
        self.series.key.labels().as_slice()
    }

    /// The value of label `name`, if the series has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.series.key.labels().find(|l| l.key() == name).map(|l| l.value())
    }
}

/// The value of one series.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's total.
    Counter(u64),
    /// The total of a counter of fractional amounts.
    FloatCounter(f64),
    /// A gauge's current value.
    Gauge(f64),
    /// A histogram's cumulative buckets, sum and count.
    Histogram(HistogramValue),
    /// A summary's quantiles, sum and count.
    Summary(SummaryValue),
}

/// A histogram read: cumulative bucket counts by upper bound (`le`), ending with `+Inf`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramValue {
    /// `(upper bound, cumulative count)`, in increasing bound order; the last bound is `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    /// The sum of all observations.
    pub sum: f64,
    /// The number of observations; always equal to the `+Inf` bucket.
    pub count: u64,
}

/// A summary read: quantiles over the sliding window, and cumulative sum and count.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryValue {
    /// `(quantile, value)`; the value is NaN when the window holds no observations.
    pub quantiles: Vec<(f64, f64)>,
    /// The sum of all observations ever made.
    pub sum: f64,
    /// The number of observations ever made.
    pub count: u64,
}
