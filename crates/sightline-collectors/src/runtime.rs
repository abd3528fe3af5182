//! Metrics of a tokio runtime: workers, alive tasks, global queue depth and busy time per worker.
//!
//! Workers, alive tasks, queue depth and busy time use tokio's stable runtime metrics. The blocking
//! pool's threads (`sightline_tokio_blocking_threads`, `sightline_tokio_idle_blocking_threads`) are only
//! available when the final binary is built with `--cfg tokio_unstable` (as this workspace's
//! `.cargo/config.toml` does); without it they are not exported.

use sightline_core::{BaseUnit, Descriptor, FloatCounter, Registry};
use tokio::runtime::Handle;

use crate::{CollectError, Collector};

/// Collects `sightline_tokio_*` metrics from a runtime handle.
#[derive(Debug)]
pub struct RuntimeCollector {
    registry: Registry,
    handle: Handle,
    busy: Vec<FloatCounter>,
}

impl RuntimeCollector {
    /// A collector for the runtime behind `handle` (for the current one: `Handle::current()`).
    pub fn new(registry: &Registry, handle: Handle) -> Self {
        let descriptors = [
            Descriptor::gauge("sightline_tokio_workers", "Worker threads of the tokio runtime."),
            Descriptor::gauge(
                "sightline_tokio_alive_tasks",
                "Tasks spawned on the tokio runtime and not yet finished.",
            ),
            Descriptor::gauge(
                "sightline_tokio_global_queue_depth",
                "Tasks waiting in the tokio runtime's global (injection) queue.",
            ),
            Descriptor::gauge(
                "sightline_tokio_blocking_threads",
                "Threads in the tokio runtime's blocking pool.",
            ),
            Descriptor::gauge(
                "sightline_tokio_idle_blocking_threads",
                "Threads in the tokio runtime's blocking pool that are idle.",
            ),
            Descriptor::float_counter(
                "sightline_tokio_worker_busy_seconds_total",
                "Time each tokio worker spent running tasks; rate() of it is the worker's utilisation.",
            )
            .with_unit(BaseUnit::Seconds),
        ];
        for descriptor in &descriptors {
            // Constant descriptors; a clash surfaces as an error from `collect`.
            let _ = registry.describe(descriptor);
        }
        Self { registry: registry.clone(), handle, busy: Vec::new() }
    }
}

impl Collector for RuntimeCollector {
    fn name(&self) -> &'static str {
        "runtime"
    }

    fn collect(&mut self) -> Result<(), CollectError> {
        let metrics = self.handle.metrics();
        let workers = metrics.num_workers();
        self.registry.gauge("sightline_tokio_workers", &[])?.set(workers as f64);
        self.registry.gauge("sightline_tokio_alive_tasks", &[])?.set(metrics.num_alive_tasks() as f64);
        self.registry
            .gauge("sightline_tokio_global_queue_depth", &[])?
            .set(metrics.global_queue_depth() as f64);
        #[cfg(tokio_unstable)]
        {
            self.registry
                .gauge("sightline_tokio_blocking_threads", &[])?
                .set(metrics.num_blocking_threads() as f64);
            let idle = metrics.num_idle_blocking_threads() as f64;
            self.registry.gauge("sightline_tokio_idle_blocking_threads", &[])?.set(idle);
        }
        while self.busy.len() < workers {
            let worker = self.busy.len().to_string();
            let counter = self
                .registry
                .float_counter("sightline_tokio_worker_busy_seconds_total", &[("worker", &worker)])?;
            self.busy.push(counter);
        }
        for (worker, counter) in self.busy.iter().enumerate().take(workers) {
            counter.absolute(metrics.worker_total_busy_duration(worker).as_secs_f64());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::Value;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exports_workers_tasks_and_busy_time() {
        let registry = Registry::new();
        let mut collector = RuntimeCollector::new(&registry, Handle::current());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let parked = tokio::spawn(async move {
            let _ = rx.await;
        });
        // Keep a worker busy for a moment so that busy time is positive.
        tokio::task::spawn(async { std::thread::sleep(std::time::Duration::from_millis(20)) }).await.unwrap();
        collector.collect().expect("collect");
        let snapshot = registry.snapshot();
        let gauge = |name: &str| match snapshot.family(name).map(|f| &f.series[0].value) {
            Some(Value::Gauge(v)) => *v,
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(gauge("sightline_tokio_workers"), 2.0);
        #[cfg(tokio_unstable)]
        {
            tokio::task::spawn_blocking(|| ()).await.unwrap();
            collector.collect().expect("collect");
            let snapshot = registry.snapshot();
            let blocking =
                match snapshot.family("sightline_tokio_blocking_threads").map(|f| &f.series[0].value) {
                    Some(Value::Gauge(v)) => *v,
                    other => panic!("blocking threads: {other:?}"),
                };
            assert!(blocking >= 1.0, "{blocking}");
        }
        assert!(gauge("sightline_tokio_alive_tasks") >= 1.0);
        let busy = snapshot.family("sightline_tokio_worker_busy_seconds_total").expect("busy");
        assert_eq!(busy.series.len(), 2);
        let total: f64 = busy
            .series
            .iter()
            .map(|s| match s.value {
                Value::FloatCounter(v) => v,
                _ => 0.0,
            })
            .sum();
        assert!(total > 0.0, "{total}");
        tx.send(()).unwrap();
        parked.await.unwrap();
    }
}
