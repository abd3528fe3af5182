//! The span layer: gives every span W3C ids, keeps its fields (redacted), its events and its status, and
//! hands each finished span to the sinks (store, span metrics, OTLP export).
//!
//! The log layer reads the same per-span state to put span fields, `trace_id` and `span_id` on log lines,
//! so one id source serves logs, the store and the exporter.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use opentelemetry_sdk::trace::IdGenerator;
use sightline_core::redact::Redactor;
use tracing::field::{Field as TracingField, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::record::{Field, FieldValue, SpanEvent, SpanId, SpanRecord, SpanStatus, TraceId};

/// Events kept per span; later ones are counted in [`SpanRecord::dropped_events`].
pub(crate) const MAX_EVENTS_PER_SPAN: usize = 128;
/// Fields kept per span; later ones are dropped (a span is not a place for unbounded data).
pub(crate) const MAX_FIELDS_PER_SPAN: usize = 128;
/// Text kept per span field or event field, in bytes; longer values are cut (log lines keep them whole).
/// With the span and event bounds, this bounds the store's memory per span.
pub(crate) const MAX_VALUE_BYTES: usize = 4096;

/// Cuts `text` to [`MAX_VALUE_BYTES`] at a character boundary, marking the cut.
fn bounded(mut text: String) -> String {
    if text.len() > MAX_VALUE_BYTES {
        let mut end = MAX_VALUE_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// Something that receives finished spans.
pub(crate) trait Sink: Send + Sync + fmt::Debug {
    /// Called once per finished span, on the thread that closed it. Must not block.
    fn on_end(&self, span: &SpanRecord, sampled: bool);
}

/// Decides whether a new trace is exported; children inherit their parent's decision.
pub(crate) trait RootSampler: Send + Sync + fmt::Debug {
    fn sample_root(&self, trace_id: TraceId, name: &str) -> bool;
    fn sample_remote(&self, trace_id: TraceId, parent: SpanId, parent_sampled: bool, name: &str) -> bool;
}

/// The per-span state, kept in the span's extensions.
#[derive(Debug)]
pub(crate) struct SpanState {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent_span_id: Option<SpanId>,
    pub(crate) parent_is_remote: bool,
    pub(crate) sampled: bool,
    /// The caller's `tracestate`, passed on to callees.
    pub(crate) trace_state: Option<Arc<str>>,
    pub(crate) name: Cow<'static, str>,
    pub(crate) start: SystemTime,
    pub(crate) started: Instant,
    pub(crate) fields: Vec<Field>,
    pub(crate) status: SpanStatus,
    pub(crate) error: Option<String>,
    pub(crate) events: Vec<SpanEvent>,
    pub(crate) dropped_events: u32,
}

impl SpanState {
    pub(crate) fn push_field(&mut self, name: Cow<'static, str>, value: FieldValue) {
        match name.as_ref() {
            "otel.name" => {
                self.name = Cow::Owned(match value {
                    FieldValue::Str(text) => text,
                    other => other.to_string(),
                });
                return;
            }
            "otel.status_code" => {
                let code = value.to_string();
                if code.eq_ignore_ascii_case("error") {
                    self.status = SpanStatus::Error;
                } else if code.eq_ignore_ascii_case("ok") {
                    self.status = SpanStatus::Ok;
                }
                return;
            }
            "otel.status_description" | "otel.status_message" => {
                self.error = Some(value.to_string());
                return;
            }
            "error" | "exception.message" => {
                self.status = SpanStatus::Error;
                self.error = Some(value.to_string());
            }
            _ => {}
        }
        if let Some(slot) = self.fields.iter_mut().find(|(k, _)| *k == name) {
            slot.1 = value;
        } else if self.fields.len() < MAX_FIELDS_PER_SPAN {
            self.fields.push((name, value));
        }
    }
}

/// Shared configuration of the span layer.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) service: Arc<str>,
    pub(crate) redactor: Redactor,
    pub(crate) ids: Box<dyn IdGenerator>,
    pub(crate) sampler: Option<Box<dyn RootSampler>>,
    pub(crate) sinks: Vec<Box<dyn Sink>>,
    /// The store takes each finished span last, by value.
    pub(crate) store: Option<crate::store::SpanStore>,
    /// Whether events are kept on spans (only worth it when something reads finished spans).
    pub(crate) keep_events: bool,
}

/// The `tracing` layer that tracks spans. Built by [`crate::Builder`].
#[derive(Debug, Clone)]
pub struct SpanLayer {
    pub(crate) shared: Arc<Shared>,
}

impl SpanLayer {
    fn new_ids(&self) -> (TraceId, SpanId) {
        let trace = TraceId(u128::from_be_bytes(self.shared.ids.new_trace_id().to_bytes()));
        (trace, self.new_span_id())
    }

    fn new_span_id(&self) -> SpanId {
        SpanId(u64::from_be_bytes(self.shared.ids.new_span_id().to_bytes()))
    }
}

impl<S> tracing_subscriber::Layer<S> for SpanLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parent = span.parent().and_then(|parent| {
            parent
                .extensions()
                .get::<SpanState>()
                .map(|p| (p.trace_id, p.span_id, p.sampled, p.trace_state.clone()))
        });
        let name: &'static str = attrs.metadata().name();
        let (trace_id, span_id, parent_span_id, sampled, trace_state) = match parent {
            Some((trace_id, parent_id, sampled, state)) => {
                (trace_id, self.new_span_id(), Some(parent_id), sampled, state)
            }
            None => {
                let (trace_id, span_id) = self.new_ids();
                let sampled = self.shared.sampler.as_ref().is_none_or(|s| s.sample_root(trace_id, name));
                (trace_id, span_id, None, sampled, None)
            }
        };
        let mut state = SpanState {
            trace_id,
            span_id,
            parent_span_id,
            parent_is_remote: false,
            sampled,
            trace_state,
            name: Cow::Borrowed(name),
            start: SystemTime::now(),
            started: Instant::now(),
            fields: Vec::with_capacity(attrs.metadata().fields().len().min(MAX_FIELDS_PER_SPAN)),
            status: SpanStatus::Unset,
            error: None,
            events: Vec::new(),
            dropped_events: 0,
        };
        attrs.record(&mut FieldCollector { state: &mut state, redactor: &self.shared.redactor });
        span.extensions_mut().insert(state);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(state) = extensions.get_mut::<SpanState>() {
            values.record(&mut FieldCollector { state, redactor: &self.shared.redactor });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if !self.shared.keep_events && level != Level::ERROR {
            return;
        }
        let Some(span) = ctx.event_span(event) else { return };
        let mut extensions = span.extensions_mut();
        let Some(state) = extensions.get_mut::<SpanState>() else { return };
        // Past the per-span bound, only an error (which sets the status) is worth reading.
        if level != Level::ERROR && state.events.len() >= MAX_EVENTS_PER_SPAN {
            state.dropped_events = state.dropped_events.saturating_add(1);
            return;
        }
        let mut collected =
            EventCollector { redactor: &self.shared.redactor, message: String::new(), fields: Vec::new() };
        event.record(&mut collected);
        if level == Level::ERROR {
            state.status = SpanStatus::Error;
            if state.error.is_none() {
                state.error = Some(collected.message.clone());
            }
        }
        if !self.shared.keep_events {
            return;
        }
        if state.events.len() >= MAX_EVENTS_PER_SPAN {
            state.dropped_events = state.dropped_events.saturating_add(1);
            return;
        }
        state.events.push(SpanEvent {
            time: SystemTime::now(),
            level: level.as_str(),
            message: collected.message,
            fields: collected.fields,
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if self.shared.sinks.is_empty() && self.shared.store.is_none() {
            return;
        }
        let Some(span) = ctx.span(&id) else { return };
        let Some(state) = span.extensions_mut().remove::<SpanState>() else { return };
        let metadata = span.metadata();
        let record = SpanRecord {
            trace_id: state.trace_id,
            span_id: state.span_id,
            parent_span_id: state.parent_span_id,
            parent_is_remote: state.parent_is_remote,
            name: state.name,
            target: Cow::Borrowed(metadata.target()),
            service: self.shared.service.clone(),
            start: state.start,
            duration: state.started.elapsed(),
            fields: state.fields,
            status: state.status,
            error: state.error,
            events: state.events,
            dropped_events: state.dropped_events,
        };
        for sink in &self.shared.sinks {
            sink.on_end(&record, state.sampled);
        }
        if let Some(store) = &self.shared.store {
            store.insert(record);
        }
    }
}

/// Collects a span's fields into its state, redacting text.
struct FieldCollector<'a> {
    state: &'a mut SpanState,
    redactor: &'a Redactor,
}

impl Visit for FieldCollector<'_> {
    fn record_bool(&mut self, field: &TracingField, value: bool) {
        self.state.push_field(Cow::Borrowed(field.name()), FieldValue::Bool(value));
    }

    fn record_i64(&mut self, field: &TracingField, value: i64) {
        self.state.push_field(Cow::Borrowed(field.name()), FieldValue::I64(value));
    }

    fn record_u64(&mut self, field: &TracingField, value: u64) {
        self.state.push_field(Cow::Borrowed(field.name()), FieldValue::U64(value));
    }

    fn record_f64(&mut self, field: &TracingField, value: f64) {
        self.state.push_field(Cow::Borrowed(field.name()), FieldValue::F64(value));
    }

    fn record_str(&mut self, field: &TracingField, value: &str) {
        let value = bounded(self.redactor.redact_field(field.name(), value).into_owned());
        self.state.push_field(Cow::Borrowed(field.name()), FieldValue::Str(value));
    }

    fn record_error(&mut self, field: &TracingField, value: &(dyn std::error::Error + 'static)) {
        self.record_string(field, value.to_string());
    }

    fn record_debug(&mut self, field: &TracingField, value: &dyn fmt::Debug) {
        self.record_string(field, format!("{value:?}"));
    }
}

impl FieldCollector<'_> {
    /// Like `record_str` for text already owned: kept as it is unless redaction changes it.
    fn record_string(&mut self, field: &TracingField, value: String) {
        let redacted = match self.redactor.redact_field(field.name(), &value) {
            Cow::Borrowed(_) => None,
            Cow::Owned(redacted) => Some(redacted),
        };
        let value = redacted.unwrap_or(value);
        self.state.push_field(Cow::Borrowed(field.name()), FieldValue::Str(bounded(value)));
    }
}

/// Collects an event's message and fields for a span event.
struct EventCollector<'a> {
    redactor: &'a Redactor,
    message: String,
    fields: Vec<Field>,
}

impl Visit for EventCollector<'_> {
    fn record_bool(&mut self, field: &TracingField, value: bool) {
        self.fields.push((Cow::Borrowed(field.name()), FieldValue::Bool(value)));
    }

    fn record_i64(&mut self, field: &TracingField, value: i64) {
        self.fields.push((Cow::Borrowed(field.name()), FieldValue::I64(value)));
    }

    fn record_u64(&mut self, field: &TracingField, value: u64) {
        self.fields.push((Cow::Borrowed(field.name()), FieldValue::U64(value)));
    }

    fn record_f64(&mut self, field: &TracingField, value: f64) {
        self.fields.push((Cow::Borrowed(field.name()), FieldValue::F64(value)));
    }

    fn record_str(&mut self, field: &TracingField, value: &str) {
        let value = bounded(self.redactor.redact_field(field.name(), value).into_owned());
        if field.name() == "message" {
            self.message = value;
        } else if !field.name().starts_with("log.") {
            self.fields.push((Cow::Borrowed(field.name()), FieldValue::Str(value)));
        }
    }

    fn record_error(&mut self, field: &TracingField, value: &(dyn std::error::Error + 'static)) {
        self.record_str(field, &value.to_string());
    }

    fn record_debug(&mut self, field: &TracingField, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// Runs `f` on the state of `span`, when the current subscriber is built on `tracing_subscriber`'s
/// registry with a [`SpanLayer`]. Returns `None` otherwise, or when the span is disabled or closed.
pub(crate) fn with_span_state<R>(span: &tracing::Span, f: impl FnOnce(&mut SpanState) -> R) -> Option<R> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let span = registry.span(id)?;
        let mut extensions = span.extensions_mut();
        extensions.get_mut::<SpanState>().map(f)
    })
    .flatten()
}

/// The trace and span id of `span`, when it is tracked by a [`SpanLayer`].
pub fn span_ids(span: &tracing::Span) -> Option<(TraceId, SpanId)> {
    with_span_state(span, |state| (state.trace_id, state.span_id))
}

/// The trace id of the current span, for response headers and error messages.
pub fn current_trace_id() -> Option<TraceId> {
    span_ids(&tracing::Span::current()).map(|(trace, _)| trace)
}

/// Adds a field to `span` at run time, with a name not declared at its callsite. The value is redacted
/// like any other field when the span layer records it. Returns `false` when the span is not tracked.
pub fn set_span_field(span: &tracing::Span, name: impl Into<Cow<'static, str>>, value: FieldValue) -> bool {
    let name = name.into();
    span.with_subscriber(|(id, dispatch)| {
        let layer = dispatch.downcast_ref::<SpanLayer>()?;
        let value = match value {
            FieldValue::Str(text) => {
                FieldValue::Str(layer.shared.redactor.redact_field(&name, &text).into_owned())
            }
            other => other,
        };
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let span = registry.span(id)?;
        let mut extensions = span.extensions_mut();
        extensions.get_mut::<SpanState>()?.push_field(name, value);
        Some(())
    })
    .flatten()
    .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_at_a_character_boundary() {
        assert_eq!(bounded("short".into()), "short");
        let long = "é".repeat(MAX_VALUE_BYTES); // two bytes each
        let cut = bounded(long);
        assert!(cut.len() <= MAX_VALUE_BYTES + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }
}
