//! The registry: storage for every series, the `metrics::Recorder` implementation and the typed API.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SetRecorderError, SharedString, Unit,
};
use metrics_util::KeyHasher;

use crate::cells::{Cell, FloatCounter, HistogramCell, Series, SummaryCell, SummaryConfig};
use crate::naming::{self, BaseUnit};
use crate::snapshot::{FamilySnapshot, SeriesSnapshot, Snapshot};
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
    sharded: Vec<Matcher>,
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
            sharded: Vec::new(),
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

    /// Makes the counters `matcher` chooses sharded: one cell per core, so that threads incrementing the
    /// same counter at once do not contend for one cache line. Each such series costs `128 * cores` bytes
    /// instead of 8, so choose the few hot counters that many threads bump.
    pub fn with_sharded_counters_for(mut self, matcher: Matcher) -> Self {
        self.sharded.push(matcher);
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
            id: next_registry_id(),
            series: papaya::HashMap::builder().hasher(BuildHasherDefault::<KeyHasher>::default()).build(),
            aliases: papaya::HashMap::builder().hasher(BuildHasherDefault::<KeyHasher>::default()).build(),
            families: papaya::HashMap::new(),
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

/// What the facade asked for.
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

    fn kind(self) -> MetricKind {
        match self {
            Requested::Counter => MetricKind::Counter,
            Requested::Gauge => MetricKind::Gauge,
            Requested::AnyHistogram => MetricKind::Histogram,
        }
    }
}

struct Inner {
    /// Tags this registry's entries in the per-thread lookup caches.
    id: u64,
    /// Every series, found by its key. Lookups are lock-free (papaya); the key's hash was computed when the
    /// `Key` was built (`metrics` precomputes it), and `KeyHasher` passes it on.
    /// A map to `()` rather than a `papaya::HashSet`, whose `insert` replaces an equal element: the
    /// first series registered for a key must stay the one every handle points at.
    series: papaya::HashMap<SeriesRef, (), BuildHasherDefault<KeyHasher>>,
    /// Facade counter keys named without `_total`, pointing at the series of the suffixed name, so that
    /// both spellings stay on the fast path. Bounded by the number of series.
    aliases: papaya::HashMap<Key, Arc<Series>, BuildHasherDefault<KeyHasher>>,
    families: papaya::HashMap<String, Arc<Family>>,
    logged_invalid: Mutex<HashSet<String>>,
    config: RegistryBuilder,
}

/// A series in the lookup set, hashed and compared by its key.
#[derive(Clone)]
struct SeriesRef(Arc<Series>);

impl Hash for SeriesRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.key.get_hash());
    }
}

impl PartialEq for SeriesRef {
    fn eq(&self, other: &Self) -> bool {
        same_key(&self.0.key, &other.0.key)
    }
}

impl Eq for SeriesRef {}

/// A borrowed key looking for its series.
struct Query<'a>(&'a Key);

impl Hash for Query<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.get_hash());
    }
}

impl papaya::Equivalent<SeriesRef> for Query<'_> {
    fn equivalent(&self, series: &SeriesRef) -> bool {
        same_key(self.0, &series.0.key)
    }
}

/// Key equality with shortcuts: the precomputed hashes first, then each string by address before bytes.
/// Keys from the `metrics` macros point at the same static strings as the stored key, so the common case
/// compares pointers, not bytes.
#[inline(always)]
fn same_key(a: &Key, b: &Key) -> bool {
    #[inline(always)]
    fn same(x: &str, y: &str) -> bool {
        (x.as_ptr() == y.as_ptr() && x.len() == y.len()) || x == y
    }
    let (la, lb) = (a.labels().as_slice(), b.labels().as_slice());
    a.get_hash() == b.get_hash()
        && same(a.name(), b.name())
        && la.len() == lb.len()
        && la.iter().zip(lb).all(|(x, y)| same(x.key(), y.key()) && same(x.value(), y.value()))
}

struct Family {
    name: String,
    kind: MetricKind,
    meta: RwLock<Meta>,
    /// Whether a counter family counts fractions (see [`FloatCounter`]).
    float: bool,
    /// Whether an integer counter family spreads each series over one cell per core.
    sharded: bool,
    /// Label sets reserved so far against the limit, not counting the overflow series.
    reserved: AtomicUsize,
    limit: usize,
    /// The family's series in registration order (the overflow series included), for snapshots: reading
    /// them in order needs no sort, and appending is lock-free.
    series: boxcar::Vec<Arc<Series>>,
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
    ///
    /// Each call validates and builds an owned key: keep the handle rather than calling this on a hot path.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Result<Counter, MetricError> {
        let series = self.inner.register_checked(name, labels, MetricKind::Counter, Shape::default())?;
        Ok(Counter::from_arc(series))
    }

    /// A handle to a counter of fractional amounts (such as CPU seconds) for `name` and `labels`.
    ///
    /// One metric name holds either integer or float counters; facade increments of a float counter are
    /// added as floats.
    pub fn float_counter(&self, name: &str, labels: &[(&str, &str)]) -> Result<FloatCounter, MetricError> {
        let shape = Shape { float: true, ..Shape::default() };
        let series = self.inner.register_checked(name, labels, MetricKind::Counter, shape)?;
        Ok(FloatCounter(series))
    }

    /// A gauge handle for `name` and `labels`, checking the Prometheus naming rules.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Result<Gauge, MetricError> {
        let series = self.inner.register_checked(name, labels, MetricKind::Gauge, Shape::default())?;
        Ok(Gauge::from_arc(series))
    }

    /// A histogram handle for `name` and `labels`, checking the Prometheus naming rules.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Result<Histogram, MetricError> {
        let series = self.inner.register_checked(name, labels, MetricKind::Histogram, Shape::default())?;
        Ok(Histogram::from_arc(series))
    }

    /// A summary handle for `name` and `labels`, checking the Prometheus naming rules.
    pub fn summary(&self, name: &str, labels: &[(&str, &str)]) -> Result<Histogram, MetricError> {
        let series = self.inner.register_checked(name, labels, MetricKind::Summary, Shape::default())?;
        Ok(Histogram::from_arc(series))
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
        // Registered up front so that it reads 0 before the first invalid metric.
        let _ =
            self.inner.register_checked(INVALID_METRICS_METRIC, &[], MetricKind::Counter, Shape::default());
    }
}

/// How many recently used series each thread remembers, per slot chosen by key hash.
const THREAD_CACHE_SLOTS: usize = 64;

/// One cache slot: the registry's id and the series.
type CacheSlot = Option<(u64, Arc<Series>)>;

thread_local! {
    /// A small direct-mapped cache of the series this thread looked up last, tagged with the registry's
    /// id. A hit skips the shared map (its epoch guard and probe), which is most of the cost of
    /// `counter!` with labels. Entries are never stale: a key's series never changes once registered.
    static THREAD_CACHE: std::cell::RefCell<Vec<CacheSlot>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Gives each registry an id for the thread caches; ids are never reused, unlike addresses.
static NEXT_REGISTRY_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub(crate) fn next_registry_id() -> u64 {
    NEXT_REGISTRY_ID.fetch_add(1, Ordering::Relaxed)
}

impl Inner {
    /// The fast path: the thread's cache, else one lock-free map lookup; then a reference-count increment.
    #[inline]
    fn lookup(&self, key: &Key, requested: Requested) -> Option<Arc<Series>> {
        let slot = (key.get_hash() as usize) % THREAD_CACHE_SLOTS;
        let cached = THREAD_CACHE.try_with(|cache| {
            let cache = cache.try_borrow().ok()?;
            match cache.get(slot)? {
                Some((id, series)) if *id == self.id && same_key(key, &series.key) => Some(series.clone()),
                _ => None,
            }
        });
        // The thread is tearing down its thread-locals (a metric recorded from another thread-local's
        // destructor). The map's epoch guard needs thread-locals that may be gone too, and touching them
        // would abort the process, so the record is dropped.
        let Ok(cached) = cached else { return None };
        let found = match cached {
            Some(series) => Some(series),
            None => {
                let found = self.series.pin().get_key_value(&Query(key)).map(|(series, ())| series.0.clone());
                if let Some(series) = &found {
                    self.remember(slot, series);
                }
                found
            }
        };
        match found {
            Some(series) if requested.accepts(series.cell.kind()) => Some(series),
            Some(series) => {
                self.reject(key.name(), &self.conflict_kind(key.name(), series.cell.kind(), requested));
                None
            }
            None => self.register_facade(key, requested),
        }
    }

    #[cold]
    fn remember(&self, slot: usize, series: &Arc<Series>) {
        let _ = THREAD_CACHE.try_with(|cache| {
            if let Ok(mut cache) = cache.try_borrow_mut() {
                if cache.is_empty() {
                    cache.resize(THREAD_CACHE_SLOTS, None);
                }
                cache[slot] = Some((self.id, series.clone()));
            }
        });
    }

    /// The slow path of the facade: validate, normalise, apply the cardinality limit and insert.
    #[cold]
    fn register_facade(&self, key: &Key, requested: Requested) -> Option<Arc<Series>> {
        let name = key.name();
        // Counters always end in `_total`: a facade counter named without it is stored under the suffixed
        // name, so that both spellings land in one series, and remembered as an alias of it.
        if requested == Requested::Counter && !name.ends_with("_total") {
            if let Some(series) = self.aliases.pin().get(key) {
                return Some(series.clone());
            }
            let labels: Vec<Label> = key.labels().cloned().collect();
            let normalized = Key::from_parts(format!("{name}_total"), labels);
            let series = self.lookup(&normalized, requested)?;
            // Overflow series are shared by many keys; only a series of its own gets an alias.
            if same_key(&series.key, &normalized) {
                self.aliases.pin().insert(key.clone(), series.clone());
            }
            return Some(series);
        }
        let checked = naming::validate_metric_name(name)
            .and_then(|()| naming::validate_labels(name, key.labels().map(Label::key)));
        if let Err(err) = checked {
            self.reject(name, &err);
            return None;
        }
        let family = match self.existing_family(name) {
            Some(family) if requested.accepts(family.kind) => family,
            Some(family) => {
                self.reject(name, &self.conflict_kind(name, family.kind, requested));
                return None;
            }
            None => {
                let kind = match requested {
                    Requested::AnyHistogram if self.is_summary(name) => MetricKind::Summary,
                    requested => requested.kind(),
                };
                match self.family(name, kind, Shape::default()) {
                    Ok(family) => family,
                    Err(err) => {
                        self.reject(name, &err);
                        return None;
                    }
                }
            }
        };
        Some(self.register_in(&family, key))
    }

    fn is_summary(&self, name: &str) -> bool {
        self.config.summaries.iter().any(|m| m.matches(name))
    }

    /// The typed API: the naming rules are checked and errors returned rather than counted.
    fn register_checked(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        kind: MetricKind,
        shape: Shape<'_>,
    ) -> Result<Arc<Series>, MetricError> {
        naming::validate_metric_name(name)?;
        naming::validate_kind_suffix(name, kind)?;
        naming::validate_labels(name, labels.iter().map(|(k, _)| *k))?;
        let family = self.family(name, kind, shape)?;
        let key = Key::from_parts(
            name.to_owned(),
            labels.iter().map(|(k, v)| Label::new(k.to_string(), v.to_string())).collect::<Vec<_>>(),
        );
        if let Some((series, ())) = self.series.pin().get_key_value(&Query(&key)) {
            return Ok(series.0.clone());
        }
        Ok(self.register_in(&family, &key))
    }

    /// Inserts `key` into `family`, or folds it into the family's overflow series past the limit.
    fn register_in(&self, family: &Arc<Family>, key: &Key) -> Arc<Series> {
        let reserved = family
            .reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < family.limit).then_some(n + 1))
            .is_ok();
        if !reserved {
            return self.overflow(family);
        }
        match self.insert(family, key.clone()) {
            Ok(series) => series,
            Err(existing) => {
                // A racing thread registered the same key first; give the reservation back.
                family.reserved.fetch_sub(1, Ordering::AcqRel);
                existing
            }
        }
    }

    /// Inserts a new series for `key`; `Err` holds the series a racing thread inserted first.
    fn insert(&self, family: &Arc<Family>, key: Key) -> Result<Arc<Series>, Arc<Series>> {
        let series = Arc::new(Series { key, cell: family.new_cell() });
        let guard = self.series.pin();
        if guard.try_insert(SeriesRef(series.clone()), ()).is_ok() {
            family.series.push(series.clone());
            Ok(series)
        } else {
            // Entries are never removed, so the winner of the race is there.
            let existing = guard.get_key_value(&Query(&series.key)).map(|(existing, ())| existing.0.clone());
            Err(existing.unwrap_or(series))
        }
    }

    /// The overflow series of `family`, counting the fold in `sightline_cardinality_overflow_total`.
    fn overflow(&self, family: &Arc<Family>) -> Arc<Series> {
        if family.name != CARDINALITY_OVERFLOW_METRIC {
            let key =
                Key::from_parts(CARDINALITY_OVERFLOW_METRIC, vec![Label::new("metric", family.name.clone())]);
            if let Some(counter) = self.lookup(&key, Requested::Counter) {
                metrics::CounterFn::increment(&*counter, 1);
            }
        }
        // The overflow series does not count against the limit.
        let key = Key::from_parts(family.name.clone(), vec![Label::new(OVERFLOW_LABEL.0, OVERFLOW_LABEL.1)]);
        match self.series.pin().get_key_value(&Query(&key)) {
            Some((series, ())) => series.0.clone(),
            None => self.insert(family, key).unwrap_or_else(|existing| existing),
        }
    }

    fn existing_family(&self, name: &str) -> Option<Arc<Family>> {
        self.families.pin().get(name).cloned()
    }

    /// The family called `name`, created with `kind` if new. Errors if it exists with another kind, or as
    /// a counter of the other number type.
    fn family(&self, name: &str, kind: MetricKind, shape: Shape<'_>) -> Result<Arc<Family>, MetricError> {
        let Shape { buckets, quantiles, float } = shape;
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
                float: kind == MetricKind::Counter && float,
                sharded: kind == MetricKind::Counter
                    && !float
                    && config.sharded.iter().any(|m| m.matches(name)),
                reserved: AtomicUsize::new(0),
                limit,
                series: boxcar::Vec::new(),
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
        if kind == MetricKind::Counter && family.float != float {
            let existing = if family.float { "float" } else { "integer" };
            return Err(MetricError::CounterTypeConflict { name: name.to_owned(), existing });
        }
        Ok(family.clone())
    }

    fn conflict_kind(&self, name: &str, existing: MetricKind, requested: Requested) -> MetricError {
        MetricError::KindConflict { name: name.to_owned(), existing, requested: requested.kind() }
    }

    /// Drops an invalid facade registration: counts it and logs it once per metric name.
    #[cold]
    fn reject(&self, name: &str, err: &MetricError) {
        let key = Key::from_static_name(INVALID_METRICS_METRIC);
        if let Some((series, ())) = self.series.pin().get_key_value(&Query(&key)) {
            metrics::CounterFn::increment(&*series.0, 1);
        }
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
            return self.reject(&name, &err);
        }
        let family = match self.existing_family(&name) {
            Some(family) => family,
            None => {
                let kind = match requested {
                    Requested::AnyHistogram if self.is_summary(&name) => MetricKind::Summary,
                    requested => requested.kind(),
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
        let mut families: Vec<Arc<Family>> = self.families.pin().values().cloned().collect();
        families.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let families = families
            .into_iter()
            .filter(|family| family.series.count() > 0)
            .map(|family| {
                let series = family
                    .series
                    .iter()
                    .map(|(_, series)| SeriesSnapshot { value: series.cell.read(), series: series.clone() })
                    .collect();
                let meta = family.meta.read().unwrap_or_else(|e| e.into_inner()).clone();
                FamilySnapshot {
                    name: family.name.clone(),
                    kind: family.kind,
                    help: meta.help,
                    unit: meta.unit,
                    series,
                }
            })
            .collect();
        Snapshot { families }
    }
}

impl Family {
    fn new_cell(&self) -> Cell {
        match self.kind {
            MetricKind::Counter if self.float => Cell::FloatCounter(Default::default()),
            MetricKind::Counter if self.sharded => Cell::ShardedCounter(Default::default()),
            MetricKind::Counter => Cell::Counter(Default::default()),
            MetricKind::Gauge => Cell::Gauge(Default::default()),
            MetricKind::Histogram => Cell::Histogram(Box::new(HistogramCell::new(self.buckets.clone()))),
            MetricKind::Summary => Cell::Summary(Box::new(SummaryCell::new(&self.summary))),
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
        self.inner.lookup(key, Requested::Counter).map_or_else(Counter::noop, Counter::from_arc)
    }

    #[inline]
    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        self.inner.lookup(key, Requested::Gauge).map_or_else(Gauge::noop, Gauge::from_arc)
    }

    #[inline]
    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        self.inner.lookup(key, Requested::AnyHistogram).map_or_else(Histogram::noop, Histogram::from_arc)
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
