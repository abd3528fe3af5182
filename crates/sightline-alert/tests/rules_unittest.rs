//! `alert_rule_test` through `sightline_alert::rules::run_test_files`, cross-checked with Debian's
//! `promtool test rules` on the same files (same exit code, same report).

use std::path::PathBuf;
use std::process::Command;

fn file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rules").join(name)
}

/// Runs our runner in the files' directory (so the report names them as promtool does): (code, out, err).
fn ours(name: &str) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let summary = sightline_alert::rules::run_test_files(&[PathBuf::from(name)], &mut out, &mut err)
        .map_err(|e| e.to_string());
    // Paths are resolved relative to the working directory; the test binary runs in the crate root.
    let summary = summary.expect("report written");
    (
        summary.exit_code(),
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

fn in_dir(name: &str) -> (i32, String, String) {
    let _guard = CWD.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = file("");
    let previous = std::env::current_dir().expect("cwd");
    std::env::set_current_dir(&dir).expect("cd into tests/rules");
    let result = ours(name);
    std::env::set_current_dir(previous).expect("cd back");
    result
}

/// The working directory is process-wide; tests that change it take turns.
static CWD: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn promtool(name: &str) -> Option<(i32, String, String)> {
    let promtool = sightline_testkit::require_peer("promtool", "prometheus")?;
    let output = Command::new(promtool)
        .args(["test", "rules", name])
        .current_dir(file(""))
        .output()
        .expect("run promtool");
    Some((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

#[test]
fn alert_tests_pass_pending_firing_resolved_and_templates() {
    let (code, out, err) = in_dir("alerts_test.yml");
    assert_eq!((code, out.as_str(), err.as_str()), (0, "Unit Testing:  alerts_test.yml\n  SUCCESS\n\n", ""));
}

#[test]
fn keep_firing_for_keeps_alerts_firing() {
    let (code, out, err) = in_dir("keep_firing_test.yml");
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "Unit Testing:  keep_firing_test.yml\n  SUCCESS\n\n", "")
    );
}

#[test]
fn templates_render_like_prometheus() {
    let (code, out, err) = in_dir("templates_test.yml");
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "Unit Testing:  templates_test.yml\n  SUCCESS\n\n", "")
    );
}

#[test]
fn mismatches_are_reported_like_promtool() {
    let (code, out, err) = in_dir("mismatch_test.yml");
    assert_eq!(code, 1);
    assert_eq!(out, "Unit Testing:  mismatch_test.yml\n\n\n\n");
    let expected = r#"  FAILED:
    name: wrong expectations,
    alertname: HighLoad, time: 1m, 
        exp:[
            0:
              Labels:{alertname="HighLoad", instance="a:9100", severity="warning"}
              Annotations:{summary="wrong"},
            1:
              Labels:{alertname="HighLoad", instance="b:9100", severity="warning"}
              Annotations:{}
            ], 
        got:[
            0:
              Labels:{alertname="HighLoad", instance="a:9100", severity="warning"}
              Annotations:{pct="2000.0 / 12.34%", summary="Load is 2k on A:9100", took="1m 30s 2ki"}
            ]
    name: wrong expectations,
    alertname: InstanceDown, time: 5m, 
        exp:[
            0:
              Labels:{alertname="InstanceDown", instance="c:5432", job="db", severity="page"}
              Annotations:{}
            ], 
        got:[
            0:
              Labels:{alertname="InstanceDown", instance="c:5432", job="db", severity="page"}
              Annotations:{description="c:5432 of job db has been down; value 0.", summary="Instance c:5432 down"}
            ]
"#;
    assert_eq!(err, expected);
}

#[test]
fn promtool_agrees_on_every_file() {
    for name in ["alerts_test.yml", "keep_firing_test.yml", "mismatch_test.yml", "templates_test.yml"] {
        let Some(theirs) = promtool(name) else { return };
        let mine = in_dir(name);
        assert_eq!(mine, theirs, "{name}: sightline (left) and promtool (right) differ");
    }
}

#[test]
fn bad_rule_files_fail_the_test_file_with_file_and_line() {
    let dir = sightline_testkit::TempDir::new("rules-unittest-bad");
    let rules = dir.path().join("bad.rules.yml");
    std::fs::write(&rules, "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up ==\n")
        .expect("write");
    let test = dir.path().join("t.yml");
    std::fs::write(
        &test,
        "rule_files: [bad.rules.yml]\ntests:\n  - alert_rule_test:\n      - {eval_time: 1m, alertname: A}\n",
    )
    .expect("write");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let summary = sightline_alert::rules::run_test_files(&[test], &mut out, &mut err).expect("report");
    assert_eq!(summary.exit_code(), 1);
    let err = String::from_utf8_lossy(&err);
    assert!(
        err.contains("bad.rules.yml:5:15: group \"g\", rule 1, \"A\": could not parse expression"),
        "{err}"
    );
}
