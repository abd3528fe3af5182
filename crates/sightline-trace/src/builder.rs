//! One builder that sets up logs, the span store, span metrics and OTLP export.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use sightline_core::Registry;
use sightline_core::redact::Redactor;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry as SpanRegistry};

use crate::export::{ExportError, ExportSink, OtelSampler, OtlpConfig};
use crate::fmt::{Clock, LogFormat, LogLayer};
use crate::layer::{RootSampler, Shared, Sink, SpanLayer};
use crate::metrics::{PatternError, SpanMetrics, SpanMetricsConfig};
use crate::store::SpanStore;

/// The default bound of the span store, in spans.
pub const DEFAULT_STORE_CAPACITY: usize = 10_000;

/// How long [`TraceGuard::shutdown`] waits for the last export by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where log lines go.
#[derive(Debug, Default)]
pub enum LogOutput {
    /// Standard output, written synchronously, line by line.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
    /// Files in a directory, rotated; written by a background thread so a slow disk never blocks the
    /// application (lines beyond its bounded queue are dropped).
    File(FileOutput),
    /// Any writer, for tests and custom sinks.
    Writer(BoxMakeWriter),
}

/// Rotating log files.
#[derive(Debug, Clone)]
pub struct FileOutput {
    /// The directory; created if missing.
    pub directory: PathBuf,
    /// The file name prefix: `<prefix>.<date>` (e.g. `sightline.log.2026-11-30`).
    pub prefix: String,
    /// When to start a new file.
    pub rotation: Rotation,
    /// How many files to keep; older ones are deleted. `None` keeps all.
    pub max_files: Option<usize>,
}

/// When log files rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Every minute (for tests).
    Minutely,
    /// Every hour.
    Hourly,
    /// Every day (UTC).
    Daily,
    /// Never: one file.
    Never,
}

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// A level filter does not parse.
    #[error(
        "invalid {what} filter {filter:?}: {reason}; use RUST_LOG syntax such as `info` or `info,my_crate=debug`"
    )]
    Filter {
        /// Which filter (`log` or `span`).
        what: &'static str,
        /// The filter as given.
        filter: String,
        /// What the parser said.
        reason: String,
    },
    /// A span-metrics pattern does not compile.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// OTLP export could not be set up.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The log directory could not be used.
    #[error("cannot write logs to {path}: {reason}; check that the directory exists and is writable")]
    LogFile {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Another global subscriber is installed already.
    #[error("a global tracing subscriber is already installed; call install() once, early in main")]
    AlreadyInstalled,
}

/// Sets up tracing for a service: log lines, the span store, span metrics and OTLP export.
///
/// ```no_run
/// # fn main() -> Result<(), sightline_trace::TraceError> {
/// let registry = sightline_core::Registry::new();
/// let guard = sightline_trace::builder()
///     .with_service_name("checkout")
///     .with_log_filter("info,checkout=debug")?
///     .with_metrics(&registry)
///     .install()?;
/// tracing::info!("ready");
/// guard.shutdown(); // flushes the last spans to the collector
/// # Ok(()) }
/// ```
pub fn builder() -> Builder {
    Builder::default()
}

/// The builder returned by [`builder`].
#[derive(Debug)]
#[must_use]
pub struct Builder {
    service_name: Option<String>,
    default_service_name: Option<String>,
    service_version: Option<String>,
    resource_attributes: Vec<(String, String)>,
    log_format: LogFormat,
    log_output: Option<LogOutput>,
    log_filter: String,
    span_filter: String,
    redactor: Redactor,
    store_capacity: usize,
    registry: Option<Registry>,
    span_metrics: SpanMetricsConfig,
    otlp: Option<OtlpConfig>,
    clock: Option<Clock>,
    ids: Option<Box<dyn IdGenerator>>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            service_name: None,
            default_service_name: None,
            service_version: None,
            resource_attributes: Vec::new(),
            log_format: LogFormat::Json,
            log_output: Some(LogOutput::Stdout),
            log_filter: "info".to_owned(),
            span_filter: "info".to_owned(),
            redactor: Redactor::default(),
            store_capacity: DEFAULT_STORE_CAPACITY,
            registry: None,
            span_metrics: SpanMetricsConfig::default(),
            otlp: Some(OtlpConfig::default()),
            clock: None,
            ids: None,
        }
    }
}

/// A parsed filter: [`Targets`] when every directive is a plain `target=level` (the common case), which
/// decides by the callsite alone; [`EnvFilter`] when a directive names spans or fields (`[span{field}]`),
/// which also has to track every span's entries and exits. Both match targets by prefix and take the most
/// specific directive, so a static filter means the same either way; `Targets` is only cheaper (the
/// per-span bookkeeping was 4% of a traced request's CPU time).
#[derive(Debug)]
enum ParsedFilter {
    Static(Targets),
    Dynamic(Box<EnvFilter>),
}

type BoxFilter<S> = Box<dyn tracing_subscriber::layer::Filter<S> + Send + Sync + 'static>;

impl ParsedFilter {
    /// As a per-layer filter.
    fn into_filter<S>(self) -> BoxFilter<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        match self {
            ParsedFilter::Static(targets) => FilterExt::<S>::boxed(targets),
            ParsedFilter::Dynamic(env) => FilterExt::<S>::boxed(*env),
        }
    }

    /// As the subscriber's global filter.
    fn into_layer<S>(self) -> Box<dyn Layer<S> + Send + Sync + 'static>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        match self {
            ParsedFilter::Static(targets) => Layer::<S>::boxed(targets),
            ParsedFilter::Dynamic(env) => Layer::<S>::boxed(*env),
        }
    }
}

fn parse_filter(what: &'static str, filter: &str) -> Result<ParsedFilter, TraceError> {
    // `EnvFilter` parses first, so that errors read the same whichever type serves the filter.
    let env = EnvFilter::builder().parse(filter).map_err(|e| TraceError::Filter {
        what,
        filter: filter.to_owned(),
        reason: e.to_string(),
    })?;
    let dynamic = filter.contains(['[', '{']);
    let directives = filter.split(',').map(str::trim).filter(|d| !d.is_empty()).collect::<Vec<_>>();
    if dynamic || directives.is_empty() {
        return Ok(ParsedFilter::Dynamic(Box::new(env)));
    }
    Ok(match directives.join(",").parse::<Targets>() {
        Ok(targets) => ParsedFilter::Static(targets),
        Err(_) => ParsedFilter::Dynamic(Box::new(env)),
    })
}

impl Builder {
    /// The service name (`service.name`), overriding `OTEL_SERVICE_NAME`.
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// The service name to use when neither the code nor `OTEL_SERVICE_NAME`/`OTEL_RESOURCE_ATTRIBUTES`
    /// names one (instead of OpenTelemetry's `unknown_service`).
    pub fn with_default_service_name(mut self, name: impl Into<String>) -> Self {
        self.default_service_name = Some(name.into());
        self
    }

    /// The service version (`service.version`).
    pub fn with_service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(version.into());
        self
    }

    /// An extra resource attribute (e.g. `deployment.environment`), added to `OTEL_RESOURCE_ATTRIBUTES`.
    pub fn with_resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource_attributes.push((key.into(), value.into()));
        self
    }

    /// JSON (the default) or text lines.
    pub fn with_log_format(mut self, format: LogFormat) -> Self {
        self.log_format = format;
        self
    }

    /// Where lines go (standard output by default).
    pub fn with_log_output(mut self, output: LogOutput) -> Self {
        self.log_output = Some(output);
        self
    }

    /// No log lines at all (spans are still tracked).
    pub fn without_logs(mut self) -> Self {
        self.log_output = None;
        self
    }

    /// Which events become log lines, in `RUST_LOG` syntax (`info` by default).
    pub fn with_log_filter(mut self, filter: &str) -> Result<Self, TraceError> {
        parse_filter("log", filter)?;
        self.log_filter = filter.to_owned();
        Ok(self)
    }

    /// Which spans are tracked for the store, metrics and export, in `RUST_LOG` syntax (`info` by
    /// default). Spans enabled by the log filter are tracked too, so log lines always carry their fields.
    pub fn with_span_filter(mut self, filter: &str) -> Result<Self, TraceError> {
        parse_filter("span", filter)?;
        self.span_filter = filter.to_owned();
        Ok(self)
    }

    /// The redaction rules for messages, fields and span attributes (all built-in rules by default).
    pub fn with_redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// Keeps the last `capacity` finished spans in memory (10,000 by default; 0 turns the store off).
    pub fn with_span_store(mut self, capacity: usize) -> Self {
        self.store_capacity = capacity;
        self
    }

    /// The registry for `sightline_trace_export_dropped_total` and span metrics.
    pub fn with_metrics(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Which spans get `sightline_span_duration_seconds` and `sightline_spans_total` (needs
    /// [`with_metrics`](Self::with_metrics)).
    pub fn with_span_metrics(mut self, config: SpanMetricsConfig) -> Self {
        self.span_metrics = config;
        self
    }

    /// OTLP export settings. Export is on when an endpoint is set here or in `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    pub fn with_otlp(mut self, config: OtlpConfig) -> Self {
        self.otlp = Some(config);
        self
    }

    /// No OTLP export, whatever the environment says.
    pub fn without_otlp(mut self) -> Self {
        self.otlp = None;
        self
    }

    /// A fixed clock for log timestamps (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// A custom id generator (tests use a sequential one for stable output).
    pub fn with_id_generator(mut self, ids: impl IdGenerator + 'static) -> Self {
        self.ids = Some(Box::new(ids));
        self
    }

    fn resource(&self) -> Resource {
        // The default builder reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
        let from_env = Resource::builder().build();
        let mut builder = Resource::builder();
        let env_named = from_env
            .get(&opentelemetry::Key::from_static_str("service.name"))
            .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
        if let Some(name) = &self.service_name {
            builder = builder.with_service_name(name.clone());
        } else if let (false, Some(name)) = (env_named, &self.default_service_name) {
            builder = builder.with_service_name(name.clone());
        }
        let mut attributes: Vec<opentelemetry::KeyValue> = self
            .resource_attributes
            .iter()
            .map(|(k, v)| opentelemetry::KeyValue::new(k.clone(), v.clone()))
            .collect();
        if let Some(version) = &self.service_version {
            attributes.push(opentelemetry::KeyValue::new("service.version", version.clone()));
        }
        builder.with_attributes(attributes).build()
    }

    /// Builds the subscriber without installing it, for tests and for programs that compose their own.
    pub fn build(self) -> Result<(tracing::Dispatch, TraceGuard), TraceError> {
        let resource = self.resource();
        let service: Arc<str> = resource
            .get(&opentelemetry::Key::from_static_str("service.name"))
            .map_or_else(|| Arc::from("unknown_service"), |name| Arc::from(name.as_str().as_ref()));
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if let (Some(registry), false) = (&self.registry, self.span_metrics.is_empty()) {
            sinks.push(Box::new(SpanMetrics::new(registry, &self.span_metrics)?));
        }
        let (export, sampler) = match &self.otlp {
            Some(config) if config.endpoint_configured() => {
                let sampler: Box<dyn RootSampler> = Box::new(OtelSampler::new(config.sampling_ratio)?);
                let sink = Arc::new(ExportSink::new(config, &resource, self.registry.as_ref())?);
                (Some(sink), Some(sampler))
            }
            _ => (None, None),
        };
        if let Some(export) = &export {
            sinks.push(Box::new(SharedSink(export.clone())));
        }
        let store = (self.store_capacity > 0).then(|| SpanStore::new(self.store_capacity));
        let keep_events = store.is_some() || export.is_some();
        let shared = Arc::new(Shared {
            service: service.clone(),
            redactor: self.redactor.clone(),
            ids: self.ids.unwrap_or_else(|| Box::new(RandomIdGenerator::default())),
            sampler,
            sinks,
            store: store.clone(),
            keep_events,
        });
        let span_layer = SpanLayer { shared };

        let mut file_guard = None;
        let log = match self.log_output {
            None => None,
            Some(output) => {
                let writer = match output {
                    LogOutput::Stdout => BoxMakeWriter::new(std::io::stdout),
                    LogOutput::Stderr => BoxMakeWriter::new(std::io::stderr),
                    LogOutput::Writer(writer) => writer,
                    LogOutput::File(file) => {
                        let (writer, guard) = file_writer(&file)?;
                        file_guard = Some(guard);
                        BoxMakeWriter::new(writer)
                    }
                };
                let mut log = LogLayer::new(writer, self.log_format, self.redactor.clone());
                if let Some(clock) = self.clock {
                    log = log.with_clock(clock);
                }
                Some(log)
            }
        };
        // When spans and lines use the same filter (the default), one global filter serves both: cheaper
        // than per-layer filters, which consult every filter on each span enter and exit.
        let dispatch = if log.is_none() || self.span_filter == self.log_filter {
            let filter = parse_filter("span", &self.span_filter)?.into_layer();
            let layers = assemble(span_layer, log, None)?;
            tracing::Dispatch::new(SpanRegistry::default().with(filter).with(layers))
        } else {
            let layers = assemble(span_layer, log, Some((&self.span_filter, &self.log_filter)))?;
            tracing::Dispatch::new(SpanRegistry::default().with(layers))
        };
        Ok((dispatch, TraceGuard { store, export, resource, service, _file_guard: file_guard, done: false }))
    }

    /// Builds the subscriber and installs it as the global default. Records from the `log` crate are not
    /// bridged; add `tracing-log`'s `LogTracer` if a dependency logs through `log`.
    pub fn install(self) -> Result<TraceGuard, TraceError> {
        let (dispatch, guard) = self.build()?;
        tracing::dispatcher::set_global_default(dispatch).map_err(|_| TraceError::AlreadyInstalled)?;
        Ok(guard)
    }
}

/// The span layer and the log layer, with per-layer filters when `filters` (span, log) differ.
fn assemble<S>(
    span_layer: SpanLayer,
    log: Option<LogLayer<BoxMakeWriter>>,
    filters: Option<(&str, &str)>,
) -> Result<Vec<Box<dyn Layer<S> + Send + Sync>>, TraceError>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    let mut layers: Vec<Box<dyn Layer<S> + Send + Sync>> = Vec::new();
    match filters {
        None => {
            layers.push(span_layer.boxed());
            if let Some(log) = log {
                layers.push(log.boxed());
            }
        }
        Some((span_filter, log_filter)) => {
            let spans = parse_filter("span", span_filter)?
                .into_filter()
                .or(parse_filter("log", log_filter)?.into_filter());
            layers.push(span_layer.with_filter(spans).boxed());
            if let Some(log) = log {
                layers.push(log.with_filter(LogFilter::new(span_filter, log_filter)?).boxed());
            }
        }
    }
    Ok(layers)
}

fn file_writer(
    file: &FileOutput,
) -> Result<
    (tracing_appender::non_blocking::NonBlocking, tracing_appender::non_blocking::WorkerGuard),
    TraceError,
> {
    use tracing_appender::rolling::{RollingFileAppender, Rotation as R};
    let rotation = match file.rotation {
        Rotation::Minutely => R::MINUTELY,
        Rotation::Hourly => R::HOURLY,
        Rotation::Daily => R::DAILY,
        Rotation::Never => R::NEVER,
    };
    let mut builder = RollingFileAppender::builder().rotation(rotation).filename_prefix(file.prefix.clone());
    if let Some(max) = file.max_files {
        builder = builder.max_log_files(max.max(1));
    }
    let appender = builder
        .build(&file.directory)
        .map_err(|e| TraceError::LogFile { path: file.directory.clone(), reason: e.to_string() })?;
    Ok(tracing_appender::non_blocking(appender))
}

/// An [`ExportSink`] shared between the layer and the guard (which flushes it).
#[derive(Debug)]
struct SharedSink(Arc<ExportSink>);

impl Sink for SharedSink {
    fn on_end(&self, span: &crate::SpanRecord, sampled: bool) {
        self.0.on_end(span, sampled);
    }
}

/// Keeps tracing running: the span store, the exporter's batch thread and the log file writer. Dropping
/// it (or calling [`shutdown`](Self::shutdown)) flushes the last spans and log lines. That waits for the
/// last export (at most [`DEFAULT_SHUTDOWN_TIMEOUT`]), so in async code call it from `spawn_blocking`.
#[derive(Debug)]
#[must_use = "dropping the guard shuts down export and file logging"]
pub struct TraceGuard {
    store: Option<SpanStore>,
    export: Option<Arc<ExportSink>>,
    resource: Resource,
    service: Arc<str>,
    _file_guard: Option<tracing_appender::non_blocking::WorkerGuard>,
    done: bool,
}

impl TraceGuard {
    /// The span store, unless it was turned off.
    pub fn store(&self) -> Option<&SpanStore> {
        self.store.as_ref()
    }

    /// The service name in effect (`service.name`).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.export.is_some()
    }

    /// Spans not exported so far (queue full or export failed).
    pub fn export_dropped(&self) -> u64 {
        self.export.as_ref().map_or(0, |e| e.losses.total())
    }

    /// Exports the queued spans now.
    pub fn flush(&self) {
        if let Some(export) = &self.export {
            let _ = export.flush();
        }
    }

    /// Spans in the OTLP JSON shape, with this service's resource.
    pub fn otlp_json(&self, spans: &[crate::SpanRecord]) -> serde_json::Value {
        crate::export::otlp_json(spans, &self.resource)
    }

    /// A cheap handle for readers of the span store (an HTTP API), which outlives nothing: the guard
    /// keeps owning export and shutdown.
    pub fn reader(&self) -> TraceReader {
        TraceReader {
            store: self.store.clone(),
            resource: self.resource.clone(),
            service: self.service.clone(),
        }
    }

    /// Flushes and stops export, waiting at most [`DEFAULT_SHUTDOWN_TIMEOUT`].
    pub fn shutdown(mut self) {
        self.shutdown_with_timeout(DEFAULT_SHUTDOWN_TIMEOUT);
    }

    fn shutdown_with_timeout(&mut self, timeout: Duration) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        if let Some(export) = &self.export {
            let _ = export.shutdown(timeout);
        }
    }
}

impl Drop for TraceGuard {
    fn drop(&mut self) {
        self.shutdown_with_timeout(DEFAULT_SHUTDOWN_TIMEOUT);
    }
}

/// Read access to the span store and the service's resource, for query APIs.
#[derive(Debug, Clone)]
pub struct TraceReader {
    store: Option<SpanStore>,
    resource: Resource,
    service: Arc<str>,
}

impl TraceReader {
    /// A reader of `store` for `service`, without export (tests and embedders).
    pub fn new(store: Option<SpanStore>, service: &str) -> Self {
        let resource = Resource::builder_empty().with_service_name(service.to_owned()).build();
        Self { store, resource, service: Arc::from(service) }
    }

    /// The span store, unless it is turned off.
    pub fn store(&self) -> Option<&SpanStore> {
        self.store.as_ref()
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Spans in the OTLP JSON shape, with this service's resource.
    pub fn otlp_json(&self, spans: &[crate::SpanRecord]) -> serde_json::Value {
        crate::export::otlp_json(spans, &self.resource)
    }
}

/// The log layer's filter: events by the log filter, spans by the span layer's (span OR log) filter. A
/// plain per-layer log filter would hide spans below the log level from `event_scope`, so a `warn` line
/// inside an `info` correlation span would lose its fields and trace id.
struct LogFilter<S> {
    spans: tracing_subscriber::filter::combinator::Or<BoxFilter<S>, BoxFilter<S>, S>,
    events: BoxFilter<S>,
}

impl<S> LogFilter<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn new(span_filter: &str, log_filter: &str) -> Result<Self, TraceError> {
        Ok(Self {
            spans: parse_filter("span", span_filter)?
                .into_filter()
                .or(parse_filter("log", log_filter)?.into_filter()),
            events: parse_filter("log", log_filter)?.into_filter(),
        })
    }
}

impl<S> tracing_subscriber::layer::Filter<S> for LogFilter<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn enabled(&self, meta: &tracing::Metadata<'_>, cx: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        if meta.is_span() {
            tracing_subscriber::layer::Filter::enabled(&self.spans, meta, cx)
        } else {
            tracing_subscriber::layer::Filter::enabled(&self.events, meta, cx)
        }
    }

    fn callsite_enabled(&self, meta: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        if meta.is_span() {
            tracing_subscriber::layer::Filter::callsite_enabled(&self.spans, meta)
        } else {
            tracing_subscriber::layer::Filter::callsite_enabled(&self.events, meta)
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        let spans = tracing_subscriber::layer::Filter::max_level_hint(&self.spans);
        let events = tracing_subscriber::layer::Filter::max_level_hint(&self.events);
        spans.max(events)
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        tracing_subscriber::layer::Filter::on_new_span(&self.spans, attrs, id, ctx.clone());
        tracing_subscriber::layer::Filter::on_new_span(&self.events, attrs, id, ctx);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        tracing_subscriber::layer::Filter::on_record(&self.spans, id, values, ctx.clone());
        tracing_subscriber::layer::Filter::on_record(&self.events, id, values, ctx);
    }

    fn on_enter(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        tracing_subscriber::layer::Filter::on_enter(&self.spans, id, ctx.clone());
        tracing_subscriber::layer::Filter::on_enter(&self.events, id, ctx);
    }

    fn on_exit(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        tracing_subscriber::layer::Filter::on_exit(&self.spans, id, ctx.clone());
        tracing_subscriber::layer::Filter::on_exit(&self.events, id, ctx);
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        tracing_subscriber::layer::Filter::on_close(&self.spans, id.clone(), ctx.clone());
        tracing_subscriber::layer::Filter::on_close(&self.events, id, ctx);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Records which events got through.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> Layer<S> for Seen {
        fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            let meta = event.metadata();
            self.0.lock().unwrap().push(format!("{} {}", meta.target(), meta.level()));
        }
    }

    fn emit() {
        tracing::event!(target: "sightline::access", Level::INFO, "a");
        tracing::event!(target: "sightline::access", Level::DEBUG, "b");
        tracing::event!(target: "sightline_server::http", Level::DEBUG, "c");
        tracing::event!(target: "sightline_server::http", Level::TRACE, "d");
        tracing::event!(target: "sightline", Level::WARN, "e");
        tracing::event!(target: "hyper::proto::h1", Level::TRACE, "f");
        tracing::event!(target: "hyper", Level::INFO, "g");
        tracing::event!(target: "other", Level::ERROR, "h");
        tracing::event!(target: "other", Level::INFO, "i");
    }

    fn seen_through(filter: Box<dyn Layer<SpanRegistry> + Send + Sync>) -> Vec<String> {
        let seen = Seen::default();
        let subscriber = SpanRegistry::default().with(filter).with(seen.clone());
        tracing::subscriber::with_default(subscriber, emit);
        seen.0.lock().unwrap().clone()
    }

    #[test]
    fn static_filters_decide_as_env_filter_does() {
        for filter in [
            "info",
            "warn",
            "trace",
            "off",
            "sightline=debug",
            "info,hyper=off",
            "warn,sightline::access=info,sightline_server=trace",
            "hyper=trace,hyper::proto=warn",
            "debug,hyper=info,",
            "sightline",
            "error,other=info",
        ] {
            let parsed = parse_filter("test", filter).unwrap();
            assert!(matches!(parsed, ParsedFilter::Static(_)), "{filter} is static");
            let env = EnvFilter::builder().parse(filter).unwrap();
            assert_eq!(
                seen_through(parsed.into_layer()),
                seen_through(Layer::<SpanRegistry>::boxed(env)),
                "filter {filter:?}"
            );
        }
    }

    #[test]
    fn span_and_field_directives_keep_env_filter() {
        for filter in ["info,[request]=debug", "[{user=alice}]=trace", ""] {
            assert!(matches!(parse_filter("test", filter).unwrap(), ParsedFilter::Dynamic(_)), "{filter:?}");
        }
        assert!(parse_filter("test", "info,=bogus=").is_err());
    }
}
