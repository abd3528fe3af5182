//! Tracing for Rust services: JSON logs with correlation and redaction, a span store with critical paths,
//! span-derived metrics and OpenTelemetry (OTLP) export, set up with one builder call.

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
