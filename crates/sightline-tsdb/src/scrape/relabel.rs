//! Prometheus relabelling (`relabel_configs` for targets, `metric_relabel_configs` for scraped series),
//! with Prometheus's field names, defaults and rules: regexes are anchored at both ends, `$1` and `${name}`
//! in `replacement` and `target_label` refer to capture groups.

use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::labels::{Label, Labels};
use crate::scrape::config::is_valid_label_name;

/// What a relabel rule does. Names are read in any case (`Replace`, `labelmap`), as Prometheus reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    /// Sets `target_label` to `replacement` (with capture groups) when `regex` matches the source value.
    #[default]
    Replace,
    /// Keeps the series or target only when `regex` matches.
    Keep,
    /// Drops the series or target when `regex` matches.
    Drop,
    /// Keeps it only when the source value equals `target_label`'s value.
    KeepEqual,
    /// Drops it when the source value equals `target_label`'s value.
    DropEqual,
    /// Sets `target_label` to the lowercased source value.
    Lowercase,
    /// Sets `target_label` to the uppercased source value.
    Uppercase,
    /// Copies each label whose name matches `regex` to the name `replacement` gives.
    LabelMap,
    /// Removes labels whose names match `regex`.
    LabelDrop,
    /// Removes labels whose names do not match `regex`.
    LabelKeep,
    /// Sets `target_label` to the MD5 of the source value modulo `modulus`, for sharding targets.
    HashMod,
}

// === impl Action ===

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(match name.to_ascii_lowercase().as_str() {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "hashmod" => Action::HashMod,
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "unknown relabel action {name:?}; use replace, keep, drop, keepequal, dropequal, lowercase, \
                     uppercase, labelmap, labeldrop or labelkeep"
                )));
            }
        })
    }
}

/// A regex anchored at both ends, as Prometheus compiles `regex` fields.
#[derive(Clone)]
pub struct AnchoredRegex {
    source: String,
    regex: regex::Regex,
}

// === impl AnchoredRegex ===

impl AnchoredRegex {
    /// Compiles `source` as `^(?s:source)$`.
    pub fn new(source: &str) -> Result<Self, String> {
        regex::Regex::new(&format!("^(?s:{source})$"))
            .map(|regex| Self { source: source.to_owned(), regex })
            .map_err(|e| format!("invalid regex {source:?}: {e}"))
    }
}

impl Default for AnchoredRegex {
    fn default() -> Self {
        // The default pattern always compiles; a failure here would be a bug in this line.
        Self {
            source: "(.*)".into(),
            regex: regex::Regex::new("^(?s:(.*))$").unwrap_or_else(|_| unreachable!()),
        }
    }
}

impl fmt::Debug for AnchoredRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl PartialEq for AnchoredRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for AnchoredRegex {}

impl<'de> Deserialize<'de> for AnchoredRegex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Self::new(&source).map_err(serde::de::Error::custom)
    }
}

fn default_separator() -> String {
    ";".into()
}

fn default_replacement() -> String {
    "$1".into()
}

/// One relabel rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    #[serde(default)]
    pub source_labels: Vec<String>,
    #[serde(default = "default_separator")]
    pub separator: String,
    #[serde(default)]
    pub regex: AnchoredRegex,
    #[serde(default)]
    pub modulus: u64,
    #[serde(default)]
    pub target_label: String,
    #[serde(default = "default_replacement")]
    pub replacement: String,
    #[serde(default)]
    pub action: Action,
}

// === impl RelabelConfig ===

impl RelabelConfig {
    /// Checks the rule as Prometheus does; the error says what to change.
    pub fn validate(&self) -> Result<(), String> {
        let needs_target = matches!(
            self.action,
            Action::Replace
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
                | Action::HashMod
        );
        if needs_target && self.target_label.is_empty() {
            return Err(format!("the {:?} action needs a target_label", self.action));
        }
        match self.action {
            Action::HashMod if self.modulus == 0 => {
                return Err("the hashmod action needs a modulus greater than zero".into());
            }
            Action::Replace
                if !self.target_label.contains('$') && !is_valid_label_name(&self.target_label) =>
            {
                return Err(format!("target_label {:?} is not a valid label name", self.target_label));
            }
            Action::Lowercase
            | Action::Uppercase
            | Action::KeepEqual
            | Action::DropEqual
            | Action::HashMod
                if !is_valid_label_name(&self.target_label) =>
            {
                return Err(format!("target_label {:?} is not a valid label name", self.target_label));
            }
            Action::Lowercase | Action::Uppercase if self.replacement != "$1" => {
                return Err(format!("the {:?} action takes no replacement", self.action));
            }
            Action::LabelDrop | Action::LabelKeep
                if !self.source_labels.is_empty()
                    || !self.target_label.is_empty()
                    || self.replacement != "$1" =>
            {
                return Err(format!(
                    "the {:?} action takes only a regex (no source_labels, target_label or replacement)",
                    self.action
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// Applies the rule to `labels`; returns `false` when the series or target is dropped.
    fn apply(&self, labels: &mut Vec<Label>) -> bool {
        let get = |labels: &Vec<Label>, name: &str| {
            labels.iter().find(|l| l.name == name).map_or(String::new(), |l| l.value.clone())
        };
        let value =
            self.source_labels.iter().map(|n| get(labels, n)).collect::<Vec<_>>().join(&self.separator);
        match self.action {
            Action::Drop => return !self.regex.regex.is_match(&value),
            Action::Keep => return self.regex.regex.is_match(&value),
            Action::DropEqual => return get(labels, &self.target_label) != value,
            Action::KeepEqual => return get(labels, &self.target_label) == value,
            Action::Replace => {
                if let Some(captures) = self.regex.regex.captures(&value) {
                    let mut target = String::new();
                    captures.expand(&self.target_label, &mut target);
                    if is_valid_label_name(&target) {
                        let mut replacement = String::new();
                        captures.expand(&self.replacement, &mut replacement);
                        set(labels, &target, replacement);
                    }
                }
            }
            Action::Lowercase => set(labels, &self.target_label, value.to_lowercase()),
            Action::Uppercase => set(labels, &self.target_label, value.to_uppercase()),
            Action::LabelMap => {
                let mapped: Vec<(String, String)> = labels
                    .iter()
                    .filter(|l| self.regex.regex.is_match(&l.name))
                    .map(|l| {
                        (
                            self.regex.regex.replace(&l.name, self.replacement.as_str()).into_owned(),
                            l.value.clone(),
                        )
                    })
                    .collect();
                for (name, value) in mapped {
                    set(labels, &name, value);
                }
            }
            Action::LabelDrop => labels.retain(|l| !self.regex.regex.is_match(&l.name)),
            Action::LabelKeep => labels.retain(|l| self.regex.regex.is_match(&l.name)),
            Action::HashMod => {
                use md5::Digest;
                // The last 8 bytes of the MD5, big-endian, as Prometheus computes it, so that shards agree.
                let hash = md5::Md5::digest(value.as_bytes());
                let mut tail = [0u8; 8];
                tail.copy_from_slice(&hash[8..]);
                let modulus = self.modulus.max(1);
                set(labels, &self.target_label, (u64::from_be_bytes(tail) % modulus).to_string());
            }
        }
        true
    }
}

/// Sets `name` to `value` in an unsorted label list (an empty value removes it).
fn set(labels: &mut Vec<Label>, name: &str, value: String) {
    labels.retain(|l| l.name != name);
    if !value.is_empty() {
        labels.push(Label::new(name, value));
    }
}

/// Applies `rules` in order; `None` when one drops the set or nothing is left.
pub(crate) fn process(labels: Labels, rules: &[RelabelConfig]) -> Option<Labels> {
    if rules.is_empty() {
        return Some(labels);
    }
    let mut list: Vec<Label> = labels.into_vec();
    for rule in rules {
        if !rule.apply(&mut list) {
            return None;
        }
    }
    let out = Labels::new(list);
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> Vec<RelabelConfig> {
        let rules: Vec<RelabelConfig> = serde_yaml_ng::from_str(yaml).expect("parses");
        for rule in &rules {
            rule.validate().expect("valid");
        }
        rules
    }

    fn labels() -> Labels {
        Labels::from_pairs(&[("__name__", "http_requests_total"), ("path", "/api/v1"), ("code", "200")])
    }

    #[test]
    fn replace_with_capture_groups_and_defaults() {
        let r = rules(
            "- source_labels: [__name__, code]\n  regex: 'http_(.*)_total;(\\d)\\d\\d'\n  target_label: kind\n  replacement: '${1}_${2}xx'\n\
             - source_labels: [path]\n  target_label: copy\n",
        );
        let out = process(labels(), &r).expect("kept");
        assert_eq!(out.get("kind"), Some("requests_2xx"));
        assert_eq!(out.get("copy"), Some("/api/v1"));
        // The regex is anchored: a partial match does nothing.
        let partial = rules("- source_labels: [path]\n  regex: api\n  target_label: x\n");
        assert_eq!(process(labels(), &partial).expect("kept").get("x"), None);
    }

    #[test]
    fn keep_drop_and_equality() {
        assert!(
            process(labels(), &rules("- source_labels: [code]\n  regex: '5..'\n  action: keep\n")).is_none()
        );
        assert!(
            process(labels(), &rules("- source_labels: [code]\n  regex: '2..'\n  action: drop\n")).is_none()
        );
        assert!(
            process(labels(), &rules("- source_labels: [code]\n  regex: '5..'\n  action: drop\n")).is_some()
        );
        let eq = rules("- source_labels: [code]\n  target_label: code\n  action: keepequal\n");
        assert!(process(labels(), &eq).is_some());
        let ne = rules("- source_labels: [path]\n  target_label: code\n  action: keepequal\n");
        assert!(process(labels(), &ne).is_none());
    }

    #[test]
    fn label_actions() {
        let map = rules("- regex: 'p(.*)'\n  replacement: 'renamed_p$1'\n  action: labelmap\n");
        assert_eq!(process(labels(), &map).expect("kept").get("renamed_path"), Some("/api/v1"));
        let drop = rules("- regex: code\n  action: labeldrop\n");
        assert_eq!(process(labels(), &drop).expect("kept").get("code"), None);
        let keep = rules("- regex: '__name__|code'\n  action: labelkeep\n");
        assert_eq!(process(labels(), &keep).expect("kept").len(), 2);
        let upper = rules("- source_labels: [path]\n  target_label: loud\n  action: uppercase\n");
        assert_eq!(process(labels(), &upper).expect("kept").get("loud"), Some("/API/V1"));
        // An empty replacement removes the target label.
        let remove = rules("- target_label: code\n  replacement: ''\n");
        assert_eq!(process(labels(), &remove).expect("kept").get("code"), None);
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // Expected values from Python's hashlib: int.from_bytes(md5(v).digest()[8:], "big") % 1000.
        let r = rules("- source_labels: [a, b]\n  target_label: shard\n  modulus: 1000\n  action: hashmod\n");
        let out = process(Labels::from_pairs(&[("a", "a"), ("b", "b")]), &r).expect("kept");
        assert_eq!(out.get("shard"), Some("74"));
        let r = rules(
            "- source_labels: [__address__]\n  target_label: shard\n  modulus: 1000\n  action: hashmod\n",
        );
        let out = process(Labels::from_pairs(&[("__address__", "example.org:443")]), &r).expect("kept");
        assert_eq!(out.get("shard"), Some("503"));
    }

    #[test]
    fn bad_rules_are_refused() {
        for (yaml, needle) in [
            ("- action: replace\n", "needs a target_label"),
            ("- target_label: '1bad'\n", "not a valid label name"),
            ("- target_label: x\n  action: lowercase\n  replacement: y\n", "takes no replacement"),
            ("- source_labels: [a]\n  action: labeldrop\n", "takes only a regex"),
            ("- target_label: x\n  action: hashmod\n", "modulus greater than zero"),
        ] {
            let rule: Vec<RelabelConfig> = serde_yaml_ng::from_str(yaml).expect("parses");
            let e = rule[0].validate().expect_err(yaml);
            assert!(e.contains(needle), "{yaml}: {e}");
        }
        assert!(serde_yaml_ng::from_str::<Vec<RelabelConfig>>("- regex: '('\n").is_err());
        let e = serde_yaml_ng::from_str::<Vec<RelabelConfig>>("- action: explode\n").expect_err("unknown");
        assert!(e.to_string().contains("unknown relabel action \"explode\""), "{e}");
        let upper: Vec<RelabelConfig> =
            serde_yaml_ng::from_str("- action: LabelDrop\n  regex: x\n").expect("any case");
        assert_eq!(upper[0].action, Action::LabelDrop);
    }
}
