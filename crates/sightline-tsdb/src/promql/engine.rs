//! The engine's entry points: parsing, instant and range queries, limits, and turning evaluated nodes into
//! API values.

use std::time::{Duration, Instant};

use promql_parser::parser::token::{T_BOTTOMK, T_TOPK};
use promql_parser::parser::{Expr, value::ValueType};

use crate::promql::eval::{Evaluator, Grid, Val, dur_ms, unparen};
use crate::promql::value::{InstantSample, QueryError, Value};
use crate::sample::Sample;
use crate::traits::{Querier, Series};

/// Prometheus's cap on a range query's resolution: `(end - start) / step` may not exceed it.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Engine limits and defaults.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (Prometheus: 5 m).
    pub lookback_delta: Duration,
    /// A query running longer fails with [`QueryError::Timeout`] (Prometheus: 2 m).
    pub timeout: Duration,
    /// The most samples a query may hold at once (Prometheus: 50,000,000).
    pub max_samples: usize,
}

// === impl EngineOptions ===

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta: Duration::from_secs(300),
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
        }
    }
}

/// Evaluates PromQL.
#[derive(Clone, Debug)]
pub struct Engine {
    options: EngineOptions,
    /// The step of subqueries that give none (Prometheus: the global evaluation interval).
    default_subquery_step: Duration,
    /// Threads one range function call may use.
    threads: usize,
    /// Whether range functions read their selection lazily (tests turn it off to compare the paths).
    lazy: bool,
}

// === impl Engine ===

impl Default for Engine {
    fn default() -> Self {
        Self::new(EngineOptions::default())
    }
}

impl Engine {
    /// An engine with the given limits; subqueries without a step use 1 m.
    pub fn new(options: EngineOptions) -> Self {
        Self { options, default_subquery_step: Duration::from_secs(60), threads: cpus(), lazy: true }
    }

    /// Sets how many threads one range function call over many series may use (default: the number of
    /// CPUs; 1 evaluates every query on the calling thread).
    pub fn with_parallelism(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Makes range functions materialise their selection, as subqueries do, instead of reading it series
    /// by series: the reference the lazy path is tested against.
    #[cfg(test)]
    pub(crate) fn materialised(mut self) -> Self {
        self.lazy = false;
        self
    }

    /// Sets the step of subqueries written without one (`x[5m:]`); Prometheus uses the global evaluation
    /// interval, 1 m by default.
    pub fn with_default_subquery_step(mut self, step: Duration) -> Self {
        if !step.is_zero() {
            self.default_subquery_step = step;
        }
        self
    }

    /// The limits this engine enforces.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Parses and type-checks a query. Errors are [`QueryError::BadData`] with a byte position when one can
    /// be found: `promql-parser` reports positions for some errors only, so the rest are located again here
    /// (the offending text the message names, an end of input, two operands in a row, the operand of a
    /// type error). Type errors point at what has the wrong type, where Prometheus points at the start
    /// of the expression holding it.
    pub fn parse(query: &str) -> Result<Expr, QueryError> {
        promql_parser::parser::parse(query).map_err(|mut message| {
            let mut position = error_position(query, &message);
            if position.is_none() && ends_incomplete(query) {
                message = "unexpected end of input".to_owned();
                position = Some(query.len());
            }
            if position.is_none() {
                position = type_error_position(query, &message);
            }
            if position.is_none() {
                if let Some((pos, what)) = adjacent_operands(query) {
                    message = what;
                    position = Some(pos);
                }
            }
            let message = match position {
                // Prometheus's form: `line:column: parse error: ...`, both 1-based.
                Some(pos) => {
                    let before = &query[..pos];
                    let line = before.matches('\n').count() + 1;
                    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    format!("{line}:{column}: parse error: {message}")
                }
                None => format!("parse error: {message}"),
            };
            QueryError::BadData { message, position }
        })
    }

    /// Evaluates `query` at `time` (milliseconds).
    pub fn instant_query(&self, querier: &dyn Querier, query: &str, time: i64) -> Result<Value, QueryError> {
        let expr = Self::parse(query)?;
        self.instant_query_expr(querier, &expr, time)
    }

    /// Evaluates a parsed expression at `time` (milliseconds); rule evaluation parses once and calls this.
    pub fn instant_query_expr(
        &self,
        querier: &dyn Querier,
        expr: &Expr,
        time: i64,
    ) -> Result<Value, QueryError> {
        let mut ev = self.evaluator(querier, time, time);
        let grid = Grid::new(time, time, 1);
        let val = ev.eval(expr, grid)?;
        Ok(match val {
            Val::Scalar(v) => Value::Scalar { t: time, v: v.first().copied().unwrap_or(f64::NAN) },
            Val::Str(s) => Value::String { t: time, v: s },
            Val::Vector(rows) => {
                let mut out: Vec<InstantSample> = rows
                    .into_iter()
                    .filter_map(|r| {
                        let v = r.vals.first().copied().flatten()?;
                        Some(InstantSample { labels: r.labels, t: time, v })
                    })
                    .collect();
                sort_instant(expr, &mut out);
                Value::Vector(out)
            }
            Val::Matrix(m) => {
                let end = m.ends.first().copied().unwrap_or(time);
                let start = end - m.range;
                let mut series: Vec<Series> = m
                    .series
                    .into_iter()
                    .filter_map(|mut s| {
                        s.samples.retain(|x| x.t > start && x.t <= end);
                        (!s.samples.is_empty()).then_some(s)
                    })
                    .collect();
                series.sort_by(|a, b| a.labels.cmp(&b.labels));
                Value::Matrix(series)
            }
        })
    }

    /// Evaluates `query` at every `step` from `start` to `end` (milliseconds, inclusive); the result is a
    /// [`Value::Matrix`] sorted by labels.
    pub fn range_query(
        &self,
        querier: &dyn Querier,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Value, QueryError> {
        let bad = |message: &str| QueryError::BadData { message: message.to_owned(), position: None };
        if step <= 0 {
            return Err(bad(
                "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        if end < start {
            return Err(bad("invalid parameter \"end\": end timestamp must not be before start time"));
        }
        if end.saturating_sub(start) / step > MAX_POINTS_PER_SERIES {
            return Err(bad(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
            ));
        }
        let expr = Self::parse(query)?;
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            other => {
                return Err(bad(&format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    match other {
                        ValueType::Matrix => "range vector",
                        _ => "string",
                    }
                )));
            }
        }
        let mut ev = self.evaluator(querier, start, end);
        let grid = Grid::new(start, end, step);
        let val = ev.eval(&expr, grid)?;
        let mut series: Vec<Series> = match val {
            Val::Scalar(v) => vec![Series {
                labels: crate::labels::Labels::empty(),
                samples: v.iter().enumerate().map(|(i, v)| Sample::new(grid.t(i), *v)).collect(),
            }],
            Val::Vector(rows) => rows
                .into_iter()
                .map(|r| Series {
                    labels: r.labels,
                    samples: r
                        .vals
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| v.map(|v| Sample::new(grid.t(i), v)))
                        .collect(),
                })
                .filter(|s| !s.samples.is_empty())
                .collect(),
            other => {
                return Err(bad(&format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    other.type_name()
                )));
            }
        };
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(Value::Matrix(series))
    }

    fn evaluator<'a>(&self, querier: &'a dyn Querier, start: i64, end: i64) -> Evaluator<'a> {
        let now = Instant::now();
        Evaluator {
            querier,
            lookback: dur_ms(&self.options.lookback_delta).max(1),
            deadline: now
                .checked_add(self.options.timeout)
                .unwrap_or(now + Duration::from_secs(86_400 * 365)),
            max_samples: self.options.max_samples,
            current_samples: 0,
            query_start: start,
            query_end: end,
            default_step: dur_ms(&self.default_subquery_step).max(1),
            func_hint: None,
            names_unused: false,
            node_names_unused: false,
            threads: self.threads,
            lazy: self.lazy,
        }
    }
}

/// The number of CPUs this process may use, looked up once: servers build an engine per request, and the
/// lookup reads cgroup files.
fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
}

/// Orders an instant vector: by value for `sort` / `sort_desc`, as evaluated for `topk` / `bottomk`
/// (best first per group), otherwise by labels so results are stable.
fn sort_instant(expr: &Expr, out: &mut [InstantSample]) {
    let by_value = |a: &InstantSample, b: &InstantSample| match (a.v.is_nan(), b.v.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.v.total_cmp(&b.v),
    };
    match unparen(expr) {
        Expr::Call(c) if c.func.name == "sort" => out.sort_by(by_value),
        Expr::Call(c) if c.func.name == "sort_desc" => {
            out.sort_by(|a, b| if a.v.is_nan() || b.v.is_nan() { by_value(a, b) } else { by_value(b, a) })
        }
        Expr::Aggregate(a) if matches!(a.op.id(), T_TOPK | T_BOTTOMK) => {}
        _ => out.sort_by(|a, b| a.labels.cmp(&b.labels)),
    }
}

/// Finds a byte position for a parser message. The parser reports none, so this looks for the quoted
/// offending text in the query, which most lexer and parser messages name; `None` when there is none.
fn error_position(query: &str, message: &str) -> Option<usize> {
    let quoted = ['\'', '"', '`'].iter().find_map(|q| {
        let start = message.find(*q)? + 1;
        let len = message[start..].find(*q)?;
        Some(&message[start..start + len])
    });
    if let Some(text) = quoted.filter(|t| !t.is_empty()) {
        if let Some(pos) = query.find(text) {
            return Some(pos);
        }
    }
    // Messages that end with the offending text unquoted: `bad number or duration syntax: 5x`,
    // `illegal regex for (`.
    let unquoted = ["syntax: ", "regex for "]
        .iter()
        .find_map(|marker| message.rfind(marker).map(|i| &message[i + marker.len()..]));
    if let Some(text) = unquoted.filter(|t| !t.is_empty()) {
        // A regex stands quoted in the query: look for it as a string first, so that `(` in
        // `sum(x{a=~"("})` is the pattern's and not the call's.
        let in_quotes =
            ['"', '\'', '`'].iter().find_map(|q| query.find(&format!("{q}{text}{q}")).map(|p| p + 1));
        if let Some(pos) = in_quotes.or_else(|| query.find(text)) {
            return Some(pos);
        }
    }
    if message.contains("unclosed left parenthesis") || message.contains("end of input") {
        return Some(query.len());
    }
    None
}

/// The first token that follows an operand with no operator between (`foo bar`, `1 2`,
/// `{a="b" c="d"}`), found by running promql-parser's lexer again: the grammar reports these only as
/// "invalid promql query". Returns its byte position and Prometheus's message for it.
fn adjacent_operands(query: &str) -> Option<(usize, String)> {
    use lrpar::{Lexeme, Lexer, NonStreamingLexer};
    use promql_parser::parser::token::{
        T_DURATION, T_IDENTIFIER, T_METRIC_IDENTIFIER, T_NUMBER, T_RIGHT_BRACE, T_RIGHT_BRACKET,
        T_RIGHT_PAREN, T_STRING,
    };
    let kind = |tok: u16| match tok {
        T_IDENTIFIER | T_METRIC_IDENTIFIER => Some("identifier"),
        T_NUMBER => Some("number"),
        T_STRING => Some("string"),
        _ => None,
    };
    let lexer = promql_parser::parser::lexer(query).ok()?;
    let mut prev: Option<u16> = None;
    for lexeme in lexer.iter() {
        let lexeme = lexeme.ok()?;
        let tok = lexeme.tok_id();
        let ends_operand = prev.is_some_and(|p| {
            kind(p).is_some() || matches!(p, T_DURATION | T_RIGHT_PAREN | T_RIGHT_BRACE | T_RIGHT_BRACKET)
        });
        if let (true, Some(what)) = (ends_operand, kind(tok)) {
            let text = lexer.span_str(lexeme.span());
            return Some((lexeme.span().start(), format!("unexpected {what} {text:?}")));
        }
        prev = Some(tok);
    }
    None
}

/// Where a type error the parser reports without a position lies, found by lexing the query again: the
/// parameter of the first aggregation that takes one (`topk(x, y)` points at `x`), or, for a binary
/// operation on a string or a range, that string or the operator after the range. Prometheus points at
/// the start of the whole expression instead; this points inside it, at what has the wrong type.
fn type_error_position(query: &str, message: &str) -> Option<usize> {
    use lrpar::{Lexeme, Lexer};
    use promql_parser::parser::token::{
        T_BY, T_LEFT_BRACE, T_LEFT_PAREN, T_RIGHT_BRACE, T_RIGHT_BRACKET, T_RIGHT_PAREN, T_STRING, T_WITHOUT,
        TokenType,
    };
    let aggregation =
        message.contains("in aggregation expression") || message.contains("aggregation parameter");
    let binary = message.contains("binary expression must contain only scalar and instant vector types");
    if !(aggregation || binary) {
        return None;
    }
    let lexer = promql_parser::parser::lexer(query).ok()?;
    let tokens: Vec<(u16, usize)> =
        lexer.iter().map(|l| l.ok().map(|l| (l.tok_id(), l.span().start()))).collect::<Option<_>>()?;
    if aggregation {
        let at = tokens.iter().position(|(t, _)| TokenType::new(*t).is_aggregator_with_param())?;
        let mut i = at + 1;
        // `topk by (a) (k, x)`: step over the grouping's parentheses.
        if matches!(tokens.get(i), Some((T_BY | T_WITHOUT, _))) {
            i += tokens[i..].iter().position(|(t, _)| *t == T_RIGHT_PAREN)? + 1;
        }
        if tokens.get(i)?.0 != T_LEFT_PAREN {
            return None;
        }
        return tokens.get(i + 1).map(|(_, pos)| *pos);
    }
    let mut braces = 0usize;
    for (i, (tok, pos)) in tokens.iter().enumerate() {
        match *tok {
            T_LEFT_BRACE => braces += 1,
            T_RIGHT_BRACE => braces = braces.saturating_sub(1),
            // Label matchers (`{a="b"}`) are operators between a name and a string, not binary operations.
            _ if braces > 0 || !TokenType::new(*tok).is_operator() => {}
            _ => {
                let before = i.checked_sub(1).map(|j| tokens[j].0);
                let after = tokens.get(i + 1);
                if before == Some(T_STRING) {
                    return Some(tokens[i - 1].1);
                }
                if let Some((T_STRING, string)) = after {
                    return Some(*string);
                }
                if before == Some(T_RIGHT_BRACKET) {
                    return Some(*pos);
                }
            }
        }
    }
    None
}

/// Whether a query stops where more must follow (after an operator, an opening bracket or a keyword
/// that takes an argument); the parser reports these only as "invalid promql query".
fn ends_incomplete(query: &str) -> bool {
    let q = query.trim_end();
    if q.ends_with(['+', '-', '*', '/', '%', '^', '=', '<', '>', '(', ',', '{', '[', '@', '~']) {
        return true;
    }
    let last_word = q.rsplit(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("");
    matches!(
        last_word,
        "and"
            | "or"
            | "unless"
            | "atan2"
            | "by"
            | "without"
            | "on"
            | "ignoring"
            | "bool"
            | "offset"
            | "group_left"
            | "group_right"
    ) && q.len() > last_word.len()
}
