//! The registry: storage for every series, the `metrics::Recorder` implementation and the typed API.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SetRecorderError, SharedString, Unit,
};
use metrics_util::KeyHasher;

use crate::cells::{
    CounterCell, FloatCounter, FloatCounterCell, GaugeCell, HistogramCell, SummaryCell, SummaryConfig,
};
use crate::naming::{self, BaseUnit};
use crate::snapshot::{FamilySnapshot, SeriesSnapshot, Snapshot, Value};
use crate::{MetricError, MetricKind};

/// Prometheus's default histogram buckets (the Go client's `DefBuckets`).
pub const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The default number of label sets one metric name may hold before further ones fold into the
/// overflow series.
pub const DEFAULT_CARDINALITY_LIMIT: usize = 10_000;

/// The label that marks the series into which label sets over the cardinality limit fold; the name and
/// value are OpenTelemetry's.
pub const OVERFLOW_LABEL: (&str, &str) = ("otel_metric_overflow", "true");

/// Counts registrations of label sets beyond a metric's cardinality limit, by metric.
pub const CARDINALITY_OVERFLOW_METRIC: &str = "sightline_cardinality_overflow_total";

/// Counts facade registrations dropped because their name, labels or kind were invalid.
pub const INVALID_METRICS_METRIC: &str = "sightline_invalid_metrics_total";

/// How many distinct invalid metric names are logged before the registry stops logging new ones.
const MAX_LOGGED_INVALID: usize = 1024;

/// Chooses metrics by name, for per-metric settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// The whole name.
    Full(String),
    /// A name prefix.
    Prefix(String),
    /// A name suffix.
    Suffix(String),
}

impl Matcher {
    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Full(full) => name == full,
            Matcher::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Matcher::Suffix(suffix) => name.ends_with(suffix.as_str()),
        }
    }
}

/// An error from installing the registry as the global recorder.
#[derive(Debug, thiserror::Error)]
#[error(
    "a global metrics recorder is already installed; install Sightline's registry once at start-up, \
     or use Registry::scoped for per-test recording"
)]
pub struct InstallError(());

// === impl RegistryBuilder ===

/// Configures and builds a [`Registry`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RegistryBuilder {
    cardinality_limit: usize,
    cardinality_limits: Vec<(Matcher, usize)>,
    default_buckets: Vec<f64>,
    buckets: Vec<(Matcher, Vec<f64>)>,
    summaries: Vec<Matcher>,
    summary_config: SummaryConfig,
}

impl Default for RegistryBuilder {
    fn default() -> Self {
        Self {
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
            cardinality_limits: Vec::new(),
            default_buckets: DEFAULT_BUCKETS.to_vec(),
            buckets: Vec::new(),
            summaries: Vec::new(),
            summary_config: SummaryConfig::default(),
        }
    }
}

impl RegistryBuilder {
    /// A builder with Prometheus's defaults and a cardinality limit of 10,000 label sets per metric.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of label sets any one metric may hold; further ones fold into one overflow series.
    pub fn with_cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = limit;
        self
    }

    /// A cardinality limit for the metrics `matcher` chooses; the first matching setting wins.
    pub fn with_cardinality_limit_for(mut self, matcher: Matcher, limit: usize) -> Self {
        self.cardinality_limits.push((matcher, limit));
        self
    }

    /// The buckets of histograms that have no buckets of their own.
    pub fn with_default_buckets(mut self, bounds: &[f64]) -> Result<Self, MetricError> {
        self.default_buckets = naming::validate_buckets("(default buckets)", bounds)?;
        Ok(self)
    }

    /// Buckets for the histograms `matcher` chooses; the first matching setting wins.
    pub fn with_buckets_for(mut self, matcher: Matcher, bounds: &[f64]) -> Result<Self, MetricError> {
        let bounds = naming::validate_buckets(&format!("{matcher:?}"), bounds)?;
        self.buckets.push((matcher, bounds));
        Ok(self)
    }

    /// Makes the facade histograms `matcher` chooses summaries (quantiles over a sliding window).
    pub fn with_summary_for(mut self, matcher: Matcher) -> Self {
        self.summaries.push(matcher);
        self
    }

    /// The quantiles and window of summaries.
    pub fn with_summary_config(mut self, config: SummaryConfig) -> Result<Self, MetricError> {
        if let Some(&q) = config.quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return Err(MetricError::InvalidQuantile { name: "(summary defaults)".into(), quantile: q });
        }
        self.summary_config = config;
        Ok(self)
    }

    /// Builds the registry.
    pub fn build(self) -> Registry {
        let inner = Inner {
            series: papaya::HashMap::builder().hasher(BuildHasherDefault::<KeyHasher>::default()).build(),
            families: papaya::HashMap::new(),
            next_id: AtomicU64::new(0),
            invalid: Arc::new(CounterCell::default()),
            logged_invalid: Mutex::new(HashSet::new()),
            config: self,
        };
        let registry = Registry { inner: Arc::new(inner) };
        registry.register_internal_metrics();
        registry
    }

    /// Builds the registry and installs it as the process-wide `metrics` recorder.
    ///
    /// The returned handle reads what every `metrics::counter!` (and friends) in the process records.
    pub fn install(self) -> Result<Registry, InstallError> {
        let registry = self.build();
        metrics::set_global_recorder(registry.clone())
            .map_err(|_: SetRecorderError<Registry>| InstallError(()))?;
        Ok(registry)
    }
}

// === impl Registry ===

/// A registry of metric series, and a `metrics` recorder.
///
/// Cloning is cheap: clones share the same series. See the [crate docs](crate) for an overview.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("series", &self.inner.series.len())
            .field("families", &self.inner.families.len())
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        RegistryBuilder::default().build()
    }
}

/// A metric kind and, for histograms, whether the facade asked for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requested {
    Counter,
    Gauge,
    /// A facade histogram: the family decides whether it is a histogram or a summary.
    AnyHistogram,
}

impl Requested {
    fn accepts(self, kind: MetricKind) -> bool {
        match self {
            Requested::Counter => kind == MetricKind::Counter,
            Requested::Gauge => kind == MetricKind::Gauge,
            Requested::AnyHistogram => matches!(kind, MetricKind::Histogram | MetricKind::Summary),
        }
    }
}

struct Inner {
    /// Every series, keyed by metric name and labels. Lookups are lock-free (papaya), and the key's hash
    /// is computed once when the `Key` is built (`metrics` precomputes it), so `KeyHasher` passes it on.
    series: papaya::HashMap<Arc<Key>, Entry, BuildHasherDefault<KeyHasher>>,
    families: papaya::HashMap<String, Arc<Family>>,
    next_id: AtomicU64,
    invalid: Arc<CounterCell>,
    logged_invalid: Mutex<HashSet<String>>,
    config: RegistryBuilder,
}

#[derive(Clone)]
struct Entry {
    /// Registration order, for a stable exposition order.
    id: u64,
    family: Arc<Family>,
    cell: Cell,
}

#[derive(Clone)]
enum Cell {
    Counter(Arc<CounterCell>),
    FloatCounter(Arc<FloatCounterCell>),
    Gauge(Arc<GaugeCell>),
    Histogram(Arc<HistogramCell>),
    Summary(Arc<SummaryCell>),
}

struct Family {
    name: String,
    kind: MetricKind,
    meta: RwLock<Meta>,
    /// Whether a counter family counts fractions (see [`FloatCounter`]).
    float: bool,
    /// Label sets registered so far, not counting the overflow series.
    series: AtomicUsize,
    limit: usize,
    buckets: Arc<[f64]>,
    summary: SummaryConfig,
}

/// What a new family is made of, beyond its name and kind.
#[derive(Debug, Default, Clone, Copy)]
struct Shape<'a> {
    buckets: Option<&'a [f64]>,
    quantiles: Option<&'a [f64]>,
    float: bool,
}

#[derive(Default, Clone)]
struct Meta {
    help: Option<String>,
    unit: Option<BaseUnit>,
}

impl Registry {
    /// A registry with default settings; see [`RegistryBuilder`] for the others.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::new()
    }

    /// Runs `f` with this registry as the current thread's `metrics` recorder: what `f` records with the
    /// `metrics` macros lands here, whatever the global recorder is. Made for tests.
    pub fn scoped<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(self, f)
    }

    /// Describes a metric: its kind, help text, unit and (for histograms) buckets.
    ///
    /// Describe a histogram before its first observation for its buckets to take effect; a later
    /// description with other buckets is an error.
    pub fn describe(&self, descriptor: &Descriptor) -> Result<(), MetricError> {
        descriptor.validate()?;
        let shape = Shape {
            buckets: descriptor.buckets.as_deref(),
            quantiles: descriptor.quantiles.as_deref(),
            float: descriptor.float,
        };
        let family = self.inner.family(&descriptor.name, descriptor.kind, shape)?;
        if family.float != descriptor.float {
            let existing = if family.float { "float" } else { "integer" };
            return Err(MetricError::CounterTypeConflict { name: descriptor.name.clone(), existing });
        }
        if let Some(buckets) = &descriptor.buckets
            && **buckets != *family.buckets
        {
            return Err(MetricError::InvalidBuckets {
                name: descriptor.name.clone(),
                reason: "the histogram already exists with other buckets; describe it before its first use",
            });
        }
        let mut meta = family.meta.write().unwrap_or_else(|e| e.into_inner());
        meta.help = Some(descriptor.help.clone());
        meta.unit = descriptor.unit;
        Ok(())
    }

    /// A counter handle for `name` and `labels`, checking the Prometheus naming rules.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Result<Counter, MetricError> {
        match self.inner.register_checked(name, labels, MetricKind::Counter, Shape::default())? {
            Cell::Counter(cell) => Ok(Counter::from_arc(cell)),
            Cell::FloatCounter(_) => {
                Err(MetricError::CounterTypeConflict { name: name.to_owned(), existing: "float" })
            }
            _ => Err(self.inner.conflict(name, MetricKind::Counter)),
        }
    }

    /// A handle to a counter of fractional amounts (such as CPU seconds) for `name` and `labels`.
    ///
    /// One metric name holds either integer or float counters; facade increments of a float counter are
    /// added as floats.
    pub fn float_counter(&self, name: &str, labels: &[(&str, &str)]) -> Result<FloatCounter, MetricError> {
        if let Some(family) = self.inner.existing_family(name)
            && family.kind == MetricKind::Counter
            && !family.float
        {
            return Err(MetricError::CounterTypeConflict { name: name.to_owned(), existing: "integer" });
        }
        let shape = Shape { float: true, ..Shape::default() };
        match self.inner.register_checked(name, labels, MetricKind::Counter, shape)? {
            Cell::FloatCounter(cell) => Ok(FloatCounter(cell)),
            Cell::Counter(_) => {
                Err(MetricError::CounterTypeConflict { name: name.to_owned(), existing: "integer" })
            }
            _ => Err(self.inner.conflict(name, MetricKind::Counter)),
        }
    }

    /// A gauge handle for `name` and `labels`, checking the Prometheus naming rules.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Result<Gauge, MetricError> {
        match self.inner.register_checked(name, labels, MetricKind::Gauge, Shape::default())? {
            Cell::Gauge(cell) => Ok(Gauge::from_arc(cell)),
            _ => Err(self.inner.conflict(name, MetricKind::Gauge)),
        }
    }

    /// A histogram handle for `name` and `labels`, checking the Prometheus naming rules.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Result<Histogram, MetricError> {
        match self.inner.register_checked(name, labels, MetricKind::Histogram, Shape::default())? {
            Cell::Histogram(cell) => Ok(Histogram::from_arc(cell)),
            _ => Err(self.inner.conflict(name, MetricKind::Histogram)),
        }
    }

    /// A summary handle for `name` and `labels`, checking the Prometheus naming rules.
    pub fn summary(&self, name: &str, labels: &[(&str, &str)]) -> Result<Histogram, MetricError> {
        match self.inner.register_checked(name, labels, MetricKind::Summary, Shape::default())? {
            Cell::Summary(cell) => Ok(Histogram::from_arc(cell)),
            _ => Err(self.inner.conflict(name, MetricKind::Summary)),
        }
    }

    /// Reads every series. Never blocks writers; see [`Snapshot`] for the order.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.snapshot()
    }

    /// The number of series held, including overflow series.
    pub fn series_count(&self) -> usize {
        self.inner.series.len()
    }

    fn register_internal_metrics(&self) {
        let described = [
            Descriptor::counter(
                CARDINALITY_OVERFLOW_METRIC,
                "Registrations of label sets beyond a metric's cardinality limit, folded into its overflow series.",
            ),
            Descriptor::counter(
                INVALID_METRICS_METRIC,
                "Metric registrations dropped because their name, labels or kind were invalid.",
            ),
        ];
        for descriptor in &described {
            // The descriptors above are constants that satisfy the naming rules.
            let _ = self.describe(descriptor);
        }
        let key = Arc::new(Key::from_static_name(INVALID_METRICS_METRIC));
        if let Ok(family) = self.inner.family(INVALID_METRICS_METRIC, MetricKind::Counter, Shape::default()) {
            self.inner.insert(key, family, Cell::Counter(self.inner.invalid.clone()), false);
        }
    }
}

impl Inner {
    /// The fast path: one lock-free map lookup and a reference-count increment.
    #[inline]
    fn lookup(&self, key: &Key, requested: Requested) -> Option<Cell> {
        let found = self.series.pin().get(key).map(|entry| (entry.family.kind, entry.cell.clone()));
        match found {
            Some((kind, cell)) if requested.accepts(kind) => Some(cell),
            Some((kind, _)) => {
                self.reject(key.name(), &self.conflict_kind(key.name(), kind, requested));
                None
            }
            None => self.register_facade(key, requested),
        }
    }

    /// The slow path of the facade: validate, normalise, apply the cardinality limit and insert.
    #[cold]
    fn register_facade(&self, key: &Key, requested: Requested) -> Option<Cell> {
        let name = key.name();
        // Counters always end in `_total`: a facade counter named without it is stored under the suffixed
        // name, so both spellings land in one series and the exposition never lacks the suffix.
        if requested == Requested::Counter && !name.ends_with("_total") {
            let normalized =
                Key::from_parts(format!("{name}_total"), key.labels().cloned().collect::<Vec<_>>());
            return self.lookup(&normalized, requested);
        }
        let checked = naming::validate_metric_name(name)
            .and_then(|()| naming::validate_labels(name, key.labels().map(Label::key)));
        if let Err(err) = checked {
            self.reject(name, &err);
            return None;
        }
        let kind = match requested {
            Requested::Counter => MetricKind::Counter,
            Requested::Gauge => MetricKind::Gauge,
            Requested::AnyHistogram if self.config.summaries.iter().any(|m| m.matches(name)) => {
                MetricKind::Summary
            }
            Requested::AnyHistogram => MetricKind::Histogram,
        };
        let family = match self.existing_family(name) {
            Some(family) if requested.accepts(family.kind) => family,
            Some(family) => {
                self.reject(name, &self.conflict_kind(name, family.kind, requested));
                return None;
            }
            None => match self.family(name, kind, Shape::default()) {
                Ok(family) => family,
                Err(err) => {
                    self.reject(name, &err);
                    return None;
                }
            },
        };
        Some(self.register_in(family, key))
    }

    /// The typed API: the naming rules are checked and errors returned rather than counted.
    fn register_checked(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        kind: MetricKind,
        shape: Shape<'_>,
    ) -> Result<Cell, MetricError> {
        naming::validate_metric_name(name)?;
        naming::validate_kind_suffix(name, kind)?;
        naming::validate_labels(name, labels.iter().map(|(k, _)| *k))?;
        let key = Key::from_parts(
            name.to_owned(),
            labels.iter().map(|(k, v)| Label::new(k.to_string(), v.to_string())).collect::<Vec<_>>(),
        );
        if let Some(entry) = self.series.pin().get(&key) {
            return if entry.family.kind == kind {
                Ok(entry.cell.clone())
            } else {
                Err(self.conflict(name, kind))
            };
        }
        let family = self.family(name, kind, shape)?;
        if family.float != shape.float && kind == MetricKind::Counter {
            let existing = if family.float { "float" } else { "integer" };
            return Err(MetricError::CounterTypeConflict { name: name.to_owned(), existing });
        }
        Ok(self.register_in(family, &key))
    }

    /// Inserts `key` into `family`, or folds it into the family's overflow series past the limit.
    fn register_in(&self, family: Arc<Family>, key: &Key) -> Cell {
        let reserved = family
            .series
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < family.limit).then_some(n + 1))
            .is_ok();
        if !reserved {
            return self.overflow(family);
        }
        let cell = family.new_cell();
        self.insert(Arc::new(key.clone()), family, cell, true)
    }

    /// Inserts a new series, or returns the one a racing thread inserted first.
    fn insert(&self, key: Arc<Key>, family: Arc<Family>, cell: Cell, counted: bool) -> Cell {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let guard = self.series.pin();
        match guard.try_insert(key, Entry { id, family: family.clone(), cell: cell.clone() }) {
            Ok(_) => cell,
            Err(occupied) => {
                if counted {
                    family.series.fetch_sub(1, Ordering::AcqRel);
                }
                occupied.current.cell.clone()
            }
        }
    }

    /// The overflow series of `family`, counting the fold in `sightline_cardinality_overflow_total`.
    fn overflow(&self, family: Arc<Family>) -> Cell {
        if family.name != CARDINALITY_OVERFLOW_METRIC {
            let key =
                Key::from_parts(CARDINALITY_OVERFLOW_METRIC, vec![Label::new("metric", family.name.clone())]);
            if let Some(Cell::Counter(counter)) = self.lookup(&key, Requested::Counter) {
                metrics::CounterFn::increment(&*counter, 1);
            }
        }
        let key = Key::from_parts(family.name.clone(), vec![Label::new(OVERFLOW_LABEL.0, OVERFLOW_LABEL.1)]);
        if let Some(entry) = self.series.pin().get(&key) {
            return entry.cell.clone();
        }
        let cell = family.new_cell();
        self.insert(Arc::new(key), family, cell, false)
    }

    fn existing_family(&self, name: &str) -> Option<Arc<Family>> {
        self.families.pin().get(name).cloned()
    }

    /// The family called `name`, created with `kind` if new. Errors if it exists with another kind.
    fn family(&self, name: &str, kind: MetricKind, shape: Shape<'_>) -> Result<Arc<Family>, MetricError> {
        let Shape { buckets, quantiles, .. } = shape;
        let families = self.families.pin();
        let family = families.get_or_insert_with(name.to_owned(), || {
            let config = &self.config;
            let buckets = buckets
                .map(<[f64]>::to_vec)
                .or_else(|| config.buckets.iter().find(|(m, _)| m.matches(name)).map(|(_, b)| b.clone()))
                .unwrap_or_else(|| config.default_buckets.clone());
            let mut summary = config.summary_config.clone();
            if let Some(quantiles) = quantiles {
                summary.quantiles = quantiles.to_vec();
            }
            // The overflow counter has one series per metric name that overflowed, so it is bounded by the
            // number of families; limiting it would hide which metric overflowed.
            let limit = if name == CARDINALITY_OVERFLOW_METRIC {
                usize::MAX
            } else {
                config
                    .cardinality_limits
                    .iter()
                    .find(|(m, _)| m.matches(name))
                    .map_or(config.cardinality_limit, |(_, limit)| *limit)
            };
            Arc::new(Family {
                name: name.to_owned(),
                kind,
                meta: RwLock::new(Meta::default()),
                float: kind == MetricKind::Counter && shape.float,
                series: AtomicUsize::new(0),
                limit,
                buckets: buckets.into(),
                summary,
            })
        });
        if family.kind != kind {
            return Err(MetricError::KindConflict {
                name: name.to_owned(),
                existing: family.kind,
                requested: kind,
            });
        }
        Ok(family.clone())
    }

    fn conflict(&self, name: &str, requested: MetricKind) -> MetricError {
        let existing = self.existing_family(name).map_or(requested, |f| f.kind);
        MetricError::KindConflict { name: name.to_owned(), existing, requested }
    }

    fn conflict_kind(&self, name: &str, existing: MetricKind, requested: Requested) -> MetricError {
        let requested = match requested {
            Requested::Counter => MetricKind::Counter,
            Requested::Gauge => MetricKind::Gauge,
            Requested::AnyHistogram => MetricKind::Histogram,
        };
        MetricError::KindConflict { name: name.to_owned(), existing, requested }
    }

    /// Drops an invalid facade registration: counts it and logs it once per metric name.
    #[cold]
    fn reject(&self, name: &str, err: &MetricError) {
        metrics::CounterFn::increment(&*self.invalid, 1);
        let mut logged = self.logged_invalid.lock().unwrap_or_else(|e| e.into_inner());
        if logged.len() < MAX_LOGGED_INVALID && logged.insert(name.to_owned()) {
            tracing::warn!(metric = name, error = %err, "dropping invalid metric; counted in {INVALID_METRICS_METRIC}");
        }
    }

    /// Records a facade description. Invalid descriptions are dropped as invalid registrations are.
    fn describe_facade(&self, name: &str, requested: Requested, unit: Option<Unit>, help: SharedString) {
        let name = match requested {
            Requested::Counter if !name.ends_with("_total") => format!("{name}_total"),
            _ => name.to_owned(),
        };
        if let Err(err) = naming::validate_metric_name(&name) {
            self.reject(&name, &err);
            return;
        }
        let family = match self.existing_family(&name) {
            Some(family) => family,
            None => {
                let kind = match requested {
                    Requested::AnyHistogram if self.config.summaries.iter().any(|m| m.matches(&name)) => {
                        MetricKind::Summary
                    }
                    Requested::AnyHistogram => MetricKind::Histogram,
                    Requested::Counter => MetricKind::Counter,
                    Requested::Gauge => MetricKind::Gauge,
                };
                match self.family(&name, kind, Shape::default()) {
                    Ok(family) => family,
                    Err(err) => return self.reject(&name, &err),
                }
            }
        };
        if !requested.accepts(family.kind) {
            return self.reject(&name, &self.conflict_kind(&name, family.kind, requested));
        }
        // A unit shows only when it is a base unit that the name carries, as OpenMetrics requires; other
        // units are left out of the exposition rather than failing the metric.
        let unit = match unit.map(BaseUnit::from_facade) {
            Some(Ok(Some(unit))) if naming::has_unit_suffix(&name, family.kind, unit) => Some(unit),
            _ => None,
        };
        let mut meta = family.meta.write().unwrap_or_else(|e| e.into_inner());
        meta.help = Some(help.into_owned());
        meta.unit = unit;
    }

    fn snapshot(&self) -> Snapshot {
        // Group by family with a small index map keyed by the family's address, so that each series is
        // placed without comparing names.
        let mut index: std::collections::HashMap<*const Family, usize> = std::collections::HashMap::new();
        let mut groups: Vec<FamilyGroup> = Vec::new();
        {
            let guard = self.series.pin();
            for (key, entry) in guard.iter() {
                let value = match &entry.cell {
                    Cell::Counter(c) => Value::Counter(c.get()),
                    Cell::FloatCounter(c) => Value::FloatCounter(c.get()),
                    Cell::Gauge(g) => Value::Gauge(g.get()),
                    Cell::Histogram(h) => Value::Histogram(h.read()),
                    Cell::Summary(s) => Value::Summary(s.read()),
                };
                let slot = *index.entry(Arc::as_ptr(&entry.family)).or_insert_with(|| {
                    groups.push((entry.family.clone(), Vec::new()));
                    groups.len() - 1
                });
                groups[slot].1.push((entry.id, SeriesSnapshot { key: key.clone(), value }));
            }
        }
        let mut families: Vec<FamilySnapshot> = groups
            .into_iter()
            .map(|(family, mut series)| {
                series.sort_unstable_by_key(|(id, _)| *id);
                let meta = family.meta.read().unwrap_or_else(|e| e.into_inner()).clone();
                FamilySnapshot {
                    name: family.name.clone(),
                    kind: family.kind,
                    help: meta.help,
                    unit: meta.unit,
                    series: series.into_iter().map(|(_, s)| s).collect(),
                }
            })
            .collect();
        families.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Snapshot { families }
    }
}

/// A family and its series with their registration ids, while a snapshot is assembled.
type FamilyGroup = (Arc<Family>, Vec<(u64, SeriesSnapshot)>);

impl Family {
    fn new_cell(&self) -> Cell {
        match self.kind {
            MetricKind::Counter if self.float => Cell::FloatCounter(Arc::default()),
            MetricKind::Counter => Cell::Counter(Arc::default()),
            MetricKind::Gauge => Cell::Gauge(Arc::default()),
            MetricKind::Histogram => Cell::Histogram(Arc::new(HistogramCell::new(self.buckets.clone()))),
            MetricKind::Summary => Cell::Summary(Arc::new(SummaryCell::new(&self.summary))),
        }
    }
}

// === impl Recorder for Registry ===

impl Recorder for Registry {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_facade(key.as_str(), Requested::Counter, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_facade(key.as_str(), Requested::Gauge, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_facade(key.as_str(), Requested::AnyHistogram, unit, description);
    }

    #[inline]
    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        match self.inner.lookup(key, Requested::Counter) {
            Some(Cell::Counter(cell)) => Counter::from_arc(cell),
            Some(Cell::FloatCounter(cell)) => Counter::from_arc(cell),
            _ => Counter::noop(),
        }
    }

    #[inline]
    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        match self.inner.lookup(key, Requested::Gauge) {
            Some(Cell::Gauge(cell)) => Gauge::from_arc(cell),
            _ => Gauge::noop(),
        }
    }

    #[inline]
    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        match self.inner.lookup(key, Requested::AnyHistogram) {
            Some(Cell::Histogram(cell)) => Histogram::from_arc(cell),
            Some(Cell::Summary(cell)) => Histogram::from_arc(cell),
            _ => Histogram::noop(),
        }
    }
}

// === impl Descriptor ===

/// What a metric is: name, kind, help text, unit, and buckets or quantiles.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Descriptor {
    name: String,
    kind: MetricKind,
    help: String,
    unit: Option<BaseUnit>,
    buckets: Option<Arc<[f64]>>,
    quantiles: Option<Vec<f64>>,
    float: bool,
}

impl Descriptor {
    fn new(name: &str, kind: MetricKind, help: &str) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            help: help.to_owned(),
            unit: None,
            buckets: None,
            quantiles: None,
            float: false,
        }
    }

    /// A counter; its name must end in `_total`.
    pub fn counter(name: &str, help: &str) -> Self {
        Self::new(name, MetricKind::Counter, help)
    }

    /// A counter of fractional amounts, for [`Registry::float_counter`]; its name must end in `_total`.
    pub fn float_counter(name: &str, help: &str) -> Self {
        Self { float: true, ..Self::new(name, MetricKind::Counter, help) }
    }

    /// A gauge.
    pub fn gauge(name: &str, help: &str) -> Self {
        Self::new(name, MetricKind::Gauge, help)
    }

    /// A histogram; Prometheus's default buckets unless [`with_buckets`](Self::with_buckets) is used.
    pub fn histogram(name: &str, help: &str) -> Self {
        Self::new(name, MetricKind::Histogram, help)
    }

    /// A summary; the registry's quantiles unless [`with_quantiles`](Self::with_quantiles) is used.
    pub fn summary(name: &str, help: &str) -> Self {
        Self::new(name, MetricKind::Summary, help)
    }

    /// The unit; the name must end in `_<unit>` (before `_total` for counters).
    pub fn with_unit(mut self, unit: BaseUnit) -> Self {
        self.unit = Some(unit);
        self
    }

    /// The histogram's bucket upper bounds: finite and strictly increasing (`+Inf` is implied).
    pub fn with_buckets(mut self, bounds: &[f64]) -> Result<Self, MetricError> {
        self.buckets = Some(naming::validate_buckets(&self.name, bounds)?.into());
        Ok(self)
    }

    /// The summary's quantiles, each in `0..=1`.
    pub fn with_quantiles(mut self, quantiles: &[f64]) -> Result<Self, MetricError> {
        if let Some(&quantile) = quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return Err(MetricError::InvalidQuantile { name: self.name.clone(), quantile });
        }
        self.quantiles = Some(quantiles.to_vec());
        Ok(self)
    }

    /// The metric name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The metric kind.
    pub fn kind(&self) -> MetricKind {
        self.kind
    }

    fn validate(&self) -> Result<(), MetricError> {
        naming::validate_metric_name(&self.name)?;
        naming::validate_kind_suffix(&self.name, self.kind)?;
        if let Some(unit) = self.unit {
            naming::validate_unit_suffix(&self.name, self.kind, unit)?;
        }
        Ok(())
    }
}
