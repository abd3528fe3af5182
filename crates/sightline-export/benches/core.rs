//! Sightline against its anchors, side by side in one run: `metrics-exporter-prometheus`, `prometheus`
//! (tikv) and `prometheus-client`, and against the physical limit, a bare relaxed `AtomicU64::fetch_add`.
//!
//! Groups (results land in `target/criterion/<group>/<impl>/new/estimates.json`):
//!
//! - `counter_inc_1t`: increment of a cached counter handle, one thread.
//! - `counter_inc_2t`: two threads incrementing the same cached counter; the time is wall time divided by
//!   the operations of one thread, i.e. nanoseconds per operation as each thread sees it.
//! - `counter_lookup_2_labels`: `counter!("name", "a" => "x", "b" => "y")` looked up on every call (each
//!   crate's idiomatic equivalent for the anchors that have no `metrics` facade).
//! - `histogram_record`: record into a cached histogram handle with Prometheus's default buckets.
//! - `render_100k`: text exposition of one counter family with 100,000 label sets (Sightline: snapshot and
//!   render together).
//!
//! Before the timed groups, the bench counts the bytes that holding 100,000 counter series costs each
//! implementation, with a counting global allocator, prints them and writes them to
//! `<target dir>/bench/memory.json`. `cargo xtask bench` runs this and tabulates everything.

// Benches opt back in to unwrapping: a failed setup should stop the bench loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, SamplingMode, measurement::WallTime};
use metrics::{Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter as PcCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram as PcHistogram;
use sightline_core::{DEFAULT_BUCKETS, Registry};
use sightline_export::{Format, render};

// === Counting allocator ===

/// `std::alloc::System`, plus running counts of live bytes and live allocations while [`COUNTING`] is on.
///
/// Bytes are the sizes requested; the allocator's own per-allocation overhead comes on top (glibc: about
/// 8 to 16 bytes each), which is why the allocation count is reported too.
///
/// The count is switched on only around the memory measurements, so that the timed benchmarks pay one
/// relaxed load of an uncontended flag per allocation and nothing else.
#[derive(Debug)]
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_ALLOCS: AtomicI64 = AtomicI64::new(0);

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[inline]
fn count(bytes: i64, allocs: i64) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
        LIVE_ALLOCS.fetch_add(allocs, Ordering::Relaxed);
    }
}

// `GlobalAlloc` is an unsafe trait, so implementing it needs `unsafe`, which the workspace denies. This
// impl only forwards each call unchanged to `System` (so it upholds exactly `System`'s contract) and
// adds to a counter; it lives in the bench binary only, to measure the memory each registry holds.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as i64, 1);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as i64, 1);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as i64), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds the rest.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size as i64 - layout.size() as i64, 0);
        }
        new
    }
}

/// Net bytes and allocations made (and not freed) by `f`, with what `f` returns, which is dropped only
/// after the counts are read.
fn net_alloc<T>(f: impl FnOnce() -> T) -> (Held, T) {
    LIVE_BYTES.store(0, Ordering::SeqCst);
    LIVE_ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let held = f();
    COUNTING.store(false, Ordering::SeqCst);
    (Held { bytes: LIVE_BYTES.load(Ordering::SeqCst), allocations: LIVE_ALLOCS.load(Ordering::SeqCst) }, held)
}

/// What [`net_alloc`] counted.
#[derive(Debug, Clone, Copy)]
struct Held {
    bytes: i64,
    allocations: i64,
}

// === Shared fixtures ===

const SERIES: usize = 100_000;
const CARDINALITY_LIMIT: usize = 200_000;
const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

fn sightline_registry() -> Registry {
    Registry::builder().with_cardinality_limit(CARDINALITY_LIMIT).build()
}

fn mep_recorder() -> PrometheusRecorder {
    PrometheusBuilder::new().set_buckets(&DEFAULT_BUCKETS).unwrap().build_recorder()
}

/// The 100,000 distinct values of label `a`; label `b` is always `"y"`.
fn label_values() -> Vec<String> {
    (0..SERIES).map(|i| format!("value-{i:06}")).collect()
}

/// Observations spread log-uniformly over 1 ms .. 20 s, so every default bucket is hit. Deterministic.
fn observations() -> Vec<f64> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..1024)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            0.001 * (20_000f64).powf(unit)
        })
        .collect()
}

/// Runs `op` `iters` times on each of two threads released together by a barrier, and returns the
/// longer of the two threads' elapsed times: wall time per operation as one thread sees it.
fn two_threads(iters: u64, op: impl Fn() + Sync) -> Duration {
    let barrier = Barrier::new(2);
    let run = || {
        barrier.wait();
        let start = Instant::now();
        for _ in 0..iters {
            op();
        }
        start.elapsed()
    };
    std::thread::scope(|s| {
        let a = s.spawn(run);
        let b = s.spawn(run);
        a.join().unwrap().max(b.join().unwrap())
    })
}

// === Memory: 100k counter series held ===

fn memory(series: usize) -> serde_json::Value {
    let values: Vec<String> = label_values().into_iter().take(series).collect();
    let mut results: Vec<(&str, Held)> = Vec::new();

    let (counted, held) = net_alloc(|| {
        let registry = sightline_registry();
        for v in &values {
            registry.counter("bench_series_total", &[("a", v), ("b", "y")]).unwrap().increment(1);
        }
        registry
    });
    assert_eq!(held.series_count(), series + 1, "every series registered (plus the internal one)");
    drop(held);
    results.push(("sightline", counted));

    let (counted, held) = net_alloc(|| {
        let recorder = mep_recorder();
        for v in &values {
            let key =
                Key::from_parts("bench_series_total", vec![Label::new("a", v.clone()), Label::new("b", "y")]);
            recorder.register_counter(&key, &METADATA).increment(1);
        }
        recorder
    });
    drop(held);
    results.push(("metrics_exporter_prometheus", counted));

    let (counted, held) = net_alloc(|| {
        let registry = prometheus::Registry::new();
        let vec = prometheus::IntCounterVec::new(
            prometheus::Opts::new("bench_series_total", "Bench series."),
            &["a", "b"],
        )
        .unwrap();
        registry.register(Box::new(vec.clone())).unwrap();
        for v in &values {
            vec.with_label_values(&[v.as_str(), "y"]).inc();
        }
        (registry, vec)
    });
    drop(held);
    results.push(("prometheus", counted));

    let (counted, held) = net_alloc(|| {
        let mut registry = prometheus_client::registry::Registry::default();
        let family = Family::<[(&'static str, String); 2], PcCounter>::default();
        registry.register("bench_series", "Bench series.", family.clone());
        for v in &values {
            family.get_or_create(&[("a", v.clone()), ("b", "y".to_owned())]).inc();
        }
        (registry, family)
    });
    drop(held);
    results.push(("prometheus_client", counted));

    println!("memory: net bytes allocated holding {series} counter series (2 labels)");
    for (name, held) in &results {
        println!(
            "  {name:<28} {:>12} bytes  {:>8.2} MB  {:>6.0} B/series  {:>5.2} allocations/series",
            held.bytes,
            held.bytes as f64 / 1e6,
            held.bytes as f64 / series as f64,
            held.allocations as f64 / series as f64,
        );
    }
    let bytes: serde_json::Map<String, serde_json::Value> =
        results.iter().map(|(name, held)| ((*name).to_owned(), held.bytes.into())).collect();
    let allocations: serde_json::Map<String, serde_json::Value> =
        results.iter().map(|(name, held)| ((*name).to_owned(), held.allocations.into())).collect();
    serde_json::json!({
        "description": "net bytes (as requested from the allocator) and allocations made by registering \
                        and holding counter series with 2 labels; counting global allocator around \
                        std::alloc::System",
        "series": series,
        "unit": "bytes",
        "results": bytes,
        "allocations": allocations,
    })
}

/// `<target dir>/bench/memory.json`: `CARGO_TARGET_DIR` if set (relative to the workspace root if
/// relative), else the workspace's `target/`.
fn memory_json_path() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    target.join("bench").join("memory.json")
}

// === (a) cached counter increment ===

fn counter_inc_1t(c: &mut Criterion) {
    let mut group = c.benchmark_group("counter_inc_1t");

    // On the heap like every handle's cell, not in a stack frame that criterion also writes to.
    let atomic = Box::new(AtomicU64::new(0));
    group.bench_function("bare_atomic", |b| {
        b.iter(|| {
            black_box(&atomic).fetch_add(black_box(1), Ordering::Relaxed);
        })
    });

    let registry = sightline_registry();
    let counter = registry.counter("bench_inc_total", &[]).unwrap();
    group.bench_function("sightline", |b| b.iter(|| black_box(&counter).increment(black_box(1))));

    let recorder = mep_recorder();
    let counter = recorder.register_counter(&Key::from_static_name("bench_inc_total"), &METADATA);
    group.bench_function("metrics_exporter_prometheus", |b| {
        b.iter(|| black_box(&counter).increment(black_box(1)))
    });

    let counter = prometheus::IntCounter::new("bench_inc_total", "Bench counter.").unwrap();
    group.bench_function("prometheus", |b| b.iter(|| black_box(&counter).inc_by(black_box(1))));

    let counter = PcCounter::<u64>::default();
    group.bench_function("prometheus_client", |b| b.iter(|| black_box(&counter).inc_by(black_box(1))));

    group.finish();
}

fn counter_inc_2t(c: &mut Criterion) {
    let mut group = c.benchmark_group("counter_inc_2t");

    // On the heap like every handle's cell, not in a stack frame that criterion also writes to.
    let atomic = Box::new(AtomicU64::new(0));
    group.bench_function("bare_atomic", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || {
                black_box(&atomic).fetch_add(black_box(1), Ordering::Relaxed);
            })
        })
    });

    let registry = sightline_registry();
    let counter = registry.counter("bench_inc_total", &[]).unwrap();
    group.bench_function("sightline", |b| {
        b.iter_custom(|iters| two_threads(iters, || black_box(&counter).increment(black_box(1))))
    });
    // The same counter, sharded per core (an opt-in for hot counters).
    let sharded = Registry::builder()
        .with_sharded_counters_for(sightline_core::Matcher::Full("bench_inc_total".into()))
        .build();
    let counter = sharded.counter("bench_inc_total", &[]).unwrap();
    group.bench_function("sightline_sharded", |b| {
        b.iter_custom(|iters| two_threads(iters, || black_box(&counter).increment(black_box(1))))
    });

    let recorder = mep_recorder();
    let counter = recorder.register_counter(&Key::from_static_name("bench_inc_total"), &METADATA);
    group.bench_function("metrics_exporter_prometheus", |b| {
        b.iter_custom(|iters| two_threads(iters, || black_box(&counter).increment(black_box(1))))
    });

    let counter = prometheus::IntCounter::new("bench_inc_total", "Bench counter.").unwrap();
    group.bench_function("prometheus", |b| {
        b.iter_custom(|iters| two_threads(iters, || black_box(&counter).inc_by(black_box(1))))
    });

    let counter = PcCounter::<u64>::default();
    group.bench_function("prometheus_client", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || {
                black_box(&counter).inc_by(black_box(1));
            })
        })
    });

    group.finish();
}

// === (b) counter lookup with 2 static labels ===

fn counter_lookup_2_labels(c: &mut Criterion) {
    let mut group = c.benchmark_group("counter_lookup_2_labels");

    let registry = sightline_registry();
    {
        let _local = metrics::set_default_local_recorder(&registry);
        group.bench_function("sightline", |b| {
            b.iter(|| metrics::counter!("bench_lookup_total", "a" => "x", "b" => "y").increment(black_box(1)))
        });
        // Informational: a facade counter named without `_total` (the registry adds the suffix).
        group.bench_function("sightline_name_without_total", |b| {
            b.iter(|| metrics::counter!("bench_lookup", "a" => "x", "b" => "y").increment(black_box(1)))
        });
    }
    // Informational: the typed API, which checks names and builds an owned key on every call.
    group.bench_function("sightline_typed_api", |b| {
        b.iter(|| {
            registry.counter("bench_lookup_total", &[("a", "x"), ("b", "y")]).unwrap().increment(black_box(1))
        })
    });

    let recorder = mep_recorder();
    {
        let _local = metrics::set_default_local_recorder(&recorder);
        group.bench_function("metrics_exporter_prometheus", |b| {
            b.iter(|| metrics::counter!("bench_lookup_total", "a" => "x", "b" => "y").increment(black_box(1)))
        });
    }

    let vec = prometheus::IntCounterVec::new(
        prometheus::Opts::new("bench_lookup_total", "Bench counter."),
        &["a", "b"],
    )
    .unwrap();
    group.bench_function("prometheus", |b| {
        b.iter(|| black_box(&vec).with_label_values(&["x", "y"]).inc_by(black_box(1)))
    });

    let family = Family::<[(&'static str, &'static str); 2], PcCounter>::default();
    group.bench_function("prometheus_client", |b| {
        b.iter(|| black_box(&family).get_or_create(&[("a", "x"), ("b", "y")]).inc_by(black_box(1)))
    });

    group.finish();
}

// === (c) histogram record ===

fn histogram_record(c: &mut Criterion) {
    let mut group = c.benchmark_group("histogram_record");
    let values = observations();
    let mask = values.len() - 1;

    // The bare limit of a bucketed histogram is one RMW on a bucket count; shown for reference.
    // On the heap like every handle's cell, not in a stack frame that criterion also writes to.
    let atomic = Box::new(AtomicU64::new(0));
    group.bench_function("bare_atomic", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let v = values[i & mask];
            i += 1;
            black_box(&atomic).fetch_add(black_box(v) as u64 | 1, Ordering::Relaxed)
        })
    });

    let registry = sightline_registry();
    let histogram = registry.histogram("bench_hist_seconds", &[]).unwrap();
    group.bench_function("sightline", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let v = values[i & mask];
            i += 1;
            black_box(&histogram).record(black_box(v));
        })
    });

    // metrics-exporter-prometheus buffers observations and folds them into buckets at scrape time; the
    // buffer is drained between samples, outside the timing, so it does not grow without bound.
    let recorder = mep_recorder();
    let handle = recorder.handle();
    let histogram = recorder.register_histogram(&Key::from_static_name("bench_hist_seconds"), &METADATA);
    group.bench_function("metrics_exporter_prometheus", |b| {
        let mut i = 0usize;
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let v = values[i & mask];
                i += 1;
                black_box(&histogram).record(black_box(v));
            }
            let elapsed = start.elapsed();
            handle.run_upkeep();
            elapsed
        })
    });

    let histogram = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(
        "bench_hist_seconds",
        "Bench histogram.",
    ))
    .unwrap();
    group.bench_function("prometheus", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let v = values[i & mask];
            i += 1;
            black_box(&histogram).observe(black_box(v));
        })
    });

    let histogram = PcHistogram::new(DEFAULT_BUCKETS);
    group.bench_function("prometheus_client", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let v = values[i & mask];
            i += 1;
            black_box(&histogram).observe(black_box(v));
        })
    });

    group.finish();
}

// === (d) render 100k series ===

fn render_100k(c: &mut Criterion) {
    let mut group: BenchmarkGroup<'_, WallTime> = c.benchmark_group("render_100k");
    // Tens of milliseconds per iteration: few samples, each of a few iterations.
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    let values = label_values();

    let registry = sightline_registry();
    for (i, v) in values.iter().enumerate() {
        registry.counter("bench_series_total", &[("a", v), ("b", "y")]).unwrap().increment(i as u64);
    }
    let body = render(&registry.snapshot(), Format::PrometheusText);
    assert!(body.lines().count() > SERIES, "every series rendered");
    group.bench_function("sightline", |b| {
        b.iter(|| render(&black_box(&registry).snapshot(), Format::PrometheusText))
    });
    drop(registry);

    let recorder = mep_recorder();
    for (i, v) in values.iter().enumerate() {
        let key =
            Key::from_parts("bench_series_total", vec![Label::new("a", v.clone()), Label::new("b", "y")]);
        recorder.register_counter(&key, &METADATA).increment(i as u64);
    }
    let handle = recorder.handle();
    assert!(handle.render().lines().count() > SERIES, "every series rendered");
    group.bench_function("metrics_exporter_prometheus", |b| b.iter(|| black_box(&handle).render()));
    drop((handle, recorder));

    let registry = prometheus::Registry::new();
    let vec = prometheus::IntCounterVec::new(
        prometheus::Opts::new("bench_series_total", "Bench series."),
        &["a", "b"],
    )
    .unwrap();
    registry.register(Box::new(vec.clone())).unwrap();
    for (i, v) in values.iter().enumerate() {
        vec.with_label_values(&[v.as_str(), "y"]).inc_by(i as u64);
    }
    let encoder = prometheus::TextEncoder::new();
    group.bench_function("prometheus", |b| {
        b.iter(|| {
            let mut out = String::new();
            encoder.encode_utf8(&black_box(&registry).gather(), &mut out).unwrap();
            out
        })
    });
    drop((registry, vec));

    let mut registry = prometheus_client::registry::Registry::default();
    let family = Family::<[(&'static str, String); 2], PcCounter>::default();
    registry.register("bench_series", "Bench series.", family.clone());
    for (i, v) in values.iter().enumerate() {
        family.get_or_create(&[("a", v.clone()), ("b", "y".to_owned())]).inc_by(i as u64);
    }
    group.bench_function("prometheus_client", |b| {
        b.iter(|| {
            let mut out = String::new();
            encode(&mut out, black_box(&registry)).unwrap();
            out
        })
    });

    group.finish();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and criterion then runs each
    // benchmark once as a test. Measure memory at full size only when benchmarking.
    let benchmarking = has("--bench") && !has("--test") && !has("--list");
    if benchmarking {
        let report = memory(SERIES);
        let path = memory_json_path();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
        println!("memory: written to {}", path.display());
    } else if !has("--list") {
        memory(1_000);
    }

    let mut criterion = Criterion::default().configure_from_args();
    counter_inc_1t(&mut criterion);
    counter_inc_2t(&mut criterion);
    counter_lookup_2_labels(&mut criterion);
    histogram_record(&mut criterion);
    render_100k(&mut criterion);
    criterion.final_summary();
}
