//! The `sightline` server: configuration, wiring of the Sightline layers, the HTTP API and the CLI.
//!
//! `main` parses the command line ([`cli`]), loads the [`config`], sets up [`logging`] and calls
//! [`serve`], which builds the registry and the [`http`] router and runs until SIGINT or SIGTERM.

pub mod auth;
pub mod cli;
pub mod config;
pub mod http;
pub mod logging;
#[cfg(target_os = "linux")]
pub mod process;

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

/// Runs the server until SIGINT or SIGTERM, then drains in-flight requests and returns.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let data_dir = &config.server.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let registry =
        registry_builder(&config.metrics)?.install().context("cannot install the metrics recorder")?;
    let state = http::AppState::new(registry, &config.api.tokens);
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
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    tracing::info!("sightline stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!(signal = "SIGINT", "shutting down"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutting down"),
    }
}
