//! The query benchmarks' dataset, shared by `benches/promql.rs` (criterion) and
//! `benches/prometheus_anchor.rs` (against Prometheus), so that both measure the same samples.
//!
//! `series` counters `http_requests_total{job="job-<i % 10>", instance="host-<i>:9100"}`, one sample
//! every 15 s over `span` milliseconds ending at `end`; series `i` grows by `1 + i % 7` per scrape.

#![allow(dead_code)] // Each bench uses part of this module.

use std::io::Write;

use sightline_tsdb::mem::MemStorage;
use sightline_tsdb::storage::Db;
use sightline_tsdb::{Labels, Sample, Storage};

/// The query both targets are stated for.
pub const QUERY: &str = "sum by (job) (rate(http_requests_total[5m]))";
/// The scrape interval of the dataset.
pub const SCRAPE_MS: i64 = 15_000;
/// One hour, the span of the instant query's dataset.
pub const HOUR_MS: i64 = 3_600_000;
/// One day, the range of the range query.
pub const DAY_MS: i64 = 86_400_000;
/// The range query's step.
pub const STEP_MS: i64 = 60_000;
/// Jobs the series are spread over (the number of output series of the query).
pub const JOBS: usize = 10;

/// The label set of series `i`.
pub fn labels(i: usize) -> Labels {
    Labels::from_pairs(&[
        ("__name__", "http_requests_total".to_owned()),
        ("job", format!("job-{}", i % JOBS)),
        ("instance", format!("host-{i}:9100")),
    ])
}

/// The value of series `i` at its `k`-th scrape.
pub fn value(i: usize, k: i64) -> f64 {
    k as f64 * (1.0 + (i % 7) as f64)
}

/// Timestamps of the dataset: `span / 15 s + 1` scrapes ending at `end`.
pub fn timestamps(span: i64, end: i64) -> impl Iterator<Item = (i64, i64)> {
    (0..=span / SCRAPE_MS).map(move |k| (k, end - span + k * SCRAPE_MS))
}

/// The dataset in a [`MemStorage`].
pub fn mem_store(series: usize, span: i64, end: i64) -> MemStorage {
    let store = MemStorage::new();
    for i in 0..series {
        let samples: Vec<Sample> = timestamps(span, end).map(|(k, t)| Sample::new(t, value(i, k))).collect();
        store.add(labels(i), samples);
    }
    store
}

/// Appends the dataset to `db` as scrapes would: one batch per timestamp holding every series, with the
/// series references kept between batches.
pub fn fill_db(db: &Db, series: usize, span: i64, end: i64) {
    let labels: Vec<Labels> = (0..series).map(labels).collect();
    let mut refs = vec![0; series];
    for (k, t) in timestamps(span, end) {
        let mut app = db.appender();
        for (i, l) in labels.iter().enumerate() {
            refs[i] = app.append(refs[i], l, t, value(i, k)).expect("append");
        }
        app.commit().expect("commit");
    }
}

/// Writes the dataset as OpenMetrics text (what `promtool tsdb create-blocks-from openmetrics` reads):
/// every series' samples in time order, timestamps in seconds.
pub fn write_openmetrics(out: &mut impl Write, series: usize, span: i64, end: i64) -> std::io::Result<()> {
    // OpenMetrics names a counter family without `_total`; its samples carry the suffix.
    writeln!(out, "# HELP http_requests Requests handled.")?;
    writeln!(out, "# TYPE http_requests counter")?;
    for i in 0..series {
        let name = format!("http_requests_total{{job=\"job-{}\",instance=\"host-{i}:9100\"}}", i % JOBS);
        for (k, t) in timestamps(span, end) {
            writeln!(out, "{name} {} {}.{:03}", value(i, k), t.div_euclid(1000), t.rem_euclid(1000))?;
        }
    }
    writeln!(out, "# EOF")
}
