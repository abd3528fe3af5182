//! The `sightline` server: configuration, wiring of the Sightline layers, the HTTP API and the CLI.
//!
//! `main` parses the command line ([`cli`]), loads the [`config`], sets up [`logging`] and calls
//! [`serve`], which builds the registry and the [`http`] router and runs until SIGINT or SIGTERM.

pub mod auth;
pub mod cli;
pub mod config;
pub mod health;
pub mod http;
pub mod logging;
pub mod traces;

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
    let health = health::build(&config.health, data_dir, &registry).map_err(anyhow::Error::msg)?;
    let checks = health.health.start();
    let state = http::AppState::new(registry, &config.api.tokens, health, traces.reader())
        .with_access_log(config.log.access_log);
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let local = listener.local_addr().context("cannot read the listening address")?;
    tracing::info!(
        listen = %local,
        data_dir = %data_dir.display(),
        version = env!("CARGO_PKG_VERSION"),
        revision = REVISION,
        "sightline listening"
    );
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("the HTTP server failed")?;
    checks.stop();
    collectors.stop();
    tracing::info!("sightline stopped");
    // The last export blocks for at most its timeout; keep it off the async workers.
    let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    Ok(())
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
