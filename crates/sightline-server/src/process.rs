//! The standard `process_*` metrics of the server's own process, read from /proc at each scrape.
//!
//! The collectors layer will own a scheduled, reusable version of this; the server keeps the minimum
//! Prometheus clients export by default. Only Linux has /proc: elsewhere the metrics are not exported at
//! all rather than exported as zeros.

use sightline_core::{BaseUnit, Descriptor, FloatCounter, Registry};

/// Handles for the process metrics.
#[derive(Debug, Clone)]
pub struct ProcessMetrics {
    cpu: FloatCounter,
    resident: metrics::Gauge,
    virtual_memory: metrics::Gauge,
    open_fds: metrics::Gauge,
    max_fds: metrics::Gauge,
    start_time: metrics::Gauge,
}

impl ProcessMetrics {
    /// Describes and registers the metrics in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, sightline_core::MetricError> {
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
        Ok(Self {
            cpu: registry.float_counter("process_cpu_seconds_total", &[])?,
            resident: registry.gauge("process_resident_memory_bytes", &[])?,
            virtual_memory: registry.gauge("process_virtual_memory_bytes", &[])?,
            open_fds: registry.gauge("process_open_fds", &[])?,
            max_fds: registry.gauge("process_max_fds", &[])?,
            start_time: registry.gauge("process_start_time_seconds", &[])?,
        })
    }

    /// Reads /proc/self and updates the metrics. Values that cannot be read keep their last value.
    pub fn update(&self) {
        use procfs::process::{LimitValue, Process};
        let Ok(me) = Process::myself() else { return };
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            self.cpu.absolute((stat.utime + stat.stime) as f64 / ticks);
            self.resident.set((stat.rss * procfs::page_size()) as f64);
            self.virtual_memory.set(stat.vsize as f64);
            if let Ok(boot) = procfs::boot_time_secs() {
                self.start_time.set(boot as f64 + stat.starttime as f64 / ticks);
            }
        }
        if let Ok(count) = me.fd_count() {
            self.open_fds.set(count as f64);
        }
        if let Ok(limits) = me.limits() {
            match limits.max_open_files.soft_limit {
                LimitValue::Value(max) => self.max_fds.set(max as f64),
                LimitValue::Unlimited => self.max_fds.set(f64::INFINITY),
            }
        }
    }
}
