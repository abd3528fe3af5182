//! Rule files in Prometheus's format, read and validated as `promtool check rules` does, every error
//! carrying the file and line it comes from.
//!
//! serde_yaml_ng reports positions for syntax errors only, so the lines of groups, rules and their
//! fields are found by a small scan of the block-style YAML text (the style every rule file in the
//! wild uses); for flow-style YAML the scan finds nothing and errors fall back to the group's or the
//! file's first line.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sightline_tsdb::promql::Engine;

use super::gofmt::parse_duration;
use super::template::Template;
use crate::model::LabelSet;

/// One problem in a rule file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line; 0 when the problem has no place in the file (it could not be read).
    pub line: usize,
    /// 1-based column; 0 when only the line is known.
    pub column: usize,
    /// `group "g", rule 2, "Name"` for a rule's problem; empty for a file's or group's.
    pub context: String,
    pub message: String,
}

/// `FILE:LINE:COLUMN: group "g", rule 1, "A": message`, the position first so editors can jump to it
/// (promtool prints `FILE: LINE:COLUMN: ...`, and only for some errors).
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        if !self.context.is_empty() {
            write!(f, ": {}", self.context)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// A validated rule group.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupDef {
    pub file: PathBuf,
    pub name: String,
    /// The group's own `interval` in milliseconds; `None` uses the global evaluation interval.
    pub interval_ms: Option<i64>,
    /// `query_offset`: rules query this long before the evaluation time (milliseconds).
    pub query_offset_ms: i64,
    /// The most series (recording) or alerts (alerting) a rule may produce; 0 = no limit.
    pub limit: u64,
    pub rules: Vec<RuleDef>,
    pub line: usize,
}

/// A validated rule.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleDef {
    /// The `alert` or `record` name.
    pub name: String,
    pub expr: String,
    /// The group's labels overlaid with the rule's own.
    pub labels: LabelSet,
    pub kind: RuleKind,
    /// The line of the rule's list item.
    pub line: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RuleKind {
    Recording,
    Alerting {
        /// `for`, milliseconds.
        hold_ms: i64,
        /// `keep_firing_for`, milliseconds.
        keep_firing_for_ms: i64,
        annotations: LabelSet,
    },
}

/// A YAML scalar read as text: rule files may write `limit: 10` or `expr: 1`.
#[derive(Clone, Debug, Default, PartialEq)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(i64),
            Float(f64),
            Bool(bool),
        }
        Ok(Scalar(match Raw::deserialize(deserializer)? {
            Raw::Text(s) => s,
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => f.to_string(),
            Raw::Bool(b) => b.to_string(),
        }))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    interval: Option<Scalar>,
    #[serde(default)]
    query_offset: Option<Scalar>,
    #[serde(default)]
    limit: u64,
    #[serde(default)]
    labels: BTreeMap<String, Scalar>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    record: Option<Scalar>,
    #[serde(default)]
    alert: Option<Scalar>,
    #[serde(default)]
    expr: Option<Scalar>,
    #[serde(default, rename = "for")]
    for_: Option<Scalar>,
    #[serde(default)]
    keep_firing_for: Option<Scalar>,
    #[serde(default)]
    labels: BTreeMap<String, Scalar>,
    #[serde(default)]
    annotations: BTreeMap<String, Scalar>,
}

/// Reads and validates rule files; all problems of all files are returned.
pub fn load_files(paths: &[PathBuf]) -> Result<Vec<GroupDef>, Vec<Diagnostic>> {
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match load_file(path) {
            Ok(g) => groups.extend(g),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() { Ok(groups) } else { Err(errors) }
}

/// Reads and validates one rule file.
pub fn load_file(path: &Path) -> Result<Vec<GroupDef>, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic {
            file: path.to_owned(),
            line: 0,
            column: 0,
            context: String::new(),
            message: format!("cannot read the rule file: {e}"),
        }]
    })?;
    parse_text(path, &text)
}

/// Validates rule-file text; `path` names it in errors.
pub fn parse_text(path: &Path, text: &str) -> Result<Vec<GroupDef>, Vec<Diagnostic>> {
    let raw: RawFile = if text.trim().is_empty() {
        RawFile { groups: Vec::new() }
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 0), |l| (l.line(), l.column()));
            let message = e.to_string();
            let message = match message.rfind(" at line ") {
                Some(i) if e.location().is_some() => message[..i].to_owned(),
                _ => message,
            };
            vec![Diagnostic { file: path.to_owned(), line, column, context: String::new(), message }]
        })?
    };
    let map = LineMap::new(text);
    let mut errors = Vec::new();
    let mut groups = Vec::new();
    let mut names = HashSet::new();
    let group_items = map.items_under(None, "groups");
    for (gi, g) in raw.groups.into_iter().enumerate() {
        let gline = group_items.get(gi).copied();
        let group_line = gline.map_or(1, |(l, _)| l + 1);
        let diag = |key: Option<&str>, context: String, message: String| {
            let (line, column) =
                key.and_then(|k| gline.and_then(|item| map.key_in_item(item, k))).unwrap_or((group_line, 0));
            Diagnostic { file: path.to_owned(), line, column, context, message }
        };
        if g.name.is_empty() {
            errors.push(diag(
                Some("name"),
                String::new(),
                "groupname must not be empty; give the group a name".into(),
            ));
            continue;
        }
        if !names.insert(g.name.clone()) {
            errors.push(diag(
                Some("name"),
                String::new(),
                format!("groupname: {:?} is repeated in the same file", g.name),
            ));
            continue;
        }
        let mut duration = |key: &str, v: &Option<Scalar>| -> Option<i64> {
            let v = v.as_ref()?;
            match parse_duration(&v.0) {
                Ok(ms) => Some(ms),
                Err(e) => {
                    errors.push(diag(Some(key), format!("group {:?}", g.name), format!("{key}: {e}")));
                    None
                }
            }
        };
        let interval_ms = duration("interval", &g.interval).filter(|ms| *ms > 0);
        let query_offset_ms = duration("query_offset", &g.query_offset).unwrap_or(0);
        let mut group_labels = LabelSet::new();
        for (k, v) in &g.labels {
            if !is_label_name(k) || k == "__name__" {
                errors.push(diag(
                    Some("labels"),
                    format!("group {:?}", g.name),
                    format!("invalid label name: {k}"),
                ));
            }
            group_labels.insert(k.clone(), v.0.clone());
        }
        let rule_items = gline.map(|item| map.items_under(Some(item), "rules")).unwrap_or_default();
        let mut rules = Vec::new();
        let mut seen: HashMap<(String, LabelSet), usize> = HashMap::new();
        for (ri, r) in g.rules.into_iter().enumerate() {
            let item = rule_items.get(ri).copied();
            let name = r.record.as_ref().or(r.alert.as_ref()).map(|s| s.0.clone()).unwrap_or_default();
            let context = format!("group {:?}, rule {}, {:?}", g.name, ri + 1, name);
            let at = |key: &str| -> (usize, usize) {
                item.and_then(|it| map.key_in_item(it, key))
                    .or_else(|| item.map(|(l, _)| (l + 1, 0)))
                    .unwrap_or((group_line, 0))
            };
            let before = errors.len();
            let mut err = |key: &str, message: String| {
                let (line, column) = at(key);
                errors.push(Diagnostic {
                    file: path.to_owned(),
                    line,
                    column,
                    context: context.clone(),
                    message,
                });
            };
            let rule = validate_rule(&r, &group_labels, &mut err);
            if errors.len() > before {
                continue;
            }
            let Some(rule) = rule else { continue };
            let line = at("").0;
            if let Some(first) = seen.insert((rule.name.clone(), rule.labels.clone()), ri + 1) {
                let (line, column) = at(if r.alert.is_some() { "alert" } else { "record" });
                errors.push(Diagnostic {
                    file: path.to_owned(),
                    line,
                    column,
                    context: context.clone(),
                    message: format!(
                        "duplicate rule: rule {first} of the group has the same name and labels; rename one or give them different labels"
                    ),
                });
                continue;
            }
            rules.push(RuleDef { line, ..rule });
        }
        groups.push(GroupDef {
            file: path.to_owned(),
            name: g.name,
            interval_ms,
            query_offset_ms,
            limit: g.limit,
            rules,
            line: group_line,
        });
    }
    if errors.is_empty() { Ok(groups) } else { Err(errors) }
}

/// Checks one rule as Prometheus's `rulefmt` does; problems go to `err(field, message)`.
fn validate_rule(r: &RawRule, group_labels: &LabelSet, err: &mut dyn FnMut(&str, String)) -> Option<RuleDef> {
    let expr = r.expr.as_ref().map(|s| s.0.clone()).unwrap_or_default();
    let (name, is_alert) = match (&r.record, &r.alert) {
        (Some(_), Some(_)) => {
            err("alert", "only one of 'record' and 'alert' must be set".into());
            return None;
        }
        (None, None) => {
            err("", "one of 'record' or 'alert' must be set".into());
            return None;
        }
        (Some(rec), None) => (rec.0.clone(), false),
        (None, Some(alert)) => (alert.0.clone(), true),
    };
    if expr.trim().is_empty() {
        err("expr", "field 'expr' must be set in rule".into());
    } else if let Err(e) = Engine::parse(&expr) {
        err("expr", format!("could not parse expression: {e}"));
    }
    let mut duration = |key: &str, v: &Option<Scalar>| -> i64 {
        match v.as_ref().map(|s| parse_duration(&s.0)) {
            Some(Ok(ms)) => ms,
            Some(Err(e)) => {
                err(key, format!("{key}: {e}"));
                0
            }
            None => 0,
        }
    };
    let hold_ms = duration("for", &r.for_);
    let keep_firing_for_ms = duration("keep_firing_for", &r.keep_firing_for);
    if is_alert {
        if name.is_empty() || name.chars().any(char::is_control) {
            err("alert", format!("invalid alert name: {name}"));
        }
    } else {
        if !is_metric_name(&name) {
            err("record", format!("invalid recording rule name: {name}"));
        }
        if !r.annotations.is_empty() {
            err("annotations", "invalid field 'annotations' in recording rule".into());
        }
        if r.for_.is_some() {
            err("for", "invalid field 'for' in recording rule".into());
        }
        if r.keep_firing_for.is_some() {
            err("keep_firing_for", "invalid field 'keep_firing_for' in recording rule".into());
        }
    }
    let template_name = format!("__alert_{name}");
    let mut labels = group_labels.clone();
    for (k, v) in &r.labels {
        if !is_label_name(k) || k == "__name__" {
            err(&format!("labels/{k}"), format!("invalid label name: {k}"));
        }
        if is_alert {
            if let Err(e) = Template::parse(&template_name, &v.0) {
                err(&format!("labels/{k}"), format!("label {k:?}: {e}"));
            }
        }
        labels.insert(k.clone(), v.0.clone());
    }
    let mut annotations = LabelSet::new();
    for (k, v) in &r.annotations {
        if !is_label_name(k) {
            err(&format!("annotations/{k}"), format!("invalid annotation name: {k}"));
        }
        if let Err(e) = Template::parse(&template_name, &v.0) {
            err(&format!("annotations/{k}"), format!("annotation {k:?}: {e}"));
        }
        annotations.insert(k.clone(), v.0.clone());
    }
    let kind = if is_alert {
        RuleKind::Alerting { hold_ms, keep_firing_for_ms, annotations }
    } else {
        RuleKind::Recording
    };
    Some(RuleDef { name, expr, labels, kind, line: 0 })
}

/// Checks files as `promtool check rules` does and returns every problem.
pub fn check_files(paths: &[PathBuf]) -> Vec<Diagnostic> {
    paths.iter().flat_map(|p| load_file(p).err().unwrap_or_default()).collect()
}

/// `sightline rules check FILE...`: promtool's report (`Checking FILE` and `  SUCCESS: N rules found`
/// on `out`, `  FAILED:` and the errors on `err`) and its exit code: 0 when every file is valid, 1
/// otherwise.
pub fn run_check(paths: &[PathBuf], out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<i32> {
    let mut code = 0;
    for path in paths {
        writeln!(out, "Checking {}", path.display())?;
        match load_file(path) {
            Ok(groups) => {
                let n: usize = groups.iter().map(|g| g.rules.len()).sum();
                writeln!(out, "  SUCCESS: {n} rules found")?;
            }
            Err(errors) => {
                code = 1;
                writeln!(err, "  FAILED:")?;
                for e in errors {
                    writeln!(err, "{e}")?;
                }
            }
        }
        writeln!(out)?;
    }
    out.flush()?;
    err.flush()?;
    Ok(code)
}

pub(crate) fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

pub(crate) fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The lines of a block-style YAML text, for locating list items and keys.
struct LineMap<'a> {
    lines: Vec<&'a str>,
}

/// A list item: its 0-based line and the column of its content (after `- `).
type Item = (usize, usize);

// === impl LineMap ===

impl<'a> LineMap<'a> {
    fn new(text: &'a str) -> Self {
        Self { lines: text.lines().collect() }
    }

    fn indent(line: &str) -> usize {
        line.len() - line.trim_start().len()
    }

    fn is_blank(line: &str) -> bool {
        let t = line.trim();
        t.is_empty() || t.starts_with('#')
    }

    /// The last line (exclusive) of the item starting at `item`.
    fn item_end(&self, item: Item) -> usize {
        let dash = item.1.saturating_sub(2);
        let mut i = item.0 + 1;
        while i < self.lines.len() {
            let l = self.lines[i];
            if !Self::is_blank(l) && Self::indent(l) <= dash {
                break;
            }
            i += 1;
        }
        i
    }

    /// The 0-based line of `key:` among the item's keys (any line of the item whose content starts at the
    /// item's content column), and the 1-based column of its value.
    fn key_in_item(&self, item: Item, key: &str) -> Option<(usize, usize)> {
        if key.is_empty() {
            return Some((item.0 + 1, item.1 + 1));
        }
        if let Some((parent, sub)) = key.split_once('/') {
            // A key of the block mapping under `parent` (`annotations/summary`): the first line at the
            // mapping's indentation that names it; the parent's position when not found.
            let (pline, pcol) = self.key_in_item(item, parent)?;
            let end = self.item_end(item);
            let mut inner = None;
            for i in pline..end {
                let l = self.lines[i];
                if Self::is_blank(l) {
                    continue;
                }
                let ind = Self::indent(l);
                if ind <= item.1 {
                    break;
                }
                let ind = *inner.get_or_insert(ind);
                if Self::indent(l) != ind {
                    continue;
                }
                let t = l.trim_start();
                let name = t.split(':').next().unwrap_or("").trim().trim_matches(|c| c == '"' || c == '\'');
                if name == sub {
                    return Some((i + 1, ind + 1));
                }
            }
            return Some((pline, pcol));
        }
        let end = self.item_end(item);
        (item.0..end).find_map(|i| {
            let l = self.lines[i];
            let start = if i == item.0 { item.1 } else { Self::indent(l) };
            if start != item.1 {
                return None;
            }
            let rest = l.get(start..)?;
            let after = rest.strip_prefix(key)?.strip_prefix(':')?;
            let pad = after.len() - after.trim_start().len();
            Some((i + 1, start + key.len() + 1 + pad + 1))
        })
    }

    /// The items of the list under `key` (at the top level, or among `parent`'s keys).
    fn items_under(&self, parent: Option<Item>, key: &str) -> Vec<Item> {
        let (from, to, col) = match parent {
            Some(item) => (item.0, self.item_end(item), item.1),
            None => (0, self.lines.len(), 0),
        };
        let Some(key_line) = (from..to).find(|&i| {
            let l = self.lines[i];
            let start = if Some(i) == parent.map(|p| p.0) { col } else { Self::indent(l) };
            start == col
                && l.get(start..)
                    .is_some_and(|r| r.starts_with(key) && r[key.len()..].trim_start().starts_with(':'))
        }) else {
            return Vec::new();
        };
        let key_indent =
            if Some(key_line) == parent.map(|p| p.0) { col } else { Self::indent(self.lines[key_line]) };
        let mut items = Vec::new();
        let mut dash: Option<usize> = None;
        for i in key_line + 1..to {
            let l = self.lines[i];
            if Self::is_blank(l) {
                continue;
            }
            let ind = Self::indent(l);
            let t = l.trim_start();
            let is_dash = t == "-" || t.starts_with("- ");
            match dash {
                None if is_dash && ind >= key_indent => dash = Some(ind),
                None => break,
                Some(_) => {}
            }
            let Some(d) = dash else { break };
            if ind < d || (ind == d && !is_dash) {
                break;
            }
            if ind == d && is_dash {
                let after = &t[1..];
                let content = d + 1 + (after.len() - after.trim_start().len());
                items.push((i, content));
            }
        }
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match parse_text(Path::new("r.yml"), text) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_valid_file_loads_with_lines() {
        let text = "groups:\n  - name: g\n    interval: 30s\n    labels:\n      team: a\n    rules:\n      - alert: A\n        expr: up == 0\n        for: 5m\n        labels:\n          severity: page\n        annotations:\n          summary: \"{{ $labels.job }} down\"\n      - record: job:up\n        expr: sum by (job) (up)\n";
        let groups = parse_text(Path::new("r.yml"), text).expect("valid");
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!((g.name.as_str(), g.interval_ms, g.line), ("g", Some(30_000), 2));
        assert_eq!(g.rules[0].line, 7);
        assert_eq!(g.rules[1].line, 14);
        assert_eq!(g.rules[0].labels.get("team").map(String::as_str), Some("a"));
        assert!(matches!(g.rules[0].kind, RuleKind::Alerting { hold_ms: 300_000, .. }));
    }

    #[test]
    fn errors_carry_file_and_line() {
        let text = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up ==\n      - record: \"a-b\"\n        expr: up\n      - alert: B\n        expr: up\n        for: 5x\n        annotations:\n          summary: \"{{ $value | nosuch }}\"\n  - name: g\n    rules: []\n";
        let e = errors(text);
        assert_eq!(
            e[0],
            "r.yml:5:15: group \"g\", rule 1, \"A\": could not parse expression: 1:6: parse error: unexpected end of input"
        );
        assert_eq!(e[1], "r.yml:6:17: group \"g\", rule 2, \"a-b\": invalid recording rule name: a-b");
        assert!(
            e[2].starts_with("r.yml:10:14: group \"g\", rule 3, \"B\": for: not a valid duration string"),
            "{}",
            e[2]
        );
        assert!(
            e[3].starts_with(
                "r.yml:12:11: group \"g\", rule 3, \"B\": annotation \"summary\": template: __alert_B:1:"
            ),
            "{}",
            e[3]
        );
        assert_eq!(e[4], "r.yml:13:11: groupname: \"g\" is repeated in the same file");
        assert_eq!(e.len(), 5);
    }

    #[test]
    fn rule_shape_errors() {
        let base = |rule: &str| format!("groups:\n- name: g\n  rules:\n  - {rule}\n");
        assert!(errors(&base("{record: a, alert: b, expr: up}"))[0].contains("only one of"));
        assert!(errors(&base("expr: up"))[0].contains("one of 'record' or 'alert' must be set"));
        assert!(errors(&base("record: a"))[0].contains("field 'expr' must be set"));
        let e = errors("groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n    for: 1m\n");
        assert_eq!(e, ["r.yml:6:10: group \"g\", rule 1, \"a\": invalid field 'for' in recording rule"]);
        let e = errors(
            "groups:\n- name: g\n  rules:\n  - alert: a\n    expr: up\n    labels:\n      __name__: x\n",
        );
        assert!(e[0].starts_with("r.yml:7:7: ") && e[0].contains("invalid label name: __name__"), "{e:?}");
        let e = errors(
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n  - alert: A\n    expr: up > 1\n",
        );
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("r.yml:6:12: group \"g\", rule 2, \"A\": duplicate rule"), "{e:?}");
        // The same alert name with different labels is a common pattern and allowed.
        assert!(errors("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels: {s: a}\n  - alert: A\n    expr: up\n    labels: {s: b}\n").is_empty());
    }

    #[test]
    fn yaml_errors_have_positions() {
        let e = errors("groups:\n- name: g\n  rulez: []\n");
        assert!(e[0].starts_with("r.yml:3:3: groups[0]: unknown field `rulez`"), "{e:?}");
        let e = errors("groups:\n  - name: [\n");
        assert!(e[0].starts_with("r.yml:"), "{e:?}");
    }
}
