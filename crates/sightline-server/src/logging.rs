//! The server's own logs and spans, set up with `sightline-trace`: JSON (or text) lines with trace ids,
//! redaction, the span store behind `/api/v1/traces`, span metrics and OTLP export.

use sightline_core::Registry;
use sightline_trace::{FileOutput, LogOutput, OtlpConfig, Rotation, SpanMetricsConfig, TraceGuard};

use crate::config::{Config, LogFormat, LogOutputKind, LogRotation};

/// The variable whose `RUST_LOG`-syntax filter overrides `log.level`.
pub const LOG_ENV: &str = "SIGHTLINE_LOG";

/// Installs the global subscriber. `env_filter` is the value of `SIGHTLINE_LOG`, if set. Span metrics
/// and export-loss counters go to `registry`.
pub fn init(config: &Config, env_filter: Option<String>, registry: &Registry) -> anyhow::Result<TraceGuard> {
    use anyhow::Context as _;
    let log = &config.log;
    let traces = &config.traces;
    let (filter, source) = match env_filter {
        Some(filter) => (filter, LOG_ENV),
        None => (log.level.clone(), "log.level"),
    };
    let format = match log.format {
        LogFormat::Json => sightline_trace::LogFormat::Json,
        LogFormat::Text => {
            sightline_trace::LogFormat::Text { ansi: std::io::IsTerminal::is_terminal(&std::io::stdout()) }
        }
    };
    let output = match log.output {
        LogOutputKind::Stdout => LogOutput::Stdout,
        LogOutputKind::Stderr => LogOutput::Stderr,
        LogOutputKind::File => LogOutput::File(FileOutput {
            directory: config.server.data_dir.join(&log.file.directory),
            prefix: log.file.prefix.clone(),
            rotation: match log.file.rotation {
                LogRotation::Minutely => Rotation::Minutely,
                LogRotation::Hourly => Rotation::Hourly,
                LogRotation::Daily => Rotation::Daily,
                LogRotation::Never => Rotation::Never,
            },
            max_files: (log.file.max_files > 0).then_some(log.file.max_files),
        }),
    };
    let mut span_metrics = SpanMetricsConfig::new();
    for name in &traces.span_metrics.names {
        span_metrics = span_metrics.with_name(name.clone());
    }
    for pattern in &traces.span_metrics.patterns {
        span_metrics = span_metrics.with_pattern(pattern.clone())?;
    }
    let otlp = OtlpConfig {
        endpoint: traces.otlp.endpoint.clone(),
        protocol: traces.otlp.protocol.as_deref().map(sightline_trace::Protocol::parse).transpose()?,
        headers: traces.otlp.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        timeout: traces.otlp.timeout.map(|d| d.0),
        sampling_ratio: traces.sampling_ratio,
    };
    let mut builder = sightline_trace::builder()
        .with_default_service_name("sightline")
        .with_service_version(env!("CARGO_PKG_VERSION"))
        .with_log_format(format)
        .with_log_output(output)
        .with_log_filter(&filter)
        .context(source)?
        .with_span_filter(&traces.filter)
        .context("traces.filter")?
        .with_redactor(log.redaction.redactor().context("log.redaction")?)
        .with_span_store(traces.store_capacity)
        .with_metrics(registry)
        .with_span_metrics(span_metrics)
        .with_otlp(otlp);
    if let Some(name) = &traces.service_name {
        builder = builder.with_service_name(name.clone());
    }
    for (key, value) in &traces.resource {
        builder = builder.with_resource_attribute(key.clone(), value.clone());
    }
    Ok(builder.install()?)
}
