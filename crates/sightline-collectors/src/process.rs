//! The standard `process_*` metrics of the current process, as every Prometheus client library exports
//! them: CPU time, resident and virtual memory, open and maximum file descriptors, start time.

use sightline_core::{BaseUnit, Descriptor, Registry};

use crate::{CollectError, Collector};

/// Collects `process_*` metrics from /proc/self.
#[derive(Debug)]
pub struct ProcessCollector {
    registry: Registry,
    #[cfg(target_os = "linux")]
    handles: Option<Handles>,
}

#[cfg(target_os = "linux")]
#[derive(Debug)]
struct Handles {
    cpu: sightline_core::FloatCounter,
    resident: metrics::Gauge,
    virtual_memory: metrics::Gauge,
    open_fds: metrics::Gauge,
    max_fds: metrics::Gauge,
    start_time: metrics::Gauge,
}

impl ProcessCollector {
    /// A collector writing into `registry`. Nothing is registered until the first collection, so that a
    /// platform without /proc exports nothing rather than zeros.
    pub fn new(registry: &Registry) -> Self {
        Self {
            registry: registry.clone(),
            #[cfg(target_os = "linux")]
            handles: None,
        }
    }

    #[cfg(target_os = "linux")]
    fn handles(&mut self) -> Result<&Handles, CollectError> {
        if self.handles.is_none() {
            let registry = &self.registry;
            let descriptors = [
                Descriptor::float_counter(
                    "process_cpu_seconds_total",
                    "Total user and system CPU time spent in seconds.",
                )
                .with_unit(BaseUnit::Seconds),
                Descriptor::gauge("process_resident_memory_bytes", "Resident memory size in bytes.")
                    .with_unit(BaseUnit::Bytes),
                Descriptor::gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.")
                    .with_unit(BaseUnit::Bytes),
                Descriptor::gauge("process_open_fds", "Number of open file descriptors."),
                Descriptor::gauge("process_max_fds", "Maximum number of open file descriptors."),
                Descriptor::gauge(
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.",
                )
                .with_unit(BaseUnit::Seconds),
            ];
            for descriptor in &descriptors {
                registry.describe(descriptor)?;
            }
            self.handles = Some(Handles {
                cpu: registry.float_counter("process_cpu_seconds_total", &[])?,
                resident: registry.gauge("process_resident_memory_bytes", &[])?,
                virtual_memory: registry.gauge("process_virtual_memory_bytes", &[])?,
                open_fds: registry.gauge("process_open_fds", &[])?,
                max_fds: registry.gauge("process_max_fds", &[])?,
                start_time: registry.gauge("process_start_time_seconds", &[])?,
            });
        }
        self.handles.as_ref().ok_or_else(|| CollectError::Unavailable("process metrics".into()))
    }
}

impl Collector for ProcessCollector {
    fn name(&self) -> &'static str {
        "process"
    }

    #[cfg(target_os = "linux")]
    fn collect(&mut self) -> Result<(), CollectError> {
        use procfs::process::{LimitValue, Process};
        let handles = self.handles()?;
        let me = Process::myself().map_err(|e| CollectError::procfs("/proc/self", e))?;
        let mut first_error = None;
        match me.stat() {
            Ok(stat) => {
                let ticks = procfs::ticks_per_second() as f64;
                handles.cpu.absolute((stat.utime + stat.stime) as f64 / ticks);
                handles.resident.set((stat.rss * procfs::page_size()) as f64);
                handles.virtual_memory.set(stat.vsize as f64);
                match procfs::boot_time_secs() {
                    Ok(boot) => handles.start_time.set(boot as f64 + stat.starttime as f64 / ticks),
                    Err(e) => first_error = first_error.or(Some(CollectError::procfs("/proc/stat btime", e))),
                }
            }
            Err(e) => first_error = first_error.or(Some(CollectError::procfs("/proc/self/stat", e))),
        }
        match me.fd_count() {
            Ok(count) => handles.open_fds.set(count as f64),
            Err(e) => first_error = first_error.or(Some(CollectError::procfs("/proc/self/fd", e))),
        }
        match me.limits() {
            Ok(limits) => match limits.max_open_files.soft_limit {
                LimitValue::Value(max) => handles.max_fds.set(max as f64),
                LimitValue::Unlimited => handles.max_fds.set(f64::INFINITY),
            },
            Err(e) => first_error = first_error.or(Some(CollectError::procfs("/proc/self/limits", e))),
        }
        first_error.map_or(Ok(()), Err)
    }

    #[cfg(not(target_os = "linux"))]
    fn collect(&mut self) -> Result<(), CollectError> {
        let _ = (&self.registry, BaseUnit::Seconds, Descriptor::gauge("", ""));
        Err(CollectError::Unavailable("process metrics read /proc, which only Linux has".into()))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use sightline_core::Value;

    #[test]
    fn exports_the_standard_process_metrics() {
        let registry = Registry::new();
        let mut collector = ProcessCollector::new(&registry);
        collector.collect().expect("/proc/self is readable");
        let snapshot = registry.snapshot();
        let value = |name: &str| snapshot.family(name).map(|f| f.series[0].value.clone());
        let Some(Value::Gauge(rss)) = value("process_resident_memory_bytes") else { panic!("no rss") };
        assert!(rss > 1e6, "{rss}");
        let Some(Value::Gauge(fds)) = value("process_open_fds") else { panic!("no fds") };
        assert!(fds >= 3.0, "{fds}");
        let Some(Value::Gauge(start)) = value("process_start_time_seconds") else { panic!("no start") };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(start > now - 3600.0 && start <= now + 1.0, "{start} vs {now}");
        assert!(matches!(value("process_cpu_seconds_total"), Some(Value::FloatCounter(_))));
        assert!(matches!(value("process_max_fds"), Some(Value::Gauge(m)) if m > 0.0));
    }
}
