//! Prometheus's duration notation (`500ms`, `15s`, `1m`, `1h30m`, `2d`, `1w`, `1y`, `0`), one parser for
//! every configuration and file format Sightline reads it in: scrape configs, rule files, Alertmanager's
//! routing, the server's own settings and `promtool test rules` files.
//!
//! Hand-written because the grammar is fixed and small, and the usual crates read a different one:
//! `humantime` also accepts `1 sec`, `2hours` and units in any order, which Prometheus rejects, and a
//! configuration pasted from Prometheus or Alertmanager must mean the same here.

use std::time::Duration;

/// Units in the only order Prometheus accepts, with their length in milliseconds. A year is 365 days
/// and a week 7 days, as in Prometheus.
const UNITS: [(&str, u128); 7] = [
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Why a duration did not parse: the text, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct DurationError {
    /// The text as given.
    pub input: String,
    /// What is wrong, with how to write it instead.
    pub reason: String,
}

/// Parses a duration in Prometheus's notation: `1y2w3d4h5m6s7ms` with any non-empty subset of the units
/// in that order, each at most once, or `0` alone.
///
/// ```
/// use std::time::Duration;
/// use sightline_core::duration::parse_prometheus;
///
/// assert_eq!(parse_prometheus("1h30m"), Ok(Duration::from_secs(5400)));
/// assert!(parse_prometheus("30m1h").unwrap_err().reason.contains("out of order"));
/// ```
pub fn parse_prometheus(text: &str) -> Result<Duration, DurationError> {
    let fail = |reason: String| DurationError { input: text.to_owned(), reason };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(fail("empty duration; write it like 15s, 1m, 500ms or 1h30m".into()));
    }
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut next_unit = 0;
    let mut total: u128 = 0;
    while pos < bytes.len() {
        let start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if start == pos {
            return Err(fail(format!(
                "expected a number at {:?}; write it like 15s, 1m, 500ms or 1h30m",
                &text[pos..]
            )));
        }
        let number: u128 = text[start..pos]
            .parse()
            .map_err(|_| fail(format!("number {:?} is too large", &text[start..pos])))?;
        let unit_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = &text[unit_start..pos];
        if unit.is_empty() {
            return Err(fail(format!("{:?} needs a unit: y, w, d, h, m, s or ms", &text[start..pos])));
        }
        let Some(offset) = UNITS[next_unit..].iter().position(|(u, _)| *u == unit) else {
            return Err(fail(if UNITS.iter().any(|(u, _)| *u == unit) {
                format!("unit {unit:?} is out of order; units go y, w, d, h, m, s, ms, each once")
            } else {
                format!("unknown unit {unit:?}; use y, w, d, h, m, s or ms")
            }));
        };
        let index = next_unit + offset;
        total = number
            .checked_mul(UNITS[index].1)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| fail("duration is too large".into()))?;
        next_unit = index + 1;
    }
    let millis = u64::try_from(total).map_err(|_| fail("duration is too large".into()))?;
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_durations() {
        let ok = |t: &str| parse_prometheus(t).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1w1d"), Duration::from_secs(8 * 86_400));
        assert_eq!(ok("1y"), Duration::from_secs(365 * 86_400));
        assert_eq!(ok("1d2h3m4s5ms"), Duration::from_millis(93_784_005));
        for (bad, reason) in [
            ("", "empty"),
            ("5", "\"5\" needs a unit"),
            ("5min", "unknown unit \"min\""),
            ("30m1h", "out of order"),
            ("1h1h", "out of order"),
            ("-5s", "expected a number"),
            ("1.5h", "\"1\" needs a unit"),
            ("99999999999999999999999999999999999999999y", "too large"),
            ("999999999999y", "too large"),
        ] {
            let err = parse_prometheus(bad).expect_err(bad);
            assert!(err.reason.contains(reason), "{bad:?}: {err}");
            assert!(err.to_string().starts_with(&format!("invalid duration {bad:?}: ")), "{err}");
        }
    }
}
