//! One target's ingestion state: the scrape cache, staleness tracking and the report series. Network-free,
//! so that tests and the bench drive it with bodies directly.

use std::collections::HashMap;
use std::time::Duration;

use crate::labels::{Label, Labels, METRIC_NAME};
use crate::sample::stale_nan;
use crate::scrape::config::PromDuration;
use crate::scrape::parse::{Entry, Format, ParseError, Parser};
use crate::scrape::relabel::{self, RelabelConfig};
use crate::traits::{AppendError, Appender, SeriesRef, Storage, StorageError};

/// Cache entries not seen for this many scrapes are dropped.
const CACHE_EVICT_AFTER: u64 = 10;

/// Why a scrape failed. The target's `up` is 0 and its status shows this message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScrapeError {
    #[error("timed out after {timeout} (scrape_timeout); the target did not answer in time")]
    Timeout { timeout: PromDuration },
    #[error("request failed: {message}")]
    Request { message: String },
    #[error("server returned HTTP status {status}")]
    Status { status: String },
    #[error(
        "unsupported Content-Type {content_type:?}; the target must serve the Prometheus text format \
         (text/plain) or OpenMetrics (application/openmetrics-text)"
    )]
    ContentType { content_type: String },
    #[error(
        "the body is larger than body_size_limit ({limit} bytes); raise body_size_limit or shrink the target's output"
    )]
    BodyTooLarge { limit: u64 },
    #[error("invalid exposition: {0}")]
    Parse(#[from] ParseError),
    #[error(
        "sample_limit exceeded: {scraped} samples, limit {limit}; raise sample_limit or reduce the target's series"
    )]
    SampleLimit { scraped: usize, limit: usize },
    #[error("label_limit exceeded: {series} has {count} labels, limit {limit}")]
    LabelLimit { series: String, count: usize, limit: usize },
    #[error("{what} length limit exceeded: {series} has a label {what} of {length} bytes, limit {limit}")]
    LabelLength { series: String, what: &'static str, length: usize, limit: usize },
    #[error("metric_relabel_configs left {series} without a metric name; keep __name__ or drop the series")]
    NoMetricName { series: String },
    #[error("cannot read {field} file {path}: {reason}")]
    Credentials { field: &'static str, path: String, reason: String },
    #[error("the store refused the scrape: {message}")]
    Storage { message: String },
}

// === impl ScrapeError ===

impl From<StorageError> for ScrapeError {
    fn from(e: StorageError) -> Self {
        ScrapeError::Storage { message: e.to_string() }
    }
}

/// Limits and label handling of one target's scrapes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoopOptions {
    /// `metric_relabel_configs`: applied to each new series' labels; a dropped series is cached as
    /// dropped and never appended.
    pub metric_relabel: Vec<RelabelConfig>,
    /// Scraped labels win over target labels (`true`), or are kept as `exported_<name>`.
    pub honor_labels: bool,
    /// Use the target's timestamps rather than the scrape time.
    pub honor_timestamps: bool,
    /// More samples than this fails the scrape (0: no limit).
    pub sample_limit: usize,
    /// More labels (including `__name__`, `job`, `instance`) than this on one series fails the scrape.
    pub label_limit: usize,
    /// A longer label name fails the scrape (0: no limit).
    pub label_name_length_limit: usize,
    /// A longer label value fails the scrape (0: no limit).
    pub label_value_length_limit: usize,
}

/// What one successful scrape did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrapeStats {
    /// Samples in the body.
    pub samples: usize,
    /// Series new to the cache.
    pub series_added: usize,
    /// Samples kept after `metric_relabel_configs`.
    pub samples_post_relabel: usize,
    /// Staleness markers written for series that disappeared.
    pub stale_markers: usize,
    /// Samples the store turned down (out of order, duplicate, too old); the rest were kept.
    pub append_errors: usize,
}

#[derive(Debug, Default)]
struct CacheEntry {
    sref: SeriesRef,
    labels: Labels,
    /// The iteration that last appended this series, and the one before it.
    seen: u64,
    prev_seen: u64,
    /// The series' last sample carried its own timestamp: no staleness markers for it, as in Prometheus.
    explicit_ts: bool,
    /// `metric_relabel_configs` dropped the series: its samples are skipped.
    dropped: bool,
}

/// The report series of a target.
const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// A target's report series (`up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
/// `scrape_samples_post_metric_relabeling`, `scrape_series_added`, in that order) with their store
/// references. Shared by scrape loops and the local collector, which reports like a scrape of itself.
#[derive(Debug, Clone)]
pub(crate) struct ReportSeries(Vec<(Labels, SeriesRef)>);

// === impl ReportSeries ===

impl ReportSeries {
    pub fn new(target: &Labels) -> Self {
        Self(
            REPORT_NAMES
                .iter()
                .map(|name| {
                    let mut labels = target.clone();
                    labels.set(METRIC_NAME, *name);
                    (labels, 0)
                })
                .collect(),
        )
    }

    /// Appends one value per report series at `t`; returns how many the store refused.
    pub fn append(&mut self, app: &mut dyn Appender, t: i64, values: [f64; 5]) -> usize {
        let mut errors = 0;
        for ((labels, sref), value) in self.0.iter_mut().zip(values) {
            match app.append(*sref, labels, t, value) {
                Ok(r) => *sref = r,
                Err(_) => errors += 1,
            }
        }
        errors
    }

    /// Forgets the store references, after a batch that handed them out was not committed.
    pub fn forget(&mut self) {
        for (_, sref) in &mut self.0 {
            *sref = 0;
        }
    }
}

/// One target's scrape state. [`ScrapeLoop::append_scrape`] turns a fetched body (or a failed fetch) into
/// one batch of appends: the samples, staleness markers for series that went away, and the report series
/// (`up`, `scrape_duration_seconds`, ...).
///
/// The scrape cache maps each series' text as the target wrote it to its labels and store reference, so a
/// steady-state scrape neither parses label sets nor looks series up by labels.
#[derive(Debug)]
pub struct ScrapeLoop {
    target: Labels,
    options: LoopOptions,
    index: HashMap<Box<[u8]>, usize, foldhash::fast::RandomState>,
    entries: Vec<CacheEntry>,
    iter: u64,
    /// The iteration whose series are live (written and not yet marked stale), 0 for none.
    live: u64,
    report: ReportSeries,
    last_t: i64,
    scratch: Vec<Label>,
}

// === impl ScrapeLoop ===

impl ScrapeLoop {
    /// A loop for a target with these labels (`job`, `instance` and static labels).
    pub fn new(target: Labels, options: LoopOptions) -> Self {
        let report = ReportSeries::new(&target);
        Self {
            target,
            options,
            index: HashMap::default(),
            entries: Vec::new(),
            iter: 0,
            live: 0,
            report,
            last_t: i64::MIN,
            scratch: Vec::new(),
        }
    }

    /// The target's labels.
    pub fn target_labels(&self) -> &Labels {
        &self.target
    }

    /// Appends one scrape at `t` (milliseconds) in one batch. `fetched` is the body and its format, or
    /// why it could not be fetched; `elapsed` is how long the fetch took (parsing and appending are added).
    /// Returns the stats when the target is up, or the reason it is down (`up` 0 was written either way,
    /// with staleness markers for every series of the last good scrape).
    pub fn append_scrape(
        &mut self,
        storage: &dyn Storage,
        t: i64,
        fetched: Result<(&[u8], Format), ScrapeError>,
        elapsed: Duration,
    ) -> Result<ScrapeStats, ScrapeError> {
        let started = std::time::Instant::now();
        let t = self.next_time(t);
        self.iter += 1;
        let mut app = storage.appender();
        let mut samples = 0;
        let result = match fetched {
            Ok((body, format)) => self.append_body(&mut *app, body, format, t, &mut samples),
            Err(e) => Err(e),
        };
        let (up, stats, error) = match result {
            Ok(mut stats) => {
                stats.stale_markers = self.mark_stale(&mut *app, t, |e, live, _| e.seen == live);
                self.live = self.iter;
                (1.0, stats, None)
            }
            Err(e) => {
                app.rollback();
                app = storage.appender();
                let iter = self.iter;
                // Series of the last good scrape, including those this failed scrape had touched.
                let stale = self.mark_stale(&mut *app, t, |e, live, _| {
                    e.seen == live || (e.seen == iter && e.prev_seen == live)
                });
                self.undo_iteration();
                self.live = 0;
                let stats = ScrapeStats {
                    samples,
                    samples_post_relabel: samples,
                    stale_markers: stale,
                    ..ScrapeStats::default()
                };
                (0.0, stats, Some(e))
            }
        };
        let duration = (elapsed + started.elapsed()).as_secs_f64();
        let values = [
            up,
            duration,
            stats.samples as f64,
            stats.samples_post_relabel as f64,
            stats.series_added as f64,
        ];
        let report_errors = self.append_report(&mut *app, t, values);
        if let Err(e) = app.commit() {
            // Nothing of this batch is stored: references it handed out are void, and no series is live.
            for entry in &mut self.entries {
                entry.sref = 0;
            }
            self.report.forget();
            self.live = 0;
            return Err(e.into());
        }
        self.evict();
        match error {
            Some(e) => Err(e),
            None => Ok(ScrapeStats { append_errors: stats.append_errors + report_errors, ..stats }),
        }
    }

    /// Writes staleness markers for every live series and the report series: the target is gone. Returns
    /// the number of markers.
    pub fn append_end_of_run(&mut self, storage: &dyn Storage, t: i64) -> Result<usize, StorageError> {
        let t = self.next_time(t);
        let mut app = storage.appender();
        let mut count =
            if self.live != 0 { self.mark_stale(&mut *app, t, |e, live, _| e.seen == live) } else { 0 };
        self.live = 0;
        count += REPORT_NAMES.len();
        self.append_report(&mut *app, t, [stale_nan(); 5]);
        app.commit()?;
        Ok(count)
    }

    /// A scrape time after the previous one, so that a clock step never makes our own appends out of order.
    fn next_time(&mut self, t: i64) -> i64 {
        let t = if t <= self.last_t { self.last_t.saturating_add(1) } else { t };
        self.last_t = t;
        t
    }

    fn append_body(
        &mut self,
        app: &mut dyn Appender,
        body: &[u8],
        format: Format,
        t: i64,
        samples: &mut usize,
    ) -> Result<ScrapeStats, ScrapeError> {
        let mut parser = Parser::new(body, format)?;
        if self.entries.is_empty() {
            // A first scrape: size the cache from the body (series lines run at 50-100 bytes) rather than
            // growing and rehashing it a dozen times.
            let estimate = body.len() / 80;
            self.index.reserve(estimate);
            self.entries.reserve(estimate);
        }
        let mut stats = ScrapeStats::default();
        let iter = self.iter;
        let limit = self.options.sample_limit;
        while let Some(entry) = parser.next()? {
            let Entry::Sample(sample) = entry else { continue };
            *samples += 1;
            stats.samples += 1;
            if limit > 0 && stats.samples_post_relabel >= limit {
                // Over the limit: keep parsing to count (and check) the whole body; nothing more is
                // appended and the scrape fails below.
                stats.samples_post_relabel += 1;
                continue;
            }
            let index = match self.index.get(sample.series) {
                Some(index) => *index,
                None => {
                    let (labels, dropped) = match self.new_series_labels(&parser)? {
                        Some(labels) => (labels, false),
                        None => (Labels::empty(), true),
                    };
                    stats.series_added += usize::from(!dropped);
                    self.entries.push(CacheEntry { labels, dropped, ..CacheEntry::default() });
                    self.index.insert(Box::from(sample.series), self.entries.len() - 1);
                    self.entries.len() - 1
                }
            };
            let entry = &mut self.entries[index];
            if entry.dropped {
                // Kept in the cache so that it is not relabelled again, and seen so it is not evicted.
                entry.seen = iter;
                continue;
            }
            stats.samples_post_relabel += 1;
            let ts = match sample.timestamp {
                Some(ts) if self.options.honor_timestamps => {
                    entry.explicit_ts = true;
                    ts
                }
                _ => {
                    entry.explicit_ts = false;
                    t
                }
            };
            if entry.seen != iter {
                entry.prev_seen = entry.seen;
                entry.seen = iter;
            }
            match app.append(entry.sref, &entry.labels, ts, sample.value) {
                Ok(sref) => entry.sref = sref,
                Err(AppendError::Refused(message)) => return Err(ScrapeError::Storage { message }),
                Err(e) => {
                    if stats.append_errors == 0 {
                        tracing::debug!(target: "sightline_tsdb::scrape", error = %e, "sample not appended");
                    }
                    stats.append_errors += 1;
                }
            }
        }
        if limit > 0 && stats.samples_post_relabel > limit {
            return Err(ScrapeError::SampleLimit { scraped: stats.samples_post_relabel, limit });
        }
        Ok(stats)
    }

    /// Materialises, checks, merges and relabels the labels of the parser's current sample; `None` when
    /// `metric_relabel_configs` drop it.
    fn new_series_labels(&mut self, parser: &Parser<'_>) -> Result<Option<Labels>, ScrapeError> {
        self.scratch.clear();
        parser.labels(&mut self.scratch)?;
        let describe = |scratch: &[Label]| Labels::new(scratch.to_vec()).to_string();
        for label in &self.scratch {
            let name_limit = self.options.label_name_length_limit;
            if name_limit > 0 && label.name.len() > name_limit {
                return Err(ScrapeError::LabelLength {
                    series: describe(&self.scratch),
                    what: "name",
                    length: label.name.len(),
                    limit: name_limit,
                });
            }
            let value_limit = self.options.label_value_length_limit;
            if value_limit > 0 && label.value.len() > value_limit {
                return Err(ScrapeError::LabelLength {
                    series: describe(&self.scratch),
                    what: "value",
                    length: label.value.len(),
                    limit: value_limit,
                });
            }
        }
        let labels = merge_target_labels(&mut self.scratch, &self.target, self.options.honor_labels);
        let Some(labels) = relabel::process(labels, &self.options.metric_relabel) else {
            return Ok(None);
        };
        if labels.metric_name().is_none_or(str::is_empty) {
            return Err(ScrapeError::NoMetricName { series: labels.to_string() });
        }
        let limit = self.options.label_limit;
        if limit > 0 && labels.len() > limit {
            return Err(ScrapeError::LabelLimit { series: labels.to_string(), count: labels.len(), limit });
        }
        Ok(Some(labels))
    }

    /// Appends a staleness marker for each entry `pick(entry, live, iter)` selects; returns how many.
    fn mark_stale(
        &mut self,
        app: &mut dyn Appender,
        t: i64,
        pick: impl Fn(&CacheEntry, u64, u64) -> bool,
    ) -> usize {
        let (live, iter) = (self.live, self.iter);
        if live == 0 {
            return 0;
        }
        let mut count = 0;
        for entry in &mut self.entries {
            if entry.explicit_ts || entry.dropped || entry.seen == 0 || !pick(entry, live, iter) {
                continue;
            }
            // The same rule as for samples: a refused marker is not worth failing the scrape over.
            if let Ok(sref) = app.append(entry.sref, &entry.labels, t, stale_nan()) {
                entry.sref = sref;
            }
            count += 1;
        }
        count
    }

    /// Forgets what a failed (rolled back) scrape did to the cache: references it got from the store
    /// are not valid, and its series were not seen.
    fn undo_iteration(&mut self) {
        let iter = self.iter;
        for entry in &mut self.entries {
            if entry.seen == iter {
                entry.seen = entry.prev_seen;
                if entry.seen == 0 {
                    entry.sref = 0;
                }
            }
        }
    }

    fn append_report(&mut self, app: &mut dyn Appender, t: i64, values: [f64; 5]) -> usize {
        self.report.append(app, t, values)
    }

    /// Drops cache entries not seen for a while, every few scrapes.
    fn evict(&mut self) {
        if self.iter % CACHE_EVICT_AFTER != 0 {
            return;
        }
        let cutoff = self.iter.saturating_sub(CACHE_EVICT_AFTER);
        if !self.entries.iter().any(|e| e.seen < cutoff) {
            return;
        }
        let mut old = std::mem::take(&mut self.entries);
        let mut kept = Vec::with_capacity(old.len());
        self.index.retain(|_, index| {
            let entry = std::mem::take(&mut old[*index]);
            if entry.seen < cutoff {
                return false;
            }
            *index = kept.len();
            kept.push(entry);
            true
        });
        self.entries = kept;
    }

    /// The number of series in the scrape cache.
    pub fn cached_series(&self) -> usize {
        self.entries.len()
    }
}

/// A sample's labels from its scraped labels (with `__name__`) and its target's labels, as Prometheus
/// merges them: with `honor` the scraped value of a name wins; without it the target's wins and the
/// scraped one is kept as `exported_<name>` (`exported_exported_<name>` if that is taken too).
///
/// `scraped` is drained; its capacity is kept for the next series.
pub(crate) fn merge_target_labels(scraped: &mut Vec<Label>, target: &Labels, honor: bool) -> Labels {
    if honor {
        for label in target {
            if !scraped.iter().any(|l| l.name == label.name && !l.value.is_empty()) {
                scraped.push(label.clone());
            }
        }
    } else {
        for i in 0..scraped.len() {
            if scraped[i].value.is_empty() || target.get(&scraped[i].name).is_none() {
                continue;
            }
            let mut name = format!("exported_{}", scraped[i].name);
            while target.get(&name).is_some() || scraped.iter().any(|l| l.name == name) {
                name.insert_str(0, "exported_");
            }
            scraped[i].name = name;
        }
        scraped.extend(target.iter().cloned());
    }
    // One exact allocation for the set; Labels::new sorts it and drops empty values.
    let mut labels = Vec::with_capacity(scraped.len());
    labels.append(scraped);
    Labels::new(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemStorage;
    use crate::sample::is_stale;
    use crate::traits::{Querier, SelectHints};

    fn target() -> Labels {
        Labels::from_pairs(&[("job", "j"), ("instance", "i:1")])
    }

    fn samples(store: &MemStorage, series: &str) -> Vec<(i64, f64)> {
        let all = store.select(&[], &SelectHints::range(i64::MIN, i64::MAX)).expect("select");
        all.into_iter()
            .find(|s| s.labels.to_string() == series)
            .map(|s| s.samples.into_iter().map(|x| (x.t, x.v)).collect())
            .unwrap_or_default()
    }

    #[test]
    fn merges_labels_like_prometheus() {
        let scraped =
            vec![Label::new("__name__", "m"), Label::new("job", "inner"), Label::new("exported_job", "x")];
        let merged = merge_target_labels(&mut scraped.clone(), &target(), false);
        assert_eq!(
            merged.to_string(),
            r#"m{exported_exported_job="inner", exported_job="x", instance="i:1", job="j"}"#
        );
        let honored = merge_target_labels(&mut scraped.clone(), &target(), true);
        assert_eq!(honored.to_string(), r#"m{exported_job="x", instance="i:1", job="inner"}"#);
    }

    #[test]
    fn stale_markers_follow_disappearing_series_and_failures() {
        let store = MemStorage::new();
        let mut lp =
            ScrapeLoop::new(target(), LoopOptions { honor_timestamps: true, ..LoopOptions::default() });
        let ok = |b: &'static str| Ok((b.as_bytes(), Format::Prometheus));
        let s1 = lp.append_scrape(&store, 1000, ok("a 1\nb 2\nc 3 500\n"), Duration::ZERO).expect("up");
        assert_eq!((s1.samples, s1.series_added, s1.stale_markers), (3, 3, 0));
        let s2 = lp.append_scrape(&store, 2000, ok("a 1\n"), Duration::ZERO).expect("up");
        assert_eq!((s2.series_added, s2.stale_markers), (0, 1), "b goes stale, c had its own timestamp");
        let b = samples(&store, r#"b{instance="i:1", job="j"}"#);
        assert_eq!(b.len(), 2);
        assert!(is_stale(b[1].1) && b[1].0 == 2000);
        assert_eq!(samples(&store, r#"c{instance="i:1", job="j"}"#), vec![(500, 3.0)]);

        let e =
            lp.append_scrape(&store, 3000, ok("a 1\nbad line\n"), Duration::ZERO).expect_err("parse error");
        assert!(e.to_string().contains("line 2"), "{e}");
        let a = samples(&store, r#"a{instance="i:1", job="j"}"#);
        assert_eq!(a.len(), 3, "nothing from the bad body, one stale marker: {a:?}");
        assert!(is_stale(a[2].1));
        assert_eq!(
            samples(&store, r#"up{instance="i:1", job="j"}"#),
            vec![(1000, 1.0), (2000, 1.0), (3000, 0.0)]
        );
        assert_eq!(samples(&store, r#"scrape_samples_scraped{instance="i:1", job="j"}"#)[2], (3000, 1.0));

        // Back up: a returns, and the end of the run marks it and the report series stale.
        lp.append_scrape(&store, 4000, ok("a 5\n"), Duration::ZERO).expect("up");
        assert_eq!(lp.append_end_of_run(&store, 5000).expect("end"), 6);
        let a = samples(&store, r#"a{instance="i:1", job="j"}"#);
        assert_eq!(a[3], (4000, 5.0));
        assert!(is_stale(a[4].1) && a[4].0 == 5000);
        assert!(is_stale(samples(&store, r#"up{instance="i:1", job="j"}"#)[4].1));
    }

    #[test]
    fn exposed_timestamps_are_ignored_unless_honoured() {
        let store = MemStorage::new();
        let mut lp =
            ScrapeLoop::new(target(), LoopOptions { honor_timestamps: false, ..LoopOptions::default() });
        lp.append_scrape(&store, 9000, Ok((b"a 1 500\n", Format::Prometheus)), Duration::ZERO).expect("up");
        assert_eq!(samples(&store, r#"a{instance="i:1", job="j"}"#), vec![(9000, 1.0)]);
        // Without its own timestamp the series is tracked for staleness again.
        lp.append_scrape(&store, 10_000, Ok((b"b 1\n", Format::Prometheus)), Duration::ZERO).expect("up");
        assert!(is_stale(samples(&store, r#"a{instance="i:1", job="j"}"#)[1].1));
    }

    /// A store whose batches never commit.
    struct ClosedStorage(MemStorage);

    struct ClosedAppender;

    impl Querier for ClosedStorage {
        fn select(
            &self,
            m: &[promql_parser::label::Matcher],
            h: &SelectHints,
        ) -> Result<Vec<crate::traits::Series>, StorageError> {
            self.0.select(m, h)
        }
        fn series(
            &self,
            m: &[promql_parser::label::Matcher],
            s: i64,
            e: i64,
        ) -> Result<Vec<Labels>, StorageError> {
            self.0.series(m, s, e)
        }
        fn label_names(
            &self,
            m: &[promql_parser::label::Matcher],
            s: i64,
            e: i64,
        ) -> Result<Vec<String>, StorageError> {
            self.0.label_names(m, s, e)
        }
        fn label_values(
            &self,
            n: &str,
            m: &[promql_parser::label::Matcher],
            s: i64,
            e: i64,
        ) -> Result<Vec<String>, StorageError> {
            self.0.label_values(n, m, s, e)
        }
    }

    impl Storage for ClosedStorage {
        fn appender(&self) -> Box<dyn Appender + '_> {
            Box::new(ClosedAppender)
        }
    }

    impl Appender for ClosedAppender {
        fn append(&mut self, _: SeriesRef, _: &Labels, _: i64, _: f64) -> Result<SeriesRef, AppendError> {
            Ok(7)
        }
        fn commit(self: Box<Self>) -> Result<(), StorageError> {
            Err(StorageError::Closed)
        }
        fn rollback(self: Box<Self>) {}
    }

    #[test]
    fn a_failed_commit_is_a_failed_scrape_and_leaves_nothing_live() {
        let closed = ClosedStorage(MemStorage::new());
        let mut lp = ScrapeLoop::new(target(), LoopOptions::default());
        let e = lp
            .append_scrape(&closed, 1000, Ok((b"a 1\n", Format::Prometheus)), Duration::ZERO)
            .expect_err("closed");
        assert_eq!(e, ScrapeError::Storage { message: "the store is closed".into() });
        assert!(lp.entries.iter().all(|e| e.sref == 0), "references from the lost batch are dropped");
        // The next scrape into a working store marks nothing stale: nothing was live.
        let store = MemStorage::new();
        let stats =
            lp.append_scrape(&store, 2000, Ok((b"b 1\n", Format::Prometheus)), Duration::ZERO).expect("up");
        assert_eq!(stats.stale_markers, 0);
    }

    #[test]
    fn metric_relabelling_drops_and_rewrites_series() {
        let store = MemStorage::new();
        let rules: Vec<RelabelConfig> = serde_yaml_ng::from_str(
            "- source_labels: [__name__]\n  regex: 'go_.*'\n  action: drop\n\
             - source_labels: [path]\n  regex: '/api/(.*)'\n  target_label: route\n\
             - regex: path\n  action: labeldrop\n",
        )
        .expect("rules");
        let options = LoopOptions { metric_relabel: rules, sample_limit: 2, ..LoopOptions::default() };
        let mut lp = ScrapeLoop::new(target(), options);
        let body = b"go_goroutines 7\ngo_threads 3\nreq{path=\"/api/users\"} 1\nreq{path=\"/api/items\"} 2\n";
        for t in [1000, 2000] {
            let stats =
                lp.append_scrape(&store, t, Ok((body, Format::Prometheus)), Duration::ZERO).expect("up");
            assert_eq!(
                (stats.samples, stats.samples_post_relabel),
                (4, 2),
                "dropped series are not over the limit"
            );
        }
        assert!(samples(&store, r#"go_goroutines{instance="i:1", job="j"}"#).is_empty());
        assert_eq!(
            samples(&store, r#"req{instance="i:1", job="j", route="users"}"#),
            vec![(1000, 1.0), (2000, 1.0)]
        );
        let post = samples(&store, r#"scrape_samples_post_metric_relabeling{instance="i:1", job="j"}"#);
        assert_eq!(post, vec![(1000, 2.0), (2000, 2.0)]);
        assert_eq!(samples(&store, r#"scrape_samples_scraped{instance="i:1", job="j"}"#)[0], (1000, 4.0));

        let nameless: Vec<RelabelConfig> =
            serde_yaml_ng::from_str("- regex: __name__\n  action: labeldrop\n").expect("rules");
        let mut lp =
            ScrapeLoop::new(target(), LoopOptions { metric_relabel: nameless, ..LoopOptions::default() });
        let e = lp
            .append_scrape(&store, 1000, Ok((b"m 1\n", Format::Prometheus)), Duration::ZERO)
            .expect_err("no name");
        assert!(matches!(e, ScrapeError::NoMetricName { .. }), "{e}");
    }

    #[test]
    fn limits_fail_the_scrape() {
        let store = MemStorage::new();
        let options = LoopOptions { sample_limit: 2, label_limit: 4, ..LoopOptions::default() };
        let mut lp = ScrapeLoop::new(target(), options);
        let e = lp
            .append_scrape(&store, 1000, Ok((b"a 1\nb 1\nc 1\n", Format::Prometheus)), Duration::ZERO)
            .expect_err("over the limit");
        assert_eq!(e, ScrapeError::SampleLimit { scraped: 3, limit: 2 });
        assert!(samples(&store, r#"a{instance="i:1", job="j"}"#).is_empty());
        assert_eq!(samples(&store, r#"scrape_samples_scraped{instance="i:1", job="j"}"#), vec![(1000, 3.0)]);
        let e = lp
            .append_scrape(&store, 2000, Ok((b"a{x=\"1\",y=\"2\"} 1\n", Format::Prometheus)), Duration::ZERO)
            .expect_err("too many labels");
        assert!(matches!(e, ScrapeError::LabelLimit { count: 5, limit: 4, .. }), "{e}");
    }

    #[test]
    fn the_cache_skips_known_series_and_evicts_old_ones() {
        let store = MemStorage::new();
        let mut lp = ScrapeLoop::new(target(), LoopOptions::default());
        for i in 0..25 {
            let body = if i == 0 { "old 1\nkept 1\n" } else { "kept 1\n" };
            let stats = lp.append_scrape(
                &store,
                1000 * (i + 1),
                Ok((body.as_bytes(), Format::Prometheus)),
                Duration::ZERO,
            );
            assert_eq!(stats.expect("up").series_added, usize::from(i == 0) * 2);
        }
        assert_eq!(lp.cached_series(), 1, "`old` was evicted");
        // Our own time never goes backwards, whatever the clock says.
        lp.append_scrape(&store, 10, Ok((b"kept 2\n", Format::Prometheus)), Duration::ZERO).expect("up");
        assert_eq!(samples(&store, r#"kept{instance="i:1", job="j"}"#).last(), Some(&(25_001, 2.0)));
    }
}
