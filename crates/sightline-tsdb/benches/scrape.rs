//! Scrape ingestion of a 10,000-series target (the budget: parsed and appended in 20 ms), with
//! `openmetrics-parser` parsing the same text as the anchor.
//!
//! Groups (results in `target/criterion/<group>/<case>/new/estimates.json`):
//!
//! - `scrape_parse_10k`: parsing alone. `sightline/series_text` is what a steady-state scrape does (syntax
//!   checked, labels not materialised); `sightline/with_labels` also builds every label set, as a first
//!   scrape does; `openmetrics_parser/prometheus` and `openmetrics_parser/openmetrics` are the anchor on
//!   the same series in both formats.
//! - `scrape_append_10k`: parse and append into a `MemStorage`: `first` with an empty scrape cache and an
//!   empty store, `steady` with a warm cache and a store that already holds the series. The
//!   `*/null_store` cases append into a store that drops everything, to show the scraper's own share
//!   (`MemStorage` is a test store: a `BTreeMap` keyed by label sets, one lock per committed sample).
//!   `steady/db` appends into the real store on disk (its WAL written at every commit), as the server
//!   does; `first/db` creates the 10,000 series in an in-memory `Db`.

// Benches opt back in to unwrapping: a failed setup should stop the bench loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use promql_parser::label::Matcher;
use sightline_tsdb::mem::MemStorage;
use sightline_tsdb::scrape::parse::{Entry, Parser};
use sightline_tsdb::scrape::{Format, LoopOptions, ScrapeLoop};
use sightline_tsdb::{
    AppendError, Appender, Labels, Querier, SelectHints, Series, SeriesRef, Storage, StorageError,
};

/// 10,000 series in 100 families of 100, each with three labels, like a busy service's HTTP metrics.
fn exposition(format: Format) -> String {
    let mut out = String::with_capacity(1 << 20);
    for family in 0..100 {
        let name = format!("app_http_requests_{family}");
        out.push_str(&format!(
            "# HELP {name} Requests handled, by route and status.\n# TYPE {name} counter\n"
        ));
        for series in 0..100 {
            let suffix = if format == Format::OpenMetrics { "_total" } else { "" };
            out.push_str(&format!(
                "{name}{suffix}{{method=\"{}\",route=\"/api/v1/items/{series}\",status=\"{}\"}} {}\n",
                ["GET", "POST", "PUT", "DELETE"][series % 4],
                [200, 201, 404, 500][series / 25],
                family * 1000 + series * 7,
            ));
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

fn parse_only(body: &[u8], with_labels: bool) -> usize {
    let mut parser = Parser::new(body, Format::Prometheus).unwrap();
    let mut labels = Vec::new();
    let mut count = 0;
    while let Some(entry) = parser.next().unwrap() {
        if let Entry::Sample(sample) = entry {
            count += sample.series.len();
            if with_labels {
                labels.clear();
                parser.labels(&mut labels).unwrap();
                count += labels.len();
            }
        }
    }
    count
}

/// A store that accepts and drops every sample, handing out references as a real store does.
struct NullStorage;

struct NullAppender;

impl Querier for NullStorage {
    fn select(&self, _: &[Matcher], _: &SelectHints) -> Result<Vec<Series>, StorageError> {
        Ok(Vec::new())
    }
    fn series(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<Labels>, StorageError> {
        Ok(Vec::new())
    }
    fn label_names(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, StorageError> {
        Ok(Vec::new())
    }
    fn label_values(&self, _: &str, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, StorageError> {
        Ok(Vec::new())
    }
}

impl Storage for NullStorage {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(NullAppender)
    }
}

impl Appender for NullAppender {
    fn append(
        &mut self,
        series: SeriesRef,
        labels: &Labels,
        _: i64,
        v: f64,
    ) -> Result<SeriesRef, AppendError> {
        black_box(v);
        Ok(if series == 0 { labels.len() as u64 } else { series })
    }
    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        Ok(())
    }
    fn rollback(self: Box<Self>) {}
}

fn target() -> Labels {
    Labels::from_pairs(&[("job", "app"), ("instance", "app:8080")])
}

fn bench(c: &mut Criterion) {
    let text = exposition(Format::Prometheus);
    let om = exposition(Format::OpenMetrics);
    assert!(parse_only(text.as_bytes(), true) > 0);

    let mut group = c.benchmark_group("scrape_parse_10k");
    group.sample_size(20).measurement_time(Duration::from_secs(4));
    group.bench_function("sightline/series_text", |b| {
        b.iter(|| parse_only(black_box(text.as_bytes()), false))
    });
    group
        .bench_function("sightline/with_labels", |b| b.iter(|| parse_only(black_box(text.as_bytes()), true)));
    group.bench_function("openmetrics_parser/prometheus", |b| {
        b.iter(|| openmetrics_parser::prometheus::parse_prometheus(black_box(&text)).unwrap())
    });
    group.bench_function("openmetrics_parser/openmetrics", |b| {
        b.iter(|| openmetrics_parser::openmetrics::parse_openmetrics(black_box(&om)).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("scrape_append_10k");
    group.sample_size(20).measurement_time(Duration::from_secs(4));
    group.bench_function("first", |b| {
        b.iter_batched(
            || (MemStorage::new(), ScrapeLoop::new(target(), LoopOptions::default())),
            |(store, mut scrape_loop)| {
                let stats = scrape_loop
                    .append_scrape(&store, 1_000, Ok((text.as_bytes(), Format::Prometheus)), Duration::ZERO)
                    .unwrap();
                assert_eq!(stats.series_added, 10_000);
                (store, scrape_loop)
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("first/null_store", |b| {
        b.iter_batched(
            || ScrapeLoop::new(target(), LoopOptions::default()),
            |mut scrape_loop| {
                let stats = scrape_loop
                    .append_scrape(
                        &NullStorage,
                        1_000,
                        Ok((text.as_bytes(), Format::Prometheus)),
                        Duration::ZERO,
                    )
                    .unwrap();
                assert_eq!(stats.series_added, 10_000);
                scrape_loop
            },
            BatchSize::PerIteration,
        )
    });
    let mut warm = ScrapeLoop::new(target(), LoopOptions::default());
    let mut t_null = 0;
    group.bench_function("steady/null_store", |b| {
        b.iter(|| {
            t_null += 15_000;
            let stats = warm
                .append_scrape(
                    &NullStorage,
                    t_null,
                    Ok((text.as_bytes(), Format::Prometheus)),
                    Duration::ZERO,
                )
                .unwrap();
            assert_eq!(stats.series_added, usize::from(t_null == 15_000) * 10_000);
        })
    });
    // Into the real store, on disk (WAL written at each commit): what the server does.
    let dir = std::env::temp_dir().join(format!("sightline-scrape-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (db, _) =
        sightline_tsdb::storage::Db::open(&dir, sightline_tsdb::storage::TsdbOptions::default()).unwrap();
    let mut db_loop = ScrapeLoop::new(target(), LoopOptions::default());
    let mut t_db = 1_700_000_000_000;
    let stats =
        db_loop.append_scrape(&db, t_db, Ok((text.as_bytes(), Format::Prometheus)), Duration::ZERO).unwrap();
    assert_eq!(stats.series_added, 10_000);
    group.bench_function("steady/db", |b| {
        b.iter(|| {
            t_db += 15_000;
            let stats = db_loop
                .append_scrape(&db, t_db, Ok((text.as_bytes(), Format::Prometheus)), Duration::ZERO)
                .unwrap();
            assert_eq!(stats.series_added, 0);
        })
    });
    group.bench_function("first/db", |b| {
        b.iter_batched(
            || {
                let db =
                    sightline_tsdb::storage::Db::in_memory(sightline_tsdb::storage::TsdbOptions::default())
                        .unwrap();
                (db, ScrapeLoop::new(target(), LoopOptions::default()))
            },
            |(db, mut scrape_loop)| {
                let stats = scrape_loop
                    .append_scrape(&db, 1_000, Ok((text.as_bytes(), Format::Prometheus)), Duration::ZERO)
                    .unwrap();
                assert_eq!(stats.series_added, 10_000);
                (db, scrape_loop)
            },
            BatchSize::PerIteration,
        )
    });
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    // Shared by the set-up (which warms the store) and the timed routine.
    let scrape_loop = RefCell::new(ScrapeLoop::new(target(), LoopOptions::default()));
    let mut t = 0;
    group.bench_function("steady", |b| {
        b.iter_batched(
            || {
                // A store holding the series already, as it does after the first scrape.
                let store = MemStorage::new();
                t += 15_000;
                scrape_loop
                    .borrow_mut()
                    .append_scrape(&store, t, Ok((text.as_bytes(), Format::Prometheus)), Duration::ZERO)
                    .unwrap();
                t += 15_000;
                (store, t)
            },
            |(store, t)| {
                let stats = scrape_loop
                    .borrow_mut()
                    .append_scrape(&store, t, Ok((text.as_bytes(), Format::Prometheus)), Duration::ZERO)
                    .unwrap();
                assert_eq!(stats.series_added, 0);
                store
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
