//! Runs collectors on their own intervals in the background.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sightline_core::{BaseUnit, Descriptor, Registry};

use crate::{CollectError, Collector};

/// The default collection interval, Prometheus's default scrape interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

const DURATION_METRIC: &str = "sightline_collector_duration_seconds";
const ERRORS_METRIC: &str = "sightline_collector_errors_total";

/// A set of collectors to run, each on its own interval.
#[must_use]
pub struct Collectors {
    registry: Registry,
    entries: Vec<Entry>,
}

struct Entry {
    collector: Box<dyn Collector>,
    interval: Duration,
    last_error: Option<String>,
    /// Whether `collect_once` already ran it, so that `start` waits an interval before the next run.
    collected: bool,
}

impl std::fmt::Debug for Collectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.entries.iter().map(|e| (e.collector.name(), e.interval)).collect();
        f.debug_struct("Collectors").field("collectors", &names).finish_non_exhaustive()
    }
}

impl Collectors {
    /// No collectors yet; `registry` receives their metrics and the collection metrics.
    pub fn new(registry: &Registry) -> Self {
        let descriptors = [
            Descriptor::histogram(DURATION_METRIC, "Time one collection took, by collector.")
                .with_unit(BaseUnit::Seconds)
                .with_buckets(&[0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0]),
            Ok(Descriptor::counter(
                ERRORS_METRIC,
                "Collections that failed or read less than usual, by collector.",
            )),
        ];
        for descriptor in descriptors.iter().flatten() {
            // Constant descriptors that satisfy the naming rules; a clash with the application's own
            // metric of the same name shows up as a registration error on first use instead.
            let _ = registry.describe(descriptor);
        }
        Self { registry: registry.clone(), entries: Vec::new() }
    }

    /// The host collector (node_exporter's defaults) and the process collector, plus the tokio runtime
    /// collector when called inside a tokio runtime (with the `tokio` feature), each every 15 seconds.
    pub fn with_defaults(registry: &Registry) -> Self {
        let host = crate::HostCollector::new(registry, crate::HostConfig::default());
        let collectors = Self::new(registry)
            .add(host, DEFAULT_INTERVAL)
            .add(crate::process::ProcessCollector::new(registry), DEFAULT_INTERVAL);
        #[cfg(feature = "tokio")]
        let collectors = match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                collectors.add(crate::runtime::RuntimeCollector::new(registry, handle), DEFAULT_INTERVAL)
            }
            Err(_) => collectors,
        };
        collectors
    }

    /// Adds `collector`, to run every `interval` (at least every 100 ms).
    pub fn add(mut self, collector: impl Collector, interval: Duration) -> Self {
        let interval = interval.max(Duration::from_millis(100));
        self.entries.push(Entry {
            collector: Box::new(collector),
            interval,
            last_error: None,
            collected: false,
        });
        self
    }

    /// Runs every collector once, now, on this thread; returns the names of those that failed with
    /// their errors. Meant for tests and for a first collection before serving.
    pub fn collect_once(&mut self) -> Vec<(&'static str, String)> {
        let registry = self.registry.clone();
        self.entries
            .iter_mut()
            .filter_map(|entry| run(&registry, entry).err().map(|e| (entry.collector.name(), e.to_string())))
            .collect()
    }

    /// Starts one background thread per collector. Each collects at once (or, after
    /// [`collect_once`](Self::collect_once), one interval later), then every interval, until the returned
    /// [`Running`] is stopped or dropped.
    pub fn start(self) -> Running {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let threads = self
            .entries
            .into_iter()
            .filter_map(|mut entry| {
                let registry = self.registry.clone();
                let stop = stop.clone();
                let name = format!("sightline-collector-{}", entry.collector.name());
                let spawned = std::thread::Builder::new().name(name.clone()).spawn(move || {
                    if entry.collected && wait_or_stop(&stop, entry.interval) {
                        return;
                    }
                    loop {
                        let _ = run(&registry, &mut entry);
                        if wait_or_stop(&stop, entry.interval) {
                            return;
                        }
                    }
                });
                match spawned {
                    Ok(thread) => Some(thread),
                    Err(err) => {
                        tracing::error!(thread = name, error = %err, "cannot start a collector thread");
                        None
                    }
                }
            })
            .collect();
        Running { stop, threads }
    }
}

/// Waits `interval`, returning early (with `true`) when asked to stop.
fn wait_or_stop(stop: &(Mutex<bool>, Condvar), interval: Duration) -> bool {
    let (flag, wake) = stop;
    let deadline = Instant::now() + interval;
    let mut stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
    while !*stopped {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else { return false };
        stopped = wake.wait_timeout(stopped, left).unwrap_or_else(|e| e.into_inner()).0;
    }
    true
}

/// Runs one collection, timing it and counting and logging failures. A failure is logged when it first
/// happens and when its message changes, not at every interval.
fn run(registry: &Registry, entry: &mut Entry) -> Result<(), CollectError> {
    entry.collected = true;
    let name = entry.collector.name();
    let start = Instant::now();
    let result = entry.collector.collect();
    if let Ok(histogram) = registry.histogram(DURATION_METRIC, &[("collector", name)]) {
        histogram.record(start.elapsed().as_secs_f64());
    }
    let errors = registry.counter(ERRORS_METRIC, &[("collector", name)]);
    match &result {
        Ok(()) => {
            if let Ok(errors) = errors {
                // Registered at zero, so that the series exists before the first failure.
                errors.increment(0);
            }
            if entry.last_error.take().is_some() {
                tracing::info!(collector = name, "collector recovered");
            }
        }
        Err(err) => {
            if let Ok(errors) = errors {
                errors.increment(1);
            }
            let message = err.to_string();
            if entry.last_error.as_deref() != Some(message.as_str()) {
                tracing::warn!(collector = name, error = %message, "collection incomplete");
                entry.last_error = Some(message);
            }
        }
    }
    result
}

/// Background collection; stops when dropped.
#[derive(Debug)]
pub struct Running {
    stop: Arc<(Mutex<bool>, Condvar)>,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops every collector thread and waits for them to finish their current collection.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let (flag, wake) = &*self.stop;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::Value;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Flaky {
        runs: Arc<AtomicUsize>,
    }

    impl Collector for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }

        fn collect(&mut self) -> Result<(), CollectError> {
            if self.runs.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
                Err(CollectError::Unavailable("every other run fails".into()))
            } else {
                Ok(())
            }
        }
    }

    struct Steady(Arc<AtomicUsize>);

    impl Collector for Steady {
        fn name(&self) -> &'static str {
            "steady"
        }

        fn collect(&mut self) -> Result<(), CollectError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn count(registry: &Registry, name: &str, collector: &str) -> u64 {
        let snapshot = registry.snapshot();
        match snapshot.family(name).and_then(|f| f.series_with(&[("collector", collector)])).map(|s| &s.value)
        {
            Some(Value::Counter(n)) => *n,
            Some(Value::Histogram(h)) => h.count,
            _ => 0,
        }
    }

    #[test]
    fn a_failing_collector_is_counted_and_never_stops_the_others() {
        let registry = Registry::new();
        let (flaky, steady) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut collectors = Collectors::new(&registry)
            .add(Flaky { runs: flaky.clone() }, DEFAULT_INTERVAL)
            .add(Steady(steady.clone()), DEFAULT_INTERVAL);
        for _ in 0..4 {
            let failed = collectors.collect_once();
            assert!(failed.iter().all(|(name, _)| *name == "flaky"));
        }
        assert_eq!(steady.load(Ordering::SeqCst), 4);
        assert_eq!(count(&registry, ERRORS_METRIC, "flaky"), 2);
        assert_eq!(count(&registry, ERRORS_METRIC, "steady"), 0);
        assert_eq!(count(&registry, DURATION_METRIC, "steady"), 4);
    }

    #[test]
    fn defaults_collect_host_and_process_metrics() {
        let registry = Registry::new();
        let failed = Collectors::with_defaults(&registry).collect_once();
        let snapshot = registry.snapshot();
        if cfg!(target_os = "linux") {
            assert!(failed.is_empty(), "{failed:?}");
            assert!(snapshot.family("node_cpu_seconds_total").is_some());
            assert!(snapshot.family("process_resident_memory_bytes").is_some());
        } else {
            assert_eq!(failed.len(), 2, "host and process report themselves unavailable");
        }
    }

    #[test]
    fn background_collection_runs_on_its_interval_and_stops() {
        let registry = Registry::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let running =
            Collectors::new(&registry).add(Steady(runs.clone()), Duration::from_millis(100)).start();
        let deadline = Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::SeqCst) < 3 {
            assert!(Instant::now() < deadline, "the collector did not run three times");
            std::thread::sleep(Duration::from_millis(20));
        }
        running.stop();
        let after_stop = runs.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(runs.load(Ordering::SeqCst), after_stop, "no collection after stop");
    }
}
