//! Rule unit tests in the `promtool test rules` format, run against this crate's PromQL engine.
//!
//! A test file names rule files (`rule_files`, globs relative to the test file), an
//! `evaluation_interval` (default 1m) and `tests`. Each test group loads `input_series` written in the
//! expanding notation (`1+2x3`, `5x3`, `_`, `_x3`, `stale`, `Inf`, `NaN`; one sample every `interval`,
//! default `evaluation_interval`, from time 0), evaluates the recording rules at every evaluation step
//! from 0 to the largest `eval_time` of the group (appending their results, as Prometheus's rule
//! manager does), then runs each `promql_expr_test` as an instant query at its `eval_time` and
//! compares the result with `exp_samples`.
//!
//! What matches promtool, deliberately:
//! - Output: `Unit Testing:  FILE`, then `  SUCCESS` or `  FAILED:` and one block per failure
//!   (`    expr: "...", time: 5m,` / `        exp: ...` / `        got: ...`), labels printed as
//!   `{__name__="x", a="b"}` and values as Go prints them (`1.5E+00`). Exit code 0 when everything
//!   passes, 1 otherwise ([`RunSummary::exit_code`]).
//! - Data visibility: samples are loaded up to each evaluation step, so a query sees the input up to
//!   the last evaluation step at or before the group's largest `eval_time`, exactly like promtool.
//! - Comparison: both sides sorted by labels, a scalar result is one sample with labels `{}`, floats
//!   compared exactly (or within one ULP with `fuzzy_compare: true`, a Prometheus 3.x option).
//!
//! Where it differs from promtool:
//! - An expected `NaN` (written `.nan` in YAML) matches a `NaN` result. promtool compares with `==`,
//!   so it can never pass a test expecting NaN; such files only pass here.
//! - `alert_rule_test` needs the alerting engine, which lives outside this crate: [`run_test_files_with`]
//!   takes it as a [`RuleEvaluator`] (`sightline-alert` supplies one), which then evaluates all rules
//!   at each step and reports firing alerts. Without one ([`run_test_files`]), each `alert_rule_test` is
//!   reported as a failure saying it did not run, so that nobody reads a pass into a skipped test, and
//!   alerting rules are parsed and validated, not evaluated (no `ALERTS` series).
//! - Native histograms (`{{...}}` values, `histogram:` expectations) are not supported.
//!
//! A subquery written without a step (`x[5m:]`) steps by `evaluation_interval`, as in promtool. Rule
//! groups may use the Prometheus 3.x options `query_offset`, `limit` and group `labels`; a group's own
//! `interval` is ignored, as promtool evaluates every group at every step. A test group whose rules
//! would run more than a million steps is refused with an error rather than left to run for hours.
//! Because both sides are sorted before comparing, result order (`sort`, `sort_desc`) is not checked.

mod file;
mod notation;

pub use notation::{format_duration, parse_duration};
mod rules;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::labels::Labels;
use crate::mem::MemStorage;
use crate::promql::{Engine, Value};
use crate::sample::Sample;
use crate::traits::Storage;

use file::{TestFile, TestGroup};
use notation::{SeqValue, expand_values, go_float, go_labels, go_quote, parse_series};
use rules::LoadedGroup;

/// The default evaluation interval and input series interval: one minute.
const DEFAULT_INTERVAL_MS: i64 = 60_000;

/// The most evaluation steps a test group with recording rules may take (about 23 months at the default
/// one-minute interval): a typo in an `eval_time` must give an error, not an hour-long run.
const MAX_RULE_STEPS: i64 = 1_000_000;

/// What a run found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Test files run.
    pub files: usize,
    /// Test cases run (`promql_expr_test` and `alert_rule_test` entries).
    pub tests: usize,
    /// Failures reported: failed test cases, plus one for each problem that stopped a file or a
    /// test group early (unreadable file, bad YAML, bad rule file, bad input series, rule error).
    pub failures: usize,
    /// Test files with at least one failure.
    pub failed_files: usize,
}

impl RunSummary {
    /// promtool's exit code: 0 when everything passed, 1 when anything failed.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.failures > 0)
    }
}

/// Why a run could not report its results. Test failures are not errors: they are in [`RunSummary`].
#[derive(Debug, thiserror::Error)]
pub enum UnitTestError {
    #[error("cannot write the test report: {0}; check the output stream (a closed pipe?)")]
    Output(#[from] std::io::Error),
}

/// Runs test files and writes promtool's report to `out`. Per-file problems (unreadable files, YAML
/// errors with their line and column) are failures in the report, not errors.
pub fn run_test_files(paths: &[PathBuf], out: &mut dyn Write) -> Result<RunSummary, UnitTestError> {
    let mut sink = Sink { out, err: None };
    run(paths, &mut sink, None)
}

/// The rule engine a run can be given, so that a crate with alerting (this one has only recording
/// rules) evaluates the rule files and answers `alert_rule_test`s. This crate keeps no dependency on
/// that crate: the runner only loads input series, steps time, and compares.
pub trait RuleEvaluator {
    /// Loads and validates the rule files for one test group; the errors are promtool's failure lines
    /// (file and line first).
    fn load(&self, setup: &RuleSetup<'_>) -> Result<Box<dyn RuleSession>, Vec<String>>;
}

/// What a test group's rules are loaded with.
#[derive(Debug)]
pub struct RuleSetup<'a> {
    /// The rule files, resolved from the test file's globs.
    pub rule_files: &'a [PathBuf],
    /// Group names in evaluation order (`group_eval_order`); unlisted groups go first.
    pub group_eval_order: &'a [String],
    /// The engine to query with (subqueries without a step use the evaluation interval).
    pub engine: &'a Engine,
    /// The test group's `external_labels`, for `$externalLabels` in templates.
    pub external_labels: &'a BTreeMap<String, String>,
    /// The test group's `external_url`, for `$externalURL`.
    pub external_url: &'a str,
    /// The evaluation interval in milliseconds (each group is evaluated at every step).
    pub eval_interval: i64,
}

/// The loaded rules of one test group.
pub trait RuleSession {
    /// Evaluates every group at `ts` (milliseconds), appending results to `store`; returns
    /// `(rule name, error)` for each rule that failed.
    fn eval(&mut self, store: &dyn Storage, ts: i64) -> Vec<(String, String)>;

    /// The firing alerts of every alerting rule named `alertname`, as `(labels, annotations)`.
    #[allow(clippy::type_complexity)]
    fn firing_alerts(&self, alertname: &str) -> Vec<(BTreeMap<String, String>, BTreeMap<String, String>)>;
}

/// Like [`run_test_files_split`], with `evaluator` evaluating the rules (recording and alerting), so
/// that `alert_rule_test`s run: at each step from the group's start, input is loaded up to the step,
/// every rule group is evaluated, and each `alert_rule_test` whose `eval_time` falls in
/// `[step, step + evaluation_interval)` compares the firing alerts with `exp_alerts`, as promtool does.
pub fn run_test_files_with(
    paths: &[PathBuf],
    out: &mut dyn Write,
    err: &mut dyn Write,
    evaluator: &dyn RuleEvaluator,
) -> Result<RunSummary, UnitTestError> {
    let mut sink = Sink { out, err: Some(err) };
    run(paths, &mut sink, Some(evaluator))
}

/// Like [`run_test_files`], but splits the report between two streams as promtool does: progress and
/// `SUCCESS` on `out`, `FAILED:`, failure details and warnings on `err`.
pub fn run_test_files_split(
    paths: &[PathBuf],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<RunSummary, UnitTestError> {
    let mut sink = Sink { out, err: Some(err) };
    run(paths, &mut sink, None)
}

/// The two report streams; `err` falls back to `out`.
struct Sink<'a> {
    out: &'a mut dyn Write,
    err: Option<&'a mut dyn Write>,
}

// === impl Sink ===

impl Sink<'_> {
    fn out(&mut self, text: &str) -> std::io::Result<()> {
        self.out.write_all(text.as_bytes())
    }

    fn err(&mut self, text: &str) -> std::io::Result<()> {
        match self.err.as_deref_mut() {
            Some(err) => err.write_all(text.as_bytes()),
            None => self.out.write_all(text.as_bytes()),
        }
    }
}

fn run(
    paths: &[PathBuf],
    sink: &mut Sink<'_>,
    evaluator: Option<&dyn RuleEvaluator>,
) -> Result<RunSummary, UnitTestError> {
    let mut summary = RunSummary::default();
    for path in paths {
        summary.files += 1;
        sink.out(&format!("Unit Testing:  {}\n", path.display()))?;
        let report = test_file(path, evaluator);
        for warning in &report.warnings {
            sink.err(&format!("{warning}\n"))?;
        }
        summary.tests += report.tests;
        if report.failures.is_empty() {
            sink.out("  SUCCESS\n")?;
        } else {
            summary.failures += report.failures.len();
            summary.failed_files += 1;
            sink.err("  FAILED:\n")?;
            for failure in &report.failures {
                sink.err(&format!("{failure}\n"))?;
                sink.out("\n")?;
            }
        }
        sink.out("\n")?;
    }
    sink.out.flush()?;
    if let Some(err) = sink.err.as_deref_mut() {
        err.flush()?;
    }
    Ok(summary)
}

/// The outcome of one test file.
#[derive(Debug, Default)]
struct FileReport {
    tests: usize,
    failures: Vec<String>,
    warnings: Vec<String>,
}

/// Formats a YAML error as `FILE:LINE:COLUMN: message`.
fn yaml_error(path: &Path, e: &serde_yaml_ng::Error) -> String {
    let message = e.to_string();
    // The message ends with " at line L column C"; the position goes in front instead.
    let message = match message.rfind(" at line ") {
        Some(i) if e.location().is_some() => message[..i].to_owned(),
        _ => message,
    };
    match e.location() {
        Some(loc) => format!("{}:{}:{}: {message}", path.display(), loc.line(), loc.column()),
        None => format!("{}: {message}", path.display()),
    }
}

fn test_file(path: &Path, evaluator: Option<&dyn RuleEvaluator>) -> FileReport {
    let mut report = FileReport::default();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            report.failures.push(format!("{}: {e}", path.display()));
            return report;
        }
    };
    let file: TestFile = match serde_yaml_ng::from_str(&text) {
        Ok(file) => file,
        Err(e) => {
            report.failures.push(yaml_error(path, &e));
            return report;
        }
    };
    let rule_files = match rules::resolve_rule_files(path, &file.rule_files) {
        Ok((files, warnings)) => {
            report.warnings = warnings;
            files
        }
        Err(e) => {
            report.failures.push(e);
            return report;
        }
    };
    let mut seen = std::collections::HashSet::new();
    for name in &file.group_eval_order {
        if !seen.insert(name) {
            report.failures.push(format!("group name repeated in evaluation order: {name}"));
            return report;
        }
    }
    let eval_interval = match file.evaluation_interval {
        Some(d) if d.0 > 0 => d.0,
        _ => DEFAULT_INTERVAL_MS,
    };
    // Subqueries without a step use the evaluation interval, as promtool sets it.
    let engine = Engine::default()
        .with_default_subquery_step(std::time::Duration::from_millis(eval_interval.unsigned_abs()));
    for group in &file.tests {
        if let Some(evaluator) = evaluator {
            let setup = RuleSetup {
                rule_files: &rule_files,
                group_eval_order: &file.group_eval_order,
                engine: &engine,
                external_labels: &group.external_labels,
                external_url: group.external_url.as_deref().unwrap_or(""),
                eval_interval,
            };
            let mut session = match evaluator.load(&setup) {
                Ok(session) => session,
                Err(errors) => {
                    report.failures.extend(errors);
                    return report;
                }
            };
            let ctx = GroupContext { engine: &engine, eval_interval, fuzzy: file.fuzzy_compare };
            ctx.run_with(group, session.as_mut(), &mut report);
            continue;
        }
        // Rule state (the series each rule wrote last) is per test group, so load afresh.
        let mut groups = match rules::load_rule_files(&rule_files) {
            Ok(groups) => groups,
            Err(errors) => {
                report.failures.extend(errors);
                return report;
            }
        };
        rules::order_groups(&mut groups, &file.group_eval_order);
        let ctx = GroupContext { engine: &engine, eval_interval, fuzzy: file.fuzzy_compare };
        ctx.run(group, &mut groups, &mut report);
    }
    report
}

/// What a test group runs with.
struct GroupContext<'a> {
    engine: &'a Engine,
    eval_interval: i64,
    fuzzy: bool,
}

// === impl GroupContext ===

impl GroupContext<'_> {
    fn run(&self, tg: &TestGroup, groups: &mut [LoadedGroup], report: &mut FileReport) {
        let interval = match tg.interval {
            Some(d) if d.0 > 0 => d.0,
            _ => self.eval_interval,
        };
        let mint = match tg.start_timestamp.as_ref().map(file::StartTimestamp::millis).transpose() {
            Ok(t) => t.unwrap_or(0),
            Err(e) => {
                report.failures.push(e);
                return;
            }
        };
        let input = match load_input(tg, interval, mint) {
            Ok(input) => input,
            Err(e) => {
                report.failures.push(e);
                return;
            }
        };
        let group_note = tg.name.as_ref().map(|n| format!(" (in TestGroup {n})")).unwrap_or_default();
        for alert in &tg.alert_rule_test {
            report.tests += 1;
            if alert.alertname.is_empty() {
                report.failures.push(format!(
                    "an item under alert_rule_test misses required attribute alertname at eval_time {}{group_note}",
                    format_duration(alert.eval_time.0)
                ));
                continue;
            }
            report.failures.push(format!(
                "    alertname: {}, time: {}, err: alert_rule_test needs the alerting engine, which sightline \
                 does not have yet; this test did not run (check the alert with a promql_expr_test on its \
                 expression instead)",
                alert.alertname,
                format_duration(alert.eval_time.0)
            ));
        }

        let max_eval = tg
            .promql_expr_test
            .iter()
            .map(|t| t.eval_time.0)
            .chain(tg.alert_rule_test.iter().map(|a| a.eval_time.0))
            .max()
            .unwrap_or(0);
        let store = MemStorage::new();
        let mut loader = Loader::new(input);
        let last_step = mint.saturating_add(max_eval / self.eval_interval * self.eval_interval);
        if groups.iter().any(LoadedGroup::has_recording_rules) {
            let steps = max_eval / self.eval_interval;
            if steps > MAX_RULE_STEPS {
                report.failures.push(format!(
                    "the largest eval_time ({}) would evaluate the rules {steps} times at evaluation_interval {}; \
                     the limit is {MAX_RULE_STEPS}: lower eval_time or raise evaluation_interval{group_note}",
                    format_duration(max_eval),
                    format_duration(self.eval_interval)
                ));
                return;
            }
            let mut ts = mint;
            while ts <= last_step {
                loader.load_till(&store, ts);
                let mut errors = Vec::new();
                for group in groups.iter_mut() {
                    errors.extend(group.eval(self.engine, &store, ts, mint));
                }
                if !errors.is_empty() {
                    // promtool stops the group at the first step whose rules fail.
                    report.failures.extend(errors);
                    return;
                }
                match ts.checked_add(self.eval_interval) {
                    Some(next) => ts = next,
                    None => break,
                }
            }
        } else {
            // Without rules the steps only load data; load up to the last step at once.
            loader.load_till(&store, last_step);
        }

        for case in &tg.promql_expr_test {
            report.tests += 1;
            if let Some(failure) = self.check(&store, case, mint) {
                report.failures.push(failure);
            }
        }
    }

    /// Runs a test group with an external rule engine: every step is evaluated (alerts need their
    /// history), and alert tests are checked at the step their `eval_time` falls in.
    fn run_with(&self, tg: &TestGroup, session: &mut dyn RuleSession, report: &mut FileReport) {
        let interval = match tg.interval {
            Some(d) if d.0 > 0 => d.0,
            _ => self.eval_interval,
        };
        let mint = match tg.start_timestamp.as_ref().map(file::StartTimestamp::millis).transpose() {
            Ok(t) => t.unwrap_or(0),
            Err(e) => {
                report.failures.push(e);
                return;
            }
        };
        let input = match load_input(tg, interval, mint) {
            Ok(input) => input,
            Err(e) => {
                report.failures.push(e);
                return;
            }
        };
        let group_note = tg.name.as_ref().map(|n| format!(" (in TestGroup {n})")).unwrap_or_default();
        let mut alert_tests: Vec<&file::AlertTestCase> = Vec::new();
        for alert in &tg.alert_rule_test {
            if alert.alertname.is_empty() {
                report.tests += 1;
                report.failures.push(format!(
                    "an item under alert_rule_test misses required attribute alertname at eval_time {}{group_note}",
                    format_duration(alert.eval_time.0)
                ));
                continue;
            }
            alert_tests.push(alert);
        }
        // Sorted by time (stable, so cases at one time keep file order), as promtool checks them.
        alert_tests.sort_by_key(|a| a.eval_time.0);
        let max_eval = tg
            .promql_expr_test
            .iter()
            .map(|t| t.eval_time.0)
            .chain(tg.alert_rule_test.iter().map(|a| a.eval_time.0))
            .max()
            .unwrap_or(0);
        let steps = max_eval / self.eval_interval;
        if steps > MAX_RULE_STEPS {
            report.failures.push(format!(
                "the largest eval_time ({}) would evaluate the rules {steps} times at evaluation_interval {}; \
                 the limit is {MAX_RULE_STEPS}: lower eval_time or raise evaluation_interval{group_note}",
                format_duration(max_eval),
                format_duration(self.eval_interval)
            ));
            return;
        }
        let store = MemStorage::new();
        let mut loader = Loader::new(input);
        let last_step = mint.saturating_add(steps * self.eval_interval);
        let mut next_alert = 0;
        let mut ts = mint;
        while ts <= last_step {
            loader.load_till(&store, ts);
            let errors = session.eval(&store, ts);
            if !errors.is_empty() {
                // promtool stops the group at the first step whose rules fail.
                for (rule, e) in errors {
                    report
                        .failures
                        .push(format!("    rule: {rule}, time: {}, err: {e}", format_duration(ts - mint)));
                }
                return;
            }
            let since = ts - mint;
            while let Some(case) = alert_tests.get(next_alert) {
                if !(since <= case.eval_time.0 && case.eval_time.0 < since + self.eval_interval) {
                    break;
                }
                report.tests += 1;
                if let Some(failure) = check_alerts(case, session, tg.name.as_deref()) {
                    report.failures.push(failure);
                }
                next_alert += 1;
            }
            match ts.checked_add(self.eval_interval) {
                Some(next) => ts = next,
                None => break,
            }
        }
        for case in &tg.promql_expr_test {
            report.tests += 1;
            if let Some(failure) = self.check(&store, case, mint) {
                report.failures.push(failure);
            }
        }
    }

    /// Runs one `promql_expr_test`; `None` when it passes, else promtool's failure text.
    fn check(&self, store: &MemStorage, case: &file::PromqlTestCase, mint: i64) -> Option<String> {
        let time = format_duration(case.eval_time.0);
        let head = format!("    expr: {}, time: {time}", go_quote(&case.expr));
        let got = match self.engine.instant_query(store, &case.expr, mint.saturating_add(case.eval_time.0)) {
            Ok(Value::Vector(v)) => v.into_iter().map(|s| (s.labels, s.v)).collect(),
            Ok(Value::Scalar { v, .. }) => vec![(Labels::empty(), v)],
            Ok(_) => return Some(format!("{head}, err: rule result is not a vector or scalar")),
            Err(e) => return Some(format!("{head}, err: {e}")),
        };
        let mut exp = Vec::with_capacity(case.exp_samples.len());
        for s in &case.exp_samples {
            if s.histogram.is_some() {
                return Some(format!(
                    "{head}, err: labels {}: native histogram expectations are not supported",
                    go_quote(&s.labels)
                ));
            }
            match parse_series(&s.labels) {
                Ok(labels) => exp.push((labels, s.value)),
                Err(e) => return Some(format!("{head}, err: labels {}: {e}", go_quote(&s.labels))),
            }
        }
        let mut got: Vec<(Labels, f64)> = got;
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let equal = exp.len() == got.len()
            && exp.iter().zip(&got).all(|(e, g)| e.0 == g.0 && floats_match(e.1, g.1, self.fuzzy));
        if equal {
            return None;
        }
        Some(format!("{head},\n        exp: {}\n        got: {}", samples_text(&exp), samples_text(&got)))
    }
}

/// An alert as promtool compares them: labels and annotations.
type LabelsAndAnnotations = (BTreeMap<String, String>, BTreeMap<String, String>);

/// Compares the firing alerts of `case.alertname` with `exp_alerts` (each given `alertname`, as
/// Prometheus adds it); `None` when they match, else promtool's failure text.
fn check_alerts(
    case: &file::AlertTestCase,
    session: &dyn RuleSession,
    test_name: Option<&str>,
) -> Option<String> {
    let mut got = session.firing_alerts(&case.alertname);
    let mut exp: Vec<LabelsAndAnnotations> = case
        .exp_alerts
        .iter()
        .map(|a| {
            let mut labels = a.exp_labels.clone();
            labels.insert("alertname".into(), case.alertname.clone());
            (labels, a.exp_annotations.clone())
        })
        .collect();
    // Empty values are no labels (Prometheus's label sets drop them).
    for (labels, annotations) in got.iter_mut().chain(exp.iter_mut()) {
        labels.retain(|_, v| !v.is_empty());
        annotations.retain(|_, v| !v.is_empty());
    }
    got.sort();
    exp.sort();
    if got == exp {
        return None;
    }
    let name = test_name.filter(|n| !n.is_empty()).map(|n| format!("    name: {n},\n")).unwrap_or_default();
    Some(format!(
        "{name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
        case.alertname,
        format_duration(case.eval_time.0),
        indent_lines(&alerts_text(&exp), "            "),
        indent_lines(&alerts_text(&got), "            ")
    ))
}

/// promtool's `labelsAndAnnotations.String()`.
fn alerts_text(alerts: &[LabelsAndAnnotations]) -> String {
    if alerts.is_empty() {
        return "[]".into();
    }
    let one = |(labels, annotations): &LabelsAndAnnotations| {
        format!("Labels:{}\nAnnotations:{}", map_text(labels), map_text(annotations))
    };
    let mut s = String::from("[\n");
    for (i, a) in alerts.iter().enumerate() {
        if i > 0 {
            s.push_str(",\n");
        }
        s.push_str(&format!("{i}:{}", indent_lines(&format!("\n{}", one(a)), "  ")));
    }
    s.push_str("\n]");
    s
}

/// A map as Prometheus's `labels.Labels.String()`: `{a="b", c="d"}`.
fn map_text(map: &BTreeMap<String, String>) -> String {
    let body: Vec<String> = map.iter().map(|(k, v)| format!("{k}={}", go_quote(v))).collect();
    format!("{{{}}}", body.join(", "))
}

/// promtool's `indentLines`: every line but the first gets `indent`.
fn indent_lines(text: &str, indent: &str) -> String {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| if i == 0 { l.to_owned() } else { format!("{indent}{l}") })
        .collect::<Vec<_>>()
        .join("\n")
}

/// promtool's rendering of a sample list: `{a="b"} 1E+00, {a="c"} 2E+00`, or `nil` when empty.
fn samples_text(samples: &[(Labels, f64)]) -> String {
    if samples.is_empty() {
        return "nil".into();
    }
    samples.iter().map(|(l, v)| format!("{} {}", go_labels(l), go_float(*v))).collect::<Vec<_>>().join(", ")
}

/// Exact float equality (NaN matching NaN); with `fuzzy`, also the adjacent floats either side, as
/// Prometheus 3.x's `fuzzy_compare`.
fn floats_match(exp: f64, got: f64, fuzzy: bool) -> bool {
    if exp.is_nan() || got.is_nan() {
        return exp.is_nan() && got.is_nan();
    }
    exp == got
        || (fuzzy && (next_toward(exp, f64::INFINITY) == got || next_toward(exp, f64::NEG_INFINITY) == got))
}

/// The next float after `x` toward `to` (Go's `math.Nextafter`), written out because `f64::next_up`
/// needs a newer Rust than the workspace's minimum.
fn next_toward(x: f64, to: f64) -> f64 {
    if x.is_nan() || to.is_nan() {
        return f64::NAN;
    }
    if x == to {
        return x;
    }
    if x == 0.0 {
        return f64::from_bits(1).copysign(to);
    }
    let bits = x.to_bits();
    let away_from_zero = (to > x) == (x > 0.0);
    f64::from_bits(if away_from_zero { bits + 1 } else { bits - 1 })
}

/// The input series of a test group, expanded: for each label set its samples in time order.
fn load_input(tg: &TestGroup, interval: i64, mint: i64) -> Result<Vec<(Labels, Vec<Sample>)>, String> {
    // A label set given twice keeps its last definition, as in Prometheus's loader.
    let mut series: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
    for input in &tg.input_series {
        let labels = parse_series(&input.series).map_err(|e| format!("input_series: {e}"))?;
        if labels.is_empty() {
            return Err(format!("input_series: {:?} names no labels; give the series a name", input.series));
        }
        let values =
            expand_values(&input.values).map_err(|e| format!("input_series {}: {e}", input.series))?;
        let mut samples = Vec::with_capacity(values.len());
        for (i, v) in values.into_iter().enumerate() {
            if let SeqValue::Value(v) = v {
                let step = i64::try_from(i).ok().and_then(|i| i.checked_mul(interval));
                let t = step.and_then(|s| s.checked_add(mint)).ok_or_else(|| {
                    format!("input_series {}: sample {i} is beyond the representable time", input.series)
                })?;
                samples.push(Sample::new(t, v));
            }
        }
        series.insert(labels, samples);
    }
    Ok(series.into_iter().collect())
}

/// Appends input samples to the store as evaluation time advances, like promtool's lazy loader.
struct Loader {
    series: Vec<(Labels, Vec<Sample>)>,
    /// For each series, how many samples are already in the store.
    loaded: Vec<usize>,
}

// === impl Loader ===

impl Loader {
    fn new(series: Vec<(Labels, Vec<Sample>)>) -> Self {
        let loaded = vec![0; series.len()];
        Self { series, loaded }
    }

    /// Adds every sample at or before `ts` not yet added.
    fn load_till(&mut self, store: &MemStorage, ts: i64) {
        for ((labels, samples), loaded) in self.series.iter().zip(self.loaded.iter_mut()) {
            let end = samples.partition_point(|s| s.t <= ts);
            if end > *loaded {
                store.add(labels.clone(), samples[*loaded..end].iter().copied());
                *loaded = end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_compare_exactly_or_by_one_ulp() {
        assert!(floats_match(1.0, 1.0, false));
        assert!(floats_match(f64::NAN, f64::NAN, false));
        assert!(!floats_match(f64::NAN, 1.0, true));
        assert!(!floats_match(0.3, 0.1 + 0.2, false));
        assert!(floats_match(0.3, 0.1 + 0.2, true));
        assert!(!floats_match(0.3, 0.30000000000000016, true));
        assert!(floats_match(0.0, -0.0, false));
        assert!(floats_match(f64::INFINITY, f64::INFINITY, true));
        assert_eq!(next_toward(1.0, 2.0), 1.0 + f64::EPSILON);
        assert_eq!(next_toward(-1.0, 0.0), -1.0 + f64::EPSILON / 2.0);
        assert_eq!(next_toward(0.0, -1.0), -f64::from_bits(1));
    }

    #[test]
    fn samples_render_like_promtool() {
        let l = Labels::from_pairs(&[("__name__", "x"), ("a", "b")]);
        assert_eq!(samples_text(&[(l, 1.5)]), r#"{__name__="x", a="b"} 1.5E+00"#);
        assert_eq!(samples_text(&[(Labels::empty(), 3.0)]), "{} 3E+00");
        assert_eq!(samples_text(&[]), "nil");
    }

    /// A stand-in rule engine: alert `X` fires from 2m on, and every evaluation time is recorded.
    struct FakeEvaluator(std::sync::Arc<std::sync::Mutex<Vec<i64>>>);

    struct FakeSession {
        steps: std::sync::Arc<std::sync::Mutex<Vec<i64>>>,
        last: i64,
    }

    impl RuleEvaluator for FakeEvaluator {
        fn load(&self, setup: &RuleSetup<'_>) -> Result<Box<dyn RuleSession>, Vec<String>> {
            assert_eq!(setup.external_url, "http://x");
            assert_eq!(setup.eval_interval, 60_000);
            Ok(Box::new(FakeSession { steps: std::sync::Arc::clone(&self.0), last: -1 }))
        }
    }

    impl RuleSession for FakeSession {
        fn eval(&mut self, _store: &dyn Storage, ts: i64) -> Vec<(String, String)> {
            self.steps.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(ts);
            self.last = ts;
            Vec::new()
        }

        fn firing_alerts(&self, alertname: &str) -> Vec<LabelsAndAnnotations> {
            if alertname != "X" || self.last < 120_000 {
                return Vec::new();
            }
            let labels =
                BTreeMap::from([("alertname".to_owned(), "X".to_owned()), ("a".to_owned(), "b".to_owned())]);
            vec![(labels, BTreeMap::from([("s".to_owned(), "t".to_owned())]))]
        }
    }

    #[test]
    fn an_evaluator_runs_every_step_and_answers_alert_tests() {
        let dir = std::env::temp_dir().join(format!("sightline-unittest-seam-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("t.yml");
        std::fs::write(
            &file,
            "tests:\n  - external_url: http://x\n    alert_rule_test:\n      - {eval_time: 2m30s, alertname: X, exp_alerts: [{exp_labels: {a: b}, exp_annotations: {s: t}}]}\n      - {eval_time: 1m, alertname: X}\n      - {eval_time: 3m, alertname: X}\n",
        )
        .expect("write");
        let steps = std::sync::Arc::default();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let summary = run_test_files_with(
            std::slice::from_ref(&file),
            &mut out,
            &mut err,
            &FakeEvaluator(std::sync::Arc::clone(&steps)),
        )
        .expect("report");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!((summary.tests, summary.failures), (3, 1));
        assert_eq!(
            *steps.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
            [0, 60_000, 120_000, 180_000]
        );
        let err = String::from_utf8_lossy(&err);
        assert_eq!(
            err,
            "  FAILED:\n    alertname: X, time: 3m, \n        exp:[], \n        got:[\n            0:\n              Labels:{a=\"b\", alertname=\"X\"}\n              Annotations:{s=\"t\"}\n            ]\n"
        );
    }

    #[test]
    fn without_an_evaluator_alert_tests_say_they_did_not_run() {
        let dir = std::env::temp_dir().join(format!("sightline-unittest-noeval-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("t.yml");
        std::fs::write(&file, "tests:\n  - alert_rule_test:\n      - {eval_time: 1m, alertname: X}\n")
            .expect("write");
        let mut out = Vec::new();
        let summary = run_test_files(std::slice::from_ref(&file), &mut out).expect("report");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(summary.failures, 1);
        assert!(String::from_utf8_lossy(&out).contains("needs the alerting engine"));
    }

    #[test]
    fn summary_exit_codes() {
        assert_eq!(RunSummary::default().exit_code(), 0);
        assert_eq!(RunSummary { failures: 2, ..RunSummary::default() }.exit_code(), 1);
    }
}
