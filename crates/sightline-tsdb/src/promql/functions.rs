//! Function calls: range functions over [`MatrixVal`] windows and instant functions over [`Row`]s, with
//! the numeric details of Prometheus's `promql/functions.go` (Kahan summation, `extrapolatedRate`, the
//! R7 quantile, bucket interpolation with the monotonicity fix).

use std::collections::HashMap;
use std::time::Instant;

use promql_parser::parser::{Call, Expr, VectorSelector};

use crate::labels::{Labels, METRIC_NAME};
use crate::promql::eval::{
    Evaluator, Grid, MatrixVal, Row, Val, bad_type, dedupe_rows, drop_metric_names, dur_ms, exec_err, unparen,
};
use crate::promql::value::QueryError;
use crate::sample::Sample;

/// Functions whose output keeps the metric name (all others drop it, as in Prometheus).
fn keeps_metric_name(name: &str) -> bool {
    matches!(
        name,
        "last_over_time" | "first_over_time" | "sort" | "sort_desc" | "label_replace" | "label_join"
    )
}

// === impl Evaluator ===

impl Evaluator<'_> {
    pub fn eval_call(&mut self, call: &Call, grid: Grid) -> Result<Val, QueryError> {
        let name = call.func.name;
        if call.func.experimental {
            return Err(bad_type(format!(
                "function {name:?} is experimental and not supported by this engine; rewrite the query without it"
            )));
        }
        let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
        let arg = |i: usize| -> Result<&Expr, QueryError> {
            args.get(i).copied().ok_or_else(|| bad_type(format!("missing argument {} of {name}()", i + 1)))
        };
        match name {
            "rate" | "increase" | "delta" | "irate" | "idelta" | "deriv" | "changes" | "resets"
            | "avg_over_time" | "min_over_time" | "max_over_time" | "sum_over_time" | "count_over_time"
            | "last_over_time" | "first_over_time" | "present_over_time" | "stddev_over_time"
            | "stdvar_over_time" => {
                if let Some((vs, range)) = self.lazy_selector(arg(0)?) {
                    return self.range_function_lazy(name, vs, range, grid, &[]);
                }
                let m = self.eval_matrix(arg(0)?, grid, Some(name))?;
                self.range_function(name, m, grid, &[])
            }
            "predict_linear" => {
                if let Some((vs, range)) = self.lazy_selector(arg(0)?) {
                    let s = self.eval_scalar(arg(1)?, grid)?;
                    return self.range_function_lazy(name, vs, range, grid, &s);
                }
                let m = self.eval_matrix(arg(0)?, grid, Some(name))?;
                let s = self.eval_scalar(arg(1)?, grid)?;
                self.range_function(name, m, grid, &s)
            }
            "quantile_over_time" => {
                let q = self.eval_scalar(arg(0)?, grid)?;
                if let Some((vs, range)) = self.lazy_selector(arg(1)?) {
                    return self.range_function_lazy(name, vs, range, grid, &q);
                }
                let m = self.eval_matrix(arg(1)?, grid, Some(name))?;
                self.range_function(name, m, grid, &q)
            }
            "absent_over_time" => {
                let e = arg(0)?;
                let m = self.eval_matrix(e, grid, Some(name))?;
                let mut present = vec![false; grid.len];
                m.for_each_window(self.deadline, |_, i, _, _| present[i] = true)?;
                Ok(absent_rows(absent_labels(e), &present))
            }
            "absent" => {
                let e = arg(0)?;
                let rows = self.eval_vector(e, grid)?;
                let mut present = vec![false; grid.len];
                for r in &rows {
                    for (p, v) in present.iter_mut().zip(&r.vals) {
                        *p |= v.is_some();
                    }
                }
                Ok(absent_rows(absent_labels(e), &present))
            }
            "time" => Ok(Val::Scalar((0..grid.len).map(|i| grid.t(i) as f64 / 1000.0).collect())),
            "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; grid.len])),
            "vector" => {
                let s = self.eval_scalar(arg(0)?, grid)?;
                Ok(Val::Vector(vec![Row {
                    labels: Labels::empty(),
                    vals: s.into_iter().map(Some).collect(),
                }]))
            }
            "scalar" => {
                let rows = self.eval_vector(arg(0)?, grid)?;
                let mut out = vec![f64::NAN; grid.len];
                let mut count = vec![0u32; grid.len];
                for r in &rows {
                    for (i, v) in r.vals.iter().enumerate() {
                        if let Some(v) = v {
                            count[i] += 1;
                            out[i] = *v;
                        }
                    }
                }
                for (o, c) in out.iter_mut().zip(count) {
                    if c != 1 {
                        *o = f64::NAN;
                    }
                }
                Ok(Val::Scalar(out))
            }
            "timestamp" => {
                let e = arg(0)?;
                let rows = match unparen(e) {
                    Expr::VectorSelector(vs) => self.eval_vector_selector(vs, grid, Some(name), true)?,
                    other => {
                        let rows = self.eval_vector(other, grid)?;
                        rows.into_iter()
                            .map(|r| Row {
                                labels: r.labels,
                                vals: r
                                    .vals
                                    .iter()
                                    .enumerate()
                                    .map(|(i, v)| v.map(|_| grid.t(i) as f64 / 1000.0))
                                    .collect(),
                            })
                            .collect()
                    }
                };
                map_rows(rows, false, |v, _| Some(v))
            }
            "abs" | "ceil" | "floor" | "exp" | "ln" | "log2" | "log10" | "sqrt" | "sgn" | "sin" | "cos"
            | "tan" | "asin" | "acos" | "atan" | "sinh" | "cosh" | "tanh" | "asinh" | "acosh" | "atanh"
            | "deg" | "rad" => {
                let rows = self.eval_vector(arg(0)?, grid)?;
                let f = simple_function(name).ok_or_else(|| bad_type(format!("unknown function {name}")))?;
                map_rows(rows, false, |v, _| Some(f(v)))
            }
            "round" => {
                let rows = self.eval_vector(arg(0)?, grid)?;
                let to = match args.get(1) {
                    Some(e) => self.eval_scalar(e, grid)?,
                    None => vec![1.0; grid.len],
                };
                map_rows(rows, false, |v, i| {
                    let inv = 1.0 / to[i];
                    Some((v * inv + 0.5).floor() / inv)
                })
            }
            "clamp" => {
                let rows = self.eval_vector(arg(0)?, grid)?;
                let min = self.eval_scalar(arg(1)?, grid)?;
                let max = self.eval_scalar(arg(2)?, grid)?;
                // A maximum below the minimum gives no output at that step (comparisons with NaN are false).
                map_rows(rows, false, |v, i| {
                    (max[i] >= min[i] || min[i].is_nan() || max[i].is_nan())
                        .then(|| go_max(min[i], go_min(max[i], v)))
                })
            }
            "clamp_min" => {
                let rows = self.eval_vector(arg(0)?, grid)?;
                let min = self.eval_scalar(arg(1)?, grid)?;
                map_rows(rows, false, |v, i| Some(go_max(v, min[i])))
            }
            "clamp_max" => {
                let rows = self.eval_vector(arg(0)?, grid)?;
                let max = self.eval_scalar(arg(1)?, grid)?;
                map_rows(rows, false, |v, i| Some(go_min(v, max[i])))
            }
            "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute"
            | "month" | "year" => {
                let rows = match args.first() {
                    Some(e) => self.eval_vector(e, grid)?,
                    None => vec![Row {
                        labels: Labels::empty(),
                        vals: (0..grid.len).map(|i| Some(grid.t(i).div_euclid(1000) as f64)).collect(),
                    }],
                };
                map_rows(rows, false, |v, _| Some(date_part(name, v)))
            }
            "sort" | "sort_desc" => {
                let rows = self.eval_vector(arg(0)?, grid)?;
                Ok(Val::Vector(rows))
            }
            "label_replace" => {
                let rows = self.eval_vector(arg(0)?, grid)?;
                let dst = string_arg(arg(1)?)?;
                let replacement = string_arg(arg(2)?)?;
                let src = string_arg(arg(3)?)?;
                let regex_src = string_arg(arg(4)?)?;
                let re = regex::Regex::new(&format!("^(?s:{regex_src})$")).map_err(|e| {
                    exec_err(format!("invalid regular expression in label_replace(): {regex_src}: {e}"))
                })?;
                if dst.is_empty() {
                    return Err(exec_err(format!(
                        "invalid destination label name in label_replace(): {dst}"
                    )));
                }
                let rows = rows
                    .into_iter()
                    .map(|mut r| {
                        let value = r.labels.get(src).unwrap_or("");
                        if let Some(caps) = re.captures(value) {
                            let mut out = String::new();
                            caps.expand(replacement, &mut out);
                            r.labels.set(dst, out);
                        }
                        r
                    })
                    .collect();
                Ok(Val::Vector(dedupe_rows(rows)?))
            }
            "label_join" => {
                let rows = self.eval_vector(arg(0)?, grid)?;
                let dst = string_arg(arg(1)?)?;
                let sep = string_arg(arg(2)?)?;
                let srcs: Vec<&str> = args.iter().skip(3).map(|a| string_arg(a)).collect::<Result<_, _>>()?;
                if dst.is_empty() {
                    return Err(exec_err(format!("invalid destination label name in label_join(): {dst}")));
                }
                let rows = rows
                    .into_iter()
                    .map(|mut r| {
                        let joined =
                            srcs.iter().map(|s| r.labels.get(s).unwrap_or("")).collect::<Vec<_>>().join(sep);
                        r.labels.set(dst, joined);
                        r
                    })
                    .collect();
                Ok(Val::Vector(dedupe_rows(rows)?))
            }
            "histogram_quantile" => {
                let q = self.eval_scalar(arg(0)?, grid)?;
                let rows = self.eval_vector(arg(1)?, grid)?;
                Ok(Val::Vector(histogram_quantile(&q, rows, grid.len)))
            }
            // Native-histogram functions ignore float samples, and this engine stores no native histograms.
            "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_fraction"
            | "histogram_stddev" | "histogram_stdvar" => {
                for e in &args {
                    self.eval(e, grid)?;
                }
                Ok(Val::Vector(Vec::new()))
            }
            other => Err(bad_type(format!("function {other:?} is not supported by this engine"))),
        }
    }

    /// The selector and range of a range function's argument when the call can read it lazily
    /// (`promql::stream`): a plain range selector without `or` alternatives.
    fn lazy_selector<'e>(&self, arg: &'e Expr) -> Option<(&'e VectorSelector, i64)> {
        match unparen(arg) {
            Expr::MatrixSelector(ms) if self.lazy && ms.vs.matchers.or_matchers.is_empty() => {
                Some((&ms.vs, dur_ms(&ms.range)))
            }
            _ => None,
        }
    }

    /// Applies a range function to every window of `m`. `param` is the scalar argument of
    /// `predict_linear` and `quantile_over_time`.
    fn range_function(
        &mut self,
        name: &str,
        m: MatrixVal,
        grid: Grid,
        param: &[f64],
    ) -> Result<Val, QueryError> {
        let steps = m.ends.len();
        self.check_dense(m.series.len(), steps, "range function evaluation")?;
        let call = self.range_call(name, &m.ends, m.range, m.pinned, grid, param)?;
        let mut out: Vec<Vec<Option<f64>>> = vec![vec![None; steps]; m.series.len()];
        let mut resets = Vec::new();
        for (si, s) in m.series.iter().enumerate() {
            if si % 256 == 0 && Instant::now() >= self.deadline {
                return Err(QueryError::Timeout("range function evaluation"));
            }
            call.eval_series(&s.samples, &mut resets, &mut out[si]);
        }
        let rows: Vec<Row> =
            m.series.into_iter().zip(out).map(|(s, vals)| Row { labels: s.labels, vals }).collect();
        self.range_function_rows(name, rows, false)
    }

    /// Resolves a range function call's fixed inputs.
    pub(crate) fn range_call<'c>(
        &self,
        name: &str,
        ends: &'c [i64],
        range: i64,
        pinned: bool,
        grid: Grid,
        param: &'c [f64],
    ) -> Result<RangeCall<'c>, QueryError> {
        // Resolved once: matching the name per window would cost more than most functions.
        let func =
            RangeFn::from_name(name).ok_or_else(|| bad_type(format!("unknown range function {name}")))?;
        Ok(RangeCall { func, ends, range, pinned, query_start: self.query_start, grid, param })
    }

    /// The output of a range function: the metric name dropped unless the function keeps it, and series
    /// with no value at any step left out. `one_name`: every row is known to carry the same metric name.
    pub(crate) fn range_function_rows(
        &self,
        name: &str,
        rows: Vec<Row>,
        one_name: bool,
    ) -> Result<Val, QueryError> {
        if keeps_metric_name(name) {
            Ok(Val::Vector(rows.into_iter().filter(|r| r.vals.iter().any(Option::is_some)).collect()))
        } else if one_name {
            Ok(Val::Vector(self.drop_uniform_metric_names(rows)))
        } else {
            Ok(Val::Vector(self.drop_metric_names(rows)?))
        }
    }
}

/// One range function call's fixed inputs, with which each series' windows are evaluated. Shared by the
/// materialised path ([`MatrixVal`]) and the lazy one (`promql::stream`), so both compute the same.
pub(crate) struct RangeCall<'c> {
    func: RangeFn,
    /// The end of each step's window; the window of step `i` is `(ends[i] - range, ends[i]]`.
    ends: &'c [i64],
    range: i64,
    /// Whether an `@` modifier pins the windows (`predict_linear` then predicts from the query start).
    pinned: bool,
    query_start: i64,
    grid: Grid,
    /// The scalar argument of `predict_linear` and `quantile_over_time`, one per step.
    param: &'c [f64],
}

// === impl RangeCall ===

impl RangeCall<'_> {
    /// The number of steps, which is the length of a series' output.
    pub fn steps(&self) -> usize {
        self.ends.len()
    }

    /// Evaluates every non-empty window of one series into `out` (one slot per step). `samples` has no
    /// staleness markers; `resets` is scratch space reused between series.
    pub fn eval_series(&self, samples: &[Sample], resets: &mut Vec<usize>, out: &mut [Option<f64>]) {
        // For counters, the (usually empty) list of reset positions lets windows without a reset skip the
        // correction loop; the loop still runs where there are resets, so sums stay bit-exact.
        let counter_fn = matches!(self.func, RangeFn::Rate | RangeFn::Increase);
        resets.clear();
        if counter_fn {
            reset_positions(samples, resets);
        }
        slide_windows(samples, self.ends, self.range, |i, lo, w| {
            let counter = !counter_fn || window_has_reset(resets, lo, w.len());
            out[i] = self.window(i, w, counter);
        });
    }

    /// The function's value for the window of step `i`. `counter` is false for a counter function when
    /// the window holds no reset.
    fn window(&self, i: usize, w: &[Sample], counter: bool) -> Option<f64> {
        let end = self.ends[i];
        let range = self.range;
        match self.func {
            RangeFn::Rate => extrapolated_rate(w, end.saturating_sub(range), end, true, counter, true),
            RangeFn::Increase => extrapolated_rate(w, end.saturating_sub(range), end, true, counter, false),
            RangeFn::Delta => extrapolated_rate(w, end.saturating_sub(range), end, false, false, false),
            RangeFn::Irate => instant_delta(w, true),
            RangeFn::Idelta => instant_delta(w, false),
            RangeFn::Deriv => (w.len() >= 2).then(|| linear_regression(w, w[0].t).0),
            RangeFn::PredictLinear => (w.len() >= 2).then(|| {
                // `predict_linear` predicts from the step's time, not the window's end (they differ by
                // the offset); with `@` Prometheus evaluates the call once at the query start.
                let at = if self.pinned { self.query_start } else { self.grid.t(i) };
                let (slope, intercept) = linear_regression(w, at);
                slope * self.param[i] + intercept
            }),
            RangeFn::Changes => Some(
                w.windows(2).filter(|p| !(p[1].v == p[0].v || (p[1].v.is_nan() && p[0].v.is_nan()))).count()
                    as f64,
            ),
            RangeFn::Resets => Some(w.windows(2).filter(|p| p[1].v < p[0].v).count() as f64),
            RangeFn::AvgOverTime => Some(mean(w.iter().map(|s| s.v))),
            RangeFn::SumOverTime => Some(kahan_sum(w.iter().map(|s| s.v))),
            RangeFn::CountOverTime => Some(w.len() as f64),
            RangeFn::PresentOverTime => Some(1.0),
            RangeFn::LastOverTime => w.last().map(|s| s.v),
            RangeFn::FirstOverTime => w.first().map(|s| s.v),
            RangeFn::MinOverTime => w
                .first()
                .map(|f| w.iter().fold(f.v, |acc, s| if s.v < acc || acc.is_nan() { s.v } else { acc })),
            RangeFn::MaxOverTime => w
                .first()
                .map(|f| w.iter().fold(f.v, |acc, s| if s.v > acc || acc.is_nan() { s.v } else { acc })),
            RangeFn::StdvarOverTime => Some(variance(w)),
            RangeFn::StddevOverTime => Some(variance(w).sqrt()),
            RangeFn::QuantileOverTime => {
                let mut vals: Vec<f64> = w.iter().map(|s| s.v).collect();
                Some(quantile(self.param[i], &mut vals))
            }
        }
    }
}

/// Calls `f(step, window start index, window)` for every step whose window `(ends[i] - range, ends[i]]`
/// holds samples, sliding two pointers over `samples` (the window ends never decrease).
pub(crate) fn slide_windows(
    samples: &[Sample],
    ends: &[i64],
    range: i64,
    mut f: impl FnMut(usize, usize, &[Sample]),
) {
    let (mut lo, mut hi) = (0usize, 0usize);
    for (i, &end) in ends.iter().enumerate() {
        let start = end.saturating_sub(range);
        while lo < samples.len() && samples[lo].t <= start {
            lo += 1;
        }
        if hi < lo {
            hi = lo;
        }
        while hi < samples.len() && samples[hi].t <= end {
            hi += 1;
        }
        if hi > lo {
            f(i, lo, &samples[lo..hi]);
        }
    }
}

/// The range functions, resolved from their name once per call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RangeFn {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Deriv,
    PredictLinear,
    Changes,
    Resets,
    AvgOverTime,
    SumOverTime,
    CountOverTime,
    PresentOverTime,
    LastOverTime,
    FirstOverTime,
    MinOverTime,
    MaxOverTime,
    StdvarOverTime,
    StddevOverTime,
    QuantileOverTime,
}

// === impl RangeFn ===

impl RangeFn {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "rate" => Self::Rate,
            "increase" => Self::Increase,
            "delta" => Self::Delta,
            "irate" => Self::Irate,
            "idelta" => Self::Idelta,
            "deriv" => Self::Deriv,
            "predict_linear" => Self::PredictLinear,
            "changes" => Self::Changes,
            "resets" => Self::Resets,
            "avg_over_time" => Self::AvgOverTime,
            "sum_over_time" => Self::SumOverTime,
            "count_over_time" => Self::CountOverTime,
            "present_over_time" => Self::PresentOverTime,
            "last_over_time" => Self::LastOverTime,
            "first_over_time" => Self::FirstOverTime,
            "min_over_time" => Self::MinOverTime,
            "max_over_time" => Self::MaxOverTime,
            "stdvar_over_time" => Self::StdvarOverTime,
            "stddev_over_time" => Self::StddevOverTime,
            "quantile_over_time" => Self::QuantileOverTime,
            _ => return None,
        })
    }
}

/// Maps every present value; drops the metric name unless `keep_name`.
fn map_rows(
    rows: Vec<Row>,
    keep_name: bool,
    f: impl Fn(f64, usize) -> Option<f64>,
) -> Result<Val, QueryError> {
    let mut rows = rows;
    for r in &mut rows {
        for (i, v) in r.vals.iter_mut().enumerate() {
            *v = v.and_then(|v| f(v, i));
        }
    }
    if keep_name {
        rows.retain(|r| r.vals.iter().any(Option::is_some));
        Ok(Val::Vector(rows))
    } else {
        Ok(Val::Vector(drop_metric_names(rows)?))
    }
}

fn string_arg(e: &Expr) -> Result<&str, QueryError> {
    match unparen(e) {
        Expr::StringLiteral(s) => Ok(s.val.as_str()),
        _ => Err(bad_type("expected a string literal argument")),
    }
}

fn simple_function(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sqrt" => f64::sqrt,
        "sgn" => |v: f64| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |v: f64| v * 180.0 / std::f64::consts::PI,
        "rad" => |v: f64| v * std::f64::consts::PI / 180.0,
        _ => return None,
    })
}

/// Go's `math.Max`: NaN wins, and +0 beats -0 (Rust's `f64::max` ignores NaN).
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { b } else { a }
    } else if a > b {
        a
    } else {
        b
    }
}

/// Go's `math.Min`: NaN wins, and -0 beats +0.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { a } else { b }
    } else if a < b {
        a
    } else {
        b
    }
}

/// The labels `absent()` and `absent_over_time()` give their output: the equality matchers of a plain
/// selector argument (a label matched more than once is left out), never the metric name.
fn absent_labels(e: &Expr) -> Labels {
    let matchers = match e {
        Expr::VectorSelector(vs) => &vs.matchers,
        Expr::MatrixSelector(ms) => &ms.vs.matchers,
        _ => return Labels::empty(),
    };
    // As Prometheus: the first equality matcher of a name sets it, any other matcher of that name unsets
    // it, and a later equality matcher of a name only a non-equality matcher had unset sets it again.
    let mut out = Labels::empty();
    let mut has: Vec<&str> = Vec::new();
    for m in &matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, promql_parser::label::MatchOp::Equal) && !has.contains(&m.name.as_str()) {
            out.set(&m.name, m.value.clone());
            has.push(m.name.as_str());
        } else {
            out.remove(&m.name);
        }
    }
    out
}

fn absent_rows(labels: Labels, present: &[bool]) -> Val {
    let vals: Vec<Option<f64>> = present.iter().map(|p| (!p).then_some(1.0)).collect();
    if vals.iter().all(Option::is_none) {
        return Val::Vector(Vec::new());
    }
    Val::Vector(vec![Row { labels, vals }])
}

/// Kahan-Neumaier summation step, as Prometheus's `kahanSumInc`.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

pub(crate) fn kahan_sum(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for v in values {
        (sum, c) = kahan_inc(v, sum, c);
    }
    sum + c
}

/// The mean as Prometheus 3's `avg_over_time` computes it: a Kahan sum divided by the count, switching
/// to an incremental mean once the sum overflows.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MeanAcc {
    sum: f64,
    c: f64,
    mean: f64,
    count: f64,
    incremental: bool,
}

// === impl MeanAcc ===

impl MeanAcc {
    pub fn add(&mut self, v: f64) {
        self.count += 1.0;
        if !self.incremental {
            let (ns, nc) = kahan_inc(v, self.sum, self.c);
            if self.count == 1.0 || !ns.is_infinite() {
                self.sum = ns;
                self.c = nc;
                return;
            }
            self.incremental = true;
            self.mean = self.sum / (self.count - 1.0);
            self.c /= self.count - 1.0;
        }
        if self.mean.is_infinite() {
            if v.is_infinite() && (self.mean > 0.0) == (v > 0.0) {
                return;
            }
            if !v.is_infinite() && !v.is_nan() {
                return;
            }
        }
        let corrected = self.mean + self.c;
        (self.mean, self.c) = kahan_inc(v / self.count - corrected / self.count, self.mean, self.c);
    }

    pub fn value(&self) -> f64 {
        if self.incremental { self.mean + self.c } else { (self.sum + self.c) / self.count }
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let mut acc = MeanAcc::default();
    for v in values {
        acc.add(v);
    }
    acc.value()
}

/// Population variance with Kahan-compensated running mean, as Prometheus's `varianceOverTime`.
fn variance(w: &[Sample]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for s in w {
        count += 1.0;
        let delta = s.v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (s.v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// The R7 quantile (Prometheus's `quantile`): NaN for no values or a NaN `q`, ±Inf outside `[0, 1]`.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // Go's sort puts NaN first (NaN is "less" than everything in Prometheus's value heap).
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Prometheus's `extrapolatedRate`: the increase over the window, corrected for counter resets and
/// extrapolated towards the window's edges (at most 1.1 average intervals, and for counters never past
/// the point where the counter would have been zero).
///
/// `check_resets` is false when the caller knows the window has no counter reset.
fn extrapolated_rate(
    w: &[Sample],
    range_start: i64,
    range_end: i64,
    counter: bool,
    check_resets: bool,
    rate: bool,
) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let first = w[0];
    let last = w[w.len() - 1];
    let mut result = last.v - first.v;
    if counter && check_resets {
        let mut prev = first.v;
        for s in &w[1..] {
            if s.v < prev {
                result += prev;
            }
            prev = s.v;
        }
    }
    let mut to_start = (first.t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last.t) as f64 / 1000.0;
    let sampled = (last.t - first.t) as f64 / 1000.0;
    let avg = sampled / (w.len() - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if counter && result > 0.0 && first.v >= 0.0 {
        let to_zero = sampled * (first.v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if rate {
        factor /= (range_end - range_start) as f64 / 1000.0;
    }
    Some(result * factor)
}

/// Puts into `out` the positions `k` where a counter resets (`samples[k] < samples[k - 1]`).
fn reset_positions(samples: &[Sample], out: &mut Vec<usize>) {
    out.extend(samples.windows(2).enumerate().filter(|(_, p)| p[1].v < p[0].v).map(|(k, _)| k + 1));
}

/// Whether the window of `len` samples from `lo` holds a reset: a reset at `r` compares samples `r - 1`
/// and `r`, so it counts when `lo < r < lo + len`.
fn window_has_reset(resets: &[usize], lo: usize, len: usize) -> bool {
    let next = resets.partition_point(|&x| x <= lo);
    resets.get(next).is_some_and(|&x| x < lo + len)
}

/// `irate` and `idelta`: the last two samples of the window.
fn instant_delta(w: &[Sample], rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let last = w[w.len() - 1];
    let prev = w[w.len() - 2];
    let mut result = if rate && last.v < prev.v { last.v } else { last.v - prev.v };
    if rate {
        let interval = last.t - prev.t;
        if interval == 0 {
            return None;
        }
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares slope and intercept (at `intercept_t`) with Kahan sums, as Prometheus's
/// `linearRegression`; a constant series has slope 0.
fn linear_regression(w: &[Sample], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = w[0].v;
    let mut const_y = true;
    for (i, s) in w.iter().enumerate() {
        if const_y && i > 0 && s.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (s.t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(s.v, sy, cy);
        (sxy, cxy) = kahan_inc(x * s.v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    let intercept = sy / n - slope * sx / n;
    (slope, intercept)
}

/// One classic histogram bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    upper: f64,
    count: f64,
}

/// `histogram_quantile` over classic buckets: series are grouped by their labels without `le` and the
/// metric name; series without a parseable `le` are ignored.
fn histogram_quantile(q: &[f64], rows: Vec<Row>, steps: usize) -> Vec<Row> {
    let mut groups: Vec<(Labels, Vec<(f64, Row)>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for r in rows {
        let Some(le) = r.labels.get("le").and_then(parse_le) else {
            continue;
        };
        let key = r.labels.drop_names(&["le", METRIC_NAME]);
        let gi = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[gi].1.push((le, r));
    }
    let mut out = Vec::with_capacity(groups.len());
    let mut buckets: Vec<Bucket> = Vec::new();
    for (labels, members) in groups {
        let mut vals = vec![None; steps];
        for (i, slot) in vals.iter_mut().enumerate() {
            buckets.clear();
            buckets.extend(
                members.iter().filter_map(|(le, r)| r.vals[i].map(|count| Bucket { upper: *le, count })),
            );
            if !buckets.is_empty() {
                *slot = Some(bucket_quantile(q[i], &mut buckets));
            }
        }
        out.push(Row { labels, vals });
    }
    out
}

/// Parses an `le` value the way Go's `strconv.ParseFloat` does for the forms Prometheus clients write.
fn parse_le(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse::<f64>().ok(),
    }
}

/// Prometheus's `BucketQuantile`: sort, require a `+Inf` bucket, merge equal bounds, force monotonic
/// counts (ignoring float noise below 1e-12 relative), then interpolate linearly inside the bucket.
fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.upper.total_cmp(&b.upper));
    match buckets.last() {
        Some(b) if b.upper == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    // Coalesce buckets with the same upper bound.
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.upper == b.upper => last.count += b.count,
            _ => merged.push(*b),
        }
    }
    *buckets = merged;
    ensure_monotonic(buckets);
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = buckets[..buckets.len() - 1].partition_point(|x| x.count < rank);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].upper;
    }
    if b == 0 && buckets[0].upper <= 0.0 {
        return buckets[0].upper;
    }
    let mut start = 0.0;
    let end = buckets[b].upper;
    let mut count = buckets[b].count;
    if b > 0 {
        start = buckets[b - 1].upper;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    start + (end - start) * (rank / count)
}

fn ensure_monotonic(buckets: &mut [Bucket]) {
    const TOLERANCE: f64 = 1e-12;
    let Some(first) = buckets.first() else {
        return;
    };
    let mut prev = first.count;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.count;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, TOLERANCE) || curr < prev {
            b.count = prev;
            continue;
        }
        prev = curr;
    }
}

fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// A calendar field of a Unix time in seconds (UTC), for the date functions. Hand-written (Howard
/// Hinnant's days-to-civil algorithm) because the crate has no date library and needs only these fields.
fn date_part(name: &str, secs: f64) -> f64 {
    if !secs.is_finite() {
        return f64::NAN;
    }
    let secs = secs as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    match name {
        "day_of_month" => d as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => (days - days_from_civil(y, 1, 1) + 1) as f64,
        "days_in_month" => days_in_month(y, m) as f64,
        "hour" => (sod / 3600) as f64,
        "minute" => ((sod % 3600) / 60) as f64,
        "month" => m as f64,
        "year" => y as f64,
        _ => f64::NAN,
    }
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        // 2024-02-29 12:34:56 UTC.
        let t = 1_709_210_096.0;
        assert_eq!(date_part("year", t), 2024.0);
        assert_eq!(date_part("month", t), 2.0);
        assert_eq!(date_part("day_of_month", t), 29.0);
        assert_eq!(date_part("days_in_month", t), 29.0);
        assert_eq!(date_part("day_of_year", t), 60.0);
        assert_eq!(date_part("day_of_week", t), 4.0);
        assert_eq!(date_part("hour", t), 12.0);
        assert_eq!(date_part("minute", t), 34.0);
        assert_eq!(date_part("year", 0.0), 1970.0);
        assert_eq!(date_part("day_of_week", 0.0), 4.0);
    }

    #[test]
    fn go_min_max_propagate_nan() {
        assert!(go_max(1.0, f64::NAN).is_nan());
        assert!(go_min(f64::NAN, 1.0).is_nan());
        assert_eq!(go_max(1.0, 2.0), 2.0);
        assert_eq!(go_min(1.0, 2.0), 1.0);
    }

    #[test]
    fn reset_lookup_matches_a_scan() {
        let values = [5.0, 1.0, 2.0, 2.0, 0.0, 7.0, 3.0, 4.0, 9.0, 1.0];
        let samples: Vec<Sample> =
            values.iter().enumerate().map(|(i, v)| Sample::new(i as i64, *v)).collect();
        let mut resets = Vec::new();
        reset_positions(&samples, &mut resets);
        for lo in 0..samples.len() {
            for len in 1..=samples.len() - lo {
                let w = &samples[lo..lo + len];
                let scan = w.windows(2).any(|p| p[1].v < p[0].v);
                assert_eq!(window_has_reset(&resets, lo, len), scan, "lo {lo} len {len}");
                let fast = extrapolated_rate(w, -10, 20, true, window_has_reset(&resets, lo, len), false);
                let full = extrapolated_rate(w, -10, 20, true, true, false);
                assert_eq!(fast.map(f64::to_bits), full.map(f64::to_bits));
            }
        }
    }

    #[test]
    fn quantile_is_r7() {
        let mut v = vec![1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(0.5, &mut v), 2.5);
        assert_eq!(quantile(0.75, &mut v), 3.25);
        assert_eq!(quantile(2.0, &mut v), f64::INFINITY);
        assert!(quantile(0.5, &mut []).is_nan());
    }
}
