//! OpenTelemetry export: finished spans go to an OTLP endpoint (HTTP/protobuf or gRPC) through the SDK's
//! batch span processor, and to OTLP JSON for the query API.
//!
//! The SDK's [`BatchSpanProcessor`] already never blocks the application (a bounded queue that drops when
//! full), but it does not say how many spans it dropped. So a gate in front of it counts what is queued
//! (the wrapped exporter counts what leaves) and drops, counted in `sightline_trace_export_dropped_total`,
//! before the processor's queue could fill. Export failures drop their batch, counted the same way. Each
//! kind of loss logs one warning, not one per span.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::trace::{SpanContext, SpanKind, Status, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SamplingDecision, ShouldSample, SpanData, SpanEvents,
    SpanExporter, SpanLinks, SpanProcessor,
};
use sightline_core::Registry;

use crate::layer::{RootSampler, Sink};
use crate::record::{FieldValue, SpanId, SpanRecord, SpanStatus, TraceId};

/// `sightline_trace_export_dropped_total{reason}`: spans that were not exported, by `reason`
/// (`queue_full` or `export_failed`).
pub const EXPORT_DROPPED_METRIC: &str = "sightline_trace_export_dropped_total";

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (port 4317 by convention).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318 by convention); the specification's default.
    HttpProtobuf,
}

impl Protocol {
    /// Parses `OTEL_EXPORTER_OTLP_PROTOCOL` values: `grpc` or `http/protobuf`.
    pub fn parse(value: &str) -> Result<Self, ExportError> {
        match value.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            other => Err(ExportError::Protocol(other.to_owned())),
        }
    }

    /// `grpc` or `http/protobuf`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// Why OTLP export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// An unsupported `OTEL_EXPORTER_OTLP_PROTOCOL` or config value.
    #[error("unsupported OTLP protocol {0:?}: use `grpc` or `http/protobuf`")]
    Protocol(String),
    /// The protocol's cargo feature is off.
    #[error("OTLP over {0} is not compiled in: enable sightline-trace's `{1}` feature")]
    FeatureOff(&'static str, &'static str),
    /// The exporter refused its configuration (a bad endpoint, header or timeout).
    #[error(
        "could not build the OTLP exporter: {0}; check the endpoint (e.g. http://127.0.0.1:4318) and OTEL_EXPORTER_OTLP_* variables"
    )]
    Build(String),
    /// A sampler argument is out of range.
    #[error("invalid sampling ratio {0}: use a number from 0.0 to 1.0")]
    Ratio(f64),
    /// The runtime for gRPC could not start.
    #[error("could not start the OTLP export runtime: {0}")]
    Runtime(String),
}

/// Where and how to export spans. Unset fields fall back to the standard `OTEL_*` environment variables,
/// as every OpenTelemetry SDK reads them; values set here win over the environment.
#[derive(Debug, Clone, Default)]
pub struct OtlpConfig {
    /// The collector's base URL (`http://host:4318` for HTTP, `http://host:4317` for gRPC). For HTTP,
    /// `/v1/traces` is appended, as for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: Option<String>,
    /// The transport; otherwise `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, `OTEL_EXPORTER_OTLP_PROTOCOL`, then
    /// `http/protobuf`.
    pub protocol: Option<Protocol>,
    /// Extra request headers (for example an API key), added to `OTEL_EXPORTER_OTLP_HEADERS`.
    pub headers: Vec<(String, String)>,
    /// The export timeout; otherwise `OTEL_EXPORTER_OTLP_TIMEOUT`, then 10 s.
    pub timeout: Option<Duration>,
    /// The parent-based sampling ratio for new traces; otherwise `OTEL_TRACES_SAMPLER(_ARG)`, then all.
    pub sampling_ratio: Option<f64>,
}

impl OtlpConfig {
    /// Whether an endpoint is configured here or in the environment, which turns export on.
    pub fn endpoint_configured(&self) -> bool {
        self.endpoint.is_some()
            || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            || env_set("OTEL_EXPORTER_OTLP_ENDPOINT")
    }

    /// The protocol in effect.
    pub fn effective_protocol(&self) -> Result<Protocol, ExportError> {
        if let Some(protocol) = self.protocol {
            return Ok(protocol);
        }
        match std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        {
            Ok(value) if !value.trim().is_empty() => Protocol::parse(&value),
            _ => Ok(Protocol::HttpProtobuf),
        }
    }
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// The sampler: OpenTelemetry's, from the configured ratio or the `OTEL_TRACES_SAMPLER` variables.
#[derive(Debug)]
pub(crate) struct OtelSampler(Box<dyn ShouldSample>);

impl OtelSampler {
    pub(crate) fn new(ratio: Option<f64>) -> Result<Self, ExportError> {
        use opentelemetry_sdk::trace::Sampler;
        match ratio {
            Some(r) if !(0.0..=1.0).contains(&r) || r.is_nan() => Err(ExportError::Ratio(r)),
            Some(r) => Ok(Self(Box::new(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))))),
            // The SDK's default config reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG.
            None => Ok(Self(opentelemetry_sdk::trace::Config::default().sampler)),
        }
    }

    fn decide(&self, parent: Option<&opentelemetry::Context>, trace_id: TraceId, name: &str) -> bool {
        let result = self.0.should_sample(
            parent,
            opentelemetry::trace::TraceId::from_bytes(trace_id.0.to_be_bytes()),
            name,
            &SpanKind::Internal,
            &[],
            &[],
        );
        matches!(result.decision, SamplingDecision::RecordAndSample)
    }
}

impl RootSampler for OtelSampler {
    fn sample_root(&self, trace_id: TraceId, name: &str) -> bool {
        self.decide(None, trace_id, name)
    }

    fn sample_remote(&self, trace_id: TraceId, parent: SpanId, parent_sampled: bool, name: &str) -> bool {
        use opentelemetry::trace::TraceContextExt;
        let context = SpanContext::new(
            opentelemetry::trace::TraceId::from_bytes(trace_id.0.to_be_bytes()),
            opentelemetry::trace::SpanId::from_bytes(parent.0.to_be_bytes()),
            if parent_sampled { TraceFlags::SAMPLED } else { TraceFlags::default() },
            true,
            TraceState::default(),
        );
        let cx = opentelemetry::Context::new().with_remote_span_context(context);
        self.decide(Some(&cx), trace_id, name)
    }
}

/// Counts and reports lost spans: a metric when a registry is given, and one warning per kind of loss.
#[derive(Debug)]
pub(crate) struct Losses {
    total: AtomicU64,
    queue_full: Option<metrics::Counter>,
    export_failed: Option<metrics::Counter>,
    warned_queue_full: AtomicBool,
    warned_export_failed: AtomicBool,
}

impl Losses {
    fn new(registry: Option<&Registry>) -> Self {
        let counter = |reason: &str| {
            registry.and_then(|r| r.counter(EXPORT_DROPPED_METRIC, &[("reason", reason)]).ok())
        };
        if let Some(registry) = registry {
            let _ = registry.describe(&sightline_core::Descriptor::counter(
                EXPORT_DROPPED_METRIC,
                "Spans not exported over OTLP, by reason (queue_full, export_failed).",
            ));
        }
        Self {
            total: AtomicU64::new(0),
            queue_full: counter("queue_full"),
            export_failed: counter("export_failed"),
            warned_queue_full: AtomicBool::new(false),
            warned_export_failed: AtomicBool::new(false),
        }
    }

    /// Spans lost so far.
    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    fn queue_full(&self) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = &self.queue_full {
            c.increment(1);
        }
        if !self.warned_queue_full.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "sightline_trace::export",
                metric = EXPORT_DROPPED_METRIC,
                "OTLP export queue is full, dropping spans; is the collector reachable? (further drops are only counted)"
            );
        }
    }

    fn export_failed(&self, spans: usize, error: &dyn fmt::Display) {
        self.total.fetch_add(spans as u64, Ordering::Relaxed);
        if let Some(c) = &self.export_failed {
            c.increment(spans as u64);
        }
        if !self.warned_export_failed.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "sightline_trace::export",
                error = %error,
                spans,
                metric = EXPORT_DROPPED_METRIC,
                "OTLP export failed, dropping the batch (further failures are only counted)"
            );
        }
    }
}

/// The OTLP exporter, with queue accounting, and for gRPC the tokio runtime its channel lives on.
struct Counted {
    inner: Arc<opentelemetry_otlp::SpanExporter>,
    queued: Arc<AtomicUsize>,
    losses: Arc<Losses>,
    #[cfg(feature = "otlp-grpc")]
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counted").field("queued", &self.queued).finish_non_exhaustive()
    }
}

impl SpanExporter for Counted {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        self.queued.fetch_sub(spans.min(self.queued.load(Ordering::Relaxed)), Ordering::Relaxed);
        let inner = self.inner.clone();
        #[cfg(feature = "otlp-grpc")]
        let result = match &self.runtime {
            // gRPC: run on the runtime that owns the channel.
            Some(runtime) => match runtime.spawn(async move { inner.export(batch).await }).await {
                Ok(result) => result,
                Err(e) => Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(e.to_string())),
            },
            // HTTP: the blocking client runs right here, on the processor's own thread.
            None => inner.export(batch).await,
        };
        #[cfg(not(feature = "otlp-grpc"))]
        let result = inner.export(batch).await;
        if let Err(error) = &result {
            self.losses.export_failed(spans, error);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

/// The sink that exports sampled spans.
pub(crate) struct ExportSink {
    processor: BatchSpanProcessor,
    queued: Arc<AtomicUsize>,
    max_queue: usize,
    pub(crate) losses: Arc<Losses>,
    scope: InstrumentationScope,
}

impl fmt::Debug for ExportSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportSink").field("max_queue", &self.max_queue).finish_non_exhaustive()
    }
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).filter(|v| *v > 0)
}

impl ExportSink {
    pub(crate) fn new(
        config: &OtlpConfig,
        resource: &Resource,
        registry: Option<&Registry>,
    ) -> Result<Self, ExportError> {
        let protocol = config.effective_protocol()?;
        let losses = Arc::new(Losses::new(registry));
        let queued = Arc::new(AtomicUsize::new(0));
        // OTEL_BSP_MAX_QUEUE_SIZE as the SDK reads it, so the gate and the processor agree.
        let max_queue = env_usize("OTEL_BSP_MAX_QUEUE_SIZE").unwrap_or(2048);
        let mut exporter = build_exporter(config, protocol, queued.clone(), losses.clone())?;
        exporter.set_resource(resource);
        // BatchConfigBuilder::default() reads the other OTEL_BSP_* variables (delay, batch size, timeout).
        let batch = BatchConfigBuilder::default().with_max_queue_size(max_queue).build();
        let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
        let scope =
            InstrumentationScope::builder("sightline-trace").with_version(env!("CARGO_PKG_VERSION")).build();
        Ok(Self { processor, queued, max_queue, losses, scope })
    }

    /// Exports what is queued and stops the processor, waiting at most `timeout`.
    pub(crate) fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        self.processor.shutdown_with_timeout(timeout)
    }

    /// Exports what is queued now.
    pub(crate) fn flush(&self) -> OTelSdkResult {
        self.processor.force_flush()
    }
}

impl Sink for ExportSink {
    fn on_end(&self, span: &SpanRecord, sampled: bool) {
        if !sampled {
            return;
        }
        if self.queued.fetch_add(1, Ordering::Relaxed) >= self.max_queue {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            self.losses.queue_full();
            return;
        }
        self.processor.on_end(to_span_data(span, &self.scope));
    }
}

fn build_exporter(
    config: &OtlpConfig,
    protocol: Protocol,
    queued: Arc<AtomicUsize>,
    losses: Arc<Losses>,
) -> Result<Counted, ExportError> {
    // Built on a plain thread: the blocking HTTP client must not be created inside an async runtime, and
    // the gRPC channel needs the runtime made for it.
    let config = config.clone();
    let built = std::thread::spawn(move || -> Result<Counted, ExportError> {
        match protocol {
            Protocol::HttpProtobuf => build_http(&config).map(|inner| Counted {
                inner: Arc::new(inner),
                queued,
                losses,
                #[cfg(feature = "otlp-grpc")]
                runtime: None,
            }),
            Protocol::Grpc => build_grpc(&config, queued, losses),
        }
    })
    .join()
    .map_err(|_| ExportError::Build("the exporter panicked while being built".into()))??;
    Ok(built)
}

#[cfg(feature = "otlp-http")]
fn build_http(config: &OtlpConfig) -> Result<opentelemetry_otlp::SpanExporter, ExportError> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')));
    }
    if let Some(timeout) = config.timeout {
        builder = builder.with_timeout(timeout);
    }
    if !config.headers.is_empty() {
        builder = builder.with_headers(config.headers.iter().cloned().collect::<HashMap<_, _>>());
    }
    builder.build().map_err(|e| ExportError::Build(e.to_string()))
}

#[cfg(not(feature = "otlp-http"))]
fn build_http(_: &OtlpConfig) -> Result<opentelemetry_otlp::SpanExporter, ExportError> {
    Err(ExportError::FeatureOff("HTTP", "otlp-http"))
}

#[cfg(feature = "otlp-grpc")]
fn build_grpc(
    config: &OtlpConfig,
    queued: Arc<AtomicUsize>,
    losses: Arc<Losses>,
) -> Result<Counted, ExportError> {
    use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sightline-otlp")
        .enable_all()
        .build()
        .map_err(|e| ExportError::Runtime(e.to_string()))?;
    let inner = {
        let _entered = runtime.enter();
        let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        if let Some(timeout) = config.timeout {
            builder = builder.with_timeout(timeout);
        }
        if !config.headers.is_empty() {
            let mut metadata = tonic::metadata::MetadataMap::new();
            for (name, value) in &config.headers {
                let key = tonic::metadata::MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
                    .map_err(|_| ExportError::Build(format!("invalid header name {name:?}")))?;
                let value = value
                    .parse()
                    .map_err(|_| ExportError::Build(format!("invalid value for header {name:?}")))?;
                metadata.insert(key, value);
            }
            builder = builder.with_metadata(metadata);
        }
        builder.build().map_err(|e| ExportError::Build(e.to_string()))?
    };
    Ok(Counted { inner: Arc::new(inner), queued, losses, runtime: Some(runtime) })
}

#[cfg(not(feature = "otlp-grpc"))]
fn build_grpc(_: &OtlpConfig, _: Arc<AtomicUsize>, _: Arc<Losses>) -> Result<Counted, ExportError> {
    Err(ExportError::FeatureOff("gRPC", "otlp-grpc"))
}

/// Converts a finished span into the SDK's export form.
pub(crate) fn to_span_data(span: &SpanRecord, scope: &InstrumentationScope) -> SpanData {
    let mut kind = SpanKind::Internal;
    let mut attributes = Vec::with_capacity(span.fields.len() + 1);
    for (name, value) in &span.fields {
        if name == "otel.kind" {
            kind = parse_kind(&value.to_string());
            continue;
        }
        attributes.push(KeyValue::new(name.clone(), to_value(value)));
    }
    attributes.push(KeyValue::new("code.namespace", span.target.clone()));
    let mut events = SpanEvents::default();
    events.events = span
        .events
        .iter()
        .map(|event| {
            let mut attrs: Vec<KeyValue> = Vec::with_capacity(event.fields.len() + 1);
            attrs.push(KeyValue::new("level", event.level));
            attrs.extend(event.fields.iter().map(|(k, v)| KeyValue::new(k.clone(), to_value(v))));
            opentelemetry::trace::Event::new(event.message.clone(), event.time, attrs, 0)
        })
        .collect();
    events.dropped_count = span.dropped_events;
    SpanData {
        span_context: SpanContext::new(
            opentelemetry::trace::TraceId::from_bytes(span.trace_id.0.to_be_bytes()),
            opentelemetry::trace::SpanId::from_bytes(span.span_id.0.to_be_bytes()),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: span.parent_span_id.map_or(opentelemetry::trace::SpanId::INVALID, |p| {
            opentelemetry::trace::SpanId::from_bytes(p.0.to_be_bytes())
        }),
        parent_span_is_remote: span.parent_is_remote,
        span_kind: kind,
        name: span.name.clone(),
        start_time: span.start,
        end_time: span.end(),
        attributes,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status: match span.status {
            SpanStatus::Unset => Status::Unset,
            SpanStatus::Ok => Status::Ok,
            SpanStatus::Error => Status::error(span.error.clone().unwrap_or_default()),
        },
        instrumentation_scope: scope.clone(),
    }
}

fn parse_kind(kind: &str) -> SpanKind {
    match kind.to_ascii_lowercase().as_str() {
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

fn to_value(value: &FieldValue) -> opentelemetry::Value {
    match value {
        FieldValue::Bool(v) => (*v).into(),
        FieldValue::I64(v) => (*v).into(),
        // OTLP has no unsigned integers; values past i64::MAX become text rather than wrap.
        FieldValue::U64(v) => i64::try_from(*v).map_or_else(|_| v.to_string().into(), Into::into),
        FieldValue::F64(v) => (*v).into(),
        FieldValue::Str(v) => Cow::<'static, str>::Owned(v.clone()).into(),
    }
}

/// A trace in the OTLP JSON shape (`{"resourceSpans": [...]}`, as an OTLP/HTTP JSON request body).
pub fn otlp_json(spans: &[SpanRecord], resource: &Resource) -> serde_json::Value {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    let scope =
        InstrumentationScope::builder("sightline-trace").with_version(env!("CARGO_PKG_VERSION")).build();
    let data = spans.iter().map(|s| to_span_data(s, &scope)).collect();
    let request = ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(
            data,
            &ResourceAttributesWithSchema::from(resource),
        ),
    };
    serde_json::to_value(&request).unwrap_or(serde_json::Value::Null)
}
