//! PromQL engine benchmarks over the real store (`storage::Db`, in memory, filled through its
//! `Appender`) and, for comparison, over the simple test store `mem::MemStorage`.
//!
//! - `instant_sum_rate_10k/{db,mem}`: `sum by (job) (rate(http_requests_total[5m]))` at the end of 1 h of
//!   15 s data over 10,000 series (target: <= 20 ms).
//! - `range_sum_rate_1k_24h/{db,mem}`: the same query as a 24 h range query at a 60 s step over 1,000
//!   series with 24 h of 15 s data (target: <= 200 ms).
//!
//! The `db` rows are the ones the targets are judged on. The dataset is `support/dataset.rs`, which
//! `benches/prometheus_anchor.rs` also loads into Prometheus.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/dataset.rs"]
mod dataset;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dataset::{DAY_MS, HOUR_MS, JOBS, QUERY, STEP_MS};
use sightline_tsdb::Querier;
use sightline_tsdb::promql::{Engine, EngineOptions, Value};
use sightline_tsdb::storage::{Db, TsdbOptions};

const END: i64 = 1_700_000_000_000;

fn db(series: usize, span: i64) -> Db {
    let db = Db::in_memory(TsdbOptions::default()).expect("db");
    dataset::fill_db(&db, series, span, END);
    db
}

fn check_instant(engine: &Engine, store: &dyn Querier) {
    match engine.instant_query(store, QUERY, END).unwrap() {
        Value::Vector(v) => assert_eq!(v.len(), JOBS),
        other => panic!("unexpected {other:?}"),
    }
}

fn check_range(engine: &Engine, store: &dyn Querier) {
    match engine.range_query(store, QUERY, END - DAY_MS, END, STEP_MS).unwrap() {
        Value::Matrix(m) => {
            assert_eq!(m.len(), JOBS);
            assert!(m.iter().all(|s| s.samples.len() == (DAY_MS / STEP_MS + 1) as usize));
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn instant(c: &mut Criterion) {
    let engine = Engine::new(EngineOptions::default());
    let mut group = c.benchmark_group("instant_sum_rate_10k");
    let stores: [(&str, Box<dyn Querier>); 2] =
        [("db", Box::new(db(10_000, HOUR_MS))), ("mem", Box::new(dataset::mem_store(10_000, HOUR_MS, END)))];
    for (name, store) in &stores {
        check_instant(&engine, store.as_ref());
        group.bench_function(*name, |b| {
            b.iter(|| black_box(engine.instant_query(store.as_ref(), QUERY, END).unwrap()))
        });
    }
    group.finish();
}

fn range(c: &mut Criterion) {
    let engine = Engine::new(EngineOptions::default());
    let mut group = c.benchmark_group("range_sum_rate_1k_24h");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    // 10 minutes before the range, so that its first step has a full 5 m window.
    let span = DAY_MS + 600_000;
    let stores: [(&str, Box<dyn Querier>); 2] =
        [("db", Box::new(db(1_000, span))), ("mem", Box::new(dataset::mem_store(1_000, span, END)))];
    for (name, store) in &stores {
        check_range(&engine, store.as_ref());
        group.bench_function(*name, |b| {
            b.iter(|| {
                black_box(engine.range_query(store.as_ref(), QUERY, END - DAY_MS, END, STEP_MS).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, instant, range);
criterion_main!(benches);
