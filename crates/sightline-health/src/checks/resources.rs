//! CPU and memory: thresholds on the gauges that Sightline's collectors keep in the metric registry.
//!
//! These checks read a [`Registry`] snapshot and do not measure anything themselves, so they report what
//! the collectors measured at their last collection. They need the host collector (for
//! `sightline_host_cpu_utilisation_ratio` and `sightline_host_memory_used_ratio`) or the process
//! collector (for `process_resident_memory_bytes`) to run against the same registry; until a gauge
//! exists, the probe is [`Status::Unknown`] with a message that says which gauge is missing.
//!
//! A value at or above the failure threshold is Unhealthy, at or above the warning threshold Degraded,
//! and below it Healthy. Bad thresholds are a [`CheckConfigError`] naming the configuration key:
//! `warn_ratio`, `fail_ratio`, `warn_bytes` or `fail_bytes`.
//!
//! ```
//! use sightline_core::Registry;
//! use sightline_health::checks::resources::{CpuCheck, MemoryCheck, DEFAULT_PROCESS_WARN_BYTES};
//!
//! let registry = Registry::new();
//! let cpu = CpuCheck::new(&registry).with_thresholds(0.9, 0.99)?;
//! let host_memory = MemoryCheck::host_ratio(&registry, 0.8, 0.95)?;
//! let rss = MemoryCheck::process_bytes(&registry, DEFAULT_PROCESS_WARN_BYTES, 2 << 30)?;
//! # Ok::<(), sightline_health::checks::CheckConfigError>(())
//! ```

use sightline_core::{Registry, Value};

use super::CheckConfigError;
use crate::{BoxFuture, HealthCheck, Probe, Status};

/// The host collector's CPU utilisation over its last interval, all CPUs together (0 to 1).
pub const CPU_UTILISATION_METRIC: &str = "sightline_host_cpu_utilisation_ratio";
/// The host collector's `1 - MemAvailable / MemTotal` (0 to 1).
pub const HOST_MEMORY_USED_METRIC: &str = "sightline_host_memory_used_ratio";
/// The process collector's resident set size in bytes.
pub const PROCESS_RESIDENT_MEMORY_METRIC: &str = "process_resident_memory_bytes";

/// The default warning threshold for CPU and host memory ratios.
pub const DEFAULT_WARN_RATIO: f64 = 0.80;
/// The default failure threshold for CPU and host memory ratios.
pub const DEFAULT_FAIL_RATIO: f64 = 0.95;
/// The default warning threshold for the process's resident memory: 512 MiB.
pub const DEFAULT_PROCESS_WARN_BYTES: u64 = 512 << 20;
/// The default failure threshold for the process's resident memory: 1 GiB.
pub const DEFAULT_PROCESS_FAIL_BYTES: u64 = 1 << 30;

/// Degraded at or above the host's CPU utilisation `warn` ratio, Unhealthy at or above `fail` (0.80 and
/// 0.95 by default), from `sightline_host_cpu_utilisation_ratio`.
///
/// The observed value is the ratio (`ratio`). The gauge covers the host collector's last interval, so a
/// single busy interval is enough to cross a threshold; the registry's failure threshold damps that.
#[derive(Debug, Clone)]
pub struct CpuCheck {
    gauge: GaugeThreshold,
}

/// Thresholds on memory: either the host's used ratio or the process's resident bytes.
///
/// The observed value is the ratio (`ratio`) or the resident size (`bytes`).
#[derive(Debug, Clone)]
pub struct MemoryCheck {
    gauge: GaugeThreshold,
}

// === impl CpuCheck ===

impl CpuCheck {
    /// A check with the default thresholds, 0.80 and 0.95.
    pub fn new(registry: &Registry) -> Self {
        let thresholds = Thresholds { warn: DEFAULT_WARN_RATIO, fail: DEFAULT_FAIL_RATIO };
        Self { gauge: GaugeThreshold::new(registry, CPU_UTILISATION_METRIC, Subject::Cpu, thresholds) }
    }

    /// Other thresholds: ratios in `(0, 1]`, `warn` below `fail` (keys `warn_ratio`, `fail_ratio`).
    pub fn with_thresholds(mut self, warn: f64, fail: f64) -> Result<Self, CheckConfigError> {
        self.gauge.thresholds = Thresholds::ratios(warn, fail)?;
        Ok(self)
    }

    /// The warning and failure thresholds.
    pub fn thresholds(&self) -> (f64, f64) {
        (self.gauge.thresholds.warn, self.gauge.thresholds.fail)
    }
}

impl HealthCheck for CpuCheck {
    fn check(&self) -> BoxFuture<'_, Probe> {
        Box::pin(async move { self.gauge.probe() })
    }
}

// === impl MemoryCheck ===

impl MemoryCheck {
    /// Thresholds on the host's used memory ratio, `sightline_host_memory_used_ratio`: ratios in
    /// `(0, 1]`, `warn` below `fail` (keys `warn_ratio`, `fail_ratio`; defaults [`DEFAULT_WARN_RATIO`]
    /// and [`DEFAULT_FAIL_RATIO`]).
    pub fn host_ratio(registry: &Registry, warn: f64, fail: f64) -> Result<Self, CheckConfigError> {
        let thresholds = Thresholds::ratios(warn, fail)?;
        Ok(Self {
            gauge: GaugeThreshold::new(registry, HOST_MEMORY_USED_METRIC, Subject::HostMemory, thresholds),
        })
    }

    /// Thresholds on this process's resident memory, `process_resident_memory_bytes`: more than 0,
    /// `warn` below `fail` (keys `warn_bytes`, `fail_bytes`; defaults [`DEFAULT_PROCESS_WARN_BYTES`] and
    /// [`DEFAULT_PROCESS_FAIL_BYTES`]).
    pub fn process_bytes(registry: &Registry, warn: u64, fail: u64) -> Result<Self, CheckConfigError> {
        let thresholds = Thresholds::bytes(warn, fail)?;
        let gauge =
            GaugeThreshold::new(registry, PROCESS_RESIDENT_MEMORY_METRIC, Subject::ProcessMemory, thresholds);
        Ok(Self { gauge })
    }

    /// The gauge the check reads.
    pub fn metric(&self) -> &'static str {
        self.gauge.metric
    }

    /// The warning and failure thresholds, as ratios or bytes.
    pub fn thresholds(&self) -> (f64, f64) {
        (self.gauge.thresholds.warn, self.gauge.thresholds.fail)
    }
}

impl HealthCheck for MemoryCheck {
    fn check(&self) -> BoxFuture<'_, Probe> {
        Box::pin(async move { self.gauge.probe() })
    }
}

// === impl Thresholds ===

#[derive(Debug, Clone, Copy, PartialEq)]
struct Thresholds {
    warn: f64,
    fail: f64,
}

impl Thresholds {
    fn ratios(warn: f64, fail: f64) -> Result<Self, CheckConfigError> {
        for (key, value) in [("warn_ratio", warn), ("fail_ratio", fail)] {
            // Written so that NaN fails too.
            if !(value > 0.0 && value <= 1.0) {
                return Err(CheckConfigError::new(
                    key,
                    format!("must be a ratio above 0 and at most 1 (0.8 means 80%), got {value}"),
                ));
            }
        }
        Self::ordered(warn, fail, "warn_ratio", "fail_ratio")
    }

    fn bytes(warn: u64, fail: u64) -> Result<Self, CheckConfigError> {
        for (key, value) in [("warn_bytes", warn), ("fail_bytes", fail)] {
            if value == 0 {
                return Err(CheckConfigError::new(key, "must be more than 0 bytes"));
            }
        }
        // Exact for every size below 8 PiB, far beyond any resident set.
        let (warn, fail) = (warn as f64, fail as f64);
        Self::ordered(warn, fail, "warn_bytes", "fail_bytes")
    }

    fn ordered(
        warn: f64,
        fail: f64,
        warn_key: &'static str,
        fail_key: &'static str,
    ) -> Result<Self, CheckConfigError> {
        if warn < fail {
            Ok(Self { warn, fail })
        } else {
            Err(CheckConfigError::new(
                warn_key,
                format!(
                    "{warn} must be below `{fail_key}` ({fail}); lower the warning or raise the failure threshold"
                ),
            ))
        }
    }
}

// === impl GaugeThreshold ===

/// What a gauge measures, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    Cpu,
    HostMemory,
    ProcessMemory,
}

impl Subject {
    fn unit(self) -> &'static str {
        match self {
            Subject::Cpu | Subject::HostMemory => "ratio",
            Subject::ProcessMemory => "bytes",
        }
    }

    fn collector(self) -> &'static str {
        match self {
            Subject::Cpu | Subject::HostMemory => "host",
            Subject::ProcessMemory => "process",
        }
    }

    /// The measurement as people read it: "CPU 83%", "memory 83% used", "resident memory 600 MiB".
    fn describe(self, value: f64) -> String {
        match self {
            Subject::Cpu => format!("CPU {}", percent(value)),
            Subject::HostMemory => format!("memory {} used", percent(value)),
            Subject::ProcessMemory => format!("resident memory {}", mebibytes(value)),
        }
    }

    fn threshold(self, value: f64) -> String {
        match self {
            Subject::Cpu | Subject::HostMemory => percent(value),
            Subject::ProcessMemory => mebibytes(value),
        }
    }
}

/// One gauge compared against two thresholds.
#[derive(Debug, Clone)]
struct GaugeThreshold {
    registry: Registry,
    metric: &'static str,
    subject: Subject,
    thresholds: Thresholds,
}

impl GaugeThreshold {
    fn new(registry: &Registry, metric: &'static str, subject: Subject, thresholds: Thresholds) -> Self {
        Self { registry: registry.clone(), metric, subject, thresholds }
    }

    fn probe(&self) -> Probe {
        let Thresholds { warn, fail } = self.thresholds;
        let value = match self.read() {
            Ok(value) => value,
            Err(why) => {
                return Probe {
                    status: Status::Unknown,
                    message: format!("no data: {} {why}", self.metric),
                    details: serde_json::json!({ "metric": self.metric }),
                    observed: None,
                };
            }
        };
        let subject = self.subject;
        let measured = subject.describe(value);
        let probe = if value >= fail {
            Probe::unhealthy(format!("{measured} >= failure {}", subject.threshold(fail)))
        } else if value >= warn {
            Probe::degraded(format!("{measured} >= warning {}", subject.threshold(warn)))
        } else {
            Probe::healthy(format!("{measured} < warning {}", subject.threshold(warn)))
        };
        probe
            .with_details(
                serde_json::json!({ "metric": self.metric, "value": value, "warn": warn, "fail": fail }),
            )
            .with_observed(value, subject.unit())
    }

    /// The gauge's value, or why there is none (completing "no data: <metric> ...").
    fn read(&self) -> Result<f64, String> {
        let snapshot = self.registry.snapshot();
        let collector = self.subject.collector();
        let Some(family) = snapshot.family(self.metric) else {
            return Err(format!("is not collected (is the {collector} collector running?)"));
        };
        // The collectors export these without labels; with labels, the first series stands for all.
        match family.series_with(&[]).map(|series| &series.value) {
            Some(Value::Gauge(value)) if value.is_finite() => Ok(*value),
            Some(Value::Gauge(value)) => Err(format!("is {value}, not a measurement")),
            Some(_) => Err(format!("is a {}, not a gauge", family.kind)),
            None => Err(format!("is not collected (is the {collector} collector running?)")),
        }
    }
}

/// `0.83` as `83%`, `0.835` as `83.5%`.
fn percent(ratio: f64) -> String {
    let text = format!("{:.1}", ratio * 100.0);
    format!("{}%", text.strip_suffix(".0").unwrap_or(&text))
}

/// Bytes as `600 MiB`, `1.5 MiB`.
fn mebibytes(bytes: f64) -> String {
    let text = format!("{:.1}", bytes / f64::from(1u32 << 20));
    format!("{} MiB", text.strip_suffix(".0").unwrap_or(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_percentages_and_sizes() {
        assert_eq!(percent(0.83), "83%");
        assert_eq!(percent(0.835), "83.5%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(mebibytes(512.0 * 1024.0 * 1024.0), "512 MiB");
        assert_eq!(mebibytes(1.5 * 1024.0 * 1024.0), "1.5 MiB");
    }
}
