//! Range functions over a lazily read selection ([`crate::traits::SeriesSet`]): each series is read into
//! one reused buffer and its windows evaluated there, so a range query over millions of samples never
//! holds them all, and series are spread over the engine's threads.
//!
//! The result is the one the materialised path ([`MatrixVal`](super::eval::MatrixVal) and
//! `Evaluator::range_function`) gives: the same series in the same order, the same window arithmetic
//! (`RangeCall`), the same sample limit and error. Subqueries and selectors with `or` alternatives take
//! the materialised path.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::VectorSelector;

use crate::labels::METRIC_NAME;
use crate::promql::eval::{Evaluator, Grid, Row, Val};
use crate::promql::value::QueryError;
use crate::sample::{Sample, is_stale};
use crate::traits::SelectHints;

/// Estimated work (series x (steps + 16)) below which a call runs on the calling thread only: starting a
/// thread costs tens of microseconds, about what a thousand short windows take.
const PARALLEL_WORK: usize = 16_384;

/// Series deadline checks are this many series apart.
const DEADLINE_EVERY: usize = 256;

/// What one block of series produced.
struct Block {
    /// The series with samples in the range, in selection order, with their output values.
    rows: Vec<Row>,
    /// Samples read (staleness markers included), which the sample limit counts.
    samples: usize,
}

/// Why the workers stopped early.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    TooManySamples,
    Timeout,
}

// === impl Evaluator ===

impl Evaluator<'_> {
    /// A range function whose argument is the selector `vs[range]`, evaluated over a lazily read
    /// selection. `param` is the scalar argument of `predict_linear` and `quantile_over_time`.
    pub fn range_function_lazy(
        &mut self,
        name: &str,
        vs: &VectorSelector,
        range: i64,
        grid: Grid,
        param: &[f64],
    ) -> Result<Val, QueryError> {
        let ends = self.effective_times(grid, &vs.at, &vs.offset);
        let (Some(&first), Some(&last)) = (ends.first(), ends.last()) else {
            return self.range_function_rows(name, Vec::new(), true);
        };
        let hints = SelectHints {
            start: first.saturating_sub(range).saturating_add(1),
            end: last,
            step: if grid.is_instant() { 0 } else { grid.step },
            func: Some(name.to_owned()),
            range,
        };
        self.check_deadline("series selection")?;
        let mut matchers: Vec<Matcher> = vs.matchers.matchers.clone();
        matchers.extend(vs.name.as_ref().map(|n| Matcher::new(MatchOp::Equal, METRIC_NAME, n)));
        let set = self.querier.select_lazy(&matchers, &hints)?;
        let call = self.range_call(name, &ends, range, vs.at.is_some(), grid, param)?;
        let steps = call.steps();

        // The limit the materialised path checks once the whole selection is held.
        let budget = self.max_samples.saturating_sub(self.current_samples);
        let total = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let timed_out = AtomicBool::new(false);
        let deadline = self.deadline;
        let n = set.len();
        let threads =
            if n.saturating_mul(steps.saturating_add(16)) < PARALLEL_WORK { 1 } else { self.threads };
        let work = |range: Range<usize>| -> Block {
            let mut block = Block { rows: Vec::new(), samples: 0 };
            let mut buf: Vec<Sample> = Vec::new();
            let mut resets: Vec<usize> = Vec::new();
            for i in range {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if i % DEADLINE_EVERY == 0 && Instant::now() >= deadline {
                    timed_out.store(true, Ordering::Relaxed);
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
                set.read(i, &mut buf);
                block.samples += buf.len();
                if total.fetch_add(buf.len(), Ordering::Relaxed).saturating_add(buf.len()) > budget {
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
                // Staleness markers only end a series; range functions never see them.
                if buf.iter().any(|s| is_stale(s.v)) {
                    buf.retain(|s| !is_stale(s.v));
                }
                if buf.is_empty() {
                    continue;
                }
                let mut vals = vec![None; steps];
                call.eval_series(&buf, &mut resets, &mut vals);
                // The labels are cloned here, on the worker, rather than after: a clone touches the
                // label set's memory, which for 10,000 series is mostly cache misses.
                block.rows.push(Row { labels: set.labels(i).clone(), vals });
            }
            block
        };
        let blocks = par_blocks(n, threads, &work);

        let samples: usize = blocks.iter().map(|b| b.samples).sum();
        let stopped = stop
            .load(Ordering::Relaxed)
            .then(|| if timed_out.load(Ordering::Relaxed) { Stop::Timeout } else { Stop::TooManySamples });
        match stopped {
            Some(Stop::Timeout) => return Err(QueryError::Timeout("range function evaluation")),
            Some(Stop::TooManySamples) => {
                return Err(QueryError::TooManySamples {
                    stage: "series selection",
                    limit: self.max_samples,
                });
            }
            None => {}
        }
        self.hold(samples, "series selection")?;
        let count: usize = blocks.iter().map(|b| b.rows.len()).sum();
        self.check_dense(count, steps, "range function evaluation")?;
        let rows: Vec<Row> = blocks.into_iter().flat_map(|b| b.rows).collect();
        // Series selected by an exact metric name all carry it: no need to look it up in each.
        let one_name = vs.name.is_some()
            || vs.matchers.matchers.iter().any(|m| m.name == METRIC_NAME && matches!(m.op, MatchOp::Equal));
        self.range_function_rows(name, rows, one_name)
    }
}

/// Runs `work` over `0..n` cut into blocks, on up to `threads` threads that take blocks in turn (so a
/// thread slowed by other load takes fewer), and returns the blocks' results in order.
fn par_blocks<T: Send>(n: usize, threads: usize, work: &(dyn Fn(Range<usize>) -> T + Sync)) -> Vec<T> {
    let threads = threads.max(1);
    // A few blocks per thread balance the load; blocks of at least 16 series keep the hand-out cheap.
    let block = if threads == 1 { n.max(1) } else { n.div_ceil(threads * 8).max(16) };
    let blocks = n.div_ceil(block);
    let range = |b: usize| b * block..((b + 1) * block).min(n);
    let threads = threads.min(blocks);
    if threads <= 1 {
        return (0..blocks).map(|b| work(range(b))).collect();
    }
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut done = Vec::new();
        loop {
            let b = next.fetch_add(1, Ordering::Relaxed);
            if b >= blocks {
                return done;
            }
            done.push((b, work(range(b))));
        }
    };
    let mut done: Vec<(usize, T)> = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(worker)).collect();
        let mut done = worker();
        for h in helpers {
            done.extend(h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        done
    });
    done.sort_unstable_by_key(|(b, _)| *b);
    done.into_iter().map(|(_, t)| t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;
    use crate::mem::MemStorage;
    use crate::promql::{Engine, EngineOptions, QueryError, Value};
    use crate::sample::stale_nan;
    use crate::storage::{Db, TsdbOptions};
    use crate::traits::{Querier, Storage};

    /// 2023-11-14T22:13:20Z: 13 min 20 s into an hour, so chunks are cut both at 120 samples and at hour
    /// boundaries.
    const T0: i64 = 1_700_000_000_000;

    /// Random series: counters with resets, gauges with short decimals and long fractions (both chunk
    /// encodings), irregular intervals, gaps, staleness markers, NaN and repeated values.
    fn random_series(rng: &mut fastrand::Rng, n: usize, span: i64) -> Vec<(Labels, Vec<Sample>)> {
        (0..n)
            .map(|i| {
                let labels = Labels::from_pairs(&[
                    ("__name__", if i % 3 == 0 { "g" } else { "c" }.to_owned()),
                    ("job", format!("j{}", i % 4)),
                    ("i", i.to_string()),
                ]);
                let mut samples = Vec::new();
                let mut t = T0 - span + rng.u64(..30_000) as i64;
                let mut v = 0.0f64;
                while t <= T0 {
                    match rng.u64(..100) {
                        0..=2 => samples.push(Sample::new(t, stale_nan())),
                        3 => samples.push(Sample::new(t, f64::NAN)),
                        4..=6 => {
                            v = (rng.u64(..5)) as f64;
                            samples.push(Sample::new(t, v));
                        }
                        7..=9 => samples.push(Sample::new(t, v)),
                        _ => {
                            v += if i % 3 == 0 {
                                (rng.u64(..2001) as f64 - 1000.0) / 10.0
                            } else if i % 5 == 1 {
                                rng.u64(..1000) as f64 / 7.0
                            } else {
                                rng.u64(..50) as f64
                            };
                            samples.push(Sample::new(t, v));
                        }
                    }
                    t += match rng.u64(..10) {
                        0 => 1 + rng.u64(..5_000) as i64,
                        1 => 60_000 + rng.u64(..600_000) as i64,
                        _ => 15_000,
                    };
                }
                (labels, samples)
            })
            .collect()
    }

    fn stores(series: &[(Labels, Vec<Sample>)]) -> (Db, MemStorage) {
        let db = Db::in_memory(TsdbOptions::default()).expect("db");
        let mem = MemStorage::new();
        for (labels, samples) in series {
            let mut app = db.appender();
            let mut r = 0;
            for s in samples {
                r = app.append(r, labels, s.t, s.v).expect("append");
            }
            app.commit().expect("commit");
            mem.add(labels.clone(), samples.iter().copied());
        }
        (db, mem)
    }

    /// A result with every value as its bits, so NaNs compare and nothing is rounded.
    fn exact(v: Result<Value, QueryError>) -> String {
        match v {
            Ok(Value::Vector(v)) => {
                v.iter().map(|s| format!("{} {} {:x}\n", s.labels, s.t, s.v.to_bits())).collect()
            }
            Ok(Value::Matrix(m)) => m
                .iter()
                .map(|s| {
                    let pts: Vec<String> =
                        s.samples.iter().map(|p| format!("{}:{:x}", p.t, p.v.to_bits())).collect();
                    format!("{} {}\n", s.labels, pts.join(" "))
                })
                .collect(),
            Ok(other) => format!("{other:?}"),
            Err(e) => format!("error: {e}"),
        }
    }

    const FUNCS: [&str; 18] = [
        "rate",
        "increase",
        "delta",
        "irate",
        "idelta",
        "deriv",
        "changes",
        "resets",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "sum_over_time",
        "count_over_time",
        "last_over_time",
        "first_over_time",
        "present_over_time",
        "stddev_over_time",
        "stdvar_over_time",
    ];

    /// Every range function, with ranges, offsets and `@` that put window edges inside chunks, at chunk
    /// boundaries and past the data, plus the functions with a parameter and aggregations over them.
    fn queries() -> Vec<String> {
        let mut out = Vec::new();
        for (k, f) in FUNCS.iter().enumerate() {
            let sel =
                ["c[5m]", "g[1m]", "{job=~\"j[01]\"}[17m]", "c[1h] offset 7m", "c[5m] offset -3m"][k % 5];
            out.push(format!("{f}({sel})"));
            out.push(format!("{f}(c{{job!=\"j2\"}}[45s] @ {})", (T0 - 1_234_567) / 1000));
        }
        out.push("predict_linear(g[10m], 600)".to_owned());
        out.push("predict_linear(c[10m] @ start(), time() - 1700000000)".to_owned());
        out.push("quantile_over_time(0.7, g[15m])".to_owned());
        out.push("quantile_over_time(scalar(max(c)) / 1000, c[3m] offset 1m)".to_owned());
        out.push("sum by (job) (rate(c[5m]))".to_owned());
        out.push("sum(rate({__name__=~\"c|g\"}[5m]))".to_owned());
        out.push("rate({__name__=~\"c|g\"}[5m])".to_owned());
        out.push("count(count_over_time({job=\"j3\"}[2h]))".to_owned());
        out
    }

    /// The lazy path (on one and on several threads) gives bit for bit what the materialised path gives,
    /// over the real store and over the test store.
    #[test]
    fn lazy_range_functions_equal_the_materialised_path_on_random_data() {
        let mut rng = fastrand::Rng::with_seed(0x5eed_1234_abcd_0001);
        let series = random_series(&mut rng, 40, 3 * 3_600_000);
        let (db, mem) = stores(&series);
        let reference = Engine::new(EngineOptions::default()).with_parallelism(1).materialised();
        let single = Engine::new(EngineOptions::default()).with_parallelism(1);
        let parallel = Engine::new(EngineOptions::default()).with_parallelism(3);
        let mut compared = 0;
        let mut non_empty = 0;
        for q in queries() {
            for store in [&db as &dyn Querier, &mem] {
                for t in [T0, T0 - 2_700_000, T0 - 3_600_000 + 1, T0 - 5_432_100, T0 + 240_000] {
                    let want = exact(reference.instant_query(store, &q, t));
                    non_empty += usize::from(want.contains('{'));
                    assert_eq!(exact(single.instant_query(store, &q, t)), want, "{q} at {t}");
                    assert_eq!(exact(parallel.instant_query(store, &q, t)), want, "{q} at {t}, threads");
                    compared += 1;
                }
                let range = |e: &Engine| exact(e.range_query(store, &q, T0 - 7_200_000, T0 + 60_000, 37_000));
                let want = range(&reference);
                non_empty += usize::from(want.contains('{'));
                assert_eq!(range(&single), want, "{q} over a range");
                assert_eq!(range(&parallel), want, "{q} over a range, threads");
                compared += 1;
            }
        }
        assert!(compared > 400);
        // The comparison means something only if most results hold series.
        assert!(non_empty * 10 > compared * 8, "{non_empty} of {compared} results are not empty");
    }

    /// Enough series that the call runs on several threads, each taking several blocks.
    #[test]
    fn lazy_range_functions_over_many_series_split_across_threads() {
        let mut rng = fastrand::Rng::with_seed(0x0dd_ba11);
        let series = random_series(&mut rng, 3000, 1_800_000);
        let (db, _) = stores(&series);
        let reference = Engine::new(EngineOptions::default()).materialised();
        let parallel = Engine::new(EngineOptions::default()).with_parallelism(2);
        for q in ["rate(c[5m])", "sum by (job) (increase(c[10m]))", "max_over_time({job=\"j1\"}[1m])"] {
            let want = exact(reference.instant_query(&db, q, T0));
            assert!(want.lines().count() >= 4, "{q}: {want}");
            assert_eq!(exact(parallel.instant_query(&db, q, T0)), want, "{q}");
            let want = exact(reference.range_query(&db, q, T0 - 600_000, T0, 60_000));
            assert_eq!(exact(parallel.range_query(&db, q, T0 - 600_000, T0, 60_000)), want, "{q} range");
        }
    }

    /// The sample limit fails the same way on both paths, wherever it falls.
    #[test]
    fn the_sample_limit_applies_to_lazy_reads_as_to_materialised_ones() {
        let mut rng = fastrand::Rng::with_seed(42);
        let series = random_series(&mut rng, 300, 1_800_000);
        let (db, _) = stores(&series);
        // What `rate(c[5m])` at T0 selects.
        let held = {
            let hints = SelectHints { start: T0 - 299_999, end: T0, ..SelectHints::default() };
            let sel = db.select(&[Matcher::new(MatchOp::Equal, METRIC_NAME, "c")], &hints).expect("select");
            sel.iter().map(|s| s.samples.len()).sum::<usize>()
        };
        assert!(held > 1000);
        for max_samples in [1, held / 2, held - 1, held, held + 1, held * 10] {
            let opts = EngineOptions { max_samples, ..EngineOptions::default() };
            let want = exact(Engine::new(opts.clone()).materialised().instant_query(&db, "rate(c[5m])", T0));
            for threads in [1, 2] {
                let got =
                    Engine::new(opts.clone()).with_parallelism(threads).instant_query(&db, "rate(c[5m])", T0);
                assert_eq!(exact(got), want, "max_samples {max_samples}, {threads} threads");
            }
            assert_eq!(want.starts_with("error"), max_samples < held, "{want}");
        }
    }

    #[test]
    fn blocks_come_back_in_order_and_cover_every_index() {
        for threads in [1, 2, 3, 8] {
            for n in [0, 1, 15, 16, 17, 100, 1000] {
                let got = par_blocks(n, threads, &|r: Range<usize>| r.collect::<Vec<_>>());
                let flat: Vec<usize> = got.into_iter().flatten().collect();
                assert_eq!(flat, (0..n).collect::<Vec<_>>(), "threads {threads} n {n}");
            }
        }
    }
}
