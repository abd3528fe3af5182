//! Execution tracking: counts, durations, retries, items, in-flight executions and slow executions of
//! units of work (workflow runs, plugin calls, tasks), each in its own `tracing` span.
//!
//! # Use
//!
//! ```
//! use std::time::Duration;
//! use sightline_collectors::execution::{Outcome, Tracker};
//!
//! let registry = sightline_core::Registry::new();
//! let tracker = Tracker::builder(&registry)
//!     .with_thresholds("plugin", Duration::from_secs(5), Duration::from_secs(30))
//!     .build();
//!
//! // Async: the outcome is inferred from the output (`Ok` is a success, `Err` an error).
//! # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! # runtime.block_on(async {
//! let findings = tracker
//!     .track("plugin", "secrets-scan", async { Ok::<_, std::io::Error>(vec!["leaked key"]) })
//!     .await?;
//! # Ok::<_, std::io::Error>(()) })?;
//!
//! // Sync: a guard; dropping it without finishing records `cancelled`.
//! let guard = tracker.start("plugin", "lint");
//! guard.retry();
//! guard.add_items(3);
//! guard.success();
//!
//! // Run ids (or another parent span) for log correlation; retries and items from inside a future.
//! let execution = tracker.execution("workflow", "nightly").run_id(42);
//! let progress = execution.progress();
//! let run = execution.track(async move {
//!     progress.add_items(1);
//!     tracing::info!("logged in the span execution{{kind=workflow name=nightly run_id=42}}");
//! });
//! # runtime.block_on(run);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Outcomes
//!
//! Every execution ends with one [`Outcome`]:
//!
//! - `success` / `error`: from the output through [`Classify`] (`Ok` / `Err` for a `Result`, always a
//!   success for `()`), from a closure with [`Execution::track_classified`], or named explicitly with
//!   [`ExecutionGuard::finish`].
//! - `timeout`: `Tracker::track_with_timeout` (with the `tokio` feature) returns [`TimedOut`] when the
//!   deadline passes first. Without tokio, or when the work times out by itself (an HTTP client's own
//!   timeout), report it explicitly: return [`Outcome::Timeout`] from the classifier or call
//!   [`ExecutionGuard::timeout`].
//! - `cancelled`: the tracked future was dropped before it completed (a `select!` branch lost, a task
//!   aborted), or the guard was dropped without being finished. A panic while running counts as `error`.
//!
//! A tracked future starts its clock (and counts as in flight) at its first poll; one dropped before its
//! first poll records nothing. A guard starts its clock when created.
//!
//! # Metrics
//!
//! | Metric | Labels |
//! |---|---|
//! | `sightline_executions_total` (counter) | `kind`, `name`, `outcome` (`success`, `error`, `timeout`, `cancelled`) |
//! | `sightline_execution_duration_seconds` (histogram, buckets 1 ms .. 10 min) | `kind`, `name` |
//! | `sightline_execution_retries_total` (counter) | `kind`, `name` |
//! | `sightline_execution_items_total` (counter) | `kind`, `name` |
//! | `sightline_executions_in_flight` (gauge) | `kind`, `name` |
//! | `sightline_execution_slow_total` (counter) | `kind`, `name`, `level` (`warning`, `error`) |
//!
//! All series of a `(kind, name)` pair are registered at zero on its first execution, so that ratios and
//! `rate()` work before the first error. The duration of every execution is recorded, whatever its
//! outcome. Keep `kind` and `name` bounded (plugin and workflow names, not run ids): each pair is a set of
//! series.
//!
//! An execution is slow when its duration reaches its kind's warning threshold; it then counts once in
//! `sightline_execution_slow_total`, at the highest level reached, and logs one event in its span:
//! `tracing::warn!` at the warning level, `tracing::error!` at the error level, with fields `kind`, `name`,
//! `outcome`, `duration_ms` and `threshold_ms`. Defaults: `plugin` warns at 10 s and errs at 60 s, `workflow`
//! at 30 s and 120 s; other kinds have no thresholds unless configured with
//! [`TrackerBuilder::with_thresholds`]. An execution that never ends never logs: watch the in-flight gauge.
//!
//! # PromQL
//!
//! ```text
//! # Throughput, executions per minute:
//! sum by (kind, name) (rate(sightline_executions_total[5m])) * 60
//!
//! # Error ratio (add `|timeout` to the regex to count timeouts as failures):
//!   sum by (kind, name) (rate(sightline_executions_total{outcome=~"error"}[5m]))
//! / sum by (kind, name) (rate(sightline_executions_total[5m]))
//!
//! # 95th percentile duration, in seconds:
//! histogram_quantile(0.95, sum by (kind, name, le) (rate(sightline_execution_duration_seconds_bucket[5m])))
//!
//! # Slow executions in the last hour, by level:
//! sum by (kind, name, level) (increase(sightline_execution_slow_total[1h]))
//! ```
//!
//! # Spans
//!
//! Each execution runs in an `info` span `execution{kind, name, run_id}`: entered around each poll of a
//! tracked future, and for the whole life of an [`ExecutionGuard`]. Events logged inside carry those
//! fields. The span's parent is the span current where [`Tracker::track`] (or [`Tracker::start`]) is
//! called, or the one given to [`Execution::parent`]; put further fields (a tenant, a trigger) on that
//! parent span. `run_id` is empty unless set with [`Execution::run_id`].
//!
//! # Cost
//!
//! Metric handles are resolved once per `(kind, name)` and cached in a lock-free map; an execution then
//! costs a map lookup, two clock reads and a handful of atomic updates: about 130 ns for `track` around an
//! empty future, of which about 50 ns are the two clock reads (`cargo bench -p sightline-collectors
//! --bench execution`). An enabled span adds what the installed `tracing` subscriber spends on it.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram};
use sightline_core::{BaseUnit, Descriptor, Registry};
use tracing::Instrument as _;
use tracing::Span;
use tracing::span::EnteredSpan;

/// `sightline_executions_total{kind,name,outcome}`.
pub const EXECUTIONS_METRIC: &str = "sightline_executions_total";
/// `sightline_execution_duration_seconds{kind,name}`.
pub const DURATION_METRIC: &str = "sightline_execution_duration_seconds";
/// `sightline_execution_retries_total{kind,name}`.
pub const RETRIES_METRIC: &str = "sightline_execution_retries_total";
/// `sightline_execution_items_total{kind,name}`.
pub const ITEMS_METRIC: &str = "sightline_execution_items_total";
/// `sightline_executions_in_flight{kind,name}`.
pub const IN_FLIGHT_METRIC: &str = "sightline_executions_in_flight";
/// `sightline_execution_slow_total{kind,name,level}`.
pub const SLOW_METRIC: &str = "sightline_execution_slow_total";

/// The duration buckets, in seconds: 1 ms to 10 minutes.
pub const DURATION_BUCKETS: [f64; 18] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0,
];

/// The default thresholds: `(kind, warning, error)`.
const DEFAULT_THRESHOLDS: [(&str, Duration, Duration); 2] = [
    ("plugin", Duration::from_secs(10), Duration::from_secs(60)),
    ("workflow", Duration::from_secs(30), Duration::from_secs(120)),
];

// === Outcome ===

/// How an execution ended; the `outcome` label of `sightline_executions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It completed and did what it was asked.
    Success,
    /// It completed with an error, or panicked.
    Error,
    /// It ran out of time.
    Timeout,
    /// It was dropped (or its guard was) before it completed.
    Cancelled,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 4] = [Outcome::Success, Outcome::Error, Outcome::Timeout, Outcome::Cancelled];

    /// The label value: `success`, `error`, `timeout` or `cancelled`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome an output stands for, for [`Tracker::track`].
///
/// Implemented for `Result` (`Ok` is a success, `Err` an error), `()` (a success) and [`Outcome`] itself.
/// For other outputs, use [`Execution::track_classified`] with a closure, or implement this trait.
pub trait Classify {
    /// The outcome this output stands for.
    fn outcome(&self) -> Outcome;
}

impl<T, E> Classify for Result<T, E> {
    #[inline]
    fn outcome(&self) -> Outcome {
        if self.is_ok() { Outcome::Success } else { Outcome::Error }
    }
}

impl Classify for () {
    #[inline]
    fn outcome(&self) -> Outcome {
        Outcome::Success
    }
}

impl Classify for Outcome {
    #[inline]
    fn outcome(&self) -> Outcome {
        *self
    }
}

/// The error of `Tracker::track_with_timeout` (with the `tokio` feature): the deadline passed before the
/// work completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("execution timed out after {after:?}")]
pub struct TimedOut {
    after: Duration,
}

impl TimedOut {
    /// The timeout that passed.
    pub fn after(&self) -> Duration {
        self.after
    }
}

// === Thresholds ===

/// Durations at which an execution of a kind counts as slow, at the warning and at the error level.
///
/// Use [`Duration::MAX`] for a level that should never trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// From this duration on, an execution is slow at the `warning` level.
    pub warning: Duration,
    /// From this duration on, an execution is slow at the `error` level.
    pub error: Duration,
}

// === Tracker ===

/// Tracks executions into a [`Registry`]; cheap to clone (clones share the cached handles).
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    thresholds: HashMap<Box<str>, Thresholds>,
    handles: papaya::HashMap<(Box<str>, Box<str>), Arc<Handles>>,
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracker")
            .field("thresholds", &self.inner.thresholds)
            .field("tracked", &self.inner.handles.len())
            .finish_non_exhaustive()
    }
}

/// Configures a [`Tracker`]'s thresholds; from [`Tracker::builder`].
#[must_use]
#[derive(Debug)]
pub struct TrackerBuilder {
    registry: Registry,
    thresholds: HashMap<Box<str>, Thresholds>,
}

impl TrackerBuilder {
    /// Executions of `kind` are slow from `warning` on (at the warning level) and from `error` on (at the
    /// error level). Replaces the kind's defaults, if it has any.
    pub fn with_thresholds(mut self, kind: &str, warning: Duration, error: Duration) -> Self {
        self.thresholds.insert(kind.into(), Thresholds { warning, error });
        self
    }

    /// Executions of `kind` are never slow, removing its defaults.
    pub fn without_thresholds(mut self, kind: &str) -> Self {
        self.thresholds.remove(kind);
        self
    }

    /// The tracker; describes the execution metrics in the registry.
    pub fn build(self) -> Tracker {
        describe(&self.registry);
        Tracker {
            inner: Arc::new(Inner {
                registry: self.registry,
                thresholds: self.thresholds,
                handles: papaya::HashMap::new(),
            }),
        }
    }
}

fn describe(registry: &Registry) {
    let descriptors = [
        Ok(Descriptor::counter(EXECUTIONS_METRIC, "Executions that ended, by kind, name and outcome.")),
        Descriptor::histogram(DURATION_METRIC, "Time executions took, by kind and name.")
            .with_unit(BaseUnit::Seconds)
            .with_buckets(&DURATION_BUCKETS),
        Ok(Descriptor::counter(RETRIES_METRIC, "Retries made within executions, by kind and name.")),
        Ok(Descriptor::counter(
            ITEMS_METRIC,
            "Items (such as findings) produced by executions, by kind and name.",
        )),
        Ok(Descriptor::gauge(IN_FLIGHT_METRIC, "Executions running now, by kind and name.")),
        Ok(Descriptor::counter(
            SLOW_METRIC,
            "Executions that reached their kind's warning or error threshold, by the highest level reached.",
        )),
    ];
    for descriptor in descriptors.iter().flatten() {
        // Constant descriptors that satisfy the naming rules; a clash with another metric of the same
        // name shows up (and is logged) when the first execution registers its series.
        let _ = registry.describe(descriptor);
    }
}

impl Tracker {
    /// A tracker with the default thresholds (`plugin`: 10 s / 60 s, `workflow`: 30 s / 120 s).
    pub fn new(registry: &Registry) -> Self {
        Self::builder(registry).build()
    }

    /// A builder starting from the default thresholds.
    pub fn builder(registry: &Registry) -> TrackerBuilder {
        let thresholds = DEFAULT_THRESHOLDS
            .iter()
            .map(|&(kind, warning, error)| (kind.into(), Thresholds { warning, error }))
            .collect();
        TrackerBuilder { registry: registry.clone(), thresholds }
    }

    /// The thresholds of `kind`, if it has any.
    pub fn thresholds(&self, kind: &str) -> Option<Thresholds> {
        self.inner.thresholds.get(kind).copied()
    }

    /// One execution of `name` (of `kind`), to set options on before running it: a run id, a parent span.
    pub fn execution(&self, kind: &str, name: &str) -> Execution {
        Execution { handles: self.handles(kind, name), parent: None, run_id: None }
    }

    /// Runs `future` as an execution of `name` (of `kind`), returning its output; the outcome comes from
    /// the output (see [`Classify`]). See [`Execution::track`].
    #[inline]
    pub fn track<F>(&self, kind: &str, name: &str, future: F) -> impl Future<Output = F::Output> + use<F>
    where
        F: Future,
        F::Output: Classify,
    {
        self.execution(kind, name).track(future)
    }

    /// Runs `future` as an execution of `name` (of `kind`) for at most `timeout`. See
    /// [`Execution::track_with_timeout`].
    #[cfg(feature = "tokio")]
    pub fn track_with_timeout<F>(
        &self,
        kind: &str,
        name: &str,
        timeout: Duration,
        future: F,
    ) -> impl Future<Output = Result<F::Output, TimedOut>> + use<F>
    where
        F: Future,
        F::Output: Classify,
    {
        self.execution(kind, name).track_with_timeout(timeout, future)
    }

    /// Starts an execution of `name` (of `kind`) in synchronous code; see [`ExecutionGuard`].
    #[inline]
    pub fn start(&self, kind: &str, name: &str) -> ExecutionGuard {
        self.execution(kind, name).start()
    }

    /// The cached handles of `(kind, name)`, registering them on first use.
    #[inline]
    fn handles(&self, kind: &str, name: &str) -> Arc<Handles> {
        let map = self.inner.handles.pin();
        if let Some(handles) = map.get(&Query(kind, name)) {
            return handles.clone();
        }
        map.get_or_insert_with((kind.into(), name.into()), || Arc::new(Handles::new(&self.inner, kind, name)))
            .clone()
    }
}

/// A borrowed `(kind, name)`, hashed like the owned `(Box<str>, Box<str>)` key.
struct Query<'a>(&'a str, &'a str);

impl Hash for Query<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl papaya::Equivalent<(Box<str>, Box<str>)> for Query<'_> {
    #[inline]
    fn equivalent(&self, key: &(Box<str>, Box<str>)) -> bool {
        *self.0 == *key.0 && *self.1 == *key.1
    }
}

/// The metric handles of one `(kind, name)`.
struct Handles {
    kind: Box<str>,
    name: Box<str>,
    outcomes: [Counter; 4],
    duration: Histogram,
    retries: Counter,
    items: Counter,
    in_flight: Gauge,
    slow_warning: Counter,
    slow_error: Counter,
    thresholds: Option<Thresholds>,
}

impl Handles {
    /// Registers every series of `(kind, name)`, at zero. A series that cannot be registered (its name
    /// clashes with another metric) is replaced by a no-op handle, and the first failure is logged.
    fn new(inner: &Inner, kind: &str, name: &str) -> Self {
        let registry = &inner.registry;
        let thresholds = inner.thresholds.get(kind).copied();
        let mut failure = None;
        let labels = [("kind", kind), ("name", name)];
        let mut counter = |metric: &str, extra: Option<(&str, &str)>| {
            let mut all = labels.to_vec();
            all.extend(extra);
            match registry.counter(metric, &all) {
                Ok(counter) => {
                    counter.increment(0);
                    counter
                }
                Err(err) => {
                    failure.get_or_insert(err);
                    Counter::noop()
                }
            }
        };
        let outcomes =
            Outcome::ALL.map(|outcome| counter(EXECUTIONS_METRIC, Some(("outcome", outcome.as_str()))));
        let retries = counter(RETRIES_METRIC, None);
        let items = counter(ITEMS_METRIC, None);
        let (slow_warning, slow_error) = match thresholds {
            Some(_) => (
                counter(SLOW_METRIC, Some(("level", "warning"))),
                counter(SLOW_METRIC, Some(("level", "error"))),
            ),
            None => (Counter::noop(), Counter::noop()),
        };
        let duration = registry.histogram(DURATION_METRIC, &labels).unwrap_or_else(|err| {
            failure.get_or_insert(err);
            Histogram::noop()
        });
        let in_flight = registry.gauge(IN_FLIGHT_METRIC, &labels).unwrap_or_else(|err| {
            failure.get_or_insert(err);
            Gauge::noop()
        });
        if let Some(err) = failure {
            tracing::warn!(kind, name, error = %err, "cannot register execution metrics; some are not recorded");
        }
        Self {
            kind: kind.into(),
            name: name.into(),
            outcomes,
            duration,
            retries,
            items,
            in_flight,
            slow_warning,
            slow_error,
            thresholds,
        }
    }

    fn span(&self, parent: Option<&Span>) -> Span {
        let (kind, name) = (&*self.kind, &*self.name);
        match parent {
            Some(parent) => {
                tracing::info_span!(parent: parent, "execution", kind, name, run_id = tracing::field::Empty)
            }
            None => tracing::info_span!("execution", kind, name, run_id = tracing::field::Empty),
        }
    }
}

// === Execution ===

/// One execution before it runs, from [`Tracker::execution`]: set a run id or a parent span, take a
/// [`Progress`] handle, then run it with [`track`](Self::track) or [`start`](Self::start).
#[must_use = "an execution records nothing until it is tracked or started"]
pub struct Execution {
    handles: Arc<Handles>,
    parent: Option<Span>,
    run_id: Option<String>,
}

impl fmt::Debug for Execution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Execution")
            .field("kind", &self.handles.kind)
            .field("name", &self.handles.name)
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

impl Execution {
    /// Sets the span's `run_id` field, for log correlation. Not a metric label.
    pub fn run_id(mut self, run_id: impl fmt::Display) -> Self {
        self.run_id = Some(run_id.to_string());
        self
    }

    /// Makes the execution's span a child of `parent` rather than of the span current when it starts.
    pub fn parent(mut self, parent: &Span) -> Self {
        self.parent = Some(parent.clone());
        self
    }

    /// A handle that counts retries and items for this execution's `(kind, name)`, to move into the future.
    pub fn progress(&self) -> Progress {
        Progress(self.handles.clone())
    }

    fn into_recording(self) -> (Arc<Handles>, Span) {
        let span = self.handles.span(self.parent.as_ref());
        if let Some(run_id) = &self.run_id {
            span.record("run_id", run_id.as_str());
        }
        (self.handles, span)
    }

    /// Runs `future` as this execution and returns its output; the outcome comes from the output (see
    /// [`Classify`]), and is `cancelled` if the returned future is dropped before it completes.
    ///
    /// The span is created now (its parent is the current span); the clock starts at the first poll. Each
    /// poll runs inside the span.
    #[inline]
    pub fn track<F>(self, future: F) -> impl Future<Output = F::Output> + use<F>
    where
        F: Future,
        F::Output: Classify,
    {
        self.track_classified(future, Classify::outcome)
    }

    /// Like [`track`](Self::track), with the outcome decided by `classify` from the output: for outputs
    /// that do not implement [`Classify`], or to tell errors that were timeouts.
    pub fn track_classified<F, C>(self, future: F, classify: C) -> impl Future<Output = F::Output> + use<F, C>
    where
        F: Future,
        C: FnOnce(&F::Output) -> Outcome,
    {
        let (handles, span) = self.into_recording();
        async move {
            let mut recording = Recording::start(handles, span);
            let output = future.instrument(recording.span.clone()).await;
            recording.finish(classify(&output));
            output
        }
    }

    /// Runs `future` as this execution for at most `timeout`: its output, or [`TimedOut`] (and the outcome
    /// `timeout`) if the deadline passes first. Needs a tokio runtime with the time driver.
    #[cfg(feature = "tokio")]
    pub fn track_with_timeout<F>(
        self,
        timeout: Duration,
        future: F,
    ) -> impl Future<Output = Result<F::Output, TimedOut>> + use<F>
    where
        F: Future,
        F::Output: Classify,
    {
        let (handles, span) = self.into_recording();
        async move {
            let mut recording = Recording::start(handles, span);
            let result = tokio::time::timeout(timeout, future.instrument(recording.span.clone())).await;
            match result {
                Ok(output) => {
                    recording.finish(output.outcome());
                    Ok(output)
                }
                Err(_) => {
                    recording.finish(Outcome::Timeout);
                    Err(TimedOut { after: timeout })
                }
            }
        }
    }

    /// Starts this execution in synchronous code; see [`ExecutionGuard`].
    pub fn start(self) -> ExecutionGuard {
        let (handles, span) = self.into_recording();
        let entered = span.clone().entered();
        ExecutionGuard { recording: Recording::start(handles, span), _entered: entered }
    }
}

// === Progress ===

/// Counts retries and items of a `(kind, name)`; cheap to clone. From [`Execution::progress`] or
/// [`ExecutionGuard::progress`].
#[derive(Clone)]
pub struct Progress(Arc<Handles>);

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Progress").field("kind", &self.0.kind).field("name", &self.0.name).finish()
    }
}

impl Progress {
    /// Counts one retry.
    #[inline]
    pub fn retry(&self) {
        self.0.retries.increment(1);
    }

    /// Counts `n` items produced (findings, records, files).
    #[inline]
    pub fn add_items(&self, n: u64) {
        self.0.items.increment(n);
    }
}

// === ExecutionGuard ===

/// An execution in synchronous code, from [`Tracker::start`]: finish it with [`success`](Self::success),
/// [`error`](Self::error), [`timeout`](Self::timeout), [`finish`](Self::finish) or
/// [`complete`](Self::complete); dropped without finishing, it records `cancelled` (or `error` while
/// panicking).
///
/// The execution's span is entered for the guard's whole life, so the guard is not `Send`: in async code,
/// use [`Tracker::track`], which enters the span around each poll instead.
#[must_use = "dropping the guard at once records a cancelled execution"]
pub struct ExecutionGuard {
    // Dropped before `_entered`, so that a cancelled execution is recorded inside its span.
    recording: Recording,
    _entered: EnteredSpan,
}

impl fmt::Debug for ExecutionGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutionGuard")
            .field("kind", &self.recording.handles.kind)
            .field("name", &self.recording.handles.name)
            .field("elapsed", &self.elapsed())
            .finish_non_exhaustive()
    }
}

impl ExecutionGuard {
    /// Counts one retry.
    #[inline]
    pub fn retry(&self) {
        self.recording.handles.retries.increment(1);
    }

    /// Counts `n` items produced (findings, records, files).
    #[inline]
    pub fn add_items(&self, n: u64) {
        self.recording.handles.items.increment(n);
    }

    /// A handle that counts retries and items, for code that does not see the guard.
    pub fn progress(&self) -> Progress {
        Progress(self.recording.handles.clone())
    }

    /// The execution's span.
    pub fn span(&self) -> &Span {
        &self.recording.span
    }

    /// The time since the execution started.
    pub fn elapsed(&self) -> Duration {
        self.recording.start.elapsed()
    }

    /// Records a success.
    #[inline]
    pub fn success(self) {
        self.finish(Outcome::Success);
    }

    /// Records an error.
    #[inline]
    pub fn error(self) {
        self.finish(Outcome::Error);
    }

    /// Records a timeout.
    #[inline]
    pub fn timeout(self) {
        self.finish(Outcome::Timeout);
    }

    /// Records `outcome`.
    #[inline]
    pub fn finish(mut self, outcome: Outcome) {
        self.recording.finish(outcome);
    }

    /// Records the outcome of `output` (see [`Classify`]) and returns it: `return guard.complete(result)`.
    #[inline]
    pub fn complete<T: Classify>(self, output: T) -> T {
        self.finish(output.outcome());
        output
    }
}

// === Recording ===

/// A running execution: in flight from its creation until it is finished or dropped.
struct Recording {
    handles: Arc<Handles>,
    span: Span,
    start: Instant,
    done: bool,
}

impl Recording {
    #[inline]
    fn start(handles: Arc<Handles>, span: Span) -> Self {
        handles.in_flight.increment(1.0);
        Self { handles, span, start: Instant::now(), done: false }
    }

    #[inline]
    fn finish(&mut self, outcome: Outcome) {
        if self.done {
            return;
        }
        self.done = true;
        let elapsed = self.start.elapsed();
        let handles = &*self.handles;
        handles.in_flight.decrement(1.0);
        handles.outcomes[outcome.index()].increment(1);
        handles.duration.record(elapsed.as_secs_f64());
        if let Some(thresholds) = handles.thresholds
            && (elapsed >= thresholds.warning || elapsed >= thresholds.error)
        {
            self.slow(elapsed, outcome, thresholds);
        }
    }

    #[cold]
    #[inline(never)]
    fn slow(&self, elapsed: Duration, outcome: Outcome, thresholds: Thresholds) {
        let _entered = self.span.enter();
        let (kind, name) = (&*self.handles.kind, &*self.handles.name);
        let duration_ms = millis(elapsed);
        if elapsed >= thresholds.error {
            self.handles.slow_error.increment(1);
            let threshold_ms = millis(thresholds.error);
            tracing::error!(
                kind,
                name,
                outcome = outcome.as_str(),
                duration_ms,
                threshold_ms,
                "execution exceeded its error threshold"
            );
        } else {
            self.handles.slow_warning.increment(1);
            let threshold_ms = millis(thresholds.warning);
            tracing::warn!(
                kind,
                name,
                outcome = outcome.as_str(),
                duration_ms,
                threshold_ms,
                "execution exceeded its warning threshold"
            );
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if !self.done {
            let outcome = if std::thread::panicking() { Outcome::Error } else { Outcome::Cancelled };
            self.finish(outcome);
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
