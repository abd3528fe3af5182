//! The log layer: one line per event, as JSON or as text for terminals, carrying the event's fields, the
//! fields of every enclosing span, and the `trace_id` and `span_id` the span layer assigned. Messages and
//! text values are redacted before they are written.
//!
//! Written by hand rather than with `tracing-subscriber`'s `fmt` layer because redaction has to see every
//! value before it is written, span fields must come from the span layer's (already redacted) state, and
//! the JSON must be flat (`workflow_id` at the top level of every line inside the span) with no duplicate
//! keys. It formats into a reused per-thread buffer and writes each line with one call.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::SystemTime;

use sightline_core::redact::Redactor;
use tracing::field::{Field as TracingField, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::layer::SpanState;
use crate::record::FieldValue;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// `timestamp LEVEL target: message key=value ...`, coloured when `ansi` is on.
    Text {
        /// Whether to colour levels with ANSI escapes.
        ansi: bool,
    },
}

/// Keys every JSON line has; a field with one of these names is written as `field.<name>`.
const RESERVED: [&str; 6] = ["timestamp", "level", "target", "message", "trace_id", "span_id"];

/// The clock for timestamps; tests fix it.
pub type Clock = fn() -> SystemTime;

/// The `tracing` layer that writes log lines. Built by [`crate::Builder`]; it needs the span layer below
/// it for span fields and ids.
pub struct LogLayer<W> {
    writer: W,
    format: LogFormat,
    redactor: Redactor,
    clock: Clock,
}

impl<W> fmt::Debug for LogLayer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLayer").field("format", &self.format).finish_non_exhaustive()
    }
}

impl<W> LogLayer<W>
where
    W: for<'a> MakeWriter<'a> + 'static,
{
    /// A layer writing to `writer` in `format`, redacting with `redactor`.
    pub fn new(writer: W, format: LogFormat, redactor: Redactor) -> Self {
        Self { writer, format, redactor, clock: SystemTime::now }
    }

    /// Replaces the clock (for tests with fixed timestamps).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

#[derive(Default)]
struct Buffers {
    line: String,
    scratch: String,
}

impl<S, W> tracing_subscriber::Layer<S> for LogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // A re-entrant event (logged while formatting) gets fresh buffers instead of a panic.
        let mut fresh = None;
        BUFFERS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buffers) => self.write_event(&mut buffers, event, &ctx),
            Err(_) => self.write_event(fresh.get_or_insert_with(Buffers::default), event, &ctx),
        });
    }
}

impl<W> LogLayer<W>
where
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn write_event<S>(&self, buffers: &mut Buffers, event: &Event<'_>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Buffers { line, scratch } = buffers;
        line.clear();
        let metadata = event.metadata();
        let time = (self.clock)();
        let scope = ctx.event_scope(event);
        match self.format {
            LogFormat::Json => {
                line.push_str("{\"timestamp\":\"");
                let _ = write!(line, "{}", humantime::format_rfc3339_micros(time));
                line.push_str("\",\"level\":\"");
                line.push_str(metadata.level().as_str());
                line.push_str("\",\"target\":");
                json_string(line, metadata.target());
                // Names already written: event fields win over span fields, inner spans over outer ones.
                let mut seen: Vec<Cow<'static, str>> = Vec::with_capacity(8);
                let mut visitor =
                    JsonVisitor { line, scratch, redactor: &self.redactor, seen: &mut seen, message: false };
                event.record(&mut visitor);
                if !visitor.message {
                    visitor.line.push_str(",\"message\":\"\"");
                }
                let mut ids = None;
                if let Some(scope) = scope {
                    for span in scope {
                        let extensions = span.extensions();
                        let Some(state) = extensions.get::<SpanState>() else { continue };
                        if ids.is_none() {
                            ids = Some((state.trace_id, state.span_id));
                        }
                        for (name, value) in &state.fields {
                            if seen.iter().any(|s| s == name) || RESERVED.contains(&name.as_ref()) {
                                continue;
                            }
                            line.push(',');
                            json_string(line, name);
                            line.push(':');
                            json_value(line, value);
                            // Callsite names are `'static`: cloning the `Cow` copies a pointer.
                            seen.push(name.clone());
                        }
                    }
                }
                if let Some((trace_id, span_id)) = ids {
                    let _ = write!(line, ",\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"");
                }
                line.push_str("}\n");
            }
            LogFormat::Text { ansi } => {
                let _ = write!(line, "{} ", humantime::format_rfc3339_micros(time));
                let level = metadata.level();
                if ansi {
                    let _ = write!(line, "{}{:>5}\x1b[0m ", level_colour(*level), level.as_str());
                } else {
                    let _ = write!(line, "{:>5} ", level.as_str());
                }
                line.push_str(metadata.target());
                line.push_str(": ");
                let mut visitor = TextVisitor { line, scratch, redactor: &self.redactor, first: true };
                event.record(&mut visitor);
                let mut ids = None;
                if let Some(scope) = scope {
                    for span in scope {
                        let extensions = span.extensions();
                        let Some(state) = extensions.get::<SpanState>() else { continue };
                        if ids.is_none() {
                            ids = Some((state.trace_id, state.span_id));
                        }
                        for (name, value) in &state.fields {
                            let _ = write!(line, " {name}={value}");
                        }
                    }
                }
                if let Some((trace_id, _)) = ids {
                    let _ = write!(line, " trace_id={trace_id}");
                }
                line.push('\n');
            }
        }
        let mut writer = self.writer.make_writer_for(metadata);
        let _ = writer.write_all(line.as_bytes());
        // Keep a burst's huge line from pinning memory for the thread's lifetime.
        if line.capacity() > 64 * 1024 {
            *line = String::new();
        }
    }
}

fn level_colour(level: Level) -> &'static str {
    match level {
        Level::ERROR => "\x1b[31m",
        Level::WARN => "\x1b[33m",
        Level::INFO => "\x1b[32m",
        Level::DEBUG => "\x1b[34m",
        Level::TRACE => "\x1b[35m",
    }
}

struct JsonVisitor<'a> {
    line: &'a mut String,
    scratch: &'a mut String,
    redactor: &'a Redactor,
    seen: &'a mut Vec<Cow<'static, str>>,
    message: bool,
}

impl JsonVisitor<'_> {
    fn key(&mut self, name: &'static str) {
        self.line.push(',');
        if name == "message" {
            self.message = true;
            self.line.push_str("\"message\"");
        } else if RESERVED.contains(&name) {
            self.line.push_str("\"field.");
            self.line.push_str(name);
            self.line.push('"');
        } else {
            json_string(self.line, name);
            self.seen.push(Cow::Borrowed(name));
        }
        self.line.push(':');
    }

    fn text(&mut self, name: &'static str, value: &str) {
        self.key(name);
        let redacted = self.redactor.redact_field(name, value);
        json_string(self.line, &redacted);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_bool(&mut self, field: &TracingField, value: bool) {
        if skip(field) {
            return;
        }
        self.key(field.name());
        self.line.push_str(if value { "true" } else { "false" });
    }

    fn record_i64(&mut self, field: &TracingField, value: i64) {
        if skip(field) {
            return;
        }
        self.key(field.name());
        self.line.push_str(itoa::Buffer::new().format(value));
    }

    fn record_u64(&mut self, field: &TracingField, value: u64) {
        if skip(field) {
            return;
        }
        self.key(field.name());
        self.line.push_str(itoa::Buffer::new().format(value));
    }

    fn record_f64(&mut self, field: &TracingField, value: f64) {
        if skip(field) {
            return;
        }
        self.key(field.name());
        json_f64(self.line, value);
    }

    fn record_str(&mut self, field: &TracingField, value: &str) {
        if skip(field) {
            return;
        }
        self.text(field.name(), value);
    }

    fn record_error(&mut self, field: &TracingField, value: &(dyn std::error::Error + 'static)) {
        if skip(field) {
            return;
        }
        self.scratch.clear();
        let _ = write!(self.scratch, "{value}");
        let text = std::mem::take(self.scratch);
        self.text(field.name(), &text);
        *self.scratch = text;
    }

    fn record_debug(&mut self, field: &TracingField, value: &dyn fmt::Debug) {
        if skip(field) {
            return;
        }
        self.scratch.clear();
        let _ = write!(self.scratch, "{value:?}");
        let text = std::mem::take(self.scratch);
        self.text(field.name(), &text);
        *self.scratch = text;
    }
}

/// Fields that `tracing-log` adds to events bridged from the `log` crate.
fn skip(field: &TracingField) -> bool {
    field.name().starts_with("log.")
}

struct TextVisitor<'a> {
    line: &'a mut String,
    scratch: &'a mut String,
    redactor: &'a Redactor,
    first: bool,
}

impl TextVisitor<'_> {
    fn text(&mut self, name: &'static str, value: &str) {
        let redacted = self.redactor.redact_field(name, value);
        if name == "message" {
            self.line.push_str(&redacted);
        } else {
            let _ = write!(self.line, " {name}={redacted}");
        }
        self.first = false;
    }
}

impl Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &TracingField, value: &str) {
        if !skip(field) {
            self.text(field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &TracingField, value: &dyn fmt::Debug) {
        if skip(field) {
            return;
        }
        self.scratch.clear();
        let _ = write!(self.scratch, "{value:?}");
        let text = std::mem::take(self.scratch);
        self.text(field.name(), &text);
        *self.scratch = text;
    }
}

/// Writes `s` as a JSON string literal.
pub(crate) fn json_string(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn json_f64(out: &mut String, value: f64) {
    if value.is_finite() {
        out.push_str(ryu::Buffer::new().format_finite(value));
    } else {
        // JSON has no NaN or infinity; write them as strings rather than produce an invalid line.
        out.push('"');
        out.push_str(if value.is_nan() {
            "NaN"
        } else if value > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        });
        out.push('"');
    }
}

fn json_value(out: &mut String, value: &FieldValue) {
    match value {
        FieldValue::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
        FieldValue::I64(v) => out.push_str(itoa::Buffer::new().format(*v)),
        FieldValue::U64(v) => out.push_str(itoa::Buffer::new().format(*v)),
        FieldValue::F64(v) => json_f64(out, *v),
        FieldValue::Str(v) => json_string(out, v),
    }
}
