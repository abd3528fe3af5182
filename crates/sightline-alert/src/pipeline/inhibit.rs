//! Inhibition: an alert matching a rule's `target_matchers` is muted while an alert matching its
//! `source_matchers` fires with the same values of the `equal` labels, as in Alertmanager.

use std::collections::HashMap;

use super::config::InhibitRule;
use super::matchers::Matchers;
use crate::{Fingerprint, LabelSet};

/// A rule with its matchers resolved.
#[derive(Clone, Debug)]
pub struct CompiledInhibitRule {
    pub source: Matchers,
    pub target: Matchers,
    pub equal: Vec<String>,
}

/// The firing source alerts of one rule, by their values of the `equal` labels.
type SourceIndex = HashMap<Vec<String>, Vec<Fingerprint>>;

/// An index of the firing source alerts of every rule, by their `equal` values, built once per flush.
#[derive(Debug, Default)]
pub struct Inhibitor {
    rules: Vec<(CompiledInhibitRule, SourceIndex)>,
}

// === impl CompiledInhibitRule ===

impl CompiledInhibitRule {
    pub fn from_config(rule: &InhibitRule) -> Self {
        Self { source: rule.source_matchers(), target: rule.target_matchers(), equal: rule.equal.clone() }
    }

    fn key(&self, labels: &LabelSet) -> Vec<String> {
        self.equal.iter().map(|name| labels.get(name).cloned().unwrap_or_default()).collect()
    }
}

// === impl Inhibitor ===

impl Inhibitor {
    /// Indexes the firing alerts that are sources of each rule.
    pub fn new<'a>(
        rules: &[CompiledInhibitRule],
        firing: impl Iterator<Item = (Fingerprint, &'a LabelSet)> + Clone,
    ) -> Self {
        let rules = rules
            .iter()
            .map(|rule| {
                let mut index = SourceIndex::new();
                for (fp, labels) in firing.clone() {
                    if rule.source.matches(labels) {
                        index.entry(rule.key(labels)).or_default().push(fp);
                    }
                }
                (rule.clone(), index)
            })
            .collect();
        Self { rules }
    }

    /// The firing alerts that inhibit `labels` (empty: not inhibited). An alert that matches both sides of
    /// a rule does not inhibit itself, as in Alertmanager.
    pub fn inhibited_by(&self, fingerprint: Fingerprint, labels: &LabelSet) -> Vec<Fingerprint> {
        let mut by = Vec::new();
        for (rule, index) in &self.rules {
            if !rule.target.matches(labels) {
                continue;
            }
            if let Some(sources) = index.get(&rule.key(labels)) {
                by.extend(sources.iter().copied().filter(|fp| *fp != fingerprint));
            }
        }
        by.sort_unstable();
        by.dedup();
        by
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::matchers::Matchers;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn equal_labels_and_no_self_inhibition() {
        let rule = CompiledInhibitRule {
            source: Matchers::parse(r#"severity=~"critical|warning""#).expect("source"),
            target: Matchers::parse(r#"severity="warning""#).expect("target"),
            equal: vec!["cluster".into()],
        };
        let crit = labels(&[("severity", "critical"), ("cluster", "eu")]);
        let warn_eu = labels(&[("severity", "warning"), ("cluster", "eu"), ("a", "1")]);
        let warn_us = labels(&[("severity", "warning"), ("cluster", "us")]);
        let firing = [(Fingerprint::of(&crit), &crit), (Fingerprint::of(&warn_us), &warn_us)];
        let inhibitor = Inhibitor::new(std::slice::from_ref(&rule), firing.iter().map(|(f, l)| (*f, *l)));
        assert_eq!(inhibitor.inhibited_by(Fingerprint::of(&warn_eu), &warn_eu), vec![Fingerprint::of(&crit)]);
        // The US warning matches both sides; it must not inhibit itself.
        assert!(inhibitor.inhibited_by(Fingerprint::of(&warn_us), &warn_us).is_empty());
        // A missing `equal` label counts as the empty value on both sides.
        let bare = labels(&[("severity", "warning")]);
        assert!(inhibitor.inhibited_by(Fingerprint::of(&bare), &bare).is_empty());
    }
}
