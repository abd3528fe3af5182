//! The rule manager: runs each group on its interval, sends alerts to the notification pipeline, keeps
//! state across reloads, and gives the `/api/v1/rules` and `/api/v1/alerts` views.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use sightline_tsdb::Storage;
use sightline_tsdb::promql::Engine;

use super::file::{Diagnostic, load_files};
use super::group::{
    AlertState, AlertingRule, BuildError, EvalContext, Health, Rule, RuleEvent, RuleGroup, RuleStatus,
    millis_to_time, time_to_millis,
};
use crate::model::{AlertSink, LabelSet};

/// Settings of a [`RuleManager`], with Prometheus's defaults.
#[derive(Clone, Debug)]
pub struct ManagerOptions {
    /// The interval of groups that set none (Prometheus's global `evaluation_interval`, 1 m).
    pub evaluation_interval: Duration,
    /// Added to alert templates' `$externalLabels`.
    pub external_labels: LabelSet,
    /// The server's URL, for `$externalURL` and alerts' generator URLs.
    pub external_url: String,
    /// A firing alert is sent again after this long (1 m).
    pub resend_delay: Duration,
    /// A restored alert gets at least this long before it fires (10 m).
    pub for_grace_period: Duration,
    /// How far back the restore looks for `ALERTS_FOR_STATE` (1 h).
    pub outage_tolerance: Duration,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        Self {
            evaluation_interval: Duration::from_secs(60),
            external_labels: LabelSet::new(),
            external_url: String::new(),
            resend_delay: Duration::from_secs(60),
            for_grace_period: Duration::from_secs(600),
            outage_tolerance: Duration::from_secs(3600),
        }
    }
}

/// Called with every alert state change.
pub type EventCallback = Arc<dyn Fn(&RuleEvent) + Send + Sync>;

/// Why a reload was refused; the running rules are kept.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{} error(s) in the rule files, the previous rules are kept:\n{}", .0.len(), join(.0))]
    Invalid(Vec<Diagnostic>),
    #[error("{0}; the previous rules are kept")]
    Build(#[from] BuildError),
    #[error("rules must be loaded from inside a tokio runtime, which runs the rule groups")]
    NoRuntime,
}

fn join(d: &[Diagnostic]) -> String {
    d.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// Runs rule groups.
#[derive(Clone)]
pub struct RuleManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RuleManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleManager").field("options", &self.inner.options).finish_non_exhaustive()
    }
}

struct Inner {
    storage: Arc<dyn Storage>,
    engine: Arc<Engine>,
    sink: Arc<dyn AlertSink>,
    options: ManagerOptions,
    on_event: Mutex<Option<EventCallback>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    groups: Vec<Running>,
    /// Whether a first load happened: only the groups of the first load restore `for` state, as in
    /// Prometheus (a reload keeps state in memory instead).
    loaded: bool,
    /// Pending and firing alerts per group, for the `sightline_alerts` gauge.
    counts: HashMap<(PathBuf, String), (usize, usize)>,
}

struct Running {
    group: Arc<Mutex<RuleGroup>>,
    task: tokio::task::JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Describes the manager's metrics to the `metrics` recorder.
pub fn describe_metrics() {
    metrics::describe_gauge!("sightline_alerts", "Alerts of the alerting rules, by state (pending, firing).");
    metrics::describe_histogram!(
        "sightline_rule_evaluation_duration_seconds",
        metrics::Unit::Seconds,
        "How long one evaluation of a rule group took."
    );
    metrics::describe_counter!("sightline_rule_evaluation_failures_total", "Rule evaluations that failed.");
    metrics::describe_counter!(
        "sightline_rule_group_iterations_missed_total",
        "Group evaluations skipped because the previous one took longer than the interval."
    );
}

// === impl RuleManager ===

impl RuleManager {
    pub fn new(
        storage: Arc<dyn Storage>,
        engine: Arc<Engine>,
        sink: Arc<dyn AlertSink>,
        options: ManagerOptions,
    ) -> Self {
        describe_metrics();
        Self {
            inner: Arc::new(Inner {
                storage,
                engine,
                sink,
                options,
                on_event: Mutex::new(None),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Sets the callback that sees every alert state change.
    pub fn on_event(&self, callback: EventCallback) {
        *lock(&self.inner.on_event) = Some(callback);
    }

    /// Loads (or reloads) rule files and (re)starts the groups. Rules that still exist (same file,
    /// group, kind, name, labels and annotations) keep their alerts, as in Prometheus. On any error the
    /// running rules are left as they are.
    pub fn reload(&self, files: &[PathBuf]) -> Result<(), ReloadError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| ReloadError::NoRuntime)?;
        let defs = load_files(files).map_err(ReloadError::Invalid)?;
        let default_interval =
            i64::try_from(self.inner.options.evaluation_interval.as_millis()).unwrap_or(60_000);
        let mut new_groups = Vec::with_capacity(defs.len());
        for def in &defs {
            new_groups.push(RuleGroup::from_def(def, default_interval)?);
        }
        let mut state = lock(&self.inner.state);
        let restore = !state.loaded;
        state.loaded = true;
        let old: Vec<Running> = std::mem::take(&mut state.groups);
        for r in &old {
            r.task.abort();
        }
        let old_groups: Vec<RuleGroup> = old.iter().map(|r| lock(&r.group).clone()).collect();
        state.counts.clear();
        for mut group in new_groups {
            if let Some(prev) = old_groups.iter().find(|g| g.file == group.file && g.name == group.name) {
                group.copy_state(prev);
            }
            if !restore {
                // Reloaded groups keep their state in memory; only a start restores from storage.
                group.set_restored();
            }
            let group = Arc::new(Mutex::new(group));
            let task = handle.spawn(run_group(Arc::downgrade(&self.inner), Arc::clone(&group), restore));
            state.groups.push(Running { group, task });
        }
        drop(state);
        self.inner.update_alert_gauges();
        Ok(())
    }

    /// Stops every group.
    pub fn stop(&self) {
        let mut state = lock(&self.inner.state);
        for r in state.groups.drain(..) {
            r.task.abort();
        }
    }

    /// Evaluates every group once at `at`, as a scheduled iteration would (for tests and for
    /// `sightline` commands that evaluate on demand), sending alerts and reporting events.
    pub fn eval_all_at(&self, at: SystemTime) {
        let groups: Vec<Arc<Mutex<RuleGroup>>> =
            lock(&self.inner.state).groups.iter().map(|r| Arc::clone(&r.group)).collect();
        for g in groups {
            self.inner.iteration(&g, at, false);
        }
    }

    /// The `data` of `/api/v1/rules`.
    pub fn rules_api(&self) -> RulesData {
        let groups: Vec<Arc<Mutex<RuleGroup>>> =
            lock(&self.inner.state).groups.iter().map(|r| Arc::clone(&r.group)).collect();
        RulesData { groups: groups.iter().map(|g| api_group(&lock(g))).collect() }
    }

    /// The `data` of `/api/v1/alerts`: pending and firing alerts.
    pub fn alerts_api(&self) -> AlertsData {
        let groups: Vec<Arc<Mutex<RuleGroup>>> =
            lock(&self.inner.state).groups.iter().map(|r| Arc::clone(&r.group)).collect();
        let mut alerts = Vec::new();
        for g in &groups {
            let g = lock(g);
            for rule in &g.rules {
                if let Rule::Alerting(a) = rule {
                    alerts.extend(api_alerts(a));
                }
            }
        }
        AlertsData { alerts }
    }
}

/// Stops the groups when the last [`RuleManager`] is dropped.
impl Drop for Inner {
    fn drop(&mut self) {
        for r in lock(&self.state).groups.drain(..) {
            r.task.abort();
        }
    }
}

// === impl Inner ===

impl Inner {
    /// One evaluation of a group at `at`: evaluates, restores `for` state when asked, sends alerts,
    /// reports events and metrics.
    fn iteration(&self, group: &Mutex<RuleGroup>, at: SystemTime, restore: bool) {
        let ts = time_to_millis(at);
        let ctx = EvalContext {
            engine: &self.engine,
            storage: self.storage.as_ref(),
            external_labels: &self.options.external_labels,
            external_url: &self.options.external_url,
        };
        let mut g = lock(group);
        let outcome = g.eval(&ctx, ts);
        if restore {
            let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            g.restore_for_state(
                &ctx,
                ts,
                ms(self.options.for_grace_period),
                ms(self.options.outage_tolerance),
            );
        }
        let resend = i64::try_from(self.options.resend_delay.as_millis()).unwrap_or(60_000);
        let alerts = g.alerts_to_send(ts, resend, &self.options.external_url);
        let labels = [("group", g.name.clone())];
        metrics::histogram!("sightline_rule_evaluation_duration_seconds", &labels)
            .record(g.evaluation_time.as_secs_f64());
        if !outcome.errors.is_empty() {
            metrics::counter!("sightline_rule_evaluation_failures_total", &labels)
                .increment(outcome.errors.len() as u64);
            for (rule, error) in &outcome.errors {
                tracing::warn!(group = %g.name, rule = %rule, error = %error, "rule evaluation failed");
            }
        }
        let mut pending = 0;
        let mut firing = 0;
        for (_, a) in g.active_alerts() {
            match a.state {
                AlertState::Pending => pending += 1,
                AlertState::Firing => firing += 1,
                _ => {}
            }
        }
        let key = (g.file.clone(), g.name.clone());
        drop(g);
        lock(&self.state).counts.insert(key, (pending, firing));
        self.update_alert_gauges();
        if !alerts.is_empty() {
            self.sink.send(alerts);
        }
        let callback = lock(&self.on_event).clone();
        if let Some(cb) = callback {
            for e in &outcome.events {
                cb(e);
            }
        }
    }

    fn update_alert_gauges(&self) {
        let state = lock(&self.state);
        let (pending, firing) = state.counts.values().fold((0, 0), |acc, c| (acc.0 + c.0, acc.1 + c.1));
        metrics::gauge!("sightline_alerts", "state" => "pending").set(pending as f64);
        metrics::gauge!("sightline_alerts", "state" => "firing").set(firing as f64);
    }
}

/// A stable offset in `[0, interval)` for a group, so that groups spread over the interval (FNV-1a of
/// the file and group name, as Prometheus hashes them).
fn group_offset(group: &RuleGroup) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in group.file.to_string_lossy().bytes().chain([0xff]).chain(group.name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % group.interval_ms.max(1).unsigned_abs()) as i64
}

/// The iterations skipped when an evaluation scheduled at `scheduled` ends at `now`: the whole intervals
/// that passed since, so that the next evaluation is the first slot after `now`.
fn missed_iterations(scheduled: i64, now: i64, interval: i64) -> i64 {
    (now - scheduled).max(0) / interval.max(1)
}

/// A group's loop. It holds the manager weakly, so that dropping the last [`RuleManager`] stops it.
async fn run_group(inner: Weak<Inner>, group: Arc<Mutex<RuleGroup>>, restore: bool) {
    let (interval, offset, name) = {
        let g = lock(&group);
        (g.interval_ms, group_offset(&g), g.name.clone())
    };
    let now = time_to_millis(SystemTime::now());
    // The first evaluation at the next `k * interval + offset`.
    let mut next = now - now.rem_euclid(interval) + offset;
    if next <= now {
        next += interval;
    }
    // Prometheus restores after the second evaluation, so that recording rules the alerts depend on
    // have run once.
    let mut evaluations = 0u32;
    loop {
        let wait = next - time_to_millis(SystemTime::now());
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())).await;
        }
        let at = millis_to_time(next);
        evaluations += 1;
        let do_restore = restore && evaluations == 2;
        let Some(i) = inner.upgrade() else { return };
        let g = Arc::clone(&group);
        if tokio::task::spawn_blocking(move || i.iteration(&g, at, do_restore)).await.is_err() {
            tracing::error!(group = %name, "a rule group evaluation panicked; the group goes on at its next interval");
        }
        let now = time_to_millis(SystemTime::now());
        let missed = missed_iterations(next, now, interval);
        if missed > 0 {
            metrics::counter!("sightline_rule_group_iterations_missed_total", "group" => name.clone())
                .increment(missed.unsigned_abs());
            tracing::warn!(group = %name, missed, "rule group evaluation took longer than its interval; iterations skipped");
        }
        next += interval * (missed + 1);
    }
}

/// `/api/v1/rules`'s `data`.
#[derive(Clone, Debug, Serialize)]
pub struct RulesData {
    pub groups: Vec<ApiGroup>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiGroup {
    pub name: String,
    pub file: String,
    pub rules: Vec<ApiRule>,
    /// Seconds.
    pub interval: f64,
    pub limit: u64,
    pub evaluation_time: f64,
    pub last_evaluation: String,
}

/// A rule as Prometheus's API shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum ApiRule {
    Alerting(ApiAlertingRule),
    Recording(ApiRecordingRule),
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiAlertingRule {
    pub state: AlertState,
    pub name: String,
    pub query: String,
    /// `for`, seconds.
    pub duration: f64,
    /// Seconds.
    pub keep_firing_for: f64,
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub alerts: Vec<ApiAlert>,
    pub health: Health,
    pub last_error: String,
    pub evaluation_time: f64,
    pub last_evaluation: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiRecordingRule {
    pub name: String,
    pub query: String,
    pub labels: LabelSet,
    pub health: Health,
    pub last_error: String,
    pub evaluation_time: f64,
    pub last_evaluation: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiAlert {
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub state: AlertState,
    pub active_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_firing_since: Option<String>,
    /// As Prometheus prints it: `strconv.FormatFloat(v, 'e', -1, 64)`.
    pub value: String,
}

/// `/api/v1/alerts`'s `data`.
#[derive(Clone, Debug, Serialize)]
pub struct AlertsData {
    pub alerts: Vec<ApiAlert>,
}

/// Go's `time.RFC3339Nano` in UTC (`2024-01-02T03:04:05.123Z`; Go's zero time when never).
pub fn rfc3339_nano(t: Option<SystemTime>) -> String {
    let Some(t) = t else {
        return "0001-01-01T00:00:00Z".into();
    };
    let text = humantime::format_rfc3339_nanos(t).to_string();
    match text.trim_end_matches('Z').split_once('.') {
        Some((whole, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() { format!("{whole}Z") } else { format!("{whole}.{frac}Z") }
        }
        None => text,
    }
}

fn api_alerts(a: &AlertingRule) -> Vec<ApiAlert> {
    let mut alerts: Vec<ApiAlert> = a
        .active
        .values()
        .filter(|x| x.state != AlertState::Inactive)
        .map(|x| ApiAlert {
            labels: x.labels.clone(),
            annotations: x.annotations.clone(),
            state: x.state,
            active_at: rfc3339_nano(Some(millis_to_time(x.active_at))),
            keep_firing_since: x.keep_firing_since.map(|t| rfc3339_nano(Some(millis_to_time(t)))),
            value: AlertingRule::value_text(x.value),
        })
        .collect();
    alerts.sort_by(|x, y| x.labels.cmp(&y.labels));
    alerts
}

fn api_group(g: &RuleGroup) -> ApiGroup {
    let status_fields = |s: &RuleStatus| {
        (s.health, s.last_error.clone(), s.evaluation_time.as_secs_f64(), rfc3339_nano(s.last_evaluation))
    };
    let rules = g
        .rules
        .iter()
        .map(|r| match r {
            Rule::Alerting(a) => {
                let (health, last_error, evaluation_time, last_evaluation) = status_fields(&a.status);
                let alerts = api_alerts(a);
                let state = if alerts.iter().any(|x| x.state == AlertState::Firing) {
                    AlertState::Firing
                } else if alerts.is_empty() {
                    AlertState::Inactive
                } else {
                    AlertState::Pending
                };
                ApiRule::Alerting(ApiAlertingRule {
                    state,
                    name: a.name.clone(),
                    query: a.expr_text.clone(),
                    duration: a.hold_ms as f64 / 1000.0,
                    keep_firing_for: a.keep_firing_for_ms as f64 / 1000.0,
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                    alerts,
                    health,
                    last_error,
                    evaluation_time,
                    last_evaluation,
                    kind: "alerting",
                })
            }
            Rule::Recording(rec) => {
                let (health, last_error, evaluation_time, last_evaluation) = status_fields(&rec.status);
                ApiRule::Recording(ApiRecordingRule {
                    name: rec.name.clone(),
                    query: rec.expr_text.clone(),
                    labels: rec.labels.clone(),
                    health,
                    last_error,
                    evaluation_time,
                    last_evaluation,
                    kind: "recording",
                })
            }
        })
        .collect();
    ApiGroup {
        name: g.name.clone(),
        file: g.file.display().to_string(),
        rules,
        interval: g.interval_ms as f64 / 1000.0,
        limit: g.limit,
        evaluation_time: g.evaluation_time.as_secs_f64(),
        last_evaluation: rfc3339_nano(g.last_evaluation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_iterations_are_whole_intervals() {
        assert_eq!(missed_iterations(1000, 1500, 1000), 0);
        assert_eq!(missed_iterations(1000, 3500, 1000), 2);
        assert_eq!(missed_iterations(1000, 900, 1000), 0);
    }

    #[test]
    fn times_print_like_go() {
        assert_eq!(rfc3339_nano(None), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339_nano(Some(millis_to_time(1_500))), "1970-01-01T00:00:01.5Z");
        assert_eq!(rfc3339_nano(Some(millis_to_time(0))), "1970-01-01T00:00:00Z");
    }
}
