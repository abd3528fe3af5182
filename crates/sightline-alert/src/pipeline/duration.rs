//! Prometheus-style durations (`30s`, `5m`, `4h`, `1d`, `1w`, `1h30m`), the syntax Alertmanager's
//! configuration uses. Hand-written because `humantime` accepts a different syntax (`5min`, spaces) and
//! rejects `1w1d`-style compounds in Prometheus's unit order.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: use a number followed by units y, w, d, h, m, s or ms in that order, like \"1h30m\""
)]
pub struct DurationError {
    pub input: String,
}

/// Parses a Prometheus duration: units y(365d), w, d, h, m, s, ms, each at most once and in that order;
/// "0" alone is zero. The one parser all of Sightline uses ([`sightline_core::duration`]).
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    sightline_core::duration::parse_prometheus(input).map_err(|_| DurationError { input: input.to_owned() })
}

/// Formats a duration the way Prometheus prints it (`1h30m`, `90d`, `1w`, `0s`).
pub fn format(d: Duration) -> String {
    promql_parser::util::display_duration(&d)
}

/// A duration in configuration files, (de)serialised in Prometheus syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PromDuration(pub Duration);

// === impl PromDuration ===

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(self.0))
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(self.0))
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map(PromDuration).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1w1d"), Ok(Duration::from_secs(8 * 86400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        for bad in ["", "5", "5min", "30m1h", "1h1h", "-5s", "1.5h"] {
            assert!(parse(bad).is_err(), "{bad} should not parse");
        }
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
