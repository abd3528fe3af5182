//! The per-execution overhead of execution tracking, against its floor in the same run: a bare pair of
//! `Instant::now()` reads (what timing anything by hand costs).
//!
//! Group `execution` (results in `target/criterion/execution/<case>/new/estimates.json`):
//!
//! - `instant_pair`: `Instant::now()` then `elapsed()`.
//! - `track_empty_future`: `tracker.track("plugin", "scan", async {})`, polled once to completion with a
//!   no-op waker: handle lookup, span (disabled: no subscriber), in-flight gauge up and down, outcome
//!   counter, duration histogram.
//! - `track_ok_future`: the same around `async { Ok::<u64, ()>(1) }`.
//! - `guard_success`: `tracker.start("plugin", "scan").success()`, the synchronous guard.
//! - `guard_retry_items_success`: the guard with one retry and one `add_items`.
//! - `track_empty_future_fmt_subscriber`: `track_empty_future` with a `tracing_subscriber::fmt`
//!   subscriber at `INFO` (writing to `io::sink`) as the thread's default, so that the span is enabled:
//!   what the span itself costs with a typical subscriber.
//!
//! The budget is `track_empty_future` <= 300 ns, with no `tracing` subscriber: the span's cost with one
//! depends on the subscriber.

// Benches opt back in to unwrapping: a failed setup should stop the bench loudly.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sightline_collectors::execution::Tracker;
use sightline_core::Registry;

/// Polls `future` once with a no-op waker; the benchmarked futures complete in one poll.
#[inline(always)]
fn poll_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the benchmarked future must complete in one poll"),
    }
}

fn execution(c: &mut Criterion) {
    let registry = Registry::new();
    let tracker = Tracker::new(&registry);
    // Register the series outside the measurement.
    tracker.start("plugin", "scan").success();

    let mut group = c.benchmark_group("execution");
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));

    group.bench_function("instant_pair", |b| {
        b.iter(|| {
            let start = Instant::now();
            black_box(start.elapsed())
        })
    });

    group.bench_function("track_empty_future", |b| {
        b.iter(|| poll_ready(tracker.track(black_box("plugin"), black_box("scan"), async {})))
    });

    group.bench_function("track_ok_future", |b| {
        b.iter(|| {
            poll_ready(tracker.track(black_box("plugin"), black_box("scan"), async { Ok::<u64, ()>(1) }))
        })
    });

    group.bench_function("guard_success", |b| {
        b.iter(|| tracker.start(black_box("plugin"), black_box("scan")).success())
    });

    group.bench_function("guard_retry_items_success", |b| {
        b.iter(|| {
            let guard = tracker.start(black_box("plugin"), black_box("scan"));
            guard.retry();
            guard.add_items(black_box(2));
            guard.success();
        })
    });

    let subscriber =
        tracing_subscriber::fmt().with_writer(std::io::sink).with_max_level(tracing::Level::INFO).finish();
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("track_empty_future_fmt_subscriber", |b| {
            b.iter(|| poll_ready(tracker.track(black_box("plugin"), black_box("scan"), async {})))
        });
    });

    group.finish();
}

criterion_group!(benches, execution);
criterion_main!(benches);
