//! The `sightline` server: configuration, wiring of the Sightline layers, the HTTP API and the CLI.
//!
//! `main` parses the command line ([`cli`]), loads the [`config`], sets up [`logging`] and calls
//! [`serve`], which builds the registry and the [`http`] router and runs until SIGINT or SIGTERM.

pub mod alerting;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod health;
pub mod http;
pub mod logging;
pub mod query;
pub mod traces;
pub mod tsdb;

use std::sync::Arc;

use anyhow::Context as _;
use sightline_core::{Matcher, RegistryBuilder};

use crate::config::Config;

/// The git revision the binary was built from, or `unknown`.
pub const REVISION: &str = env!("SIGHTLINE_REVISION");

/// The registry settings from `metrics:`.
pub fn registry_builder(config: &config::MetricsConfig) -> anyhow::Result<RegistryBuilder> {
    let mut builder = RegistryBuilder::new()
        .with_cardinality_limit(config.cardinality_limit)
        .with_default_buckets(&config.default_buckets)?;
    for rule in &config.buckets {
        let matcher: Matcher =
            rule.matcher().context("a bucket rule needs exactly one of name, prefix, suffix")?;
        builder = builder.with_buckets_for(matcher, &rule.buckets)?;
    }
    Ok(builder)
}

/// Runs the server until SIGINT or SIGTERM, then drains in-flight requests and returns. `log_env` is
/// the value of `SIGHTLINE_LOG`, which overrides `log.level`.
pub async fn serve(config: Config, log_env: Option<String>) -> anyhow::Result<()> {
    let data_dir = &config.server.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let registry =
        registry_builder(&config.metrics)?.install().context("cannot install the metrics recorder")?;
    // reqwest (health checks, OTLP over HTTP) is built without a bundled crypto provider; ring is the
    // small one. Installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let traces = logging::init(&config, log_env, &registry)?;
    let collectors = start_collectors(&registry, &config.collectors);
    let (audit, audit_task, retention) = start_audit(&config, &registry).await?;
    let storage_check = audit::StorageCheck { store: audit.store.clone(), writer: audit.writer.clone() };
    let health = health::build(&config.health, data_dir, &registry, Some(Arc::new(storage_check)))
        .map_err(anyhow::Error::msg)?;
    let checks = health.health.start();
    let writer = audit.writer.clone();
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let local = listener.local_addr().context("cannot read the listening address")?;
    let tsdb = tsdb::start(&config, &registry, local.to_string()).await?;
    let mut state = http::AppState::new(registry, &config.api.tokens, health, traces.reader())
        .with_access_log(config.log.access_log)
        .with_audit(audit);
    if let Some(tsdb) = &tsdb {
        state = state.with_query(tsdb.query.clone());
        let alerting = alerting::start(
            &config,
            config.source.as_deref(),
            tsdb.query.storage.clone(),
            Arc::new(tsdb.query.engine.clone()),
            writer.clone(),
            local,
        )
        .await?;
        spawn_reload_on_sighup(alerting.clone())?;
        state.alerting = Some(alerting);
    }
    let alerting = state.alerting.clone();
    state.protect_audit_reads = config.audit.protect_reads;
    let shutdown = shutdown_signal()?;
    tracing::info!(
        listen = %local,
        data_dir = %data_dir.display(),
        version = env!("CARGO_PKG_VERSION"),
        revision = REVISION,
        "sightline listening"
    );
    // Answers go out as soon as they are written: without TCP_NODELAY, Nagle's algorithm may hold a
    // small segment back until the previous one is acknowledged.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
    });
    axum::serve(listener, http::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
        .context("the HTTP server failed")?;
    checks.stop();
    collectors.stop();
    if let Some(alerting) = alerting {
        alerting.stop().await;
    }
    if let Some(tsdb) = tsdb {
        tsdb.stop().await;
    }
    if let Some(retention) = retention {
        retention.abort();
    }
    // Commit whatever is queued before exiting.
    writer.shutdown(audit_task).await;
    tracing::info!("sightline stopped");
    // The last export blocks for at most its timeout; keep it off the async workers.
    let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    Ok(())
}

/// Reloads rules and routing on SIGHUP, as Prometheus and Alertmanager do; a bad configuration is
/// logged and the running one stays.
fn spawn_reload_on_sighup(alerting: alerting::AlertingState) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let alerting = alerting.clone();
            match tokio::task::spawn_blocking(move || alerting.reload()).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    tracing::error!(error = %err, "reload refused; the running configuration stays")
                }
                Err(err) => tracing::error!(error = %err, "the reload task failed"),
            }
        }
    });
    Ok(())
}

/// Opens the audit store named by `storage.url` (exiting with a clear error when it cannot be reached),
/// and starts its writer and, when configured, retention.
async fn start_audit(
    config: &Config,
    registry: &sightline_core::Registry,
) -> anyhow::Result<(audit::AuditState, sightline_audit::WriterTask, Option<tokio::task::JoinHandle<()>>)> {
    use sightline_audit::retention::RetentionPolicy;
    use sightline_audit::{AnyStore, AuditWriter, Redaction, WriterConfig};
    let url = config.storage.url_in(&config.server.data_dir);
    let store = Arc::new(AnyStore::connect(&url).await.with_context(|| {
        format!("cannot open the audit store {} (storage.url)", sightline_audit::any::redact_url(&url))
    })?);
    let fields = &config.audit.redact;
    let redaction = Redaction {
        redactor: config.log.redaction.redactor().context("log.redaction")?,
        message: fields.message,
        attributes: fields.attributes,
        user_agent: fields.user_agent,
        target_id: fields.target_id,
    };
    let writer_config = WriterConfig { redaction, ..WriterConfig::default() };
    let (writer, task) =
        AuditWriter::start(store.clone(), writer_config, Some(registry)).await.with_context(|| {
            format!("cannot read the audit chain's head from {}", sightline_audit::any::redact_url(&url))
        })?;
    let policy = RetentionPolicy {
        max_age: config.audit.max_age.map(|d| d.0),
        max_events: config.audit.max_events,
        batch: 10_000,
    };
    let retention = policy
        .is_active()
        .then(|| sightline_audit::retention::spawn(store.clone(), policy, config.audit.retention_interval.0));
    tracing::info!(backend = store.backend(), url = %sightline_audit::any::redact_url(&url), "audit store open");
    let state = audit::AuditState {
        store,
        writer,
        max_request_bytes: usize::try_from(config.audit.max_request_bytes).unwrap_or(usize::MAX),
        max_request_events: config.audit.max_request_events,
        commit_timeout: config.audit.commit_timeout.0,
    };
    Ok((state, task, retention))
}

/// Starts the enabled collectors, after one synchronous collection so that the first scrape already sees
/// their metrics. Must run inside the tokio runtime (for the runtime collector).
fn start_collectors(
    registry: &sightline_core::Registry,
    config: &config::CollectorsConfig,
) -> sightline_collectors::Running {
    use sightline_collectors::{
        Collectors, HostCollector, process::ProcessCollector, runtime::RuntimeCollector,
    };
    let mut collectors = Collectors::new(registry);
    if config.host.enabled {
        match config.host.to_host_config() {
            Ok(host) => {
                collectors = collectors.add(HostCollector::new(registry, host), config.host.interval.0)
            }
            // Unreachable after config validation, which compiles the same patterns.
            Err(err) => tracing::error!(error = %err, "host collector disabled: invalid configuration"),
        }
    }
    if config.process.enabled {
        collectors = collectors.add(ProcessCollector::new(registry), config.process.interval.0);
    }
    if config.runtime.enabled {
        let handle = tokio::runtime::Handle::current();
        collectors = collectors.add(RuntimeCollector::new(registry, handle), config.runtime.interval.0);
    }
    for (collector, error) in collectors.collect_once() {
        tracing::warn!(collector, error, "first collection incomplete");
    }
    collectors.start()
}

/// Listens for SIGINT (Ctrl-C) and SIGTERM from the moment it is called, and returns a future that
/// resolves on the first of them. The handlers are installed eagerly so that a signal arriving right
/// after start-up is not met by the default action (which would kill the process without draining).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "shutting down"),
                _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!(signal = "Ctrl-C", "shutting down");
            }
        })
    }
}
