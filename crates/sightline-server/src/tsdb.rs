//! Wiring of `sightline-tsdb`: the store under `<data_dir>/tsdb`, its maintenance task, the local
//! registry's ingestion, the scrape manager, and the engine behind the query API.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sightline_tsdb::Storage;
use sightline_tsdb::promql::{Engine, EngineOptions};
use sightline_tsdb::scrape::{LocalCollector, ScrapeManager};
use sightline_tsdb::storage::{Db, TierOptions, TsdbOptions};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::query::QueryState;

/// The running store and its ingestion tasks.
#[derive(Debug)]
pub struct TsdbRuntime {
    db: Arc<Db>,
    scrape: Arc<ScrapeManager>,
    tasks: Vec<JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
    /// What the query API serves.
    pub query: QueryState,
}

/// The store's options from `tsdb:`.
pub fn options(config: &crate::config::TsdbConfig) -> TsdbOptions {
    TsdbOptions {
        raw_retention: config.retention.raw.0,
        tiers: vec![
            TierOptions { resolution: Duration::from_secs(3600), retention: config.retention.hourly.0 },
            TierOptions { resolution: Duration::from_secs(86_400), retention: config.retention.daily.0 },
        ],
        ..TsdbOptions::default()
    }
}

/// The engine's options from `tsdb:`.
pub fn engine_options(config: &crate::config::TsdbConfig) -> EngineOptions {
    EngineOptions {
        lookback_delta: config.lookback_delta.0,
        timeout: config.query_timeout.0,
        max_samples: config.query_max_samples,
    }
}

/// Opens the store (reporting what recovery found), then starts maintenance, the local registry's
/// ingestion and the scrape targets. Returns `None` when `tsdb.enabled` is off.
pub async fn start(
    config: &Config,
    registry: &sightline_core::Registry,
    instance: String,
) -> anyhow::Result<Option<TsdbRuntime>> {
    if !config.tsdb.enabled {
        return Ok(None);
    }
    sightline_tsdb::storage::describe_metrics();
    let dir = config.server.data_dir.join("tsdb");
    let options = options(&config.tsdb);
    let open_dir = dir.clone();
    let (db, report) = tokio::task::spawn_blocking(move || Db::open(&open_dir, options))
        .await
        .context("the store's open task failed")?
        .with_context(|| format!("cannot open the time-series store in {}", dir.display()))?;
    for problem in &report.problems {
        tracing::warn!(dir = %dir.display(), problem = %problem, "time-series store recovered around damage");
    }
    tracing::info!(
        dir = %dir.display(),
        series = report.series_loaded,
        wal_records = report.wal_records_replayed,
        samples_replayed = report.samples_replayed,
        "time-series store open"
    );
    let db = Arc::new(db);
    let storage: Arc<dyn Storage> = db.clone();
    let mut tasks = vec![db.spawn_maintenance()];
    let (stop, _) = tokio::sync::watch::channel(false);

    let local = LocalCollector::new(registry.clone(), storage.clone())
        .with_interval(config.tsdb.self_scrape_interval.0)
        .with_instance(instance);
    let mut stopped = stop.subscribe();
    tasks.push(tokio::spawn(async move {
        local.run(async move { while stopped.changed().await.is_ok() && !*stopped.borrow() {} }).await;
    }));

    let scrape = Arc::new(
        ScrapeManager::new(storage.clone(), config.scrape_global(), config.scrape_configs.clone())
            .context("scrape_configs")?,
    );
    let runner = scrape.clone();
    tasks.push(tokio::spawn(async move { runner.run().await }));

    let query = QueryState {
        storage,
        engine: Engine::new(engine_options(&config.tsdb)),
        scrape: Some(scrape.clone()),
    };
    Ok(Some(TsdbRuntime { db, scrape, tasks, stop, query }))
}

impl TsdbRuntime {
    /// Stops ingestion and closes the store with a final checkpoint, so the next start replays nothing.
    pub async fn stop(self) {
        self.scrape.shutdown();
        let _ = self.stop.send(true);
        let mut tasks = self.tasks.into_iter();
        // The first task is maintenance, which has nothing to finish; the others end on the signals above.
        if let Some(maintenance) = tasks.next() {
            maintenance.abort();
        }
        for task in tasks {
            if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
                tracing::warn!("an ingestion task did not stop within 5s");
            }
        }
        let db = self.db;
        match tokio::task::spawn_blocking(move || db.close()).await {
            Ok(Ok(())) => tracing::info!("time-series store closed"),
            Ok(Err(err)) => tracing::error!(error = %err, "cannot close the time-series store cleanly"),
            Err(err) => tracing::error!(error = %err, "the store's close task failed"),
        }
    }
}
