//! Tracing for Rust services, built on [`tracing`]: JSON logs with correlation and redaction, a bounded
//! store of recent traces with critical paths, span-derived metrics and OpenTelemetry (OTLP) export, set up
//! with one builder call.
//!
//! # Concepts
//!
//! - The **span layer** ([`SpanLayer`]) gives every span W3C ids (a 16-byte trace id shared by the whole
//!   trace, an 8-byte span id), keeps its fields (redacted) and its events, and when the span closes hands
//!   a [`SpanRecord`] to the sinks: the [`SpanStore`], [span metrics](SpanMetricsConfig) and the OTLP
//!   exporter. One id source serves logs, the store and export, so a trace id found in a log line finds
//!   the trace in `/api/v1/traces` and in the collector.
//! - The **log layer** ([`fmt::LogLayer`]) writes one line per event, JSON or text, with the event's fields,
//!   the fields of every enclosing span (inner spans win; the event's own fields win over both), and
//!   `trace_id`/`span_id`. Messages and text values go through a [`Redactor`] first.
//! - A [`Correlation`] runs work inside a span carrying `workflow_id`, `user_id`, ... and a generated
//!   `correlation_id`, so every line inside carries them.
//! - [`propagation`] reads and writes W3C `traceparent`/`tracestate` headers.
//! - OTLP export uses OpenTelemetry's own exporter and batch processor; the standard `OTEL_*` environment
//!   variables work, and setting `OTEL_EXPORTER_OTLP_ENDPOINT` is enough to turn it on. A slow or dead
//!   collector never blocks the application: the queue is bounded and losses are counted in
//!   `sightline_trace_export_dropped_total`, with one warning.
//!
//! # Usage
//!
//! ```
//! use sightline_trace::{Correlation, TraceQuery};
//!
//! # fn main() -> Result<(), sightline_trace::TraceError> {
//! // In `main`, call `.install()` instead of `.build()` to make it the global subscriber.
//! let (dispatch, guard) = sightline_trace::builder()
//!     .with_service_name("checkout")
//!     .with_log_filter("info")?
//!     .build()?;
//! tracing::dispatcher::with_default(&dispatch, || {
//!     Correlation::new().with("user_id", "u-7").in_scope(|| {
//!         let span = tracing::info_span!("charge", order_id = 42);
//!         span.in_scope(|| tracing::info!(card = "4111 1111 1111 1111", "charged"));
//!         // {"timestamp":"...","level":"INFO","target":"...","message":"charged","card":"[REDACTED:card]",
//!         //  "order_id":42,"user_id":"u-7","correlation_id":"...","trace_id":"...","span_id":"..."}
//!     });
//! });
//! let store = guard.store().expect("the store is on by default");
//! let found = store.query(&TraceQuery::default().with_name("charge"));
//! assert_eq!(found.len(), 1);
//! # Ok(()) }
//! ```
//!
//! # Why not `tracing-opentelemetry` in the hot path
//!
//! `tracing-opentelemetry` builds an SDK span for every `tracing` span and keeps its own ids, which the log
//! layer and the store would have to read back. Here the span layer keeps ids and fields itself and
//! converts a finished span into the SDK's `SpanData` only when it is sampled for export, which keeps a
//! span's cost within the budget when export is off (see `docs/benchmarks.md`, which measures both).
//!
//! # Features
//!
//! - `otlp-http` (default): OTLP over HTTP/protobuf. HTTPS collectors need reqwest's TLS, which the
//!   application chooses (the `sightline` server enables rustls).
//! - `otlp-grpc` (default): OTLP over gRPC (tonic), on a small runtime of its own.

mod builder;
pub mod context;
pub mod export;
pub mod fmt;
mod layer;
pub mod metrics;
pub mod propagation;
pub mod record;

pub use builder::{
    Builder, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_STORE_CAPACITY, FileOutput, LogOutput, Rotation, TraceError,
    TraceGuard, TraceReader, builder,
};
pub use context::Correlation;
pub use export::{OtlpConfig, Protocol};
pub use fmt::LogFormat;
pub use layer::{SpanLayer, current_trace_id, set_span_field, span_ids};
pub use metrics::SpanMetricsConfig;
pub use record::{Field, FieldValue, IdParseError, SpanEvent, SpanId, SpanRecord, SpanStatus, TraceId};
pub use sightline_core::redact::Redactor;

pub mod critical_path;
pub mod gantt;
pub mod store;

pub use critical_path::{CriticalSegment, critical_path, critical_span_ids, self_time};
pub use gantt::{format_duration, render_gantt};
pub use store::{SpanStore, Trace, TraceQuery, TraceSummary};
