//! The default alerting rules shipped in `deploy/rules/`: Debian's promtool accepts the rule file and
//! passes its unit tests, and every rule follows the conventions the README promises (a severity, a
//! summary and a description, template functions Prometheus has, and unit tests that see it both firing
//! and quiet).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;
use sightline_testkit::require_peer;

/// `deploy/rules/`, from this crate's directory.
fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rules")
}

fn rule_file() -> PathBuf {
    rules_dir().join("sightline.rules.yml")
}

/// The unit test files, `deploy/rules/tests/*.yml`, sorted.
fn test_files() -> Vec<PathBuf> {
    let dir = rules_dir().join("tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("read a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yml" || ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no unit test files in {}", dir.display());
    files
}

fn load_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Every alerting rule of the rule file, as YAML mappings.
fn alerting_rules() -> Vec<Value> {
    let file = load_yaml(&rule_file());
    let groups = file["groups"].as_sequence().expect("the rule file has groups");
    groups
        .iter()
        .flat_map(|group| group["rules"].as_sequence().expect("each group has rules").iter().cloned())
        .filter(|rule| rule.get("alert").is_some())
        .collect()
}

fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// Runs promtool with `args`, returning whether it succeeded and everything it printed.
fn promtool(promtool: &Path, args: &[&str], files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(promtool)
        .args(args)
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", promtool.display()));
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), printed)
}

/// `promtool check rules` accepts the file and finds every rule in it: a rule it silently skipped would
/// show as a smaller count.
#[test]
fn promtool_checks_the_rule_file() {
    let Some(bin) = require_peer("promtool", "prometheus") else { return };
    let (ok, printed) = promtool(&bin, &["check", "rules"], &[rule_file()]);
    assert!(ok, "promtool check rules failed:\n{printed}");
    let expected = format!("SUCCESS: {} rules found", alerting_rules().len());
    assert!(printed.contains(&expected), "expected `{expected}` from promtool:\n{printed}");
}

/// `promtool test rules` passes every unit test file.
#[test]
fn promtool_passes_the_unit_tests() {
    let Some(bin) = require_peer("promtool", "prometheus") else { return };
    let files = test_files();
    let (ok, printed) = promtool(&bin, &["test", "rules"], &files);
    assert!(ok, "promtool test rules failed:\n{printed}");
    assert_eq!(printed.matches("SUCCESS").count(), files.len(), "one SUCCESS per file expected:\n{printed}");
}

/// The template functions the annotations may use: Prometheus has them, and Sightline's alerting engine
/// renders them.
const TEMPLATE_FUNCTIONS: [&str; 3] = ["humanize", "humanizePercentage", "humanizeDuration"];

/// Every rule has `severity: warning|critical`, a `summary` and a `description`, and its templates use
/// only `$labels`, `$value` and the functions above. Needs no peer.
#[test]
fn every_rule_follows_the_conventions() {
    let rules = alerting_rules();
    assert!(rules.len() >= 17, "expected the full default set, found {} rules", rules.len());
    let mut names = std::collections::BTreeSet::new();
    for rule in &rules {
        let name = str_field(rule, "alert").expect("alert names are strings");
        assert!(names.insert(name.to_owned()), "{name} is defined twice");
        assert!(name.starts_with("Sightline"), "{name} should start with Sightline");
        let severity = rule.get("labels").and_then(|l| str_field(l, "severity"));
        assert!(
            matches!(severity, Some("warning" | "critical")),
            "{name}: severity must be warning or critical, is {severity:?}"
        );
        let annotations = rule.get("annotations").unwrap_or_else(|| panic!("{name} has no annotations"));
        for key in ["summary", "description"] {
            let text = str_field(annotations, key).unwrap_or_else(|| panic!("{name} has no {key}"));
            check_templates(name, text);
        }
    }
}

/// Checks each `{{ ... }}` action of `text`: a `$labels.x` or `$value`, optionally piped into one of
/// [`TEMPLATE_FUNCTIONS`].
fn check_templates(rule: &str, text: &str) {
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..].find("}}").unwrap_or_else(|| panic!("{rule}: unclosed {{{{ in {text:?}"));
        let action = rest[start + 2..start + end].trim();
        let mut parts = action.split('|').map(str::trim);
        let operand = parts.next().unwrap_or_default();
        assert!(
            operand == "$value" || operand.strip_prefix("$labels.").is_some_and(|l| !l.is_empty()),
            "{rule}: template {action:?} should read $value or $labels.<name>"
        );
        for function in parts {
            assert!(TEMPLATE_FUNCTIONS.contains(&function), "{rule}: template function {function:?} unknown");
        }
        rest = &rest[start + end + 2..];
    }
}

/// Whether each alert was seen firing and seen quiet (listed with no expected alerts) by some test.
#[derive(Default, Debug)]
struct Coverage {
    firing: bool,
    quiet: bool,
}

/// Every rule is unit-tested both firing and quiet, and the tests name no rule that does not exist.
/// Needs no peer.
#[test]
fn every_rule_has_unit_tests() {
    let mut coverage: BTreeMap<String, Coverage> = alerting_rules()
        .iter()
        .map(|rule| {
            (str_field(rule, "alert").expect("alert names are strings").to_owned(), Coverage::default())
        })
        .collect();
    for file in test_files() {
        let tests = load_yaml(&file);
        for group in tests["tests"].as_sequence().expect("a test file has tests") {
            let Some(cases) = group.get("alert_rule_test").and_then(Value::as_sequence) else { continue };
            for case in cases {
                let name = str_field(case, "alertname").expect("each alert_rule_test has an alertname");
                let seen = coverage
                    .get_mut(name)
                    .unwrap_or_else(|| panic!("{} tests {name}, which no rule defines", file.display()));
                let expected = case.get("exp_alerts").and_then(Value::as_sequence).map_or(0, Vec::len);
                if expected == 0 { seen.quiet = true } else { seen.firing = true }
            }
        }
    }
    let untested: Vec<_> = coverage.iter().filter(|(_, c)| !(c.firing && c.quiet)).collect();
    assert!(untested.is_empty(), "rules not tested both firing and quiet: {untested:?}");
}
