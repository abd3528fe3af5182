//! Go's number and duration formatting, as Prometheus's templates and API print values: `%v`, `%g` with a
//! precision, `%e`, `%f`, and `model.Duration`'s `String`.

/// Go's `strconv.FormatFloat(v, 'g', prec, 64)`; `prec` `None` is the shortest form that reads back
/// (what `%v` prints for a float64: `1e+06`, `0.5`, `1.234567e+06`).
pub fn format_g(v: f64, prec: Option<usize>) -> String {
    if let Some(special) = special(v) {
        return special;
    }
    let (_, digits, dp) = decimal(v.abs(), prec.map(|p| p.max(1)));
    let neg = v < 0.0;
    let nd = digits.len() as i64;
    let shortest = prec.is_none();
    let mut eprec = prec.map_or(nd, |p| p.max(1) as i64);
    if !shortest && eprec > nd && nd >= dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = dp - 1;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        // The mantissa keeps every significant digit: `prec` rounded already, and trailing zeros are gone.
        push_e(&mut out, &digits, exp, nd - 1, 'e');
    } else {
        let p = match prec {
            Some(p) if (p.max(1) as i64) <= dp => p.max(1) as i64,
            _ => nd,
        };
        let decimals = (p - dp).max(0);
        push_f(&mut out, &digits, dp, decimals);
    }
    out
}

/// Go's `%.{prec}e` (or `strconv.FormatFloat(v, 'e', -1, 64)` with `prec` `None`).
pub fn format_e(v: f64, prec: Option<usize>) -> String {
    if let Some(special) = special(v) {
        return special;
    }
    let (_, digits, dp) = match prec {
        Some(p) => decimal(v.abs(), Some(p + 1)),
        None => decimal(v.abs(), None),
    };
    let neg = v < 0.0;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let decimals = prec.map_or(digits.len() as i64 - 1, |p| p as i64);
    push_e(&mut out, &digits, dp - 1, decimals, 'e');
    out
}

/// Go's `%.{prec}f`.
pub fn format_f(v: f64, prec: usize) -> String {
    if let Some(special) = special(v) {
        return special;
    }
    format!("{v:.prec$}")
}

/// NaN and the infinities as Go prints them.
fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "+Inf".into() } else { "-Inf".into() })
    } else {
        None
    }
}

/// The decimal digits of `v` (no trailing zeros, at least one digit) and the decimal point's position:
/// `v = 0.DIGITS × 10^dp`. With `sig`, rounded to that many significant digits; else the shortest
/// digits that read back.
fn decimal(v: f64, sig: Option<usize>) -> (bool, Vec<u8>, i64) {
    let neg = v < 0.0;
    let text = match sig {
        Some(s) => format!("{:.*e}", s.saturating_sub(1), v.abs()),
        None => format!("{:e}", v.abs()),
    };
    let (mantissa, exp) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits == [b'0'] {
        return (neg, digits, 1);
    }
    (neg, digits, exp + 1)
}

fn push_e(out: &mut String, digits: &[u8], exp: i64, decimals: i64, e: char) {
    out.push(char::from(digits.first().copied().unwrap_or(b'0')));
    if decimals > 0 {
        out.push('.');
        for i in 1..=decimals {
            out.push(char::from(digits.get(i as usize).copied().unwrap_or(b'0')));
        }
    }
    let exp = if digits == [b'0'] { 0 } else { exp };
    out.push(e);
    out.push(if exp < 0 { '-' } else { '+' });
    let abs = exp.unsigned_abs();
    if abs < 10 {
        out.push('0');
    }
    out.push_str(&abs.to_string());
}

fn push_f(out: &mut String, digits: &[u8], dp: i64, decimals: i64) {
    let digit = |i: i64| -> char {
        if i < 0 {
            return '0';
        }
        char::from(digits.get(i as usize).copied().unwrap_or(b'0'))
    };
    if dp <= 0 {
        out.push('0');
    } else {
        for i in 0..dp {
            out.push(digit(i));
        }
    }
    if decimals > 0 {
        out.push('.');
        for i in 0..decimals {
            out.push(digit(dp + i));
        }
    }
}

/// Prometheus durations, parsed as the rule-test runner parses them (one parser for rule files and test
/// files).
pub use sightline_tsdb::unittest::parse_duration;

/// Prints milliseconds as Prometheus's `model.Duration` does (`1h30m`, `1d`, `0s`).
pub use sightline_tsdb::unittest::format_duration;

/// Quotes a string as Go's `strconv.Quote` does for printable text (`%q`).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        assert_eq!(format_g(1e6, None), "1e+06");
        assert_eq!(format_g(1_234_567.0, None), "1.234567e+06");
        assert_eq!(format_g(123_456.0, None), "123456");
        assert_eq!(format_g(0.5, None), "0.5");
        assert_eq!(format_g(0.0001, None), "0.0001");
        assert_eq!(format_g(0.00001, None), "1e-05");
        assert_eq!(format_g(0.0, None), "0");
        assert_eq!(format_g(-2.0, None), "-2");
        assert_eq!(format_g(1.235, Some(4)), "1.235");
        assert_eq!(format_g(1.2345678, Some(4)), "1.235");
        assert_eq!(format_g(12.5, Some(4)), "12.5");
        assert_eq!(format_g(12340.0, Some(4)), "1.234e+04");
        assert_eq!(format_g(100.0, Some(4)), "100");
        assert_eq!(format_g(0.0, Some(4)), "0");
        assert_eq!(format_g(f64::NAN, Some(4)), "NaN");
        assert_eq!(format_g(f64::NEG_INFINITY, None), "-Inf");
        assert_eq!(format_e(1.0, None), "1e+00");
        assert_eq!(format_e(1234.5, None), "1.2345e+03");
        assert_eq!(format_e(1234.5, Some(2)), "1.23e+03");
        assert_eq!(format_f(1.0 / 3.0, 2), "0.33");
    }

    #[test]
    fn durations_parse_and_print_like_prometheus() {
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("30m1h").is_err());
        assert!(parse_duration("-5m").is_err());
        assert_eq!(format_duration(5_400_000), "1h30m");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(86_400_000), "1d");
    }
}
