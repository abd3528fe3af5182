//! Label sets: the identity of a series.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), value: value.into() }
    }
}

/// A set of labels, sorted by name, with unique names and no empty values (an empty value means "absent",
/// as in Prometheus).
///
/// The pairs are shared behind an `Arc`, so cloning a set (which every selection of a stored series
/// does) is a reference-count increment rather than one allocation per label; the mutating methods copy
/// only when the set is shared.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<Vec<Label>>);

impl Labels {
    /// The empty set.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Builds a set from pairs in any order. Empty values are dropped; for a repeated name the last pair wins.
    pub fn new(mut labels: Vec<Label>) -> Self {
        // A stable sort keeps repeated names in input order, so keeping the last of each run is "last wins".
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(labels.len());
        for label in labels {
            match out.last_mut() {
                Some(last) if last.name == label.name => *last = label,
                _ => out.push(label),
            }
        }
        out.retain(|l| !l.value.is_empty());
        Self(Arc::new(out))
    }

    /// Builds a set from `(name, value)` pairs.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> Self {
        Self::new(pairs.iter().map(|(n, v)| Label::new(n.as_ref(), v.as_ref())).collect())
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.binary_search_by(|l| l.name.as_str().cmp(name)).ok().map(|i| self.0[i].value.as_str())
    }

    /// The metric name (`__name__`), if set.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets `name` to `value` (removes it when `value` is empty).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                Arc::make_mut(&mut self.0).remove(i);
            }
            Ok(i) => Arc::make_mut(&mut self.0)[i].value = value,
            Err(_) if value.is_empty() => {}
            Err(i) => Arc::make_mut(&mut self.0).insert(i, Label::new(name, value)),
        }
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Arc::make_mut(&mut self.0).remove(i);
        }
    }

    /// A copy without the metric name.
    pub fn without_metric_name(&self) -> Self {
        let mut out = self.clone();
        out.remove(METRIC_NAME);
        out
    }

    /// A copy with only the given names.
    pub fn keep(&self, names: &[impl AsRef<str>]) -> Self {
        Self(Arc::new(
            self.0.iter().filter(|l| names.iter().any(|n| n.as_ref() == l.name)).cloned().collect(),
        ))
    }

    /// A copy without the given names.
    pub fn drop_names(&self, names: &[impl AsRef<str>]) -> Self {
        Self(Arc::new(
            self.0.iter().filter(|l| !names.iter().any(|n| n.as_ref() == l.name)).cloned().collect(),
        ))
    }

    /// A 64-bit hash that is stable across runs and builds (FNV-1a over names and values with separators),
    /// for persistence and fingerprints.
    pub fn stable_hash(&self) -> u64 {
        let mut h = Fnv64::default();
        for l in self.0.iter() {
            h.write(l.name.as_bytes());
            h.write(&[0xff]);
            h.write(l.value.as_bytes());
            h.write(&[0xff]);
        }
        h.finish()
    }

    pub fn into_vec(self) -> Vec<Label> {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| (*shared).clone())
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Prometheus's notation: `name{a="1", b="2"}`, or `{a="1"}` without a name.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            f.write_str(name)?;
        }
        let mut rest = self.0.iter().filter(|l| l.name != METRIC_NAME).peekable();
        if rest.peek().is_none() && self.metric_name().is_some() {
            return Ok(());
        }
        f.write_str("{")?;
        let mut first = true;
        for l in rest {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

/// FNV-1a, 64 bit: tiny, stable and good enough to spread label sets.
#[derive(Debug)]
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv64 {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Hashes with `foldhash` (several times faster than the std hasher on label texts); for in-memory use
/// only: the value is not stable across versions.
pub fn fast_hash(labels: &Labels) -> u64 {
    use std::hash::BuildHasher;
    const SEED: u64 = 0x9e37_79b9_7f4a_7c15;
    foldhash::fast::FixedState::with_seed(SEED).hash_one(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sorts_dedups_and_drops_empty_values() {
        let l = Labels::from_pairs(&[("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        assert_eq!(l.to_string(), r#"{a="1", b="3"}"#);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn display_matches_prometheus() {
        let l = Labels::from_pairs(&[("__name__", "up"), ("job", "node")]);
        assert_eq!(l.to_string(), r#"up{job="node"}"#);
        assert_eq!(Labels::from_pairs(&[("__name__", "up")]).to_string(), "up");
        assert_eq!(Labels::empty().to_string(), "{}");
    }

    #[test]
    fn set_and_remove_keep_order() {
        let mut l = Labels::from_pairs(&[("b", "2")]);
        l.set("a", "1");
        l.set("c", "3");
        l.set("b", "");
        assert_eq!(l.to_string(), r#"{a="1", c="3"}"#);
        assert_ne!(l.stable_hash(), Labels::empty().stable_hash());
    }
}
