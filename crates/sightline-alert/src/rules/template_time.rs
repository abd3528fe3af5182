//! Go's `time.Time` as notification templates print and format it: `String()` and `Format(layout)` with
//! Go's reference-time layouts (`2006-01-02 15:04:05`, `Jan 2`, `Mon`, `-07:00`, `.000`, ...), in UTC, the
//! zone of the times Alertmanager receives.

use std::time::SystemTime;

use jiff::civil::DateTime;

/// The civil time of `t` in UTC; `None` is Go's zero time, `0001-01-01 00:00:00`.
fn civil(t: Option<SystemTime>) -> DateTime {
    t.and_then(|t| jiff::Timestamp::try_from(t).ok())
        .map(|ts| ts.to_zoned(jiff::tz::TimeZone::UTC).datetime())
        .unwrap_or_else(|| jiff::civil::date(1, 1, 1).at(0, 0, 0, 0))
}

/// Go's `time.Time.String()`: `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub fn go_string(t: Option<SystemTime>) -> String {
    format(t, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// Seconds since 1970 (`Unix()`); Go's zero time is -62135596800.
pub fn unix(t: Option<SystemTime>) -> i64 {
    match t.and_then(|t| jiff::Timestamp::try_from(t).ok()) {
        Some(ts) => ts.as_second(),
        None => -62_135_596_800,
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// Go's `time.Time.Format(layout)` in UTC.
pub fn format(t: Option<SystemTime>, layout: &str) -> String {
    let dt = civil(t);
    let (year, month, day) = (i64::from(dt.year()), dt.month() as usize, i64::from(dt.day()));
    let (hour, minute, second) = (i64::from(dt.hour()), i64::from(dt.minute()), i64::from(dt.second()));
    let nanos = dt.subsec_nanosecond();
    let weekday = dt.weekday().to_sunday_zero_offset() as usize;
    let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };
    let mut out = String::with_capacity(layout.len() + 8);
    let mut rest = layout;
    // Longest tokens first, as Go's `nextStdChunk` tries them.
    const TOKENS: [&str; 36] = [
        "January",
        "Monday",
        "2006",
        "-07:00:00",
        "-070000",
        "Z07:00:00",
        "Z070000",
        "-07:00",
        "-0700",
        "Z07:00",
        "Z0700",
        "Jan",
        "Mon",
        "MST",
        "002",
        "__2",
        "-07",
        "Z07",
        "01",
        "02",
        "03",
        "04",
        "05",
        "06",
        "15",
        "_2",
        "PM",
        "pm",
        "1",
        "2",
        "3",
        "4",
        "5",
        ".0",
        ",0",
        ".9",
    ];
    'outer: while !rest.is_empty() {
        for token in TOKENS {
            if !rest.starts_with(token) {
                continue;
            }
            let mut used = token.len();
            match token {
                "January" => out.push_str(MONTHS[month - 1]),
                "Jan" => out.push_str(&MONTHS[month - 1][..3]),
                "Monday" => out.push_str(DAYS[weekday]),
                "Mon" => out.push_str(&DAYS[weekday][..3]),
                "2006" => out.push_str(&format!("{year:04}")),
                "06" => out.push_str(&format!("{:02}", year % 100)),
                "01" => out.push_str(&format!("{month:02}")),
                "1" => out.push_str(&month.to_string()),
                "02" => out.push_str(&format!("{day:02}")),
                "_2" => out.push_str(&format!("{day:>2}")),
                "2" => out.push_str(&day.to_string()),
                "002" | "__2" => {
                    let yday = i64::from(dt.day_of_year());
                    out.push_str(&if token == "002" { format!("{yday:03}") } else { format!("{yday:>3}") });
                }
                "15" => out.push_str(&format!("{hour:02}")),
                "03" => out.push_str(&format!("{hour12:02}")),
                "3" => out.push_str(&hour12.to_string()),
                "04" => out.push_str(&format!("{minute:02}")),
                "4" => out.push_str(&minute.to_string()),
                "05" => out.push_str(&format!("{second:02}")),
                "5" => out.push_str(&second.to_string()),
                "PM" => out.push_str(if hour >= 12 { "PM" } else { "AM" }),
                "pm" => out.push_str(if hour >= 12 { "pm" } else { "am" }),
                "MST" => out.push_str("UTC"),
                "-07:00:00" => out.push_str("+00:00:00"),
                "-070000" => out.push_str("+000000"),
                "-07:00" => out.push_str("+00:00"),
                "-0700" => out.push_str("+0000"),
                "-07" => out.push_str("+00"),
                "Z07:00:00" | "Z070000" | "Z07:00" | "Z0700" | "Z07" => out.push('Z'),
                ".0" | ",0" | ".9" => {
                    // A run of 0s (fixed width) or 9s (trailing zeros dropped) after `.` or `,`, not
                    // followed by a digit, is a fractional second.
                    let digit = &token[1..];
                    let run = rest[1..].len() - rest[1..].trim_start_matches(digit).len();
                    let after = rest[1 + run..].chars().next();
                    if after.is_some_and(|c| c.is_ascii_digit()) {
                        out.push_str(&token[..1]);
                        rest = &rest[1..];
                        continue 'outer;
                    }
                    used = 1 + run;
                    let digits = format!("{nanos:09}");
                    let digits = &digits[..run.min(9)];
                    if digit == "0" {
                        out.push_str(&token[..1]);
                        out.push_str(digits);
                    } else {
                        let trimmed = digits.trim_end_matches('0');
                        if !trimmed.is_empty() {
                            out.push_str(&token[..1]);
                            out.push_str(trimmed);
                        }
                    }
                }
                _ => out.push_str(token),
            }
            rest = &rest[used..];
            continue 'outer;
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn times_print_and_format_like_go() {
        // 2015-06-23T13:19:44.128Z, a Tuesday.
        let t = Some(UNIX_EPOCH + Duration::from_millis(1_435_065_584_128));
        assert_eq!(go_string(t), "2015-06-23 13:19:44.128 +0000 UTC");
        assert_eq!(go_string(None), "0001-01-01 00:00:00 +0000 UTC");
        assert_eq!(format(t, "2006-01-02T15:04:05Z07:00"), "2015-06-23T13:19:44Z");
        assert_eq!(format(t, "Mon Jan _2 3:04PM"), "Tue Jun 23 1:19PM");
        assert_eq!(
            format(t, "Monday, 02-January-06 15:04:05.000 MST"),
            "Tuesday, 23-June-15 13:19:44.128 UTC"
        );
        assert_eq!(format(t, "15:04:05.999999"), "13:19:44.128");
        assert_eq!(format(t, "version 2.0"), "version 23.1");
        assert_eq!(unix(t), 1_435_065_584);
        assert_eq!(unix(None), -62_135_596_800);
    }
}
