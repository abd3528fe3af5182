//! PromQL engine benchmarks over the in-memory store.
//!
//! - `instant_sum_rate_10k`: `sum by (job) (rate(http_requests_total[5m]))` at the end of 1 h of 15 s data
//!   over 10,000 series (target: <= 20 ms).
//! - `range_sum_rate_1k_24h`: the same query as a 24 h range query at a 60 s step over 1,000 series with
//!   24 h of 15 s data (target: <= 200 ms).

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sightline_tsdb::mem::MemStorage;
use sightline_tsdb::promql::{Engine, EngineOptions, Value};
use sightline_tsdb::{Labels, Sample};

const QUERY: &str = "sum by (job) (rate(http_requests_total[5m]))";
const SCRAPE: i64 = 15_000;

/// `series` counters spread over 10 jobs, with `span` milliseconds of samples every 15 s ending at `end`.
fn store(series: usize, span: i64, end: i64) -> MemStorage {
    let store = MemStorage::new();
    let points = span / SCRAPE;
    for i in 0..series {
        let labels = Labels::from_pairs(&[
            ("__name__", "http_requests_total".to_owned()),
            ("job", format!("job-{}", i % 10)),
            ("instance", format!("host-{i}:9100")),
        ]);
        let per_scrape = 1.0 + (i % 7) as f64;
        let samples: Vec<Sample> =
            (0..=points).map(|k| Sample::new(end - span + k * SCRAPE, k as f64 * per_scrape)).collect();
        store.add(labels, samples);
    }
    store
}

fn bench(c: &mut Criterion) {
    let engine = Engine::new(EngineOptions::default());
    let end = 1_700_000_000_000;

    let hour = store(10_000, 3_600_000, end);
    match engine.instant_query(&hour, QUERY, end).unwrap() {
        Value::Vector(v) => assert_eq!(v.len(), 10),
        other => panic!("unexpected {other:?}"),
    }
    c.bench_function("instant_sum_rate_10k", |b| {
        b.iter(|| black_box(engine.instant_query(&hour, QUERY, end).unwrap()))
    });
    drop(hour);

    let day_ms = 86_400_000;
    let day = store(1_000, day_ms + 600_000, end);
    match engine.range_query(&day, QUERY, end - day_ms, end, 60_000).unwrap() {
        Value::Matrix(m) => assert_eq!(m.len(), 10),
        other => panic!("unexpected {other:?}"),
    }
    let mut group = c.benchmark_group("range");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.bench_function("range_sum_rate_1k_24h", |b| {
        b.iter(|| black_box(engine.range_query(&day, QUERY, end - day_ms, end, 60_000).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
