//! The small notations of the test format: series (`metric{a="b"}`), expanding values (`1+2x3 _ stale`),
//! Prometheus durations (`1h30m`), and the way promtool prints floats, strings and label sets.
//!
//! The value notation is hand-written because no crate parses it: it is the `load` syntax of Prometheus's
//! PromQL test scripts, defined by a yacc grammar inside Prometheus. This follows that grammar
//! term by term (see [`expand_values`]).

use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;

use crate::labels::{Label, Labels, METRIC_NAME};
use crate::sample::stale_nan;

/// One position of an expanded value sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum SeqValue {
    /// `_`: no sample at this step.
    Omitted,
    /// A value (the staleness marker for `stale`).
    Value(f64),
}

/// Parses a series in the usual notation, `name{label="value", ...}`, `{label="value"}` or `name`, into
/// its label set. Only `=` matchers are allowed, since each names one label of one series. The empty
/// string and `{}` are the empty label set, as in promtool (a scalar result compares equal to `{}`).
pub(crate) fn parse_series(text: &str) -> Result<Labels, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed == "{}" {
        return Ok(Labels::empty());
    }
    let expr =
        promql_parser::parser::parse(trimmed).map_err(|e| format!("cannot parse series {text:?}: {e}"))?;
    let Expr::VectorSelector(selector) = expr else {
        return Err(format!("{text:?} is not a series: write name{{label=\"value\", ...}}"));
    };
    if selector.offset.is_some() || selector.at.is_some() || !selector.matchers.or_matchers.is_empty() {
        return Err(format!(
            "{text:?} is not a series: offset, @ and `or` belong in queries, not in series names"
        ));
    }
    let mut labels = Vec::with_capacity(selector.matchers.matchers.len() + 1);
    if let Some(name) = selector.name {
        labels.push(Label::new(METRIC_NAME, name));
    }
    for matcher in selector.matchers.matchers {
        if matcher.op != MatchOp::Equal {
            return Err(format!(
                "{text:?} is not a series: label {} uses {}, but a series names its labels with = only",
                matcher.name, matcher.op
            ));
        }
        if labels.iter().any(|l: &Label| l.name == matcher.name) {
            return Err(format!("{text:?} is not a series: label {} is given twice", matcher.name));
        }
        labels.push(Label::new(matcher.name, matcher.value));
    }
    Ok(Labels::new(labels))
}

/// Expands a value sequence: space-separated terms, each one of
///
/// - `_` (one missing sample) or `_xN` (N missing samples),
/// - a number (`1`, `-2.5`, `1e3`, `Inf`, `-Inf`, `NaN`) or `stale` (the staleness marker),
/// - `axN`: `a` N+1 times,
/// - `a+bxN` / `a-bxN`: `a`, then N further values each `b` more (less) than the previous one.
///
/// Like Prometheus, the increments are accumulated (`a`, `a+b`, `(a+b)+b`, ...) rather than computed
/// as `a + i*b`, so that fractional steps give the same floats as promtool.
pub(crate) fn expand_values(text: &str) -> Result<Vec<SeqValue>, String> {
    let mut out = Vec::new();
    for term in text.split_whitespace() {
        expand_term(term, &mut out).map_err(|e| format!("bad value {term:?} in {text:?}: {e}"))?;
    }
    Ok(out)
}

/// The most samples one term may expand to; a typo like `1x1000000000` must not exhaust memory.
const MAX_EXPANSION: u64 = 10_000_000;

fn expand_term(term: &str, out: &mut Vec<SeqValue>) -> Result<(), String> {
    if term == "_" {
        out.push(SeqValue::Omitted);
        return Ok(());
    }
    if let Some(count) = term.strip_prefix("_x") {
        let n = parse_count(count)?;
        out.extend(std::iter::repeat_n(SeqValue::Omitted, usize::try_from(n).map_err(|e| e.to_string())?));
        return Ok(());
    }
    if term == "stale" {
        out.push(SeqValue::Value(stale_nan()));
        return Ok(());
    }
    // Split off the repetition `xN`. Numbers themselves never contain an `x` (hexadecimal is not
    // accepted here), so the last `x` is the repetition marker.
    let (value_part, count) = match term.rfind('x') {
        Some(i) => (&term[..i], Some(parse_count(&term[i + 1..])?)),
        None => (term, None),
    };
    let (start, step) = split_start_step(value_part)?;
    match (count, step) {
        (None, None) => out.push(SeqValue::Value(start)),
        (None, Some(_)) => return Err("an increment needs a count: write a+bxN".into()),
        (Some(n), step) => {
            let step = step.unwrap_or(0.0);
            let mut v = start;
            for _ in 0..=n {
                out.push(SeqValue::Value(v));
                v += step;
            }
        }
    }
    Ok(())
}

/// Splits `a`, `a+b` or `a-b` (each a possibly signed number) into the start and the signed step.
fn split_start_step(text: &str) -> Result<(f64, Option<f64>), String> {
    if text.is_empty() {
        return Err("missing number".into());
    }
    // The first character may be the start's own sign; an operator is a later `+`/`-` that does not
    // follow an exponent marker (`1e-3`).
    let bytes = text.as_bytes();
    let op = (1..bytes.len())
        .find(|&i| (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
    match op {
        None => Ok((parse_number(text)?, None)),
        Some(i) => {
            let start = parse_number(&text[..i])?;
            let magnitude = parse_number(&text[i + 1..])?;
            if text[i + 1..].starts_with(['+', '-']) {
                return Err("the increment takes no second sign: write a+bxN or a-bxN".into());
            }
            let step = if bytes[i] == b'-' { -magnitude } else { magnitude };
            Ok((start, Some(step)))
        }
    }
}

/// A number as PromQL writes one: decimal with optional fraction and exponent, `Inf` or `NaN` (any
/// case), with an optional sign.
fn parse_number(text: &str) -> Result<f64, String> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let value = if body.eq_ignore_ascii_case("inf") {
        f64::INFINITY
    } else if body.eq_ignore_ascii_case("nan") {
        f64::NAN
    } else if !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && body.as_bytes()[0] != b'e'
        && body.as_bytes()[0] != b'E'
    {
        body.parse::<f64>().map_err(|_| format!("{text:?} is not a number"))?
    } else {
        return Err(format!("{text:?} is not a number, `_` or `stale`"));
    };
    Ok(if negative { -value } else { value })
}

fn parse_count(text: &str) -> Result<u64, String> {
    let n: u64 = text.parse().map_err(|_| format!("{text:?} is not a repetition count"))?;
    if n > MAX_EXPANSION {
        return Err(format!("repetition count {n} is more than {MAX_EXPANSION}"));
    }
    Ok(n)
}

/// Parses a Prometheus duration (`0`, `90s`, `1h30m`, `1d`, `500ms`; units y w d h m s ms, largest
/// first) into milliseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = |reason: &str| format!("not a valid duration string: {text:?} ({reason})");
    let duration = sightline_core::duration::parse_prometheus(text).map_err(|e| bad(&e.reason))?;
    i64::try_from(duration.as_millis()).map_err(|_| bad("duration is too large"))
}

/// Prints milliseconds as Prometheus prints a duration (`1h30m`, `0s`).
pub fn format_duration(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = std::time::Duration::from_millis(ms.unsigned_abs());
    format!("{sign}{}", promql_parser::util::display_duration(&abs))
}

/// Prints a float as Go's `strconv.FormatFloat(v, 'E', -1, 64)`, which promtool uses in its messages:
/// the shortest digits that read back to the same float, with a signed two-digit exponent (`1.5E+00`).
pub(crate) fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    // Rust's `{:E}` gives the same shortest round-trip digits, with an unpadded exponent (`1.5E0`).
    let s = format!("{v:E}");
    match s.split_once('E') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}E{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// Quotes a string as Go's `strconv.Quote` (used by promtool for expressions and label values).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_control() => {
                let n = c as u32;
                if n < 0x80 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n < 0x1_0000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Prints a label set as Prometheus's `labels.Labels.String()`: every label inside the braces, the
/// metric name included (`{__name__="up", job="node"}`). This differs from [`Labels`]'s `Display`
/// on purpose: promtool's messages use this form.
pub(crate) fn go_labels(labels: &Labels) -> String {
    let body: Vec<String> = labels.iter().map(|l| format!("{}={}", l.name, go_quote(&l.value))).collect();
    format!("{{{}}}", body.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::is_stale;

    fn values(text: &str) -> Vec<Option<f64>> {
        expand_values(text)
            .expect("valid values")
            .into_iter()
            .map(|v| match v {
                SeqValue::Omitted => None,
                SeqValue::Value(v) => Some(v),
            })
            .collect()
    }

    #[test]
    fn expands_the_documented_examples() {
        assert_eq!(values("-2+4x3"), [Some(-2.0), Some(2.0), Some(6.0), Some(10.0)]);
        assert_eq!(values(" 1-2x4"), [Some(1.0), Some(-1.0), Some(-3.0), Some(-5.0), Some(-7.0)]);
        assert_eq!(values("1x4"), [Some(1.0); 5]);
        assert_eq!(values("1+2x3"), [Some(1.0), Some(3.0), Some(5.0), Some(7.0)]);
        assert_eq!(values("5 +3 1e1 -1.5e-1"), [Some(5.0), Some(3.0), Some(10.0), Some(-0.15)]);
        let v = values("1 _x3 stale _");
        assert_eq!(v.len(), 6);
        assert_eq!(v[1..4], [None, None, None]);
        assert!(v[4].is_some_and(is_stale));
        assert_eq!(v[5], None);
    }

    #[test]
    fn expands_special_floats_and_accumulates_steps() {
        let v = values("Inf -Inf NaN +inf");
        assert_eq!(v[0], Some(f64::INFINITY));
        assert_eq!(v[1], Some(f64::NEG_INFINITY));
        assert!(v[2].is_some_and(|x| x.is_nan() && !is_stale(x)));
        assert_eq!(v[3], Some(f64::INFINITY));
        // 0.1 accumulated three times is not 0.3: the sequence must match promtool's floats.
        assert_eq!(values("0+0.1x3")[3], Some(0.1 + 0.1 + 0.1));
    }

    #[test]
    fn rejects_bad_values() {
        for bad in ["abc", "1+", "1x", "1xa", "1+2", "_xq", "1+-2x3", "stalex2", "e5", "1x99999999999"] {
            assert!(expand_values(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn parses_series() {
        let l = parse_series(r#"up{job="a", instance="b"}"#).expect("series");
        assert_eq!(go_labels(&l), r#"{__name__="up", instance="b", job="a"}"#);
        assert_eq!(parse_series("{}").expect("empty"), Labels::empty());
        assert_eq!(parse_series("").expect("empty"), Labels::empty());
        assert_eq!(go_labels(&parse_series(r#"{a="1"}"#).expect("no name")), r#"{a="1"}"#);
        assert!(parse_series(r#"up{job=~"a"}"#).is_err());
        assert!(parse_series("up offset 5m").is_err());
        assert!(parse_series("rate(up[5m])").is_err());
        assert!(parse_series(r#"up{a="1", a="2"}"#).is_err());
    }

    #[test]
    fn durations_parse_and_print_like_prometheus() {
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("1d2h"), Ok(93_600_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        for bad in ["", "5", "1m1h", "1x", "m", "1.5m", "-1m"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
        assert_eq!(format_duration(90_000), "1m30s");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(300_000), "5m");
    }

    #[test]
    fn floats_print_like_go() {
        assert_eq!(go_float(7.0), "7E+00");
        assert_eq!(go_float(0.1 + 0.2), "3.0000000000000004E-01");
        assert_eq!(go_float(1.5e100), "1.5E+100");
        assert_eq!(go_float(-0.0), "-0E+00");
        assert_eq!(go_float(f64::NAN), "NaN");
        assert_eq!(go_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(go_float(f64::INFINITY), "+Inf");
    }

    #[test]
    fn strings_quote_like_go() {
        assert_eq!(go_quote("rate(x[5m])"), r#""rate(x[5m])""#);
        assert_eq!(go_quote("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\x01é\"");
    }
}
