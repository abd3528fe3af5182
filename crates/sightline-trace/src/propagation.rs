//! W3C Trace Context: `traceparent` / `tracestate` extraction for incoming requests and injection into
//! outgoing ones, so one trace id links a caller's spans, this process's logs and its response headers.
//!
//! Parsing and formatting are OpenTelemetry's own [`TraceContextPropagator`]; this module connects it to
//! the span layer's ids.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;

use crate::layer::{SpanLayer, with_span_state};
use crate::record::{SpanId, TraceId};

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header name.
pub const TRACESTATE: &str = "tracestate";

/// The caller's span, from a valid `traceparent` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteParent {
    /// The caller's trace id, which this process's spans join.
    pub trace_id: TraceId,
    /// The caller's span id, the parent of the span that handles the request.
    pub span_id: SpanId,
    /// Whether the caller sampled the trace (the `sampled` flag).
    pub sampled: bool,
    /// The `tracestate` header, passed on unchanged; empty when absent.
    pub trace_state: String,
}

struct Headers<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
}

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent,
            TRACESTATE => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

/// Parses the two headers. A missing or malformed `traceparent` gives `None`: the request starts a new
/// trace, as the W3C recommendation says, rather than failing.
pub fn extract(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<RemoteParent> {
    traceparent?;
    let cx = TraceContextPropagator::new().extract(&Headers { traceparent, tracestate });
    let span = cx.span();
    let context = span.span_context();
    if !context.is_valid() {
        return None;
    }
    Some(RemoteParent {
        trace_id: TraceId(u128::from_be_bytes(context.trace_id().to_bytes())),
        span_id: SpanId(u64::from_be_bytes(context.span_id().to_bytes())),
        sampled: context.is_sampled(),
        trace_state: context.trace_state().header(),
    })
}

/// Makes `span` a child of the remote caller: it takes the caller's trace id and records the caller's
/// span as its parent. Call it right after creating the span, before entering it or creating children.
/// Returns `false` when the span is not tracked by a span layer.
pub fn set_parent(span: &tracing::Span, parent: &RemoteParent) -> bool {
    let sampled = span
        .with_subscriber(|(_, dispatch)| {
            dispatch.downcast_ref::<SpanLayer>().map(|layer| {
                layer.shared.sampler.as_ref().is_none_or(|s| {
                    s.sample_remote(parent.trace_id, parent.span_id, parent.sampled, "remote")
                })
            })
        })
        .flatten()
        .unwrap_or(parent.sampled);
    with_span_state(span, |state| {
        state.trace_id = parent.trace_id;
        state.parent_span_id = Some(parent.span_id);
        state.parent_is_remote = true;
        state.sampled = sampled;
        state.trace_state =
            if parent.trace_state.is_empty() { None } else { Some(parent.trace_state.as_str().into()) };
    })
    .is_some()
}

/// The headers that carry `span`'s context to a callee: `traceparent` and, when there is one,
/// `tracestate`. Empty when the span is not tracked.
pub fn inject(span: &tracing::Span) -> Vec<(&'static str, String)> {
    let Some(context) = with_span_state(span, |state| {
        let trace_state =
            state.trace_state.as_deref().and_then(|s| s.parse::<TraceState>().ok()).unwrap_or_default();
        SpanContext::new(
            opentelemetry::trace::TraceId::from_bytes(state.trace_id.0.to_be_bytes()),
            opentelemetry::trace::SpanId::from_bytes(state.span_id.0.to_be_bytes()),
            if state.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() },
            false,
            trace_state,
        )
    }) else {
        return Vec::new();
    };
    let mut carrier = Carrier::default();
    let cx = opentelemetry::Context::new().with_remote_span_context(context);
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    let mut headers = Vec::with_capacity(2);
    if let Some(value) = carrier.0.remove(TRACEPARENT) {
        headers.push((TRACEPARENT, value));
    }
    if let Some(value) = carrier.0.remove(TRACESTATE).filter(|v| !v.is_empty()) {
        headers.push((TRACESTATE, value));
    }
    headers
}

/// `span`'s `traceparent` header value, for a response header that tells the caller the trace id.
/// Formatted directly (it is on every response's path); `inject` gives the same value.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    with_span_state(span, |state| {
        format!("00-{}-{}-{}", state.trace_id, state.span_id, if state.sampled { "01" } else { "00" })
    })
}

#[derive(Default)]
struct Carrier(HashMap<String, String>);

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}
