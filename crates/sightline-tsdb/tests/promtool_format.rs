//! The `promtool test rules` format: the PromQL conformance suite in `tests/promql` run through
//! sightline's runner and engine, the same suite checked against Debian's promtool (so that its
//! expectations stay those of Prometheus), and the runner's report and exit codes.

use std::path::{Path, PathBuf};
use std::process::Command;

use sightline_testkit::{TempDir, require_peer};
use sightline_tsdb::unittest::{RunSummary, run_test_files, run_test_files_split};

/// The file promtool 2.42 must fail: Prometheus 3.x behaviour (see its header comment).
const PROMETHEUS3_FILE: &str = "prometheus3_only.yml";

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("promql")
}

/// The `*.yml` files directly in `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the suite directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

fn run(paths: &[PathBuf]) -> (RunSummary, String) {
    let mut out = Vec::new();
    let summary = run_test_files(paths, &mut out).expect("write the report");
    (summary, String::from_utf8(out).expect("UTF-8 report"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path
}

/// Go's `strconv.Quote` for the plain ASCII expressions of the suite.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The cases of a file in `tests/promql/errors`: each `expr` with the `# error: TEXT` comment above it.
fn expected_errors(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).expect("read an errors file");
    let mut cases = Vec::new();
    let mut pending: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(error) = line.strip_prefix("# error: ") {
            pending = Some(error.to_owned());
        } else if let Some(expr) = line.strip_prefix("- expr: ") {
            let error =
                pending.take().unwrap_or_else(|| panic!("{}: {expr} has no `# error:`", path.display()));
            cases.push((expr.to_owned(), error));
        }
    }
    assert!(!cases.is_empty(), "{} has no cases", path.display());
    cases
}

/// Checks that `report` fails every case of an errors file with its expected message.
fn assert_expected_errors(report: &str, cases: &[(String, String)], who: &str) {
    for (expr, error) in cases {
        let head = format!("    expr: {}, time: ", quote(expr));
        let line = report
            .lines()
            .find(|l| l.starts_with(&head))
            .unwrap_or_else(|| panic!("{who}: no failure reported for {expr}; the report was:\n{report}"));
        assert!(
            line.contains(", err: ") && line.contains(error.as_str()),
            "{who}: {expr} should fail with an error containing {error:?}, got:\n{line}"
        );
    }
}

/// Every file of the suite passes with sightline's engine, the 3.x-only cases included.
#[test]
fn conformance_suite_passes() {
    let files = yaml_files(&suite_dir());
    assert!(files.len() >= 10, "the suite should have its files, found {files:?}");
    let (summary, report) = run(&files);
    assert!(summary.tests > 300, "the suite should run hundreds of cases, ran {}", summary.tests);
    assert_eq!(summary.failures, 0, "the conformance suite failed:\n{report}");
    assert_eq!(summary.exit_code(), 0);
}

/// The queries in `tests/promql/errors` fail with Prometheus's errors.
#[test]
fn expected_errors_are_reported() {
    for file in yaml_files(&suite_dir().join("errors")) {
        let cases = expected_errors(&file);
        let (summary, report) = run(std::slice::from_ref(&file));
        assert_eq!(summary.exit_code(), 1, "{} must fail", file.display());
        assert_eq!(summary.failures, cases.len(), "one failure per case expected:\n{report}");
        assert_expected_errors(&report, &cases, "sightline");
    }
}

/// The suite agrees with Debian's promtool (Prometheus 2.42): every file passes except the 3.x-only
/// file, which must fail on every case (or its reason for existing has gone away), and the errors
/// files fail with the same errors.
#[test]
fn promtool_agrees_with_the_suite() {
    let Some(promtool) = require_peer("promtool", "prometheus") else { return };
    let promtool_run = |file: &Path| {
        let out = Command::new(&promtool).args(["test", "rules"]).arg(file).output().expect("run promtool");
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    };
    for file in yaml_files(&suite_dir()) {
        let (code, text) = promtool_run(&file);
        if file.file_name().is_some_and(|n| n == PROMETHEUS3_FILE) {
            assert_eq!(code, Some(1), "promtool 2.42 should fail {PROMETHEUS3_FILE}:\n{text}");
            let cases = std::fs::read_to_string(&file).expect("read the 3.x-only file");
            for expr in cases.lines().filter_map(|l| l.trim().strip_prefix("- expr: ")) {
                assert!(
                    text.contains(&format!("expr: {}, time: ", quote(expr))),
                    "promtool 2.42 passes {expr}; move it out of {PROMETHEUS3_FILE}:\n{text}"
                );
            }
        } else {
            assert_eq!(code, Some(0), "promtool disagrees with {}:\n{text}", file.display());
        }
    }
    for file in yaml_files(&suite_dir().join("errors")) {
        let (code, text) = promtool_run(&file);
        assert_eq!(code, Some(1), "promtool should fail {}", file.display());
        assert_expected_errors(&text, &expected_errors(&file), "promtool");
    }
}

const FAILING: &str = r#"tests:
  - interval: 1m
    input_series:
      - series: 'x{a="b"}'
        values: '1+1x10'
    promql_expr_test:
      - expr: x
        eval_time: 5m
        exp_samples:
          - labels: 'x{a="b"}'
            value: 7
      - expr: x
        eval_time: 5m
        exp_samples:
          - labels: 'x{a="b"}'
            value: 6
      - expr: vector(1)
        eval_time: 90s
"#;

/// A failing file gives exit code 1 and promtool's report, line for line.
#[test]
fn failures_are_reported_like_promtool() {
    let dir = TempDir::new("promtool-format");
    let file = write(dir.path(), "failing.yml", FAILING);
    let (summary, report) = run(std::slice::from_ref(&file));
    let expected = format!(
        "Unit Testing:  {}\n  FAILED:\n    expr: \"x\", time: 5m,\n        exp: {{__name__=\"x\", a=\"b\"}} 7E+00\n        got: {{__name__=\"x\", a=\"b\"}} 6E+00\n\n    expr: \"vector(1)\", time: 1m30s,\n        exp: nil\n        got: {{}} 1E+00\n\n\n",
        file.display()
    );
    assert_eq!(report, expected);
    assert_eq!(summary, RunSummary { files: 1, tests: 3, failures: 2, failed_files: 1 });
    assert_eq!(summary.exit_code(), 1);

    // The same file through promtool gives the same two streams.
    let Some(promtool) = require_peer("promtool", "prometheus") else { return };
    let mut out = Vec::new();
    let mut err = Vec::new();
    run_test_files_split(std::slice::from_ref(&file), &mut out, &mut err).expect("write the report");
    let theirs = Command::new(&promtool).args(["test", "rules"]).arg(&file).output().expect("run promtool");
    assert_eq!(theirs.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&theirs.stdout), String::from_utf8_lossy(&out), "stdout differs");
    assert_eq!(String::from_utf8_lossy(&theirs.stderr), String::from_utf8_lossy(&err), "stderr differs");
}

/// A file that passes, next to one that fails: the run fails, and each file has its verdict.
#[test]
fn one_failing_file_fails_the_run() {
    let dir = TempDir::new("promtool-format");
    let good = write(dir.path(), "good.yml", "evaluation_interval: 30s\ntests: []\n");
    let bad = write(dir.path(), "bad.yml", FAILING);
    let (summary, report) = run(&[good.clone(), bad]);
    assert!(report.starts_with(&format!("Unit Testing:  {}\n  SUCCESS\n\n", good.display())), "{report}");
    assert_eq!(summary.files, 2);
    assert_eq!(summary.failed_files, 1);
    assert_eq!(summary.exit_code(), 1);
    let (summary, _) = run(&[good]);
    assert_eq!(summary.exit_code(), 0);
}

/// Broken YAML is a failure that names the file, line and column; so are unknown fields, a missing
/// file and values promtool rejects.
#[test]
fn broken_files_are_failures_with_their_position() {
    let dir = TempDir::new("promtool-format");
    let broken = write(
        dir.path(),
        "broken.yml",
        "tests:\n  - interval: 1m\n    promql_expr_test:\n      - expr: up\n        eval_time: 1m\n        exp_samples:\n          - value: abc\n",
    );
    let (summary, report) = run(std::slice::from_ref(&broken));
    assert_eq!(summary.exit_code(), 1);
    assert!(report.contains(&format!("{}:7:", broken.display())), "no line number in:\n{report}");

    let unknown = write(dir.path(), "unknown.yml", "tests:\n  - intervall: 1m\n");
    let (summary, report) = run(std::slice::from_ref(&unknown));
    assert_eq!(summary.exit_code(), 1);
    assert!(report.contains(&format!("{}:2:", unknown.display())), "{report}");
    assert!(report.contains("unknown field `intervall`"), "{report}");

    let missing = dir.path().join("missing.yml");
    let (summary, report) = run(std::slice::from_ref(&missing));
    assert_eq!(summary.exit_code(), 1);
    assert!(report.contains(&format!("{}: ", missing.display())), "{report}");

    let bad_duration = write(dir.path(), "duration.yml", "evaluation_interval: 5 minutes\n");
    let (summary, report) = run(std::slice::from_ref(&bad_duration));
    assert_eq!(summary.exit_code(), 1);
    assert!(report.contains("not a valid duration string"), "{report}");

    let bad_series = write(
        dir.path(),
        "series.yml",
        "tests:\n  - interval: 1m\n    input_series:\n      - series: 'up{job=~\"a\"}'\n        values: '1'\n",
    );
    let (summary, report) = run(std::slice::from_ref(&bad_series));
    assert_eq!(summary.exit_code(), 1);
    assert!(report.contains("names its labels with = only"), "{report}");

    let bad_values = write(
        dir.path(),
        "values.yml",
        "tests:\n  - interval: 1m\n    input_series:\n      - series: 'up'\n        values: '1 two 3'\n",
    );
    let (summary, report) = run(std::slice::from_ref(&bad_values));
    assert_eq!(summary.exit_code(), 1);
    assert!(report.contains("\"two\""), "{report}");
}

/// Problems in rule files fail the test file with the rule file's name and the rule.
#[test]
fn rule_file_problems_are_failures() {
    let dir = TempDir::new("promtool-format");
    write(
        dir.path(),
        "bad.rules.yml",
        "groups:\n  - name: g\n    rules:\n      - record: job:up\n        expr: sum(up\n",
    );
    let test = write(dir.path(), "test.yml", "rule_files: ['*.rules.yml']\ntests:\n  - interval: 1m\n");
    let (summary, report) = run(std::slice::from_ref(&test));
    assert_eq!(summary.exit_code(), 1);
    assert!(
        report.contains("bad.rules.yml: group \"g\", rule 1, \"job:up\": could not parse expression"),
        "{report}"
    );

    // A pattern that matches nothing is only a warning, as in promtool.
    let none = write(dir.path(), "none.yml", "rule_files: ['nothing/*.yml']\ntests: []\n");
    let (summary, report) = run(std::slice::from_ref(&none));
    assert_eq!(summary.exit_code(), 0, "{report}");
    assert!(report.contains("WARNING: no file match pattern"), "{report}");
}

/// alert_rule_test needs the alerting engine: it fails saying so rather than passing unrun.
#[test]
fn alert_rule_tests_are_not_passed_silently() {
    let dir = TempDir::new("promtool-format");
    let file = write(
        dir.path(),
        "alerts.yml",
        "tests:\n  - interval: 1m\n    input_series:\n      - series: 'up{job=\"a\"}'\n        values: '0x10'\n    alert_rule_test:\n      - eval_time: 5m\n        alertname: InstanceDown\n        exp_alerts: []\n",
    );
    let (summary, report) = run(std::slice::from_ref(&file));
    assert_eq!(summary.exit_code(), 1);
    assert_eq!(summary.tests, 1);
    assert!(
        report.contains("alertname: InstanceDown, time: 5m, err: alert_rule_test needs the alerting engine"),
        "{report}"
    );
}

/// An expected NaN (`.nan`) matches a NaN result: a deliberate extension, as promtool's `==` can never
/// match NaN. `fuzzy_compare` (Prometheus 3.x) allows one ULP.
#[test]
fn nan_and_fuzzy_comparison() {
    let dir = TempDir::new("promtool-format");
    let file = write(
        dir.path(),
        "nan.yml",
        "tests:\n  - interval: 1m\n    promql_expr_test:\n      - expr: 0 / 0\n        eval_time: 1m\n        exp_samples:\n          - value: .nan\n      - expr: vector(0.1) + 0.2\n        eval_time: 1m\n        exp_samples:\n          - value: 0.3\n",
    );
    let (summary, report) = run(std::slice::from_ref(&file));
    assert_eq!(summary.failures, 1, "only the inexact sum should fail:\n{report}");
    assert!(report.contains("got: {} 3.0000000000000004E-01"), "{report}");
    let fuzzy = write(
        dir.path(),
        "fuzzy.yml",
        &format!("fuzzy_compare: true\n{}", std::fs::read_to_string(&file).expect("read")),
    );
    let (summary, report) = run(std::slice::from_ref(&fuzzy));
    assert_eq!(summary.failures, 0, "{report}");
}

/// A rule that fails stops its test group with promtool's `rule:` line, and the group's expression
/// tests do not run.
#[test]
fn rule_errors_stop_the_group() {
    let dir = TempDir::new("promtool-format");
    write(
        dir.path(),
        "rules.yml",
        "groups:\n  - name: g\n    rules:\n      - record: broken:sum\n        expr: m + on(k) info\n",
    );
    let file = write(
        dir.path(),
        "test.yml",
        "rule_files: [rules.yml]\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'm{k=\"x\", i=\"1\"}'\n        values: '1x5'\n      - series: 'm{k=\"x\", i=\"2\"}'\n        values: '1x5'\n      - series: 'info{k=\"x\"}'\n        values: '1x5'\n    promql_expr_test:\n      - expr: vector(1)\n        eval_time: 2m\n",
    );
    let (summary, report) = run(std::slice::from_ref(&file));
    assert_eq!(summary.exit_code(), 1);
    assert_eq!(summary.failures, 1, "{report}");
    assert!(report.contains("    rule: broken:sum, time: 0s, err: "), "{report}");
    assert!(report.contains("many-to-one matching must be explicit"), "{report}");
    assert!(!report.contains("vector(1)"), "the expression test must not run: {report}");

    // The same file through promtool stops the same way.
    let Some(promtool) = require_peer("promtool", "prometheus") else { return };
    let theirs = Command::new(&promtool).args(["test", "rules"]).arg(&file).output().expect("run promtool");
    let text = String::from_utf8_lossy(&theirs.stderr);
    assert_eq!(theirs.status.code(), Some(1));
    assert!(text.contains("    rule: broken:sum, time: 0s, err: "), "{text}");
}

/// Rule group features of Prometheus 3.x that promtool 2.42 cannot read: group labels (a rule's own
/// labels win), query_offset (rules evaluate, and record, that long before each step) and limit; and
/// the duplicate label set check on rule output.
#[test]
fn rule_group_options() {
    let dir = TempDir::new("promtool-format");
    write(
        dir.path(),
        "rules.yml",
        r#"groups:
  - name: labelled
    labels:
      team: core
      tier: one
    query_offset: 1m
    rules:
      - record: job:x:sum
        expr: sum by (job) (x)
        labels:
          tier: two
      - record: job:x:time
        expr: timestamp(vector(time()))
  - name: limited
    limit: 1
    rules:
      - record: x:copy
        expr: x
"#,
    );
    let file = write(
        dir.path(),
        "test.yml",
        r#"rule_files: [rules.yml]
tests:
  - interval: 1m
    input_series:
      - series: 'x{job="a", i="1"}'
        values: '0+1x10'
    promql_expr_test:
      - expr: job:x:sum
        eval_time: 5m30s
        exp_samples:
          - labels: 'job:x:sum{job="a", team="core", tier="two"}'
            value: 4
      - expr: timestamp(job:x:time)
        eval_time: 5m30s
        exp_samples:
          - labels: '{team="core", tier="one"}'
            value: 240
"#,
    );
    let (summary, report) = run(std::slice::from_ref(&file));
    assert_eq!(summary.failures, 0, "{report}");

    // Two series from a rule with limit 1 fail the rule.
    let over = write(
        dir.path(),
        "over.yml",
        "rule_files: [rules.yml]\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'x{i=\"1\"}'\n        values: '1'\n      - series: 'x{i=\"2\"}'\n        values: '1'\n",
    );
    let (summary, report) = run(std::slice::from_ref(&over));
    assert_eq!(summary.exit_code(), 1);
    assert!(report.contains("rule: x:copy, time: 0s, err: exceeded limit of 1 with 2 series"), "{report}");

    // A rule whose labels make two results identical fails.
    write(
        dir.path(),
        "dup.rules.yml",
        "groups:\n  - name: d\n    rules:\n      - record: same\n        expr: x\n        labels:\n          i: fixed\n",
    );
    let dup = write(
        dir.path(),
        "dup.yml",
        "rule_files: [dup.rules.yml]\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'x{i=\"1\"}'\n        values: '1'\n      - series: 'x{i=\"2\"}'\n        values: '1'\n",
    );
    let (summary, report) = run(std::slice::from_ref(&dup));
    assert_eq!(summary.exit_code(), 1);
    assert!(
        report.contains("vector contains metrics with the same labelset after applying rule labels"),
        "{report}"
    );
}

/// group_eval_order may not name a group twice.
#[test]
fn repeated_group_in_eval_order_fails() {
    let dir = TempDir::new("promtool-format");
    let file = write(dir.path(), "order.yml", "group_eval_order: [a, b, a]\ntests: []\n");
    let (summary, report) = run(std::slice::from_ref(&file));
    assert_eq!(summary.exit_code(), 1);
    assert!(report.contains("group name repeated in evaluation order: a"), "{report}");
}

/// An eval_time that would make the rules run for hours is an error, not a hang.
#[test]
fn huge_eval_time_with_rules_is_refused() {
    let dir = TempDir::new("promtool-format");
    write(
        dir.path(),
        "rules.yml",
        "groups:\n  - name: g\n    rules:\n      - record: one\n        expr: vector(1)\n",
    );
    let file = write(
        dir.path(),
        "test.yml",
        "rule_files: [rules.yml]\ntests:\n  - interval: 1m\n    promql_expr_test:\n      - expr: one\n        eval_time: 100y\n",
    );
    let (summary, report) = run(std::slice::from_ref(&file));
    assert_eq!(summary.exit_code(), 1);
    assert!(report.contains("lower eval_time or raise evaluation_interval"), "{report}");
}

/// Prometheus 3.x sums with compensation (Neumaier), so 1e100 + 1 - 1e100 is 1 in any series order.
/// Not in the suite: promtool 2.42 sums naively, in an order that changes from run to run.
#[test]
fn sum_is_compensated() {
    let dir = TempDir::new("promtool-format");
    let file = write(
        dir.path(),
        "kahan.yml",
        "tests:\n  - interval: 1m\n    input_series:\n      - series: 'parts{k=\"1\"}'\n        values: '1e100x3'\n      - series: 'parts{k=\"2\"}'\n        values: '1x3'\n      - series: 'parts{k=\"3\"}'\n        values: '-1e100x3'\n    promql_expr_test:\n      - expr: sum(parts)\n        eval_time: 2m30s\n        exp_samples:\n          - value: 1\n",
    );
    let (summary, report) = run(std::slice::from_ref(&file));
    assert_eq!(summary.failures, 0, "{report}");
}

/// start_timestamp (Prometheus 3.x) moves time 0 of a test group: samples and eval_time count from it.
#[test]
fn start_timestamp_moves_time_zero() {
    let dir = TempDir::new("promtool-format");
    let file = |name: &str, start: &str| {
        let text = format!(
            "tests:\n  - start_timestamp: {start}\n    interval: 1m\n    input_series:\n      - series: 'x'\n        values: '1+1x10'\n    promql_expr_test:\n      - expr: time()\n        eval_time: 2m\n        exp_samples:\n          - value: 1700000120\n      - expr: x\n        eval_time: 2m30s\n        exp_samples:\n          - labels: x\n            value: 3\n      - expr: timestamp(x)\n        eval_time: 2m30s\n        exp_samples:\n          - value: 1700000120\n"
        );
        write(dir.path(), name, &text)
    };
    let files = [file("seconds.yml", "1700000000"), file("rfc3339.yml", "'2023-11-14T22:13:20Z'")];
    let (summary, report) = run(&files);
    assert_eq!(summary.failures, 0, "{report}");
    assert_eq!(summary.tests, 6);
}
