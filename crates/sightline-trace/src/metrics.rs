//! Span-derived metrics: a count, an error count and a duration histogram per span name, in the core
//! registry, so traces feed dashboards and alert rules.

use std::collections::HashMap;
use std::sync::RwLock;

use regex::RegexSet;
use sightline_core::{BaseUnit, Descriptor, Registry};

use crate::layer::Sink;
use crate::record::{SpanRecord, SpanStatus};

/// `sightline_span_duration_seconds{span}`: how long spans took.
pub const SPAN_DURATION_METRIC: &str = "sightline_span_duration_seconds";
/// `sightline_spans_total{span,status}`: finished spans, by `status` `ok` or `error`.
pub const SPANS_TOTAL_METRIC: &str = "sightline_spans_total";

/// Which spans get metrics: opt-in by exact name or by regular expression, because every measured span
/// name becomes a label value and span names are not always bounded.
#[derive(Debug, Clone, Default)]
pub struct SpanMetricsConfig {
    names: Vec<String>,
    patterns: Vec<String>,
}

/// A span-name pattern that does not compile.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid span-metrics pattern {pattern:?}: {reason}; use Rust regex syntax, e.g. `^http\\.` or `db_.*`"
)]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What the regex parser said.
    pub reason: String,
}

impl SpanMetricsConfig {
    /// No spans measured.
    pub fn new() -> Self {
        Self::default()
    }

    /// Measures spans with exactly this name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.names.push(name.into());
        self
    }

    /// Measures spans whose name matches `pattern` (unanchored, as `regex::Regex::is_match`).
    pub fn with_pattern(mut self, pattern: impl Into<String>) -> Result<Self, PatternError> {
        let pattern = pattern.into();
        regex::Regex::new(&pattern)
            .map_err(|e| PatternError { pattern: pattern.clone(), reason: e.to_string() })?;
        self.patterns.push(pattern);
        Ok(self)
    }

    /// Whether any span is measured.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.patterns.is_empty()
    }
}

struct Handles {
    duration: metrics::Histogram,
    ok: metrics::Counter,
    error: metrics::Counter,
}

/// The sink that records span metrics. Decisions and handles are cached per span name, so a measured
/// span costs one read lock and three atomic updates.
pub(crate) struct SpanMetrics {
    registry: Registry,
    names: Vec<String>,
    patterns: RegexSet,
    /// `None` for names that are not measured (or whose metrics could not be registered).
    cache: RwLock<HashMap<String, Option<Handles>>>,
}

impl std::fmt::Debug for SpanMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanMetrics").field("names", &self.names).field("patterns", &self.patterns).finish()
    }
}

/// Bound on distinct span names remembered as "not measured"; past it, unmeasured names are re-checked
/// against the patterns each time instead of growing the cache.
const MAX_CACHED_NAMES: usize = 10_000;

impl SpanMetrics {
    pub(crate) fn new(registry: &Registry, config: &SpanMetricsConfig) -> Result<Self, PatternError> {
        let patterns = RegexSet::new(&config.patterns)
            .map_err(|e| PatternError { pattern: config.patterns.join(" | "), reason: e.to_string() })?;
        // Describing cannot fail for these fixed, valid names; a second describe of the same family is fine.
        let _ = registry.describe(
            &Descriptor::histogram(SPAN_DURATION_METRIC, "Duration of finished spans, by span name.")
                .with_unit(BaseUnit::Seconds),
        );
        let _ = registry
            .describe(&Descriptor::counter(SPANS_TOTAL_METRIC, "Finished spans, by span name and status."));
        Ok(Self {
            registry: registry.clone(),
            names: config.names.clone(),
            patterns,
            cache: RwLock::new(HashMap::new()),
        })
    }

    fn measured(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name) || self.patterns.is_match(name)
    }

    fn handles(&self, name: &str) -> Option<Handles> {
        let duration = self.registry.histogram(SPAN_DURATION_METRIC, &[("span", name)]).ok()?;
        let ok = self.registry.counter(SPANS_TOTAL_METRIC, &[("span", name), ("status", "ok")]).ok()?;
        let error = self.registry.counter(SPANS_TOTAL_METRIC, &[("span", name), ("status", "error")]).ok()?;
        Some(Handles { duration, ok, error })
    }

    fn record(handles: &Handles, span: &SpanRecord) {
        handles.duration.record(span.duration.as_secs_f64());
        match span.status {
            SpanStatus::Error => handles.error.increment(1),
            SpanStatus::Ok | SpanStatus::Unset => handles.ok.increment(1),
        }
    }
}

impl Sink for SpanMetrics {
    fn on_end(&self, span: &SpanRecord, _sampled: bool) {
        let name = span.name.as_ref();
        {
            let cache = self.cache.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(entry) = cache.get(name) {
                if let Some(handles) = entry {
                    Self::record(handles, span);
                }
                return;
            }
        }
        let handles = if self.measured(name) { self.handles(name) } else { None };
        if let Some(handles) = &handles {
            Self::record(handles, span);
        }
        let mut cache = self.cache.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if handles.is_some() || cache.len() < MAX_CACHED_NAMES {
            cache.insert(name.to_owned(), handles);
        }
    }
}
