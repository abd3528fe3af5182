//! Alertmanager's time intervals (`time_intervals`, and the older `mute_time_intervals`), used by routes
//! to mute notifications during maintenance windows or to send them only in office hours.

use std::time::SystemTime;

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// Why a time interval is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeIntervalError {
    #[error("bad time {0:?}: use HH:MM between 00:00 and 24:00")]
    Time(String),
    #[error("bad time range {start}-{end}: the end must be after the start")]
    TimeOrder { start: String, end: String },
    #[error("bad weekday {0:?}: use sunday..saturday, or a range like 'monday:friday'")]
    Weekday(String),
    #[error("bad day of month {0:?}: use 1..31 or -31..-1 (from the month's end), or a range like '1:5'")]
    DayOfMonth(String),
    #[error("bad month {0:?}: use january..december or 1..12, or a range like 'may:august'")]
    Month(String),
    #[error("bad year {0:?}: use a year like 2024, or a range like '2024:2026'")]
    Year(String),
    #[error("unknown time zone {0:?}: use an IANA name such as 'Europe/Berlin', 'UTC' or 'Local'")]
    Location(String),
}

/// A named set of intervals: active when any of them contains the time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedTimeInterval {
    pub name: String,
    #[serde(default)]
    pub time_intervals: Vec<TimeInterval>,
}

/// One interval as written in the configuration; empty lists match everything.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeInterval {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<TimeRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days_of_month: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub months: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub years: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// `start_time`/`end_time` in `HH:MM`, end exclusive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    pub start_time: String,
    pub end_time: String,
}

/// A checked, compiled interval.
#[derive(Clone, Debug)]
pub struct CompiledInterval {
    /// Minutes since midnight, [start, end).
    times: Vec<(u32, u32)>,
    /// Weekday numbers, Sunday = 0, inclusive ranges.
    weekdays: Vec<(u8, u8)>,
    days_of_month: Vec<(i8, i8)>,
    months: Vec<(u8, u8)>,
    years: Vec<(i16, i16)>,
    zone: TimeZone,
}

/// A compiled named interval.
#[derive(Clone, Debug)]
pub struct CompiledTimeInterval {
    pub name: String,
    intervals: Vec<CompiledInterval>,
}

// === impl TimeInterval ===

impl TimeInterval {
    /// Checks and compiles the interval.
    pub fn compile(&self) -> Result<CompiledInterval, TimeIntervalError> {
        let mut times = Vec::new();
        for range in &self.times {
            let start = parse_clock(&range.start_time)?;
            let end = parse_clock(&range.end_time)?;
            if end <= start {
                return Err(TimeIntervalError::TimeOrder {
                    start: range.start_time.clone(),
                    end: range.end_time.clone(),
                });
            }
            times.push((start, end));
        }
        let weekdays = self
            .weekdays
            .iter()
            .map(|w| {
                parse_range(w, weekday_number)
                    .filter(|(a, b)| a <= b)
                    .ok_or_else(|| TimeIntervalError::Weekday(w.clone()))
            })
            .collect::<Result<_, _>>()?;
        let days_of_month = self
            .days_of_month
            .iter()
            .map(|d| {
                parse_range(d, |s| s.parse::<i8>().ok().filter(|n| *n != 0 && (-31..=31).contains(n)))
                    .filter(|(a, b)| (*a < 0) != (*b < 0) || a <= b)
                    .ok_or_else(|| TimeIntervalError::DayOfMonth(d.clone()))
            })
            .collect::<Result<_, _>>()?;
        let months = self
            .months
            .iter()
            .map(|m| {
                parse_range(m, month_number)
                    .filter(|(a, b)| a <= b)
                    .ok_or_else(|| TimeIntervalError::Month(m.clone()))
            })
            .collect::<Result<_, _>>()?;
        let years = self
            .years
            .iter()
            .map(|y| {
                parse_range(y, |s| s.parse::<i16>().ok().filter(|n| *n > 0))
                    .filter(|(a, b)| a <= b)
                    .ok_or_else(|| TimeIntervalError::Year(y.clone()))
            })
            .collect::<Result<_, _>>()?;
        let zone = match self.location.as_deref() {
            None | Some("UTC") | Some("") => TimeZone::UTC,
            Some("Local") => {
                TimeZone::try_system().map_err(|_| TimeIntervalError::Location("Local".into()))?
            }
            Some(name) => TimeZone::get(name).map_err(|_| TimeIntervalError::Location(name.to_owned()))?,
        };
        Ok(CompiledInterval { times, weekdays, days_of_month, months, years, zone })
    }
}

// === impl NamedTimeInterval ===

impl NamedTimeInterval {
    pub fn compile(&self) -> Result<CompiledTimeInterval, TimeIntervalError> {
        Ok(CompiledTimeInterval {
            name: self.name.clone(),
            intervals: self.time_intervals.iter().map(TimeInterval::compile).collect::<Result<_, _>>()?,
        })
    }
}

// === impl CompiledTimeInterval ===

impl CompiledTimeInterval {
    /// Whether any of the intervals contains `at`.
    pub fn contains(&self, at: SystemTime) -> bool {
        self.intervals.iter().any(|i| i.contains(at))
    }
}

// === impl CompiledInterval ===

impl CompiledInterval {
    /// Whether `at`, seen in the interval's time zone, falls inside every given constraint.
    pub fn contains(&self, at: SystemTime) -> bool {
        let Ok(ts) = jiff::Timestamp::try_from(at) else {
            return false;
        };
        let local = ts.to_zoned(self.zone.clone());
        let minute = u32::from(local.hour().unsigned_abs()) * 60 + u32::from(local.minute().unsigned_abs());
        if !self.times.is_empty() && !self.times.iter().any(|(s, e)| (*s..*e).contains(&minute)) {
            return false;
        }
        let weekday = local.weekday().to_sunday_zero_offset().unsigned_abs();
        if !self.weekdays.is_empty() && !self.weekdays.iter().any(|(a, b)| (*a..=*b).contains(&weekday)) {
            return false;
        }
        if !self.days_of_month.is_empty() {
            let days = local.days_in_month();
            let day = local.day();
            // Negative days count from the month's end (-1 is the last day), as in Alertmanager; a range is
            // clamped to the month, so 1:31 covers February too.
            let resolve = |d: i8| if d < 0 { days + d + 1 } else { d };
            if !self.days_of_month.iter().any(|(a, b)| {
                let (start, end) = (resolve(*a).max(1), resolve(*b).min(days));
                start <= day && day <= end
            }) {
                return false;
            }
        }
        let month = local.month().unsigned_abs();
        if !self.months.is_empty() && !self.months.iter().any(|(a, b)| (*a..=*b).contains(&month)) {
            return false;
        }
        let year = local.year();
        if !self.years.is_empty() && !self.years.iter().any(|(a, b)| (*a..=*b).contains(&year)) {
            return false;
        }
        true
    }
}

fn parse_clock(text: &str) -> Result<u32, TimeIntervalError> {
    let err = || TimeIntervalError::Time(text.to_owned());
    let (h, m) = text.split_once(':').ok_or_else(err)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(err());
    }
    let h: u32 = h.parse().map_err(|_| err())?;
    let m: u32 = m.parse().map_err(|_| err())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(err());
    }
    Ok(h * 60 + m)
}

/// Parses `x` or `x:y` with `one` for each end; the range must be ordered unless `one` yields values
/// whose order is checked by the caller.
fn parse_range<T: Copy + PartialOrd>(text: &str, one: impl Fn(&str) -> Option<T>) -> Option<(T, T)> {
    match text.split_once(':') {
        Some((a, b)) => Some((one(a.trim())?, one(b.trim())?)),
        None => {
            let v = one(text.trim())?;
            Some((v, v))
        }
    }
}

fn weekday_number(text: &str) -> Option<u8> {
    let day = match text.to_ascii_lowercase().as_str() {
        "sunday" => Weekday::Sunday,
        "monday" => Weekday::Monday,
        "tuesday" => Weekday::Tuesday,
        "wednesday" => Weekday::Wednesday,
        "thursday" => Weekday::Thursday,
        "friday" => Weekday::Friday,
        "saturday" => Weekday::Saturday,
        _ => return None,
    };
    Some(day.to_sunday_zero_offset().unsigned_abs())
}

fn month_number(text: &str) -> Option<u8> {
    const NAMES: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let lower = text.to_ascii_lowercase();
    if let Some(i) = NAMES.iter().position(|n| *n == lower) {
        return u8::try_from(i + 1).ok();
    }
    text.parse::<u8>().ok().filter(|m| (1..=12).contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> SystemTime {
        SystemTime::from(rfc3339.parse::<jiff::Timestamp>().expect("timestamp"))
    }

    #[test]
    fn weekends_in_a_time_zone() {
        let interval: TimeInterval =
            serde_yaml_ng::from_str("weekdays: ['saturday', 'sunday']\nlocation: Asia/Tokyo\n")
                .expect("yaml");
        let compiled = interval.compile().expect("compiles");
        // Friday 20:00 UTC is Saturday 05:00 in Tokyo.
        assert!(compiled.contains(at("2026-11-27T20:00:00Z")));
        assert!(!compiled.contains(at("2026-11-27T10:00:00Z")));
        // Sunday 16:00 UTC is Monday 01:00 in Tokyo.
        assert!(!compiled.contains(at("2026-11-29T16:00:00Z")));
    }

    #[test]
    fn times_days_months_years() {
        let interval: TimeInterval = serde_yaml_ng::from_str(
            "times:\n- start_time: 09:00\n  end_time: 17:00\ndays_of_month: ['-1']\nmonths: ['february']\nyears: ['2028']\n",
        )
        .expect("yaml");
        let compiled = interval.compile().expect("compiles");
        assert!(compiled.contains(at("2028-02-29T09:00:00Z")), "leap day is the last day");
        assert!(!compiled.contains(at("2028-02-29T17:00:00Z")), "end is exclusive");
        assert!(!compiled.contains(at("2028-02-28T12:00:00Z")));
        assert!(!compiled.contains(at("2027-02-28T12:00:00Z")));
    }

    #[test]
    fn rejects_bad_intervals() {
        for yaml in [
            "weekdays: ['funday']",
            "weekdays: ['saturday:sunday']",
            "days_of_month: ['0']",
            "days_of_month: ['5:1']",
            "months: ['13']",
            "times:\n- start_time: '17:00'\n  end_time: '09:00'",
            "times:\n- start_time: '9:00'\n  end_time: '10:00'",
            "location: Mars/Olympus",
        ] {
            let interval: TimeInterval = serde_yaml_ng::from_str(yaml).expect("yaml");
            assert!(interval.compile().is_err(), "{yaml} should be rejected");
        }
    }
}
