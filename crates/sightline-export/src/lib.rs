//! Prometheus text format 0.0.4 and OpenMetrics 1.0 text exposition of a
//! [`Snapshot`](sightline_core::Snapshot).
//!
//! The format is chosen from a request's `Accept` header the way Prometheus negotiates it
//! ([`Format::negotiate`]). This crate knows no HTTP: the caller passes the header value and sends the
//! returned body with [`Format::content_type`].
//!
//! ```
//! use sightline_core::Registry;
//! use sightline_export::{render, Format};
//!
//! let registry = Registry::new();
//! registry.gauge("queue_depth", &[("queue", "mail")])?.set(3.0);
//! let format = Format::negotiate(Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"));
//! let body = render(&registry.snapshot(), format);
//! assert!(body.contains("queue_depth{queue=\"mail\"} 3.0\n"));
//! assert!(body.ends_with("# EOF\n"));
//! # Ok::<(), sightline_core::MetricError>(())
//! ```
//!
//! # Why not `metrics-exporter-prometheus`
//!
//! Its formatting helpers render only the Prometheus text format from its own recorder's storage; they
//! cannot write OpenMetrics (`# UNIT`, `_total` sample names, `# EOF`), and render from a different data
//! model. Rendering a snapshot here is a few hundred lines, and lets one snapshot feed both formats and,
//! later, the time-series store.

use sightline_core::{FamilySnapshot, MetricKind, SeriesSnapshot, Snapshot, Value};

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4.
    PrometheusText,
    /// The OpenMetrics text format, version 1.0.0.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a body in this format.
    pub const fn content_type(self) -> &'static str {
        match self {
            Format::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Chooses the format for an `Accept` header as Prometheus's own clients do.
    ///
    /// Each media range is weighed by its `q` parameter (1 by default); the highest-weighted range this
    /// crate can serve wins, and the first listed wins a tie. `application/openmetrics-text` is served as
    /// OpenMetrics 1.0.0 (for `version` 1.0.0, 0.0.1 or none); `text/plain` (version 0.0.4 or none),
    /// `text/*` and `*/*` as the text format. Anything else, including a missing or unparsable header, gets
    /// the text format, which every scraper understands.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else { return Format::PrometheusText };
        let mut best: Option<(f32, Format)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media_type = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut q = 1.0f32;
            let mut version = None;
            for param in parts {
                let Some((name, value)) = param.split_once('=') else { continue };
                let value = value.trim().trim_matches('"');
                match name.trim().to_ascii_lowercase().as_str() {
                    "q" => q = value.parse().unwrap_or(0.0),
                    "version" => version = Some(value.to_owned()),
                    _ => {}
                }
            }
            let format = match (media_type.as_str(), version.as_deref()) {
                ("application/openmetrics-text", None | Some("1.0.0" | "0.0.1")) => Format::OpenMetrics,
                ("text/plain", None | Some("0.0.4")) | ("text/*" | "*/*", _) => Format::PrometheusText,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, format));
            }
        }
        best.map_or(Format::PrometheusText, |(_, format)| format)
    }
}

/// Renders `snapshot` in `format`.
pub fn render(snapshot: &Snapshot, format: Format) -> String {
    let mut out = String::with_capacity(snapshot.series_count() * 64 + 64);
    render_into(snapshot, format, &mut out);
    out
}

/// Renders `snapshot` in `format`, appending to `out`.
pub fn render_into(snapshot: &Snapshot, format: Format, out: &mut String) {
    for family in &snapshot.families {
        if !family.series.is_empty() {
            write_family(family, format, out);
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
}

fn write_family(family: &FamilySnapshot, format: Format, out: &mut String) {
    // OpenMetrics names a counter family without `_total` and writes the suffix on its samples.
    let family_name = match (format, family.kind) {
        (Format::OpenMetrics, MetricKind::Counter) => {
            family.name.strip_suffix("_total").unwrap_or(&family.name)
        }
        _ => &family.name,
    };
    if let Some(help) = &family.help {
        out.push_str("# HELP ");
        out.push_str(family_name);
        out.push(' ');
        escape_help(help, format, out);
        out.push('\n');
    }
    out.push_str("# TYPE ");
    out.push_str(family_name);
    out.push(' ');
    out.push_str(family.kind.as_str());
    out.push('\n');
    if let (Format::OpenMetrics, Some(unit)) = (format, family.unit) {
        out.push_str("# UNIT ");
        out.push_str(family_name);
        out.push(' ');
        out.push_str(unit.as_str());
        out.push('\n');
    }
    for series in &family.series {
        write_series(family_name, series, format, out);
    }
}

fn write_series(family_name: &str, series: &SeriesSnapshot, format: Format, out: &mut String) {
    match &series.value {
        Value::Counter(value) => {
            // In OpenMetrics the family name lost its `_total`; in the text format it is the full name.
            write_sample_name(family_name, if format == Format::OpenMetrics { "_total" } else { "" }, out);
            write_labels(series, None, out);
            write_u64(*value, out);
        }
        Value::FloatCounter(value) => {
            write_sample_name(family_name, if format == Format::OpenMetrics { "_total" } else { "" }, out);
            write_labels(series, None, out);
            write_f64_line(*value, out);
        }
        Value::Gauge(value) => {
            out.push_str(family_name);
            write_labels(series, None, out);
            write_f64_line(*value, out);
        }
        Value::Histogram(h) => {
            let mut le = String::new();
            for (bound, count) in &h.buckets {
                write_sample_name(family_name, "_bucket", out);
                le.clear();
                push_f64(*bound, &mut le);
                write_labels(series, Some(("le", &le)), out);
                write_u64(*count, out);
            }
            write_sum_count(family_name, series, h.sum, h.count, out);
        }
        Value::Summary(s) => {
            let mut quantile = String::new();
            for (q, value) in &s.quantiles {
                out.push_str(family_name);
                quantile.clear();
                push_f64(*q, &mut quantile);
                write_labels(series, Some(("quantile", &quantile)), out);
                write_f64_line(*value, out);
            }
            write_sum_count(family_name, series, s.sum, s.count, out);
        }
    }
}

fn write_sum_count(name: &str, series: &SeriesSnapshot, sum: f64, count: u64, out: &mut String) {
    write_sample_name(name, "_sum", out);
    write_labels(series, None, out);
    write_f64_line(sum, out);
    write_sample_name(name, "_count", out);
    write_labels(series, None, out);
    write_u64(count, out);
}

fn write_sample_name(name: &str, suffix: &str, out: &mut String) {
    out.push_str(name);
    out.push_str(suffix);
}

/// Writes `{a="x",b="y"}` plus a trailing space, or just the space when there are no labels.
fn write_labels(series: &SeriesSnapshot, extra: Option<(&str, &str)>, out: &mut String) {
    let labels = series.labels();
    if labels.is_empty() && extra.is_none() {
        out.push(' ');
        return;
    }
    out.push('{');
    let mut first = true;
    let pairs = labels.iter().map(|l| (l.key(), l.value())).chain(extra);
    for (name, value) in pairs {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        escape_label_value(value, out);
        out.push('"');
    }
    out.push_str("} ");
}

/// Escapes a label value: backslash, double quote and line feed, as both formats require.
fn escape_label_value(value: &str, out: &mut String) {
    if !value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Escapes help text: backslash and line feed, plus double quote in OpenMetrics.
fn escape_help(help: &str, format: Format, out: &mut String) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if format == Format::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn write_u64(value: u64, out: &mut String) {
    out.push_str(itoa::Buffer::new().format(value));
    out.push('\n');
}

fn write_f64_line(value: f64, out: &mut String) {
    push_f64(value, out);
    out.push('\n');
}

/// Writes a float the way both formats accept it: `+Inf`, `-Inf`, `NaN`, or the shortest decimal that
/// reads back as the same value (integral values keep a `.0`, as OpenMetrics' canonical `le` asks).
fn push_f64(value: f64, out: &mut String) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        out.push_str(ryu::Buffer::new().format_finite(value));
    }
}

#[cfg(test)]
mod tests;
