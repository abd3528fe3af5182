//! `sightline rules check`: promtool's report and exit codes, cross-checked with Debian's promtool.

use std::path::PathBuf;
use std::process::Command;

use sightline_alert::rules::{check_files, run_check};
use sightline_testkit::TempDir;

const GOOD: &str = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        for: 5m\n        annotations: {summary: '{{ $value | humanize }}'}\n      - record: job:up\n        expr: sum by (job) (up)\n";
const BAD: &str = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up ==\n      - record: \"a-b\"\n        expr: up\n  - name: g\n    rules: []\n";

fn check(paths: &[PathBuf]) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_check(paths, &mut out, &mut err).expect("report");
    (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}

#[test]
fn valid_and_invalid_files_report_like_promtool() {
    let dir = TempDir::new("rules-check");
    let good = dir.path().join("good.yml");
    let bad = dir.path().join("bad.yml");
    std::fs::write(&good, GOOD).expect("write");
    std::fs::write(&bad, BAD).expect("write");

    let (code, out, err) = check(std::slice::from_ref(&good));
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, format!("Checking {}\n  SUCCESS: 2 rules found\n\n", good.display()));

    let (code, out, err) = check(std::slice::from_ref(&bad));
    assert_eq!(code, 1);
    assert_eq!(out, format!("Checking {}\n\n", bad.display()));
    let b = bad.display();
    assert_eq!(
        err,
        format!(
            "  FAILED:\n{b}:5:15: group \"g\", rule 1, \"A\": could not parse expression: 1:6: parse error: unexpected end of input\n\
             {b}:6:17: group \"g\", rule 2, \"a-b\": invalid recording rule name: a-b\n\
             {b}:8:11: groupname: \"g\" is repeated in the same file\n"
        )
    );
    assert_eq!(check_files(&[good.clone(), bad.clone()]).len(), 3);

    let missing = dir.path().join("missing.yml");
    let (code, _, err) = check(std::slice::from_ref(&missing));
    assert_eq!(code, 1);
    assert!(err.contains("cannot read the rule file"), "{err}");

    let Some(promtool) = sightline_testkit::require_peer("promtool", "prometheus") else { return };
    for (path, code) in [(&good, 0), (&bad, 1)] {
        let output = Command::new(&promtool).args(["check", "rules"]).arg(path).output().expect("promtool");
        assert_eq!(output.status.code(), Some(code), "promtool on {}", path.display());
        let (ours, out, _) = check(std::slice::from_ref(path));
        assert_eq!(ours, code);
        // The success report is the same text; failures differ only in that ours always give the line.
        assert_eq!(out, String::from_utf8_lossy(&output.stdout), "stdout for {}", path.display());
    }
}

#[test]
fn a_real_world_rule_file_passes_here_and_in_promtool() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rules/real_world.rules.yml");
    let (code, out, err) = check(std::slice::from_ref(&path));
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out.ends_with("  SUCCESS: 4 rules found\n\n"), "{out}");
    let Some(promtool) = sightline_testkit::require_peer("promtool", "prometheus") else { return };
    let output = Command::new(&promtool).args(["check", "rules"]).arg(&path).output().expect("promtool");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(out, String::from_utf8_lossy(&output.stdout));
}
