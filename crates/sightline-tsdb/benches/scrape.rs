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
//!   empty store, `steady` with a warm cache and a store that already holds the series.

// Benches opt back in to unwrapping: a failed setup should stop the bench loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use sightline_tsdb::Labels;
use sightline_tsdb::mem::MemStorage;
use sightline_tsdb::scrape::parse::{Entry, Parser};
use sightline_tsdb::scrape::{Format, LoopOptions, ScrapeLoop};

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
