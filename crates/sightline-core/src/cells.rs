//! The atomic cells behind metric handles.
//!
//! Every write is a relaxed atomic read-modify-write on one cell: no lock, no allocation. Readers
//! (snapshots) load the same atomics and never block writers.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics::{CounterFn, GaugeFn, HistogramFn, Key};
use metrics_util::storage::{AtomicBucket, Summary};

use crate::{MetricKind, Value};

// === impl Series ===

/// One series: its key and its cell in a single allocation, which is also the handle the `metrics`
/// macros return. Keeping both together means a snapshot touches one allocation per series.
#[derive(Debug)]
pub(crate) struct Series {
    pub(crate) key: Key,
    pub(crate) cell: Cell,
}

/// The storage of one series; the variant follows the family's kind.
#[derive(Debug)]
pub(crate) enum Cell {
    Counter(CounterCell),
    FloatCounter(FloatCounterCell),
    ShardedCounter(ShardedCounterCell),
    Gauge(GaugeCell),
    // Boxed, like summaries, so that the common counter and gauge series stay small.
    Histogram(Box<HistogramCell>),
    Summary(Box<SummaryCell>),
}

impl Cell {
    pub(crate) fn kind(&self) -> MetricKind {
        match self {
            Cell::Counter(_) | Cell::FloatCounter(_) | Cell::ShardedCounter(_) => MetricKind::Counter,
            Cell::Gauge(_) => MetricKind::Gauge,
            Cell::Histogram(_) => MetricKind::Histogram,
            Cell::Summary(_) => MetricKind::Summary,
        }
    }

    pub(crate) fn read(&self) -> Value {
        match self {
            Cell::Counter(c) => Value::Counter(c.get()),
            Cell::FloatCounter(c) => Value::FloatCounter(c.get()),
            Cell::ShardedCounter(c) => Value::Counter(c.get()),
            Cell::Gauge(g) => Value::Gauge(g.get()),
            Cell::Histogram(h) => Value::Histogram(h.read()),
            Cell::Summary(s) => Value::Summary(s.read()),
        }
    }
}

// The registry hands out an `Arc<Series>` only for the matching kind, so the other arms never run; they
// do nothing rather than panic.
impl CounterFn for Series {
    #[inline]
    fn increment(&self, value: u64) {
        match &self.cell {
            Cell::Counter(c) => c.increment(value),
            Cell::FloatCounter(c) => c.increment(value),
            Cell::ShardedCounter(c) => c.increment(value),
            _ => {}
        }
    }

    #[inline]
    fn absolute(&self, value: u64) {
        match &self.cell {
            Cell::Counter(c) => c.absolute(value),
            Cell::FloatCounter(c) => c.absolute(value),
            Cell::ShardedCounter(c) => c.absolute(value),
            _ => {}
        }
    }
}

impl GaugeFn for Series {
    #[inline]
    fn increment(&self, value: f64) {
        if let Cell::Gauge(g) = &self.cell {
            g.increment(value);
        }
    }

    #[inline]
    fn decrement(&self, value: f64) {
        if let Cell::Gauge(g) = &self.cell {
            g.decrement(value);
        }
    }

    #[inline]
    fn set(&self, value: f64) {
        if let Cell::Gauge(g) = &self.cell {
            g.set(value);
        }
    }
}

impl HistogramFn for Series {
    #[inline]
    fn record(&self, value: f64) {
        match &self.cell {
            Cell::Histogram(h) => h.record(value),
            Cell::Summary(s) => s.record(value),
            _ => {}
        }
    }
}

// === impl CounterCell ===

/// A monotonic counter: one `AtomicU64`.
#[derive(Debug, Default)]
pub(crate) struct CounterCell(AtomicU64);

impl CounterCell {
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl CounterFn for CounterCell {
    #[inline]
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }

    #[inline]
    fn absolute(&self, value: u64) {
        // A counter never goes backwards, even when fed stale absolute values out of order.
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

// === impl ShardedCounterCell ===

/// One cache line (two on CPUs that prefetch pairs of lines), so that shards never share one.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// A counter split into one cell per core, for counters that many threads bump at once: each thread adds
/// to its own cache line, and a read sums the cells. It costs `128 * cores` bytes instead of 8, so it is
/// opt-in (see `RegistryBuilder::with_sharded_counters_for`).
#[derive(Debug)]
pub(crate) struct ShardedCounterCell {
    shards: Box<[Padded]>,
}

impl Default for ShardedCounterCell {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        Self { shards: (0..cores.clamp(2, 64)).map(|_| Padded::default()).collect() }
    }
}

thread_local! {
    /// This thread's shard number, handed out round-robin as threads first touch a sharded counter.
    static SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

#[inline]
fn shard_index() -> usize {
    // During thread-local destruction the slot is gone; any shard is correct, only contention differs.
    SHARD
        .try_with(|shard| {
            let mut index = shard.get();
            if index == usize::MAX {
                index = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
                shard.set(index);
            }
            index
        })
        .unwrap_or(0)
}

impl ShardedCounterCell {
    pub(crate) fn get(&self) -> u64 {
        self.shards.iter().fold(0u64, |sum, shard| sum.wrapping_add(shard.0.load(Ordering::Relaxed)))
    }
}

impl CounterFn for ShardedCounterCell {
    #[inline]
    fn increment(&self, value: u64) {
        self.shards[shard_index() % self.shards.len()].0.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        // Raise the total to `value` by adding the difference to this thread's shard. Racing absolute
        // calls can overshoot by the other's difference; absolute totals belong on plain counters.
        let total = self.get();
        if value > total {
            self.increment(value - total);
        }
    }
}

// === impl FloatCounterCell ===

/// A monotonic counter of fractional amounts (CPU seconds, say): an `f64` kept as bits in an `AtomicU64`.
#[derive(Debug, Default)]
pub(crate) struct FloatCounterCell(AtomicU64);

impl FloatCounterCell {
    pub(crate) fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    pub(crate) fn add(&self, value: f64) {
        // Negative and NaN increments would break monotonicity; they are ignored, as client_golang panics
        // on them and a library must not.
        if value > 0.0 {
            add_f64(&self.0, value);
        }
    }

    pub(crate) fn raise_to(&self, value: f64) {
        let mut current = self.0.load(Ordering::Relaxed);
        while value > f64::from_bits(current) {
            match self.0.compare_exchange_weak(current, value.to_bits(), Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }
}

impl CounterFn for FloatCounterCell {
    fn increment(&self, value: u64) {
        self.add(value as f64);
    }

    fn absolute(&self, value: u64) {
        self.raise_to(value as f64);
    }
}

/// A handle to a counter of fractional amounts, from [`Registry::float_counter`](crate::Registry::float_counter).
///
/// The `metrics` facade only counts integers; Prometheus counters are floats, and some totals (CPU
/// seconds) are naturally fractional.
#[derive(Debug, Clone)]
pub struct FloatCounter(pub(crate) Arc<Series>);

impl FloatCounter {
    /// Adds `value`; negative and NaN amounts are ignored, since a counter never goes down.
    pub fn increment(&self, value: f64) {
        if let Cell::FloatCounter(c) = &self.0.cell {
            c.add(value);
        }
    }

    /// Raises the counter to `value` if it is higher, for totals read from elsewhere (such as /proc).
    pub fn absolute(&self, value: f64) {
        if let Cell::FloatCounter(c) = &self.0.cell {
            c.raise_to(value);
        }
    }
}

// === impl GaugeCell ===

/// A gauge: an `f64` stored as its bits in one `AtomicU64`.
#[derive(Debug, Default)]
pub(crate) struct GaugeCell(AtomicU64);

impl GaugeCell {
    pub(crate) fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl GaugeFn for GaugeCell {
    #[inline]
    fn increment(&self, value: f64) {
        add_f64(&self.0, value);
    }

    #[inline]
    fn decrement(&self, value: f64) {
        add_f64(&self.0, -value);
    }

    #[inline]
    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// Adds to an `f64` kept as bits: a compare-exchange loop, which is uncontended in the common case.
#[inline]
fn add_f64(cell: &AtomicU64, value: f64) {
    let mut current = cell.load(Ordering::Relaxed);
    loop {
        let next = (f64::from_bits(current) + value).to_bits();
        match cell.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

// === impl HistogramCell ===

/// A histogram with fixed buckets: one atomic count per bucket plus an atomic sum.
///
/// Buckets hold non-cumulative counts; the snapshot accumulates them and derives the total count from
/// them, so `_count` always equals the `+Inf` bucket in a snapshot even while writers race with it.
#[derive(Debug)]
pub(crate) struct HistogramCell {
    bounds: Arc<[f64]>,
    /// `bounds.len() + 1` cells; the last one is the `+Inf` bucket.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl HistogramCell {
    pub(crate) fn new(bounds: Arc<[f64]>) -> Self {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self { bounds, counts, sum: AtomicU64::new(0f64.to_bits()) }
    }

    pub(crate) fn read(&self) -> crate::HistogramValue {
        let mut cumulative = 0u64;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = self.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((le, cumulative));
        }
        crate::HistogramValue {
            buckets,
            count: cumulative,
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
        }
    }
}

/// Up to this many buckets, a histogram finds the bucket by counting rather than by binary search.
const LINEAR_SEARCH_MAX: usize = 32;

impl HistogramFn for HistogramCell {
    #[inline]
    fn record(&self, value: f64) {
        // NaN compares false with every bound; it goes to the +Inf bucket, as in client_golang.
        let index = if value.is_nan() {
            self.bounds.len()
        } else if self.bounds.len() <= LINEAR_SEARCH_MAX {
            // Counting the bounds below the value has no data-dependent branch, so it beats a binary
            // search (whose branches mispredict on varied values) for the usual dozen buckets.
            self.bounds.iter().map(|b| usize::from(*b < value)).sum()
        } else {
            self.bounds.partition_point(|b| *b < value)
        };
        self.counts[index].fetch_add(1, Ordering::Relaxed);
        add_f64(&self.sum, value);
    }
}

// === impl SummaryCell ===

/// How a summary computes its quantiles.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryConfig {
    /// The quantiles to report, each in `0..=1`.
    pub quantiles: Vec<f64>,
    /// How far back observations count towards the quantiles.
    pub max_age: Duration,
    /// Into how many slices `max_age` is split; the oldest slice drops out as a whole.
    pub age_buckets: u32,
}

impl Default for SummaryConfig {
    /// The defaults of Prometheus's Go client: quantiles 0.5, 0.9 and 0.99 over the last 10 minutes in
    /// 5 slices.
    fn default() -> Self {
        Self { quantiles: vec![0.5, 0.9, 0.99], max_age: Duration::from_secs(600), age_buckets: 5 }
    }
}

/// How many observations may wait in the lock-free buffer before a writer folds them into the sketch.
const SUMMARY_DRAIN_THRESHOLD: usize = 4096;

/// A summary: quantiles over a sliding time window, plus a cumulative count and sum.
///
/// Writers push into a lock-free [`AtomicBucket`]; the buffer is folded into DDSketch slices (from
/// `metrics-util`) by the snapshot, or by a writer that finds it over [`SUMMARY_DRAIN_THRESHOLD`] and the
/// sketch lock free (`try_lock`, so writers never wait). Memory is therefore bounded by the threshold plus
/// the sketches, whether or not anyone reads the summary.
#[derive(Debug)]
pub(crate) struct SummaryCell {
    pending: AtomicBucket<f64>,
    pending_len: AtomicUsize,
    count: AtomicU64,
    sum: AtomicU64,
    window: Mutex<Window>,
    quantiles: Arc<[f64]>,
}

#[derive(Debug)]
struct Window {
    slices: std::collections::VecDeque<(Instant, Summary)>,
    slice_len: Duration,
    max_age: Duration,
}

impl Window {
    /// The slice that takes observations now, after dropping slices older than `max_age`.
    fn current(&mut self, now: Instant) -> &mut Summary {
        while self.slices.front().is_some_and(|(start, _)| now.duration_since(*start) >= self.max_age) {
            self.slices.pop_front();
        }
        let fresh = self.slices.back().is_some_and(|(start, _)| now.duration_since(*start) < self.slice_len);
        if !fresh {
            self.slices.push_back((now, Summary::with_defaults()));
        }
        let last = self.slices.len() - 1;
        &mut self.slices[last].1
    }
}

impl SummaryCell {
    pub(crate) fn new(config: &SummaryConfig) -> Self {
        let age_buckets = config.age_buckets.max(1);
        Self {
            pending: AtomicBucket::new(),
            pending_len: AtomicUsize::new(0),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
            window: Mutex::new(Window {
                slices: Default::default(),
                slice_len: config.max_age / age_buckets,
                max_age: config.max_age,
            }),
            quantiles: config.quantiles.clone().into(),
        }
    }

    fn drain(&self, window: &mut Window) {
        let slice = window.current(Instant::now());
        let mut drained = 0;
        self.pending.clear_with(|values| {
            drained += values.len();
            for value in values {
                slice.add(*value);
            }
        });
        self.pending_len.fetch_sub(drained.min(self.pending_len.load(Ordering::Relaxed)), Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> crate::SummaryValue {
        let quantiles = {
            // A poisoned lock only means another reader panicked mid-merge; the sketches stay usable.
            let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
            self.drain(&mut window);
            let now = Instant::now();
            window.current(now);
            let mut merged = Summary::with_defaults();
            for (_, slice) in &window.slices {
                // Every slice uses the same defaults, so merging cannot fail.
                let _ = merged.merge(slice);
            }
            self.quantiles.iter().map(|&q| (q, merged.quantile(q).unwrap_or(f64::NAN))).collect()
        };
        crate::SummaryValue {
            quantiles,
            count: self.count.load(Ordering::Relaxed),
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
        }
    }
}

impl HistogramFn for SummaryCell {
    fn record(&self, value: f64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        add_f64(&self.sum, value);
        if value.is_nan() {
            // A sketch cannot rank NaN; it still counts towards _count and poisons _sum, as in client_golang.
            return;
        }
        self.pending.push(value);
        if self.pending_len.fetch_add(1, Ordering::Relaxed) + 1 >= SUMMARY_DRAIN_THRESHOLD
            && let Ok(mut window) = self.window.try_lock()
        {
            self.drain(&mut window);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_le_and_cumulative() {
        let h = HistogramCell::new(vec![1.0, 2.0, 5.0].into());
        for v in [0.5, 1.0, 1.5, 2.0, 7.0, f64::NAN] {
            h.record(v);
        }
        let v = h.read();
        let counts: Vec<u64> = v.buckets.iter().map(|b| b.1).collect();
        assert_eq!(counts, vec![2, 4, 4, 6]);
        assert_eq!(v.count, 6);
        assert!(v.sum.is_nan());
        assert_eq!(v.buckets.last().map(|b| b.0), Some(f64::INFINITY));
    }

    #[test]
    fn float_counter_is_monotonic() {
        let series =
            Series { key: Key::from_static_name("c_total"), cell: Cell::FloatCounter(Default::default()) };
        let c = FloatCounter(Arc::new(series));
        c.increment(0.25);
        c.increment(-1.0);
        c.increment(f64::NAN);
        c.absolute(0.1);
        assert_eq!(c.0.cell.read(), Value::FloatCounter(0.25));
        c.absolute(1.5);
        assert_eq!(c.0.cell.read(), Value::FloatCounter(1.5));
    }

    #[test]
    fn bucket_choice_is_the_same_for_counting_and_binary_search() {
        for n in [1, 5, LINEAR_SEARCH_MAX, LINEAR_SEARCH_MAX + 1, 100] {
            let bounds: Arc<[f64]> = (1..=n).map(|i| i as f64 * 0.5).collect();
            for step in -2..=(2 * n as i64 + 4) {
                let value = step as f64 * 0.25;
                let h = HistogramCell::new(bounds.clone());
                h.record(value);
                let got = h.counts.iter().position(|c| c.load(Ordering::Relaxed) == 1);
                // The first bucket whose upper bound is >= value, or +Inf.
                let want = bounds.iter().position(|b| *b >= value).unwrap_or(bounds.len());
                assert_eq!(got, Some(want), "{n} buckets, value {value}");
            }
        }
    }

    #[test]
    fn sharded_counter_sums_its_shards_across_threads() {
        let c = Arc::new(ShardedCounterCell::default());
        std::thread::scope(|scope| {
            for _ in 0..8 {
                let c = c.clone();
                scope.spawn(move || (0..1000).for_each(|_| c.increment(1)));
            }
        });
        assert_eq!(c.get(), 8000);
        c.absolute(9000);
        assert_eq!(c.get(), 9000);
        c.absolute(10);
        assert_eq!(c.get(), 9000, "absolute never lowers a counter");
    }

    #[test]
    fn gauge_arithmetic() {
        let g = GaugeCell::default();
        g.set(2.5);
        g.increment(1.0);
        g.decrement(0.5);
        assert_eq!(g.get(), 3.0);
    }

    #[test]
    fn counter_absolute_never_goes_back() {
        let c = CounterCell::default();
        c.increment(5);
        c.absolute(3);
        assert_eq!(c.get(), 5);
        c.absolute(9);
        assert_eq!(c.get(), 9);
    }

    #[test]
    fn summary_quantiles_and_drain_threshold() {
        let s = SummaryCell::new(&SummaryConfig::default());
        for i in 1..=10_000 {
            s.record(i as f64);
        }
        // The writers drained on their own at least once, so the buffer stays bounded.
        assert!(s.pending_len.load(Ordering::Relaxed) < SUMMARY_DRAIN_THRESHOLD);
        let v = s.read();
        assert_eq!(v.count, 10_000);
        assert_eq!(v.sum, 50_005_000.0);
        let median = v.quantiles[0].1;
        assert!((median - 5_000.0).abs() < 5_000.0 * 0.02, "median {median}");
        let p99 = v.quantiles[2].1;
        assert!((p99 - 9_900.0).abs() < 9_900.0 * 0.02, "p99 {p99}");
    }

    #[test]
    fn summary_window_expires() {
        let config =
            SummaryConfig { quantiles: vec![0.5], max_age: Duration::from_millis(40), age_buckets: 2 };
        let s = SummaryCell::new(&config);
        s.record(1.0);
        assert_eq!(s.read().quantiles[0].1.round(), 1.0);
        std::thread::sleep(Duration::from_millis(60));
        let v = s.read();
        assert!(v.quantiles[0].1.is_nan(), "old observations left the window");
        assert_eq!(v.count, 1, "count stays cumulative");
    }
}
