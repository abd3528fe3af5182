//! The cost of host collection and of scraping what it collected.
//!
//! - `host/collect`: one `HostCollector::collect()` (reads /proc/stat, meminfo, loadavg, diskstats,
//!   net/dev, mounts and statfs for each filesystem, and updates the metrics). Wall time, which on this
//!   path is almost all CPU time (user and kernel) spent producing and parsing the /proc files.
//! - `host/scrape`: snapshot and text rendering of a registry holding the host, process and runtime
//!   metrics: what a `GET /metrics` costs once the collectors have run.
//!
//! `cargo xtask bench` runs this with the other benchmarks; on non-Linux machines the host collector is
//! unavailable and the benchmark only measures the error path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use sightline_collectors::process::ProcessCollector;
use sightline_collectors::{Collector, HostCollector, HostConfig};
use sightline_core::Registry;
use sightline_export::{Format, render};

fn host(c: &mut Criterion) {
    let mut group = c.benchmark_group("host");
    let registry = Registry::new();
    let mut collector = HostCollector::new(&registry, HostConfig::default());
    // Two collections first, so that every series (including the CPU ratios) exists.
    let _ = collector.collect();
    let _ = collector.collect();
    group.bench_function("collect", |b| b.iter(|| collector.collect()));

    let mut process = ProcessCollector::new(&registry);
    let _ = process.collect();
    let series = registry.series_count();
    group.bench_function("scrape", |b| b.iter(|| render(&registry.snapshot(), Format::PrometheusText)));
    group.finish();
    eprintln!("host/scrape renders {series} series");
}

criterion_group!(benches, host);
criterion_main!(benches);
