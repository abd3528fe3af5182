//! Rule groups and their evaluation: recording rules write their results back, alerting rules run
//! Prometheus's state machine (inactive, pending, firing, resolved) and write `ALERTS` and
//! `ALERTS_FOR_STATE`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use promql_parser::parser::Expr;
use sightline_tsdb::promql::{Engine, Value};
use sightline_tsdb::sample::stale_nan;
use sightline_tsdb::{Labels, Storage};

use super::file::{GroupDef, RuleDef, RuleKind};
use super::gofmt::format_g;
use super::template::{Template, TemplateData, query_escape};
use crate::model::{Alert, Fingerprint, LabelSet};

/// Resolved alerts are kept (and re-sent as resolved) this long, as Prometheus's `resolvedRetention`.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// An alert's state. `Resolved` only appears in [`RuleEvent`]s (a firing alert that stopped); in the
/// active set a resolved alert is `Inactive` with a resolution time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// One alert's change of state, for the server's history.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleEvent {
    pub fingerprint: Fingerprint,
    pub alertname: String,
    pub labels: LabelSet,
    pub from: AlertState,
    pub to: AlertState,
    pub at: SystemTime,
}

/// An alert of an alerting rule.
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveAlert {
    pub labels: LabelSet,
    pub annotations: LabelSet,
    /// `Inactive` (resolved, kept for sending), `Pending` or `Firing`.
    pub state: AlertState,
    pub value: f64,
    /// Milliseconds since the epoch.
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub last_sent_at: Option<i64>,
    pub valid_until: i64,
    pub keep_firing_since: Option<i64>,
}

/// A rule's health after its last evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Unknown,
    Ok,
    Err,
}

/// What every rule keeps about its last evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleStatus {
    pub health: Health,
    pub last_error: String,
    pub last_evaluation: Option<SystemTime>,
    pub evaluation_time: Duration,
}

impl Default for RuleStatus {
    fn default() -> Self {
        Self {
            health: Health::Unknown,
            last_error: String::new(),
            last_evaluation: None,
            evaluation_time: Duration::ZERO,
        }
    }
}

/// An alerting rule and its alerts.
#[derive(Clone, Debug)]
pub struct AlertingRule {
    pub name: String,
    pub expr_text: String,
    expr: Expr,
    pub hold_ms: i64,
    pub keep_firing_for_ms: i64,
    pub labels: LabelSet,
    pub annotations: LabelSet,
    label_templates: Vec<(String, Template)>,
    annotation_templates: Vec<(String, Template)>,
    /// Alerts by the fingerprint of their labels.
    pub active: HashMap<Fingerprint, ActiveAlert>,
    /// Whether `for` state has been restored (or needs no restoring); until then no `ALERTS` series are
    /// written, as in Prometheus, so that the restore reads only what was written before the restart.
    pub restored: bool,
    pub status: RuleStatus,
}

/// A recording rule.
#[derive(Clone, Debug)]
pub struct RecordingRule {
    pub name: String,
    pub expr_text: String,
    expr: Expr,
    pub labels: LabelSet,
    pub status: RuleStatus,
}

#[derive(Clone, Debug)]
pub enum Rule {
    Alerting(AlertingRule),
    Recording(RecordingRule),
}

/// What rules are evaluated with.
#[derive(Clone, Copy)]
pub struct EvalContext<'a> {
    pub engine: &'a Engine,
    pub storage: &'a dyn Storage,
    pub external_labels: &'a LabelSet,
    pub external_url: &'a str,
}

impl std::fmt::Debug for EvalContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvalContext").field("external_labels", &self.external_labels).finish_non_exhaustive()
    }
}

/// A rule group.
#[derive(Clone, Debug)]
pub struct RuleGroup {
    pub file: PathBuf,
    pub name: String,
    pub interval_ms: i64,
    pub query_offset_ms: i64,
    pub limit: u64,
    pub rules: Vec<Rule>,
    /// Per rule, the series it wrote at its last evaluation, for staleness markers.
    previous: Vec<HashSet<Labels>>,
    pub last_evaluation: Option<SystemTime>,
    pub evaluation_time: Duration,
}

/// What one evaluation of a group produced.
#[derive(Clone, Debug, Default)]
pub struct GroupEvalOutcome {
    /// `(rule name, error)` for each rule that failed.
    pub errors: Vec<(String, String)>,
    pub events: Vec<RuleEvent>,
    /// Samples appended (including staleness markers).
    pub samples: usize,
}

/// Why a rule could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: rule {rule:?}: {message}")]
pub struct BuildError {
    pub file: String,
    pub line: usize,
    pub rule: String,
    pub message: String,
}

pub(crate) fn millis_to_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

pub(crate) fn time_to_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

fn to_labels(set: &LabelSet) -> Labels {
    Labels::from_pairs(&set.iter().collect::<Vec<_>>())
}

fn to_set(labels: &Labels) -> LabelSet {
    labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect()
}

// === impl RuleGroup ===

impl RuleGroup {
    /// Builds a group from its validated definition; `default_interval_ms` applies when the group sets
    /// none.
    pub fn from_def(def: &GroupDef, default_interval_ms: i64) -> Result<Self, BuildError> {
        let mut rules = Vec::with_capacity(def.rules.len());
        for r in &def.rules {
            rules.push(Rule::from_def(r).map_err(|message| BuildError {
                file: def.file.display().to_string(),
                line: r.line,
                rule: r.name.clone(),
                message,
            })?);
        }
        Ok(Self {
            file: def.file.clone(),
            name: def.name.clone(),
            interval_ms: def.interval_ms.unwrap_or(default_interval_ms).max(1),
            query_offset_ms: def.query_offset_ms,
            limit: def.limit,
            previous: vec![HashSet::new(); rules.len()],
            rules,
            last_evaluation: None,
            evaluation_time: Duration::ZERO,
        })
    }

    /// Marks every alerting rule as restored, so that `ALERTS` series are written from the first
    /// evaluation (for tests and for groups that need no restore).
    pub fn set_restored(&mut self) {
        for rule in &mut self.rules {
            if let Rule::Alerting(a) = rule {
                a.restored = true;
            }
        }
    }

    /// Evaluates every rule at `ts` (milliseconds), appending results to the context's storage.
    pub fn eval(&mut self, ctx: &EvalContext<'_>, ts: i64) -> GroupEvalOutcome {
        let started = std::time::Instant::now();
        let mut outcome = GroupEvalOutcome::default();
        let t = ts - self.query_offset_ms;
        for (i, rule) in self.rules.iter_mut().enumerate() {
            let rule_started = std::time::Instant::now();
            let result = match rule {
                Rule::Recording(r) => r.eval(ctx, t, self.limit),
                Rule::Alerting(a) => a.eval(ctx, ts, t, self.limit, &mut outcome.events),
            };
            let status = rule.status_mut();
            status.evaluation_time = rule_started.elapsed();
            status.last_evaluation = Some(millis_to_time(ts));
            match result {
                Ok(samples) => {
                    status.health = Health::Ok;
                    status.last_error.clear();
                    let mut app = ctx.storage.appender();
                    let mut seen = HashSet::with_capacity(samples.len());
                    for (labels, v) in samples {
                        // A rejected sample (out of order, duplicate) is dropped, as Prometheus drops it
                        // with a warning rather than failing the rule.
                        if let Err(e) = app.append(0, &labels, t, v) {
                            tracing::debug!(group = %self.name, error = %e, "rule sample rejected");
                        }
                        outcome.samples += 1;
                        seen.insert(labels);
                    }
                    for gone in self.previous[i].difference(&seen) {
                        let _ = app.append(0, gone, t, stale_nan());
                        outcome.samples += 1;
                    }
                    if let Err(e) = app.commit() {
                        status.health = Health::Err;
                        status.last_error = format!("cannot write the rule's results: {e}");
                        outcome.errors.push((rule.name().to_owned(), rule.status().last_error.clone()));
                        continue;
                    }
                    self.previous[i] = seen;
                }
                Err(e) => {
                    status.health = Health::Err;
                    status.last_error = e.clone();
                    outcome.errors.push((rule.name().to_owned(), e));
                }
            }
        }
        self.evaluation_time = started.elapsed();
        self.last_evaluation = Some(millis_to_time(ts));
        outcome
    }

    /// Prometheus's `RestoreForState`: for each pending or firing alert of a rule whose `for` is at least
    /// `for_grace_period_ms`, reads its `ALERTS_FOR_STATE` series (written before a restart) from the last
    /// `outage_tolerance_ms` and moves `active_at` back so that the time already spent pending counts,
    /// giving at least the grace period before it fires. Marks every rule restored.
    pub fn restore_for_state(
        &mut self,
        ctx: &EvalContext<'_>,
        ts: i64,
        for_grace_period_ms: i64,
        outage_tolerance_ms: i64,
    ) {
        for rule in &mut self.rules {
            let Rule::Alerting(a) = rule else { continue };
            a.restored = true;
            if a.hold_ms == 0 || a.hold_ms < for_grace_period_ms {
                continue;
            }
            for alert in a.active.values_mut() {
                if alert.state == AlertState::Inactive {
                    continue;
                }
                let Some((down_at, active_at_s)) =
                    last_for_state(ctx, &alert.labels, ts, outage_tolerance_ms)
                else {
                    continue;
                };
                let mut restored = (active_at_s * 1000.0) as i64;
                // Both times at whole seconds, as Prometheus converts them with time.Unix.
                let down_at = down_at / 1000 * 1000;
                let spent_pending = down_at - restored;
                let remaining = a.hold_ms - spent_pending;
                if remaining <= 0 {
                    // The alert had been pending long enough already: it fires now.
                } else if remaining < for_grace_period_ms {
                    restored = ts + for_grace_period_ms - a.hold_ms;
                } else {
                    restored += ts - down_at;
                }
                tracing::info!(alert = %a.name, active_at = restored, "restored the 'for' state of an alert");
                alert.active_at = restored;
            }
        }
    }

    /// Alerts to send now, as Prometheus's `sendAlerts`: firing alerts not sent within `resend_delay_ms`
    /// and alerts resolved since they were last sent; firing ones valid for four times the larger of the
    /// evaluation interval and the resend delay, resolved ones ending at their resolution.
    pub fn alerts_to_send(&mut self, ts: i64, resend_delay_ms: i64, external_url: &str) -> Vec<Alert> {
        let delta = resend_delay_ms.max(self.interval_ms);
        let mut out = Vec::new();
        for rule in &mut self.rules {
            let Rule::Alerting(a) = rule else { continue };
            let url = format!(
                "{}/graph?g0.expr={}&g0.tab=1",
                external_url.trim_end_matches('/'),
                query_escape(&a.expr_text)
            );
            for alert in a.active.values_mut() {
                if alert.state == AlertState::Pending {
                    continue;
                }
                let resolved_since_sent = match (alert.resolved_at, alert.last_sent_at) {
                    (Some(r), Some(s)) => r > s,
                    (Some(_), None) => true,
                    _ => false,
                };
                let due = alert.last_sent_at.is_none_or(|s| s + resend_delay_ms < ts);
                if !(resolved_since_sent || due) {
                    continue;
                }
                alert.last_sent_at = Some(ts);
                alert.valid_until = ts + 4 * delta;
                out.push(Alert {
                    labels: alert.labels.clone(),
                    annotations: alert.annotations.clone(),
                    starts_at: millis_to_time(alert.fired_at.unwrap_or(alert.active_at)),
                    ends_at: Some(millis_to_time(alert.resolved_at.unwrap_or(alert.valid_until))),
                    generator_url: url.clone(),
                });
            }
        }
        out
    }

    /// Takes over the state of rules of `old` that still exist here (same kind, name, labels and
    /// annotations), as Prometheus's `CopyState` does on reload.
    pub fn copy_state(&mut self, old: &RuleGroup) {
        self.last_evaluation = old.last_evaluation;
        self.evaluation_time = old.evaluation_time;
        let mut used = HashSet::new();
        for (i, rule) in self.rules.iter_mut().enumerate() {
            let found = old.rules.iter().enumerate().find(|(j, o)| !used.contains(j) && rule.same_as(o));
            let Some((j, o)) = found else { continue };
            used.insert(j);
            self.previous[i] = old.previous.get(j).cloned().unwrap_or_default();
            match (rule, o) {
                (Rule::Alerting(new), Rule::Alerting(old)) => {
                    new.active = old.active.clone();
                    new.restored = old.restored;
                    new.status = old.status.clone();
                }
                (Rule::Recording(new), Rule::Recording(old)) => new.status = old.status.clone(),
                _ => {}
            }
        }
    }

    /// Alerts of every alerting rule, pending and firing (not resolved ones).
    pub fn active_alerts(&self) -> impl Iterator<Item = (&AlertingRule, &ActiveAlert)> {
        self.rules
            .iter()
            .filter_map(|r| match r {
                Rule::Alerting(a) => Some(a),
                Rule::Recording(_) => None,
            })
            .flat_map(|a| a.active.values().filter(|x| x.state != AlertState::Inactive).map(move |x| (a, x)))
    }
}

/// The time (ms) and value of the last `ALERTS_FOR_STATE` sample of an alert in `(ts - tolerance, ts]`.
fn last_for_state(
    ctx: &EvalContext<'_>,
    labels: &LabelSet,
    ts: i64,
    tolerance_ms: i64,
) -> Option<(i64, f64)> {
    let matchers: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={}", promql_quote(v))).collect();
    let query = format!("ALERTS_FOR_STATE{{{}}}[{}ms]", matchers.join(","), tolerance_ms.max(1));
    let expr = Engine::parse(&query).ok()?;
    let Ok(Value::Matrix(series)) = ctx.engine.instant_query_expr(ctx.storage, &expr, ts) else {
        return None;
    };
    series
        .into_iter()
        .filter(|s| s.labels.len() == labels.len() + 1)
        .filter_map(|s| s.samples.into_iter().rev().find(|x| !x.v.is_nan()).map(|x| (x.t, x.v)))
        .max_by_key(|(t, _)| *t)
}

fn promql_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// === impl Rule ===

impl Rule {
    pub fn from_def(def: &RuleDef) -> Result<Self, String> {
        let expr = Engine::parse(&def.expr).map_err(|e| format!("could not parse expression: {e}"))?;
        Ok(match &def.kind {
            RuleKind::Recording => Rule::Recording(RecordingRule {
                name: def.name.clone(),
                expr_text: def.expr.clone(),
                expr,
                labels: def.labels.clone(),
                status: RuleStatus::default(),
            }),
            RuleKind::Alerting { hold_ms, keep_firing_for_ms, annotations } => {
                let template_name = format!("__alert_{}", def.name);
                let compile = |set: &LabelSet| -> Result<Vec<(String, Template)>, String> {
                    set.iter()
                        .map(|(k, v)| {
                            Template::parse(&template_name, v)
                                .map(|t| (k.clone(), t))
                                .map_err(|e| format!("{k:?}: {e}"))
                        })
                        .collect()
                };
                Rule::Alerting(AlertingRule {
                    name: def.name.clone(),
                    expr_text: def.expr.clone(),
                    expr,
                    hold_ms: *hold_ms,
                    keep_firing_for_ms: *keep_firing_for_ms,
                    label_templates: compile(&def.labels)?,
                    annotation_templates: compile(annotations)?,
                    labels: def.labels.clone(),
                    annotations: annotations.clone(),
                    active: HashMap::new(),
                    restored: false,
                    status: RuleStatus::default(),
                })
            }
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Rule::Alerting(a) => &a.name,
            Rule::Recording(r) => &r.name,
        }
    }

    pub fn status(&self) -> &RuleStatus {
        match self {
            Rule::Alerting(a) => &a.status,
            Rule::Recording(r) => &r.status,
        }
    }

    fn status_mut(&mut self) -> &mut RuleStatus {
        match self {
            Rule::Alerting(a) => &mut a.status,
            Rule::Recording(r) => &mut r.status,
        }
    }

    /// Whether two rules are "the same" for keeping state across a reload.
    fn same_as(&self, other: &Rule) -> bool {
        match (self, other) {
            (Rule::Alerting(a), Rule::Alerting(b)) => {
                a.name == b.name && a.labels == b.labels && a.annotations == b.annotations
            }
            (Rule::Recording(a), Rule::Recording(b)) => a.name == b.name && a.labels == b.labels,
            _ => false,
        }
    }
}

/// The vector a rule's query returned.
fn query_vector(ctx: &EvalContext<'_>, expr: &Expr, t: i64) -> Result<Vec<(Labels, f64)>, String> {
    match ctx.engine.instant_query_expr(ctx.storage, expr, t) {
        Ok(Value::Vector(v)) => Ok(v.into_iter().map(|s| (s.labels, s.v)).collect()),
        Ok(Value::Scalar { v, .. }) => Ok(vec![(Labels::empty(), v)]),
        Ok(other) => Err(format!("rule result is not a vector or scalar but a {}", other.type_name())),
        Err(e) => Err(e.to_string()),
    }
}

// === impl RecordingRule ===

impl RecordingRule {
    fn eval(&mut self, ctx: &EvalContext<'_>, t: i64, limit: u64) -> Result<Vec<(Labels, f64)>, String> {
        let samples = query_vector(ctx, &self.expr, t)?;
        let mut seen = HashSet::with_capacity(samples.len());
        let mut out = Vec::with_capacity(samples.len());
        for (mut labels, v) in samples {
            labels.set("__name__", self.name.clone());
            for (name, value) in &self.labels {
                if value.is_empty() {
                    labels.remove(name);
                } else {
                    labels.set(name, value.clone());
                }
            }
            if !seen.insert(labels.clone()) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels".into()
                );
            }
            out.push((labels, v));
        }
        if limit > 0 && out.len() as u64 > limit {
            return Err(format!("exceeded limit of {limit} with {} series", out.len()));
        }
        Ok(out)
    }
}

// === impl AlertingRule ===

impl AlertingRule {
    fn expand(&self, templates: &[(String, Template)], data: &TemplateData) -> LabelSet {
        templates
            .iter()
            .map(|(k, t)| {
                let v = t.expand(data).unwrap_or_else(|e| {
                    tracing::warn!(alert = %self.name, error = %e, "expanding an alert template failed");
                    format!("<error expanding template: {e}>")
                });
                (k.clone(), v)
            })
            .collect()
    }

    /// One evaluation at `t` (the evaluation time): queries at `query_t` (earlier by the group's
    /// `query_offset`), updates the alerts and returns the `ALERTS`/`ALERTS_FOR_STATE` samples. Alert
    /// times (active, fired, resolved) are evaluation times, as in Prometheus.
    fn eval(
        &mut self,
        ctx: &EvalContext<'_>,
        t: i64,
        query_t: i64,
        limit: u64,
        events: &mut Vec<RuleEvent>,
    ) -> Result<Vec<(Labels, f64)>, String> {
        let samples = query_vector(ctx, &self.expr, query_t)?;
        let mut result_fps: HashSet<Fingerprint> = HashSet::with_capacity(samples.len());
        let mut event = |labels: &LabelSet, fp: Fingerprint, from: AlertState, to: AlertState| {
            events.push(RuleEvent {
                fingerprint: fp,
                alertname: self.name.clone(),
                labels: labels.clone(),
                from,
                to,
                at: millis_to_time(t),
            });
        };
        for (sample_labels, v) in samples {
            let data = TemplateData {
                labels: to_set(&sample_labels),
                external_labels: ctx.external_labels.clone(),
                external_url: ctx.external_url.to_owned(),
                value: v,
            };
            let mut labels = data.labels.clone();
            labels.remove("__name__");
            for (k, val) in self.expand(&self.label_templates, &data) {
                if val.is_empty() {
                    labels.remove(&k);
                } else {
                    labels.insert(k, val);
                }
            }
            labels.insert("alertname".into(), self.name.clone());
            let annotations = self.expand(&self.annotation_templates, &data);
            let fp = Fingerprint::of(&labels);
            if !result_fps.insert(fp) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels".into()
                );
            }
            if let Some(a) = self.active.get_mut(&fp) {
                if a.state != AlertState::Inactive {
                    a.value = v;
                    a.annotations = annotations;
                    continue;
                }
            }
            event(&labels, fp, AlertState::Inactive, AlertState::Pending);
            self.active.insert(
                fp,
                ActiveAlert {
                    labels,
                    annotations,
                    state: AlertState::Pending,
                    value: v,
                    active_at: t,
                    fired_at: None,
                    resolved_at: None,
                    last_sent_at: None,
                    valid_until: 0,
                    keep_firing_since: None,
                },
            );
        }
        let mut out = Vec::new();
        let mut active_or_pending = 0u64;
        let mut gone = Vec::new();
        for (fp, a) in &mut self.active {
            if !result_fps.contains(fp) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && self.keep_firing_for_ms > 0 {
                    let since = *a.keep_firing_since.get_or_insert(t);
                    keep_firing = t - since < self.keep_firing_for_ms;
                }
                if a.state == AlertState::Pending
                    || a.resolved_at.is_some_and(|r| t - r > RESOLVED_RETENTION_MS)
                {
                    gone.push(*fp);
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    let to = if a.state == AlertState::Firing {
                        AlertState::Resolved
                    } else {
                        AlertState::Inactive
                    };
                    event(&a.labels, *fp, a.state, to);
                    a.state = AlertState::Inactive;
                    a.resolved_at = Some(t);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since = None;
            }
            active_or_pending += 1;
            if a.state == AlertState::Pending && t - a.active_at >= self.hold_ms {
                event(&a.labels, *fp, AlertState::Pending, AlertState::Firing);
                a.state = AlertState::Firing;
                a.fired_at = Some(t);
            }
            if self.restored {
                let mut alerts = a.labels.clone();
                alerts.insert("__name__".into(), "ALERTS".into());
                alerts.insert("alertstate".into(), a.state.as_str().into());
                out.push((to_labels(&alerts), 1.0));
                let mut for_state = a.labels.clone();
                for_state.insert("__name__".into(), "ALERTS_FOR_STATE".into());
                out.push((to_labels(&for_state), (a.active_at / 1000) as f64));
            }
        }
        for fp in gone {
            self.active.remove(&fp);
        }
        if limit > 0 && active_or_pending > limit {
            self.active.clear();
            return Err(format!("exceeded limit of {limit} with {active_or_pending} alerts"));
        }
        Ok(out)
    }

    /// The value as Prometheus's API prints it (`strconv.FormatFloat(v, 'e', -1, 64)`).
    pub fn value_text(v: f64) -> String {
        super::gofmt::format_e(v, None)
    }

    /// `$value` as `%v` prints it, for messages.
    pub fn value_short(v: f64) -> String {
        format_g(v, None)
    }
}
