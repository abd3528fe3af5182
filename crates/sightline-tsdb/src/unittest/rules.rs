//! Loading the rule files a test file names, and evaluating their recording rules the way promtool
//! does: every group at every evaluation step, rules in order, each rule's output visible to the
//! rules after it.
//!
//! Alerting rules are parsed and validated but not evaluated: that needs the alerting engine (`for`,
//! `keep_firing_for`, templates, the `ALERTS` series), which comes with the alerting issue. A test file
//! whose rule files hold alerting rules still runs its `promql_expr_test`s; an `alert_rule_test` fails
//! with a message saying it did not run.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::labels::{Labels, METRIC_NAME};
use crate::mem::MemStorage;
use crate::promql::{Engine, Value};
use crate::sample::stale_nan;
use crate::traits::Storage;

use super::file::{RuleDef, RuleFile};
use super::yaml_error;

/// A rule group, validated.
#[derive(Debug)]
pub(crate) struct LoadedGroup {
    pub(crate) name: String,
    query_offset: i64,
    limit: u64,
    rules: Vec<LoadedRule>,
}

#[derive(Debug)]
enum LoadedRule {
    Recording(RecordingRule),
    /// Kept so that the group's rule count and names match the file; not evaluated (see the module
    /// documentation).
    Alerting,
}

#[derive(Debug)]
struct RecordingRule {
    name: String,
    expr: String,
    /// The group's labels overridden by the rule's own, in order of application.
    labels: BTreeMap<String, String>,
    /// Label sets this rule wrote at the previous step, to mark the ones that vanish as stale.
    previous: HashSet<Labels>,
}

// === impl LoadedGroup ===

impl LoadedGroup {
    pub(crate) fn has_recording_rules(&self) -> bool {
        self.rules.iter().any(|r| matches!(r, LoadedRule::Recording(_)))
    }

    /// Evaluates the group's recording rules at `ts` and appends their results to `store`. Returns
    /// the failures as promtool prints them (`    rule: NAME, time: T, err: ...`).
    pub(crate) fn eval(&mut self, engine: &Engine, store: &MemStorage, ts: i64, mint: i64) -> Vec<String> {
        let mut errors = Vec::new();
        let t = ts.saturating_sub(self.query_offset);
        for rule in &mut self.rules {
            let LoadedRule::Recording(rule) = rule else { continue };
            match rule.eval(engine, store, t, self.limit) {
                Ok(()) => {}
                Err(e) => errors.push(format!(
                    "    rule: {}, time: {}, err: {e}",
                    rule.name,
                    super::notation::format_duration(ts.saturating_sub(mint))
                )),
            }
        }
        errors
    }
}

// === impl RecordingRule ===

impl RecordingRule {
    fn eval(&mut self, engine: &Engine, store: &MemStorage, t: i64, limit: u64) -> Result<(), String> {
        let samples: Vec<(Labels, f64)> = match engine.instant_query(store, &self.expr, t) {
            Ok(Value::Vector(v)) => v.into_iter().map(|s| (s.labels, s.v)).collect(),
            Ok(Value::Scalar { v, .. }) => vec![(Labels::empty(), v)],
            Ok(other) => {
                return Err(format!("rule result is not a vector or scalar but a {}", other.type_name()));
            }
            Err(e) => return Err(e.to_string()),
        };
        let mut seen = HashSet::with_capacity(samples.len());
        let mut out = Vec::with_capacity(samples.len());
        for (mut labels, v) in samples {
            labels.set(METRIC_NAME, self.name.clone());
            for (name, value) in &self.labels {
                labels.set(name, value.clone());
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
        let mut app = store.appender();
        // Rejected samples (out of order against input series of the same name) are dropped, as
        // Prometheus drops them with a warning rather than failing the rule.
        for (labels, v) in &out {
            let _ = app.append(0, labels, t, *v);
        }
        for gone in self.previous.difference(&seen) {
            let _ = app.append(0, gone, t, stale_nan());
        }
        app.commit().map_err(|e| e.to_string())?;
        self.previous = seen;
        Ok(())
    }
}

/// Expands the `rule_files` patterns (relative to the test file's directory) into paths. Patterns that
/// match nothing are returned as warnings, as promtool only warns about them.
pub(crate) fn resolve_rule_files(
    test_file: &Path,
    patterns: &[String],
) -> Result<(Vec<PathBuf>, Vec<String>), String> {
    let base = test_file.parent().unwrap_or_else(|| Path::new(""));
    let mut files = Vec::new();
    let mut warnings = Vec::new();
    for pattern in patterns {
        if pattern.is_empty() {
            continue;
        }
        let full = if Path::new(pattern).is_absolute() { PathBuf::from(pattern) } else { base.join(pattern) };
        let full_text = full.to_string_lossy().into_owned();
        let matches =
            glob::glob(&full_text).map_err(|e| format!("bad rule_files pattern {pattern:?}: {e}"))?;
        let mut found: Vec<PathBuf> = Vec::new();
        for entry in matches {
            found.push(entry.map_err(|e| format!("cannot read {}: {}", e.path().display(), e.error()))?);
        }
        if found.is_empty() {
            warnings.push(format!("  WARNING: no file match pattern {full_text}"));
        }
        files.extend(found);
    }
    Ok((files, warnings))
}

/// Reads and validates rule files. Every problem found is returned, as promtool reports them all.
pub(crate) fn load_rule_files(paths: &[PathBuf]) -> Result<Vec<LoadedGroup>, Vec<String>> {
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                errors.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let file: RuleFile = match serde_yaml_ng::from_str(&text) {
            Ok(file) => file,
            Err(e) => {
                errors.push(yaml_error(path, &e));
                continue;
            }
        };
        let mut names = HashSet::new();
        for group in file.groups {
            if group.name.is_empty() {
                errors.push(format!("{}: a rule group has no name; give each group a name", path.display()));
                continue;
            }
            if !names.insert(group.name.clone()) {
                errors.push(format!("{}: {:?}: repeated group name", path.display(), group.name));
                continue;
            }
            let mut rules = Vec::with_capacity(group.rules.len());
            for (i, rule) in group.rules.iter().enumerate() {
                match validate_rule(rule, &group.labels) {
                    Ok(rule) => rules.push(rule),
                    Err(e) => errors.push(format!(
                        "{}: group {:?}, rule {}, {:?}: {e}",
                        path.display(),
                        group.name,
                        i + 1,
                        rule.record.as_deref().or(rule.alert.as_deref()).unwrap_or("")
                    )),
                }
            }
            groups.push(LoadedGroup {
                name: group.name,
                query_offset: group.query_offset.map_or(0, |d| d.0),
                limit: group.limit,
                rules,
            });
        }
    }
    if errors.is_empty() { Ok(groups) } else { Err(errors) }
}

fn validate_rule(rule: &RuleDef, group_labels: &BTreeMap<String, String>) -> Result<LoadedRule, String> {
    if rule.expr.trim().is_empty() {
        return Err("field 'expr' must be set in rule".into());
    }
    promql_parser::parser::parse(&rule.expr).map_err(|e| format!("could not parse expression: {e}"))?;
    for name in rule.labels.keys() {
        if !is_label_name(name) {
            return Err(format!("invalid label name: {name}"));
        }
    }
    match (&rule.record, &rule.alert) {
        (Some(_), Some(_)) => Err("only one of 'record' and 'alert' must be set".into()),
        (None, None) => Err("one of 'record' or 'alert' must be set".into()),
        (Some(record), None) => {
            if !is_metric_name(record) {
                return Err(format!("invalid recording rule name: {record}"));
            }
            if !rule.annotations.is_empty() {
                return Err("invalid field 'annotations' in recording rule".into());
            }
            if rule.for_.is_some() {
                return Err("invalid field 'for' in recording rule".into());
            }
            if rule.keep_firing_for.is_some() {
                return Err("invalid field 'keep_firing_for' in recording rule".into());
            }
            let mut labels = group_labels.clone();
            labels.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            Ok(LoadedRule::Recording(RecordingRule {
                name: record.clone(),
                expr: rule.expr.clone(),
                labels,
                previous: HashSet::new(),
            }))
        }
        (None, Some(alert)) => {
            if alert.is_empty() || !is_label_value_ok(alert) {
                return Err(format!("invalid alert name: {alert}"));
            }
            Ok(LoadedRule::Alerting)
        }
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_label_value_ok(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// Orders groups as `group_eval_order` says: listed groups by their position, the others first (they
/// count as position 0, as in promtool), keeping file order among equals.
pub(crate) fn order_groups(groups: &mut [LoadedGroup], order: &[String]) {
    groups.sort_by_key(|g| order.iter().position(|n| *n == g.name).unwrap_or(0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(is_metric_name("job:up:sum"));
        assert!(!is_metric_name("1abc"));
        assert!(!is_metric_name("a-b"));
        assert!(is_label_name("_x1"));
        assert!(!is_label_name("a:b"));
    }

    #[test]
    fn rules_are_validated() {
        let rule = |record: Option<&str>, alert: Option<&str>, expr: &str| RuleDef {
            record: record.map(str::to_owned),
            alert: alert.map(str::to_owned),
            expr: expr.to_owned(),
            for_: None,
            keep_firing_for: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        };
        let none = BTreeMap::new();
        assert!(validate_rule(&rule(Some("a:b"), None, "sum(x)"), &none).is_ok());
        assert!(validate_rule(&rule(None, Some("Down"), "up == 0"), &none).is_ok());
        let err = |r: RuleDef| validate_rule(&r, &none).err().unwrap_or_default();
        assert!(err(rule(Some("a"), Some("b"), "x")).contains("only one"));
        assert!(err(rule(None, None, "x")).contains("one of"));
        assert!(err(rule(Some("a"), None, "sum(")).contains("could not parse expression"));
        assert!(err(rule(Some("a-b"), None, "x")).contains("invalid recording rule name"));
        assert!(err(rule(Some("a"), None, "")).contains("'expr' must be set"));
    }
}
