//! A text Gantt chart of one trace, for terminals and logs.
//!
//! One row per span in tree order (depth first, siblings by start time), with the span's name indented by
//! depth, a bar placed on a shared time axis, and the span's duration. Critical-path spans are drawn with
//! `█` (bold red with colour), the others with `▒` (cyan with colour); errored spans end with `✗`. The
//! chart never exceeds the given width (clamped to [`MIN_WIDTH`]..=[`MAX_WIDTH`]), except for a header whose
//! pieces cannot be split further. Widths count characters, so double-width characters in span names (CJK,
//! emoji) can push a row past it.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::critical_path::{in_trace_parents, span_end};
use crate::record::{SpanId, SpanRecord, SpanStatus, TraceId};

/// The narrowest chart drawn; smaller widths are raised to it, because below it the bars say nothing.
pub const MIN_WIDTH: usize = 40;

/// The widest chart drawn; larger widths (say, a bogus `COLUMNS`) are lowered to it.
pub const MAX_WIDTH: usize = 1000;

const ANSI_RESET: &str = "\x1b[0m";
const ANSI_BOLD: &str = "\x1b[1m";
const ANSI_CRITICAL: &str = "\x1b[1;31m";
const ANSI_OTHER: &str = "\x1b[36m";
const ANSI_ERROR: &str = "\x1b[31m";

/// Renders one trace's spans (in any order) as a Gantt chart `width` columns wide, ending with a newline.
///
/// `critical` holds the spans to highlight, usually [`crate::critical_path::critical_span_ids`]. With
/// `color` the bars and the error marks use ANSI colours; without it the chart is plain text whose glyphs
/// alone tell critical from other spans. The time axis runs from the earliest start to the latest end of
/// any span, so spans starting before the root or outliving it still fit.
pub fn render_gantt(trace: &[SpanRecord], critical: &HashSet<SpanId>, width: usize, color: bool) -> String {
    let width = width.clamp(MIN_WIDTH, MAX_WIDTH);
    let rows = tree_order(trace);
    let Some(&(first, _)) = rows.first() else { return "(no spans)\n".to_owned() };

    let t0 = trace.iter().map(|s| s.start).min().unwrap_or(trace[first].start);
    let t1 = trace.iter().map(span_end).max().unwrap_or(t0);
    let total = t1.duration_since(t0).unwrap_or(Duration::ZERO);
    let errors = trace.iter().filter(|s| s.status == SpanStatus::Error).count();

    let mut out = String::new();
    header(&mut out, trace[first].trace_id, total, trace.len(), errors, width, color);

    // Columns: label, space, bar, space, duration (right-aligned), and " ✗" when any span errored.
    let durations: Vec<String> = rows.iter().map(|&(i, _)| format_duration(trace[i].duration)).collect();
    let duration_w = durations.iter().map(|d| d.chars().count()).max().unwrap_or(0);
    let mark_w = if errors > 0 { 2 } else { 0 };
    let avail = width.saturating_sub(2 + duration_w + mark_w);
    let longest_label = rows.iter().map(|&(i, depth)| 2 * depth + trace[i].name.chars().count()).max();
    let name_w = longest_label.unwrap_or(0).clamp(1, (avail * 2 / 5).max(1));
    let bar_w = avail.saturating_sub(name_w).max(1);
    let scale = Scale { t0, total_nanos: total.as_nanos(), width: bar_w };

    for (&(i, depth), duration) in rows.iter().zip(&durations) {
        let span = &trace[i];
        let indent = (2 * depth).min(name_w / 2);
        // Control characters in a name (a newline, or an escape sequence from a remote caller's span name)
        // would break the row or drive the terminal, so they are replaced.
        let name = span.name.chars().map(|c| if c.is_control() { '\u{FFFD}' } else { c });
        let label = fit(&" ".repeat(indent).chars().chain(name).collect::<String>(), name_w);
        let (from, to) = scale.columns(span.start, span_end(span));
        let is_critical = critical.contains(&span.span_id);
        let (glyph, ansi) = if is_critical { ('█', ANSI_CRITICAL) } else { ('▒', ANSI_OTHER) };

        out.push_str(&label);
        out.push(' ');
        push_repeated(&mut out, ' ', from);
        if color {
            out.push_str(ansi);
        }
        push_repeated(&mut out, glyph, to - from);
        if color {
            out.push_str(ANSI_RESET);
        }
        push_repeated(&mut out, ' ', bar_w - to);
        let _ = write!(out, " {duration:>duration_w$}");
        if span.status == SpanStatus::Error {
            if color {
                let _ = write!(out, " {ANSI_ERROR}✗{ANSI_RESET}");
            } else {
                out.push_str(" ✗");
            }
        }
        out.push('\n');
    }

    // The axis: zero under the bars' left edge, the total under their right edge, when both fit.
    let total_label = format_duration(total);
    let total_w = total_label.chars().count();
    if bar_w > total_w + 1 {
        let _ = writeln!(out, "{:name_w$} 0{total_label:>pad$}", "", pad = bar_w - 1);
    }
    out
}

/// Formats a duration with three significant digits in the largest unit that keeps it at least one:
/// `850ns`, `8.50µs`, `12.3ms`, `1.20s`, `250s`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    let (unit, suffix) = match nanos {
        0..1_000 => return format!("{nanos}ns"),
        // The bounds sit where rounding to three digits would print `1000` in the smaller unit.
        1_000..999_500 => (1e3, "µs"),
        999_500..999_500_000 => (1e6, "ms"),
        _ => (1e9, "s"),
    };
    let value = nanos as f64 / unit;
    if value < 9.995 {
        format!("{value:.2}{suffix}")
    } else if value < 99.95 {
        format!("{value:.1}{suffix}")
    } else {
        format!("{value:.0}{suffix}")
    }
}

/// Maps times to bar columns: floor for the start and ceiling for the end, so touching spans touch on the
/// chart too, and every span gets at least one column.
struct Scale {
    t0: SystemTime,
    total_nanos: u128,
    width: usize,
}

impl Scale {
    fn columns(&self, start: SystemTime, end: SystemTime) -> (usize, usize) {
        let offset = |t: SystemTime| t.duration_since(self.t0).unwrap_or(Duration::ZERO).as_nanos();
        // At most about 1.8e28 ns times MAX_WIDTH columns, far below u128::MAX.
        let width = self.width as u128;
        let to_column = |c: u128| usize::try_from(c).unwrap_or(usize::MAX);
        // With no time to spread over (every span is instantaneous), each span gets the first column.
        let (from, to) = match (offset(start) * width).checked_div(self.total_nanos) {
            None => (0, 1),
            Some(from) => (to_column(from), to_column((offset(end) * width).div_ceil(self.total_nanos))),
        };
        let from = from.min(self.width - 1);
        (from, to.clamp(from + 1, self.width))
    }
}

/// The header: trace id, total duration, span and error counts; split over two lines when narrow.
fn header(
    out: &mut String,
    trace_id: TraceId,
    total: Duration,
    spans: usize,
    errors: usize,
    width: usize,
    color: bool,
) {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let id = format!("trace {trace_id}");
    let mut facts = format!("{} · {}", format_duration(total), plural(spans, "span"));
    if errors > 0 {
        let _ = write!(facts, " · {}", plural(errors, "error"));
    }
    let one_line = format!("{id} · {facts}");
    let lines = if one_line.chars().count() <= width { vec![one_line] } else { vec![id, facts] };
    for line in lines {
        if color {
            let _ = writeln!(out, "{ANSI_BOLD}{line}{ANSI_RESET}");
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
}

/// Pads or truncates `text` to exactly `width` characters, marking a cut with `…`.
fn fit(text: &str, width: usize) -> String {
    let len = text.chars().count();
    if len <= width {
        format!("{text:width$}")
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

fn push_repeated(out: &mut String, c: char, n: usize) {
    out.extend(std::iter::repeat_n(c, n));
}

/// Span indexes with their depth, depth first, roots and siblings by start time (input order on ties).
/// Roots are spans without a parent in `trace`; spans caught in a parent cycle (bad input) follow at the
/// end, so every span gets exactly one row.
fn tree_order(trace: &[SpanRecord]) -> Vec<(usize, usize)> {
    let parents = in_trace_parents(trace);
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); trace.len()];
    let mut roots = Vec::new();
    for (i, parent) in parents.iter().enumerate() {
        match *parent {
            Some(p) => children[p].push(i),
            None => roots.push(i),
        }
    }
    let by_start = |a: &usize, b: &usize| trace[*a].start.cmp(&trace[*b].start);
    roots.sort_by(by_start);
    for list in &mut children {
        list.sort_by(by_start);
    }

    let mut rows = Vec::with_capacity(trace.len());
    let mut visited = vec![false; trace.len()];
    let mut stack = Vec::new();
    for start in roots.into_iter().chain(0..trace.len()) {
        if visited[start] {
            continue;
        }
        stack.push((start, 0));
        while let Some((i, depth)) = stack.pop() {
            if std::mem::replace(&mut visited[i], true) {
                continue;
            }
            rows.push((i, depth));
            stack.extend(children[i].iter().rev().map(|&c| (c, depth + 1)));
        }
    }
    rows
}

#[cfg(test)]
mod tests;
