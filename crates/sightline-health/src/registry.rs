//! The registry: runs checks in the background, damps flapping, suppresses dependents of failed checks,
//! keeps history and aggregates.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use sightline_core::{BaseUnit, Descriptor, Registry};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::{HealthCheck, Observed, Probe, Status};

/// How many results and transitions each check remembers by default.
pub const DEFAULT_HISTORY: usize = 100;

/// How one check is run and judged.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CheckOptions {
    /// How often the check runs. Default 30 s.
    pub interval: Duration,
    /// How long one probe may take before it counts as failed ("timed out after 5s"). Default 5 s.
    pub timeout: Duration,
    /// Whether the check counts for readiness and for the overall status. Default true.
    pub critical: bool,
    /// Consecutive failed probes before the check is Unhealthy; Degraded before that. Default 3, as
    /// Kubernetes probes.
    pub failure_threshold: u32,
    /// Consecutive passing probes before an Unhealthy check is Healthy again. Default 1.
    pub success_threshold: u32,
    /// Checks this one depends on: while one of them is Unhealthy, this one is skipped (Unknown) instead
    /// of failing too.
    pub depends_on: Vec<String>,
    /// Groups this check belongs to, served as `/health/{group}`.
    pub groups: Vec<String>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            critical: true,
            failure_threshold: 3,
            success_threshold: 1,
            depends_on: Vec::new(),
            groups: Vec::new(),
        }
    }
}

impl CheckOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the interval.
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets the timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets whether the check is critical.
    #[must_use]
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// Sets the failure and success thresholds.
    #[must_use]
    pub fn thresholds(mut self, failure: u32, success: u32) -> Self {
        self.failure_threshold = failure;
        self.success_threshold = success;
        self
    }

    /// Adds a dependency.
    #[must_use]
    pub fn depends_on(mut self, check: impl Into<String>) -> Self {
        self.depends_on.push(check.into());
        self
    }

    /// Adds a group.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.groups.push(group.into());
        self
    }
}

/// Why a set of checks could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HealthError {
    /// Two checks share a name.
    #[error("two health checks are named {0:?}; give each check a unique name")]
    DuplicateName(String),
    /// A name that is empty or not made of letters, digits, `_`, `-` and `.`.
    #[error("invalid health check name {0:?}: use letters, digits, '_', '-' and '.'")]
    InvalidName(String),
    /// A dependency on a check that does not exist.
    #[error("health check {check:?} depends on {dependency:?}, which is not a configured check")]
    UnknownDependency { check: String, dependency: String },
    /// Dependencies that form a cycle.
    #[error("health checks depend on each other in a cycle: {}", .0.join(" -> "))]
    DependencyCycle(Vec<String>),
    /// A threshold of zero, or a zero interval or timeout.
    #[error("health check {check:?}: {setting} must be at least {minimum}")]
    InvalidSetting { check: String, setting: &'static str, minimum: &'static str },
}

/// One probe's judged result, as kept in history.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// The status after flap damping and dependency suppression.
    pub status: Status,
    /// What the probe said, with damping or skipping explained.
    pub message: String,
    /// Structured details from the probe.
    pub details: serde_json::Value,
    /// The probe's observed value.
    pub observed: Option<Observed>,
    /// How long the probe took.
    pub duration: Duration,
    /// When the probe finished.
    pub checked_at: SystemTime,
}

/// A change of a check's status.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The check.
    pub check: String,
    /// The status before.
    pub from: Status,
    /// The status after.
    pub to: Status,
    /// The message of the result that caused it.
    pub message: String,
    /// When it happened.
    pub at: SystemTime,
}

/// The current state of one check, as served by `/health`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// The check's name.
    pub name: String,
    /// Whether it counts for readiness.
    pub critical: bool,
    /// Its groups.
    pub groups: Vec<String>,
    /// Its dependencies.
    pub depends_on: Vec<String>,
    /// The latest judged result; `None` before the first probe.
    pub last: Option<CheckResult>,
    /// Failed probes in a row.
    pub consecutive_failures: u32,
    /// Passing probes in a row.
    pub consecutive_successes: u32,
}

impl CheckReport {
    /// The check's status: Unknown until the first probe.
    pub fn status(&self) -> Status {
        self.last.as_ref().map_or(Status::Unknown, |r| r.status)
    }
}

/// An aggregate: a status and the checks it was made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The worst status of the critical checks, and at least Degraded when a non-critical check fails.
    pub status: Status,
    /// The checks, in the order they were added.
    pub checks: Vec<CheckReport>,
}

/// A check's history: its last results and transitions, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The last results.
    pub results: Vec<CheckResult>,
    /// The last transitions.
    pub transitions: Vec<Transition>,
}

// === impl HealthBuilder ===

/// Collects checks, then validates them into a [`Health`].
#[must_use]
pub struct HealthBuilder {
    metrics: Registry,
    history: usize,
    checks: Vec<(String, CheckOptions, Arc<dyn HealthCheck>)>,
}

impl std::fmt::Debug for HealthBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.checks.iter().map(|(n, _, _)| n.as_str()).collect();
        f.debug_struct("HealthBuilder").field("checks", &names).finish_non_exhaustive()
    }
}

impl HealthBuilder {
    /// Adds a check.
    pub fn check(mut self, name: impl Into<String>, options: CheckOptions, check: impl HealthCheck) -> Self {
        self.checks.push((name.into(), options, Arc::new(check)));
        self
    }

    /// Adds a check that is already shared.
    pub fn check_arc(
        mut self,
        name: impl Into<String>,
        options: CheckOptions,
        check: Arc<dyn HealthCheck>,
    ) -> Self {
        self.checks.push((name.into(), options, check));
        self
    }

    /// How many results and transitions each check keeps (at least 1).
    pub fn with_history(mut self, length: usize) -> Self {
        self.history = length.max(1);
        self
    }

    /// Validates names, settings and dependencies (unknown ones and cycles).
    pub fn build(self) -> Result<Health, HealthError> {
        let mut by_name = HashMap::new();
        for (i, (name, options, _)) in self.checks.iter().enumerate() {
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !valid {
                return Err(HealthError::InvalidName(name.clone()));
            }
            if by_name.insert(name.clone(), i).is_some() {
                return Err(HealthError::DuplicateName(name.clone()));
            }
            let invalid =
                |setting, minimum| HealthError::InvalidSetting { check: name.clone(), setting, minimum };
            if options.failure_threshold == 0 {
                return Err(invalid("failure_threshold", "1"));
            }
            if options.success_threshold == 0 {
                return Err(invalid("success_threshold", "1"));
            }
            if options.interval < Duration::from_millis(10) {
                return Err(invalid("interval", "10ms"));
            }
            if options.timeout < Duration::from_millis(1) {
                return Err(invalid("timeout", "1ms"));
            }
        }
        for (name, options, _) in &self.checks {
            for dependency in &options.depends_on {
                if !by_name.contains_key(dependency) {
                    return Err(HealthError::UnknownDependency {
                        check: name.clone(),
                        dependency: dependency.clone(),
                    });
                }
            }
        }
        let order = topological_order(&self.checks, &by_name)?;
        describe_metrics(&self.metrics);
        let (events, _) = broadcast::channel(256);
        let checks = self
            .checks
            .into_iter()
            .map(|(name, options, check)| Entry {
                handles: Handles::new(&self.metrics, &name),
                state: RwLock::new(State::default()),
                ran: watch::channel(false).0,
                name,
                options,
                check,
            })
            .collect::<Vec<_>>();
        for entry in &checks {
            entry.handles.set_status(Status::Unknown);
        }
        let (overall, _) = watch::channel(Status::Unknown);
        Ok(Health {
            inner: Arc::new(Inner {
                generation: std::sync::atomic::AtomicU64::new(0),
                checks,
                by_name,
                order,
                history: self.history,
                events,
                overall,
            }),
        })
    }
}

/// Orders checks so that every check comes after its dependencies, or reports a cycle.
fn topological_order(
    checks: &[(String, CheckOptions, Arc<dyn HealthCheck>)],
    by_name: &HashMap<String, usize>,
) -> Result<Vec<usize>, HealthError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    fn visit(
        i: usize,
        checks: &[(String, CheckOptions, Arc<dyn HealthCheck>)],
        by_name: &HashMap<String, usize>,
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), HealthError> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Visiting => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..].iter().map(|&p| checks[p].0.clone()).collect();
                cycle.push(checks[i].0.clone());
                return Err(HealthError::DependencyCycle(cycle));
            }
            Mark::New => {}
        }
        marks[i] = Mark::Visiting;
        path.push(i);
        for dependency in &checks[i].1.depends_on {
            if let Some(&d) = by_name.get(dependency) {
                visit(d, checks, by_name, marks, path, order)?;
            }
        }
        path.pop();
        marks[i] = Mark::Done;
        order.push(i);
        Ok(())
    }
    let mut marks = vec![Mark::New; checks.len()];
    let mut order = Vec::with_capacity(checks.len());
    for i in 0..checks.len() {
        visit(i, checks, by_name, &mut marks, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

// === impl Health ===

/// A validated set of checks and their state. Cheap to clone.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.inner.checks.iter().map(|c| c.name.as_str()).collect();
        f.debug_struct("Health").field("checks", &names).finish_non_exhaustive()
    }
}

struct Inner {
    /// Bumped on every recorded result, so that callers can cache what they render from a report.
    generation: std::sync::atomic::AtomicU64,
    checks: Vec<Entry>,
    by_name: HashMap<String, usize>,
    /// Dependencies first.
    order: Vec<usize>,
    history: usize,
    events: broadcast::Sender<Transition>,
    overall: watch::Sender<Status>,
}

struct Entry {
    name: String,
    options: CheckOptions,
    check: Arc<dyn HealthCheck>,
    state: RwLock<State>,
    handles: Handles,
    /// Becomes true once the check has a first result; dependents wait for it at start.
    ran: watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    last: Option<CheckResult>,
    /// The unhealthy check at the root of the dependency chain that made the last probe a skip.
    skipped_by: Option<String>,
    consecutive_failures: u32,
    consecutive_successes: u32,
    results: VecDeque<CheckResult>,
    transitions: VecDeque<Transition>,
}

impl Health {
    /// A builder; `metrics` receives the `sightline_health_*` metrics.
    pub fn builder(metrics: &Registry) -> HealthBuilder {
        HealthBuilder { metrics: metrics.clone(), history: DEFAULT_HISTORY, checks: Vec::new() }
    }

    /// Starts one task per check on the current tokio runtime: each probes at once (after its
    /// dependencies' first results, so that a dependent of a failing check starts out skipped rather than
    /// failing), then every interval at a fixed phase within it that is derived from the check's name, so
    /// that checks sharing an interval spread out. The tasks stop when the returned handle is dropped.
    pub fn start(&self) -> Running {
        let tasks = (0..self.inner.checks.len())
            .map(|i| {
                let health = self.clone();
                tokio::spawn(async move {
                    let entry = &health.inner.checks[i];
                    for dependency in &entry.options.depends_on {
                        if let Some(&d) = health.inner.by_name.get(dependency) {
                            let mut ran = health.inner.checks[d].ran.subscribe();
                            // The sender lives as long as `health`; an error cannot happen here.
                            let _ = ran.wait_for(|ran| *ran).await;
                        }
                    }
                    // The first probe runs at once so readiness is known quickly. Later probes keep a
                    // fixed cadence, phase-shifted by a per-name offset (as Prometheus spreads scrapes),
                    // so checks sharing an interval do not all fire, and re-render, at the same instant.
                    health.run(i).await;
                    let interval = entry.options.interval;
                    let mut next = tokio::time::Instant::now() + spread_offset(&entry.name, interval);
                    loop {
                        tokio::time::sleep_until(next).await;
                        health.run(i).await;
                        next += interval;
                        let now = tokio::time::Instant::now();
                        if next < now {
                            // A probe that outlived its interval: skip the missed slots, keep the phase.
                            let behind = now.duration_since(next).as_nanos() / interval.as_nanos().max(1);
                            next += interval * u32::try_from(behind + 1).unwrap_or(u32::MAX);
                        }
                    }
                })
            })
            .collect();
        Running { tasks }
    }

    /// Probes every check once, dependencies first, and returns the overall report. For tests, start-up
    /// and the CLI.
    pub async fn run_all(&self) -> Report {
        for &i in &self.inner.order {
            self.run(i).await;
        }
        self.report()
    }

    /// Probes the named check once. Returns `false` when there is no such check.
    pub async fn run_check(&self, name: &str) -> bool {
        match self.inner.by_name.get(name) {
            Some(&i) => {
                self.run(i).await;
                true
            }
            None => false,
        }
    }

    async fn run(&self, i: usize) {
        let entry = &self.inner.checks[i];
        if let Some(dependency) = self.unhealthy_dependency(entry) {
            let result = CheckResult {
                status: Status::Unknown,
                message: format!("skipped: dependency {dependency} unhealthy"),
                details: serde_json::Value::Null,
                observed: None,
                duration: Duration::ZERO,
                checked_at: SystemTime::now(),
            };
            self.record(i, result, None, Some(dependency));
            return;
        }
        let start = Instant::now();
        // Each probe is a span, so that what a check calls (an HTTP endpoint, a database) can join its trace.
        let span = tracing::info_span!(
            "health.check",
            check = %entry.name,
            status = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let probe = match tokio::time::timeout(entry.options.timeout, entry.check.check())
            .instrument(span.clone())
            .await
        {
            Ok(probe) => probe,
            Err(_) => Probe::unhealthy(format!("timed out after {}", format_duration(entry.options.timeout))),
        };
        span.record("status", probe.status.as_str());
        if probe.status == Status::Unhealthy {
            span.record("otel.status_code", "error");
        }
        let duration = start.elapsed();
        entry.handles.duration(duration);
        if probe.status == Status::Unhealthy {
            entry.handles.failure();
        }
        let raw = probe.status;
        let result = CheckResult {
            status: raw,
            message: probe.message,
            details: probe.details,
            observed: probe.observed,
            duration,
            checked_at: SystemTime::now(),
        };
        self.record(i, result, Some(raw), None);
    }

    /// The unhealthy check that this one depends on, directly or through skipped dependencies.
    fn unhealthy_dependency(&self, entry: &Entry) -> Option<String> {
        entry.options.depends_on.iter().find_map(|dependency| {
            let &d = self.inner.by_name.get(dependency)?;
            let state = self.inner.checks[d].state.read().unwrap_or_else(|e| e.into_inner());
            if let Some(root) = &state.skipped_by {
                return Some(root.clone());
            }
            let status = state.last.as_ref().map(|r| r.status)?;
            (status == Status::Unhealthy).then(|| dependency.clone())
        })
    }

    /// Applies flap damping to a probe's result (`raw` is `None` for a skipped probe) and stores it.
    fn record(&self, i: usize, mut result: CheckResult, raw: Option<Status>, skipped_by: Option<String>) {
        let entry = &self.inner.checks[i];
        let options = &entry.options;
        entry.ran.send_if_modified(|ran| !std::mem::replace(ran, true));
        let transition = {
            let mut state = entry.state.write().unwrap_or_else(|e| e.into_inner());
            let before = state.last.as_ref().map_or(Status::Unknown, |r| r.status);
            match raw {
                Some(Status::Unhealthy) => {
                    state.consecutive_failures += 1;
                    state.consecutive_successes = 0;
                    if state.consecutive_failures < options.failure_threshold && before != Status::Unhealthy {
                        result.status = Status::Degraded;
                        result.message = format!(
                            "{} (failure {} of {} before unhealthy)",
                            result.message, state.consecutive_failures, options.failure_threshold
                        );
                    }
                }
                Some(Status::Healthy | Status::Degraded) => {
                    state.consecutive_successes += 1;
                    state.consecutive_failures = 0;
                    if before == Status::Unhealthy && state.consecutive_successes < options.success_threshold
                    {
                        result.message = format!(
                            "{} (recovering: pass {} of {} before healthy)",
                            result.message, state.consecutive_successes, options.success_threshold
                        );
                        result.status = Status::Unhealthy;
                    }
                }
                Some(Status::Unknown) | None => {}
            }
            let after = result.status;
            state.skipped_by = skipped_by;
            state.last = Some(result.clone());
            push_bounded(&mut state.results, result.clone(), self.inner.history);
            let transition = (before != after).then(|| Transition {
                check: entry.name.clone(),
                from: before,
                to: after,
                message: result.message.clone(),
                at: result.checked_at,
            });
            if let Some(transition) = &transition {
                push_bounded(&mut state.transitions, transition.clone(), self.inner.history);
            }
            transition
        };
        self.inner.generation.fetch_add(1, std::sync::atomic::Ordering::Release);
        if let Some(transition) = transition {
            entry.handles.set_status(transition.to);
            entry.handles.transition(transition.to);
            tracing::info!(
                check = %entry.name,
                from = %transition.from,
                to = %transition.to,
                message = %transition.message,
                "health check changed status"
            );
            // No receivers is fine: nobody subscribed.
            let _ = self.inner.events.send(transition);
            let overall = self.report().status;
            self.inner.overall.send_if_modified(|current| std::mem::replace(current, overall) != overall);
        }
    }

    /// Every check and the overall status, from cache.
    pub fn report(&self) -> Report {
        self.aggregate(|_| true)
    }

    /// The critical checks only: the service is ready when this is Healthy or Degraded.
    pub fn readiness(&self) -> Report {
        self.aggregate(|entry| entry.options.critical)
    }

    /// The checks of `group`, or `None` when no check is in it.
    pub fn group(&self, group: &str) -> Option<Report> {
        let in_group = |entry: &Entry| entry.options.groups.iter().any(|g| g == group);
        self.has_group(group).then(|| self.aggregate(in_group))
    }

    /// Whether any check is in `group`.
    pub fn has_group(&self, group: &str) -> bool {
        self.inner.checks.iter().any(|entry| entry.options.groups.iter().any(|g| g == group))
    }

    /// The names of all groups.
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> =
            self.inner.checks.iter().flat_map(|c| c.options.groups.clone()).collect();
        groups.sort();
        groups.dedup();
        groups
    }

    fn aggregate(&self, include: impl Fn(&Entry) -> bool) -> Report {
        let mut status = Status::Healthy;
        let mut checks = Vec::new();
        for entry in self.inner.checks.iter().filter(|e| include(e)) {
            let state = entry.state.read().unwrap_or_else(|e| e.into_inner());
            let report = CheckReport {
                name: entry.name.clone(),
                critical: entry.options.critical,
                groups: entry.options.groups.clone(),
                depends_on: entry.options.depends_on.clone(),
                last: state.last.clone(),
                consecutive_failures: state.consecutive_failures,
                consecutive_successes: state.consecutive_successes,
            };
            let check_status = report.status();
            status = if entry.options.critical {
                status.max(check_status)
            } else if check_status > Status::Healthy {
                // A non-critical check that is not healthy (or not known yet) degrades the whole.
                status.max(Status::Degraded)
            } else {
                status
            };
            checks.push(report);
        }
        Report { status, checks }
    }

    /// The named check's last results and transitions, oldest first.
    pub fn history(&self, name: &str) -> Option<History> {
        let &i = self.inner.by_name.get(name)?;
        let state = self.inner.checks[i].state.read().unwrap_or_else(|e| e.into_inner());
        Some(History {
            results: state.results.iter().cloned().collect(),
            transitions: state.transitions.iter().cloned().collect(),
        })
    }

    /// Every transition from now on. A receiver that falls more than 256 transitions behind misses the
    /// oldest (tokio's broadcast semantics).
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.inner.events.subscribe()
    }

    /// The overall status, updated on every change.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.inner.overall.subscribe()
    }

    /// A number that changes whenever any check records a result: a report rendered at one generation
    /// stays exact until the generation moves.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The names of the checks, in the order they were added.
    pub fn names(&self) -> Vec<String> {
        self.inner.checks.iter().map(|c| c.name.clone()).collect()
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, limit: usize) {
    while queue.len() >= limit {
        queue.pop_front();
    }
    queue.push_back(item);
}

/// `5s`, `1.5s`, `500ms`, as people write timeouts.
fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis % 1000 == 0 {
        format!("{}s", millis / 1000)
    } else if millis >= 1000 {
        format!("{}s", duration.as_secs_f64())
    } else {
        format!("{millis}ms")
    }
}

/// The background tasks of [`Health::start`]; dropping it stops them.
#[derive(Debug)]
pub struct Running {
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops every check task.
    pub fn stop(self) {}
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

// === metrics ===

const STATUS_METRIC: &str = "sightline_health_status";
const DURATION_METRIC: &str = "sightline_health_check_duration_seconds";
const FAILURES_METRIC: &str = "sightline_health_check_failures_total";
const TRANSITIONS_METRIC: &str = "sightline_health_transitions_total";

const STATUSES: [Status; 4] = [Status::Healthy, Status::Degraded, Status::Unknown, Status::Unhealthy];

fn describe_metrics(metrics: &Registry) {
    let descriptors = [
        Ok(Descriptor::gauge(
            STATUS_METRIC,
            "Health check status: one series per status, 1 for the current one and 0 for the others.",
        )),
        Descriptor::histogram(DURATION_METRIC, "How long each health check probe took.")
            .with_unit(BaseUnit::Seconds)
            .with_buckets(&[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        Ok(Descriptor::counter(FAILURES_METRIC, "Health check probes that failed (timeouts included).")),
        Ok(Descriptor::counter(TRANSITIONS_METRIC, "Health check status changes, by the status changed to.")),
    ];
    for descriptor in descriptors.iter().flatten() {
        // Constant descriptors; a clash with an application metric surfaces as missing health metrics.
        let _ = metrics.describe(descriptor);
    }
}

/// A check's metric handles, created once.
struct Handles {
    status: Vec<(Status, metrics::Gauge)>,
    duration: Option<metrics::Histogram>,
    failures: Option<metrics::Counter>,
    transitions: Vec<(Status, metrics::Counter)>,
}

impl Handles {
    fn new(metrics: &Registry, check: &str) -> Self {
        let status = STATUSES
            .iter()
            .filter_map(|s| {
                metrics
                    .gauge(STATUS_METRIC, &[("check", check), ("status", s.as_str())])
                    .ok()
                    .map(|g| (*s, g))
            })
            .collect();
        let transitions = STATUSES
            .iter()
            .filter_map(|s| {
                metrics
                    .counter(TRANSITIONS_METRIC, &[("check", check), ("to", s.as_str())])
                    .ok()
                    .map(|c| (*s, c))
            })
            .collect();
        let failures = metrics.counter(FAILURES_METRIC, &[("check", check)]).ok();
        if let Some(failures) = &failures {
            failures.increment(0);
        }
        Self {
            status,
            duration: metrics.histogram(DURATION_METRIC, &[("check", check)]).ok(),
            failures,
            transitions,
        }
    }

    fn set_status(&self, current: Status) {
        for (status, gauge) in &self.status {
            gauge.set(if *status == current { 1.0 } else { 0.0 });
        }
    }

    fn transition(&self, to: Status) {
        if let Some((_, counter)) = self.transitions.iter().find(|(s, _)| *s == to) {
            counter.increment(1);
        }
    }

    fn duration(&self, duration: Duration) {
        if let Some(histogram) = &self.duration {
            histogram.record(duration.as_secs_f64());
        }
    }

    fn failure(&self) {
        if let Some(failures) = &self.failures {
            failures.increment(1);
        }
    }
}

#[cfg(test)]
mod tests;

/// Where in its interval a check's periodic probes fall: a stable hash of its name, as a fraction of the
/// interval. Stable across restarts, so a check's cadence does not move when the server restarts.
fn spread_offset(name: &str, interval: Duration) -> Duration {
    // FNV-1a: tiny, stable across Rust versions (unlike `DefaultHasher`), and good enough to spread names.
    let hash =
        name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    // Whole milliseconds: tokio's timers have millisecond resolution.
    let millis = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(hash % millis)
}
