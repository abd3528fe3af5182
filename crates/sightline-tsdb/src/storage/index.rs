//! The postings index: label name -> value -> sorted series ids.
//!
//! Matchers that do not match the empty string select the union of the postings of the values they match
//! (one map lookup for `=`, a scan of the name's values for regexes); matchers that match the empty string
//! (`!=`, `!~`, `=""`, `=~".*"`) remove the series whose value they reject. As in Prometheus, the
//! intersection starts from all series only when no matcher selects positively.

use std::collections::BTreeMap;

use promql_parser::label::{MatchOp, Matcher};

use crate::labels::Labels;

/// Postings for every label pair, and all ids. Ids are allocated increasing, so appends keep lists sorted.
#[derive(Debug, Default)]
pub(crate) struct Index {
    postings: BTreeMap<String, BTreeMap<String, Vec<u64>>>,
    all: Vec<u64>,
}

impl Index {
    pub fn add(&mut self, id: u64, labels: &Labels) {
        insert_sorted(&mut self.all, id);
        for l in labels {
            // Most names and many values exist already: look them up before copying them for a new entry.
            let values = match self.postings.get_mut(&l.name) {
                Some(values) => values,
                None => self.postings.entry(l.name.clone()).or_default(),
            };
            match values.get_mut(&l.value) {
                Some(list) => insert_sorted(list, id),
                None => {
                    values.insert(l.value.clone(), vec![id]);
                }
            }
        }
    }

    pub fn remove(&mut self, id: u64, labels: &Labels) {
        remove_sorted(&mut self.all, id);
        for l in labels {
            if let Some(values) = self.postings.get_mut(&l.name) {
                if let Some(list) = values.get_mut(&l.value) {
                    remove_sorted(list, id);
                    if list.is_empty() {
                        values.remove(&l.value);
                    }
                }
                if values.is_empty() {
                    self.postings.remove(&l.name);
                }
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Label names in use, sorted.
    #[cfg(test)]
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.postings.keys().map(String::as_str)
    }

    /// Values of `name` with their postings, sorted by value.
    pub fn values(&self, name: &str) -> impl Iterator<Item = (&str, &[u64])> {
        self.postings
            .get(name)
            .into_iter()
            .flat_map(|m| m.iter().map(|(v, ids)| (v.as_str(), ids.as_slice())))
    }

    /// Sorted ids of the series matching every matcher.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<u64> {
        let mut positive: Vec<Vec<u64>> = Vec::new();
        let mut negative: Vec<&Matcher> = Vec::new();
        for m in matchers {
            if m.is_match("") {
                negative.push(m);
            } else {
                positive.push(self.matching_postings(m));
            }
        }
        // Intersect the smallest lists first.
        positive.sort_by_key(Vec::len);
        let mut result: Vec<u64> = match positive.split_first() {
            Some((first, rest)) => {
                let mut acc = first.clone();
                for list in rest {
                    if acc.is_empty() {
                        break;
                    }
                    acc = intersect(&acc, list);
                }
                acc
            }
            None => self.all.clone(),
        };
        for m in negative {
            if result.is_empty() {
                break;
            }
            // Series whose value the matcher rejects (a missing label is "" and is accepted).
            let rejected = self.postings_where(&m.name, |v| !m.is_match(v));
            if !rejected.is_empty() {
                result = subtract(&result, &rejected);
            }
        }
        result
    }

    fn matching_postings(&self, m: &Matcher) -> Vec<u64> {
        match &m.op {
            MatchOp::Equal => self
                .postings
                .get(&m.name)
                .and_then(|values| values.get(&m.value))
                .cloned()
                .unwrap_or_default(),
            _ => self.postings_where(&m.name, |v| m.is_match(v)),
        }
    }

    /// The union of the postings of `name`'s values that pass `keep`.
    fn postings_where(&self, name: &str, keep: impl Fn(&str) -> bool) -> Vec<u64> {
        let Some(values) = self.postings.get(name) else {
            return Vec::new();
        };
        let lists: Vec<&Vec<u64>> = values.iter().filter(|(v, _)| keep(v)).map(|(_, ids)| ids).collect();
        match lists.as_slice() {
            [] => Vec::new(),
            [one] => (*one).clone(),
            many => {
                let mut out: Vec<u64> = many.iter().flat_map(|l| l.iter().copied()).collect();
                out.sort_unstable();
                out.dedup();
                out
            }
        }
    }
}

fn insert_sorted(list: &mut Vec<u64>, id: u64) {
    match list.last() {
        Some(&last) if last < id => list.push(id),
        None => list.push(id),
        _ => {
            if let Err(i) = list.binary_search(&id) {
                list.insert(i, id);
            }
        }
    }
}

fn remove_sorted(list: &mut Vec<u64>, id: u64) {
    if let Ok(i) = list.binary_search(&id) {
        list.remove(i);
    }
}

fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    // Galloping would help for very skewed sizes; a merge is linear and enough for scrape-shaped data.
    let (mut i, mut j) = (0, 0);
    while i < small.len() && j < large.len() {
        match small[i].cmp(&large[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(small[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn subtract(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j >= b.len() || b[j] != x {
            out.push(x);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Index {
        let mut idx = Index::default();
        idx.add(1, &Labels::from_pairs(&[("__name__", "up"), ("job", "a")]));
        idx.add(2, &Labels::from_pairs(&[("__name__", "up"), ("job", "b")]));
        idx.add(3, &Labels::from_pairs(&[("__name__", "up")]));
        idx.add(4, &Labels::from_pairs(&[("__name__", "other"), ("job", "a")]));
        idx
    }

    fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
        Matcher::new(op, name, value)
    }

    #[test]
    fn equality_and_negation_follow_prometheus() {
        let idx = index();
        assert_eq!(idx.select(&[m(MatchOp::Equal, "__name__", "up")]), [1, 2, 3]);
        assert_eq!(idx.select(&[m(MatchOp::Equal, "__name__", "up"), m(MatchOp::Equal, "job", "a")]), [1]);
        assert_eq!(
            idx.select(&[m(MatchOp::Equal, "__name__", "up"), m(MatchOp::NotEqual, "job", "a")]),
            [2, 3]
        );
        assert_eq!(idx.select(&[m(MatchOp::Equal, "__name__", "up"), m(MatchOp::Equal, "job", "")]), [3]);
        assert_eq!(idx.select(&[m(MatchOp::NotEqual, "job", "b")]), [1, 3, 4]);
        assert!(idx.select(&[m(MatchOp::Equal, "job", "zzz")]).is_empty());
    }

    #[test]
    fn regexes_scan_values() {
        let idx = index();
        let re = Matcher::new_matcher(promql_parser::parser::token::T_EQL_REGEX, "job".into(), "a|b".into())
            .expect("regex");
        assert_eq!(idx.select(&[re]), [1, 2, 4]);
        let not_re =
            Matcher::new_matcher(promql_parser::parser::token::T_NEQ_REGEX, "job".into(), "a".into())
                .expect("regex");
        assert_eq!(idx.select(&[m(MatchOp::Equal, "__name__", "up"), not_re]), [2, 3]);
    }

    #[test]
    fn remove_cleans_up() {
        let mut idx = index();
        idx.remove(4, &Labels::from_pairs(&[("__name__", "other"), ("job", "a")]));
        assert_eq!(idx.names().collect::<Vec<_>>(), ["__name__", "job"]);
        assert_eq!(idx.values("__name__").map(|(v, _)| v).collect::<Vec<_>>(), ["up"]);
        assert_eq!(idx.len(), 3);
    }
}
