//! Engine tests over [`MemStorage`], plus a cross-check that runs the same data and queries through
//! Debian's `promtool test rules` (Prometheus 2.42) when it is installed.

use std::time::Duration;

use crate::labels::{Label, Labels};
use crate::mem::MemStorage;
use crate::promql::{Engine, EngineOptions, QueryError, Value};
use crate::sample::{Sample, stale_nan};

const MIN: i64 = 60_000;

/// Parses `name{a="1", b="2"}` (test input only; values have no escapes).
fn parse_series(s: &str) -> Labels {
    let s = s.trim();
    let (name, rest) = match s.find('{') {
        Some(i) => (&s[..i], &s[i + 1..s.len() - 1]),
        None => (s, ""),
    };
    let mut labels: Vec<Label> = Vec::new();
    if !name.is_empty() {
        labels.push(Label::new("__name__", name));
    }
    for pair in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').expect("label pair");
        labels.push(Label::new(k.trim(), v.trim().trim_matches('"')));
    }
    Labels::new(labels)
}

/// Expands promtool's value notation: `1 2 _ stale 0+10x5 100-1x3`.
fn expand_values(spec: &str) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    for tok in spec.split_whitespace() {
        if tok == "_" {
            out.push(None);
        } else if tok == "stale" {
            out.push(Some(stale_nan()));
        } else if let Some((base, times)) = tok.split_once('x') {
            let n: usize = times.parse().expect("repeat count");
            let (start, step) = match base[1..].find(['+', '-']) {
                Some(i) => {
                    let (a, b) = base.split_at(i + 1);
                    (a.parse::<f64>().expect("start"), b.parse::<f64>().expect("step"))
                }
                None => (base.parse::<f64>().expect("value"), 0.0),
            };
            for k in 0..=n {
                out.push(Some(start + step * k as f64));
            }
        } else {
            out.push(Some(tok.parse().expect("value")));
        }
    }
    out
}

/// Loads lines of `series values` at `interval` milliseconds from t = 0.
fn load(input: &[(&str, &str)], interval: i64) -> MemStorage {
    let store = MemStorage::new();
    for (series, values) in input {
        let samples = expand_values(values)
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| Sample::new(i as i64 * interval, v)));
        store.add(parse_series(series), samples.collect::<Vec<_>>());
    }
    store
}

fn engine() -> Engine {
    Engine::new(EngineOptions::default())
}

/// An instant query's result as `labels => value` lines (scalars as `scalar => v`).
fn instant(store: &MemStorage, q: &str, t: i64) -> Vec<String> {
    match engine().instant_query(store, q, t).unwrap_or_else(|e| panic!("{q}: {e}")) {
        Value::Vector(v) => v.iter().map(|s| format!("{} => {}", s.labels, s.v)).collect(),
        Value::Scalar { v, .. } => vec![format!("scalar => {v}")],
        Value::String { v, .. } => vec![format!("string => {v}")],
        Value::Matrix(m) => m
            .iter()
            .map(|s| {
                let pts: Vec<String> = s.samples.iter().map(|p| format!("{}@{}", p.v, p.t)).collect();
                format!("{} => [{}]", s.labels, pts.join(" "))
            })
            .collect(),
    }
}

fn instant_err(store: &MemStorage, q: &str, t: i64) -> QueryError {
    match engine().instant_query(store, q, t) {
        Ok(v) => panic!("{q}: expected an error, got {v:?}"),
        Err(e) => e,
    }
}

fn counters() -> MemStorage {
    load(
        &[
            (r#"http_requests{job="api", instance="0"}"#, "0+10x20"),
            (r#"http_requests{job="api", instance="1"}"#, "0+20x20"),
            (r#"http_requests{job="db", instance="0"}"#, "0+30x20"),
            (r#"resetting{job="api"}"#, "0 10 20 5 15 25 2 12"),
            (r#"gauge{job="api"}"#, "5 3 8 1 9 2 7 4 6 0"),
        ],
        MIN,
    )
}

#[test]
fn instant_selector_lookback_and_staleness() {
    let store = load(&[("a", "1 2 _ _ _ _ _ _ _ _ 3 stale"), ("b", "1")], MIN);
    // The latest sample at or before t within the 5 m lookback.
    assert_eq!(instant(&store, "a", MIN + 30_000), ["a => 2"]);
    // Exactly 5 m after the last sample: excluded (the lookback window is left-open in 3.x).
    assert_eq!(instant(&store, "a", 6 * MIN), Vec::<String>::new());
    assert_eq!(instant(&store, "a", 6 * MIN - 1), ["a => 2"]);
    // A staleness marker ends the series at once.
    assert_eq!(instant(&store, "a", 10 * MIN + 30_000), ["a => 3"]);
    assert_eq!(instant(&store, "a", 11 * MIN + 30_000), Vec::<String>::new());
    assert_eq!(instant(&store, "b", 4 * MIN), ["b => 1"]);
}

#[test]
fn range_selector_is_left_open() {
    let store = load(&[("a", "0 1 2 3 4 5")], MIN);
    assert_eq!(instant(&store, "a[2m]", 4 * MIN), ["a => [3@180000 4@240000]"]);
    assert_eq!(instant(&store, "count_over_time(a[2m])", 4 * MIN), ["{} => 2"]);
    assert_eq!(instant(&store, "count_over_time(a[2m])", 4 * MIN + 1), ["{} => 2"]);
    assert_eq!(instant(&store, "a[2m] offset 1m", 4 * MIN), ["a => [2@120000 3@180000]"]);
    assert_eq!(instant(&store, "a[1m] @ 120", 5 * MIN), ["a => [2@120000]"]);
}

#[test]
fn selector_matchers_offset_and_at() {
    let store = counters();
    let t = 10 * MIN;
    assert_eq!(
        instant(&store, r#"http_requests{job="db"}"#, t),
        [r#"http_requests{instance="0", job="db"} => 300"#]
    );
    assert_eq!(instant(&store, r#"count(http_requests{job!="db"})"#, t), ["{} => 2"]);
    assert_eq!(instant(&store, r#"count(http_requests{job=~"a.*"})"#, t), ["{} => 2"]);
    assert_eq!(instant(&store, r#"count(http_requests{job!~"a.*|d"})"#, t), ["{} => 1"]);
    assert_eq!(instant(&store, r#"count({__name__=~"http_.*", instance="1"})"#, t), ["{} => 1"]);
    assert_eq!(
        instant(&store, r#"http_requests{job="db"} offset 5m"#, t),
        [r#"http_requests{instance="0", job="db"} => 150"#]
    );
    assert_eq!(
        instant(&store, r#"http_requests{job="db"} @ 120"#, t),
        [r#"http_requests{instance="0", job="db"} => 60"#]
    );
    assert_eq!(
        instant(&store, r#"http_requests{job="db"} @ end() offset 1m"#, t),
        [r#"http_requests{instance="0", job="db"} => 270"#]
    );
}

#[test]
fn rate_family_matches_prometheus_extrapolation() {
    let store = counters();
    let t = 10 * MIN + 30_000;
    // Samples at 6..10 m in (5m30s, 10m30s]: an increase of 40 over 240 s, extrapolated by 30 s at each
    // end (both gaps are under 1.1 intervals): 40 * 300 / 240 = 50.
    assert_eq!(
        instant(&store, r#"increase(http_requests{job="api", instance="0"}[5m])"#, t),
        [r#"{instance="0", job="api"} => 50"#]
    );
    assert_eq!(
        instant(&store, r#"rate(http_requests{job="api", instance="0"}[5m])"#, t),
        [r#"{instance="0", job="api"} => 0.16666666666666666"#]
    );
    // Counter resets add the value before the reset.
    assert_eq!(instant(&store, "resets(resetting[10m])", 8 * MIN), [r#"{job="api"} => 2"#]);
    assert_eq!(instant(&store, "irate(resetting[10m])", 7 * MIN), [r#"{job="api"} => 0.16666666666666666"#]);
    assert_eq!(instant(&store, "idelta(gauge[10m])", 9 * MIN), [r#"{job="api"} => -6"#]);
    assert_eq!(instant(&store, "changes(gauge[10m])", 9 * MIN), [r#"{job="api"} => 9"#]);
    // The counter starts at 0 at t = 0: the extrapolation stops at the zero point.
    assert_eq!(
        instant(&store, r#"increase(http_requests{job="db"}[5m])"#, 3 * MIN),
        [r#"{instance="0", job="db"} => 90"#]
    );
    assert_eq!(
        instant(&store, "deriv(gauge[3m])", 9 * MIN + 30_000),
        [r#"{job="api"} => -0.03333333333333333"#]
    );
    assert_eq!(
        instant(&store, r#"predict_linear(http_requests{job="db"}[5m], 60)"#, 10 * MIN),
        [r#"{instance="0", job="db"} => 330"#]
    );
}

#[test]
fn over_time_functions() {
    let store = counters();
    let t = 8 * MIN + 30_000;
    let q = |f: &str| instant(&store, &format!("{f}(gauge[5m])"), t);
    // Window (3m30s, 8m30s]: 9 2 7 4 6.
    assert_eq!(q("avg_over_time"), [r#"{job="api"} => 5.6"#]);
    assert_eq!(q("sum_over_time"), [r#"{job="api"} => 28"#]);
    assert_eq!(q("min_over_time"), [r#"{job="api"} => 2"#]);
    assert_eq!(q("max_over_time"), [r#"{job="api"} => 9"#]);
    assert_eq!(q("count_over_time"), [r#"{job="api"} => 5"#]);
    assert_eq!(q("last_over_time"), [r#"gauge{job="api"} => 6"#]);
    assert_eq!(q("first_over_time"), [r#"gauge{job="api"} => 9"#]);
    assert_eq!(q("present_over_time"), [r#"{job="api"} => 1"#]);
    assert_eq!(q("stdvar_over_time"), [r#"{job="api"} => 5.84"#]);
    assert_eq!(q("stddev_over_time"), [format!(r#"{{job="api"}} => {}"#, 5.84f64.sqrt())]);
    assert_eq!(instant(&store, "quantile_over_time(0.5, gauge[5m])", t), [r#"{job="api"} => 6"#]);
    assert_eq!(instant(&store, "quantile_over_time(0.25, gauge[5m])", t), [r#"{job="api"} => 4"#]);
    assert_eq!(instant(&store, "absent_over_time(gauge[5m])", t), Vec::<String>::new());
    assert_eq!(instant(&store, r#"absent_over_time(nope{job="x"}[5m])"#, t), [r#"{job="x"} => 1"#]);
}

#[test]
fn instant_functions() {
    let store = load(&[(r#"m{k="a"}"#, "-2.5"), (r#"m{k="b"}"#, "4"), (r#"t{k="a"}"#, "1709210096")], MIN);
    let t = 30_000;
    assert_eq!(instant(&store, "abs(m)", t), [r#"{k="a"} => 2.5"#, r#"{k="b"} => 4"#]);
    assert_eq!(instant(&store, "ceil(m)", t), [r#"{k="a"} => -2"#, r#"{k="b"} => 4"#]);
    assert_eq!(instant(&store, "floor(m)", t), [r#"{k="a"} => -3"#, r#"{k="b"} => 4"#]);
    assert_eq!(instant(&store, "round(m)", t), [r#"{k="a"} => -2"#, r#"{k="b"} => 4"#]);
    assert_eq!(instant(&store, "round(m, 3)", t), [r#"{k="a"} => -3"#, r#"{k="b"} => 3"#]);
    assert_eq!(instant(&store, "sgn(m)", t), [r#"{k="a"} => -1"#, r#"{k="b"} => 1"#]);
    assert_eq!(instant(&store, "sqrt(m{k=\"b\"})", t), [r#"{k="b"} => 2"#]);
    assert_eq!(instant(&store, "ln(m{k=\"a\"})", t), [r#"{k="a"} => NaN"#]);
    assert_eq!(instant(&store, "log2(m{k=\"b\"})", t), [r#"{k="b"} => 2"#]);
    assert_eq!(instant(&store, "log10(m{k=\"b\"}*25)", t), [r#"{k="b"} => 2"#]);
    assert_eq!(instant(&store, "exp(m{k=\"b\"} - 4)", t), [r#"{k="b"} => 1"#]);
    assert_eq!(instant(&store, "clamp(m, -1, 3)", t), [r#"{k="a"} => -1"#, r#"{k="b"} => 3"#]);
    assert_eq!(instant(&store, "clamp(m, 3, -1)", t), Vec::<String>::new());
    assert_eq!(instant(&store, "clamp_min(m, 0)", t), [r#"{k="a"} => 0"#, r#"{k="b"} => 4"#]);
    assert_eq!(instant(&store, "clamp_max(m, 0)", t), [r#"{k="a"} => -2.5"#, r#"{k="b"} => 0"#]);
    assert_eq!(instant(&store, "cos(m{k=\"b\"} * 0)", t), [r#"{k="b"} => 1"#]);
    assert_eq!(instant(&store, "deg(pi() * vector(1))", t), ["{} => 180"]);
    assert_eq!(instant(&store, "rad(vector(180))", t), [format!("{{}} => {}", std::f64::consts::PI)]);
    assert_eq!(
        instant(&store, "vector(1) atan2 vector(1)", t),
        [format!("{{}} => {}", std::f64::consts::FRAC_PI_4)]
    );
    assert_eq!(instant(&store, "timestamp(m{k=\"b\"})", t), [r#"{k="b"} => 0"#]);
    assert_eq!(instant(&store, "time()", t), ["scalar => 30"]);
    assert_eq!(instant(&store, "scalar(m{k=\"b\"})", t), ["scalar => 4"]);
    assert_eq!(instant(&store, "scalar(m)", t), ["scalar => NaN"]);
    assert_eq!(instant(&store, "vector(2)", t), ["{} => 2"]);
    assert_eq!(instant(&store, "absent(m)", t), Vec::<String>::new());
    assert_eq!(instant(&store, r#"absent(nope{a="1", b=~"x", c="2", c="3"})"#, t), [r#"{a="1"} => 1"#]);
    assert_eq!(instant(&store, r#"absent(nope{d=~"x", d="y"})"#, t), [r#"{d="y"} => 1"#]);
    assert_eq!(instant(&store, "year(t)", t), [r#"{k="a"} => 2024"#]);
    assert_eq!(instant(&store, "month(t)", t), [r#"{k="a"} => 2"#]);
    assert_eq!(instant(&store, "day_of_month(t)", t), [r#"{k="a"} => 29"#]);
    assert_eq!(instant(&store, "days_in_month(t)", t), [r#"{k="a"} => 29"#]);
    assert_eq!(instant(&store, "day_of_week(t)", t), [r#"{k="a"} => 4"#]);
    assert_eq!(instant(&store, "day_of_year(t)", t), [r#"{k="a"} => 60"#]);
    assert_eq!(instant(&store, "hour(t)", t), [r#"{k="a"} => 12"#]);
    assert_eq!(instant(&store, "minute(t)", t), [r#"{k="a"} => 34"#]);
    assert_eq!(instant(&store, "year()", t), ["{} => 1970"]);
    assert_eq!(instant(&store, "sort_desc(m)", t), [r#"m{k="b"} => 4"#, r#"m{k="a"} => -2.5"#]);
    assert_eq!(instant(&store, "sort(m)", t), [r#"m{k="a"} => -2.5"#, r#"m{k="b"} => 4"#]);
}

#[test]
fn label_functions() {
    let store = load(
        &[(r#"up{job="api", instance="host:9090"}"#, "1"), (r#"up{job="db", instance="db:5432"}"#, "0")],
        MIN,
    );
    assert_eq!(
        instant(&store, r#"label_replace(up, "host", "$1", "instance", "(.*):.*")"#, 0),
        [
            r#"up{host="db", instance="db:5432", job="db"} => 0"#,
            r#"up{host="host", instance="host:9090", job="api"} => 1"#
        ]
    );
    // No match leaves the series as it is.
    assert_eq!(
        instant(&store, r#"label_replace(up{job="api"}, "x", "y", "job", "nomatch")"#, 0),
        [r#"up{instance="host:9090", job="api"} => 1"#]
    );
    assert_eq!(
        instant(&store, r#"label_join(up{job="api"}, "both", "-", "job", "instance")"#, 0),
        [r#"up{both="api-host:9090", instance="host:9090", job="api"} => 1"#]
    );
    let e = instant_err(
        &store,
        r#"label_replace(label_replace(up, "job", "j", "job", ".*"), "instance", "i", "job", ".*")"#,
        0,
    );
    assert_eq!(e.to_string(), "vector cannot contain metrics with the same labelset");
    let e = instant_err(&store, r#"label_replace(up, "x", "y", "job", "(")"#, 0);
    assert!(e.to_string().starts_with("invalid regular expression in label_replace()"), "{e}");
}

#[test]
fn histogram_quantile_classic_buckets() {
    let store = load(
        &[
            (r#"req_bucket{le="0.1"}"#, "0+1x10"),
            (r#"req_bucket{le="0.5"}"#, "0+3x10"),
            (r#"req_bucket{le="1"}"#, "0+4x10"),
            (r#"req_bucket{le="+Inf"}"#, "0+5x10"),
            (r#"noinf_bucket{le="1"}"#, "1x10"),
            (r#"nonmono_bucket{le="1"}"#, "5x10"),
            (r#"nonmono_bucket{le="2"}"#, "3x10"),
            (r#"nonmono_bucket{le="+Inf"}"#, "10x10"),
        ],
        MIN,
    );
    let t = 10 * MIN;
    // 50 observations; rank 25 falls in (0.1, 0.5] which holds 20 (from 10 to 30): 0.1 + 0.4 * 15/20.
    assert_eq!(instant(&store, "histogram_quantile(0.5, req_bucket)", t), ["{} => 0.4"]);
    // Rank 49 is in the +Inf bucket: the highest finite bound.
    assert_eq!(instant(&store, "histogram_quantile(0.99, req_bucket)", t), ["{} => 1"]);
    assert_eq!(instant(&store, "histogram_quantile(0, req_bucket)", t), ["{} => 0"]);
    assert_eq!(instant(&store, "histogram_quantile(1.5, req_bucket)", t), ["{} => inf"]);
    assert_eq!(instant(&store, "histogram_quantile(0.5, noinf_bucket)", t), ["{} => NaN"]);
    // The decreasing bucket is raised to 5: rank 5 lands in the first bucket.
    assert_eq!(instant(&store, "histogram_quantile(0.5, nonmono_bucket)", t), ["{} => 1"]);
    // Through `rate` the result is 0.4 up to float rounding.
    assert_eq!(
        instant(&store, "round(histogram_quantile(0.5, rate(req_bucket[5m])) * 1000)", t),
        ["{} => 400"]
    );
}

#[test]
fn aggregations() {
    let store = counters();
    let t = 10 * MIN;
    assert_eq!(instant(&store, "sum(http_requests)", t), ["{} => 600"]);
    assert_eq!(
        instant(&store, "sum by (job) (http_requests)", t),
        [r#"{job="api"} => 300"#, r#"{job="db"} => 300"#]
    );
    assert_eq!(
        instant(&store, "sum without (instance) (http_requests)", t),
        [r#"{job="api"} => 300"#, r#"{job="db"} => 300"#]
    );
    assert_eq!(
        instant(&store, "avg by (job) (http_requests)", t),
        [r#"{job="api"} => 150"#, r#"{job="db"} => 300"#]
    );
    assert_eq!(instant(&store, "min(http_requests)", t), ["{} => 100"]);
    assert_eq!(instant(&store, "max(http_requests)", t), ["{} => 300"]);
    assert_eq!(
        instant(&store, "count by (instance) (http_requests)", t),
        [r#"{instance="0"} => 2"#, r#"{instance="1"} => 1"#]
    );
    assert_eq!(
        instant(&store, "group by (job) (http_requests)", t),
        [r#"{job="api"} => 1"#, r#"{job="db"} => 1"#]
    );
    assert_eq!(instant(&store, "stdvar(http_requests)", t), [format!("{{}} => {}", 20000.0 / 3.0)]);
    assert_eq!(
        instant(&store, "stddev(http_requests)", t),
        [format!("{{}} => {}", (20000.0f64 / 3.0).sqrt())]
    );
    assert_eq!(instant(&store, "quantile(0.5, http_requests)", t), ["{} => 200"]);
    assert_eq!(instant(&store, "quantile(0.9, http_requests)", t), ["{} => 280"]);
    assert_eq!(
        instant(&store, "topk(2, http_requests)", t),
        [
            r#"http_requests{instance="0", job="db"} => 300"#,
            r#"http_requests{instance="1", job="api"} => 200"#
        ]
    );
    assert_eq!(
        instant(&store, "bottomk by (job) (1, http_requests)", t),
        [
            r#"http_requests{instance="0", job="api"} => 100"#,
            r#"http_requests{instance="0", job="db"} => 300"#
        ]
    );
    assert_eq!(
        instant(&store, r#"count_values("v", http_requests)"#, t),
        [r#"{v="100"} => 1"#, r#"{v="200"} => 1"#, r#"{v="300"} => 1"#]
    );
    assert_eq!(
        instant(&store, r#"count_values by (job) ("v", http_requests / 100 > 1)"#, t),
        [r#"{job="api", v="2"} => 1"#, r#"{job="db", v="3"} => 1"#]
    );
    assert_eq!(
        instant(&store, "sum by (job) (rate(http_requests[5m]))", 10 * MIN + 30_000),
        [r#"{job="api"} => 0.5"#, r#"{job="db"} => 0.5"#]
    );
}

#[test]
fn binary_operators_and_matching() {
    let store = load(
        &[
            (r#"a{job="x", i="1"}"#, "10"),
            (r#"a{job="x", i="2"}"#, "20"),
            (r#"b{job="x", i="1"}"#, "2"),
            (r#"b{job="x", i="2"}"#, "5"),
            (r#"per_job{job="x", owner="ops"}"#, "100"),
        ],
        MIN,
    );
    let t = 0;
    assert_eq!(instant(&store, "a + b", t), [r#"{i="1", job="x"} => 12"#, r#"{i="2", job="x"} => 25"#]);
    assert_eq!(instant(&store, "a / b", t), [r#"{i="1", job="x"} => 5"#, r#"{i="2", job="x"} => 4"#]);
    assert_eq!(instant(&store, "a % 3", t), [r#"{i="1", job="x"} => 1"#, r#"{i="2", job="x"} => 2"#]);
    assert_eq!(instant(&store, "2 ^ b", t), [r#"{i="1", job="x"} => 4"#, r#"{i="2", job="x"} => 32"#]);
    assert_eq!(instant(&store, "a > 15", t), [r#"a{i="2", job="x"} => 20"#]);
    assert_eq!(instant(&store, "15 < a", t), [r#"a{i="2", job="x"} => 20"#]);
    assert_eq!(instant(&store, "a > bool 15", t), [r#"{i="1", job="x"} => 0"#, r#"{i="2", job="x"} => 1"#]);
    assert_eq!(instant(&store, "a > b * 4", t), [r#"a{i="1", job="x"} => 10"#]);
    assert_eq!(instant(&store, "a == bool on (i) b * 5", t), [r#"{i="1"} => 1"#, r#"{i="2"} => 0"#]);
    assert_eq!(instant(&store, "-a", t), [r#"{i="1", job="x"} => -10"#, r#"{i="2", job="x"} => -20"#]);
    assert_eq!(instant(&store, "1 + 2 * 3", t), ["scalar => 7"]);
    assert_eq!(instant(&store, "1 > bool 2", t), ["scalar => 0"]);
    assert_eq!(
        instant(&store, "a * on (job) group_left (owner) per_job", t),
        [r#"{i="1", job="x", owner="ops"} => 1000"#, r#"{i="2", job="x", owner="ops"} => 2000"#]
    );
    assert_eq!(
        instant(&store, "per_job * on (job) group_right b", t),
        [r#"{i="1", job="x"} => 200"#, r#"{i="2", job="x"} => 500"#]
    );
    assert_eq!(instant(&store, "a * ignoring (i) group_left per_job", t), Vec::<String>::new());
    assert_eq!(
        instant(&store, "a * ignoring (i, owner) group_left per_job", t),
        [r#"{i="1", job="x"} => 1000"#, r#"{i="2", job="x"} => 2000"#]
    );
    let e = instant_err(&store, "per_job * on (job) a", t);
    assert!(
        e.to_string().starts_with(
            r#"found duplicate series for the match group {job="x"} on the right hand-side of the operation"#
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .ends_with("many-to-many matching not allowed: matching labels must be unique on one side")
    );
    let e = instant_err(&store, "a * on (job) per_job", t);
    assert_eq!(
        e.to_string(),
        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
    );
    let e = instant_err(&store, "a * on (job) group_left b", t);
    assert!(e.to_string().contains("on the right hand-side"), "{e}");
    assert_eq!(e.error_type(), "execution");
}

#[test]
fn set_operators() {
    let store = load(
        &[(r#"a{k="1"}"#, "1"), (r#"a{k="2"}"#, "2"), (r#"b{k="2"}"#, "20"), (r#"b{k="3"}"#, "30")],
        MIN,
    );
    assert_eq!(instant(&store, "a and b", 0), [r#"a{k="2"} => 2"#]);
    assert_eq!(instant(&store, "a unless b", 0), [r#"a{k="1"} => 1"#]);
    assert_eq!(instant(&store, "a or b", 0), [r#"a{k="1"} => 1"#, r#"a{k="2"} => 2"#, r#"b{k="3"} => 30"#]);
    assert_eq!(instant(&store, "a and on () b", 0), [r#"a{k="1"} => 1"#, r#"a{k="2"} => 2"#]);
    assert_eq!(instant(&store, "a unless ignoring (k) b", 0), Vec::<String>::new());
}

#[test]
fn nan_and_infinities() {
    let store = load(&[(r#"v{k="nan"}"#, "NaN"), (r#"v{k="inf"}"#, "Inf"), (r#"v{k="one"}"#, "1")], MIN);
    assert_eq!(instant(&store, "max(v)", 0), ["{} => inf"]);
    assert_eq!(instant(&store, "min(v)", 0), ["{} => 1"]);
    assert_eq!(instant(&store, "sum(v)", 0), ["{} => NaN"]);
    assert_eq!(instant(&store, "v == v", 0), [r#"v{k="inf"} => inf"#, r#"v{k="one"} => 1"#]);
    assert_eq!(instant(&store, r#"avg(v{k!="nan"})"#, 0), ["{} => inf"]);
    // A sum that overflows still averages correctly.
    assert_eq!(
        instant(
            &store,
            r#"avg(v{k="one"} * 1e308 or label_replace(v{k="one"} * 1.5e308, "k", "two", "", "")) / 1e300"#,
            0
        ),
        ["{} => 125000000"]
    );
    assert_eq!(instant(&store, "topk(1, v)", 0), [r#"v{k="inf"} => inf"#]);
    assert_eq!(instant_err(&store, "topk(scalar(v{k=\"nan\"}), v)", 0).to_string(), "Parameter value is NaN");
    assert!(instant_err(&store, "topk(1e300, v)", 0).to_string().ends_with("overflows int64"));
    assert_eq!(instant(&store, "topk(0, v)", 0), Vec::<String>::new());
    assert_eq!(instant(&store, "bottomk(1, v)", 0), [r#"v{k="one"} => 1"#]);
    assert_eq!(
        instant(&store, r#"count_values("x", v)"#, 0),
        [r#"{x="+Inf"} => 1"#, r#"{x="1"} => 1"#, r#"{x="NaN"} => 1"#]
    );
}

#[test]
fn subqueries_align_to_the_step() {
    let store = load(&[("c", "0+1x30")], MIN);
    // Inner points at multiples of 2 m in (5m30s, 10m30s]: 6, 8, 10 m.
    assert_eq!(instant(&store, "count_over_time(c[5m:2m])", 10 * MIN + 30_000), ["{} => 3"]);
    assert_eq!(instant(&store, "sum_over_time(c[5m:2m])", 10 * MIN + 30_000), ["{} => 24"]);
    assert_eq!(
        instant(&store, "max_over_time(rate(c[2m])[5m:1m])", 10 * MIN),
        [format!("{{}} => {}", 1.0 / 60.0)]
    );
    assert_eq!(instant(&store, "c[3m:1m] offset 2m", 10 * MIN), ["c => [6@360000 7@420000 8@480000]"]);
    assert_eq!(instant(&store, "sum_over_time(c[2m:1m] @ 300)", 10 * MIN), ["{} => 9"]);
    // The default step is the evaluation interval (1 m).
    assert_eq!(instant(&store, "count_over_time(c[5m:])", 10 * MIN), ["{} => 5"]);
}

#[test]
fn range_queries() {
    let store = counters();
    let e = engine();
    let Value::Matrix(m) =
        e.range_query(&store, "sum by (job) (http_requests)", 0, 2 * MIN, MIN).expect("range query")
    else {
        panic!("matrix expected");
    };
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].labels.to_string(), r#"{job="api"}"#);
    assert_eq!(m[0].samples, vec![Sample::new(0, 0.0), Sample::new(MIN, 30.0), Sample::new(2 * MIN, 60.0)]);
    let Value::Matrix(m) = e.range_query(&store, "time()", 0, 2 * MIN, MIN).expect("scalar") else {
        panic!("matrix expected");
    };
    assert_eq!(m[0].samples, vec![Sample::new(0, 0.0), Sample::new(MIN, 60.0), Sample::new(2 * MIN, 120.0)]);
    // `@ start()` pins every step to the query start.
    let Value::Matrix(m) =
        e.range_query(&store, r#"http_requests{job="db"} @ start()"#, MIN, 3 * MIN, MIN).expect("at start")
    else {
        panic!("matrix expected");
    };
    assert_eq!(m[0].samples.iter().map(|s| s.v).collect::<Vec<_>>(), [30.0, 30.0, 30.0]);
    // A range query gives the same points as instant queries at each step.
    let Value::Matrix(m) =
        e.range_query(&store, "rate(http_requests[3m])", 0, 20 * MIN, 90_000).expect("rate range")
    else {
        panic!("matrix expected");
    };
    for s in &m {
        for p in &s.samples {
            let Value::Vector(v) = e.instant_query(&store, "rate(http_requests[3m])", p.t).expect("instant")
            else {
                panic!("vector expected");
            };
            let same = v.iter().find(|x| x.labels == s.labels).expect("series at step");
            assert_eq!(same.v, p.v);
        }
    }
}

#[test]
fn range_query_errors() {
    let store = counters();
    let e = engine();
    assert!(e.range_query(&store, "up", 0, 11_000 * 1000, 1000).is_ok());
    let err = e.range_query(&store, "up", 0, 11_001 * 1000, 1000).expect_err("too many points");
    assert_eq!(err.error_type(), "bad_data");
    assert!(err.to_string().contains("exceeded maximum resolution of 11,000 points per timeseries"));
    assert_eq!(e.range_query(&store, "up", 0, 1000, 0).expect_err("step").error_type(), "bad_data");
    assert_eq!(e.range_query(&store, "up", 10, 0, 1).expect_err("order").error_type(), "bad_data");
    let err = e.range_query(&store, "up[5m]", 0, 1000, 100).expect_err("matrix");
    assert!(err.to_string().contains("invalid expression type \"range vector\""), "{err}");
}

#[test]
fn parse_errors_are_bad_data() {
    let store = counters();
    let err = instant_err(&store, "sum(", 0);
    assert_eq!(err.error_type(), "bad_data");
    let err = instant_err(&store, "foo{a=\"b\"} $ 2", 0);
    let QueryError::BadData { position, message } = err else { panic!("bad data expected") };
    assert_eq!(position, Some(11));
    assert!(message.starts_with("1:12: parse error: "), "{message}");
    assert!(Engine::parse("rate(x[5m])").is_ok());
    // A query cut short points at its end, as Prometheus's "unexpected end of input" does.
    let Err(QueryError::BadData { position, message }) = Engine::parse("x +") else {
        panic!("error expected")
    };
    assert_eq!((position, message.as_str()), (Some(3), "1:4: parse error: unexpected end of input"));
    let err = instant_err(&store, "rate(x)", 0);
    assert_eq!(err.error_type(), "bad_data");
    // Two operands in a row: the grammar says only "invalid promql query"; a second lexing pass finds
    // the token, as Prometheus reports it.
    for (query, pos, message) in [
        ("foo bar", 4, r#"1:5: parse error: unexpected identifier "bar""#),
        ("sum(x) 2", 7, r#"1:8: parse error: unexpected number "2""#),
        (r#"x{a="b" c="d"}"#, 8, r#"1:9: parse error: unexpected identifier "c""#),
        ("rate(x[5m] 1)", 11, r#"1:12: parse error: unexpected number "1""#),
        ("x +\n  y z", 8, r#"2:5: parse error: unexpected identifier "z""#),
    ] {
        let Err(QueryError::BadData { position, message: got }) = Engine::parse(query) else {
            panic!("{query}: error expected")
        };
        assert_eq!((position, got.as_str()), (Some(pos), message), "{query}");
    }
    // Messages that name the offending text point at it, quoted or not.
    for (query, pos, message) in [
        ("foo[5x]", 4, "1:5: parse error: bad number or duration syntax: 5x"),
        (r#"foo{a=~"("}"#, 8, "1:9: parse error: illegal regex for ("),
        (")", 0, "1:1: parse error: unexpected right parenthesis ')'"),
        (r#"sum(x{a=~"("})"#, 10, "1:11: parse error: illegal regex for ("),
        // Type errors point at what has the wrong type.
        ("topk(x, y)", 5, "1:6: parse error: expected type scalar in aggregation expression, got vector"),
        (
            "topk by (a) (x, y)",
            13,
            "1:14: parse error: expected type scalar in aggregation expression, got vector",
        ),
        (
            r#""str" + 1"#,
            0,
            "1:1: parse error: binary expression must contain only scalar and instant vector types",
        ),
        (
            r#"x{a="b"} + "str""#,
            11,
            "1:12: parse error: binary expression must contain only scalar and instant vector types",
        ),
        (
            "x[5m] * 2",
            6,
            "1:7: parse error: binary expression must contain only scalar and instant vector types",
        ),
    ] {
        let Err(QueryError::BadData { position, message: got }) = Engine::parse(query) else {
            panic!("{query}: error expected")
        };
        assert_eq!((position, got.as_str()), (Some(pos), message), "{query}");
    }
    // Valid neighbours are not flagged: these fail for other reasons, or parse.
    assert!(Engine::parse(r#"sum by (job) (rate(x{a="b"}[5m] offset 5m))"#).is_ok());
}

#[test]
fn limits_stop_queries() {
    let store = counters();
    let tight = Engine::new(EngineOptions { max_samples: 5, ..EngineOptions::default() });
    let err = tight.instant_query(&store, "http_requests[10m]", 10 * MIN).expect_err("too many samples");
    assert!(matches!(err, QueryError::TooManySamples { .. }), "{err}");
    // A subquery whose grid alone exceeds the limit fails before anything is allocated for it.
    let err =
        tight.instant_query(&store, "max_over_time(vector(1)[1h:1s])", 10 * MIN).expect_err("subquery grid");
    assert!(matches!(err, QueryError::TooManySamples { stage: "subquery evaluation", .. }), "{err}");
    let timed_out = Engine::new(EngineOptions { timeout: Duration::ZERO, ..EngineOptions::default() });
    let err = timed_out.instant_query(&store, "http_requests", 0).expect_err("timeout");
    assert_eq!(err.error_type(), "timeout");
}

#[test]
fn duplicate_label_sets_after_dropping_the_name() {
    let store = load(&[(r#"x{k="1"}"#, "1"), (r#"y{k="1"}"#, "2")], MIN);
    let e = instant_err(&store, r#"rate({k="1"}[5m]) or abs({k="1"})"#, 0);
    assert_eq!(e.to_string(), "vector cannot contain metrics with the same labelset");
    let e = instant_err(&store, r#"{k="1"} * 2"#, 0);
    assert_eq!(e.to_string(), "vector cannot contain metrics with the same labelset");
    // Keeping the name keeps them apart.
    assert_eq!(
        instant(&store, r#"last_over_time({k="1"}[5m])"#, 0),
        [r#"x{k="1"} => 1"#, r#"y{k="1"} => 2"#]
    );
}

#[test]
fn instant_query_expr_evaluates_parsed_expressions() {
    let store = counters();
    let expr = Engine::parse("sum(http_requests)").expect("parse");
    let got = engine().instant_query_expr(&store, &expr, 10 * MIN).expect("eval");
    let Value::Vector(v) = got else { panic!("vector expected") };
    assert_eq!(v[0].v, 600.0);
}

/// The cross-check data: 1 m samples from t = 0, read at `XmYYs` times so that no sample lies on a
/// window boundary (Prometheus 2.42's boundaries are closed, 3.x's are left-open; off the boundaries
/// they agree).
const CROSS_INPUT: &[(&str, &str)] = &[
    (r#"http_requests{job="api", instance="0"}"#, "0+10x30"),
    (r#"http_requests{job="api", instance="1"}"#, "0+20x30"),
    (r#"http_requests{job="db", instance="0"}"#, "0+30x30"),
    (
        r#"resetting{job="api"}"#,
        "0 10 20 5 15 25 2 12 30 4 8 16 32 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18",
    ),
    (r#"gauge{job="api"}"#, "5 3 8 1 9 2 7 4 6 0 5 3 8 1 9 2 7 4 6 0 5 3 8 1 9 2 7 4 6 0 1"),
    (r#"gauge{job="db"}"#, "1+0.5x30"),
    (r#"req_bucket{job="api", le="0.1"}"#, "0+1x30"),
    (r#"req_bucket{job="api", le="0.5"}"#, "0+3x30"),
    (r#"req_bucket{job="api", le="1"}"#, "0+4x30"),
    (r#"req_bucket{job="api", le="+Inf"}"#, "0+5x30"),
    (r#"owner{job="api", team="web"}"#, "1x30"),
    (r#"owner{job="db", team="storage"}"#, "1x30"),
    (r#"flappy{job="api"}"#, "1 2 3 stale _ _ 4 5 stale 6 7 8 9 10 11 12"),
];

/// Queries cross-checked against promtool, each at 10m30s, 15m30s and 20m30s. Transcendental functions
/// are rounded to 9 decimals: Go's `math` and Rust's libm may differ in the last bit.
const CROSS_QUERIES: &[&str] = &[
    "http_requests",
    "http_requests offset 3m",
    "http_requests @ 300",
    r#"http_requests{job=~"a.*", instance!="1"}"#,
    "flappy",
    "rate(http_requests[5m])",
    "rate(http_requests[2m])",
    "increase(resetting[5m])",
    "rate(resetting[7m])",
    "delta(gauge[5m])",
    "irate(resetting[5m])",
    "idelta(gauge[5m])",
    "deriv(gauge[5m])",
    "predict_linear(gauge[5m], 120)",
    "predict_linear(gauge[5m] offset 2m, 120)",
    "predict_linear(gauge[5m:1m] offset 3m, 60)",
    "changes(gauge[10m])",
    "resets(resetting[10m])",
    "avg_over_time(gauge[5m])",
    "min_over_time(gauge[5m])",
    "max_over_time(gauge[5m])",
    "sum_over_time(gauge[5m])",
    "count_over_time(flappy[10m])",
    "last_over_time(flappy[10m])",
    "present_over_time(gauge[5m])",
    "absent_over_time(nothing[5m])",
    "stddev_over_time(gauge[5m])",
    "stdvar_over_time(gauge[5m])",
    "quantile_over_time(0.3, gauge[5m])",
    "abs(gauge - 5)",
    "ceil(gauge / 4)",
    "floor(gauge / 4)",
    "round(gauge / 4)",
    "round(gauge, 4)",
    "clamp(gauge, 2, 6)",
    "clamp_min(gauge, 4)",
    "clamp_max(gauge, 4)",
    "exp(gauge{job=\"api\"} / 10)",
    "round(ln(gauge + 1) * 1e9)",
    "round(log2(gauge + 1) * 1e9)",
    "round(log10(gauge + 1) * 1e9)",
    "sqrt(gauge)",
    "sgn(gauge - 4)",
    "timestamp(gauge)",
    "time()",
    "vector(time())",
    "scalar(gauge{job=\"db\"})",
    "absent(nothing{job=\"x\"})",
    r#"label_replace(gauge, "j", "$1-x", "job", "(a|d).*")"#,
    r#"label_join(gauge, "both", "/", "job", "__name__")"#,
    "sort_desc(gauge)",
    "histogram_quantile(0.5, req_bucket)",
    "histogram_quantile(0.9, rate(req_bucket[5m]))",
    "histogram_quantile(0.99, sum by (le) (req_bucket))",
    "hour(vector(7200))",
    "day_of_week(vector(1709210096))",
    "days_in_month(vector(1709210096))",
    "year(vector(1709210096))",
    "round(sin(gauge) * 1e9)",
    "round(cos(gauge) * 1e9)",
    "round(atan(gauge) * 1e9)",
    "sum(http_requests)",
    "sum by (job) (rate(http_requests[5m]))",
    "sum without (instance) (http_requests)",
    "avg by (job) (gauge)",
    "min(gauge)",
    "max by (job) (http_requests)",
    "count(http_requests)",
    "group by (job) (http_requests)",
    "stddev(http_requests)",
    "stdvar(http_requests)",
    "topk(2, http_requests)",
    "bottomk by (job) (1, http_requests)",
    "quantile(0.3, http_requests)",
    r#"count_values("value", gauge)"#,
    "http_requests + http_requests",
    "http_requests / on (job, instance) gauge",
    "http_requests * on (job) group_left (team) owner",
    "owner * on (job) group_right (team) http_requests",
    "http_requests > 100",
    "http_requests > bool 100",
    "100 < http_requests",
    "http_requests == ignoring (instance) group_left http_requests{instance=\"0\"}",
    "http_requests and gauge",
    "http_requests and on (job) gauge",
    "http_requests or gauge",
    "http_requests unless on (job) owner{team=\"web\"}",
    "2 ^ 3 - 1",
    "-gauge",
    "gauge % 3",
    "max_over_time(rate(http_requests[2m])[5m:1m])",
    "sum_over_time(gauge[5m:2m])",
    "topk by (job) (1, gauge)",
    "sum_over_time(gauge[5m] @ 630)",
    "rate(http_requests[5m] offset 2m)",
    "changes(flappy[10m])",
    "resets(flappy[10m])",
    "deriv(http_requests[5m])",
    "idelta(flappy[5m])",
    "http_requests % 7 > bool 3",
    "count by (job) (gauge > 4)",
    "-http_requests > -200",
    "http_requests != bool 100",
    "sum by (job) (http_requests) / on (job) group_left (team) sum by (job, team) (owner)",
    "owner * on (job) group_left http_requests{instance=\"0\"}",
    r#"label_replace(gauge{job="api"}, "job", "", "job", ".*")"#,
    "quantile(0, gauge)",
    "quantile(1, http_requests)",
    "bottomk(1, gauge) or topk(1, gauge)",
    "count_over_time(http_requests[5m:40s])",
    "max_over_time(deriv(gauge[150s])[6m:2m])",
    "histogram_quantile(0.75, sum by (le, job) (rate(req_bucket[5m])))",
    // 2.42 averages incrementally, 3.x divides the sum: they may differ in the last bit.
    "round(avg_over_time(gauge[6m:2m] offset 1m) * 1e9)",
];

/// Writes `f` as a YAML double-quoted string.
fn yaml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[test]
fn cross_check_against_promtool() {
    let Some(promtool) = sightline_testkit::require_peer("promtool", "prometheus") else {
        return;
    };
    let store = load(CROSS_INPUT, MIN);
    let mut yaml = String::from(
        "rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
    );
    for (series, values) in CROSS_INPUT {
        yaml.push_str(&format!(
            "      - series: {}\n        values: {}\n",
            yaml_str(series),
            yaml_str(values)
        ));
    }
    yaml.push_str("    promql_expr_test:\n");
    let mut checked = 0;
    for query in CROSS_QUERIES {
        for (t, label) in
            [(10 * MIN + 30_000, "10m30s"), (15 * MIN + 30_000, "15m30s"), (20 * MIN + 30_000, "20m30s")]
        {
            let samples: Vec<(String, f64)> = match engine().instant_query(&store, query, t) {
                Ok(Value::Vector(v)) => v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect(),
                Ok(Value::Scalar { v, .. }) => vec![("{}".to_owned(), v)],
                Ok(other) => panic!("{query}: unexpected {other:?}"),
                Err(e) => panic!("{query}: {e}"),
            };
            assert!(samples.iter().all(|(_, v)| v.is_finite()), "{query} at {label}: {samples:?}");
            yaml.push_str(&format!("      - expr: {}\n        eval_time: {label}\n", yaml_str(query)));
            if samples.is_empty() {
                yaml.push_str("        exp_samples: []\n");
            } else {
                yaml.push_str("        exp_samples:\n");
                for (labels, v) in samples {
                    yaml.push_str(&format!(
                        "          - labels: {}\n            value: {v:?}\n",
                        yaml_str(&labels)
                    ));
                }
            }
            checked += 1;
        }
    }
    let dir = sightline_testkit::TempDir::new("promql-cross");
    let file = dir.path().join("cross.yml");
    std::fs::write(&file, &yaml).expect("write test file");
    let out = std::process::Command::new(promtool)
        .arg("test")
        .arg("rules")
        .arg(&file)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool disagrees with the engine ({checked} cases):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A range query must give, at every step, exactly what an instant query at that time gives: this checks
/// the whole-grid evaluation (sliding windows, per-step matching, subquery grids) against the one-step
/// path for every cross-check query, on a step that does not divide the sample interval.
#[test]
fn range_queries_agree_with_instant_queries() {
    let store = load(CROSS_INPUT, MIN);
    let e = engine();
    let (start, end, step) = (4 * MIN + 10_000, 29 * MIN, 70_000);
    for query in CROSS_QUERIES {
        let Value::Matrix(matrix) =
            e.range_query(&store, query, start, end, step).unwrap_or_else(|err| panic!("{query}: {err}"))
        else {
            panic!("{query}: matrix expected");
        };
        let mut t = start;
        while t <= end {
            let mut want: Vec<(String, u64)> = match e.instant_query(&store, query, t).expect("instant") {
                Value::Vector(v) => v.into_iter().map(|s| (s.labels.to_string(), s.v.to_bits())).collect(),
                Value::Scalar { v, .. } => vec![("{}".to_owned(), v.to_bits())],
                other => panic!("{query}: unexpected {other:?}"),
            };
            let mut got: Vec<(String, u64)> = matrix
                .iter()
                .filter_map(|s| {
                    s.samples.iter().find(|p| p.t == t).map(|p| (s.labels.to_string(), p.v.to_bits()))
                })
                .collect();
            want.sort();
            got.sort();
            assert_eq!(got, want, "{query} at {t}");
            t += step;
        }
    }
}

#[test]
fn staleness_in_range_selectors_and_negative_offsets() {
    let store = load(&[("c", "0 10 20 stale 30 40")], MIN);
    // The marker is dropped from the window: the five real samples remain.
    assert_eq!(instant(&store, "count_over_time(c[10m])", 5 * MIN + 30_000), ["{} => 5"]);
    assert_eq!(instant(&store, "c[10m]", 5 * MIN), ["c => [0@0 10@60000 20@120000 30@240000 40@300000]"]);
    assert_eq!(instant(&store, "c offset -2m", 2 * MIN + 30_000), ["c => 30"]);
    // Right after the marker the series is gone for instant selectors.
    assert_eq!(instant(&store, "c", 3 * MIN + 30_000), Vec::<String>::new());
}

#[test]
fn more_matching_and_set_cases() {
    let store = load(
        &[
            (r#"a{job="x", i="1"}"#, "1"),
            (r#"a{job="x", i="2"}"#, "2"),
            (r#"b{job="x"}"#, "10"),
            (r#"b{job="y"}"#, "20"),
        ],
        MIN,
    );
    // group_right puts the "one" side on the left; duplicates there are reported as such.
    let e = instant_err(&store, "a + on (job) group_right b", 0);
    assert!(e.to_string().contains("on the left hand-side of the operation"), "{e}");
    assert_eq!(instant(&store, "b or on (job) a", 0), [r#"b{job="x"} => 10"#, r#"b{job="y"} => 20"#]);
    assert_eq!(
        instant(&store, "a or on (job) b", 0),
        [r#"a{i="1", job="x"} => 1"#, r#"a{i="2", job="x"} => 2"#, r#"b{job="y"} => 20"#]
    );
    assert_eq!(instant(&store, "b unless on (job) a", 0), [r#"b{job="y"} => 20"#]);
    assert_eq!(
        instant(&store, "a - on (job) group_left b", 0),
        [r#"{i="1", job="x"} => -9"#, r#"{i="2", job="x"} => -8"#]
    );
    // Comparisons keep the left side's name; `bool` drops it.
    assert_eq!(instant(&store, "a >= on (job) group_left b / 5", 0), [r#"a{i="2", job="x"} => 2"#]);
    assert_eq!(instant(&store, r#""text""#, 0), ["string => text"]);
}

#[test]
fn unsupported_and_invalid_calls_are_errors() {
    let store = counters();
    let e = instant_err(&store, "double_exponential_smoothing(gauge[5m], 0.5, 0.5)", 0);
    assert_eq!(e.error_type(), "bad_data");
    assert!(e.to_string().contains("experimental"), "{e}");
    let e = instant_err(&store, r#"count_values("", gauge)"#, 0);
    assert_eq!(e.to_string(), "invalid label name \"\"");
    let e = instant_err(&store, r#"label_join(gauge, "", "-", "job")"#, 0);
    assert!(e.to_string().starts_with("invalid destination label name"), "{e}");
}

#[test]
fn absent_in_range_queries_fills_gaps() {
    let store = load(&[(r#"x{job="a"}"#, "1 _ _ _ _ _ _ _ _ _ 1")], MIN);
    let Value::Matrix(m) =
        engine().range_query(&store, r#"absent(x{job="a"})"#, 0, 10 * MIN, MIN).expect("range")
    else {
        panic!("matrix expected");
    };
    // The sample at 0 covers 0..4 m (the lookback is left-open, so 5 m is already absent) and the one at
    // 10 m covers 10 m.
    let ts: Vec<i64> = m[0].samples.iter().map(|s| s.t / MIN).collect();
    assert_eq!(ts, [5, 6, 7, 8, 9]);
    assert_eq!(m[0].labels.to_string(), r#"{job="a"}"#);
}

#[test]
fn nested_subqueries() {
    let store = load(&[("c", "0+1x60")], MIN);
    // The inner subquery is evaluated on the outer subquery's grid, each at multiples of its own step.
    assert_eq!(instant(&store, "max_over_time(sum_over_time(c[3m:1m])[10m:5m])", 30 * MIN), ["{} => 87"]);
}

#[test]
fn extreme_timestamps_do_not_panic() {
    let store = counters();
    for t in [i64::MIN, i64::MIN + 1, -1, i64::MAX - 1, i64::MAX] {
        for q in [
            "rate(http_requests[5m])",
            "max_over_time(http_requests[5m:1m] offset -1m)",
            "http_requests @ end()",
            "time()",
        ] {
            // Any result or error is fine; a panic is not.
            let _ = engine().instant_query(&store, q, t);
        }
    }
    let _ = engine().range_query(&store, "http_requests", i64::MIN, i64::MAX, i64::MAX);
    let _ = engine().range_query(&store, "http_requests", i64::MAX - 10, i64::MAX, 1);
}

/// A querier that records the hints of every selection.
struct Recording {
    inner: MemStorage,
    hints: std::sync::Mutex<Vec<crate::SelectHints>>,
}

impl crate::Querier for Recording {
    fn select(
        &self,
        matchers: &[promql_parser::label::Matcher],
        hints: &crate::SelectHints,
    ) -> Result<Vec<crate::Series>, crate::StorageError> {
        self.hints.lock().expect("lock").push(hints.clone());
        self.inner.select(matchers, hints)
    }
    fn series(
        &self,
        matchers: &[promql_parser::label::Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<Labels>, crate::StorageError> {
        self.inner.series(matchers, start, end)
    }
    fn label_names(
        &self,
        matchers: &[promql_parser::label::Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, crate::StorageError> {
        self.inner.label_names(matchers, start, end)
    }
    fn label_values(
        &self,
        name: &str,
        matchers: &[promql_parser::label::Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, crate::StorageError> {
        self.inner.label_values(name, matchers, start, end)
    }
}

#[test]
fn selections_carry_hints() {
    let rec = Recording { inner: counters(), hints: std::sync::Mutex::new(Vec::new()) };
    let hints = |q: &str, range: Option<(i64, i64, i64)>| -> Vec<(i64, i64, i64, Option<String>, i64)> {
        rec.hints.lock().expect("lock").clear();
        match range {
            Some((s, e, step)) => engine().range_query(&rec, q, s, e, step).map(|_| ()),
            None => engine().instant_query(&rec, q, 10 * MIN).map(|_| ()),
        }
        .expect("query");
        rec.hints
            .lock()
            .expect("lock")
            .iter()
            .map(|h| (h.start, h.end, h.step, h.func.clone(), h.range))
            .collect()
    };
    let t = 10 * MIN;
    assert_eq!(
        hints("sum(rate(http_requests[5m]))", None),
        [(t - 5 * MIN + 1, t, 0, Some("rate".into()), 5 * MIN)]
    );
    assert_eq!(hints("abs(gauge)", None), [(t - 5 * MIN + 1, t, 0, Some("abs".into()), 0)]);
    assert_eq!(hints("max by (job) (gauge)", None), [(t - 5 * MIN + 1, t, 0, Some("max".into()), 0)]);
    assert_eq!(hints("abs(gauge + gauge)", None).iter().filter(|h| h.3.is_none()).count(), 2);
    // One selection covers the whole range query.
    assert_eq!(
        hints("max_over_time(gauge[10m])", Some((MIN, 5 * MIN, MIN))),
        [(MIN - 10 * MIN + 1, 5 * MIN, MIN, Some("max_over_time".into()), 10 * MIN)]
    );
}

#[test]
fn predict_linear_predicts_from_the_step_time() {
    let store = load(&[("c", "0+1x60")], MIN);
    // With an offset the window is 10 m back, but the prediction is for the step's own time.
    assert_eq!(instant(&store, "predict_linear(c[5m] offset 10m, 0)", 30 * MIN), ["{} => 30"]);
    // With `@` the call is evaluated once, at the query start, for every step.
    let Value::Matrix(m) = engine()
        .range_query(&store, "predict_linear(c[5m] @ 300, 0)", 10 * MIN, 12 * MIN, MIN)
        .expect("range")
    else {
        panic!("matrix expected");
    };
    assert_eq!(m[0].samples.iter().map(|s| s.v).collect::<Vec<_>>(), [10.0, 10.0, 10.0]);
}

#[test]
fn aggregations_that_ignore_the_metric_name_see_the_same_groups() {
    // An aggregation that ignores its input's metric name lets a range function keep it (no label set is
    // copied); every result must be what removing the name gives.
    let store = counters();
    let t = 10 * MIN;
    assert_eq!(
        instant(&store, "sum by (job) (rate(http_requests[5m]))", t),
        instant(&store, "sum by (job) (label_replace(rate(http_requests[5m]), 'x', '', 'job', '.*'))", t)
    );
    assert_eq!(
        instant(&store, "sum by (job) ((rate(http_requests[5m])))", t),
        instant(&store, "sum by (job) (rate(http_requests[5m]))", t)
    );
    assert_eq!(
        instant(&store, "count without (instance) (-rate(http_requests[5m]))", t),
        vec![r#"{job="api"} => 2"#, r#"{job="db"} => 1"#]
    );
    // Grouping by the name sees it removed, and top/bottomk return input series without it.
    assert_eq!(instant(&store, "count by (__name__) (rate(http_requests[5m]))", t), vec!["{} => 3"]);
    assert_eq!(
        instant(&store, "topk(1, rate(http_requests[5m]))", t),
        vec![r#"{instance="0", job="db"} => 0.5"#]
    );
    // Names that differ still collide once removed, as in Prometheus.
    let store = load(&[(r#"a{x="1"}"#, "0+1x20"), (r#"b{x="1"}"#, "0+2x20")], MIN);
    let err = instant_err(&store, r#"sum(rate({x="1"}[5m]))"#, t);
    assert!(err.to_string().contains("same labelset"), "{err}");
}
