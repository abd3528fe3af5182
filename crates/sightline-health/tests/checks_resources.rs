//! CPU and memory checks over gauges set by hand in a core registry, as the collectors would set them.

use sightline_core::Registry;
use sightline_health::checks::CheckConfigError;
use sightline_health::checks::resources::{
    CPU_UTILISATION_METRIC, CpuCheck, DEFAULT_PROCESS_FAIL_BYTES, DEFAULT_PROCESS_WARN_BYTES,
    HOST_MEMORY_USED_METRIC, MemoryCheck, PROCESS_RESIDENT_MEMORY_METRIC,
};
use sightline_health::{HealthCheck, Observed, Probe, Status};

const MIB: f64 = 1024.0 * 1024.0;

async fn probe(check: &impl HealthCheck) -> Probe {
    check.check().await
}

fn set(registry: &Registry, metric: &str, value: f64) {
    registry.gauge(metric, &[]).expect("a valid gauge name").set(value);
}

#[tokio::test]
async fn cpu_thresholds_are_inclusive() {
    let registry = Registry::new();
    let check = CpuCheck::new(&registry);
    assert_eq!(check.thresholds(), (0.80, 0.95));

    for (value, status, message) in [
        (0.0, Status::Healthy, "CPU 0% < warning 80%"),
        (0.79, Status::Healthy, "CPU 79% < warning 80%"),
        (0.80, Status::Degraded, "CPU 80% >= warning 80%"),
        (0.83, Status::Degraded, "CPU 83% >= warning 80%"),
        (0.949, Status::Degraded, "CPU 94.9% >= warning 80%"),
        (0.95, Status::Unhealthy, "CPU 95% >= failure 95%"),
        (1.0, Status::Unhealthy, "CPU 100% >= failure 95%"),
    ] {
        set(&registry, CPU_UTILISATION_METRIC, value);
        let probe = probe(&check).await;
        assert_eq!(probe.status, status, "{value}: {probe:?}");
        assert_eq!(probe.message, message);
        assert_eq!(probe.observed, Some(Observed { value, unit: "ratio".to_owned() }));
        assert_eq!(probe.details["metric"], CPU_UTILISATION_METRIC);
        assert_eq!(probe.details["warn"], 0.80);
        assert_eq!(probe.details["fail"], 0.95);
    }
}

#[tokio::test]
async fn cpu_with_other_thresholds() {
    let registry = Registry::new();
    let check = CpuCheck::new(&registry).with_thresholds(0.5, 1.0).unwrap();
    set(&registry, CPU_UTILISATION_METRIC, 0.5);
    assert_eq!(probe(&check).await.status, Status::Degraded);
    set(&registry, CPU_UTILISATION_METRIC, 0.99);
    assert_eq!(probe(&check).await.status, Status::Degraded);
    set(&registry, CPU_UTILISATION_METRIC, 1.0);
    assert_eq!(probe(&check).await.status, Status::Unhealthy);
}

#[tokio::test]
async fn host_memory_ratio() {
    let registry = Registry::new();
    let check = MemoryCheck::host_ratio(&registry, 0.8, 0.95).unwrap();
    assert_eq!(check.metric(), HOST_MEMORY_USED_METRIC);

    for (value, status, message) in [
        (0.5, Status::Healthy, "memory 50% used < warning 80%"),
        (0.8, Status::Degraded, "memory 80% used >= warning 80%"),
        (0.95, Status::Unhealthy, "memory 95% used >= failure 95%"),
    ] {
        set(&registry, HOST_MEMORY_USED_METRIC, value);
        let probe = probe(&check).await;
        assert_eq!((probe.status, probe.message.as_str()), (status, message));
        assert_eq!(probe.observed, Some(Observed { value, unit: "ratio".to_owned() }));
    }
}

#[tokio::test]
async fn process_resident_bytes() {
    let registry = Registry::new();
    let check = MemoryCheck::process_bytes(&registry, DEFAULT_PROCESS_WARN_BYTES, DEFAULT_PROCESS_FAIL_BYTES)
        .unwrap();
    assert_eq!(check.metric(), PROCESS_RESIDENT_MEMORY_METRIC);
    assert_eq!(check.thresholds(), (512.0 * MIB, 1024.0 * MIB));

    for (value, status, message) in [
        (100.0 * MIB, Status::Healthy, "resident memory 100 MiB < warning 512 MiB"),
        (512.0 * MIB - 1.0, Status::Healthy, "resident memory 512 MiB < warning 512 MiB"),
        (512.0 * MIB, Status::Degraded, "resident memory 512 MiB >= warning 512 MiB"),
        (600.5 * MIB, Status::Degraded, "resident memory 600.5 MiB >= warning 512 MiB"),
        (1024.0 * MIB, Status::Unhealthy, "resident memory 1024 MiB >= failure 1024 MiB"),
    ] {
        set(&registry, PROCESS_RESIDENT_MEMORY_METRIC, value);
        let probe = probe(&check).await;
        assert_eq!((probe.status, probe.message.as_str()), (status, message), "{value}");
        assert_eq!(probe.observed, Some(Observed { value, unit: "bytes".to_owned() }));
    }
}

#[tokio::test]
async fn missing_gauge_is_unknown() {
    let registry = Registry::new();
    let cpu = probe(&CpuCheck::new(&registry)).await;
    assert_eq!(cpu.status, Status::Unknown);
    assert_eq!(
        cpu.message,
        "no data: sightline_host_cpu_utilisation_ratio is not collected (is the host collector running?)"
    );
    assert_eq!(cpu.observed, None);

    let memory = probe(&MemoryCheck::host_ratio(&registry, 0.8, 0.95).unwrap()).await;
    assert_eq!(memory.status, Status::Unknown);
    assert!(memory.message.contains(HOST_MEMORY_USED_METRIC), "{}", memory.message);

    let rss = probe(&MemoryCheck::process_bytes(&registry, 1, 2).unwrap()).await;
    assert_eq!(rss.status, Status::Unknown);
    assert_eq!(
        rss.message,
        "no data: process_resident_memory_bytes is not collected (is the process collector running?)"
    );

    // Once the collector sets it, the same check reads it.
    set(&registry, CPU_UTILISATION_METRIC, 0.1);
    assert_eq!(probe(&CpuCheck::new(&registry)).await.status, Status::Healthy);
}

#[tokio::test]
async fn not_a_number_is_unknown() {
    let registry = Registry::new();
    set(&registry, CPU_UTILISATION_METRIC, f64::NAN);
    let probe = probe(&CpuCheck::new(&registry)).await;
    assert_eq!(probe.status, Status::Unknown);
    assert_eq!(probe.message, "no data: sightline_host_cpu_utilisation_ratio is NaN, not a measurement");
}

#[tokio::test]
async fn wrong_kind_is_unknown() {
    let registry = Registry::new();
    registry.histogram("process_resident_memory_bytes", &[]).unwrap().record(1.0);
    let probe = probe(&MemoryCheck::process_bytes(&registry, 1, 2).unwrap()).await;
    assert_eq!(probe.status, Status::Unknown);
    assert_eq!(probe.message, "no data: process_resident_memory_bytes is a histogram, not a gauge");
}

#[test]
fn invalid_ratio_thresholds() {
    let registry = Registry::new();
    for (warn, fail, key) in [
        (0.0, 0.9, "warn_ratio"),
        (-0.1, 0.9, "warn_ratio"),
        (f64::NAN, 0.9, "warn_ratio"),
        (0.5, 1.01, "fail_ratio"),
        (0.5, f64::INFINITY, "fail_ratio"),
        (0.5, 95.0, "fail_ratio"),
        (0.9, 0.9, "warn_ratio"),
        (0.95, 0.8, "warn_ratio"),
    ] {
        let err = CpuCheck::new(&registry).with_thresholds(warn, fail).unwrap_err();
        assert_eq!(err.parameter, key, "{warn}/{fail}: {err}");
        assert_eq!(MemoryCheck::host_ratio(&registry, warn, fail).unwrap_err(), err);
    }

    assert_eq!(
        MemoryCheck::host_ratio(&registry, 0.9, 0.9).unwrap_err().to_string(),
        "invalid `warn_ratio`: 0.9 must be below `fail_ratio` (0.9); lower the warning or raise the failure threshold"
    );
    assert_eq!(
        CpuCheck::new(&registry).with_thresholds(1.5, 2.0).unwrap_err().to_string(),
        "invalid `warn_ratio`: must be a ratio above 0 and at most 1 (0.8 means 80%), got 1.5"
    );
    // The edges that are allowed.
    assert!(CpuCheck::new(&registry).with_thresholds(f64::MIN_POSITIVE, 1.0).is_ok());
}

#[test]
fn invalid_byte_thresholds() {
    let registry = Registry::new();
    assert_eq!(
        MemoryCheck::process_bytes(&registry, 0, 10).unwrap_err(),
        CheckConfigError { parameter: "warn_bytes", reason: "must be more than 0 bytes".to_owned() }
    );
    assert_eq!(
        MemoryCheck::process_bytes(&registry, 10, 0).unwrap_err().to_string(),
        "invalid `fail_bytes`: must be more than 0 bytes"
    );
    let err = MemoryCheck::process_bytes(&registry, 10, 10).unwrap_err();
    assert_eq!(err.parameter, "warn_bytes");
    assert!(err.reason.contains("`fail_bytes`"), "{err}");
    assert!(MemoryCheck::process_bytes(&registry, 1, 2).is_ok());
}
