//! Binary operators: arithmetic and comparisons between scalars and vectors, vector matching with
//! `on` / `ignoring` and `group_left` / `group_right`, and the set operators `and`, `or`, `unless`.
//!
//! Matching works on whole rows: series are grouped by their match signature once, and the per-step
//! checks Prometheus makes (duplicates on the "one" side, ambiguous matches) run only where a signature
//! has several series.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD, T_MUL, T_NEQ,
    T_POW, T_SUB,
};
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use crate::labels::{Labels, METRIC_NAME};
use crate::promql::eval::{Evaluator, Grid, Row, Val, bad_type, dedupe_rows, drop_metric_names, exec_err};
use crate::promql::value::QueryError;

fn is_comparison(op: u16) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Applies `op`; the flag says whether a comparison holds (always true for arithmetic).
fn binop(op: u16, l: f64, r: f64) -> Result<(f64, bool), QueryError> {
    Ok(match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_MOD => (l % r, true),
        T_POW => (l.powf(r), true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        other => {
            return Err(bad_type(format!(
                "operator {} is not allowed here",
                promql_parser::parser::token::TokenType::new(other)
            )));
        }
    })
}

/// The matching part of a binary operation between two vectors.
struct Matching<'a> {
    card: &'a VectorMatchCardinality,
    on: bool,
    names: Vec<&'a str>,
}

// === impl Matching ===

impl<'a> Matching<'a> {
    fn new(modifier: Option<&'a BinModifier>) -> Self {
        static ONE_TO_ONE: VectorMatchCardinality = VectorMatchCardinality::OneToOne;
        let Some(m) = modifier else {
            return Self { card: &ONE_TO_ONE, on: false, names: Vec::new() };
        };
        let (on, names) = match &m.matching {
            Some(LabelModifier::Include(l)) => (true, l.labels.iter().map(String::as_str).collect()),
            Some(LabelModifier::Exclude(l)) => (false, l.labels.iter().map(String::as_str).collect()),
            None => (false, Vec::new()),
        };
        Self { card: &m.card, on, names }
    }

    /// The match signature: a hash of the `on` labels, or of all labels but the `ignoring` ones and the
    /// metric name.
    fn signature(&self, labels: &Labels) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        if self.on {
            for n in &self.names {
                n.hash(&mut h);
                labels.get(n).unwrap_or("").hash(&mut h);
            }
        } else {
            for l in labels.iter() {
                if l.name != METRIC_NAME && !self.names.contains(&l.name.as_str()) {
                    l.name.hash(&mut h);
                    l.value.hash(&mut h);
                }
            }
        }
        h.finish()
    }

    /// The labels a signature stands for, for error messages.
    fn matched_labels(&self, labels: &Labels) -> Labels {
        if self.on {
            labels.keep(&self.names)
        } else {
            let mut names = self.names.clone();
            names.push(METRIC_NAME);
            labels.drop_names(&names)
        }
    }
}

// === impl Evaluator ===

impl Evaluator<'_> {
    pub fn eval_binary(&mut self, bin: &BinaryExpr, grid: Grid) -> Result<Val, QueryError> {
        let op = bin.op.id();
        if let Some(m) = &bin.modifier {
            if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                return Err(bad_type("fill modifiers are experimental and not supported by this engine"));
            }
        }
        let return_bool = bin.modifier.as_ref().is_some_and(|m| m.return_bool);
        let lhs = self.eval(&bin.lhs, grid)?;
        let rhs = self.eval(&bin.rhs, grid)?;
        self.check_deadline("binary operation")?;
        match (lhs, rhs) {
            (Val::Scalar(a), Val::Scalar(b)) => {
                let mut out = Vec::with_capacity(a.len());
                for (l, r) in a.into_iter().zip(b) {
                    let (v, keep) = binop(op, l, r)?;
                    out.push(if is_comparison(op) { if keep { 1.0 } else { 0.0 } } else { v });
                }
                Ok(Val::Scalar(out))
            }
            (Val::Vector(rows), Val::Scalar(s)) => vector_scalar(op, rows, &s, false, return_bool),
            (Val::Scalar(s), Val::Vector(rows)) => vector_scalar(op, rows, &s, true, return_bool),
            (Val::Vector(l), Val::Vector(r)) => {
                let matching = Matching::new(bin.modifier.as_ref());
                match op {
                    T_LAND | T_LUNLESS => {
                        Ok(Val::Vector(and_unless(l, &r, &matching, op == T_LAND, grid.len)))
                    }
                    T_LOR => Ok(Val::Vector(dedupe_rows(or(l, r, &matching, grid.len))?)),
                    _ => Ok(Val::Vector(vector_vector(op, l, r, &matching, return_bool, grid.len)?)),
                }
            }
            (l, r) => Err(bad_type(format!(
                "binary expression must contain only scalar and instant vector types, got {} and {}",
                l.type_name(),
                r.type_name()
            ))),
        }
    }
}

fn vector_scalar(
    op: u16,
    rows: Vec<Row>,
    s: &[f64],
    swap: bool,
    return_bool: bool,
) -> Result<Val, QueryError> {
    let drop_name = !is_comparison(op) || return_bool;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut vals = Vec::with_capacity(r.vals.len());
        for (i, v) in r.vals.iter().enumerate() {
            let Some(v) = *v else {
                vals.push(None);
                continue;
            };
            let (l, rr) = if swap { (s[i], v) } else { (v, s[i]) };
            let (mut value, keep) = binop(op, l, rr)?;
            if is_comparison(op) && swap {
                value = rr;
            }
            vals.push(if return_bool {
                Some(if keep { 1.0 } else { 0.0 })
            } else if keep {
                Some(value)
            } else {
                None
            });
        }
        out.push(Row { labels: r.labels, vals });
    }
    if drop_name {
        Ok(Val::Vector(drop_metric_names(out)?))
    } else {
        out.retain(|r| r.vals.iter().any(Option::is_some));
        Ok(Val::Vector(out))
    }
}

/// Per signature, whether any row with it is present at each step.
fn presence(rows: &[Row], matching: &Matching<'_>, steps: usize) -> HashMap<u64, Vec<bool>> {
    let mut out: HashMap<u64, Vec<bool>> = HashMap::new();
    for r in rows {
        let p = out.entry(matching.signature(&r.labels)).or_insert_with(|| vec![false; steps]);
        for (p, v) in p.iter_mut().zip(&r.vals) {
            *p |= v.is_some();
        }
    }
    out
}

fn and_unless(lhs: Vec<Row>, rhs: &[Row], matching: &Matching<'_>, and: bool, steps: usize) -> Vec<Row> {
    let present = presence(rhs, matching, steps);
    lhs.into_iter()
        .filter_map(|mut r| {
            let p = present.get(&matching.signature(&r.labels));
            for (i, v) in r.vals.iter_mut().enumerate() {
                let matched = p.is_some_and(|p| p[i]);
                if matched != and {
                    *v = None;
                }
            }
            r.vals.iter().any(Option::is_some).then_some(r)
        })
        .collect()
}

fn or(lhs: Vec<Row>, rhs: Vec<Row>, matching: &Matching<'_>, steps: usize) -> Vec<Row> {
    let present = presence(&lhs, matching, steps);
    let mut out = lhs;
    for mut r in rhs {
        if let Some(p) = present.get(&matching.signature(&r.labels)) {
            for (v, p) in r.vals.iter_mut().zip(p) {
                if *p {
                    *v = None;
                }
            }
        }
        if r.vals.iter().any(Option::is_some) {
            out.push(r);
        }
    }
    out
}

/// Arithmetic and comparisons between two vectors with one-to-one, many-to-one or one-to-many matching.
fn vector_vector(
    op: u16,
    lhs: Vec<Row>,
    rhs: Vec<Row>,
    matching: &Matching<'_>,
    return_bool: bool,
    steps: usize,
) -> Result<Vec<Row>, QueryError> {
    let (include, one_to_many) = match matching.card {
        VectorMatchCardinality::ManyToOne(l) => (Some(&l.labels), false),
        VectorMatchCardinality::OneToMany(l) => (Some(&l.labels), true),
        VectorMatchCardinality::OneToOne => (None, false),
        VectorMatchCardinality::ManyToMany => {
            return Err(bad_type(
                "many-to-many matching is only allowed for set operators (and, or, unless)",
            ));
        }
    };
    let one_to_one = matches!(matching.card, VectorMatchCardinality::OneToOne);
    // The "many" side is the left unless group_right swaps them.
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };

    let mut one_sigs: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, r) in one.iter().enumerate() {
        one_sigs.entry(matching.signature(&r.labels)).or_default().push(i);
    }
    // Several series with one signature on the "one" side are fine until two are present at one step.
    for members in one_sigs.values().filter(|m| m.len() > 1) {
        for step in 0..steps {
            let mut present = members.iter().filter(|&&i| one[i].vals[step].is_some());
            if let (Some(&a), Some(&b)) = (present.next(), present.next()) {
                let side = if one_to_many { "left" } else { "right" };
                return Err(exec_err(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    matching.matched_labels(&one[b].labels),
                    one[b].labels,
                    one[a].labels
                )));
            }
        }
    }

    let mut many_count: HashMap<u64, usize> = HashMap::new();
    let many_sigs: Vec<u64> = many.iter().map(|r| matching.signature(&r.labels)).collect();
    for s in &many_sigs {
        *many_count.entry(*s).or_default() += 1;
    }
    let mut matched_steps: HashMap<u64, Vec<bool>> = HashMap::new();
    let drop_name = !is_comparison(op) || return_bool;

    let mut out: Vec<Row> = Vec::new();
    let mut out_by_labels: HashMap<Labels, (usize, u64)> = HashMap::new();
    let mut out_by_pair: HashMap<(usize, usize), usize> = HashMap::new();
    for (mi, m) in many.iter().enumerate() {
        let sig = many_sigs[mi];
        let Some(candidates) = one_sigs.get(&sig) else {
            continue;
        };
        let shared_sig = many_count.get(&sig).copied().unwrap_or(0) > 1;
        for step in 0..steps {
            let Some(mv) = m.vals[step] else { continue };
            let Some(&oi) = candidates.iter().find(|&&oi| one[oi].vals[step].is_some()) else {
                continue;
            };
            let ov = one[oi].vals[step].unwrap_or(f64::NAN);
            let (fl, fr) = if one_to_many { (ov, mv) } else { (mv, ov) };
            let (value, keep) = binop(op, fl, fr)?;
            let value = if return_bool {
                if keep { 1.0 } else { 0.0 }
            } else if keep {
                value
            } else {
                continue;
            };
            if one_to_one && shared_sig {
                let seen = matched_steps.entry(sig).or_insert_with(|| vec![false; steps]);
                if seen[step] {
                    return Err(exec_err(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                    ));
                }
                seen[step] = true;
            }
            let idx = match out_by_pair.get(&(mi, oi)) {
                Some(&idx) => idx,
                None => {
                    let labels = result_labels(&m.labels, &one[oi].labels, drop_name, matching, include);
                    let idx = match out_by_labels.get(&labels) {
                        Some(&(idx, _)) => idx,
                        None => {
                            out.push(Row { labels: labels.clone(), vals: vec![None; steps] });
                            out_by_labels.insert(labels, (out.len() - 1, sig));
                            out.len() - 1
                        }
                    };
                    out_by_pair.insert((mi, oi), idx);
                    idx
                }
            };
            let slot = &mut out[idx].vals[step];
            if slot.is_some() {
                let same_group = out_by_labels.get(&out[idx].labels).is_some_and(|&(_, s)| s == sig);
                return Err(exec_err(if same_group && !one_to_one {
                    "multiple matches for labels: grouping labels must ensure unique matches"
                } else {
                    "vector cannot contain metrics with the same labelset"
                }));
            }
            *slot = Some(value);
        }
    }
    out.retain(|r| r.vals.iter().any(Option::is_some));
    Ok(out)
}

/// Prometheus's `resultMetric`: the "many" side's labels, without the metric name for arithmetic and
/// `bool`, reduced to the `on` labels (or without the `ignoring` ones) for one-to-one matching, plus the
/// `group_x` labels copied from the "one" side.
fn result_labels(
    many: &Labels,
    one: &Labels,
    drop_name: bool,
    matching: &Matching<'_>,
    include: Option<&Vec<String>>,
) -> Labels {
    let mut labels = if drop_name { many.without_metric_name() } else { many.clone() };
    if matches!(matching.card, VectorMatchCardinality::OneToOne) {
        labels = if matching.on { labels.keep(&matching.names) } else { labels.drop_names(&matching.names) };
    }
    if let Some(include) = include {
        for name in include {
            match one.get(name) {
                Some(v) => labels.set(name, v),
                None => labels.remove(name),
            }
        }
    }
    labels
}
