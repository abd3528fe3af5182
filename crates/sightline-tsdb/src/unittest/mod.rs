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
//! - `alert_rule_test` needs the alerting engine, which this crate does not have yet: each one is
//!   reported as a failure saying it did not run, so that nobody reads a pass into a skipped test.
//!   Alerting rules in rule files are parsed and validated, not evaluated (no `ALERTS` series).
//! - Native histograms (`{{...}}` values, `histogram:` expectations) are not supported.
//!
//! A subquery written without a step (`x[5m:]`) steps by `evaluation_interval`, as in promtool. Rule
//! groups may use the Prometheus 3.x options `query_offset`, `limit` and group `labels`; a group's own
//! `interval` is ignored, as promtool evaluates every group at every step. A test group whose rules
//! would run more than a million steps is refused with an error rather than left to run for hours.
//! Because both sides are sorted before comparing, result order (`sort`, `sort_desc`) is not checked.

mod file;
mod notation;
mod rules;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::labels::Labels;
use crate::mem::MemStorage;
use crate::promql::{Engine, Value};
use crate::sample::Sample;

use file::{TestFile, TestGroup};
use notation::{SeqValue, expand_values, format_duration, go_float, go_labels, go_quote, parse_series};
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
    run(paths, &mut sink)
}

/// Like [`run_test_files`], but splits the report between two streams as promtool does: progress and
/// `SUCCESS` on `out`, `FAILED:`, failure details and warnings on `err`.
pub fn run_test_files_split(
    paths: &[PathBuf],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<RunSummary, UnitTestError> {
    let mut sink = Sink { out, err: Some(err) };
    run(paths, &mut sink)
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

fn run(paths: &[PathBuf], sink: &mut Sink<'_>) -> Result<RunSummary, UnitTestError> {
    let mut summary = RunSummary::default();
    for path in paths {
        summary.files += 1;
        sink.out(&format!("Unit Testing:  {}\n", path.display()))?;
        let report = test_file(path);
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

fn test_file(path: &Path) -> FileReport {
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

    #[test]
    fn summary_exit_codes() {
        assert_eq!(RunSummary::default().exit_code(), 0);
        assert_eq!(RunSummary { failures: 2, ..RunSummary::default() }.exit_code(), 1);
    }
}
