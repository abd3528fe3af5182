//! A small in-memory store for tests and for `sightline rules test`: a sorted map of series to samples,
//! behind a lock. Not for production data; `crate::storage::Db` is.

use std::collections::BTreeMap;
use std::sync::RwLock;

use promql_parser::label::Matcher;

use crate::labels::Labels;
use crate::sample::Sample;
use crate::traits::{
    AppendError, Appender, Querier, SelectHints, Series, SeriesRef, Storage, StorageError, matches_all,
};

/// An in-memory [`Storage`].
#[derive(Debug, Default)]
pub struct MemStorage {
    series: RwLock<BTreeMap<Labels, Vec<Sample>>>,
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds samples directly (test set-up), keeping each series sorted by time; a sample at an existing
    /// timestamp replaces it.
    pub fn add(&self, labels: Labels, samples: impl IntoIterator<Item = Sample>) {
        let mut map = self.series.write().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(labels).or_default();
        for s in samples {
            match entry.binary_search_by(|x| x.t.cmp(&s.t)) {
                Ok(i) => entry[i] = s,
                Err(i) => entry.insert(i, s),
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Labels, Vec<Sample>>> {
        self.series.read().unwrap_or_else(|e| e.into_inner())
    }

    fn matching(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<Series> {
        self.read()
            .iter()
            .filter(|(labels, _)| matches_all(matchers, labels))
            .filter_map(|(labels, samples)| {
                let from = samples.partition_point(|s| s.t < start);
                let to = samples.partition_point(|s| s.t <= end);
                (from < to).then(|| Series { labels: labels.clone(), samples: samples[from..to].to_vec() })
            })
            .collect()
    }
}

impl Querier for MemStorage {
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<Vec<Series>, StorageError> {
        Ok(self.matching(matchers, hints.start, hints.end))
    }

    fn series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Labels>, StorageError> {
        Ok(self.matching(matchers, start, end).into_iter().map(|s| s.labels).collect())
    }

    fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, StorageError> {
        let mut names: Vec<String> = self
            .matching(matchers, start, end)
            .iter()
            .flat_map(|s| s.labels.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, StorageError> {
        let mut values: Vec<String> = self
            .matching(matchers, start, end)
            .iter()
            .filter_map(|s| s.labels.get(name).map(str::to_owned))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}

impl Storage for MemStorage {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(MemAppender { store: self, pending: Vec::new() })
    }
}

struct MemAppender<'a> {
    store: &'a MemStorage,
    pending: Vec<(Labels, Sample)>,
}

impl Appender for MemAppender<'_> {
    fn append(
        &mut self,
        _series: SeriesRef,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<SeriesRef, AppendError> {
        if let Some(last) = self.store.read().get(labels).and_then(|s| s.last()) {
            if t < last.t {
                return Err(AppendError::OutOfOrder { labels: labels.to_string(), t, last: last.t });
            }
        }
        self.pending.push((labels.clone(), Sample::new(t, v)));
        Ok(0)
    }

    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        for (labels, sample) in self.pending {
            self.store.add(labels, [sample]);
        }
        Ok(())
    }

    fn rollback(self: Box<Self>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use promql_parser::label::MatchOp;

    #[test]
    fn select_filters_by_matchers_and_time() {
        let store = MemStorage::new();
        let a = Labels::from_pairs(&[("__name__", "up"), ("job", "a")]);
        let b = Labels::from_pairs(&[("__name__", "up"), ("job", "b")]);
        store.add(a.clone(), [Sample::new(1000, 1.0), Sample::new(2000, 2.0)]);
        store.add(b, [Sample::new(1000, 0.0)]);
        let m = [Matcher::new(MatchOp::Equal, "job", "a")];
        let got = store.select(&m, &SelectHints::range(1500, 3000)).expect("select");
        assert_eq!(got, vec![Series { labels: a, samples: vec![Sample::new(2000, 2.0)] }]);
        assert_eq!(store.label_values("job", &[], 0, 5000).expect("values"), ["a", "b"]);
    }

    #[test]
    fn appends_are_visible_after_commit_only() {
        let store = MemStorage::new();
        let l = Labels::from_pairs(&[("__name__", "x")]);
        let mut app = store.appender();
        app.append(0, &l, 10, 1.0).expect("append");
        assert!(store.series(&[], 0, 100).expect("series").is_empty());
        app.commit().expect("commit");
        assert_eq!(store.series(&[], 0, 100).expect("series"), vec![l.clone()]);
        let mut app = store.appender();
        assert!(matches!(app.append(0, &l, 5, 1.0), Err(AppendError::OutOfOrder { .. })));
        app.rollback();
    }
}
