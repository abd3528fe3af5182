//! The evaluator: walks a parsed expression once over a whole grid of evaluation timestamps.
//!
//! Every node is evaluated for all steps at once. An instant vector is a list of [`Row`]s, one per output
//! series, each with a dense `Option<f64>` per step; a range vector ([`MatrixVal`]) keeps each series'
//! raw samples once and a window end per step, so range functions slide over one sample slice with
//! monotonic pointers instead of re-selecting per step. Output label sets are computed once per series or
//! group, never per step.

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{AtModifier, Expr, Offset, SubqueryExpr, VectorSelector};

use crate::labels::{Labels, METRIC_NAME, fast_hash};
use crate::promql::functions::slide_windows;
use crate::promql::value::QueryError;
use crate::sample::{Sample, is_stale};
use crate::traits::{Querier, SelectHints, Series};

/// The evaluation timestamps: `start + i * step` for `i` in `0..len`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grid {
    pub start: i64,
    pub step: i64,
    pub len: usize,
}

// === impl Grid ===

impl Grid {
    /// A grid from `start` to `end` inclusive.
    pub fn new(start: i64, end: i64, step: i64) -> Self {
        let step = step.max(1);
        let len =
            if end < start { 0 } else { usize::try_from(end.saturating_sub(start) / step).unwrap_or(0) + 1 };
        Self { start, step, len }
    }

    pub fn t(&self, i: usize) -> i64 {
        // Timestamps come from the query, so the arithmetic saturates instead of overflowing.
        self.start.saturating_add(self.step.saturating_mul(i as i64))
    }

    /// Whether this grid has one step (an instant evaluation).
    pub fn is_instant(&self) -> bool {
        self.len == 1
    }
}

/// One output series of an instant-vector node: a value per grid step where the series is present.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub labels: Labels,
    pub vals: Vec<Option<f64>>,
}

// === impl Row ===

impl Row {
    pub fn points(&self) -> usize {
        self.vals.iter().filter(|v| v.is_some()).count()
    }
}

/// A range vector: each series' samples once, plus the end of the window for each grid step. The window of
/// step `i` is `(ends[i] - range, ends[i]]`.
#[derive(Clone, Debug)]
pub(crate) struct MatrixVal {
    pub series: Vec<Series>,
    pub range: i64,
    pub ends: Vec<i64>,
    /// Whether an `@` modifier pins the windows (Prometheus then evaluates the call once, at the query
    /// start, which matters to `predict_linear`).
    pub pinned: bool,
}

// === impl MatrixVal ===

impl MatrixVal {
    /// Calls `f(series index, step, window start index, window)` for every step whose window is not
    /// empty, sliding two pointers over each series' samples (the window ends never decrease).
    pub fn for_each_window(
        &self,
        deadline: Instant,
        mut f: impl FnMut(usize, usize, usize, &[Sample]),
    ) -> Result<(), QueryError> {
        for (si, s) in self.series.iter().enumerate() {
            if si % 256 == 0 && Instant::now() >= deadline {
                return Err(QueryError::Timeout("range function evaluation"));
            }
            slide_windows(&s.samples, &self.ends, self.range, |i, lo, w| f(si, i, lo, w));
        }
        Ok(())
    }

    pub fn samples(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }
}

/// The value of a node over the grid.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    Scalar(Vec<f64>),
    Str(String),
    Vector(Vec<Row>),
    Matrix(MatrixVal),
}

// === impl Val ===

impl Val {
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Scalar(_) => "scalar",
            Val::Str(_) => "string",
            Val::Vector(_) => "instant vector",
            Val::Matrix(_) => "range vector",
        }
    }

    /// How many samples the value holds, for the `max_samples` limit.
    pub fn samples(&self) -> usize {
        match self {
            Val::Scalar(v) => v.len(),
            Val::Str(_) => 0,
            Val::Vector(rows) => rows.iter().map(Row::points).sum(),
            Val::Matrix(m) => m.samples(),
        }
    }
}

/// State of one query evaluation: limits, the query's own time range (for `@ start()` / `@ end()`) and
/// the sample count held so far.
pub(crate) struct Evaluator<'a> {
    pub querier: &'a dyn Querier,
    pub lookback: i64,
    pub deadline: Instant,
    pub max_samples: usize,
    pub current_samples: usize,
    pub query_start: i64,
    pub query_end: i64,
    /// The default subquery step (Prometheus: the global evaluation interval).
    pub default_step: i64,
    /// The function or aggregation directly around the node being evaluated (a binary operator clears
    /// it), passed to the store as [`SelectHints::func`] the way Prometheus's `extractFuncFromPath` does.
    pub func_hint: Option<&'static str>,
    /// Set by a parent that ignores the metric name of its child's output (an aggregation that does not
    /// group by `__name__` and returns no input series); the child node takes it in [`Evaluator::eval`].
    pub names_unused: bool,
    /// Whether the consumer of the node being evaluated ignores its output's metric name (the flag above,
    /// taken for this node only): then rows that all carry one name keep it rather than each label set
    /// being copied to remove it, which for an aggregation over 10,000 series was a sixth of the query.
    pub node_names_unused: bool,
    /// Threads a range function may spread its series over (`promql::stream`).
    pub threads: usize,
    /// Whether range functions over plain selectors read their selection lazily (`promql::stream`);
    /// off only in tests that compare the two paths.
    pub lazy: bool,
}

/// Wraps a message as an execution error.
pub(crate) fn exec_err(msg: impl Into<String>) -> QueryError {
    QueryError::Execution(msg.into())
}

/// Milliseconds of a duration, saturating.
pub(crate) fn dur_ms(d: &std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => dur_ms(d),
        Some(Offset::Neg(d)) => -dur_ms(d),
    }
}

fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => dur_ms(&d),
        Err(e) => -dur_ms(&e.duration()),
    }
}

/// Strips parentheses.
pub(crate) fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// Checks that a set of rows has unique label sets at every step and merges rows with equal labels whose
/// steps do not overlap (Prometheus builds output series per label set the same way). Overlap is
/// Prometheus's "vector cannot contain metrics with the same labelset".
pub(crate) fn dedupe_rows(rows: Vec<Row>) -> Result<Vec<Row>, QueryError> {
    let mut index: HashMap<u64, usize> = HashMap::with_capacity(rows.len());
    let mut out: Vec<Row> = Vec::with_capacity(rows.len());
    for row in rows {
        if row.vals.iter().all(Option::is_none) {
            continue;
        }
        let h = fast_hash(&row.labels);
        match index.get(&h) {
            Some(&i) if out[i].labels == row.labels => {
                let target = &mut out[i];
                for (dst, src) in target.vals.iter_mut().zip(row.vals) {
                    if src.is_some() {
                        if dst.is_some() {
                            return Err(exec_err("vector cannot contain metrics with the same labelset"));
                        }
                        *dst = src;
                    }
                }
            }
            _ => {
                index.insert(h, out.len());
                out.push(row);
            }
        }
    }
    Ok(out)
}

/// Removes the metric name from rows that have unique label sets. When every row has the same name (or
/// none) the rows stay unique, so the duplicate check, which hashes every label set, is skipped.
pub(crate) fn drop_metric_names(mut rows: Vec<Row>) -> Result<Vec<Row>, QueryError> {
    let first = rows.first().and_then(|r| r.labels.metric_name().map(str::to_owned));
    let uniform = rows.iter().all(|r| r.labels.metric_name() == first.as_deref());
    for r in &mut rows {
        r.labels.remove(METRIC_NAME);
    }
    if uniform {
        rows.retain(|r| r.vals.iter().any(Option::is_some));
        Ok(rows)
    } else {
        dedupe_rows(rows)
    }
}

// === impl Evaluator ===

impl Evaluator<'_> {
    /// [`drop_metric_names`] for the output of the node being evaluated. When its consumer ignores the
    /// metric name and every row has the same one (so removing it could not make two rows collide), the
    /// rows keep their label sets as they are.
    pub fn drop_metric_names(&self, mut rows: Vec<Row>) -> Result<Vec<Row>, QueryError> {
        if self.node_names_unused {
            let first = rows.first().and_then(|r| r.labels.metric_name());
            if rows.iter().all(|r| r.labels.metric_name() == first) {
                rows.retain(|r| r.vals.iter().any(Option::is_some));
                return Ok(rows);
            }
        }
        drop_metric_names(rows)
    }

    /// [`Evaluator::drop_metric_names`] for rows known to carry one metric name (all selected by an exact
    /// name), which skips looking the name up in every row.
    pub fn drop_uniform_metric_names(&self, mut rows: Vec<Row>) -> Vec<Row> {
        if !self.node_names_unused {
            for r in &mut rows {
                r.labels.remove(METRIC_NAME);
            }
        }
        rows.retain(|r| r.vals.iter().any(Option::is_some));
        rows
    }

    /// Fails once the query has run past its deadline.
    pub fn check_deadline(&self, stage: &'static str) -> Result<(), QueryError> {
        if Instant::now() >= self.deadline {
            return Err(QueryError::Timeout(stage));
        }
        Ok(())
    }

    /// Accounts for `n` more samples held, failing past the limit.
    pub fn hold(&mut self, n: usize, stage: &'static str) -> Result<(), QueryError> {
        self.current_samples = self.current_samples.saturating_add(n);
        if self.current_samples > self.max_samples {
            return Err(QueryError::TooManySamples { stage, limit: self.max_samples });
        }
        Ok(())
    }

    /// Fails before allocating a dense `rows x steps` result that could never fit the limit.
    pub fn check_dense(&self, rows: usize, steps: usize, stage: &'static str) -> Result<(), QueryError> {
        if rows.saturating_mul(steps) > self.max_samples {
            return Err(QueryError::TooManySamples { stage, limit: self.max_samples });
        }
        Ok(())
    }

    /// Gives back `n` samples that are no longer held.
    pub fn release(&mut self, n: usize) {
        self.current_samples = self.current_samples.saturating_sub(n);
    }

    /// Evaluates `expr` over `grid`.
    pub fn eval(&mut self, expr: &Expr, grid: Grid) -> Result<Val, QueryError> {
        self.check_deadline("expression evaluation")?;
        // Samples held by the children count while this node runs; once it is done only its output is
        // held, so the counter follows the peak the way Prometheus's `currentSamples` does.
        let before = self.current_samples;
        // The parent's promise about the metric name holds for this node, not for its children.
        let names_unused = std::mem::take(&mut self.names_unused);
        let outer = std::mem::replace(&mut self.node_names_unused, names_unused);
        let val = self.eval_node(expr, grid);
        self.node_names_unused = outer;
        let val = val?;
        self.current_samples = before;
        self.hold(val.samples(), "expression evaluation")?;
        Ok(val)
    }

    fn eval_node(&mut self, expr: &Expr, grid: Grid) -> Result<Val, QueryError> {
        let val = match expr {
            Expr::NumberLiteral(n) => Val::Scalar(vec![n.val; grid.len]),
            Expr::StringLiteral(s) => Val::Str(s.val.clone()),
            Expr::Paren(p) => {
                // Parentheses hand the parent's promise about the metric name through.
                self.names_unused = self.node_names_unused;
                self.eval(&p.expr, grid)?
            }
            Expr::Unary(u) => match self.eval(&u.expr, grid)? {
                Val::Scalar(v) => Val::Scalar(v.into_iter().map(|x| -x).collect()),
                Val::Vector(mut rows) => {
                    for r in &mut rows {
                        for v in r.vals.iter_mut().flatten() {
                            *v = -*v;
                        }
                    }
                    Val::Vector(self.drop_metric_names(rows)?)
                }
                other => {
                    return Err(bad_type(format!(
                        "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                        other.type_name()
                    )));
                }
            },
            Expr::VectorSelector(vs) => {
                Val::Vector(self.eval_vector_selector(vs, grid, self.func_hint, false)?)
            }
            Expr::MatrixSelector(ms) => {
                Val::Matrix(self.eval_matrix_selector(&ms.vs, dur_ms(&ms.range), grid, self.func_hint)?)
            }
            Expr::Subquery(sq) => Val::Matrix(self.eval_subquery(sq, grid)?),
            Expr::Call(call) => {
                let outer = self.func_hint.replace(call.func.name);
                let val = self.eval_call(call, grid);
                self.func_hint = outer;
                val?
            }
            Expr::Aggregate(agg) => {
                let outer = std::mem::replace(&mut self.func_hint, aggregation_name(agg.op.id()));
                let val = self.eval_aggregate(agg, grid);
                self.func_hint = outer;
                val?
            }
            Expr::Binary(bin) => {
                let outer = self.func_hint.take();
                let val = self.eval_binary(bin, grid);
                self.func_hint = outer;
                val?
            }
            Expr::Extension(_) => {
                return Err(bad_type("extension expressions are not supported by this engine"));
            }
        };
        Ok(val)
    }

    /// Evaluates an expression that must be a scalar (function and aggregation parameters).
    pub fn eval_scalar(&mut self, expr: &Expr, grid: Grid) -> Result<Vec<f64>, QueryError> {
        match self.eval(expr, grid)? {
            Val::Scalar(v) => Ok(v),
            other => Err(bad_type(format!("expected type scalar, got {}", other.type_name()))),
        }
    }

    /// Evaluates an expression that must be an instant vector.
    pub fn eval_vector(&mut self, expr: &Expr, grid: Grid) -> Result<Vec<Row>, QueryError> {
        match self.eval(expr, grid)? {
            Val::Vector(rows) => Ok(rows),
            other => Err(bad_type(format!("expected type instant vector, got {}", other.type_name()))),
        }
    }

    /// Evaluates an expression that must be a range vector (a matrix selector or a subquery).
    pub fn eval_matrix(
        &mut self,
        expr: &Expr,
        grid: Grid,
        func: Option<&str>,
    ) -> Result<MatrixVal, QueryError> {
        match unparen(expr) {
            Expr::MatrixSelector(ms) => self.eval_matrix_selector(&ms.vs, dur_ms(&ms.range), grid, func),
            Expr::Subquery(sq) => self.eval_subquery(sq, grid),
            other => Err(bad_type(format!(
                "expected type range vector, got {}",
                match other.value_type() {
                    promql_parser::parser::value::ValueType::Vector => "instant vector",
                    promql_parser::parser::value::ValueType::Scalar => "scalar",
                    promql_parser::parser::value::ValueType::String => "string",
                    promql_parser::parser::value::ValueType::Matrix => "range vector",
                }
            ))),
        }
    }

    /// The time each step of `grid` reads at, after `@` and `offset`. Never decreasing.
    pub fn effective_times(&self, grid: Grid, at: &Option<AtModifier>, offset: &Option<Offset>) -> Vec<i64> {
        let off = offset_ms(offset);
        match self.at_time(at) {
            Some(t) => vec![t.saturating_sub(off); grid.len],
            None => (0..grid.len).map(|i| grid.t(i).saturating_sub(off)).collect(),
        }
    }

    fn at_time(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.query_start),
            Some(AtModifier::End) => Some(self.query_end),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
        }
    }

    /// Selects the series of a selector, honouring `or` alternatives and the metric name.
    pub fn select(&mut self, vs: &VectorSelector, hints: &SelectHints) -> Result<Vec<Series>, QueryError> {
        self.check_deadline("series selection")?;
        let name_matcher = vs.name.as_ref().map(|n| Matcher::new(MatchOp::Equal, METRIC_NAME, n));
        let alternatives: Vec<&[Matcher]> = if vs.matchers.or_matchers.is_empty() {
            vec![vs.matchers.matchers.as_slice()]
        } else {
            vs.matchers.or_matchers.iter().map(Vec::as_slice).collect()
        };
        let mut out: Vec<Series> = Vec::new();
        for alt in &alternatives {
            let mut matchers: Vec<Matcher> = alt.to_vec();
            matchers.extend(name_matcher.clone());
            let got = self.querier.select(&matchers, hints)?;
            let n: usize = got.iter().map(|s| s.samples.len()).sum();
            self.hold(n, "series selection")?;
            out.extend(got);
        }
        if alternatives.len() > 1 {
            // A series matching several alternatives is returned once.
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
            out.dedup_by(|a, b| a.labels == b.labels);
        }
        Ok(out)
    }

    /// An instant selector: per step, the latest sample in `(t - lookback, t]` unless it is a staleness
    /// marker. With `timestamps`, the value is the sample's timestamp in seconds (for `timestamp()`).
    pub fn eval_vector_selector(
        &mut self,
        vs: &VectorSelector,
        grid: Grid,
        func: Option<&str>,
        timestamps: bool,
    ) -> Result<Vec<Row>, QueryError> {
        let ends = self.effective_times(grid, &vs.at, &vs.offset);
        let (Some(&first), Some(&last)) = (ends.first(), ends.last()) else {
            return Ok(Vec::new());
        };
        let hints = SelectHints {
            start: first.saturating_sub(self.lookback).saturating_add(1),
            end: last,
            step: if grid.is_instant() { 0 } else { grid.step },
            func: func.map(str::to_owned),
            range: 0,
        };
        let series = self.select(vs, &hints)?;
        self.check_dense(series.len(), ends.len(), "instant vector selection")?;
        let held: usize = series.iter().map(|s| s.samples.len()).sum();
        let mut rows = Vec::with_capacity(series.len());
        for (n, s) in series.into_iter().enumerate() {
            if n % 1024 == 1023 {
                self.check_deadline("instant vector selection")?;
            }
            let mut vals = vec![None; ends.len()];
            let mut j = 0usize;
            let mut any = false;
            for (i, &end) in ends.iter().enumerate() {
                while j < s.samples.len() && s.samples[j].t <= end {
                    j += 1;
                }
                if j == 0 {
                    continue;
                }
                let smp = s.samples[j - 1];
                if smp.t > end.saturating_sub(self.lookback) && !is_stale(smp.v) {
                    vals[i] = Some(if timestamps { smp.t as f64 / 1000.0 } else { smp.v });
                    any = true;
                }
            }
            if any {
                rows.push(Row { labels: s.labels, vals });
            }
        }
        self.release(held);
        let points: usize = rows.iter().map(Row::points).sum();
        self.hold(points, "instant vector selection")?;
        Ok(rows)
    }

    /// A range selector: each series' samples in `(first end - range, last end]`, without staleness
    /// markers (they only end a series; range functions never see them).
    pub fn eval_matrix_selector(
        &mut self,
        vs: &VectorSelector,
        range: i64,
        grid: Grid,
        func: Option<&str>,
    ) -> Result<MatrixVal, QueryError> {
        let ends = self.effective_times(grid, &vs.at, &vs.offset);
        let (Some(&first), Some(&last)) = (ends.first(), ends.last()) else {
            return Ok(MatrixVal { series: Vec::new(), range, ends, pinned: vs.at.is_some() });
        };
        let hints = SelectHints {
            start: first.saturating_sub(range).saturating_add(1),
            end: last,
            step: if grid.is_instant() { 0 } else { grid.step },
            func: func.map(str::to_owned),
            range,
        };
        let mut series = self.select(vs, &hints)?;
        for s in &mut series {
            if s.samples.iter().any(|x| is_stale(x.v)) {
                s.samples.retain(|x| !is_stale(x.v));
            }
        }
        series.retain(|s| !s.samples.is_empty());
        Ok(MatrixVal { series, range, ends, pinned: vs.at.is_some() })
    }

    /// A subquery: the inner expression evaluated at multiples of its step over the whole span the outer
    /// windows need, turned into a range vector.
    pub fn eval_subquery(&mut self, sq: &SubqueryExpr, grid: Grid) -> Result<MatrixVal, QueryError> {
        let range = dur_ms(&sq.range);
        let step = sq.step.as_ref().map(dur_ms).unwrap_or(self.default_step).max(1);
        let ends = self.effective_times(grid, &sq.at, &sq.offset);
        let (Some(&first), Some(&last)) = (ends.first(), ends.last()) else {
            return Ok(MatrixVal { series: Vec::new(), range, ends, pinned: sq.at.is_some() });
        };
        // The first multiple of the step inside the first window, which is left-open.
        let lower = first.saturating_sub(range);
        let mut start = lower.div_euclid(step).saturating_mul(step);
        if start <= lower {
            start = start.saturating_add(step);
        }
        let inner_grid = Grid::new(start, last, step);
        self.check_dense(1, inner_grid.len, "subquery evaluation")?;
        let rows = if inner_grid.len == 0 {
            Vec::new()
        } else {
            match self.eval(&sq.expr, inner_grid)? {
                Val::Vector(rows) => rows,
                Val::Scalar(_) | Val::Str(_) | Val::Matrix(_) => {
                    return Err(bad_type("subquery is only allowed on instant vector expressions"));
                }
            }
        };
        let series = rows
            .into_iter()
            .map(|r| Series {
                labels: r.labels,
                samples: r
                    .vals
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| Sample::new(inner_grid.t(i), v)))
                    .collect(),
            })
            .collect();
        Ok(MatrixVal { series, range, ends, pinned: sq.at.is_some() })
    }
}

/// A type error found during evaluation (the parser checks most of them first).
pub(crate) fn bad_type(msg: impl Into<String>) -> QueryError {
    QueryError::BadData { message: msg.into(), position: None }
}

/// The name of an aggregation operator, for selection hints.
fn aggregation_name(op: u16) -> Option<&'static str> {
    use promql_parser::parser::token::{
        T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_MAX, T_MIN, T_QUANTILE, T_STDDEV, T_STDVAR,
        T_SUM, T_TOPK,
    };
    Some(match op {
        T_SUM => "sum",
        T_AVG => "avg",
        T_COUNT => "count",
        T_MIN => "min",
        T_MAX => "max",
        T_GROUP => "group",
        T_STDDEV => "stddev",
        T_STDVAR => "stdvar",
        T_TOPK => "topk",
        T_BOTTOMK => "bottomk",
        T_COUNT_VALUES => "count_values",
        T_QUANTILE => "quantile",
        _ => return None,
    })
}
