//! The local collector: samples the process's own [`sightline_core::Registry`] into the store on a fixed
//! interval, with the names a Prometheus scrape of the same registry would give.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sightline_core::{Registry, Snapshot, Value};

use crate::labels::{Label, Labels, METRIC_NAME};
use crate::sample::stale_nan;
use crate::scrape::config::DEFAULT_SCRAPE_INTERVAL;
use crate::scrape::parse::format_float;
use crate::scrape::scrape_loop::{ReportSeries, merge_target_labels};
use crate::traits::{Appender, SeriesRef, Storage, StorageError};

/// What one collection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectStats {
    /// Samples appended (one per counter or gauge; buckets, sum and count for a histogram; ...).
    pub samples: usize,
    /// Staleness markers for series that disappeared since the last collection.
    pub stale_markers: usize,
    /// Samples the store turned down (out of order and the like).
    pub append_errors: usize,
    /// Series that the previous collection did not write (`scrape_series_added`).
    pub series_added: usize,
}

#[derive(Debug, Default)]
struct LocalState {
    /// Series written by the last collection, with their store references.
    live: HashMap<Labels, SeriesRef>,
    last_t: i64,
    /// `up` and the `scrape_*` series, made from the target labels at the first collection.
    report: Option<ReportSeries>,
}

/// Samples a [`Registry`] into a [`Storage`] every interval (15 s by default), labelled
/// `job="sightline"` and `instance=<configurable, "localhost" by default>`.
///
/// Counters keep their names (`_total`), histograms become `_bucket{le}`, `_sum` and `_count`, summaries
/// `{quantile}`, `_sum` and `_count`; `le` and `quantile` values are written as Prometheus 3 normalises
/// them (`1.0`, `+Inf`). A series' own `job` or `instance` label is kept as `exported_job` /
/// `exported_instance`. A series that disappears from the registry gets a staleness marker.
///
/// Each collection also writes the series a scrape of the registry would: `up` (1),
/// `scrape_duration_seconds` (the time taken to snapshot the registry and build the batch),
/// `scrape_samples_scraped` and `scrape_samples_post_metric_relabeling` (the registry's samples; nothing
/// relabels them) and `scrape_series_added` (series the previous collection did not write).
pub struct LocalCollector {
    registry: Registry,
    storage: Arc<dyn Storage>,
    interval: Duration,
    target: Labels,
    state: Mutex<LocalState>,
}

// === impl LocalCollector ===

impl std::fmt::Debug for LocalCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCollector")
            .field("registry", &self.registry)
            .field("interval", &self.interval)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl LocalCollector {
    pub fn new(registry: Registry, storage: Arc<dyn Storage>) -> Self {
        Self {
            registry,
            storage,
            interval: DEFAULT_SCRAPE_INTERVAL,
            target: Labels::from_pairs(&[("job", "sightline"), ("instance", "localhost")]),
            state: Mutex::new(LocalState::default()),
        }
    }

    /// Sets the interval (a zero interval is raised to one millisecond).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Sets the `instance` label.
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.target.set("instance", instance);
        self
    }

    /// Sets the `job` label.
    pub fn with_job(mut self, job: impl Into<String>) -> Self {
        self.target.set("job", job);
        self
    }

    /// The collection interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Collects once, now.
    pub fn collect(&self) -> Result<CollectStats, StorageError> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.collect_at(now)
    }

    /// Collects once at `t` (milliseconds; moved just past the previous collection if not after it).
    pub fn collect_at(&self, t: i64) -> Result<CollectStats, StorageError> {
        let started = Instant::now();
        let snapshot = self.registry.snapshot();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let t = if t <= state.last_t { state.last_t + 1 } else { t };
        let mut app = self.storage.appender();
        let mut stats = CollectStats::default();
        let mut current: HashMap<Labels, SeriesRef> = HashMap::with_capacity(state.live.len());
        for (labels, value) in self.samples(&snapshot) {
            let known = state.live.get(&labels).copied();
            stats.series_added += usize::from(known.is_none());
            // A refused sample still counts as live, so that it is not marked stale next time.
            let sref = append(&mut *app, &mut stats, known.unwrap_or(0), &labels, t, value);
            current.insert(labels, sref);
            stats.samples += 1;
        }
        for (labels, sref) in &state.live {
            if !current.contains_key(labels) {
                append(&mut *app, &mut stats, *sref, labels, t, stale_nan());
                stats.stale_markers += 1;
            }
        }
        let values = [
            1.0,
            started.elapsed().as_secs_f64(),
            stats.samples as f64,
            stats.samples as f64,
            stats.series_added as f64,
        ];
        let report = state.report.get_or_insert_with(|| ReportSeries::new(&self.target));
        stats.append_errors += report.append(&mut *app, t, values);
        if let Err(e) = app.commit() {
            // Nothing of this batch is stored, so the references it handed out are void.
            report.forget();
            return Err(e);
        }
        state.live = current;
        state.last_t = t;
        Ok(stats)
    }

    /// Collects every interval until `shutdown` completes. Errors are logged and the next collection
    /// goes ahead.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                _ = ticker.tick() => {}
            }
            if let Err(e) = self.collect() {
                tracing::warn!(target: "sightline_tsdb::scrape", error = %e, "cannot store the local registry's samples");
            }
        }
    }

    /// Every sample of a snapshot with its labels.
    fn samples(&self, snapshot: &Snapshot) -> Vec<(Labels, f64)> {
        let mut out = Vec::with_capacity(snapshot.series_count());
        for family in &snapshot.families {
            for series in &family.series {
                let base: Vec<Label> =
                    series.labels().iter().map(|l| Label::new(l.key(), l.value())).collect();
                let mut push = |suffix: &str, extra: Option<(&str, String)>, value: f64| {
                    let mut labels = base.clone();
                    labels.push(Label::new(METRIC_NAME, format!("{}{suffix}", family.name)));
                    if let Some((name, v)) = extra {
                        labels.push(Label::new(name, v));
                    }
                    out.push((merge_target_labels(&mut labels, &self.target, false), value));
                };
                match &series.value {
                    Value::Counter(v) => push("", None, *v as f64),
                    Value::FloatCounter(v) | Value::Gauge(v) => push("", None, *v),
                    Value::Histogram(h) => {
                        for (bound, count) in &h.buckets {
                            push("_bucket", Some(("le", format_float(*bound))), *count as f64);
                        }
                        push("_sum", None, h.sum);
                        push("_count", None, h.count as f64);
                    }
                    Value::Summary(s) => {
                        for (quantile, value) in &s.quantiles {
                            push("", Some(("quantile", format_float(*quantile))), *value);
                        }
                        push("_sum", None, s.sum);
                        push("_count", None, s.count as f64);
                    }
                }
            }
        }
        out
    }
}

fn append(
    app: &mut dyn Appender,
    stats: &mut CollectStats,
    sref: SeriesRef,
    labels: &Labels,
    t: i64,
    value: f64,
) -> SeriesRef {
    match app.append(sref, labels, t, value) {
        Ok(r) => r,
        Err(e) => {
            if stats.append_errors == 0 {
                tracing::debug!(target: "sightline_tsdb::scrape", error = %e, "local sample not appended");
            }
            stats.append_errors += 1;
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemStorage;
    use crate::sample::is_stale;
    use crate::traits::{Querier, SelectHints};
    use sightline_core::Descriptor;

    #[test]
    fn registry_series_are_stored_with_prometheus_names() {
        let registry = Registry::new();
        registry.counter("jobs_total", &[("queue", "a"), ("job", "mine")]).expect("counter").increment(3);
        registry.gauge("temperature", &[]).expect("gauge").set(21.5);
        registry
            .describe(
                &Descriptor::histogram("latency_seconds", "Latency.")
                    .with_buckets(&[0.1, 1.0])
                    .expect("buckets"),
            )
            .expect("describe");
        registry.histogram("latency_seconds", &[]).expect("histogram").record(0.5);
        let store = Arc::new(MemStorage::new());
        let collector = LocalCollector::new(registry.clone(), store.clone()).with_instance("host:9000");
        let stats = collector.collect_at(1000).expect("collect");
        // The registry's own sightline_invalid_metrics_total is the eighth.
        assert_eq!(stats.samples, 1 + 1 + 3 + 2 + 1);
        let all = store.select(&[], &SelectHints::range(0, 2000)).expect("select");
        let names: Vec<String> = all.iter().map(|s| s.labels.to_string()).collect();
        let expected = [
            r#"jobs_total{exported_job="mine", instance="host:9000", job="sightline", queue="a"}"#,
            r#"latency_seconds_bucket{instance="host:9000", job="sightline", le="0.1"}"#,
            r#"latency_seconds_bucket{instance="host:9000", job="sightline", le="1.0"}"#,
            r#"latency_seconds_bucket{instance="host:9000", job="sightline", le="+Inf"}"#,
            r#"latency_seconds_count{instance="host:9000", job="sightline"}"#,
            r#"latency_seconds_sum{instance="host:9000", job="sightline"}"#,
            r#"temperature{instance="host:9000", job="sightline"}"#,
            r#"sightline_invalid_metrics_total{instance="host:9000", job="sightline"}"#,
        ];
        for e in expected {
            assert!(names.iter().any(|n| n == e), "{e} missing from {names:#?}");
        }
        let bucket = all.iter().find(|s| s.labels.get("le") == Some("1.0")).expect("bucket");
        assert_eq!(bucket.samples[0].v, 1.0);
        let jobs = all.iter().find(|s| s.labels.metric_name() == Some("jobs_total")).expect("jobs");
        assert_eq!(jobs.samples[0].v, 3.0);
    }

    #[tokio::test]
    async fn run_collects_every_interval_until_shutdown() {
        let registry = Registry::new();
        registry.gauge("g", &[]).expect("gauge").set(1.0);
        let store = Arc::new(MemStorage::new());
        let collector = LocalCollector::new(registry, store.clone()).with_interval(Duration::from_millis(20));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let stop = async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let _ = tx.send(());
        };
        let shutdown = async move {
            let _ = rx.await;
        };
        tokio::join!(collector.run(shutdown), stop);
        let all = store.select(&[], &SelectHints::range(0, i64::MAX)).expect("select");
        let g = all.iter().find(|s| s.labels.metric_name() == Some("g")).expect("g stored");
        assert!(g.samples.len() >= 3, "only {} collections", g.samples.len());
        let count = g.samples.len();
        tokio::time::sleep(Duration::from_millis(60)).await;
        let all = store.select(&[], &SelectHints::range(0, i64::MAX)).expect("select");
        let g = all.iter().find(|s| s.labels.metric_name() == Some("g")).expect("g stored");
        assert_eq!(g.samples.len(), count, "nothing after shutdown");
    }

    #[test]
    fn each_collection_writes_up_and_the_scrape_series() {
        let registry = Registry::new();
        registry.gauge("g", &[]).expect("gauge").set(2.0);
        let store = Arc::new(crate::storage::Db::in_memory(Default::default()).expect("db"));
        let collector = LocalCollector::new(registry.clone(), store.clone()).with_instance("me:1");
        let first = collector.collect_at(1000).expect("collect");
        assert_eq!(first.series_added, first.samples);
        registry.gauge("h", &[]).expect("gauge").set(3.0);
        let second = collector.collect_at(2000).expect("collect");
        assert_eq!((second.samples, second.series_added), (first.samples + 1, 1));
        let series = |name: &str| -> Vec<(i64, f64)> {
            let labels =
                Labels::from_pairs(&[("__name__", name), ("job", "sightline"), ("instance", "me:1")]);
            let all = store.select(&[], &SelectHints::range(0, 3000)).expect("select");
            let s = all.iter().find(|s| s.labels == labels).unwrap_or_else(|| panic!("{labels} missing"));
            s.samples.iter().map(|x| (x.t, x.v)).collect()
        };
        assert_eq!(series("up"), [(1000, 1.0), (2000, 1.0)]);
        for name in ["scrape_samples_scraped", "scrape_samples_post_metric_relabeling"] {
            assert_eq!(series(name), [(1000, first.samples as f64), (2000, second.samples as f64)], "{name}");
        }
        assert_eq!(series("scrape_series_added"), [(1000, first.samples as f64), (2000, 1.0)]);
        let durations = series("scrape_duration_seconds");
        assert_eq!(durations.len(), 2);
        assert!(durations.iter().all(|&(_, d)| d > 0.0 && d < 60.0), "{durations:?}");
        // The report series are not registry samples: they are never marked stale as such.
        assert_eq!(second.stale_markers, 0);
    }

    #[test]
    fn a_series_that_disappears_goes_stale() {
        let store = Arc::new(MemStorage::new());
        let collector = LocalCollector::new(Registry::new(), store.clone());
        // Fake a series from an earlier collection that the (empty) registry no longer has.
        let gone =
            Labels::from_pairs(&[("__name__", "gone"), ("job", "sightline"), ("instance", "localhost")]);
        collector.state.lock().expect("lock").live.insert(gone.clone(), 0);
        let stats = collector.collect_at(5000).expect("collect");
        assert_eq!(stats.stale_markers, 1);
        let all = store.select(&[], &SelectHints::range(0, 10_000)).expect("select");
        assert_eq!(all[0].labels, gone);
        assert!(is_stale(all[0].samples[0].v));
        assert_eq!(collector.collect_at(6000).expect("again").stale_markers, 0, "marked once");
    }
}
