//! Storage benchmarks: head ingest, compression of regular series (against the `tsz` Gorilla crate), and
//! selections over 10,000 series.
//!
//! `cargo bench -p sightline-tsdb --bench storage`. Sizes are printed before the timings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use promql_parser::label::{MatchOp, Matcher};
use sightline_tsdb::storage::{Db, TsdbOptions, encoded_size};
use sightline_tsdb::{Labels, Querier, Sample, SelectHints, Storage};
use tsz::stream::{BufferedReader, BufferedWriter};
use tsz::{DataPoint, Decode, Encode, StdDecoder, StdEncoder};

const SERIES: usize = 10_000;
const TARGETS: usize = 10;
const STEP: i64 = 15_000;
const T0: i64 = 1_700_000_000_000;

fn series_labels() -> Vec<Labels> {
    (0..SERIES)
        .map(|i| {
            Labels::from_pairs(&[
                ("__name__", "http_requests_total"),
                ("job", &format!("job{}", i % TARGETS)),
                ("instance", &format!("host{}:9100", i / TARGETS % 100)),
                ("path", &format!("/api/{}", i / 1000)),
            ])
        })
        .collect()
}

fn options() -> TsdbOptions {
    TsdbOptions {
        compaction_interval: Duration::from_secs(3600),
        checkpoint_interval: Duration::from_secs(3600),
        ..TsdbOptions::default()
    }
}

/// A counter growing by small integers.
fn counter(i: i64, s: usize) -> f64 {
    (1000 + s as i64 + i * 3 + (i * 7 + s as i64) % 5) as f64
}

/// A gauge with three significant digits.
fn gauge(i: i64, s: usize) -> f64 {
    f64::from(((i * 13 + s as i64 * 7) % 900 + 100) as i32) / 10.0
}

/// One scrape round: every target's series in one batch, reusing series references.
fn scrape(db: &Db, labels: &[Labels], refs: &mut [u64], round: i64) {
    let t = T0 + round * STEP;
    for target in 0..TARGETS {
        let mut app = db.appender();
        for s in (target..SERIES).step_by(TARGETS) {
            refs[s] = app.append(refs[s], &labels[s], t, counter(round, s)).expect("append");
        }
        app.commit().expect("commit");
    }
}

fn filled(rounds: i64) -> (Db, Vec<Labels>) {
    let db = Db::in_memory(options()).expect("db");
    let labels = series_labels();
    let mut refs = vec![0; SERIES];
    for round in 0..rounds {
        scrape(&db, &labels, &mut refs, round);
    }
    (db, labels)
}

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(SERIES as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));
    let labels = series_labels();

    let db = Db::in_memory(options()).expect("db");
    let mut refs = vec![0; SERIES];
    let mut round = 0;
    group.bench_function("in_memory_10k_series_scrape_round", |b| {
        b.iter(|| {
            scrape(&db, &labels, &mut refs, round);
            round += 1;
        });
    });

    let dir = std::env::temp_dir().join(format!("sightline-tsdb-bench-{}", std::process::id()));
    let (db, _) = Db::open(&dir, options()).expect("open");
    let mut refs = vec![0; SERIES];
    let mut round = 0;
    group.bench_function("wal_10k_series_scrape_round", |b| {
        b.iter(|| {
            scrape(&db, &labels, &mut refs, round);
            round += 1;
        });
    });
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);

    group.bench_function("first_scrape_creates_10k_series", |b| {
        b.iter_batched(
            || Db::in_memory(options()).expect("db"),
            |db| {
                let mut refs = vec![0; SERIES];
                scrape(&db, &labels, &mut refs, 0);
                db
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

fn tsz_size(samples: &[Sample]) -> usize {
    let mut total = 0;
    for part in samples.chunks(120) {
        let mut enc = StdEncoder::new(part[0].t as u64, BufferedWriter::new());
        for s in part {
            enc.encode(DataPoint::new(s.t as u64, s.v));
        }
        let bytes = enc.close();
        total += bytes.len();
        let mut dec = StdDecoder::new(BufferedReader::new(bytes));
        let mut n = 0;
        while let Ok(dp) = dec.next() {
            assert_eq!(dp.get_value().to_bits(), part[n].v.to_bits());
            n += 1;
        }
        assert_eq!(n, part.len());
    }
    total
}

type ValueFn = fn(i64, usize) -> f64;

fn compression(c: &mut Criterion) {
    let n = 24 * 60 * 4; // a day at 15 s
    let kinds: [(&str, ValueFn); 3] = [
        ("counter", counter),
        ("gauge_3_digits", gauge),
        ("random_float", |i, s| ((i as f64) * 0.618_033_988 + s as f64).sin() * 1000.0),
    ];
    for (name, f) in kinds {
        let samples: Vec<Sample> = (0..n).map(|i| Sample::new(T0 + i * STEP, f(i, 3))).collect();
        let ours = encoded_size(&samples).expect("round trip");
        let theirs = tsz_size(&samples);
        eprintln!(
            "bytes/sample for a {name} at 15 s: sightline {:.3}, tsz (Gorilla) {:.3}",
            ours as f64 / n as f64,
            theirs as f64 / n as f64
        );
    }
    let (db, _) = filled(240);
    let stats = db.stats();
    eprintln!(
        "10k counters x 1 h at 15 s in the head: {} samples, {} chunk bytes, {:.3} bytes/sample",
        stats.samples, stats.chunk_bytes, stats.bytes_per_sample
    );

    let mut group = c.benchmark_group("encode_120_samples");
    group.throughput(Throughput::Elements(120));
    let gauge_samples: Vec<Sample> = (0..120).map(|i| Sample::new(T0 + i * STEP, gauge(i, 1))).collect();
    group.bench_function("sightline_gauge", |b| b.iter(|| encoded_size(black_box(&gauge_samples))));
    group.bench_function("tsz_gauge", |b| b.iter(|| tsz_size(black_box(&gauge_samples))));
    group.finish();
}

fn select(c: &mut Criterion) {
    let (db, _) = filled(240); // 1 h of 15 s data
    let db = Arc::new(db);
    let end = T0 + 239 * STEP;
    let name = Matcher::new(MatchOp::Equal, "__name__", "http_requests_total");
    let mut group = c.benchmark_group("select_10k_series");
    group.sample_size(20);
    for (label, window) in [("5m", 5 * 60_000), ("1h", 3_600_000)] {
        let hints = SelectHints {
            start: end - window,
            end,
            range: window,
            func: Some("rate".into()),
            ..SelectHints::default()
        };
        group.bench_function(label, |b| {
            b.iter(|| {
                let got = db.select(std::slice::from_ref(&name), &hints).expect("select");
                assert_eq!(got.len(), SERIES);
                got
            })
        });
    }
    let hints = SelectHints::range(end - 5 * 60_000, end);
    let by_job = [name.clone(), Matcher::new(MatchOp::Equal, "job", "job3")];
    group.bench_function("5m_one_job_1k_series", |b| b.iter(|| db.select(&by_job, &hints).expect("select")));
    group.finish();
}

fn maintenance(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("sightline-tsdb-bench-maint-{}", std::process::id()));
    let (db, _) = Db::open(&dir, options()).expect("open");
    let labels = series_labels();
    let mut refs = vec![0; SERIES];
    for round in 0..240 {
        scrape(&db, &labels, &mut refs, round);
    }
    let end = T0 + 240 * STEP;
    let started = std::time::Instant::now();
    let report = db.compact(end + 2 * 3_600_000);
    eprintln!(
        "first compaction of 10k series x 1 h (downsampling one hour bucket each): {:?}, {report:?}",
        started.elapsed()
    );
    let mut group = c.benchmark_group("maintenance_10k_series_1h");
    group.sample_size(10);
    group.bench_function("checkpoint", |b| b.iter(|| db.checkpoint().expect("checkpoint")));
    group.bench_function("compact_steady_state", |b| b.iter(|| db.compact(end + 2 * 3_600_000)));
    group.finish();
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, compression, ingest, select, maintenance);
criterion_main!(benches);
