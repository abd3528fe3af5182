//! The scrape manager: one tokio task per target, target status for `/api/v1/targets`, and config
//! reloads that keep unchanged targets running.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde::ser::SerializeMap;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::labels::Labels;
use crate::scrape::client::HttpScraper;
use crate::scrape::config::{
    ConfigError, GlobalConfig, PromDuration, ScrapeConfig, TargetSpec, validate_configs,
};
use crate::scrape::scrape_loop::{LoopOptions, ScrapeLoop};
use crate::traits::Storage;

/// A target's health, as `/api/v1/targets` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// The last scrape succeeded.
    Up,
    /// The last scrape failed; `last_error` says why.
    Down,
    /// Not scraped yet.
    Unknown,
}

/// One target's state, serialised in the shape of an entry of Prometheus's `activeTargets`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    /// The job (not a field of Prometheus's JSON, where `scrapePool` carries it).
    #[serde(skip)]
    pub job: String,
    /// The labels before relabelling: `__address__`, `__scheme__`, `__metrics_path__`, ... and static ones.
    #[serde(serialize_with = "labels_as_map")]
    pub discovered_labels: Labels,
    /// The labels every series of the target gets: `job`, `instance` and static labels.
    #[serde(serialize_with = "labels_as_map")]
    pub labels: Labels,
    pub scrape_pool: String,
    pub scrape_url: String,
    pub global_url: String,
    /// Empty when the last scrape succeeded.
    pub last_error: String,
    /// When the last scrape started (`0001-01-01T00:00:00Z` in JSON before the first, as Prometheus shows it).
    #[serde(serialize_with = "time_rfc3339")]
    pub last_scrape: Option<SystemTime>,
    /// How long the last scrape took, in seconds in JSON.
    #[serde(serialize_with = "duration_seconds")]
    pub last_scrape_duration: Duration,
    pub health: Health,
    pub scrape_interval: PromDuration,
    pub scrape_timeout: PromDuration,
    /// Samples in the last scrape (not a field of Prometheus's JSON).
    #[serde(skip)]
    pub last_samples: usize,
}

fn labels_as_map<S: serde::Serializer>(labels: &Labels, serializer: S) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(labels.len()))?;
    for label in labels {
        map.serialize_entry(&label.name, &label.value)?;
    }
    map.end()
}

fn time_rfc3339<S: serde::Serializer>(time: &Option<SystemTime>, serializer: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(t) => serializer.collect_str(&humantime::format_rfc3339_millis(*t)),
        None => serializer.serialize_str("0001-01-01T00:00:00Z"),
    }
}

fn duration_seconds<S: serde::Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(d.as_secs_f64())
}

/// How a target's task ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Without staleness markers: shutdown, or a restart with a changed config.
    Quiet,
    /// With staleness markers for all its series: the target was removed.
    Stale,
}

/// A job's settings shared by its targets.
#[derive(Debug)]
struct Job {
    config: ScrapeConfig,
    interval: Duration,
    options: LoopOptions,
    scraper: HttpScraper,
}

#[derive(Debug)]
struct Target {
    job: Arc<Job>,
    spec: TargetSpec,
    status: Arc<Mutex<TargetStatus>>,
    stop: watch::Sender<Option<Stop>>,
    task: Option<JoinHandle<()>>,
}

/// Targets are identified by job and labels, as Prometheus identifies them within a pool.
type TargetKey = (String, Labels);

#[derive(Debug, Default)]
struct State {
    targets: BTreeMap<TargetKey, Target>,
    runtime: Option<tokio::runtime::Handle>,
    /// Tasks of targets that were stopped but may still be writing staleness markers.
    retired: Vec<JoinHandle<()>>,
    shut_down: bool,
}

struct Shared {
    storage: Arc<dyn Storage>,
    state: Mutex<State>,
    shutdown: watch::Sender<bool>,
}

/// Scrapes every target of a set of `scrape_configs` into a store. Cheap to clone; clones share the
/// targets. See the [module docs](crate::scrape).
#[derive(Clone)]
pub struct ScrapeManager {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ScrapeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeManager").field("targets", &self.state().targets.len()).finish()
    }
}

// === impl ScrapeManager ===

impl ScrapeManager {
    /// A manager for these jobs; nothing is scraped until [`ScrapeManager::run`]. Fails on an invalid
    /// config (see [`ConfigError`]).
    pub fn new(
        storage: Arc<dyn Storage>,
        global: GlobalConfig,
        configs: Vec<ScrapeConfig>,
    ) -> Result<Self, ConfigError> {
        let (shutdown, _) = watch::channel(false);
        let manager =
            Self { shared: Arc::new(Shared { storage, state: Mutex::new(State::default()), shutdown }) };
        manager.apply_config(global, configs)?;
        Ok(manager)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a task per target on the current tokio runtime and waits until [`ScrapeManager::shutdown`];
    /// then stops every target (without staleness markers, so a restart shows no gap) and returns.
    pub async fn run(&self) {
        let mut shutdown = self.shared.shutdown.subscribe();
        {
            let mut state = self.state();
            if state.shut_down {
                return;
            }
            state.runtime = Some(tokio::runtime::Handle::current());
            let storage = self.shared.storage.clone();
            for target in state.targets.values_mut() {
                if target.task.is_none() {
                    target.task = Some(spawn_target(&storage, target));
                }
            }
        }
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        let tasks: Vec<JoinHandle<()>> = {
            let mut state = self.state();
            let mut tasks: Vec<JoinHandle<()>> = std::mem::take(&mut state.retired);
            for target in state.targets.values_mut() {
                target.stop.send_replace(Some(Stop::Quiet));
                tasks.extend(target.task.take());
            }
            state.runtime = None;
            tasks
        };
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Stops scraping: [`ScrapeManager::run`] stops every target and returns. Later calls to `run` return
    /// at once.
    pub fn shutdown(&self) {
        self.state().shut_down = true;
        self.shared.shutdown.send_replace(true);
    }

    /// Replaces the jobs. Targets whose job config and labels are unchanged keep running (and keep their
    /// scrape cache); removed targets get staleness markers for all their series; changed ones restart.
    /// On an error nothing changes.
    pub fn apply_config(&self, global: GlobalConfig, configs: Vec<ScrapeConfig>) -> Result<(), ConfigError> {
        validate_configs(&global, &configs)?;
        let mut wanted: BTreeMap<TargetKey, (Arc<Job>, TargetSpec)> = BTreeMap::new();
        for config in configs {
            let targets = config.targets(&global)?;
            let job = Arc::new(Job {
                interval: config.interval(&global),
                options: LoopOptions {
                    honor_labels: config.honor_labels,
                    honor_timestamps: config.honor_timestamps,
                    sample_limit: config.sample_limit,
                    label_limit: config.label_limit,
                    label_name_length_limit: config.label_name_length_limit,
                    label_value_length_limit: config.label_value_length_limit,
                },
                scraper: HttpScraper::new(&config, &global)?,
                config,
            });
            for spec in targets {
                // A target listed twice in a job is scraped once, as in Prometheus.
                wanted.insert((job.config.job_name.clone(), spec.labels.clone()), (job.clone(), spec));
            }
        }
        let storage = self.shared.storage.clone();
        let mut state = self.state();
        let old = std::mem::take(&mut state.targets);
        let mut retired = Vec::new();
        for (key, mut target) in old {
            let mode = match wanted.get(&key) {
                Some((job, spec)) if job.config == target.job.config && *spec == target.spec => {
                    wanted.remove(&key);
                    state.targets.insert(key, target);
                    continue;
                }
                Some(_) => Stop::Quiet,
                None => Stop::Stale,
            };
            target.stop.send_replace(Some(mode));
            retired.extend(target.task.take());
        }
        state.retired.retain(|task| !task.is_finished());
        state.retired.extend(retired);
        for (key, (job, spec)) in wanted {
            let status = TargetStatus {
                job: job.config.job_name.clone(),
                discovered_labels: spec.discovered.clone(),
                labels: spec.labels.clone(),
                scrape_pool: job.config.job_name.clone(),
                scrape_url: spec.url.to_string(),
                global_url: spec.url.to_string(),
                last_error: String::new(),
                last_scrape: None,
                last_scrape_duration: Duration::ZERO,
                health: Health::Unknown,
                scrape_interval: PromDuration(job.interval),
                scrape_timeout: PromDuration(job.config.timeout(&global)),
                last_samples: 0,
            };
            let (stop, _) = watch::channel(None);
            let mut target = Target { job, spec, status: Arc::new(Mutex::new(status)), stop, task: None };
            if let Some(runtime) = &state.runtime {
                let _guard = runtime.enter();
                target.task = Some(spawn_target(&storage, &target));
            }
            state.targets.insert(key, target);
        }
        Ok(())
    }

    /// Every target's status, by job and then labels.
    pub fn targets(&self) -> Vec<TargetStatus> {
        self.state()
            .targets
            .values()
            .map(|t| t.status.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect()
    }

    /// Waits until every target has been scraped at least once (or `timeout` passes); for tests and for a
    /// server that wants its first query to see data. Returns whether all were.
    pub async fn wait_first_scrapes(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.targets().iter().all(|t| t.last_scrape.is_some()) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn spawn_target(storage: &Arc<dyn Storage>, target: &Target) -> JoinHandle<()> {
    let storage = storage.clone();
    let job = target.job.clone();
    let spec = target.spec.clone();
    let status = target.status.clone();
    let stop = target.stop.subscribe();
    tokio::spawn(run_target(storage, job, spec, status, stop))
}

/// When in its interval a target is scraped: a fixed phase from its identity, as Prometheus spreads
/// targets so that they are not all scraped at once, and a restart keeps each target's phase.
fn start_offset(spec: &TargetSpec, interval: Duration) -> Duration {
    let interval_ns = interval.as_nanos().max(1);
    let mut labels = spec.labels.clone();
    labels.set("__url__", spec.url.as_str());
    let phase = u128::from(labels.stable_hash()) % interval_ns;
    let now =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos() % interval_ns;
    let offset = (phase + interval_ns - now) % interval_ns;
    Duration::from_nanos(u64::try_from(offset).unwrap_or(0))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn run_target(
    storage: Arc<dyn Storage>,
    job: Arc<Job>,
    spec: TargetSpec,
    status: Arc<Mutex<TargetStatus>>,
    mut stop: watch::Receiver<Option<Stop>>,
) {
    let mut scrape_loop = ScrapeLoop::new(spec.labels.clone(), job.options.clone());
    let start = tokio::time::Instant::now() + start_offset(&spec, job.interval);
    let mut ticker = tokio::time::interval_at(start, job.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut body = Vec::new();
    let stopped = |stop: &watch::Receiver<Option<Stop>>| *stop.borrow();
    let mode = loop {
        tokio::select! {
            biased;
            changed = stop.changed() => {
                break if changed.is_ok() { stopped(&stop).unwrap_or(Stop::Quiet) } else { Stop::Quiet };
            }
            _ = ticker.tick() => {}
        }
        let started_at = SystemTime::now();
        let started = Instant::now();
        let t = now_ms();
        let fetched = tokio::select! {
            biased;
            changed = stop.changed() => {
                break if changed.is_ok() { stopped(&stop).unwrap_or(Stop::Quiet) } else { Stop::Quiet };
            }
            fetched = job.scraper.fetch(&spec.url, &mut body) => fetched,
        };
        let elapsed = started.elapsed();
        let result =
            scrape_loop.append_scrape(&*storage, t, fetched.map(|format| (&body[..], format)), elapsed);
        let duration = started.elapsed();
        // A huge one-off body should not stay allocated for the life of the target.
        if body.capacity() > 4 * body.len().max(1 << 20) {
            body = Vec::new();
        }
        let mut status = status.lock().unwrap_or_else(|e| e.into_inner());
        status.last_scrape = Some(started_at);
        status.last_scrape_duration = duration;
        match result {
            Ok(stats) => {
                status.health = Health::Up;
                status.last_error.clear();
                status.last_samples = stats.samples;
            }
            Err(e) => {
                tracing::debug!(target: "sightline_tsdb::scrape", url = %spec.url, error = %e, "scrape failed");
                status.health = Health::Down;
                status.last_error = e.to_string();
                status.last_samples = 0;
            }
        }
    };
    if mode == Stop::Stale
        && let Err(e) = scrape_loop.append_end_of_run(&*storage, now_ms())
    {
        tracing::warn!(target: "sightline_tsdb::scrape", url = %spec.url, error = %e, "cannot write staleness markers");
    }
}
